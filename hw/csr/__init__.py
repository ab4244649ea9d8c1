"""The control and status register block, generated from the register map
(``s4accel/base/regmap/regmap.yaml``)."""

from .block import CsrBlock

__all__ = ["CsrBlock"]
