"""The C header of a register map, for firmware."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from .emit_common import generated_line, hex_digits

if TYPE_CHECKING:
    from .model import RegisterMap

__all__ = ["to_c_header"]


def _c_comment(text):
    return text.replace("*/", "* /").replace("/*", "/ *")


def to_c_header(m: RegisterMap) -> str:
    """The firmware header: ``<MAP>_REG_<REG>`` offsets and ``<MAP>_<REG>_<FIELD>_SHIFT``,
    ``_WIDTH``, ``_MASK`` and (for configuration-independent resets) ``_RESET`` defines."""
    prefix = m.name.upper()
    guard = f"{prefix}_REGS_H"
    out = [f"/* {generated_line(m)} */", "/*"]
    for line in textwrap.wrap(f"Register map {m.name}: {m.description}", 94):
        out.append(f" * {_c_comment(line)}")
    out.append(" *")
    for line in textwrap.wrap(
            f"{prefix}_REG_<REG> is a register's byte offset; {prefix}_<REG>_<FIELD>_SHIFT, "
            f"_WIDTH and _MASK (in register position) describe a field, and _RESET its value "
            f"after reset where that does not depend on the hardware configuration.", 94):
        out.append(f" * {line}")
    out += [" */", f"#ifndef {guard}", f"#define {guard}", ""]
    defs = [(f"{prefix}_REGMAP_DATA_WIDTH", f"{m.data_width}u"),
            (f"{prefix}_REGMAP_ADDR_WIDTH", f"{m.addr_width}u")]
    col = max(len(n) for r in m.registers for f in r.fields
              for n in (f"{prefix}_{r.name}_{f.name.upper()}_SHIFT",)) + 1
    col = max(col, max(len(n) for n, _ in defs) + 1)

    def define(name, value):
        return f"#define {name.ljust(col)} {value}"

    out += [define(n, v) for n, v in defs]
    for r in m.registers:
        out += ["", f"/* {r.name} ({r.access}): {_c_comment(r.description)} */"]
        out.append(define(f"{prefix}_REG_{r.name}", f"{hex_digits(r.offset, m.addr_width)}u"))
        for f in r.fields:
            p = f"{prefix}_{r.name}_{f.name.upper()}"
            what = f"{f.access}, datapath" if f.is_datapath else f.access
            if f.is_symbolic:
                what += f", reset {f.reset}"
            out.append(f"/* [{f.bits}] {f.name} ({what}): {_c_comment(f.description)} */")
            out.append(define(f"{p}_SHIFT", f"{f.lsb}u"))
            out.append(define(f"{p}_WIDTH", f"{f.width}u"))
            out.append(define(f"{p}_MASK", f"{hex_digits(f.mask, m.data_width)}u"))
            if isinstance(f.reset, int):
                out.append(define(f"{p}_RESET", f"{hex_digits(f.reset, f.width)}u"))
    out += ["", f"#endif /* {guard} */", ""]
    return "\n".join(out)
