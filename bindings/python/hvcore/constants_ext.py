"""Constants of device.h, platform.h, loader.h, virtio.h, topology.h,
tsc.h and migration.h (re-exported by :mod:`hvcore.constants`): C names
and enums."""

import enum

# -- hvcore/device.h --
HVC_DEVICE_OPS_VERSION = 2
HVC_DEVICE_MAX_RANGES = 16  # "at most 16" (hvc_device_options::nr_ranges)
HVC_FD_READABLE = 1 << 0
HVC_FD_WRITABLE = 1 << 1
HVC_DOORBELL_DATAMATCH = 1 << 0
HVC_GRANT_ALL_GPA = 0
HVC_GRANT_ALL_LENGTH = (1 << 64) - 1  # UINT64_MAX: with GPA 0, all RAM
HVC_DEVICE_MAX_GRANTS = 16

# -- hvcore/platform.h --
HVC_ACPI_IRQ_LEVEL = 1 << 0
HVC_ACPI_IRQ_ACTIVE_LOW = 1 << 1
HVC_ACPI_NO_IRQ = 0xFFFFFFFF  # hvc_acpi_device::irq "UINT32_MAX for none"

# -- hvcore/loader.h --
HVC_KERNEL_AUTO = 0
HVC_KERNEL_ELF = 1
HVC_KERNEL_BZIMAGE = 2
HVC_KERNEL_RAW = 3
HVC_BOOT_FLAT = 0
HVC_BOOT_PVH = 1
HVC_BOOT_LINUX64 = 2

# -- hvcore/virtio.h --
HVC_VIRTIO_MMIO_SIZE = 0x200
HVC_VIRTIO_BLK_READONLY = 1 << 0
HVC_VIRTIO_NET_NO_OFFLOADS = 1 << 0
HVC_VIRTIO_NET_DETACHED = 1 << 1

# -- hvcore/topology.h --
HVC_PLACEMENT_NEAREST = 1 << 0
HVC_PLACEMENT_NO_AFFINITY = 1 << 1
HVC_NUMA_DISTANCE_LOCAL = 10
HVC_NUMA_DISTANCE_REMOTE = 20

# -- hvcore/tsc.h --
HVC_TSC_FRAC_BITS_VMX = 48
HVC_TSC_FRAC_BITS_SVM = 32
HVC_TSC_DEFAULT_TOLERANCE_PPM = 250
HVC_TSC_MAX_TOLERANCE_PPM = 10000
HVC_TSC_HOST_INVARIANT = 1 << 0
HVC_TSC_HOST_STABLE = 1 << 1
HVC_TSC_SCALING = 1 << 2
HVC_TSC_OFFSET = 1 << 3
HVC_TSC_VM_FREQUENCY = 1 << 4
HVC_TSC_CLOCK_REALTIME = 1 << 5
HVC_TSC_CLOCK_HOST_TSC = 1 << 6
HVC_TSC_PIT_CATCHUP = 1 << 7
HVC_TSC_LAPIC_CATCHUP = 1 << 8
HVC_TSC_PINNED = 1 << 0
HVC_TSC_SCALED = 1 << 1
HVC_TSC_THIS_VCPU = 1 << 0
HVC_TSC_PAUSE_ADVANCE = 0
HVC_TSC_PAUSE_FREEZE = 1
HVC_TSC_CATCHUP_PIT = 1 << 0
HVC_TSC_CATCHUP_LAPIC = 1 << 1
HVC_TSC_STATE_MAGIC = 0x53545648
HVC_TSC_STATE_VERSION = 1
HVC_TSC_STATE_PINNED = 1 << 0
HVC_TSC_STATE_SCALED = 1 << 1
HVC_TSC_STATE_KERNEL_SAMPLE = 1 << 2
HVC_TSC_STATE_CLOCK_STABLE = 1 << 3
HVC_TSC_VCPU_ADJUST = 1 << 0
HVC_TSC_VCPU_DEADLINE = 1 << 1

# -- hvcore/migration.h --
HVC_STREAM_FORMAT_MAJOR = 2
HVC_STREAM_FORMAT_MINOR = 0
HVC_STREAM_KEY_SIZE = 32
HVC_STREAM_USER_DATA_MAX = 1 << 20
HVC_SAVE_ALIGN_PAGES = 1 << 0
HVC_RESTORE_MMAP = 1 << 0
HVC_RESTORE_VERIFY_MEMORY = 1 << 1
HVC_MIGRATE_TLS_VERIFY_PEER = 1 << 0
HVC_MIGRATE_AUTO_CONVERGE = 1 << 0
HVC_MIGRATE_POSTCOPY = 1 << 1
HVC_MIGRATE_LEAVE_PAUSED = 1 << 8
HVC_POSTCOPY_NONE = 0
HVC_POSTCOPY_RUNNING = 1
HVC_POSTCOPY_COMPLETE = 2
HVC_POSTCOPY_FAILED = 3

# -- hvcore/handover.h --
HVC_HANDOVER_MAGIC = b"HVCHOFD1"
HVC_HANDOVER_MAX_FDS = 250


class FdEvents(enum.IntFlag):
    """Events of ``vm.watch_fd()`` (``hvc_fd_events``)."""

    READABLE = HVC_FD_READABLE
    WRITABLE = HVC_FD_WRITABLE


class DoorbellFlags(enum.IntFlag):
    """``hvc_doorbell_flags``."""

    DATAMATCH = HVC_DOORBELL_DATAMATCH


class AcpiFlags(enum.IntFlag):
    """``hvc_acpi_device_flags``."""

    IRQ_LEVEL = HVC_ACPI_IRQ_LEVEL
    IRQ_ACTIVE_LOW = HVC_ACPI_IRQ_ACTIVE_LOW


class KernelFormat(enum.IntEnum):
    """Kernel image formats (``hvc_kernel_format``)."""

    AUTO = HVC_KERNEL_AUTO
    ELF = HVC_KERNEL_ELF
    BZIMAGE = HVC_KERNEL_BZIMAGE
    RAW = HVC_KERNEL_RAW


class BootProtocol(enum.IntEnum):
    """How the boot vCPU starts (``hvc_boot_protocol``)."""

    FLAT = HVC_BOOT_FLAT
    PVH = HVC_BOOT_PVH
    LINUX64 = HVC_BOOT_LINUX64


class VirtioBlkFlags(enum.IntFlag):
    """``hvc_virtio_blk_flags``."""

    READONLY = HVC_VIRTIO_BLK_READONLY


class VirtioNetFlags(enum.IntFlag):
    """``hvc_virtio_net_flags``."""

    NO_OFFLOADS = HVC_VIRTIO_NET_NO_OFFLOADS
    DETACHED = HVC_VIRTIO_NET_DETACHED


class PlacementFlags(enum.IntFlag):
    """How ``Topology.place()`` chose its node (``hvc_placement_flags``)."""

    NEAREST = HVC_PLACEMENT_NEAREST
    NO_AFFINITY = HVC_PLACEMENT_NO_AFFINITY


class TscInfoFlags(enum.IntFlag):
    """``hvc_tsc_info_flags``."""

    HOST_INVARIANT = HVC_TSC_HOST_INVARIANT
    HOST_STABLE = HVC_TSC_HOST_STABLE
    SCALING = HVC_TSC_SCALING
    OFFSET = HVC_TSC_OFFSET
    VM_FREQUENCY = HVC_TSC_VM_FREQUENCY
    CLOCK_REALTIME = HVC_TSC_CLOCK_REALTIME
    CLOCK_HOST_TSC = HVC_TSC_CLOCK_HOST_TSC
    PIT_CATCHUP = HVC_TSC_PIT_CATCHUP
    LAPIC_CATCHUP = HVC_TSC_LAPIC_CATCHUP


class TscConfigFlags(enum.IntFlag):
    """``hvc_tsc_config_flags``."""

    PINNED = HVC_TSC_PINNED
    SCALED = HVC_TSC_SCALED


class TscWriteFlags(enum.IntFlag):
    """``hvc_tsc_write_flags``."""

    THIS_VCPU = HVC_TSC_THIS_VCPU


class TscPausePolicy(enum.IntEnum):
    """``hvc_tsc_pause_policy``."""

    ADVANCE = HVC_TSC_PAUSE_ADVANCE
    FREEZE = HVC_TSC_PAUSE_FREEZE


class TscCatchup(enum.IntFlag):
    """``hvc_tsc_catchup``."""

    PIT = HVC_TSC_CATCHUP_PIT
    LAPIC = HVC_TSC_CATCHUP_LAPIC


class SaveFlags(enum.IntFlag):
    """``hvc_save_flags``."""

    ALIGN_PAGES = HVC_SAVE_ALIGN_PAGES


class RestoreFlags(enum.IntFlag):
    """``hvc_restore_flags``."""

    MMAP = HVC_RESTORE_MMAP
    VERIFY_MEMORY = HVC_RESTORE_VERIFY_MEMORY


class MigrateFlags(enum.IntFlag):
    """``hvc_migrate_flags``."""

    AUTO_CONVERGE = HVC_MIGRATE_AUTO_CONVERGE
    POSTCOPY = HVC_MIGRATE_POSTCOPY
    LEAVE_PAUSED = HVC_MIGRATE_LEAVE_PAUSED


class MigrateTlsFlags(enum.IntFlag):
    """``hvc_migrate_tls_flags``."""

    VERIFY_PEER = HVC_MIGRATE_TLS_VERIFY_PEER
