"""Baseline JPEG decoder datapath (issue 23, in progress): entropy decoder and IDCT.

The arithmetic is that of the golden decoder :mod:`s4accel.base.jpeg`; see docs/architecture.md,
"JPEG decoder (in progress)".
"""
