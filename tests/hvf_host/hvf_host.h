/* tests/hvf_host: Apple Hypervisor.framework's Intel C API (the headers in
 * include/Hypervisor) implemented on Linux over /dev/kvm, as the shared
 * library libhvf_host.so. Test infrastructure only, never installed: it lets
 * src/backends/hvf run real guests here (the backend dlopen()s it,
 * $HVCORE_HVF_HOST_LIBRARY or the soname). It exports exactly the hv_* calls
 * and, of macOS's libSystem, sysctlbyname() for machdep.tsc.frequency (the
 * Linux kernel's TSC calibration, as KVM reports it; sysctl.c) (hvf_host.map);
 * it has no test hooks.
 *
 * It behaves as the framework documents, not as KVM does. What is enforced,
 * and how each KVM behaviour is undone or hidden (measured on this host: KVM
 * on PVM, kernel 6.18, 64-bit guest code):
 *
 * VM and memory
 * - One VM per process: a second hv_vm_create() is HV_BUSY.
 * - hv_vm_map/unmap/protect take page-aligned ranges; a map overlapping a
 *   mapped range is refused (HV_ERROR); unmap/protect must cover mapped pages
 *   only (HV_BAD_ARGUMENT otherwise) and split ranges as needed. Each range
 *   is one KVM memslot: read+write a normal slot, read-only a
 *   KVM_MEM_READONLY slot, no access no slot at all (so every access exits).
 *   Execute permission is not enforced (KVM has no such bit). Neighbours
 *   that become alike again are merged (protecting pages one at a time and
 *   back does not run out of memslots). Replacing a memslot leaves a moment
 *   without it, which KVM would show a running guest as a fault: every vCPU
 *   is kicked out of KVM_RUN and held until the change is done.
 * - The KVM VM has no in-kernel irqchip (so HLT reaches userspace and
 *   interrupts are injected only through the VM-entry field).
 *
 * vCPUs and threads
 * - A vCPU belongs to the thread that created it: every hv_vcpu_* and
 *   hv_vmx_vcpu_* call on it from another thread is HV_BAD_ARGUMENT, except
 *   hv_vcpu_interrupt(), which any thread may call: it sets a flag and
 *   run->immediate_exit and sends the owner SIGRTMIN+3 (a no-op handler), so
 *   the running or the next hv_vcpu_run() returns with VMX_REASON_IRQ. Other
 *   signals that interrupt KVM_RUN are absorbed.
 * - HV_X86_TPR is CR8 (the TPR's priority class), as VMMs on the framework
 *   use it.
 *
 * Guest state: registers, MSRs and a software VMCS
 * - Guest-state fields KVM holds (segments with VMX access rights, CR0/3/4,
 *   EFER, GDTR/IDTR, RIP/RSP/RFLAGS, DR7, interruptibility, PAT, DEBUGCTL,
 *   SYSENTER) are KVM's registers, cached and written back before entry; the
 *   other fields (controls, CR0/CR4 masks and read shadows, entry
 *   interruption, exit fields) live in the software VMCS. Read-only exit
 *   fields cannot be written; unknown fields are HV_BAD_ARGUMENT.
 * - hv_vmx_read_capability() offers only the controls this layer honours (HLT
 *   and unconditional I/O exiting required, interrupt-window exiting, EPT and
 *   unrestricted guest, IA-32e/load-EFER entry...); a control field outside
 *   it fails hv_vcpu_run() with HV_ERROR and VM-instruction error 7 in
 *   VMCS_RO_INSTR_ERROR, as VMLAUNCH would fail.
 * - VM entry checks (before KVM_RUN): CR0.PG without PE, IA-32e entry control
 *   without CR0.PG/CR4.PAE, load-EFER with LMA != the IA-32e control (or LME
 *   != LMA under paging), CS.L with CS.D (or CS.L outside IA-32e), an
 *   unusable/wrong-type TR, RFLAGS bit 1, and an injected external interrupt
 *   while RFLAGS.IF=0 or STI/MOV SS blocking, CR0.NE or CR4.VMXE clear (VMX's
 *   fixed-1 bits; with unrestricted guest PE and PG may be 0): each fails the
 *   entry as VMX does, exit reason VMX_REASON_VMENTRY_GUEST with bit 31 set
 *   (hv_vcpu_run returns HV_SUCCESS). Without load-EFER, entry loads EFER.LMA
 *   (and LME under paging) from the IA-32e control; every exit writes LMA
 *   back into that control, and clears the valid bit of the entry
 *   interruption field.
 * - CR4.VMXE, which VMX requires in the guest's CR4 and KVM refuses (no
 *   nested VMX), is kept here: KVM's CR4 never has it, VMCS_GUEST_CR4 and
 *   HV_X86_CR4 read it back as written.
 * - Guest reads of CR0/CR4 see the real values, not the read shadows, and
 *   guest writes to bits owned by the masks do not exit (MOV CR is completed
 *   invisibly by KVM); XSETBV likewise. Activity state HLT is kept here (KVM
 *   without irqchip refuses it): an entry in HLT without an event to inject
 *   waits for hv_vcpu_interrupt().
 * - Injection: VM-entry interruption info is applied at the next entry:
 *   external interrupt KVM_INTERRUPT, NMI KVM_NMI, exceptions (error code
 *   too) and INT n through KVM_SET_VCPU_EVENTS. The interrupt-window control
 *   exits at once (VMX_REASON_IRQ_WND) when the guest is already
 *   interruptible; else, as KVM on PVM does not report the window opening
 *   (request_interrupt_window had no effect here), the guest is single-
 *   stepped (KVM_GUESTDBG_SINGLESTEP, window.c) until RFLAGS.IF=1 without
 *   STI/MOV SS blocking, and that exits VMX_REASON_IRQ_WND (other exits on
 *   the way are reported as usual). The registers reach KVM before the
 *   stepping starts (upstream KVM sets TF only at the RIP it saw then; PVM
 *   steps either way). A HLT met on
 *   the way exits VMX_REASON_HLT at the HLT (HLT exiting), unexecuted. An
 *   external interrupt, NMI or hardware exception (with its error code)
 *   injected at that entry is delivered by this layer
 *   (64-bit interrupt/trap gate to the running code segment, no IST), so
 *   KVM's TF is never pushed into the handler's frame; stepping starts at
 *   the handler (a trap gate opens the window there at once). IRETQ at CPL
 *   0 (same CS, SS) is done by this layer while stepping: KVM on PVM
 *   completes it without the single-step trap. Other events are injected
 *   by KVM, and a PUSHF or an exception while stepping can still show the
 *   guest TF. IDT-vectoring info is always 0: an event KVM was
 *   delivering when the exit came stays queued in KVM and is re-delivered by
 *   it (hidden, not reported).
 *
 * Exits (information only through the VMCS exit fields)
 * - I/O: measured here, KVM_EXIT_IO comes before IN/INS/REP INS execute (RIP
 *   at the instruction, REP INS with the whole count), after OUT and non-REP
 *   OUTS (RIP past it, RSI stepped), and once per element of REP OUTS (RIP at
 *   it, RSI/RCX stepped). This layer finds the instruction (decoded at RIP,
 *   or for OUT/OUTS the shortest instruction that ends at RIP and matches
 *   port and size), computes the registers before it, completes KVM's pending
 *   IN with an immediate_exit KVM_RUN (IN data set to what the destination
 *   memory already holds, so INS writes nothing new; OUT leaves nothing
 *   pending: KVM emulated it) and puts those registers back: the backend sees
 *   RIP at the instruction and does all of the work. Qualification (size,
 *   direction, string, REP, immediate, port), instruction length, and for
 *   INS/OUTS the instruction information (address size, segment) and the
 *   guest-linear address are set as the SDM defines them.
 * - MMIO: the technique of backing holes with userfaultfd memory and
 *   signalling the faulting thread does not work on this host (PVM retries
 *   the fault forever without looking at signals; resolving it with PROT_NONE
 *   makes KVM treat the page as MMIO anyway). So: an access to a page with no
 *   slot (unmapped or no-access) or a write to a read-only one is
 *   KVM_EXIT_MMIO. Reads exit before executing: the pending read is completed
 *   and discarded, the registers put back. Writes exit after the instruction
 *   has executed: this layer finds the instruction that ended at RIP whose
 *   memory operand translates to the written address (MOV, ALU stores,
 *   MOVS/STOS, moffs; REP STOS/MOVS one element at a time with RIP still at
 *   it) and puts back RIP (and RDI/RSI/RCX for string stores); nothing
 *   reached memory. The backend gets VMX_REASON_EPT_VIOLATION with the
 *   guest-physical address, the qualification (read/write/fetch, the page's
 *   R/W/X rights, guest-linear address valid), and the guest-linear address
 *   of the operand. An instruction fetch from such a page is, on KVM, an
 *   emulation failure (KVM_EXIT_INTERNAL_ERROR) with nothing executed: it is
 *   reported as an EPT violation with the fetch bit, GPA and linear address
 *   of RIP.
 *   Completing a discarded read that KVM would store to memory (MOVS from
 *   MMIO, INS) is given the bytes already at the destination, so memory is
 *   unchanged. The search for a written instruction takes the shortest decode
 *   that ends at RIP, writes the size KVM wrote and addresses the written
 *   GPA; a redundant prefix (one that changes none of these) is not counted
 *   in its start.
 * - CPUID always exits: see cpuid.c. Before the first entry the backend is
 *   asked every leaf/subleaf (basic, 0x4000000x, extended; subleaves of 4, 7,
 *   0xb, 0xd, 0x1f, ...) through synthesized VMX_REASON_CPUID exits and its
 *   answers are programmed into KVM_SET_CPUID2: the guest sees exactly the
 *   backend's answers, but the exits happen up front, not at the guest's
 *   CPUID, and answers cannot change after the first entry (KVM freezes
 *   CPUID). KVM still patches its dynamic bits (OSXSAVE from CR4, the XSAVE
 *   size from XCR0), and refuses (EPERM) answers that advertise XSAVE
 *   features the process has no permission for (AMX in leaf 0xd): so
 *   hv_vm_create() asks for it (ARCH_REQ_XCOMP_GUEST_PERM, before any vCPU
 *   exists, as KVM requires).
 * - RDMSR/WRMSR exit (RCX, EDX:EAX, RIP at the instruction, length 2) for
 *   every MSR but those enabled with hv_vcpu_enable_native_msr(): see msr.c
 *   (KVM's filter is per VM, so a native MSR is native on every vCPU; it
 *   works on this PVM host; applied before the next entry, once for a
 *   batch of enables, as setting it costs an SRCU grace period). x2APIC
 *   MSRs (0x800-0x8ff) cannot be filtered by KVM: with no in-kernel LAPIC
 *   they exit as unknown MSRs. The pending
 *   access is completed and discarded with immediate_exit.
 * - HLT: KVM_EXIT_HLT comes after KVM stepped over it; RIP is put back on the
 *   HLT (instruction length 1).
 * - Triple fault: KVM_EXIT_SHUTDOWN -> VMX_REASON_TRIPLE_FAULT.
 *
 * TSC
 * - hv_tsc_clock() is the host's RDTSC. hv_vcpu_set_tsc_relative() (guest TSC
 *   = hv_tsc_clock() + offset) writes KVM's per-vCPU TSC offset attribute;
 *   hv_vm_sync_tsc() turns the value into an offset from the host's TSC at
 *   the call and each owner applies it at its next entry. hv_vm_create()
 *   tries the attribute on a throw-away KVM VM: this PVM host accepts the
 *   write and drops it (the guest's RDTSC is not trapped, it reads the host's
 *   TSC; IA32_TSC writes are dropped too), so there both calls return
 *   HV_UNSUPPORTED rather than succeed without effect, except
 *   hv_vcpu_set_tsc_relative(vcpu, 0), which is what the guest reads anyway.
 *
 * Registers travel through kvm_run (KVM_CAP_SYNC_REGS) when KVM offers it, so
 * an exit costs KVM_RUN, the discarding KVM_RUN where something is pending,
 * and KVM_TRANSLATE of the code page where the instruction must be decoded.
 * These rules were measured on this host (PVM); a KVM that reports OUT before
 * executing it (RIP at the instruction and a pending completion that skips
 * it) would need exit_io() changed.
 *
 * HVF_HOST_TRACE=1 in the environment prints each run, exit and CPUID answer
 * on stderr.
 *
 * hv_vcpu_read/write_fpstate: the standard XSAVE layout (KVM_GET_XSAVE2 /
 * KVM_SET_XSAVE); a buffer larger than KVM's image reads the components KVM
 * does not hold as zeros (XSTATE_BV clear), and a write claiming them is
 * refused (HV_BAD_ARGUMENT). Not provided: address spaces other than the
 * default, shadow VMCS, the macOS 12 APIC acceleration, hv_vcpu_run_until
 * with a deadline (HV_UNSUPPORTED). */
#ifndef HVF_HOST_H
#define HVF_HOST_H
#include <Hypervisor/Hypervisor.h>
#endif
