/* hvc_acpi_build(): the ACPI tables an SMP guest needs to find its CPUs,
 * interrupt controllers and devices, in the shape Firecracker and Cloud
 * Hypervisor use (hardware-reduced ACPI, no firmware behind it).
 *
 * Layout, from hvc_acpi_options.address (default 0xe0000, inside the legacy
 * BIOS area that the loader's e820 map reserves; 0x20000 bytes by default):
 *
 *   +0    RSDP  ACPI 2.0+ (revision 2, 36 bytes), both checksums, the XSDT
 *               address; RsdtAddress 0 (no RSDT: every OS that understands
 *               the rest reads the XSDT). First and 16-byte aligned, so
 *               Linux's legacy scan of 0xe0000-0xfffff finds it too.
 *   +40   XSDT  two entries: FADT, MADT.
 *   +96   FADT  revision 6.3 (276 bytes):
 *               - HW_REDUCED_ACPI: no SCI, PM1/GPE blocks, PM timer or
 *                 FACS, so all those fields are 0; Linux then also skips
 *                 the PIT and 8259 set-up and uses the local APIC timer.
 *               - RESET_REG = system I/O port 0x64, RESET_VALUE 0xfe
 *                 (RESET_REG_SUP): the reset line of hvc_i8042_create(),
 *                 which Linux's first reboot method then pulls. Without
 *                 that device the write is an unclaimed port exit and
 *                 Linux falls back to its other methods.
 *               - IAPC_BOOT_ARCH = LEGACY_DEVICES | VGA_NOT_PRESENT. The
 *                 UART and RTC are ISA-style devices (LEGACY_DEVICES);
 *                 there is no VGA. The 8042 bit stays clear: our i8042 is
 *                 only a reset line with no keyboard, and a guest that was
 *                 told it exists waits out its self-test timeouts.
 *                 CMOS_RTC_NOT_PRESENT stays clear: hvc_cmos_create()
 *                 provides one at 0x70, and CENTURY names its century
 *                 register 0x32.
 *               - No MSI_NOT_SUPPORTED: the library describes no PCI, and
 *                 a VMM that adds its own should not lose MSI.
 *               - X_DSDT only (the 32-bit DSDT field is 0, so ACPICA has
 *                 no pair of pointers to reconcile); hypervisor vendor
 *                 identity "HVCORE  ".
 *   +376  MADT  revision 5: local APIC address 0xfee00000, PCAT_COMPAT (the
 *               in-kernel irqchip has the 8259 pair); one Processor Local
 *               APIC per CPU, UID = APIC id = i, enabled; the IOAPIC with
 *               id nr_cpus (so it never equals a CPU's APIC id), address
 *               0xfec00000, GSI base 0 (24 pins); an Interrupt Source
 *               Override ISA IRQ 0 -> GSI 2 as on a PC; a Local APIC NMI
 *               on LINT1 of every CPU. No SCI override: there is no SCI.
 *   then  DSDT  revision 2 (64-bit integers): Scope (\_SB) with a Device
 *               per hvc_acpi_device (see dsdt_device()).
 *
 * Every table after the RSDP is 8-byte aligned; only the DSDT's offset
 * depends on nr_cpus. All tables carry OEMID "HVCORE", OEM table id
 * "HVCORE  ", OEM revision 1, creator "HVCR" and the library version.
 *
 * No \_S5: in hardware-reduced ACPI, poweroff needs SLEEP_CONTROL_REG and
 * SLEEP_STATUS_REG, which the library has no device for, and Linux ignores
 * \_S5 without them. A guest's poweroff then ends in a halt; the VMM can
 * give it the debug-exit port instead.
 *
 * The tables are built in a host buffer and written with one hvc_vm_write()
 * after every check has passed, so guest memory is untouched on failure. */
#include "../core/internal.h"

#include "acpi_aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ACPI_DEFAULT_ADDRESS 0xe0000u
#define ACPI_DEFAULT_LENGTH 0x20000u
/* The xAPIC MADT entry has an 8-bit APIC id and 0xff is the broadcast id,
 * so CPUs 0..254; more would need x2APIC entries. */
#define ACPI_MAX_CPUS 255u
/* Device names are at most "D" and three hex digits. */
#define ACPI_MAX_DEVICES 4096u
/* The in-kernel IOAPIC's pins (hvc_vm_set_irq()). */
#define ACPI_NR_GSIS 24u

#define LAPIC_ADDRESS 0xfee00000u
#define IOAPIC_ADDRESS 0xfec00000u

#define OEM_ID "HVCORE"
#define OEM_TABLE_ID "HVCORE  "
#define OEM_REVISION 1
#define CREATOR_ID "HVCR"

/* Table header (ACPI 5.2.6). */
#define HDR_SIZE 36
#define HDR_LENGTH 4
#define HDR_REVISION 8
#define HDR_CHECKSUM 9

/* RSDP (5.2.5.3). */
#define RSDP_SIZE 36
#define RSDP_CHECKSUM 8
#define RSDP_OEM_ID 9
#define RSDP_REVISION 15
#define RSDP_LENGTH 20
#define RSDP_XSDT 24
#define RSDP_EXT_CHECKSUM 32
#define RSDP_V1_SIZE 20

/* FADT (5.2.9), revision 6 minor 3. */
#define FADT_SIZE 276
#define FADT_REVISION 6
#define FADT_MINOR_REVISION 3
#define FADT_CENTURY 108
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR_VERSION 131
#define FADT_X_DSDT 140
#define FADT_HYPERVISOR_ID 268

#define IAPC_LEGACY_DEVICES (1u << 0)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)

#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET 0xfe
#define CMOS_CENTURY_REG 0x32

/* MADT (5.2.12), revision 5 as in ACPI 6.3. */
#define MADT_REVISION 5
#define MADT_PCAT_COMPAT 1u
#define MADT_LAPIC 0
#define MADT_LAPIC_LEN 8
#define MADT_LAPIC_ENABLED 1u
#define MADT_IOAPIC 1
#define MADT_IOAPIC_LEN 12
#define MADT_ISO 2
#define MADT_ISO_LEN 10
#define MADT_LAPIC_NMI 4
#define MADT_LAPIC_NMI_LEN 6
#define MADT_ALL_CPUS 0xff

#define XSDT_REVISION 1
#define XSDT_ENTRIES 2
#define DSDT_REVISION 2

/* Offsets of the tables in the host buffer. */
struct layout {
    size_t xsdt, fadt, madt, dsdt;
};

static uint8_t checksum(const uint8_t *p, size_t n)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)-sum;
}

/* Fills in a header whose table is complete, checksum last. */
static void finish_table(uint8_t *t, const char sig[4], size_t length,
                         uint8_t revision)
{
    memcpy(t, sig, 4);
    hvi_le(t + HDR_LENGTH, length, 4);
    t[HDR_REVISION] = revision;
    t[HDR_CHECKSUM] = 0;
    memcpy(t + 10, OEM_ID, 6);
    memcpy(t + 16, OEM_TABLE_ID, 8);
    hvi_le(t + 24, OEM_REVISION, 4);
    memcpy(t + 28, CREATOR_ID, 4);
    hvi_le(t + 32, HVC_VERSION_NUMBER, 4);
    t[HDR_CHECKSUM] = checksum(t, length);
}

static void write_rsdp(uint8_t *p, uint64_t xsdt)
{
    memcpy(p, "RSD PTR ", 8);
    memcpy(p + RSDP_OEM_ID, OEM_ID, 6);
    p[RSDP_REVISION] = 2;
    hvi_le(p + RSDP_LENGTH, RSDP_SIZE, 4);
    hvi_le(p + RSDP_XSDT, xsdt, 8);
    /* The ACPI 1.0 part first: the extended checksum covers it. */
    p[RSDP_CHECKSUM] = checksum(p, RSDP_V1_SIZE);
    p[RSDP_EXT_CHECKSUM] = checksum(p, RSDP_SIZE);
}

static void write_xsdt(uint8_t *t, uint64_t fadt, uint64_t madt)
{
    hvi_le(t + HDR_SIZE, fadt, 8);
    hvi_le(t + HDR_SIZE + 8, madt, 8);
    finish_table(t, "XSDT", HDR_SIZE + 8 * XSDT_ENTRIES, XSDT_REVISION);
}

static void write_fadt(uint8_t *t, uint64_t dsdt)
{
    t[FADT_CENTURY] = CMOS_CENTURY_REG;
    hvi_le(t + FADT_IAPC_BOOT_ARCH, IAPC_LEGACY_DEVICES | IAPC_VGA_NOT_PRESENT,
           2);
    hvi_le(t + FADT_FLAGS, FADT_F_HW_REDUCED_ACPI | FADT_F_RESET_REG_SUP, 4);
    uint8_t *gas = t + FADT_RESET_REG; /* Generic Address Structure */
    gas[0] = GAS_SYSTEM_IO;
    gas[1] = 8; /* bit width: the spec requires 8 */
    gas[2] = 0; /* bit offset */
    gas[3] = GAS_ACCESS_BYTE;
    hvi_le(gas + 4, I8042_COMMAND_PORT, 8);
    t[FADT_RESET_VALUE] = I8042_CMD_RESET;
    t[FADT_MINOR_VERSION] = FADT_MINOR_REVISION;
    hvi_le(t + FADT_X_DSDT, dsdt, 8);
    memcpy(t + FADT_HYPERVISOR_ID, "HVCORE  ", 8);
    finish_table(t, "FACP", FADT_SIZE, FADT_REVISION);
}

static size_t madt_size(uint32_t nr_cpus)
{
    return HDR_SIZE + 8 + (size_t)nr_cpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN +
           MADT_ISO_LEN + MADT_LAPIC_NMI_LEN;
}

static void write_madt(uint8_t *t, uint32_t nr_cpus)
{
    hvi_le(t + HDR_SIZE, LAPIC_ADDRESS, 4);
    hvi_le(t + HDR_SIZE + 4, MADT_PCAT_COMPAT, 4);
    uint8_t *e = t + HDR_SIZE + 8;
    for (uint32_t i = 0; i < nr_cpus; i++, e += MADT_LAPIC_LEN) {
        e[0] = MADT_LAPIC;
        e[1] = MADT_LAPIC_LEN;
        e[2] = (uint8_t)i; /* ACPI processor UID */
        e[3] = (uint8_t)i; /* APIC id: what KVM gives vCPU i */
        hvi_le(e + 4, MADT_LAPIC_ENABLED, 4);
    }
    e[0] = MADT_IOAPIC;
    e[1] = MADT_IOAPIC_LEN;
    e[2] = (uint8_t)nr_cpus; /* id; e[3] reserved */
    hvi_le(e + 4, IOAPIC_ADDRESS, 4);
    hvi_le(e + 8, 0, 4); /* GSI base */
    e += MADT_IOAPIC_LEN;
    /* The PIT's IRQ 0 is wired to IOAPIC pin 2 on PCs and in KVM's default
     * routing; flags 0 = conforms to the ISA bus (edge, active high). */
    e[0] = MADT_ISO;
    e[1] = MADT_ISO_LEN;
    e[2] = 0; /* bus: ISA */
    e[3] = 0; /* source IRQ */
    hvi_le(e + 4, 2, 4);
    hvi_le(e + 8, 0, 2);
    e += MADT_ISO_LEN;
    e[0] = MADT_LAPIC_NMI;
    e[1] = MADT_LAPIC_NMI_LEN;
    e[2] = MADT_ALL_CPUS;
    hvi_le(e + 3, 0, 2); /* flags: conforming */
    e[5] = 1;            /* LINT1, where PCs wire NMI */
    finish_table(t, "APIC", madt_size(nr_cpus), MADT_REVISION);
}

/* A 4-character AML name for device @p index: "COMn" for the first nine
 * 16550s (PNP0501), "VRxx" for the first 256 virtio-mmio devices
 * (LNRO0005), "Dxxx" (the index in hex) otherwise. The first letters
 * differ between the kinds, so names never collide. */
static void device_name(const hvc_acpi_device *d, uint32_t index,
                        unsigned *uarts, unsigned *virtio, char out[5])
{
    static const char hex[] = "0123456789ABCDEF";
    if (strcmp(d->hid, "PNP0501") == 0 && *uarts < 9) {
        memcpy(out, "COM", 3);
        out[3] = (char)('1' + (*uarts)++);
    } else if (strcmp(d->hid, "LNRO0005") == 0 && *virtio < 256) {
        memcpy(out, "VR", 2);
        out[2] = hex[*virtio >> 4];
        out[3] = hex[(*virtio)++ & 15];
    } else {
        out[0] = 'D';
        out[1] = hex[(index >> 8) & 15];
        out[2] = hex[(index >> 4) & 15];
        out[3] = hex[index & 15];
    }
    out[4] = '\0';
}

/* Device (name) {
 *     Name (_HID, EisaId ("PNP0501"))      or a string such as "LNRO0005"
 *     Name (_UID, index)                   unique across the DSDT
 *     Name (_CRS, ResourceTemplate () {
 *         IO (Decode16, base, base, 1, length)    ports, or WordIO past 255
 *         Memory32Fixed (ReadWrite, base, length) MMIO, or QWordMemory above
 *                                                 4 GiB
 *         Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {irq}
 *     })
 * }
 * Edge/active-high is how ISA lines behave and how hvc_vm_set_irq() users
 * pulse them; the guest programs the IOAPIC pin from this descriptor. */
static void dsdt_device(struct hvi_bytes *b, const hvc_acpi_device *d,
                        uint32_t index, const char *name)
{
    size_t dev = hvi_aml_device(b, name);
    hvi_aml_name(b, "_HID");
    uint32_t eisa;
    if (hvi_aml_eisaid(d->hid, &eisa))
        hvi_aml_integer(b, eisa);
    else
        hvi_aml_string(b, d->hid);
    hvi_aml_name(b, "_UID");
    hvi_aml_integer(b, index);
    hvi_aml_name(b, "_CRS");
    size_t res = hvi_aml_resources(b);
    if (d->space == HVC_IO_PIO && d->length <= 0xff)
        hvi_aml_res_io(b, (uint16_t)d->base, (uint8_t)d->length);
    else if (d->space == HVC_IO_PIO)
        hvi_aml_res_word_io(b, (uint16_t)d->base, (uint16_t)d->length);
    else if (d->length <= UINT32_MAX &&
             d->base + (d->length - 1) <= UINT32_MAX) /* no wrap: checked */
        hvi_aml_res_mem32(b, (uint32_t)d->base, (uint32_t)d->length);
    else
        hvi_aml_res_mem64(b, d->base, d->length);
    if (d->irq != UINT32_MAX)
        hvi_aml_res_irq(b, d->irq, d->flags & HVC_ACPI_IRQ_LEVEL,
                        d->flags & HVC_ACPI_IRQ_ACTIVE_LOW);
    hvi_aml_resources_end(b, res);
    hvi_aml_end(b, dev);
}

static void build_dsdt(struct hvi_bytes *b, const hvc_acpi_options *o)
{
    size_t sb = hvi_aml_scope(b, "\\_SB_");
    unsigned uarts = 0, virtio = 0;
    for (uint32_t i = 0; i < o->nr_devices; i++) {
        char name[5];
        device_name(&o->devices[i], i, &uarts, &virtio, name);
        dsdt_device(b, &o->devices[i], i, name);
    }
    hvi_aml_end(b, sb);
}

/* Lays out and fills every table; the caller checks b->failed. */
static void build(struct hvi_bytes *b, const hvc_acpi_options *o)
{
    struct layout l;
    hvi_bytes_zero(b, RSDP_SIZE);
    hvi_bytes_align(b, 8);
    l.xsdt = hvi_bytes_zero(b, HDR_SIZE + 8 * XSDT_ENTRIES);
    hvi_bytes_align(b, 8);
    l.fadt = hvi_bytes_zero(b, FADT_SIZE);
    hvi_bytes_align(b, 8);
    l.madt = hvi_bytes_zero(b, madt_size(o->nr_cpus));
    hvi_bytes_align(b, 8);
    l.dsdt = hvi_bytes_zero(b, HDR_SIZE);
    build_dsdt(b, o);
    if (b->failed)
        return;
    /* Every offset is final now; fill in the pointers, and checksum each
     * table after the ones it points to are complete. */
    uint8_t *p = b->data;
    uint64_t at = o->address;
    finish_table(p + l.dsdt, "DSDT", b->len - l.dsdt, DSDT_REVISION);
    write_madt(p + l.madt, o->nr_cpus);
    write_fadt(p + l.fadt, at + l.dsdt);
    write_xsdt(p + l.xsdt, at + l.fadt, at + l.madt);
    write_rsdp(p, at + l.xsdt);
}

static int check_device(const hvc_acpi_device *d, uint32_t i)
{
    if (!d->hid)
        return hvi_error(-EINVAL, "hvc_acpi_options.devices[%u].hid is NULL",
                         i);
    size_t n = strnlen(d->hid, 9);
    if (n == 0 || n > 8)
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.devices[%u].hid \"%.8s%s\" must be "
                         "1 to 8 characters",
                         i, d->hid, n > 8 ? "..." : "");
    for (size_t k = 0; k < n; k++)
        if (d->hid[k] <= ' ' || d->hid[k] > '~')
            return hvi_error(-EINVAL,
                             "hvc_acpi_options.devices[%u].hid has character "
                             "0x%02x at %zu; an ACPI id is printable ASCII",
                             i, (unsigned char)d->hid[k], k);
    if (d->space != HVC_IO_PIO && d->space != HVC_IO_MMIO)
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.devices[%u].space %u is neither "
                         "HVC_IO_PIO nor HVC_IO_MMIO",
                         i, d->space);
    if (d->length == 0)
        return hvi_error(-EINVAL, "hvc_acpi_options.devices[%u].length is 0",
                         i);
    if (d->space == HVC_IO_PIO &&
        (d->base > 0xffff || d->length > 0x10000 - d->base))
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.devices[%u]: ports 0x%llx+0x%llx "
                         "go past port 0xffff",
                         i, (unsigned long long)d->base,
                         (unsigned long long)d->length);
    if (d->space == HVC_IO_MMIO && d->length - 1 > UINT64_MAX - d->base)
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.devices[%u]: MMIO 0x%llx+0x%llx "
                         "wraps around the address space",
                         i, (unsigned long long)d->base,
                         (unsigned long long)d->length);
    if (d->flags & ~(uint32_t)(HVC_ACPI_IRQ_LEVEL | HVC_ACPI_IRQ_ACTIVE_LOW))
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.devices[%u].flags 0x%x have unknown "
                         "bits",
                         i, d->flags);
    for (size_t k = 0; k < sizeof(d->reserved) / sizeof(d->reserved[0]); k++)
        if (d->reserved[k])
            return hvi_error(-EINVAL,
                             "hvc_acpi_options.devices[%u].reserved[%zu] is "
                             "not 0",
                             i, k);
    if (d->irq != UINT32_MAX && d->irq >= ACPI_NR_GSIS)
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.devices[%u].irq %u is not an "
                         "IOAPIC GSI (0..%u) nor UINT32_MAX for none",
                         i, d->irq, ACPI_NR_GSIS - 1);
    return 0;
}

/* Copies the caller's options, applies the defaults and checks them. */
static int normalise_options(const hvc_acpi_options *in, hvc_acpi_options *o)
{
    hvc_acpi_options defaults = HVC_ACPI_OPTIONS_INIT;
    *o = defaults;
    /* Every field up to reserved was in the first version of the struct. */
    int r = hvi_copy_options(o, sizeof(*o), in,
                             offsetof(hvc_acpi_options, reserved) +
                                 sizeof(in->reserved),
                             "hvc_acpi_options");
    if (r < 0)
        return r;
    if (o->reserved)
        return hvi_error(-EINVAL, "hvc_acpi_options.reserved is %u, not 0",
                         o->reserved);
    if (o->nr_cpus == 0 || o->nr_cpus > ACPI_MAX_CPUS)
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.nr_cpus %u is not in 1..%u: the "
                         "MADT's xAPIC entries carry an 8-bit APIC id, and "
                         "0xff is the broadcast id",
                         o->nr_cpus, ACPI_MAX_CPUS);
    if (o->address == 0)
        o->address = ACPI_DEFAULT_ADDRESS;
    if (o->length == 0)
        o->length = ACPI_DEFAULT_LENGTH;
    if (o->address & 15)
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.address 0x%llx is not 16-byte "
                         "aligned, as the RSDP must be",
                         (unsigned long long)o->address);
    if (o->length > UINT64_MAX - o->address || o->length > SIZE_MAX)
        return hvi_error(-EINVAL,
                         "hvc_acpi_options area 0x%llx+0x%llx wraps around "
                         "the address space",
                         (unsigned long long)o->address,
                         (unsigned long long)o->length);
    if (o->nr_devices > 0 && !o->devices)
        return hvi_error(-EINVAL,
                         "hvc_acpi_options.devices is NULL but nr_devices is "
                         "%u",
                         o->nr_devices);
    if (o->nr_devices > ACPI_MAX_DEVICES)
        return hvi_error(-EINVAL, "hvc_acpi_options.nr_devices %u exceeds %u",
                         o->nr_devices, ACPI_MAX_DEVICES);
    for (uint32_t i = 0; i < o->nr_devices; i++)
        if ((r = check_device(&o->devices[i], i)) < 0)
            return r;
    return 0;
}

int hvc_acpi_build(hvc_vm *vm, const hvc_acpi_options *opts, uint64_t *rsdp)
{
    if (!vm || !opts || !rsdp)
        return hvi_error(-EINVAL, "hvc_acpi_build: NULL %s",
                         !vm     ? "VM"
                         : !opts ? "options"
                                 : "rsdp");
    hvc_acpi_options o;
    int r = normalise_options(opts, &o);
    if (r < 0)
        return r;
    void *hva;
    r = hvc_vm_gpa_to_hva(vm, o.address, (size_t)o.length, &hva);
    if (r == -EFAULT)
        return hvi_error(r,
                         "ACPI area 0x%llx+0x%llx is not inside one guest "
                         "RAM region",
                         (unsigned long long)o.address,
                         (unsigned long long)o.length);
    if (r < 0)
        return r;
    struct hvi_bytes b = {0};
    build(&b, &o);
    if (b.failed) {
        hvi_bytes_free(&b);
        return hvi_error(-ENOMEM, "out of memory building ACPI tables");
    }
    if (b.len > o.length) {
        r = hvi_error(-ENOSPC,
                      "ACPI tables for %u CPUs and %u devices need %zu "
                      "bytes; hvc_acpi_options.length is %llu",
                      o.nr_cpus, o.nr_devices, b.len,
                      (unsigned long long)o.length);
        hvi_bytes_free(&b);
        return r;
    }
    r = hvc_vm_write(vm, o.address, b.data, b.len);
    hvi_bytes_free(&b);
    if (r < 0)
        return r;
    *rsdp = o.address;
    return 0;
}
