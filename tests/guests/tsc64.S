/* TSC reader for tests/test_tsc.c and bench/tsc; rdi = the vCPU's index,
 * set by the host. Loops reading the TSC, RDTSC (after LFENCE) and RDTSCP
 * in turn (RDTSC only when CPUID 0x80000001 EDX bit 27 does not offer
 * RDTSCP; RDTSCP readings are counted at NTSCP), until the host sets the
 * qword at DATA_IN; then reports its index at PORT_DONE and goes on (the
 * host clears DATA_IN to run it again). While the qword at SAMPLE is set,
 * each reading is followed by an OUT of the vCPU's index to PORT_DATA, so
 * that the host can pair it with its own clock on the vCPU's thread.
 *
 * Each reading t is checked against
 *   - this vCPU's previous reading: t < prev counts in BACK;
 *   - the largest reading any vCPU published before this vCPU loaded it
 *     (GMAX; the load comes first, and both RDTSCP and LFENCE; RDTSC wait
 *     for it): t < GMAX counts in XERR, so a reading taken after another
 *     vCPU's is never smaller;
 * then published into GMAX (lock cmpxchg). The largest step between two
 * readings, with the pair, is kept in MAXD/MAXPREV/MAXCUR: across a pause
 * it is the jump the guest sees. Every value lives in memory, so a copy of
 * guest RAM and registers continues in another VM. */
#include "guest.h"
#define STOP DATA_IN
#define SAMPLE (DATA_IN + 8)
#define GMAX (DATA_OUT + 0x00)
#define XERR (DATA_OUT + 0x08)
#define XLAST (DATA_OUT + 0x10)
#define CPUS (DATA_OUT + 0x100)     /* + 0x40 * index: */
#define LAST 0x00
#define ITER 0x08
#define BACK 0x10
#define MAXD 0x18
#define MAXPREV 0x20
#define MAXCUR 0x28
#define BACKBY 0x30
#define NTSCP 0x38

    .code64
    .globl _start
_start:
    mov $0x80000001, %eax
    cpuid
    shr $27, %edx
    and $1, %edx
    mov %edx, %r11d         /* RDTSCP offered */
    mov %rdi, %rbx
    shl $6, %rbx
    add $CPUS, %rbx
    xor %r10d, %r10d
    mov LAST(%rbx), %r9     /* the previous reading, across restores */
    test %r9, %r9
    jnz next
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, %r9
next:
    mov GMAX, %r8
    test %r10, %r11
    jnz 1f
    lfence
    rdtsc
    jmp 2f
1:  rdtscp
    incq NTSCP(%rbx)
2:  shl $32, %rdx
    or %rdx, %rax
    cmp %r8, %rax
    jae 3f
    incq XERR
    mov %r8, %rcx
    sub %rax, %rcx
    mov %rcx, XLAST
3:  cmp %r9, %rax
    jae 4f
    incq BACK(%rbx)
    mov %r9, %rcx
    sub %rax, %rcx
    mov %rcx, BACKBY(%rbx)
    jmp 5f
4:  mov %rax, %rcx
    sub %r9, %rcx
    cmp MAXD(%rbx), %rcx
    jbe 5f
    mov %rcx, MAXD(%rbx)
    mov %r9, MAXPREV(%rbx)
    mov %rax, MAXCUR(%rbx)
5:  mov %rax, %r9
    mov %rax, LAST(%rbx)
    incq ITER(%rbx)
    inc %r10
    cmpq $0, SAMPLE
    je 8f
    mov %edi, %eax
    out %eax, $PORT_DATA
8:
    mov %r9, %rcx
6:  mov GMAX, %rax
    cmp %rax, %rcx
    jbe 7f
    lock cmpxchg %rcx, GMAX
    jne 6b
7:  cmpq $0, STOP
    je next
    mov %edi, %eax
    out %al, $PORT_DONE
    jmp next
