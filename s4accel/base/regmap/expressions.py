"""Reset expressions: a field's reset value written over the hardware configuration.

An expression names integer :class:`~s4accel.base.config.Config` values in braces
(``"{rows}"``, ``"log2({act_sram_kib})"``), plus the derived ``{lanes}`` and
``{sparsity_mask}`` (bit i set when sparsity 2**i is supported), and uses integer literals,
``+ - * // << >> & |``, parentheses and ``log2(x)`` of a power of two. :func:`parse_expr`
checks one without evaluating it (ValueError says what is wrong); :func:`eval_reset` gives its
value for one configuration.
"""

from __future__ import annotations

import ast
import dataclasses
import re

from ..config import Config

__all__ = ["CONFIG_NAMES", "config_values", "parse_expr", "eval_reset"]


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


def parse_expr(expr: str):
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
    return _eval(parse_expr(expr), values)
