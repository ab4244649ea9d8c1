"""Baseline JPEG decoder datapath (issue 23, in progress): entropy decoder, IDCT, colour stage
(upsampling and YCbCr -> RGB) and the decoder chaining them for one scan.

The arithmetic is that of the golden decoder :mod:`s4accel.base.jpeg`; see docs/architecture.md,
"JPEG decoder (in progress)".
"""
