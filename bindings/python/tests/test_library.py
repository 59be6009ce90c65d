"""Loading, versions, struct layouts, constants and declarations.

None of these need KVM.
"""

import ctypes
import errno
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest

import hvcore
from hvcore import _lib, _structs, _structs_ext, _structs_live, constants
from conftest import source_file


def test_loaded_library_is_a_compatible_1x():
    major, minor, _ = hvcore.library_version_info
    assert major == 1 and minor >= 0
    assert hvcore.library_version == "%d.%d.%d" % hvcore.library_version_info
    assert os.path.isfile(hvcore.library_path)
    assert hvcore.library_origin
    assert _lib.lib.hvc_version() == (major * 10000 + minor * 100
                                     + hvcore.library_version_info[2])


def test_fixed_struct_layouts_match_the_abi():
    assert ctypes.sizeof(_structs.HvExit) == 264
    assert ctypes.sizeof(_structs.X86Segment) == 32
    assert _structs.HvExit.u.offset == 16
    assert _structs.ExitIo.count.offset == 4
    assert _structs.ExitIo.data.offset == 8
    assert _structs.ExitMmio.data.offset == 16
    assert _structs.ExitInternal.data.offset == 8
    assert _structs.X86Segment.unusable.offset == 22


def test_options_structs_start_with_their_size():
    for struct in (_structs.VmOptions, _structs.MemoryOptions,
                   _structs.ModeOptions):
        assert struct.size.offset == 0
        assert struct.size.size == 4
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(_structs.VmOptions) == 16
        assert ctypes.sizeof(_structs.MemoryOptions) == 48
        assert _structs.MEMORY_OPTIONS_BASE_SIZE == 32
        assert ctypes.sizeof(_structs.ModeOptions) == 40


#: Options and statistics structs whose every field offset and total size
#: are compared with the compiler's (ctypes field names are the C names).
C_LAYOUTS = dict(_structs_live.C_NAMES)
C_LAYOUTS.update({_structs_ext.Stream: "hvc_stream",
                  _structs_ext.SaveOptions: "hvc_save_options",
                  _structs_ext.RestoreOptions: "hvc_restore_options"})


def test_options_structs_match_the_c_layout(tmp_path):
    """A C program built against include/hvcore prints sizeof and every
    offsetof; ctypes must agree. A header that gained fields (they are
    only ever appended) fails here until the mirror appends them too."""
    headers = source_file("include")
    cc = shutil.which("cc") or shutil.which("gcc")
    if headers is None or cc is None:
        pytest.fail("the layout check needs the source tree's include/ and "
                    "a C compiler")
    lines = []
    for struct, c_name in C_LAYOUTS.items():
        lines.append(f'printf("{c_name} (sizeof) %zu\\n", '
                     f"sizeof({c_name}));")
        for field, _ in struct._fields_:
            lines.append(f'printf("{c_name} {field} %zu\\n", '
                         f"offsetof({c_name}, {field}));")
    src = tmp_path / "layout.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n"
                   "#include <hvcore/migration.h>\n"
                   "#include <hvcore/postcopy.h>\n"
                   "#include <hvcore/handover.h>\n"
                   "int main(void)\n{\n" + "\n".join(lines)
                   + "\nreturn 0;\n}\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", str(headers),
                    "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True,
                         text=True).stdout
    c_values = {}
    for line in out.splitlines():
        c_name, field, value = line.split()
        c_values[c_name, field] = int(value)
    assert len(c_values) == sum(len(s._fields_) + 1 for s in C_LAYOUTS)
    for struct, c_name in C_LAYOUTS.items():
        assert ctypes.sizeof(struct) == c_values[c_name, "(sizeof)"], (
            f"{c_name} is {c_values[c_name, '(sizeof)']} bytes in C, "
            f"{ctypes.sizeof(struct)} in {struct.__name__}: append the new "
            "fields to the mirror")
        for field, _ in struct._fields_:
            assert getattr(struct, field).offset == \
                c_values[c_name, field], f"{c_name}.{field}"


#: The headers these bindings mirror (the whole HVCORE_1.0 API).
BOUND_HEADERS = ("common.h", "hypervisor.h", "vm.h", "memory.h", "vcpu.h",
                 "x86.h", "device.h", "platform.h", "loader.h", "virtio.h",
                 "topology.h", "tsc.h", "migration.h", "postcopy.h",
                 "handover.h")


def _header_constants():
    headers = source_file("include", "hvcore")
    if headers is None:
        pytest.skip("the libhvcore headers are not here (installed package "
                    "outside the source tree)")
    values = {}
    for header in BOUND_HEADERS:
        text = (headers / header).read_text()
        for name, value in re.findall(
                r"^\s*(HVC_[A-Z0-9_]+)\s*=\s*([^,\n/]+)", text, re.M):
            values[name] = value.strip()
        for name, value in re.findall(
                r"^#define\s+(HVC_[A-Z0-9_]+)\s+(\(?[0-9][0-9a-fA-Fxu<() ]*)$",
                text, re.M):
            values[name] = value.strip()
    return {name: eval(value.replace("u", ""))  # noqa: S307 - our headers
            for name, value in values.items()}


def test_constants_mirror_the_headers_exactly():
    values = _header_constants()
    assert len(values) > 70, sorted(values)
    for name, value in values.items():
        assert hasattr(constants, name), f"{name} is missing"
        assert getattr(constants, name) == value, name
        assert getattr(hvcore, name) == value, name


def test_enums_agree_with_the_c_names():
    pairs = [(hvcore.Cap, "HVC_CAP_"), (hvcore.ExitReason, "HVC_EXIT_"),
             (hvcore.X86Reg, "HVC_X86_"), (hvcore.X86Mode, "HVC_X86_MODE_"),
             (hvcore.IoSpace, "HVC_IO_"), (hvcore.DirtyMode, "HVC_DIRTY_"),
             (hvcore.VmFlags, "HVC_VM_"), (hvcore.MemoryFlags, "HVC_MEMORY_"),
             (hvcore.NumaPolicy, "HVC_NUMA_"), (hvcore.FdEvents, "HVC_FD_"),
             (hvcore.DoorbellFlags, "HVC_DOORBELL_"),
             (hvcore.AcpiFlags, "HVC_ACPI_"),
             (hvcore.KernelFormat, "HVC_KERNEL_"),
             (hvcore.BootProtocol, "HVC_BOOT_"),
             (hvcore.VirtioBlkFlags, "HVC_VIRTIO_BLK_"),
             (hvcore.PlacementFlags, "HVC_PLACEMENT_"),
             (hvcore.TscInfoFlags, "HVC_TSC_"),
             (hvcore.TscConfigFlags, "HVC_TSC_"),
             (hvcore.TscWriteFlags, "HVC_TSC_"),
             (hvcore.TscPausePolicy, "HVC_TSC_PAUSE_"),
             (hvcore.TscCatchup, "HVC_TSC_CATCHUP_"),
             (hvcore.SaveFlags, "HVC_SAVE_"),
             (hvcore.RestoreFlags, "HVC_RESTORE_"),
             (hvcore.MigrateFlags, "HVC_MIGRATE_"),
             (hvcore.MigrateTlsFlags, "HVC_MIGRATE_TLS_"),
             (hvcore.LogLevel, "HVC_LOG_")]
    for enum_type, prefix in pairs:
        for member in enum_type:
            assert getattr(constants, prefix + member.name) == member
    assert hvcore.ExitFlags.HANDLED == constants.HVC_EXIT_F_HANDLED


def test_msr_ids():
    assert hvcore.HVC_X86_MSR(0x174) == (1 << 32) | 0x174
    assert hvcore.msr(0xC0000080) == 0x1_C0000080
    assert hvcore.HVC_X86_IS_MSR(hvcore.msr(0x10))
    assert not hvcore.HVC_X86_IS_MSR(hvcore.HVC_X86_RAX)
    with pytest.raises(ValueError):
        hvcore.msr(1 << 32)


def test_io_exit_is_the_c_value_but_recognised_by_identity():
    assert hvcore.IO_EXIT == 1 == hvcore.HVC_IO_EXIT
    assert hvcore.IO_EXIT is hvcore.HVC_IO_EXIT
    assert hvcore.HVC_IO_PIO == 0 and hvcore.HVC_IO_MMIO == 1


def _exported_symbols():
    mapfile = source_file("src", "hvcore.map")
    if mapfile is None:
        pytest.skip("src/hvcore.map is not here")
    return set(re.findall(r"^\s*(hvc_\w+);", mapfile.read_text(), re.M))


def test_every_declared_function_is_exported_and_fully_declared():
    assert set(_lib.PROTOTYPES) <= _exported_symbols()
    for name in _lib.PROTOTYPES:
        func = getattr(_lib.lib, name)
        assert func.restype is not None, name
        assert func.argtypes is not None, name
        assert callable(func.errcheck), name


def test_exported_functions_without_bindings_are_reported():
    unbound = sorted(_exported_symbols() - set(_lib.PROTOTYPES)
                     - set(_lib.OPTIONAL_PROTOTYPES))
    if unbound:
        warnings.warn("exported by src/hvcore.map but not bound yet: "
                      + ", ".join(unbound))


def test_strerror_and_error_objects():
    assert hvcore.strerror(-errno.EEXIST) == "already exists or overlaps"
    assert hvcore.strerror(errno.EEXIST) == "already exists or overlaps"
    err = hvcore.HvError(errno.EEXIST, "already exists or overlaps",
                         "region 0x0 overlaps", "hvc_vm_add_memory")
    assert isinstance(err, OSError)
    assert err.errno == errno.EEXIST and err.code == -errno.EEXIST
    assert str(err) == ("hvc_vm_add_memory: already exists or overlaps "
                        "[EEXIST]: region 0x0 overlaps")
    back = pickle.loads(pickle.dumps(err))
    assert (back.errno, back.message, back.function) == \
        (err.errno, err.message, err.function)
    closed = hvcore.ClosedError("VM")
    assert isinstance(closed, ValueError)
    assert isinstance(closed, hvcore.HvError)
    assert str(closed) == "VM is closed"


def test_backends_lists_what_is_compiled_in():
    found = hvcore.backends()
    names = [b.name for b in found]
    # kvm first; hvf too in a build with HVCORE_HVF_ON_KVM (tests only)
    assert names in (["kvm"], ["kvm", "hvf"])
    for b in found[1:]:
        if not b.available:
            assert b.errno and b.reason
    assert hvcore.backend_available("kvm") == found[0].available
    assert not hvcore.backend_available("no-such-backend")
    if not found[0].available:
        assert found[0].errno and found[0].reason


# -- loading in a fresh interpreter ----------------------------------------

def _import_in_child(**env_changes):
    env = dict(os.environ)
    for key in ("HVCORE_LIBRARY", "HVCORE_BUILD_DIR"):
        env.pop(key, None)
    env.update(env_changes)
    package_parent = os.path.dirname(os.path.dirname(hvcore.__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, env.get("PYTHONPATH")) if p)
    code = ("import hvcore; print(hvcore.library_path); "
            "print(hvcore.library_origin)")
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=60)


def test_hvcore_library_names_the_file():
    done = _import_in_child(HVCORE_LIBRARY=hvcore.library_path)
    assert done.returncode == 0, done.stderr
    path, origin = done.stdout.splitlines()
    assert path == hvcore.library_path
    assert origin.startswith("HVCORE_LIBRARY=")


def test_hvcore_library_may_be_a_directory():
    done = _import_in_child(
        HVCORE_LIBRARY=os.path.dirname(hvcore.library_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(
        os.path.dirname(hvcore.library_path))


def test_hvcore_build_dir():
    lib_dir = os.path.dirname(hvcore.library_path)
    if os.path.basename(lib_dir) != "src":
        pytest.skip("the loaded library is not in a CMake build tree")
    done = _import_in_child(HVCORE_BUILD_DIR=os.path.dirname(lib_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("HVCORE_BUILD_DIR=")


def test_missing_library_is_refused_with_the_path():
    done = _import_in_child(HVCORE_LIBRARY="/nonexistent/libhvcore.so.1")
    assert done.returncode != 0
    assert "LibraryError" in done.stderr
    assert "/nonexistent/libhvcore.so.1" in done.stderr
    assert "no such file" in done.stderr


def test_a_library_that_is_not_libhvcore_is_refused():
    path = None
    for candidate in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/libc.so.6",
                      "/lib64/libc.so.6"):
        if os.path.exists(candidate):
            path = candidate
    if path is None:
        pytest.skip("no libc file to point at")
    done = _import_in_child(HVCORE_LIBRARY=path)
    assert done.returncode != 0
    assert path in done.stderr and "not libhvcore" in done.stderr


@pytest.fixture
def fake_library(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a fake library")

    def build(source):
        src = tmp_path / "fake.c"
        out = tmp_path / "libhvcore.so.1"
        src.write_text(textwrap.dedent(source))
        subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)],
                       check=True)
        return str(out)

    return build


def test_a_newer_major_version_is_refused(fake_library):
    path = fake_library("unsigned hvc_version(void) { return 20000; }\n")
    done = _import_in_child(HVCORE_LIBRARY=path)
    assert done.returncode != 0
    assert path in done.stderr
    assert "libhvcore 2.0.0" in done.stderr and "need 1.0" in done.stderr


def test_a_library_missing_functions_is_refused(fake_library):
    path = fake_library("unsigned hvc_version(void) { return 10300; }\n")
    done = _import_in_child(HVCORE_LIBRARY=path)
    assert done.returncode != 0
    assert path in done.stderr
    assert "does not export hvc_version_string()" in done.stderr
