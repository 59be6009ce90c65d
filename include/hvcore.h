/**
 * @file hvcore.h
 * @brief libhvcore umbrella header: includes every public header.
 *
 * libhvcore gives a VMM its hypervisor core: VMs, vCPUs, guest memory,
 * device dispatch and interrupts, over pluggable accelerator backends. See
 * README.md for an overview and ABI.md for the stability promise.
 */
#ifndef HVCORE_H
#define HVCORE_H

#include "hvcore/audit.h"
#include "hvcore/common.h"
#include "hvcore/device.h"
#include "hvcore/handover.h"
#include "hvcore/hypervisor.h"
#include "hvcore/loader.h"
#include "hvcore/memory.h"
#include "hvcore/migration.h"
#include "hvcore/platform.h"
#include "hvcore/postcopy.h"
#include "hvcore/topology.h"
#include "hvcore/tsc.h"
#include "hvcore/vcpu.h"
#include "hvcore/virtio.h"
#include "hvcore/vm.h"
#include "hvcore/x86.h"

#endif /* HVCORE_H */
