/* Architectural bits the HVF backend uses beside the framework's VMCS
 * names (Intel SDM vol. 3). */
#ifndef HVCORE_HVF_VMX_H
#define HVCORE_HVF_VMX_H

/* A segment's VMCS fields from its selector field. */
#define HVI_VMCS_LIMIT 0x4000u
#define HVI_VMCS_AR 0x4014u
#define HVI_VMCS_BASE 0x6006u
#define HVI_AR_UNUSABLE (1u << 16)

#define HVI_CR0_PE (1ull << 0)
#define HVI_CR0_TS (1ull << 3)
#define HVI_CR0_ET (1ull << 4)
#define HVI_CR0_NE (1ull << 5)
#define HVI_CR0_NW (1ull << 29)
#define HVI_CR0_CD (1ull << 30)
#define HVI_CR0_PG (1ull << 31)
#define HVI_CR4_PAE (1ull << 5)
#define HVI_CR4_VMXE (1ull << 13)
#define HVI_CR4_OSXSAVE (1ull << 18)
#define HVI_CR4_PKE (1ull << 22)
#define HVI_EFER_SCE (1ull << 0)
#define HVI_EFER_LME (1ull << 8)
#define HVI_EFER_LMA (1ull << 10)
#define HVI_EFER_NXE (1ull << 11)

/* Exit qualification of I/O instructions. */
#define HVI_IO_SIZE(q) ((unsigned)((q)&7) + 1)
#define HVI_IO_IN(q) (((q) >> 3) & 1)
#define HVI_IO_STRING(q) (((q) >> 4) & 1)
#define HVI_IO_REP(q) (((q) >> 5) & 1)
#define HVI_IO_PORT(q) ((uint16_t)((q) >> 16))

/* Exception vectors the backend injects. */
#define HVI_EXC_UD 6
#define HVI_EXC_GP 13

#endif
