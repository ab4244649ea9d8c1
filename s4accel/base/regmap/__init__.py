"""The register map: one YAML file (``s4accel/base/regmap/regmap.yaml``) and everything generated
from it.

:func:`load` reads and validates the YAML into a :class:`RegisterMap` of :class:`Register` s and
:class:`Field` s (frozen dataclasses). Every other artifact derives from that object:

- ``hw/csr/block.py`` builds the AXI4-Lite CSR block from it,
- :meth:`RegisterMap.to_python` writes the driver's register module (``sw/regs.py``), which
  builds its registers from the same :class:`Register` and :class:`Field` classes,
- :meth:`RegisterMap.to_c_header` the firmware header,
- :meth:`RegisterMap.to_markdown` the reference (``docs/registers.md``),
- :meth:`RegisterMap.to_yaml` a normalized copy of the source with every offset explicit.

Reset values of capability registers are expressions over the hardware configuration (for
example ``"{rows}"``); :meth:`RegisterMap.resolve_resets` turns them into integers for one
:class:`~s4accel.base.config.Config`. The exported artifacts keep them symbolic unless a
configuration is given, so they do not depend on one.

:func:`render` and :func:`check` are what ``s4 regmap --format {c,md,py,yaml} [-o FILE]
[--config NAME] [--check]`` runs to regenerate or check an artifact.

Modules: :mod:`.view` (the records and :class:`RegmapError`), :mod:`.expressions` (reset
expressions), :mod:`.parse` (YAML to records), :mod:`.validate` (consistency rules),
:mod:`.model` (:class:`RegisterMap`, :func:`load`), one ``emit_*`` module per artifact, and
:mod:`.artifacts` (:func:`generate`, :func:`render`, :func:`check`).
"""

from .artifacts import check, generate, render
from .expressions import CONFIG_NAMES, config_values, eval_reset
from .model import DEFAULT_PATH, DEFAULT_SOURCE, FORMATS, RegisterMap, load
from .view import ACCESS, Field, Interrupt, Register, RegmapError

__all__ = [
    "ACCESS", "FORMATS", "DEFAULT_PATH", "DEFAULT_SOURCE", "RegmapError", "Field", "Register",
    "Interrupt", "RegisterMap", "load", "generate", "render", "check", "config_values",
    "eval_reset", "CONFIG_NAMES",
]
