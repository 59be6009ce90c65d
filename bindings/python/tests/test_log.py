"""The log hook from Python (hvcore.set_log, hvcore.log_to_logging): a KVM
guest's virtio-rng driver (the mmio_script guest, as in test_virtio.py)
offers a queue of 3 entries, which the device must refuse; its error
reaches the Python callable, or the logging module, and nothing is printed
without a hook."""

import errno
import logging
import struct
import threading

import pytest

import hvcore
from conftest import DATA_IN, run_done

BASE = 0xD0000000
IRQ = 5
WRITE, READ, END = 0, 1, 2


@pytest.fixture(autouse=True)
def silent_afterwards():
    yield
    hvcore.set_log(None)


def refuse_queue(machine, qsize=3):
    """Driver initialisation with queue 0 of ``qsize`` entries; returns the
    device status read after QueueReady."""
    machine.load("mmio_script")
    regs = [(0x070, 0), (0x070, 1), (0x070, 3), (0x024, 1), (0x020, 1),
            (0x070, 0xB), (0x030, 0), (0x038, qsize), (0x080, 0x200000),
            (0x090, 0x201000), (0x0A0, 0x202000), (0x044, 1)]
    ops = [(BASE + r, v, 4, WRITE) for r, v in regs]
    ops += [(BASE + 0x070, 0, 4, READ), (0, 0, 0, END)]
    machine.vm.write(DATA_IN, b"".join(struct.pack("<QQII", *o) for o in ops))
    assert run_done(machine.vcpu()) == 0x5C
    raw = machine.vm.read(DATA_IN, 24 * len(ops))
    return struct.unpack_from("<QQII", raw, 24 * (len(ops) - 2))[1]


def test_device_error_reaches_a_python_callable(machine, capfd):
    dev = machine.vm.add_virtio_rng(base=BASE, irq=IRQ)
    got = []
    hvcore.set_log(lambda level, message: got.append(
        (level, message, threading.get_ident())))
    status = refuse_queue(machine)
    assert status & 0x40, hex(status)  # DEVICE_NEEDS_RESET
    assert len(got) == 1, got
    level, message, thread = got[0]
    assert level is hvcore.LogLevel.ERROR
    assert message.startswith(
        f"{dev.name}: device error, needs reset: queue 0 size 3 is not a "
        "power of two"), message
    assert thread == threading.get_ident()  # the vCPU ran on this thread
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_silent_without_a_hook(machine, capfd):
    machine.vm.add_virtio_rng(base=BASE, irq=IRQ)
    hvcore.set_log(None)
    assert refuse_queue(machine) & 0x40
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_log_to_logging(machine, caplog):
    machine.vm.add_virtio_rng(base=BASE, irq=IRQ, name="rng-log")
    with caplog.at_level(logging.DEBUG, logger="hvcore.library"):
        logger = hvcore.log_to_logging()
        assert logger.name == "hvcore.library"
        assert refuse_queue(machine) & 0x40
    records = [r for r in caplog.records if r.name == "hvcore.library"]
    assert len(records) == 1, records
    assert records[0].levelno == logging.ERROR
    assert records[0].getMessage().startswith(
        "rng-log: device error, needs reset: queue 0 size 3")


def test_callback_errors_and_reentry(machine, caplog):
    machine.vm.add_virtio_rng(base=BASE, irq=IRQ)
    seen = []

    def callback(level, message):
        with pytest.raises(hvcore.HvError) as info:
            hvcore.set_log(None)
        seen.append(info.value.errno)
        raise RuntimeError("boom")

    hvcore.set_log(callback, hvcore.LogLevel.ERROR)
    with caplog.at_level(logging.ERROR, logger="hvcore"):
        assert refuse_queue(machine) & 0x40
    assert seen == [errno.EDEADLK]
    assert any("log callback raised RuntimeError" in r.getMessage()
               for r in caplog.records)


def test_bad_arguments():
    with pytest.raises(hvcore.HvError) as info:
        hvcore.set_log(print, 0)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        hvcore.set_log(42)
    assert [int(v) for v in hvcore.LogLevel] == [1, 2, 3, 4]
