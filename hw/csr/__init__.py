"""The control and status register block, generated from the register map (``sw/regmap.yaml``)."""

from .block import CsrBlock

__all__ = ["CsrBlock"]
