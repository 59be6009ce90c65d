/* Hypervisor.framework umbrella header (see hv_error.h). */
#ifndef HVF_HOST_HYPERVISOR_H
#define HVF_HOST_HYPERVISOR_H
#include "hv.h"
#endif
