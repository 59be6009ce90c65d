"""x86 register names and the segment descriptor.

Registers are addressed as in C by a 64-bit id; the bindings also accept
the lower-case name of an :class:`~hvcore.X86Reg` member ("rax", "cr0",
"apic_base", ...) and an :class:`~hvcore.X86Reg` member itself. MSRs are
``hvcore.msr(index)``.
"""

import operator
from dataclasses import dataclass, fields

from . import _convert
from ._structs import X86Segment
from .constants import HVC_X86_IS_MSR, X86Reg

__all__ = ["Segment", "SCALAR_REGISTERS", "SEGMENT_REGISTERS",
           "register_id", "segment_id", "register_name"]

_SEGMENT_IDS = {X86Reg.CS, X86Reg.DS, X86Reg.ES, X86Reg.FS, X86Reg.GS,
                X86Reg.SS, X86Reg.TR, X86Reg.LDTR, X86Reg.GDTR, X86Reg.IDTR}

#: name -> id of every register read with get()/set().
SCALAR_REGISTERS = {r.name.lower(): r for r in X86Reg
                    if r not in _SEGMENT_IDS}
#: name -> id of every register read with get_segment()/set_segment().
SEGMENT_REGISTERS = {r.name.lower(): r for r in X86Reg if r in _SEGMENT_IDS}


def _lookup(reg, table, other, other_call):
    if isinstance(reg, str):
        key = reg.lower()
        if key in table:
            return table[key]
        if key in other:
            raise ValueError(f"{reg!r} is not a register for this call; "
                             f"use {other_call}()")
        raise ValueError(f"unknown register name {reg!r}; known: "
                         f"{', '.join(table)}")
    try:
        return operator.index(reg)
    except TypeError:
        raise TypeError("a register is a name (str) or an id (int), not "
                        f"{type(reg).__name__}") from None


def register_id(reg):
    """Id of a scalar register given as a name, X86Reg or int id.

    Unknown names raise ValueError; unknown int ids are passed to the
    library, which refuses them with HvError(EINVAL).
    """
    return _convert.u64(
        _lookup(reg, SCALAR_REGISTERS, SEGMENT_REGISTERS, "get_segment"),
        "register id")


def segment_id(reg):
    """Id of a segment or descriptor-table register ("cs", ..., "idtr")."""
    return _convert.u64(
        _lookup(reg, SEGMENT_REGISTERS, SCALAR_REGISTERS, "get"),
        "segment register id")


def register_name(reg_id):
    """A readable name for a register id ("rax", "msr 0x174", ...)."""
    if HVC_X86_IS_MSR(reg_id):
        return f"msr {reg_id & 0xFFFFFFFF:#x}"
    try:
        return X86Reg(reg_id).name.lower()
    except ValueError:
        return f"register {reg_id:#x}"


_FIELD_BITS = {"base": 64, "limit": 32, "selector": 16}


@dataclass
class Segment:
    """A segment register (selector and hidden descriptor cache) or a
    descriptor-table register (only ``base`` and ``limit`` matter):
    ``hvc_x86_segment``.

    ``limit`` is in bytes, already scaled when ``g`` is set. The other
    fields are the descriptor's bits as small integers.
    """

    base: int = 0
    limit: int = 0
    selector: int = 0
    type: int = 0
    present: int = 0
    dpl: int = 0
    db: int = 0
    s: int = 0
    l: int = 0  # noqa: E741 - the descriptor bit's name
    g: int = 0
    avl: int = 0
    unusable: int = 0

    @classmethod
    def from_c(cls, seg):
        return cls(**{f.name: getattr(seg, f.name) for f in fields(cls)})

    def to_c(self):
        """The ctypes struct; ValueError when a field does not fit."""
        seg = X86Segment()
        for f in fields(self):
            bits = _FIELD_BITS.get(f.name, 8)
            setattr(seg, f.name, _convert.uint(getattr(self, f.name), bits,
                                               f"segment field {f.name}"))
        return seg
