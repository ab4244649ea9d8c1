"""Consistency rules of a register map, checked whenever a :class:`~.model.RegisterMap` is
built."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..config import Config
from .expressions import eval_reset
from .view import ACCESS, Field, Register, RegmapError

if TYPE_CHECKING:
    from .model import RegisterMap

__all__ = ["validate", "port_names"]

_REG_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# names of the generated Python module that a register must not shadow
_RESERVED = {"NAME", "DATA_WIDTH", "ADDR_WIDTH", "REGISTERS", "BY_OFFSET", "INTERRUPT_STATUS",
             "INTERRUPT_ENABLE"}


def _plural(n):
    return f"{n} bit{'s' if n != 1 else ''}"


def _check_name(what, name, pattern, case):
    if not isinstance(name, str) or not pattern.match(name):
        raise RegmapError(f"{what} must be {case} letters, digits and _, not {name!r}")


def validate(m: RegisterMap):
    """Raise :class:`RegmapError` unless ``m`` is consistent: names, access modes, bit ranges
    within the register and not overlapping, offsets aligned, inside the address space and
    unique, reset values that fit (expressions evaluated for the default configuration),
    hardware ports that do not clash, and an interrupt made of a w1c register and a one-bit rw
    enable."""
    _check_name("map name", m.name, _MAP_NAME, "lower_case")
    if m.data_width != 32:
        raise RegmapError(f"data_width must be 32, not {m.data_width!r}")
    if not (isinstance(m.addr_width, int) and 3 <= m.addr_width <= 32):
        raise RegmapError(f"addr_width must be between 3 and 32, not {m.addr_width!r}")
    width = m.data_width
    names, offsets, ports = {}, {}, {}
    for r in m.registers:
        where = f"register {r.name}"
        _check_name(f"{where}: register names", r.name, _REG_NAME, "UPPER_CASE")
        if r.name in _RESERVED:
            raise RegmapError(f"{where}: the name is reserved by the generated modules")
        if r.name in names:
            raise RegmapError(f"duplicate register name {r.name}")
        names[r.name] = r
        if not isinstance(r.offset, int) or r.offset < 0:
            raise RegmapError(f"{where}: offset must be a non-negative integer, not "
                              f"{r.offset!r}")
        if r.offset % (width // 8):
            raise RegmapError(f"{where}: offset 0x{r.offset:03x} is not a multiple of "
                              f"{width // 8}")
        if r.offset >= 1 << m.addr_width:
            raise RegmapError(f"{where}: offset 0x{r.offset:03x} is outside the "
                              f"{m.addr_width}-bit address space")
        if r.offset in offsets:
            raise RegmapError(f"registers {offsets[r.offset].name} and {r.name} share offset "
                              f"0x{r.offset:03x}")
        offsets[r.offset] = r
        if not r.fields:
            raise RegmapError(f"{where}: has no fields")
        seen = {}
        for f in r.fields:
            fwhere = f"{where} field {f.name}"
            _check_name(f"{fwhere}: field names", f.name, _FIELD_NAME, "lower_case")
            if f.name in seen:
                raise RegmapError(f"{where}: duplicate field name {f.name}")
            if f.access not in ACCESS:
                raise RegmapError(f"{fwhere}: unknown access {f.access!r} (one of "
                                  f"{', '.join(ACCESS)})")
            if f.lsb < 0 or f.width < 1:
                raise RegmapError(f"{fwhere}: bits {f.msb}:{f.lsb} are not a bit range")
            if f.msb >= width:
                raise RegmapError(f"{fwhere}: bits {f.bits} go beyond the {width}-bit register")
            for other in seen.values():
                if f.lsb <= other.msb and other.lsb <= f.msb:
                    raise RegmapError(f"{where}: fields {other.name} [{other.bits}] and {f.name} "
                                      f"[{f.bits}] overlap")
            seen[f.name] = f
            if f.access == "w1p" and f.reset not in (0, None):
                raise RegmapError(f"{fwhere}: a w1p field reads 0 and has no reset value, "
                                  f"not {f.reset!r}")
            if isinstance(f.reset, bool) or not (f.reset is None
                                                 or isinstance(f.reset, (int, str))):
                raise RegmapError(f"{fwhere}: reset must be an integer or an expression "
                                  f"string, not {f.reset!r}")
            if isinstance(f.reset, int) and not 0 <= f.reset < 1 << f.width:
                raise RegmapError(f"{fwhere}: reset {f.reset:#x} does not fit in "
                                  f"{_plural(f.width)}")
            if isinstance(f.reset, str):
                try:
                    value = eval_reset(f.reset, Config())
                except (ValueError, ZeroDivisionError) as e:
                    raise RegmapError(f"{fwhere}: reset {f.reset!r} {e}") from None
                if not isinstance(value, int) or value < 0:
                    raise RegmapError(f"{fwhere}: reset {f.reset!r} is negative")
            for port in port_names(r, f):
                key = port.lower()
                if key in ports:
                    raise RegmapError(f"{fwhere}: its port {port} clashes with "
                                      f"{ports[key]}")
                ports[key] = f"register {r.name} field {f.name}"
    if m.interrupt is not None:
        i = m.interrupt
        status = names.get(i.status)
        if status is None or any(f.access != "w1c" for f in status.fields):
            raise RegmapError(f"interrupt status {i.status!r} must be a register whose fields "
                              f"are all w1c")
        ereg = names.get(i.enable_register)
        efield = next((f for f in ereg.fields if f.name == i.enable_field), None) if ereg \
            else None
        if efield is None or efield.access != "rw" or efield.width != 1:
            raise RegmapError(f"interrupt enable {i.enable_register}.{i.enable_field} must be "
                              f"a one-bit rw field")


def port_names(r: Register, f: Field) -> list:
    """The CSR block's ports for field ``f`` of register ``r`` (none for a constant)."""
    base = f"{r.name.lower()}_{f.name}"
    if f.access in ("rw", "w1p"):
        return [f"reg2dp_{base}"]
    if f.access == "w1c":
        return [f"reg2dp_{base}", f"dp2reg_{base}_set"]
    return [f"dp2reg_{base}"] if f.is_datapath else []
