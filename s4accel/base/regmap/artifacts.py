"""The function API behind ``s4 regmap``: an artifact's text, and whether a file holds it."""

from __future__ import annotations

from pathlib import Path

from ..config import Config, load_config
from .model import RegisterMap, load

__all__ = ["generate", "render", "check"]


def generate(fmt: str, config: Config | str | None = None, regmap: RegisterMap | None = None):
    """Text of one artifact (``"c"``, ``"md"``, ``"py"`` or ``"yaml"``) of the register map
    (by default the accelerator's); a ``config`` (or preset name) resolves reset expressions."""
    regmap = regmap or load()
    if config is not None:
        config = load_config(config)
    return regmap.generate(fmt, config)


def render(fmt: str, *, config: Config | str | None = None, path=None) -> str:
    """Text of artifact ``fmt`` of the register map YAML at ``path`` (by default the
    accelerator's); a ``config`` (preset name, YAML path or :class:`Config`) resolves reset
    expressions."""
    return generate(fmt, config, load(path) if path is not None else None)


def check(fmt: str, output, *, config: Config | str | None = None, path=None) -> bool:
    """Whether file ``output`` exists and holds exactly what :func:`render` gives."""
    output = Path(output)
    return output.exists() and output.read_text() == render(fmt, config=config, path=path)
