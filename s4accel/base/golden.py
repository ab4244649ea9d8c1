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
"""

from __future__ import annotations

import numpy as np

from .config import BANK
from .sparse import PackedWeights

__all__ = ["gemm_raw", "requantize", "gemm_int8", "wrap32", "MULT_BITS", "SHIFT_MAX"]

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
