"""The register map: one YAML file (``s4accel/base/regmap.yaml``) and everything generated from it.

:func:`load` reads and validates the YAML into a :class:`RegisterMap` of :class:`Register` s and
:class:`Field` s (frozen dataclasses). Every other artifact derives from that object:

- ``hw/csr/block.py`` builds the AXI4-Lite CSR block from it,
- :meth:`RegisterMap.to_python` writes the driver's register module (``sw/regs.py``),
- :meth:`RegisterMap.to_c_header` the firmware header,
- :meth:`RegisterMap.to_markdown` the reference (``docs/registers.md``),
- :meth:`RegisterMap.to_yaml` a normalized copy of the source with every offset explicit.

Reset values of capability registers are expressions over the hardware configuration (for
example ``"{rows}"``); :meth:`RegisterMap.resolve_resets` turns them into integers for one
:class:`~s4accel.base.config.Config`. The exported artifacts keep them symbolic unless a
configuration is given, so they do not depend on one.

Run ``s4 regmap --format {c,md,py,yaml} [-o FILE] [--config NAME] [--check]`` to
regenerate or check an artifact.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import Config, load_config

__all__ = [
    "ACCESS", "FORMATS", "DEFAULT_PATH", "RegmapError", "Field", "Register", "Interrupt",
    "RegisterMap", "load", "generate", "config_values", "eval_reset", "CONFIG_NAMES", "main",
]

#: Access modes of a field (see the header of ``s4accel/base/regmap.yaml``).
ACCESS = ("ro", "rw", "w1c", "w1p")
#: Formats of :func:`generate`.
FORMATS = ("c", "md", "py", "yaml")
#: The register map of the accelerator.
DEFAULT_PATH = Path(__file__).with_name("regmap.yaml")
#: How generated files name their source.
DEFAULT_SOURCE = "s4accel/base/regmap.yaml"

_GENERATOR = "s4accel.base.regmap"
_REG_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# names of the generated Python module that a register must not shadow
_RESERVED = {"NAME", "DATA_WIDTH", "ADDR_WIDTH", "REGISTERS", "BY_OFFSET", "INTERRUPT_STATUS",
             "INTERRUPT_ENABLE"}


class RegmapError(ValueError):
    """The register map is inconsistent; the message names the register and field."""


# -- configuration expressions --------------------------------------------------------------

def _int_config_fields():
    return tuple(f.name for f in dataclasses.fields(Config)
                 if isinstance(getattr(Config(), f.name), int)
                 and not isinstance(getattr(Config(), f.name), bool))


#: Names usable in braces in a reset expression.
CONFIG_NAMES = _int_config_fields() + ("lanes", "sparsity_mask")


def config_values(config: Config) -> dict:
    """The values a reset expression may name, for one configuration."""
    values = {name: getattr(config, name) for name in _int_config_fields()}
    values["lanes"] = config.lanes
    values["sparsity_mask"] = sum(1 << (s.bit_length() - 1) for s in config.sparsities)
    return values


_BRACED = re.compile(r"\{([^{}]*)\}")
_BINOPS = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b, ast.LShift: lambda a, b: a << b,
    ast.RShift: lambda a, b: a >> b, ast.BitOr: lambda a, b: a | b,
    ast.BitAnd: lambda a, b: a & b,
}


def _parse_expr(expr: str):
    """Parse a reset expression; raises ValueError saying what is wrong with it."""
    for name in _BRACED.findall(expr):
        if name not in CONFIG_NAMES:
            raise ValueError(f"names unknown configuration value {name!r} "
                             f"(known: {', '.join(CONFIG_NAMES)})")
    text = _BRACED.sub(lambda m: "cfg_" + m.group(1), expr)
    if "{" in text or "}" in text:
        raise ValueError("has unbalanced braces")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError("is not a valid expression") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if not (node.id.startswith("cfg_") or node.id == "log2"):
                raise ValueError(f"uses {node.id!r}: write configuration values in braces, "
                                 f"e.g. {{{node.id}}}")
        elif isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id == "log2"
                    and len(node.args) == 1 and not node.keywords):
                raise ValueError("calls something other than log2(x)")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int) or isinstance(node.value, bool):
                raise ValueError(f"uses the non-integer literal {node.value!r}")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                raise ValueError("uses an operator other than + - * // << >> & |")
        elif not isinstance(node, (ast.Expression, ast.UnaryOp, ast.USub, ast.UAdd,
                                   ast.Load, ast.operator)):
            raise ValueError(f"uses unsupported syntax {ast.unparse(node)!r}")
    return tree


def _eval(node, values):
    if isinstance(node, ast.Expression):
        return _eval(node.body, values)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id[4:]]
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, values)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.Call):
        value = _eval(node.args[0], values)
        if value <= 0 or value & (value - 1):
            raise ValueError(f"takes log2 of {value}, which is not a power of two")
        return value.bit_length() - 1
    raise ValueError(f"uses unsupported syntax {ast.unparse(node)!r}")  # pragma: no cover


def eval_reset(expr, config: Config | dict) -> int:
    """Value of a reset (an integer, or an expression string) for one configuration."""
    if isinstance(expr, int):
        return expr
    values = config if isinstance(config, dict) else config_values(config)
    return _eval(_parse_expr(expr), values)


# -- object model ---------------------------------------------------------------------------

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
        return (value >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int, field_value: int) -> int:
        if not 0 <= field_value < 1 << self.width:
            raise ValueError(f"field {self.name}: {field_value} does not fit in {self.width} "
                             f"bit{'s' if self.width > 1 else ''}")
        return (value & ~self.mask) | (field_value << self.lsb)


@dataclass(frozen=True)
class Register:
    """One 32-bit register at byte ``offset``."""

    name: str
    offset: int
    fields: tuple
    description: str = ""

    def field(self, name: str) -> Field:
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

    def encode(self, **values) -> int:
        value = 0
        for name, v in values.items():
            value = self.field(name).put(value, v)
        return value

    def decode(self, value: int) -> dict:
        return {f.name: f.get(value) for f in self.fields}


@dataclass(frozen=True)
class Interrupt:
    """The interrupt line: ``enable`` field AND any bit of the w1c ``status`` register."""

    status: str
    enable_register: str
    enable_field: str


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
        _validate(self)

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
        return _from_dict(data, source)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "") -> RegisterMap:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RegmapError(f"{source or 'register map'}: not valid YAML: {e}") from None
        return _from_dict(data, source)

    # generators
    def to_python(self) -> str:
        return _to_python(self)

    def to_c_header(self) -> str:
        return _to_c(self)

    def to_markdown(self) -> str:
        return _to_markdown(self)

    def to_yaml(self) -> str:
        return _to_yaml(self)

    def generate(self, fmt: str, config: Config | None = None) -> str:
        """The artifact in format ``fmt`` (one of :data:`FORMATS`); with a ``config``, reset
        expressions are resolved first."""
        gens = {"c": _to_c, "md": _to_markdown, "py": _to_python, "yaml": _to_yaml}
        if fmt not in gens:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        regmap = self.resolve_resets(config) if config is not None else self
        return gens[fmt](regmap)


def load(path=None) -> RegisterMap:
    """Load and validate a register map YAML file (by default ``s4accel/base/regmap.yaml``)."""
    if path is None:
        return RegisterMap.from_yaml(DEFAULT_PATH.read_text(), source=DEFAULT_SOURCE)
    path = Path(path)
    return RegisterMap.from_yaml(path.read_text(), source=str(path))


def generate(fmt: str, config: Config | str | None = None, regmap: RegisterMap | None = None):
    """Text of one artifact (``"c"``, ``"md"``, ``"py"`` or ``"yaml"``) of the register map
    (by default the accelerator's); a ``config`` (or preset name) resolves reset expressions."""
    regmap = regmap or load()
    if config is not None:
        config = load_config(config)
    return regmap.generate(fmt, config)


# -- parsing --------------------------------------------------------------------------------

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


def _from_dict(data, source):
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
    return RegisterMap(name=str(data.get("name", "regmap")), registers=tuple(registers),
                       description=_text(top, data.get("description", "")),
                       data_width=data_width, addr_width=addr_width, interrupt=interrupt,
                       source=source)


def _text(where, value):
    if not isinstance(value, str):
        raise RegmapError(f"{where}: description must be text, not {value!r}")
    return " ".join(value.split())


# -- validation -----------------------------------------------------------------------------

def _plural(n):
    return f"{n} bit{'s' if n != 1 else ''}"


def _validate(m: RegisterMap):
    if not isinstance(m.name, str) or not _MAP_NAME.match(m.name):
        raise RegmapError(f"map name must be lower_case letters, digits and _, not {m.name!r}")
    if m.data_width != 32:
        raise RegmapError(f"data_width must be 32, not {m.data_width!r}")
    if not (isinstance(m.addr_width, int) and 3 <= m.addr_width <= 32):
        raise RegmapError(f"addr_width must be between 3 and 32, not {m.addr_width!r}")
    width = m.data_width
    names, offsets, ports = {}, {}, {}
    for r in m.registers:
        where = f"register {r.name}"
        if not isinstance(r.name, str) or not _REG_NAME.match(r.name):
            raise RegmapError(f"{where}: register names must be UPPER_CASE letters, digits "
                              f"and _, not {r.name!r}")
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
            if not isinstance(f.name, str) or not _FIELD_NAME.match(f.name):
                raise RegmapError(f"{fwhere}: field names must be lower_case letters, digits "
                                  f"and _, not {f.name!r}")
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
            for port in _port_names(r, f):
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


def _port_names(r: Register, f: Field):
    base = f"{r.name.lower()}_{f.name}"
    if f.access in ("rw", "w1p"):
        return [f"reg2dp_{base}"]
    if f.access == "w1c":
        return [f"reg2dp_{base}", f"dp2reg_{base}_set"]
    return [f"dp2reg_{base}"] if f.is_datapath else []


# -- generators -----------------------------------------------------------------------------

def _source(m):
    return m.source or "a register map"


def _generated_line(m):
    return f"Generated from {_source(m)} by {_GENERATOR}; do not edit."


def _hex(value, width):
    digits = max(1, (width + 3) // 4)
    return f"0x{value:0{digits}X}"


def _reset_text(f: Field):
    if f.reset is None:
        return None
    if isinstance(f.reset, str):
        return f.reset
    return str(f.reset) if f.width < 8 else _hex(f.reset, f.width)


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
    return _hex(value, 32) if value > 255 else str(value)


def _to_python(m: RegisterMap) -> str:
    out = [f"# {_generated_line(m)}"]
    doc = [f'"""Register map ``{m.name}``: byte offsets, fields and access modes for drivers.', ""]
    if m.description:
        doc += textwrap.wrap(m.description, 96) + [""]
    doc += textwrap.wrap(
        "For every register ``<REG>`` is its byte offset; for every field there are "
        "``<REG>_<FIELD>_SHIFT``, ``_WIDTH``, ``_MASK`` (in register position), ``_ACCESS`` "
        "and, where the reset value does not depend on the hardware configuration, ``_RESET``. "
        "``REGISTERS`` maps register names to :class:`Register` tuples (``BY_OFFSET`` maps "
        "offsets). A reset value that depends on the configuration is kept as its expression "
        "(see the register map's header); ``None`` marks a field driven by the datapath.", 96)
    doc += ['"""']
    out += doc
    out += ["", "from __future__ import annotations", "", "from typing import NamedTuple", ""]
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
    out += ['''

class Field(NamedTuple):
    """Bits ``[lsb + width - 1 : lsb]`` of a register."""

    name: str
    lsb: int
    width: int
    access: str
    reset: int | str | None
    description: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def get(self, value: int) -> int:
        """This field of a register value."""
        return (value >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int, field_value: int) -> int:
        """A register value with this field replaced by ``field_value``."""
        if not 0 <= field_value < 1 << self.width:
            raise ValueError(f"field {self.name}: {field_value} does not fit in {self.width} "
                             f"bits")
        return (value & ~self.mask) | (field_value << self.lsb)


class Register(NamedTuple):
    """A 32-bit register at byte ``offset``; ``fields`` maps field names to :class:`Field`."""

    name: str
    offset: int
    fields: dict
    description: str

    def encode(self, **values: int) -> int:
        """A register value from field values (missing fields are 0)."""
        value = 0
        for name, field_value in values.items():
            if name not in self.fields:
                raise KeyError(f"register {self.name} has no field {name!r}")
            value = self.fields[name].put(value, field_value)
        return value

    def decode(self, value: int) -> dict:
        """Field values of a register value."""
        return {name: field.get(value) for name, field in self.fields.items()}
''']
    out += ["", "# -- byte offsets " + "-" * 82]
    for r in m.registers:
        out.append(f"{r.name} = {_hex(r.offset, m.addr_width)}")
    out += ["", "# -- fields " + "-" * 87]
    for r in m.registers:
        for f in r.fields:
            p = f"{r.name}_{f.name.upper()}"
            out += [f"{p}_SHIFT = {f.lsb}",
                    f"{p}_WIDTH = {f.width}",
                    f"{p}_MASK = {_hex(f.mask, m.data_width)}",
                    f"{p}_ACCESS = {json.dumps(f.access)}"]
            if isinstance(f.reset, int):
                out.append(f"{p}_RESET = {_py_value(f.reset)}")
    out += ["", "# -- structure " + "-" * 84, "REGISTERS = {"]
    for r in m.registers:
        out.append(f"    {json.dumps(r.name)}: Register(")
        out.append(f"        {json.dumps(r.name)}, {_hex(r.offset, m.addr_width)}, {{")
        for f in r.fields:
            out.append(f"            {json.dumps(f.name)}: Field(")
            out.append(f"                {json.dumps(f.name)}, {f.lsb}, {f.width}, "
                       f"{json.dumps(f.access)}, {_py_value(f.reset)},")
            out += _py_str(f.description, 16)
            out[-1] += "),"
        out.append("        },")
        out += _py_str(r.description, 8)
        out[-1] += "),"
    out += ["}", "BY_OFFSET = {reg.offset: reg for reg in REGISTERS.values()}", ""]
    return "\n".join(out)


def _c_comment(text):
    return text.replace("*/", "* /").replace("/*", "/ *")


def _to_c(m: RegisterMap) -> str:
    prefix = m.name.upper()
    guard = f"{prefix}_REGS_H"
    out = [f"/* {_generated_line(m)} */", "/*"]
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
        out.append(define(f"{prefix}_REG_{r.name}", f"{_hex(r.offset, m.addr_width)}u"))
        for f in r.fields:
            p = f"{prefix}_{r.name}_{f.name.upper()}"
            what = f"{f.access}, datapath" if f.is_datapath else f.access
            if f.is_symbolic:
                what += f", reset {f.reset}"
            out.append(f"/* [{f.bits}] {f.name} ({what}): {_c_comment(f.description)} */")
            out.append(define(f"{p}_SHIFT", f"{f.lsb}u"))
            out.append(define(f"{p}_WIDTH", f"{f.width}u"))
            out.append(define(f"{p}_MASK", f"{_hex(f.mask, m.data_width)}u"))
            if isinstance(f.reset, int):
                out.append(define(f"{p}_RESET", f"{_hex(f.reset, f.width)}u"))
    out += ["", f"#endif /* {guard} */", ""]
    return "\n".join(out)


def _md(text):
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
            .replace("<", "&lt;"))


def _to_markdown(m: RegisterMap) -> str:
    out = [f"<!-- {_generated_line(m)} -->", "", f"# Register map `{m.name}`", ""]
    if m.description:
        out += [_md(m.description), ""]
    out += [
        f"{m.data_width}-bit registers at byte offsets in a {m.addr_width}-bit "
        f"({(1 << m.addr_width) // 1024 or 1} KiB) address space, reached over AXI4-Lite. "
        "Addresses without a register answer DECERR and read as 0; writes to read-only fields "
        "are ignored.",
        "",
        "| Access | Meaning |",
        "| --- | --- |",
        "| ro | read only: a constant when a reset value is given, else driven by the datapath |",
        "| rw | read/write |",
        "| w1c | set by the datapath, cleared by writing 1 |",
        "| w1p | writing 1 sends a one-cycle pulse to the datapath; reads as 0 |",
        "",
        "Reset values in braces depend on the hardware configuration (`{rows}` is "
        "`Config.rows`; `{sparsity_mask}` has bit i set when sparsity 2\\*\\*i is supported).",
    ]
    if m.interrupt is not None:
        i = m.interrupt
        out += ["", f"The interrupt line is `{i.enable_register}.{i.enable_field}` AND any set "
                    f"bit of `{i.status}`."]
    out += ["", "## Summary", "", "| Offset | Register | Access | Description |",
            "| --- | --- | --- | --- |"]
    for r in m.registers:
        out.append(f"| `{_hex(r.offset, m.addr_width)}` | [{r.name}](#{r.name.lower()}) | "
                   f"{r.access} | {_md(r.description)} |")
    out += ["", "## Registers"]
    for r in m.registers:
        out += ["", f"### {r.name}", "",
                f"Offset `{_hex(r.offset, m.addr_width)}`, {r.access}. {_md(r.description)}",
                "", "| Bits | Field | Access | Reset | Description |",
                "| --- | --- | --- | --- | --- |"]
        top = m.data_width - 1
        for f in sorted(r.fields, key=lambda f: -f.lsb):
            if f.msb < top:
                gap = Field("-", f.msb + 1, top - f.msb, "ro").bits
                out.append(f"| `{gap}` | - | - | 0 | reserved |")
            reset = "datapath" if f.is_datapath else f"`{_reset_text(f)}`"
            if f.access == "w1p":
                reset = "0"
            out.append(f"| `{f.bits}` | `{f.name}` | {f.access} | {reset} | "
                       f"{_md(f.description)} |")
            top = f.lsb - 1
        if top >= 0:
            out.append(f"| `{Field('-', 0, top + 1, 'ro').bits}` | - | - | 0 | reserved |")
    out.append("")
    return "\n".join(out)


def _to_yaml(m: RegisterMap) -> str:
    q = json.dumps
    out = [f"# Normalized from {_source(m)} by {_GENERATOR}: every offset, access and reset "
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
                f"    offset: {_hex(r.offset, m.addr_width)}",
                f"    description: {q(r.description)}",
                "    fields:"]
        for f in r.fields:
            bits = str(f.lsb) if f.width == 1 else q(f.bits)
            out += [f"      - name: {q(f.name)}",
                    f"        bits: {bits}",
                    f"        access: {f.access}"]
            if f.reset is not None:
                reset = q(f.reset) if isinstance(f.reset, str) else _reset_text(f)
                out.append(f"        reset: {reset}")
            out.append(f"        description: {q(f.description)}")
    out.append("")
    return "\n".join(out)


# -- command line ---------------------------------------------------------------------------

def main(argv=None) -> int:
    """``python -m s4accel.base.regmap FORMAT [-o FILE] [--config NAME] [--check]``."""
    parser = argparse.ArgumentParser(prog="python -m s4accel.base.regmap",
                                     description="Generate an artifact of the register map.")
    parser.add_argument("format", choices=FORMATS)
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument("--config", help="resolve configuration-dependent resets (preset or "
                                         "YAML path)")
    parser.add_argument("--regmap", help="register map YAML (default: s4accel/base/regmap.yaml)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if --output differs from what would be generated")
    args = parser.parse_args(argv)
    text = generate(args.format, args.config, load(args.regmap) if args.regmap else None)
    if args.check:
        if not args.output:
            parser.error("--check needs --output")
        current = Path(args.output).read_text() if Path(args.output).exists() else None
        if current != text:
            print(f"{args.output} is out of date; regenerate it with "
                  f"s4 regmap --format {args.format} -o {args.output}", file=sys.stderr)
            return 1
        return 0
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
