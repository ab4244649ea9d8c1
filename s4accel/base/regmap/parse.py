"""Reading a register map file: YAML text or mapping to the parts of a register map.

This checks the shape of the input (known keys, integers, bit ranges, text) and fills in the
defaults; the consistency of the result (names, overlaps, offsets, ports) is checked by
:mod:`.validate` when the :class:`~.model.RegisterMap` is built.
"""

from __future__ import annotations

import yaml

from .view import Field, Interrupt, Register, RegmapError

__all__ = ["from_yaml", "from_dict"]


def from_yaml(text: str, source: str = "") -> dict:
    """:func:`from_dict` of YAML ``text`` (``source`` names it in messages)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RegmapError(f"{source or 'register map'}: not valid YAML: {e}") from None
    return from_dict(data, source)


def _keys(where, data, allowed):
    if not isinstance(data, dict):
        raise RegmapError(f"{where}: expected a mapping, not {data!r}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise RegmapError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                          f"(allowed: {', '.join(allowed)})")


def _int(where, what, value):
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            pass
    if not isinstance(value, int) or isinstance(value, bool):
        raise RegmapError(f"{where}: {what} must be an integer, not {value!r}")
    return value


def _parse_bits(where, bits, data_width):
    if bits is None:
        raise RegmapError(f"{where}: missing 'bits'")
    if isinstance(bits, bool):
        raise RegmapError(f"{where}: bits must be \"msb:lsb\" or a bit number, not {bits!r}")
    if isinstance(bits, int):
        if bits >= data_width and bits >= 60:
            raise RegmapError(
                f"{where}: bit {bits} is beyond the {data_width}-bit register (quote bit ranges: "
                f"unquoted YAML reads 7:0 as the base-60 number 420)")
        msb = lsb = bits
    elif isinstance(bits, (list, tuple)) and len(bits) == 2:
        msb, lsb = (_int(where, "bits", b) for b in bits)
    elif isinstance(bits, str):
        parts = bits.split(":")
        if len(parts) not in (1, 2):
            raise RegmapError(f"{where}: bits must be \"msb:lsb\" or a bit number, not {bits!r}")
        try:
            nums = [int(p.strip()) for p in parts]
        except ValueError:
            raise RegmapError(f"{where}: bits must be \"msb:lsb\" or a bit number, "
                              f"not {bits!r}") from None
        msb, lsb = nums[0], nums[-1]
    else:
        raise RegmapError(f"{where}: bits must be \"msb:lsb\" or a bit number, not {bits!r}")
    if lsb < 0:
        raise RegmapError(f"{where}: bits {msb}:{lsb} start below bit 0")
    if msb < lsb:
        raise RegmapError(f"{where}: bits {msb}:{lsb} have the msb below the lsb")
    return lsb, msb - lsb + 1


def from_dict(data, source: str = "") -> dict:
    """The keyword arguments of :class:`~.model.RegisterMap` for a parsed register map file
    (defaults filled in: offsets follow each other, fields take their register's access, the
    reset of rw / w1c / w1p fields is 0); :class:`RegmapError` names what is malformed."""
    top = source or "register map"
    _keys(top, data, ("name", "description", "data_width", "addr_width", "interrupt",
                      "registers"))
    data_width = _int(top, "data_width", data.get("data_width", 32))
    addr_width = _int(top, "addr_width", data.get("addr_width", 12))
    regs_in = data.get("registers")
    if not isinstance(regs_in, list) or not regs_in:
        raise RegmapError(f"{top}: 'registers' must be a non-empty list")
    registers = []
    next_offset = 0
    for i, rd in enumerate(regs_in):
        rname = rd.get("name") if isinstance(rd, dict) else None
        where = f"register {rname}" if rname else f"register #{i}"
        _keys(where, rd, ("name", "offset", "access", "description", "fields", "reset"))
        if not isinstance(rname, str):
            raise RegmapError(f"{where}: missing 'name'")
        offset = rd.get("offset")
        offset = next_offset if offset is None else _int(where, "offset", offset)
        next_offset = offset + data_width // 8
        reg_access = rd.get("access")
        fields_in = rd.get("fields")
        if fields_in is None:
            fields_in = [{"name": "value", "bits": f"{data_width - 1}:0"}]
            if "reset" in rd:
                fields_in[0]["reset"] = rd["reset"]
        elif "reset" in rd:
            raise RegmapError(f"{where}: 'reset' belongs to its fields")
        if not isinstance(fields_in, list) or not fields_in:
            raise RegmapError(f"{where}: 'fields' must be a non-empty list")
        fields = []
        for j, fd in enumerate(fields_in):
            fname = fd.get("name") if isinstance(fd, dict) else None
            fwhere = f"{where} field {fname if fname else '#' + str(j)}"
            _keys(fwhere, fd, ("name", "bits", "access", "reset", "description"))
            if not isinstance(fname, str):
                raise RegmapError(f"{fwhere}: missing 'name'")
            lsb, width = _parse_bits(fwhere, fd.get("bits"), data_width)
            access = fd.get("access", reg_access)
            if access is None:
                raise RegmapError(f"{fwhere}: no access mode (give 'access' on the field or "
                                  f"its register)")
            reset = fd.get("reset")
            if isinstance(reset, bool) or not (reset is None or isinstance(reset, (int, str))):
                raise RegmapError(f"{fwhere}: reset must be an integer or an expression "
                                  f"string, not {reset!r}")
            if reset is None and access in ("rw", "w1c", "w1p"):
                reset = 0
            fields.append(Field(fname, lsb, width, access, reset,
                                _text(fwhere, fd.get("description", ""))))
        registers.append(Register(rname, offset, tuple(fields),
                                  _text(where, rd.get("description", ""))))
    interrupt = None
    if data.get("interrupt") is not None:
        idata = data["interrupt"]
        _keys(f"{top}: interrupt", idata, ("status", "enable"))
        enable = str(idata.get("enable", ""))
        if enable.count(".") != 1:
            raise RegmapError(f"{top}: interrupt enable must be REGISTER.field, not {enable!r}")
        ereg, efield = enable.split(".")
        interrupt = Interrupt(str(idata.get("status")), ereg, efield)
    return dict(name=str(data.get("name", "regmap")), registers=tuple(registers),
                description=_text(top, data.get("description", "")),
                data_width=data_width, addr_width=addr_width, interrupt=interrupt,
                source=source)


def _text(where, value):
    if not isinstance(value, str):
        raise RegmapError(f"{where}: description must be text, not {value!r}")
    return " ".join(value.split())
