"""The validated register map: :class:`RegisterMap`, and :func:`load` to read one from YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from . import parse
from .emit_c import to_c_header
from .emit_md import to_markdown
from .emit_py import to_python
from .emit_yaml import to_yaml
from .expressions import config_values, eval_reset
from .validate import validate
from .view import Interrupt, Register, RegmapError

__all__ = ["FORMATS", "DEFAULT_PATH", "DEFAULT_SOURCE", "RegisterMap", "load"]

#: Formats of :meth:`RegisterMap.generate`, and their emitters.
_EMITTERS = {"c": to_c_header, "md": to_markdown, "py": to_python, "yaml": to_yaml}
FORMATS = tuple(_EMITTERS)
#: The register map of the accelerator.
DEFAULT_PATH = Path(__file__).with_name("regmap.yaml")
#: How generated files name it.
DEFAULT_SOURCE = "s4accel/base/regmap/regmap.yaml"


@dataclass(frozen=True)
class RegisterMap:
    """A validated register map (construction raises :class:`RegmapError`)."""

    name: str
    registers: tuple
    description: str = ""
    data_width: int = 32
    addr_width: int = 12
    interrupt: Interrupt | None = None
    source: str = dataclasses.field(default="", compare=False)

    def __post_init__(self):
        object.__setattr__(self, "registers", tuple(self.registers))
        validate(self)

    # lookups
    def register(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"the register map has no register {name!r}")

    def __iter__(self):
        return iter(self.registers)

    def __len__(self):
        return len(self.registers)

    def at(self, offset: int) -> Register | None:
        """The register at byte ``offset``, or ``None``."""
        for r in self.registers:
            if r.offset == offset:
                return r
        return None

    def fields(self):
        """``(register, field)`` pairs in map order."""
        return [(r, f) for r in self.registers for f in r.fields]

    @property
    def is_resolved(self) -> bool:
        return not any(f.is_symbolic for _, f in self.fields())

    def resolve_resets(self, config: Config) -> RegisterMap:
        """A copy with every reset expression evaluated for ``config``."""
        values = config_values(config)
        regs = []
        for r in self.registers:
            fields = []
            for f in r.fields:
                if f.is_symbolic:
                    where = f"register {r.name} field {f.name}"
                    try:
                        value = eval_reset(f.reset, values)
                    except ValueError as e:
                        raise RegmapError(f"{where}: reset {f.reset!r} {e}") from None
                    if not 0 <= value < 1 << f.width:
                        raise RegmapError(
                            f"{where}: reset {f.reset!r} is {value} for configuration "
                            f"{config.name!r}, which does not fit in {f.width} "
                            f"bit{'s' if f.width > 1 else ''}")
                    f = dataclasses.replace(f, reset=value)
                fields.append(f)
            regs.append(dataclasses.replace(r, fields=tuple(fields)))
        return dataclasses.replace(self, registers=tuple(regs))

    # construction
    @classmethod
    def from_dict(cls, data: dict, *, source: str = "") -> RegisterMap:
        return cls(**parse.from_dict(data, source))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "") -> RegisterMap:
        return cls(**parse.from_yaml(text, source))

    # artifacts
    def to_python(self) -> str:
        return to_python(self)

    def to_c_header(self) -> str:
        return to_c_header(self)

    def to_markdown(self) -> str:
        return to_markdown(self)

    def to_yaml(self) -> str:
        return to_yaml(self)

    def generate(self, fmt: str, config: Config | None = None) -> str:
        """The artifact in format ``fmt`` (one of :data:`FORMATS`); with a ``config``, reset
        expressions are resolved first."""
        if fmt not in _EMITTERS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        regmap = self.resolve_resets(config) if config is not None else self
        return _EMITTERS[fmt](regmap)


def load(path=None) -> RegisterMap:
    """Load and validate a register map YAML file (by default the accelerator's,
    ``s4accel/base/regmap/regmap.yaml``)."""
    if path is None:
        return RegisterMap.from_yaml(DEFAULT_PATH.read_text(), source=DEFAULT_SOURCE)
    path = Path(path)
    return RegisterMap.from_yaml(path.read_text(), source=str(path))
