"""Constants of device.h, platform.h, loader.h, virtio.h, topology.h,
tsc.h and migration.h (re-exported by :mod:`hvcore.constants`): C names
and enums."""

import enum

# -- hvcore/device.h --
HV_DEVICE_OPS_VERSION = 1
HV_DEVICE_MAX_RANGES = 16  # "at most 16" (hv_device_options::nr_ranges)
HV_FD_READABLE = 1 << 0
HV_FD_WRITABLE = 1 << 1
HV_DOORBELL_DATAMATCH = 1 << 0

# -- hvcore/platform.h --
HV_ACPI_IRQ_LEVEL = 1 << 0
HV_ACPI_IRQ_ACTIVE_LOW = 1 << 1
HV_ACPI_NO_IRQ = 0xFFFFFFFF  # hv_acpi_device::irq "UINT32_MAX for none"

# -- hvcore/loader.h --
HV_KERNEL_AUTO = 0
HV_KERNEL_ELF = 1
HV_KERNEL_BZIMAGE = 2
HV_KERNEL_RAW = 3
HV_BOOT_FLAT = 0
HV_BOOT_PVH = 1
HV_BOOT_LINUX64 = 2

# -- hvcore/virtio.h --
HV_VIRTIO_MMIO_SIZE = 0x200
HV_VIRTIO_BLK_READONLY = 1 << 0

# -- hvcore/topology.h --
HV_PLACEMENT_NEAREST = 1 << 0
HV_PLACEMENT_NO_AFFINITY = 1 << 1
HV_NUMA_DISTANCE_LOCAL = 10
HV_NUMA_DISTANCE_REMOTE = 20

# -- hvcore/tsc.h --
HV_TSC_FRAC_BITS_VMX = 48
HV_TSC_FRAC_BITS_SVM = 32
HV_TSC_DEFAULT_TOLERANCE_PPM = 250
HV_TSC_MAX_TOLERANCE_PPM = 10000
HV_TSC_HOST_INVARIANT = 1 << 0
HV_TSC_HOST_STABLE = 1 << 1
HV_TSC_SCALING = 1 << 2
HV_TSC_OFFSET = 1 << 3
HV_TSC_VM_FREQUENCY = 1 << 4
HV_TSC_CLOCK_REALTIME = 1 << 5
HV_TSC_CLOCK_HOST_TSC = 1 << 6
HV_TSC_PIT_CATCHUP = 1 << 7
HV_TSC_LAPIC_CATCHUP = 1 << 8
HV_TSC_PINNED = 1 << 0
HV_TSC_SCALED = 1 << 1
HV_TSC_THIS_VCPU = 1 << 0
HV_TSC_PAUSE_ADVANCE = 0
HV_TSC_PAUSE_FREEZE = 1
HV_TSC_CATCHUP_PIT = 1 << 0
HV_TSC_CATCHUP_LAPIC = 1 << 1
HV_TSC_STATE_MAGIC = 0x53545648
HV_TSC_STATE_VERSION = 1
HV_TSC_STATE_PINNED = 1 << 0
HV_TSC_STATE_SCALED = 1 << 1
HV_TSC_STATE_KERNEL_SAMPLE = 1 << 2
HV_TSC_STATE_CLOCK_STABLE = 1 << 3
HV_TSC_VCPU_ADJUST = 1 << 0
HV_TSC_VCPU_DEADLINE = 1 << 1

# -- hvcore/migration.h --
HV_STREAM_FORMAT_MAJOR = 1
HV_STREAM_FORMAT_MINOR = 0
HV_STREAM_KEY_SIZE = 32
HV_STREAM_USER_DATA_MAX = 1 << 20
HV_SAVE_ALIGN_PAGES = 1 << 0
HV_RESTORE_MMAP = 1 << 0
HV_RESTORE_VERIFY_MEMORY = 1 << 1


class FdEvents(enum.IntFlag):
    """Events of ``vm.watch_fd()`` (``hv_fd_events``)."""

    READABLE = HV_FD_READABLE
    WRITABLE = HV_FD_WRITABLE


class DoorbellFlags(enum.IntFlag):
    """``hv_doorbell_flags``."""

    DATAMATCH = HV_DOORBELL_DATAMATCH


class AcpiFlags(enum.IntFlag):
    """``hv_acpi_device_flags``."""

    IRQ_LEVEL = HV_ACPI_IRQ_LEVEL
    IRQ_ACTIVE_LOW = HV_ACPI_IRQ_ACTIVE_LOW


class KernelFormat(enum.IntEnum):
    """Kernel image formats (``hv_kernel_format``)."""

    AUTO = HV_KERNEL_AUTO
    ELF = HV_KERNEL_ELF
    BZIMAGE = HV_KERNEL_BZIMAGE
    RAW = HV_KERNEL_RAW


class BootProtocol(enum.IntEnum):
    """How the boot vCPU starts (``hv_boot_protocol``)."""

    FLAT = HV_BOOT_FLAT
    PVH = HV_BOOT_PVH
    LINUX64 = HV_BOOT_LINUX64


class VirtioBlkFlags(enum.IntFlag):
    """``hv_virtio_blk_flags``."""

    READONLY = HV_VIRTIO_BLK_READONLY


class PlacementFlags(enum.IntFlag):
    """How ``Topology.place()`` chose its node (``hv_placement_flags``)."""

    NEAREST = HV_PLACEMENT_NEAREST
    NO_AFFINITY = HV_PLACEMENT_NO_AFFINITY


class TscInfoFlags(enum.IntFlag):
    """``hv_tsc_info_flags``."""

    HOST_INVARIANT = HV_TSC_HOST_INVARIANT
    HOST_STABLE = HV_TSC_HOST_STABLE
    SCALING = HV_TSC_SCALING
    OFFSET = HV_TSC_OFFSET
    VM_FREQUENCY = HV_TSC_VM_FREQUENCY
    CLOCK_REALTIME = HV_TSC_CLOCK_REALTIME
    CLOCK_HOST_TSC = HV_TSC_CLOCK_HOST_TSC
    PIT_CATCHUP = HV_TSC_PIT_CATCHUP
    LAPIC_CATCHUP = HV_TSC_LAPIC_CATCHUP


class TscConfigFlags(enum.IntFlag):
    """``hv_tsc_config_flags``."""

    PINNED = HV_TSC_PINNED
    SCALED = HV_TSC_SCALED


class TscWriteFlags(enum.IntFlag):
    """``hv_tsc_write_flags``."""

    THIS_VCPU = HV_TSC_THIS_VCPU


class TscPausePolicy(enum.IntEnum):
    """``hv_tsc_pause_policy``."""

    ADVANCE = HV_TSC_PAUSE_ADVANCE
    FREEZE = HV_TSC_PAUSE_FREEZE


class TscCatchup(enum.IntFlag):
    """``hv_tsc_catchup``."""

    PIT = HV_TSC_CATCHUP_PIT
    LAPIC = HV_TSC_CATCHUP_LAPIC


class SaveFlags(enum.IntFlag):
    """``hv_save_flags``."""

    ALIGN_PAGES = HV_SAVE_ALIGN_PAGES


class RestoreFlags(enum.IntFlag):
    """``hv_restore_flags``."""

    MMAP = HV_RESTORE_MMAP
    VERIFY_MEMORY = HV_RESTORE_VERIFY_MEMORY
