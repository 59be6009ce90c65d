/* device: how to write your own device model against <hvcore.h> alone.
 *
 * The "accumulator" claims two 32-bit ports: writing port 0x510 adds the
 * value to a sum, reading it returns the sum, reading 0x514 returns how
 * many values were added. It keeps its state behind one mutex (several
 * vCPUs may touch it at once), resets to zero, and saves and loads its
 * state so a snapshot can carry it. The example runs a guest that adds
 * 1..100, then moves the device's state into a second instance the way a
 * snapshot restore would.
 *
 *   device [GUEST.bin]    (default: the bundled guest)
 */
#include <hvcore.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PORT 0x510

struct accumulator {
    pthread_mutex_t lock;
    uint32_t sum;
    uint32_t count;
};

/* The state record's payload: a version, then the fields. Loading checks
 * every field before it changes anything. */
struct acc_state {
    uint32_t version;
    uint32_t sum;
    uint32_t count;
};

static int acc_read(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                    uint64_t offset, void *data, uint32_t size)
{
    struct accumulator *a = opaque;
    (void)vcpu, (void)range;
    uint32_t v = 0;
    pthread_mutex_lock(&a->lock);
    if (offset == 0)
        v = a->sum;
    else if (offset == 4)
        v = a->count;
    pthread_mutex_unlock(&a->lock);
    memcpy(data, &v, size < 4 ? size : 4);
    return 0;
}

static int acc_write(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                     uint64_t offset, const void *data, uint32_t size)
{
    struct accumulator *a = opaque;
    (void)vcpu, (void)range;
    uint32_t v = 0;
    memcpy(&v, data, size < 4 ? size : 4);
    if (offset == 0) {
        pthread_mutex_lock(&a->lock);
        a->sum += v;
        a->count++;
        pthread_mutex_unlock(&a->lock);
    }
    return 0;
}

static void acc_reset(void *opaque)
{
    struct accumulator *a = opaque;
    pthread_mutex_lock(&a->lock);
    a->sum = a->count = 0;
    pthread_mutex_unlock(&a->lock);
}

static void acc_destroy(void *opaque)
{
    struct accumulator *a = opaque;
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static int acc_save(void *opaque, void *buf, size_t capacity, size_t *length)
{
    struct accumulator *a = opaque;
    *length = sizeof(struct acc_state);
    if (capacity < *length)
        return -ENOSPC;
    pthread_mutex_lock(&a->lock);
    struct acc_state s = {1, a->sum, a->count};
    pthread_mutex_unlock(&a->lock);
    memcpy(buf, &s, sizeof(s));
    return 0;
}

static int acc_load(void *opaque, const void *buf, size_t length)
{
    struct accumulator *a = opaque;
    struct acc_state s;
    if (length != sizeof(s))
        return -EBADMSG;
    memcpy(&s, buf, sizeof(s));
    if (s.version != 1 || (s.count == 0 && s.sum != 0))
        return -EBADMSG; /* a state no guest could have produced */
    pthread_mutex_lock(&a->lock);
    a->sum = s.sum;
    a->count = s.count;
    pthread_mutex_unlock(&a->lock);
    return 0;
}

static const hvc_device_ops accumulator_ops = {
    .version = HVC_DEVICE_OPS_VERSION,
    .type = "accumulator",
    .read = acc_read,
    .write = acc_write,
    .reset = acc_reset,
    .destroy = acc_destroy,
    .save_state = acc_save,
    .load_state = acc_load,
};

static int add_accumulator(hvc_vm *vm, const char *name, hvc_device **out)
{
    struct accumulator *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    hvc_device_range range = {HVC_IO_PIO, 0, PORT, 8};
    hvc_device_options o = HVC_DEVICE_OPTIONS_INIT;
    o.nr_ranges = 1;
    o.ranges = &range;
    o.name = name;
    int r = hvc_vm_add_device(vm, &accumulator_ops, a, &o, out);
    if (r < 0)
        acc_destroy(a); /* on failure the device is still ours */
    return r;
}

static int console(void *opaque, hvc_vcpu *vcpu, uint64_t offset, void *data,
                   uint32_t size, int is_write)
{
    (void)opaque, (void)vcpu, (void)offset, (void)size;
    if (is_write)
        fputc(*(char *)data, stdout);
    return 0;
}

static int check(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "device: %s: %s\n", what, hvc_last_error());
        exit(1);
    }
    return r;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : DEVICE_GUEST;
    static unsigned char image[1 << 16];
    FILE *f = fopen(path, "rb");
    if (!f || argc > 2) {
        fprintf(stderr, "usage: device [GUEST.bin]\n");
        return 2;
    }
    size_t len = fread(image, 1, sizeof(image), f);
    fclose(f);

    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    hvc_device *dev;
    check(hvc_hypervisor_open(NULL, &hv), "open");
    check(hvc_vm_create(hv, NULL, &vm), "VM");
    hvc_memory_options ram = HVC_MEMORY_OPTIONS_INIT;
    ram.length = 2 << 20;
    check(hvc_vm_add_memory(vm, &ram, NULL), "RAM");
    check(hvc_vm_write(vm, 0x8000, image, len), "load");
    check(add_accumulator(vm, "acc0", &dev), "accumulator");
    check(hvc_debug_exit_create(vm, 0xf4, NULL), "debug-exit");
    check(hvc_vm_add_io_handler(vm, HVC_IO_PIO, 0xe9, 1, console, NULL),
          "console");
    check(hvc_vcpu_create(vm, 0, &vcpu), "vCPU");
    hvc_vcpu_mode_options m = HVC_VCPU_MODE_OPTIONS_INIT;
    m.mode = HVC_X86_MODE_LONG64;
    m.entry = 0x8000;
    m.stack = 0x8000;
    m.tables_addr = 0x100000;
    check(hvc_vcpu_set_mode(vcpu, &m), "mode");
    const hvc_exit *e;
    check(hvc_vcpu_run(vcpu, &e), "run");
    int status = e->reason == HVC_EXIT_POWEROFF ? (int)e->u.system.code : 1;

    /* Move the device's state to a second instance, as a restore would. */
    uint8_t rec[256];
    size_t rec_len;
    hvc_device *copy;
    check(hvc_device_save_state(dev, rec, sizeof(rec), &rec_len), "save");
    check(hvc_vm_remove_device(vm, dev), "remove");
    check(add_accumulator(vm, "acc1", &copy), "second accumulator");
    check(hvc_device_load_state(copy, rec, rec_len), "load");
    uint32_t sum;
    acc_read(hvc_device_opaque(copy), NULL, 0, 0, &sum, 4);
    printf("device: state record of %zu bytes moved to %s: sum %u\n", rec_len,
           hvc_device_name(copy), sum);
    if (sum != 5050)
        status = 1;
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    return status;
}
