"""Bit-exact golden model of the vector unit's operations (issue 22): integers only.

Every function here *defines* what the vector unit must produce, bit for bit; its docstring is
the specification (step by step, with the width of every intermediate). Floats appear only in
the ``*_params`` helpers, which run on the host (the compiler) to turn float scales into the
integer parameters the operations take.

Conventions shared by all operations

* ``rshift_round(t, s)`` is ``(t + (1 << (s - 1))) >> s`` for ``s > 0`` and ``t`` for
  ``s == 0``: arithmetic shift, round half towards +infinity, exactly as
  :func:`s4accel.base.golden.requantize` rounds.
* ``clamp(t, lo, hi)`` saturates; nothing wraps unless a docstring says so.
* Fixed-point multipliers follow the tensor core's convention (:data:`golden.MULT_BITS`,
  :data:`golden.SHIFT_MAX`): a real factor ``r`` is ``mult * 2**-shift`` with ``mult`` in
  ``0..65535`` (signed ones in ``-32768..32767``) and ``shift`` in ``0..47``, the largest
  shift that fits (:func:`quantize_multiplier`). This reimplements the convention of
  ``s4accel.sw.compiler.requant_params`` (base may not import sw); unlike that helper it raises
  instead of clamping a factor too large for 16 bits.

Hardware shape (what the definitions ask of an RTL implementation): every per-element step is
adds, shifts, compares and multiplies of at most 33 x 21 bits (LayerNorm's normalization) or
16 x 33 bits (softmax's input scaling, GELU's); the per-row work is one division (softmax's
reciprocal, LayerNorm's reciprocal of sigma) and, for LayerNorm, two wide products (``C * Q``,
16 x 46 bits, and ``S * S``, 32 x 32), one leading-one detection and one 31-step square root.
Softmax reads its row three times (max; exp and sum, keeping ``e`` at 16 bits or recomputing
it; normalization), LayerNorm twice (sums; normalization).

Measured error against float (20 seeds of random inputs; ``tests/base/test_vector.py``
asserts the bounds in the last column on fresh seeds; errors in output LSBs unless stated)

===========================  =========================================  ========  ==========
operation                    inputs                                     measured  asserted
===========================  =========================================  ========  ==========
softmax, 8-bit (2**-8)       rows of 32..512 int32 scores, logits up    0.0039    0.0045
                             to +-24, some rows with one large value,   (prob.)
                             10 % masked
softmax, 16-bit (2**-16)     same                                       0.0013    0.0016
                                                                        (prob.)
softmax, 7-bit (2**-7)       same (int8-safe probabilities for P V)     0.0078    0.0085
                                                                        (prob.)
layernorm int8 -> int8       384 channels, gamma ~ N(1, 0.3), beta ~    0.53      0.6
                             N(0, 0.5), output scale from the range
layernorm int32 -> int8      same, values ~ N(0, 2**18), in_shift 5     0.52      0.6
layernorm, large eps         96 channels, values -2..2, eps 0.02        0.52      0.6
i-GELU int32 -> int8         x in +-6, output scale 6/127               0.88      0.89
i-GELU int32 -> int8         x in +-4, output scale 4/127               1.07      1.09
GELU LUT int8 -> int8        x in +-6                                   0.50      0.5
residual add                 int8 + int8, independent scales            0.50      0.51
element-wise multiply        int8 * int8 -> int8                        0.50      0.51
global average pool          7x7x64 NHWC                                0.49      0.51
attention (one head)         L 64, d 32, scores to +-8, 5 keys masked;  4.13      4.5
                             int8 context (cosine 0.99933, asserted
                             0.999)
===========================  =========================================  ========  ==========

Softmax: the exp polynomial's relative error is at most 2.7e-3; 8-bit probabilities add half an
LSB (2**-9) of rounding and saturate at 255/256, which dominates. Each probability rounds on
its own, so a row's probabilities sum to ``2**out_bits`` only approximately: within 9 (8-bit)
and 15 (16-bit) LSBs for 64-element rows, 47 and 126 for 512-element rows. i-GELU: the I-BERT
erf polynomial's error, up to 0.018 absolute in GELU, dominates; in output LSBs it grows as the
output scale shrinks (``0.5 + 0.0185 / out_scale`` is asserted). The LUT is exact to half an
LSB where the input is int8.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import erf as _erf
from math import sqrt as _sqrt

import numpy as np

from .golden import MULT_BITS, SHIFT_MAX, requantize, wrap32

__all__ = [
    "rshift_round", "quantize_multiplier",
    "EXP_FRAC", "EXP_C1", "EXP_C2", "exp2_neg_frac", "softmax_params", "softmax",
    "isqrt", "LN_FRAC", "LN_RECIP_SHIFT", "LayerNormParams", "layernorm_params", "layernorm",
    "GELU_FRAC", "GeluParams", "gelu_params", "gelu", "gelu_lut", "GELU_MIN", "gelu_zero_point",
    "zero_point",
    "residual_params", "residual_add", "mul_params", "elementwise_mul",
    "row_max", "row_sum", "max_pool", "global_avg_pool_params", "global_avg_pool",
    "AttentionParams", "attention_params", "attention",
]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def rshift_round(t, s) -> np.ndarray:
    """``(t + 2**(s-1)) >> s`` (``t`` if ``s`` is 0): round half up, on int64 arrays."""
    t = np.asarray(t, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    rnd = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    return (t + rnd) >> s


def quantize_multiplier(real, *, signed=False) -> tuple[np.ndarray, np.ndarray]:
    """``(mult, shift)`` with ``mult * 2**-shift ~= real``, elementwise, shift as large as fits.

    ``mult`` is in ``0..65535`` (``-32768..32767`` when ``signed``), ``shift`` in ``0..47``.
    A zero factor gives ``(0, 0)``; a negative one needs ``signed``; a factor too large for
    ``mult`` at shift 0, or not finite, raises ``ValueError``. Scalars give 0-d arrays.
    """
    r = np.asarray(real, dtype=np.float64)
    if not np.all(np.isfinite(r)):
        raise ValueError(f"multiplier factors must be finite, got {r[~np.isfinite(r)][:3]}")
    if not signed and np.any(r < 0):
        raise ValueError(f"multiplier factors must be >= 0 (or signed=True), got "
                         f"{r[r < 0][:3]}")
    lim = (1 << (MULT_BITS - 1)) if signed else (1 << MULT_BITS)
    lo = -lim if signed else 0
    shift = np.zeros(r.shape, np.int64)
    with np.errstate(over="ignore"):            # a huge factor overflows to inf: "does not fit"
        for sh in range(1, SHIFT_MAX + 1):      # the largest shift at which mult fits
            m = np.round(r * 2.0 ** sh)
            shift = np.where((m >= lo) & (m < lim), sh, shift)
    fm = np.round(r * np.exp2(shift))
    bad = (fm < lo) | (fm >= lim)
    if np.any(bad):
        raise ValueError(f"multiplier factor {r[bad].ravel()[0]} does not fit: |mult| must "
                         f"stay below {lim} at shift 0")
    mult = fm.astype(np.int64)
    shift = np.where(mult == 0, 0, shift)
    return mult, shift


def _int_array(x, what, lo=INT32_MIN, hi=INT32_MAX) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{what} must be an integer array, not dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{what} must lie in {lo}..{hi}, got {int(x.min())}..{int(x.max())}")
    return x


def _mask(mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape, bool)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask must have the shape of the input {shape}, not {mask.shape}")
    return mask.astype(bool)


def _check_mult(m, shift, what, signed=False):
    m = np.asarray(m, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    lo, hi = ((-(1 << (MULT_BITS - 1)), (1 << (MULT_BITS - 1)) - 1) if signed
              else (0, (1 << MULT_BITS) - 1))
    if m.size and (m.min() < lo or m.max() > hi):
        raise ValueError(f"{what} multiplier must be in {lo}..{hi}, got {int(m.min())}.."
                         f"{int(m.max())}")
    if shift.size and (shift.min() < 0 or shift.max() > SHIFT_MAX):
        raise ValueError(f"{what} shift must be in 0..{SHIFT_MAX}, got {int(shift.min())}.."
                         f"{int(shift.max())}")
    return m, shift


# ----------------------------------------------------------------------------------- softmax

#: Fraction bits of the exponential: ``2**-f`` for ``f`` in [0, 1) is ``EXP_FRAC``-bit fixed
#: point, so ``exp`` of the row maximum is exactly ``1 << EXP_FRAC``.
EXP_FRAC = 15
#: ``2**-f ~= 1 + c1*f + c2*f**2`` with ``c2 = 0.16988`` (minimax relative error with
#: ``p(0) = 1`` and ``p(1) = 1/2`` exact; max relative error 2.7e-3), in ``EXP_FRAC``-bit
#: fixed point.
EXP_C2 = 5567                          # round(0.16988 * 2**15)
EXP_C1 = -(1 << (EXP_FRAC - 1)) - EXP_C2   # -(0.5 + c2), so that p(1) = 1/2 exactly
_SOFTMAX_MAX_ROW = 1 << 16


def exp2_neg_frac(r) -> np.ndarray:
    """``2**(-r / 2**15) * 2**15`` for ``r`` in ``0..32767``: the shift-and-polynomial core.

    ``e = 2**15 + rshift_round((EXP_C1 << 15) * r + EXP_C2 * r * r, 30)``: one rounding of
    the exact polynomial (``r * r`` 30 bits, ``EXP_C2 * r * r`` 43 bits, ``EXP_C1 * r`` 31
    bits signed, the sum 47 bits signed), so ``e`` never increases with ``r``. ``e`` is in
    ``16385..32768``; ``e(0) = 32768`` exactly.
    """
    r = np.asarray(r, dtype=np.int64)
    return (1 << EXP_FRAC) + rshift_round((EXP_C1 << EXP_FRAC) * r + EXP_C2 * r * r,
                                          2 * EXP_FRAC)


def softmax_params(scale) -> tuple[int, int]:
    """``(mult, shift)`` for :func:`softmax` of scores whose real value is ``score * scale``:
    ``mult * 2**-shift ~= scale / ln 2 * 2**15`` (``scale`` at most about 1.38)."""
    m, s = quantize_multiplier(float(scale) / np.log(2.0) * (1 << EXP_FRAC))
    if m == 0:
        raise ValueError(f"softmax scale {scale} must be positive")
    return int(m), int(s)


def softmax(x, mult, shift, mask=None, *, out_bits=8) -> np.ndarray:
    """Integer softmax along the last axis (I-BERT style), probabilities in ``out_bits`` bits.

    ``x`` holds int32 scores (any integer dtype in the int32 range) whose real value is
    ``x * scale``; ``(mult, shift)`` come from :func:`softmax_params` (``mult * 2**-shift ~=
    scale / ln 2 * 2**15``). ``mask`` (same shape, bool or 0/1) marks the valid positions;
    masked ones take no part and get probability 0. Rows hold at most 65536 elements.
    ``out_bits`` is 8, 16 or 7 (probabilities 0..127: an int8 operand of the tensor core, the
    P of attention's P V). Per row:

    1. ``m = max(x[valid])`` (int32). A row with no valid position outputs all zeros.
    2. ``d = m - x`` (0..2**32-1, 33-bit signed), ``t = rshift_round(d * mult, shift)``
       (49-bit product): ``d * scale / ln 2`` in 15-bit fixed point.
    3. ``z = min(t >> 15, 31)``, ``r = t & 0x7fff``; ``e = rshift_round(exp2_neg_frac(r),
       z)`` (rounded, not floored: a floor's bias adds up over long rows of small values;
       ``e`` in 0..32768, 16 bits unsigned; ``e = 32768`` at the maximum, 0 from ``z = 17``
       on); ``e = 0`` where masked. So ``e ~= 2**15 * exp((x - m) * scale)``.
    4. ``sum = sum(e)`` (at most 2**31, 32 bits unsigned; at least 32768 when a position is
       valid).
    5. Reciprocal, once per row: ``R = 15 + out_bits + 8``, ``recip = floor(2**R / sum)``
       (at most ``2**(out_bits + 8)``: 16, 17 or 25 bits unsigned).
    6. ``p = min(rshift_round(e * recip, R - out_bits), 2**out_bits - 1)`` (33- or 41-bit
       product), returned as uint8 (``out_bits`` 7 or 8) or uint16 (16).

    The probability is ``p * 2**-out_bits``. The flooring of ``recip`` costs less than
    ``2**-8`` LSB; rounding adds half an LSB; the exp polynomial's relative error is at most
    2.7e-3 of each probability; a probability that rounds to ``2**out_bits`` saturates one
    LSB lower. Measured against float softmax (module docstring): at most 0.0039 (8 bits)
    and 0.0013 (16 bits) in probability, 0.0078 (7 bits: the saturation at 127/128).
    """
    if out_bits not in (7, 8, 16):
        raise ValueError(f"out_bits must be 7, 8 or 16, not {out_bits!r}")
    x = _int_array(x, "softmax scores")
    if x.ndim < 1 or not 1 <= x.shape[-1] <= _SOFTMAX_MAX_ROW:
        raise ValueError(f"softmax rows must hold 1..{_SOFTMAX_MAX_ROW} elements, not shape "
                         f"{x.shape}")
    mult, shift = _check_mult(mult, shift, "softmax")
    valid = _mask(mask, x.shape)
    m = np.where(valid, x, INT32_MIN).max(axis=-1, keepdims=True)
    d = np.where(valid, m - x, 0)
    t = rshift_round(d * mult, shift)
    z = np.minimum(t >> EXP_FRAC, 31)
    r = t & ((1 << EXP_FRAC) - 1)
    e = np.where(valid, rshift_round(exp2_neg_frac(r), z), 0)
    total = e.sum(axis=-1, keepdims=True)
    rb = EXP_FRAC + out_bits + 8
    recip = np.where(total > 0, (np.int64(1) << rb) // np.maximum(total, 1), 0)
    p = np.minimum(rshift_round(e * recip, rb - out_bits), (1 << out_bits) - 1)
    return p.astype(np.uint16 if out_bits == 16 else np.uint8)


# --------------------------------------------------------------------------------- LayerNorm

#: Fraction bits of the normalized value ``(x - mean) / sigma`` inside :func:`layernorm`.
LN_FRAC = 10
#: The per-row reciprocal of sigma: ``floor(2**LN_RECIP_SHIFT / sd)`` with ``sd`` normalized
#: to ``[2**29.5, 2**30.5)``, so 21 bits.
LN_RECIP_SHIFT = 50
_LN_MAX_C = 1 << 15


def isqrt(v) -> np.ndarray:
    """``floor(sqrt(v))`` for int64 ``v`` in ``0..2**63-1``, bitwise (restoring), 32 steps.

    ``res = 0``, ``bit = 1 << 62``; while ``bit > 0``: if ``v >= res + bit``: ``v -= res +
    bit``, ``res = (res >> 1) + bit``, else ``res >>= 1``; then ``bit >>= 2``. One result bit
    per step, adds and compares only.
    """
    v = np.array(v, dtype=np.int64)
    if v.size and v.min() < 0:
        raise ValueError("isqrt takes 0..2**63-1")
    res = np.zeros_like(v)
    bit = np.int64(1) << 62
    while bit > 0:
        take = v >= res + bit
        v = np.where(take, v - (res + bit), v)
        res = np.where(take, (res >> 1) + bit, res >> 1)
        bit >>= 2
    return res


@dataclass(frozen=True)
class LayerNormParams:
    """Integer parameters of :func:`layernorm` (build them with :func:`layernorm_params`).

    ``in_shift`` (0..31) scales the input down to int16; ``eps`` (0..2**40) is added to
    ``C**2 * variance`` in input units; ``mult`` (signed 16-bit), ``bias`` (``|bias| <
    2**47``) and ``shift`` (0..47) are per channel, length C.
    """

    in_shift: int
    eps: int
    mult: np.ndarray
    bias: np.ndarray
    shift: np.ndarray


def layernorm_params(in_scale, gamma, beta, out_scale, *, eps=1e-12, in_shift=0,
                     bias_bits=48):
    """Fold float ``gamma``/``beta`` (length C), the input scale (of the int value before
    ``in_shift``) and the int8 output scale into :class:`LayerNormParams`. ``bias_bits``:
    the signed width the biases must fit with room for rounding (``|bias| < 2**(bias_bits -
    2)``; the device's LAYERNORM VOP keeps 40 bits, ``VopBody``).

    Output channel c is ``y * gamma[c] + beta[c]`` with ``y = rshift_round(...) * 2**-10``
    (:func:`layernorm`), so ``mult[c] * 2**-shift[c] ~= gamma[c] / out_scale * 2**-10`` and
    ``bias[c] = round(beta[c] / out_scale * 2**shift[c])``. ``eps`` becomes ``round(eps * C**2
    / s**2)`` with ``s = in_scale * 2**in_shift``.
    """
    gamma = np.asarray(gamma, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    c = gamma.shape[0]
    if gamma.shape != (c,) or beta.shape != (c,):
        raise ValueError(f"gamma and beta must be vectors of one length, not {gamma.shape} "
                         f"and {beta.shape}")
    real = gamma / out_scale / (1 << LN_FRAC)
    mult, shift = quantize_multiplier(real, signed=True)
    if not 8 <= bias_bits <= 48:
        raise ValueError(f"bias_bits must be in 8..48, not {bias_bits}")
    # the largest shift that keeps |bias| below 2**(bias_bits - 2); a zero gamma (shift 0)
    # gets it too
    top = np.abs(beta / out_scale)
    free = np.floor(np.log2((1 << (bias_bits - 2)) / np.maximum(top, 1e-30))).clip(0, SHIFT_MAX)
    shift = np.where(mult == 0, free, np.minimum(shift, free)).astype(np.int64)
    mult = np.round(real * np.exp2(shift)).astype(np.int64)
    bias = np.round(beta / out_scale * np.exp2(shift)).astype(np.int64)
    s = in_scale * 2.0 ** in_shift
    eps_i = int(min(round(eps * c * c / (s * s)), 1 << 40))
    return LayerNormParams(in_shift=int(in_shift), eps=eps_i, mult=mult, bias=bias, shift=shift)


def layernorm(x, p: LayerNormParams) -> np.ndarray:
    """Integer LayerNorm over the last axis (C channels, 2..32768), int8 output.

    ``x`` is int8, or int32 (a residual sum) brought to int16 by ``p.in_shift``. Per row:

    1. ``v = clamp(rshift_round(x, in_shift), -32768, 32767)`` (int16).
    2. ``S = sum(v)`` (32-bit signed), ``Q = sum(v * v)`` (46-bit unsigned).
    3. ``V = C * Q - S * S + eps`` (61-bit unsigned; ``C * Q - S * S = C**2 * variance``
       exactly, never negative). If ``V`` is 0 (all values equal and ``eps`` 0), ``yn = 0``
       in step 5.
    4. Normalize and take the root: ``j = (61 - bit_length(V)) // 2`` (0..30; a leading-one
       detector), ``sd = isqrt(V << 2*j)`` (:func:`isqrt`; ``V << 2*j`` is in ``[2**59,
       2**61)``, so ``sd`` is 31 bits and ``sd ~= 2**j * C * sigma`` to 2**-29 relative).
       Reciprocal, once per row: ``recip = floor(2**50 / sd)`` (21 bits unsigned, good to
       2**-19 relative).
    5. ``n = C * v - S`` (C times the distance from the mean, exact, 33-bit signed),
       ``yn = rshift_round(n * recip, 40 - j)`` (54-bit product): ``(v - mean) / sigma`` in
       10-bit fixed point, ``|yn| <= sqrt(C) * 2**10`` (19-bit signed).
    6. Per channel c: ``t = yn * mult[c] + bias[c]`` (49-bit signed), ``out = clamp(
       rshift_round(t, shift[c]), -128, 127)`` as int8.

    Error against float LayerNorm of the same int input (module docstring): ``yn`` is good to
    half of 2**-10 plus 2**-19 relative; the output is within 0.55 LSB (rounding to int8 is 0.5
    of it). An all-equal row gives ``round(beta / out_scale)``.
    """
    mult, shift = _check_mult(p.mult, p.shift, "layernorm", signed=True)
    x = _int_array(x, "layernorm input")
    c = x.shape[-1] if x.ndim else 0
    if not 2 <= c <= _LN_MAX_C:
        raise ValueError(f"layernorm needs 2..{_LN_MAX_C} channels on the last axis, not shape "
                         f"{x.shape}")
    bias = np.asarray(p.bias, dtype=np.int64)
    if mult.shape != (c,) or shift.shape != (c,) or bias.shape != (c,):
        raise ValueError(f"layernorm mult, shift and bias must have length {c}")
    if bias.size and np.abs(bias).max() >= 1 << 47:
        raise ValueError("layernorm bias must satisfy |bias| < 2**47")
    if not 0 <= p.in_shift <= 31 or not 0 <= p.eps <= 1 << 40:
        raise ValueError(f"layernorm in_shift must be in 0..31 and eps in 0..2**40, not "
                         f"{p.in_shift} and {p.eps}")
    v = np.clip(rshift_round(x, p.in_shift), -32768, 32767)
    s = v.sum(axis=-1, keepdims=True)
    q = (v * v).sum(axis=-1, keepdims=True)
    var = c * q - s * s + p.eps
    bl = np.zeros_like(var)
    for b in range(61):                       # bit_length(var), a leading-one detector
        bl = np.where(var >> b > 0, b + 1, bl)
    j = (61 - bl) // 2
    sd = isqrt(var << (2 * j))
    recip = np.where(var > 0, (np.int64(1) << LN_RECIP_SHIFT) // np.maximum(sd, 1), 0)
    n = c * v - s
    yn = rshift_round(n * recip, LN_RECIP_SHIFT - LN_FRAC - j)
    t = yn * mult + bias
    return np.clip(rshift_round(t, shift), -128, 127).astype(np.int8)


# ------------------------------------------------------------------------------------- GELU

#: Fraction bits of ``x / sqrt(2)`` and of the erf polynomial inside :func:`gelu`.
GELU_FRAC = 14
_GELU_A = -0.2888
_GELU_B = 1.769
#: ``round(-0.2888 * 2**14)`` and ``round(1.769 * 2**14)``: I-BERT's erf polynomial
#: ``erf(u) ~= sign(u) * (a * (min(|u|, b) - b)**2 + 1)``.
GELU_QA = round(_GELU_A * (1 << GELU_FRAC))
GELU_QB = round(_GELU_B * (1 << GELU_FRAC))


@dataclass(frozen=True)
class GeluParams:
    """Integer parameters of :func:`gelu` (from :func:`gelu_params`): ``(u_mult, u_shift)``
    scale the input to ``x / sqrt 2`` in 14-bit fixed point; ``(mult, shift)`` requantize
    the result to int8 (:func:`s4accel.base.golden.requantize`)."""

    u_mult: int
    u_shift: int
    mult: int
    shift: int


def gelu_params(in_scale, out_scale) -> GeluParams:
    """Parameters of :func:`gelu` for an int32 input of scale ``in_scale`` (at most about
    5.6) and an int8 output of scale ``out_scale``."""
    um, us = quantize_multiplier(in_scale / _sqrt(2.0) * (1 << GELU_FRAC))
    m, s = quantize_multiplier(in_scale / out_scale)
    if um == 0 or m == 0:
        raise ValueError(f"gelu scales must be positive, not {in_scale} and {out_scale}")
    return GeluParams(int(um), int(us), int(m), int(s))


def gelu(x, p: GeluParams) -> np.ndarray:
    """I-GELU (I-BERT) of int32 ``x`` (real value ``x * in_scale``), int8 output.

    1. ``u = clamp(rshift_round(x * u_mult, u_shift), -2**31, 2**31-1)`` (48-bit product):
       ``x / sqrt 2`` with 14 fraction bits.
    2. ``a = min(|u|, GELU_QB)`` (GELU_QB = 28983, 1.769), ``w = a - GELU_QB`` (<= 0, 16-bit
       signed), ``sq = rshift_round(w * w, 14)`` (0..51271, 30-bit product),
       ``l = 2**14 + rshift_round(GELU_QA * sq, 14)`` (GELU_QA = -4732; 0..16384),
       ``erf = sign(u) * l`` (15-bit signed, 14 fraction bits).
    3. ``g = rshift_round(x * (2**14 + erf), 15)`` (47-bit product): ``x * (1 + erf) / 2``
       in the input's units, int32.
    4. ``out = requantize(g, mult, shift)`` (golden's requantization, int8).

    The erf polynomial is I-BERT's: its error in erf is up to 0.096 (at 0, where ``x``
    multiplies it), in GELU up to 0.018 absolute, so the output is within ``0.5 + 0.0185 /
    out_scale`` LSB; measured against float GELU (module docstring): 0.88 LSB for ``x`` in
    +-6 and ``out_scale = 6/127``, 1.07 LSB for +-4 and 4/127.
    """
    x = _int_array(x, "gelu input")
    _check_mult(p.u_mult, p.u_shift, "gelu input")
    u = np.clip(rshift_round(x * p.u_mult, p.u_shift), INT32_MIN, INT32_MAX)
    a = np.minimum(np.abs(u), GELU_QB)
    w = a - GELU_QB
    sq = rshift_round(w * w, GELU_FRAC)
    lv = (1 << GELU_FRAC) + rshift_round(GELU_QA * sq, GELU_FRAC)
    e = np.sign(u) * lv
    g = rshift_round(x * ((1 << GELU_FRAC) + e), GELU_FRAC + 1)
    shape = g.shape
    flat = g.reshape(-1, 1).astype(np.int32)
    return requantize(flat, p.mult, p.shift).reshape(shape)


def _gelu_float(v):
    return np.array([0.5 * t * (1.0 + _erf(t / _sqrt(2.0))) for t in np.ravel(v)]).reshape(
        np.shape(v))


#: GELU's minimum (at x = -0.7518): its output is one-sided, >= this.
GELU_MIN = -0.16997120


def gelu_lut(in_scale, out_scale, zero=0) -> np.ndarray:
    """The 256-entry int8 table for GELU of an int8 value: ``lut[i] = clamp(round(gelu((i -
    128) * in_scale) / out_scale) - zero, -128, 127)``, indexed as :func:`golden.requantize`
    indexes its ``lut`` (entry ``y + 128`` for value ``y``). Error: half an output LSB.
    ``zero``: an integer zero point (:func:`gelu_zero_point`): the codes stand for
    ``(code + zero) * out_scale``, so the one-sided output can use all 256 codes."""
    pre = np.arange(-128, 128) * float(in_scale)
    return np.clip(np.round(_gelu_float(pre) / out_scale) - int(zero), -128,
                   127).astype(np.int8)


def zero_point(lo, hi) -> tuple[float, int]:
    """``(scale, zero)`` of int8 codes for values in ``[lo, hi]`` (asymmetric quantization):
    the range over 253 steps and the integer nearest its middle, so ``code = round(x /
    scale) - zero`` maps ``[lo, hi]`` into -127 .. 127 (half a step spare each side) and 0.0
    to ``-zero`` exactly. An empty range gives ``(1.0, 0)``."""
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        return 1.0, 0
    scale = (hi - lo) / 253
    return scale, int(round((hi + lo) / 2 / scale))


def gelu_zero_point(peak) -> tuple[float, int]:
    """:func:`zero_point` of GELU outputs in ``[GELU_MIN, peak]``."""
    return zero_point(GELU_MIN, max(float(peak), 1e-6))


# ------------------------------------------------------------------------ element-wise ops

def residual_params(a_scale, b_scale, out_scale) -> tuple[int, int, int]:
    """``(a_mult, b_mult, shift)`` for :func:`residual_add`: ``x_mult * 2**-shift ~= x_scale
    / out_scale``, one shift (the largest at which both multipliers fit 16 bits)."""
    ra, rb = a_scale / out_scale, b_scale / out_scale
    _, shift = quantize_multiplier(max(ra, rb))
    shift = int(shift)
    return round(ra * 2.0 ** shift), round(rb * 2.0 ** shift), shift


def residual_add(a, b, a_mult, b_mult, shift, *, out_bits=8, relu=False) -> np.ndarray:
    """``clamp(rshift_round(a * a_mult + b * b_mult, shift))`` of two int8 tensors.

    ``a_mult``, ``b_mult`` in 0..65535 (24-bit products, 25-bit sum), ``shift`` in 0..47.
    Each of the three is a scalar (one for the whole tensor) or, per channel, a 1-d array
    as long as the last axis (channel ``c`` takes element ``c``; the VOP's ``chan`` mode).
    The result saturates to int8 (``out_bits`` 8) or int16 (16, for example a wider residual
    stream feeding :func:`layernorm`). Error: half an output LSB plus the multipliers'
    rounding (2**-16 relative at most). ``relu`` then sets negative results to 0 (after the
    saturation, as :func:`golden.requantize` does).
    """
    if out_bits not in (8, 16):
        raise ValueError(f"out_bits must be 8 or 16, not {out_bits!r}")
    a = _int_array(a, "residual input a", -128, 127)
    b = _int_array(b, "residual input b", -128, 127)
    if a.shape != b.shape:
        raise ValueError(f"residual inputs must have one shape, not {a.shape} and {b.shape}")
    chans = a.shape[-1] if a.ndim else 1
    for name, v in (("a_mult", a_mult), ("b_mult", b_mult), ("shift", shift)):
        v = np.asarray(v)
        if v.ndim and v.shape != (chans,):
            raise ValueError(f"residual {name} must be a scalar or one per channel ({chans}), "
                             f"not shape {v.shape}")
    a_mult, shift = _check_mult(a_mult, shift, "residual")
    b_mult, _ = _check_mult(b_mult, 0, "residual")
    t = rshift_round(a * a_mult + b * b_mult, shift)
    hi = (1 << (out_bits - 1)) - 1
    t = np.clip(t, -hi - 1, hi)
    if relu:
        t = np.maximum(t, 0)
    return t.astype(np.int8 if out_bits == 8 else np.int16)


def mul_params(a_scale, b_scale, out_scale) -> tuple[int, int]:
    """``(mult, shift)`` for :func:`elementwise_mul`: ``mult * 2**-shift ~= a_scale *
    b_scale / out_scale``."""
    m, s = quantize_multiplier(a_scale * b_scale / out_scale)
    return int(m), int(s)


def elementwise_mul(a, b, mult, shift, *, relu=False) -> np.ndarray:
    """``clamp(rshift_round(a * b * mult, shift), -128, 127)`` of two int8 tensors (16-bit
    signed product times a 16-bit unsigned multiplier: 32 bits), negative results set to 0
    after the saturation when ``relu``. Error: half an LSB."""
    a = _int_array(a, "multiply input a", -128, 127)
    b = _int_array(b, "multiply input b", -128, 127)
    if a.shape != b.shape:
        raise ValueError(f"multiply inputs must have one shape, not {a.shape} and {b.shape}")
    _check_mult(mult, shift, "multiply")
    t = np.clip(rshift_round(a * b * mult, shift), -128, 127)
    return (np.maximum(t, 0) if relu else t).astype(np.int8)


def row_max(x, mask=None) -> np.ndarray:
    """Maximum of each row (last axis) over the valid positions, int32; a row with none
    gives ``-2**31``."""
    x = _int_array(x, "row_max input")
    return np.where(_mask(mask, x.shape), x, INT32_MIN).max(axis=-1).astype(np.int32)


def row_sum(x, mask=None) -> np.ndarray:
    """Sum of each row (last axis) over the valid positions, accumulated in 32 bits with
    wrap-around (:func:`golden.wrap32`), as the tensor core accumulates; exact for int8 rows
    up to 2**24 elements."""
    x = _int_array(x, "row_sum input")
    return wrap32(np.where(_mask(mask, x.shape), x, 0).sum(axis=-1))


# ----------------------------------------------------------------------------------- pooling

def max_pool(x, window, stride=None) -> np.ndarray:
    """Max pooling of int8 NHWC ``x`` over ``window`` (``(kh, kw)`` or an int) at ``stride``
    (default: the window), no padding: ``out[n, i, j, c] = max(x[n, i*sh:i*sh+kh,
    j*sw:j*sw+kw, c])``, output ``[N, (H-kh)//sh + 1, (W-kw)//sw + 1, C]`` int8. Exact."""
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 4:
        raise ValueError(f"max_pool takes int8 NHWC, not {x.dtype} with shape {x.shape}")
    kh, kw = (window, window) if np.isscalar(window) else window
    sh, sw = (kh, kw) if stride is None else ((stride, stride) if np.isscalar(stride)
                                              else stride)
    h, w = x.shape[1:3]
    if not (1 <= kh <= h and 1 <= kw <= w and sh >= 1 and sw >= 1):
        raise ValueError(f"max_pool window {kh}x{kw} stride {sh}x{sw} does not fit {h}x{w}")
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -128, np.int8)
    for di in range(kh):
        for dj in range(kw):
            out = np.maximum(out, x[:, di:di + sh * (oh - 1) + 1:sh,
                                    dj:dj + sw * (ow - 1) + 1:sw])
    return out


def global_avg_pool_params(hw, in_scale=1.0, out_scale=1.0) -> tuple[int, int]:
    """``(mult, shift)`` for :func:`global_avg_pool` over ``hw`` positions: ``mult *
    2**-shift ~= in_scale / (out_scale * hw)``."""
    m, s = quantize_multiplier(in_scale / (out_scale * hw))
    return int(m), int(s)


def global_avg_pool(x, mult, shift) -> np.ndarray:
    """Global average pooling of int8 NHWC ``x`` to int8 ``[N, C]``: ``sum`` over H and W
    (int32, exact below 2**24 positions), then :func:`golden.requantize` with ``(mult,
    shift)`` (from :func:`global_avg_pool_params`). Error: half an LSB plus the multiplier's
    rounding."""
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 4:
        raise ValueError(f"global_avg_pool takes int8 NHWC, not {x.dtype} with shape "
                         f"{x.shape}")
    if x.shape[1] * x.shape[2] >= 1 << 24:
        raise ValueError("global_avg_pool takes fewer than 2**24 positions")
    s = x.astype(np.int64).sum(axis=(1, 2)).astype(np.int32)
    return requantize(s, mult, shift)


@dataclass(frozen=True)
class AttentionParams:
    """The integer parameters of one head's :func:`attention`: the scores' requantization
    (``s_mult``, ``s_shift``: the Q K^T accumulator to int8 scores), the softmax's input
    scaling (``sm_mult``, ``sm_shift``, :func:`softmax_params` of the scores' scale) and the
    context's requantization (``c_mult``, ``c_shift``: the P V accumulator, P in units of
    2**-7, to int8)."""
    s_mult: int
    s_shift: int
    sm_mult: int
    sm_shift: int
    c_mult: int
    c_shift: int


def attention_params(q_scale, k_scale, v_scale, score_scale, out_scale, d) -> AttentionParams:
    """:class:`AttentionParams` for int8 Q, K, V of scales ``q_scale``, ``k_scale``,
    ``v_scale`` (real = int * scale), scores ``Q K^T / sqrt(d)`` quantized at
    ``score_scale`` and the context at ``out_scale`` (the compiler calibrates both)."""
    sm, ss = quantize_multiplier(q_scale * k_scale / _sqrt(d) / score_scale)
    m, s = softmax_params(score_scale)
    cm, cs = quantize_multiplier(v_scale * 2.0 ** -7 / out_scale)
    return AttentionParams(int(sm), int(ss), m, s, int(cm), int(cs))


def attention(q, k, v, p: AttentionParams, mask_n=0) -> np.ndarray:
    """One head of scaled dot-product attention on int8 tensors, as the device runs it (two
    dense GEMMs on the tensor core around a SOFTMAX VOP, ``sw/attention.py``).

    ``q [L, d]``, ``k [Lk, d]``, ``v [Lk, d]`` int8; ``mask_n`` (0: none): only keys
    ``j < mask_n`` take part (a padded sentence). Returns the int8 context ``[L, d]``:

    1. ``acc = q @ k^T`` (int32: at most ``d * 2**14``);
    2. ``s = requantize(acc, s_mult, s_shift)``: int8 scores (the GEMM's requantizer: the
       ``1 / sqrt(d)`` and the Q and K scales fold into it);
    3. ``prob = softmax(s, sm_mult, sm_shift, mask, out_bits=7)``: 0..127, in units of 2**-7
       (:func:`softmax`; 7 bits so that P is an int8 operand of the tensor core);
    4. ``ctx = requantize(prob @ v, c_mult, c_shift)`` (int32 accumulator: at most
       ``Lk * 127 * 128``).
    """
    q, k, v = (np.asarray(t) for t in (q, k, v))
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dtype != np.int8 or t.ndim != 2:
            raise ValueError(f"{name} must be a 2-D int8 array, not {t.dtype} {t.shape}")
    if q.shape[1] != k.shape[1] or k.shape != v.shape:
        raise ValueError(f"q {q.shape}, k {k.shape} and v {v.shape} do not make one head")
    acc = wrap32(q.astype(np.int64) @ k.astype(np.int64).T)
    s = requantize(acc, p.s_mult, p.s_shift)
    lk = k.shape[0]
    valid = np.broadcast_to(np.arange(lk) < (mask_n or lk), s.shape)
    prob = softmax(s.astype(np.int32), p.sm_mult, p.sm_shift, valid, out_bits=7)
    acc2 = wrap32(prob.astype(np.int64) @ v.astype(np.int64))
    return requantize(acc2, p.c_mult, p.c_shift)
