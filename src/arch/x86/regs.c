/* The x86 register ids of <hvcore/x86.h>: which are numbers (general,
 * control and debug registers, MSRs) and which are segments. */
#include "regs.h"

bool hvi_arch_reg_is_segment(hvc_reg id)
{
    return id >= HVC_X86_CS && id <= HVC_X86_IDTR;
}

bool hvi_arch_reg_is_scalar(hvc_reg id)
{
    if (HVC_X86_IS_MSR(id))
        return true;
    if (id <= HVC_X86_RFLAGS)
        return true;
    switch (id) {
    case HVC_X86_CR0:
    case HVC_X86_CR2:
    case HVC_X86_CR3:
    case HVC_X86_CR4:
    case HVC_X86_CR8:
    case HVC_X86_EFER:
    case HVC_X86_APIC_BASE:
    case HVC_X86_DR0:
    case HVC_X86_DR1:
    case HVC_X86_DR2:
    case HVC_X86_DR3:
    case HVC_X86_DR6:
    case HVC_X86_DR7: return true;
    default: return false;
    }
}
