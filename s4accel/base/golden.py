"""Bit-exact golden model of the sparse tensor core numerics (docs/architecture.md, "Numerics").

Every function here *defines* what the RTL must produce, bit for bit.

Raw output
    ``raw[m, n] = wrap32( sum_k x[m, k] * w[n, k] + bias[n] )`` where ``w`` is the pruned dense
    matrix the packed form represents and ``wrap32`` is two's-complement wrap-around to int32
    (the hardware accumulates in 32-bit registers and never saturates).

Requantized int8 output, per output channel ``n`` with ``mult[n]`` in 0..65535 and
``shift[n]`` in 0..47::

    t = raw * mult                                   (exact, fits in 48 bits signed)
    t = (t + (1 << (shift - 1))) >> shift            if shift > 0   (arithmetic shift:
                                                     round half towards +infinity)
    y = clamp(t, -128, 127)
    y = max(y, 0)                                    if relu
    y = lut[y + 128]                                 if a LUT is enabled (256 int8 entries,
                                                     indexed by the value from -128 up)

Convolution and the other CNN operations (NHWC int8 tensors ``[N, H, W, C]``):

- a convolution is :func:`gemm_int8` over :func:`im2col_nhwc`'s rows (zero padding, K in
  ``(kh, kw, cin)`` order) and its ``[N*Ho*Wo, Cout]`` output read back as NHWC
  (:func:`conv_nhwc_int8`);
- a residual addition adds two int8 tensors with independent scales in integers, with the
  requantizer's rounding and saturation (:func:`add_int8`);
- :func:`maxpool_nhwc` takes the maximum over each window (padding never wins).
"""

from __future__ import annotations

import numpy as np

from .config import BANK
from .sparse import PackedWeights

__all__ = ["gemm_raw", "requantize", "gemm_int8", "wrap32", "MULT_BITS", "SHIFT_MAX",
           "conv_out_size", "im2col_nhwc", "conv_nhwc_int8", "add_int8", "maxpool_nhwc"]

MULT_BITS = 16
SHIFT_MAX = 47


def wrap32(a) -> np.ndarray:
    """Two's-complement wrap of an integer array to int32."""
    a = np.asarray(a, dtype=np.int64)
    return ((a + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


def _check_x(x, k) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise ValueError(f"activations must be int8, not dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != k:
        raise ValueError(f"activations must have shape [M, {k}], not {x.shape}")
    return x


def gemm_raw(x, packed: PackedWeights, bias=None) -> np.ndarray:
    """``Y = X @ W.T (+ bias)`` computed from the packed form, int32 with wrap-around.

    ``x`` is int8 ``[M, K]``; ``bias`` is an optional int32 vector of length N.
    """
    x = _check_x(x, packed.k)
    m = x.shape[0]
    nb, nnz = packed.banks, packed.nnz
    xp = np.zeros((m, nb * BANK), dtype=np.int64)
    xp[:, :packed.k] = x
    xb = xp.reshape(m, nb, BANK)
    acc = np.zeros((m, packed.n), dtype=np.int64)
    bank_ix = np.arange(nb)[:, None]
    chunk = max(1, (1 << 22) // max(1, m * nb * nnz))
    for n0 in range(0, packed.n, chunk):
        idx = packed.indices[n0:n0 + chunk].astype(np.intp)            # [n, nb, nnz]
        val = packed.values[n0:n0 + chunk].astype(np.int64)
        gathered = xb[:, bank_ix[None], idx]                            # [m, n, nb, nnz]
        acc[:, n0:n0 + chunk] = (gathered * val[None]).sum(axis=(2, 3))
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (packed.n,):
            raise ValueError(f"bias must have shape ({packed.n},), not {bias.shape}")
        acc += bias.astype(np.int64)
    return wrap32(acc)


def _check_requant(n, mult, shift, lut):
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), (n,))
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), (n,))
    if mult.min() < 0 or mult.max() >= 1 << MULT_BITS:
        raise ValueError(f"mult must be in 0..{(1 << MULT_BITS) - 1}, got {int(mult.min())}.."
                         f"{int(mult.max())}")
    if shift.min() < 0 or shift.max() > SHIFT_MAX:
        raise ValueError(f"shift must be in 0..{SHIFT_MAX}, got {int(shift.min())}.."
                         f"{int(shift.max())}")
    if lut is not None:
        lut = np.asarray(lut)
        if lut.shape != (256,) or lut.dtype != np.int8:
            raise ValueError(f"lut must be 256 int8 entries, not {lut.dtype} {lut.shape}")
    return mult, shift, lut


def requantize(raw, mult, shift, *, relu=False, lut=None) -> np.ndarray:
    """Per-output-channel requantization of int32 ``raw[M, N]`` to int8 (module docstring)."""
    raw = np.asarray(raw)
    if raw.dtype != np.int32:
        raise ValueError(f"raw must be int32, not {raw.dtype}")
    mult, shift, lut = _check_requant(raw.shape[-1], mult, shift, lut)
    t = raw.astype(np.int64) * mult
    rnd = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    t = (t + rnd) >> shift
    y = np.clip(t, -128, 127)
    if relu:
        y = np.maximum(y, 0)
    y = y.astype(np.int8)
    if lut is not None:
        y = lut[y.astype(np.int16) + 128]
    return y


def gemm_int8(x, packed, bias, mult, shift, *, relu=False, lut=None) -> np.ndarray:
    """Sparse GEMM followed by requantization: the int8 output mode."""
    return requantize(gemm_raw(x, packed, bias), mult, shift, relu=relu, lut=lut)


def _check_nhwc(x, what="activations") -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise ValueError(f"{what} must be int8, not dtype {x.dtype}")
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{what} must be a non-empty NHWC array [N, H, W, C], not shape "
                         f"{x.shape}")
    return x


def conv_out_size(size, k, stride, pad) -> int:
    """Output height (or width) of a window ``k`` at ``stride`` over ``size`` pixels with
    ``pad`` zero pixels on both sides: ``(size + 2 * pad - k) // stride + 1``."""
    for name, v, lo in (("kernel size", k, 1), ("stride", stride, 1), ("padding", pad, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
    if size + 2 * pad < k:
        raise ValueError(f"a {k}x{k} window does not fit {size} pixels padded by {pad}")
    return (size + 2 * pad - k) // stride + 1


def _windows(x, kh, kw, stride, pad, fill):
    """``[N, Ho, Wo, kh, kw, C]`` view-free copy of every window of padded ``x``."""
    n, h, w, c = x.shape
    ho, wo = conv_out_size(h, kh, stride, pad), conv_out_size(w, kw, stride, pad)
    xp = np.full((n, h + 2 * pad, w + 2 * pad, c), fill, dtype=x.dtype)
    xp[:, pad:pad + h, pad:pad + w] = x
    out = np.empty((n, ho, wo, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j] = xp[:, i:i + stride * (ho - 1) + 1:stride,
                                    j:j + stride * (wo - 1) + 1:stride]
    return out


def im2col_nhwc(x, kh, kw, stride=1, pad=0) -> np.ndarray:
    """The im2col rows of an int8 NHWC tensor ``x [N, H, W, C]``: ``[N*Ho*Wo, kh*kw*C]`` int8.

    Row ``(n * Ho + oy) * Wo + ox`` holds the window whose top-left input pixel is
    ``(oy * stride - pad, ox * stride - pad)``; column ``(i * kw + j) * C + c`` is input pixel
    ``(oy * stride - pad + i, ox * stride - pad + j)``, channel ``c``, and 0 where that pixel
    lies outside the image (zero padding). ``Ho``, ``Wo``: :func:`conv_out_size`. A weight
    matrix ``[Cout, kh*kw*C]`` in the same ``(kh, kw, cin)`` order makes the convolution one
    GEMM; a bank of 32 along K is then 32 input channels of one kernel tap when ``C`` is a
    multiple of 32."""
    x = _check_nhwc(x)
    win = _windows(x, kh, kw, stride, pad, 0)
    n, ho, wo = win.shape[:3]
    return win.reshape(n * ho * wo, kh * kw * x.shape[3])


def conv_nhwc_int8(x, packed: PackedWeights, bias, mult, shift, *, kh, kw, stride=1, pad=0,
                   relu=False) -> np.ndarray:
    """Convolution of int8 NHWC ``x`` with packed weights ``[Cout, kh*kw*Cin]`` in
    ``(kh, kw, cin)`` order: :func:`gemm_int8` over :func:`im2col_nhwc`, returned as int8
    ``[N, Ho, Wo, Cout]``."""
    x = _check_nhwc(x)
    n, h, w, _ = x.shape
    ho, wo = conv_out_size(h, kh, stride, pad), conv_out_size(w, kw, stride, pad)
    y = gemm_int8(im2col_nhwc(x, kh, kw, stride, pad), packed, bias, mult, shift, relu=relu)
    return y.reshape(n, ho, wo, packed.n)


def add_int8(a, b, mult_a, mult_b, shift, *, relu=False) -> np.ndarray:
    """Residual addition of two int8 tensors of the same shape with independent scales.

    Per channel ``c`` (the last axis; ``mult_a``, ``mult_b`` and ``shift`` are scalars or one
    per channel, ``mult_*`` in 0..65535, ``shift`` in 0..47)::

        t = a * mult_a + b * mult_b                      (exact, fits in 26 bits signed)
        t = (t + (1 << (shift - 1))) >> shift            if shift > 0 (round half up)
        y = clamp(t, -128, 127), then max(y, 0)          if relu

    the requantizer's rounding and saturation (module docstring). With ``a`` at scale ``s_a``,
    ``b`` at ``s_b`` and the output at ``s_y``: ``mult_a * 2**-shift ~= s_a / s_y`` and
    ``mult_b * 2**-shift ~= s_b / s_y``."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != np.int8 or b.dtype != np.int8:
        raise ValueError(f"both addends must be int8, not {a.dtype} and {b.dtype}")
    if a.shape != b.shape or a.ndim == 0:
        raise ValueError(f"addends must have the same shape, not {a.shape} and {b.shape}")
    c = a.shape[-1]
    ma, _, _ = _check_requant(c, mult_a, shift, None)
    mb, sh, _ = _check_requant(c, mult_b, shift, None)
    t = a.astype(np.int64) * ma + b.astype(np.int64) * mb
    rnd = np.where(sh > 0, np.left_shift(np.int64(1), np.maximum(sh - 1, 0)), 0)
    y = np.clip((t + rnd) >> sh, -128, 127)
    if relu:
        y = np.maximum(y, 0)
    return y.astype(np.int8)


def maxpool_nhwc(x, k, stride=None, pad=0) -> np.ndarray:
    """Max pooling of int8 NHWC ``x`` over ``k x k`` windows at ``stride`` (default ``k``)
    with ``pad`` pixels on every side that never win (``pad < k``, so every window holds at
    least one pixel): int8 ``[N, Ho, Wo, C]``, ``Ho`` as for a convolution
    (:func:`conv_out_size`)."""
    x = _check_nhwc(x)
    stride = k if stride is None else stride
    conv_out_size(x.shape[1], k, stride, pad)
    if pad >= k:
        raise ValueError(f"padding must be smaller than the window, not {pad} for k = {k}")
    return _windows(x, k, k, stride, pad, -128).max(axis=(3, 4))
