"""A normalized copy of a register map's YAML source."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .emit_common import GENERATOR, hex_digits, reset_text, source

if TYPE_CHECKING:
    from .model import RegisterMap

__all__ = ["to_yaml"]


def to_yaml(m: RegisterMap) -> str:
    """The register map in its own input format, every offset, access and reset explicit
    (:meth:`~.model.RegisterMap.from_yaml` reads it back to an equal map)."""
    q = json.dumps
    out = [f"# Normalized from {source(m)} by {GENERATOR}: every offset, access and reset "
           f"explicit.",
           f"name: {q(m.name)}",
           f"description: {q(m.description)}",
           f"data_width: {m.data_width}",
           f"addr_width: {m.addr_width}"]
    if m.interrupt is not None:
        i = m.interrupt
        out += ["interrupt:", f"  status: {q(i.status)}",
                f"  enable: {q(i.enable_register + '.' + i.enable_field)}"]
    out.append("registers:")
    for r in m.registers:
        out += [f"  - name: {q(r.name)}",
                f"    offset: {hex_digits(r.offset, m.addr_width)}",
                f"    description: {q(r.description)}",
                "    fields:"]
        for f in r.fields:
            bits = str(f.lsb) if f.width == 1 else q(f.bits)
            out += [f"      - name: {q(f.name)}",
                    f"        bits: {bits}",
                    f"        access: {f.access}"]
            if f.reset is not None:
                reset = q(f.reset) if isinstance(f.reset, str) else reset_text(f)
                out.append(f"        reset: {reset}")
            out.append(f"        description: {q(f.description)}")
    out.append("")
    return "\n".join(out)
