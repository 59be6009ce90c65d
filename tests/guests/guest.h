/* Conventions shared by the test guests and the tests (tests/hvtest.h
 * repeats the numbers for the host side). Every guest is linked at
 * GUEST_LOAD and ends by writing a status byte to PORT_DONE, which no handler
 * claims, so hvc_vcpu_run() returns there. */
#define GUEST_LOAD 0x8000
#define GUEST_STACK 0x7000
#define DATA_IN 0x20000  /* the host writes inputs here */
#define DATA_OUT 0x30000 /* the guest writes results here */
#define PORT_DONE 0xf4
#define PORT_DATA 0x10
#define PORT_STRING 0x18
#define PORT_UNCLAIMED_OUT 0x99
#define PORT_UNCLAIMED_IN 0x98
#define PORT_SMP 0x20
#define MMIO_HANDLED 0xd0000000
#define MMIO_UNCLAIMED 0xe0000000

#define DONE(status)                                                           \
    mov $status, %al;                                                          \
    out %al, $PORT_DONE
