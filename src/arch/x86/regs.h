/* Register ids of the guest architecture, as the core validates them. */
#ifndef HVCORE_ARCH_X86_REGS_H
#define HVCORE_ARCH_X86_REGS_H

#include <hvcore/x86.h>

#include <stdbool.h>

/* A register read and written as a number (hvc_vcpu_get_regs()). */
bool hvi_arch_reg_is_scalar(hvc_reg id);
/* A segment register (hvc_vcpu_get_segment()). */
bool hvi_arch_reg_is_segment(hvc_reg id);

#endif
