"""What the emitters share: the header line naming the source, and how numbers are written."""

from __future__ import annotations

from .view import Field

#: How generated files name their generator.
GENERATOR = "s4accel.base.regmap"


def source(m) -> str:
    """How an artifact names the register map it was generated from."""
    return m.source or "a register map"


def generated_line(m) -> str:
    """The first line of every artifact, in the artifact's comment syntax."""
    return f"Generated from {source(m)} by {GENERATOR}; do not edit."


def hex_digits(value: int, width: int) -> str:
    """``value`` in hex with as many digits as a ``width``-bit number has (``0x0FF``)."""
    digits = max(1, (width + 3) // 4)
    return f"0x{value:0{digits}X}"


def reset_text(f: Field):
    """A field's reset value as written in the artifacts: decimal below 8 bits, else hex, an
    expression as is, ``None`` for a datapath field."""
    if f.reset is None:
        return None
    if isinstance(f.reset, str):
        return f.reset
    return str(f.reset) if f.width < 8 else hex_digits(f.reset, f.width)
