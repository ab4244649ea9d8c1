"""The Python register module of a register map, for drivers (``sw/regs.py``).

The module holds constants (offsets, and per field its shift, width, mask, access and reset)
and ``REGISTERS`` / ``BY_OFFSET`` built from :class:`~.view.Register` and
:class:`~.view.Field`, which it imports from :mod:`s4accel.base.regmap.view`: the driver sees
the same classes as the model, defined once.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING

from .emit_common import generated_line, hex_digits

if TYPE_CHECKING:
    from .model import RegisterMap

__all__ = ["to_python"]

#: Where the generated module finds :class:`~.view.Field` and :class:`~.view.Register`.
VIEW_MODULE = "s4accel.base.regmap.view"


def _py_str(text, indent, width=100):
    """A string literal as lines of at most ``width`` columns (implicit concatenation)."""
    room = max(20, width - indent - 4)
    chunks, cur = [], ""
    for word in text.split(" "):
        piece = word if not cur else " " + word
        if cur and len(json.dumps(cur + piece, ensure_ascii=False)) > room:
            chunks.append(cur + " ")
            cur = word
        else:
            cur += piece
    chunks.append(cur)
    return [" " * indent + json.dumps(c, ensure_ascii=False) for c in chunks]


def _py_value(value):
    if value is None:
        return "None"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return hex_digits(value, 32) if value > 255 else str(value)


def to_python(m: RegisterMap) -> str:
    """The driver's register module: constants, and ``REGISTERS`` / ``BY_OFFSET`` equal to the
    map's registers."""
    out = [f"# {generated_line(m)}"]
    doc = [f'"""Register map ``{m.name}``: byte offsets, fields and access modes for drivers.', ""]
    if m.description:
        doc += textwrap.wrap(m.description, 96) + [""]
    doc += textwrap.wrap(
        "For every register ``<REG>`` is its byte offset; for every field there are "
        "``<REG>_<FIELD>_SHIFT``, ``_WIDTH``, ``_MASK`` (in register position), ``_ACCESS`` "
        "and, where the reset value does not depend on the hardware configuration, ``_RESET``. "
        f"``REGISTERS`` maps register names to :class:`~{VIEW_MODULE}.Register` s, whose "
        f"``fields`` are tuples of :class:`~{VIEW_MODULE}.Field` s (``Register.field(name)`` "
        "finds one); ``BY_OFFSET`` maps offsets. A reset value that depends on the "
        "configuration is kept as its expression (see the register map's header); ``None`` "
        "marks a field driven by the datapath.", 96)
    doc += ['"""']
    out += doc
    out += ["", f"from {VIEW_MODULE} import Field, Register", ""]
    out += [f"NAME = {json.dumps(m.name)}",
            f"DATA_WIDTH = {m.data_width}",
            f"ADDR_WIDTH = {m.addr_width}"]
    if m.interrupt is not None:
        i = m.interrupt
        out += [f"#: the interrupt line is {i.enable_register}.{i.enable_field} AND any bit of "
                f"{i.status}",
                f"INTERRUPT_STATUS = {json.dumps(i.status)}",
                f"INTERRUPT_ENABLE = ({json.dumps(i.enable_register)}, "
                f"{json.dumps(i.enable_field)})"]
    out += ["", "# -- byte offsets " + "-" * 82]
    for r in m.registers:
        out.append(f"{r.name} = {hex_digits(r.offset, m.addr_width)}")
    out += ["", "# -- fields " + "-" * 87]
    for r in m.registers:
        for f in r.fields:
            p = f"{r.name}_{f.name.upper()}"
            out += [f"{p}_SHIFT = {f.lsb}",
                    f"{p}_WIDTH = {f.width}",
                    f"{p}_MASK = {hex_digits(f.mask, m.data_width)}",
                    f"{p}_ACCESS = {json.dumps(f.access)}"]
            if isinstance(f.reset, int):
                out.append(f"{p}_RESET = {_py_value(f.reset)}")
    out += ["", "# -- structure " + "-" * 84, "REGISTERS = {"]
    for r in m.registers:
        out.append(f"    {json.dumps(r.name)}: Register(")
        out.append(f"        {json.dumps(r.name)}, {hex_digits(r.offset, m.addr_width)}, (")
        for f in r.fields:
            out.append("            Field(")
            out.append(f"                {json.dumps(f.name)}, {f.lsb}, {f.width}, "
                       f"{json.dumps(f.access)}, {_py_value(f.reset)},")
            out += _py_str(f.description, 16)
            out[-1] += "),"
        out.append("        ),")
        out += _py_str(r.description, 8)
        out[-1] += "),"
    out += ["}", "BY_OFFSET = {reg.offset: reg for reg in REGISTERS.values()}", ""]
    return "\n".join(out)
