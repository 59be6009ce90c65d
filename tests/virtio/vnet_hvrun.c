/* The virtio-net test guest (vnet.c) for hvrun, where no host writes its
 * command: it writes its own (builtin_cmd) and runs traffic until the VM
 * ends (tests/test_virtio_net_handover.c). */
#define VN_BUILTIN_CMD 1
#include "vnet.c"
