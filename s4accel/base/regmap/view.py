"""The records a register map is made of: :class:`Field`, :class:`Register`, :class:`Interrupt`.

They are defined once, here, and shared by the validated model (:class:`~.model.RegisterMap`
holds :class:`Register` s) and by the generated driver module ``sw/regs.py``, whose
``REGISTERS`` are built from these same classes. This module imports nothing of the project,
so the generated module stays cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACCESS", "RegmapError", "Field", "Register", "Interrupt"]

#: Access modes of a field (see the header of ``regmap.yaml``).
ACCESS = ("ro", "rw", "w1c", "w1p")


class RegmapError(ValueError):
    """The register map is inconsistent; the message names the register and field."""


@dataclass(frozen=True)
class Field:
    """Bits ``[msb:lsb]`` of a register.

    ``reset`` is an int, an expression string over the configuration, or ``None`` for an ``ro``
    field driven by the datapath. ``ro`` fields with a reset are constants.
    """

    name: str
    lsb: int
    width: int
    access: str
    reset: int | str | None = None
    description: str = ""

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def bits(self) -> str:
        """``"msb:lsb"``, or the bit number of a one-bit field."""
        return str(self.lsb) if self.width == 1 else f"{self.msb}:{self.lsb}"

    @property
    def mask(self) -> int:
        """The field's bits in register position."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def is_const(self) -> bool:
        return self.access == "ro" and self.reset is not None

    @property
    def is_datapath(self) -> bool:
        """Driven by the datapath (an ``ro`` field without a reset value)."""
        return self.access == "ro" and self.reset is None

    @property
    def is_symbolic(self) -> bool:
        """The reset value depends on the configuration."""
        return isinstance(self.reset, str)

    def get(self, value: int) -> int:
        """This field of a register value."""
        return (value >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int, field_value: int) -> int:
        """A register value with this field replaced by ``field_value``."""
        if not 0 <= field_value < 1 << self.width:
            raise ValueError(f"field {self.name}: {field_value} does not fit in {self.width} "
                             f"bit{'s' if self.width > 1 else ''}")
        return (value & ~self.mask) | (field_value << self.lsb)


@dataclass(frozen=True)
class Register:
    """One 32-bit register at byte ``offset``; ``fields`` is a tuple of :class:`Field` s."""

    name: str
    offset: int
    fields: tuple
    description: str = ""

    def field(self, name: str) -> Field:
        """The field called ``name``; a ``KeyError`` names the register's fields."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r} "
                       f"(fields: {', '.join(f.name for f in self.fields)})")

    @property
    def access(self) -> str:
        """The access mode shared by all fields, or ``"mixed"``."""
        modes = {f.access for f in self.fields}
        return modes.pop() if len(modes) == 1 else "mixed"

    @property
    def reset(self) -> int:
        """Value read after reset, datapath fields taken as 0 (needs resolved resets)."""
        value = 0
        for f in self.fields:
            if f.is_symbolic:
                raise RegmapError(f"register {self.name} field {f.name}: reset {f.reset!r} "
                                  f"depends on the configuration; use resolve_resets(config)")
            if f.reset is not None and f.access != "w1p":
                value |= f.reset << f.lsb
        return value

    def encode(self, **values: int) -> int:
        """A register value from field values (missing fields are 0)."""
        value = 0
        for name, v in values.items():
            value = self.field(name).put(value, v)
        return value

    def decode(self, value: int) -> dict:
        """Field values of a register value."""
        return {f.name: f.get(value) for f in self.fields}


@dataclass(frozen=True)
class Interrupt:
    """The interrupt line: ``enable`` field AND any bit of the w1c ``status`` register."""

    status: str
    enable_register: str
    enable_field: str
