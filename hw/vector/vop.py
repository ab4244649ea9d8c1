"""What a VOP descriptor does (:class:`~..cmd.descriptors.VopBody`), in numpy: the definition
the functional model runs and the SPU's vector sequencer must match bit for bit.

Each row goes through the golden operation of :mod:`s4accel.base.vector` on its own; rows run
one after another (row tile by row tile, row 0 first), each read whole before its results are
written. A result overwrites its span of the row's memory only (the other rows' memories keep
their contents).
"""

import numpy as np

from ...base import vector as V
from ...base.config import BANK
from ..cmd.descriptors import VopOp, vop_in_words, vop_par_words, vop_words

__all__ = ["vop_reference", "vop_spans", "vop_fields", "vop_cycles", "ln_eps", "ln_par_params",
           "add_par_params", "softmax_bits", "to_wgt_dims", "to_wgt_words", "to_wgt_image",
           "to_wgt_cycles", "VOP_FIELDS"]

#: The fields of a :class:`VopBody` that :func:`vop_reference` takes.
VOP_FIELDS = ("op", "n", "m_tiles", "a_addr", "b_addr", "out_addr", "a_stride", "b_stride",
              "out_stride", "mask_n", "relu", "wide", "shift", "mult", "mult_b", "u_mult",
              "u_shift", "chan")


def vop_fields(body) -> dict:
    """The field values of a decoded :class:`VopBody` (``Descriptor.from_bits(...).body.vop``
    or ``decode_descriptor(...).body.vop``) as plain ints, the keyword arguments of
    :func:`vop_reference`."""
    return {k: int(getattr(getattr(body, k), "value", getattr(body, k))) for k in VOP_FIELDS}


def vop_spans(op, n, m_tiles, *, a_addr, b_addr, out_addr, a_stride, b_stride, out_stride,
              wide, cols=None, rows=None, chan=0, mult=0):
    """``{"a": (start, end), "b": ..., "out": ...}``: the ACT words (end exclusive, not
    wrapped) each operand spans; ``"b"`` only for ADD and MUL; ``"par"`` (PAR words) for a
    LAYERNORM (from ``b_addr``) or an ADD with ``chan`` (from ``mult``) when ``cols`` is
    given; TO_WGT has no ``"out"`` but ``"wgt"`` (WGT words,
    :func:`to_wgt_words`) when ``rows`` and ``cols`` are given."""
    b, w, ow = vop_words(op, n, wide)
    bi = vop_in_words(op, n, wide)
    sa, sb, so = a_stride or bi, b_stride or b, out_stride or ow
    spans = {"a": (a_addr, a_addr + (m_tiles - 1) * sa + bi)}
    if VopOp(op) == VopOp.TO_WGT:
        if rows and cols:
            spans["wgt"] = (out_addr, out_addr + to_wgt_words(n, m_tiles, rows, cols, wide))
        return spans
    spans["out"] = (out_addr, out_addr + (m_tiles - 1) * so + ow)
    if VopOp(op) in (VopOp.ADD, VopOp.MUL):
        spans["b"] = (b_addr, b_addr + (m_tiles - 1) * sb + b)
    if VopOp(op) == VopOp.LAYERNORM and cols:
        spans["par"] = (b_addr, b_addr + vop_par_words(op, n, cols))
    if VopOp(op) == VopOp.ADD and chan and cols:
        spans["par"] = (mult, mult + vop_par_words(op, n, cols, chan))
    return spans


def softmax_bits(wide, relu) -> int:
    """A SOFTMAX's probability width from its ``wide`` and ``relu`` fields: 16, 7 or 8 (the
    descriptor refuses both set; the unit lets ``wide`` win)."""
    return 16 if wide else 7 if relu else 8


def ln_eps(mult, mult_b, u_mult) -> int:
    """LAYERNORM's ``eps`` from its three descriptor fields (``VopBody``)."""
    return int(mult) | int(mult_b) << 16 | int(u_mult) << 32


def ln_par_params(par, addr, n):
    """LAYERNORM's per-channel ``(mult, bias, shift)`` (int64 arrays of length ``n``) from the
    PAR scratchpad ``par`` (``[depth, cols, 8]`` uint8) from word ``addr`` on (``VopBody``):
    bias bytes 0..3 and 7 (40-bit signed), mult bytes 4..5 (signed), shift byte 6's bits 0..5,
    over 47 taken as 47."""
    cols = par.shape[1]
    p = par[addr:addr + -(-n // cols)].reshape(-1, 8)[:n]
    lo = p[:, 0:4].copy().view("<u4")[:, 0].astype(np.int64)
    bias = lo + p[:, 7].view(np.int8).astype(np.int64) * (1 << 32)
    mult = p[:, 4:6].copy().view("<i2")[:, 0].astype(np.int64)
    shift = np.minimum(p[:, 6] & 63, V.SHIFT_MAX).astype(np.int64)
    return mult, bias, shift


def add_par_params(par, addr, n):
    """A per-channel ADD's ``(a_mult, b_mult, shift)`` (int64 arrays of length ``n``) from the
    PAR scratchpad ``par`` (``[depth, cols, 8]`` uint8) from word ``addr`` on (``VopBody``,
    ``chan``): ``a_mult`` bytes 0..1, ``b_mult`` bytes 2..3 (unsigned), ``shift`` byte 6's
    bits 0..5, over 47 taken as 47."""
    cols = par.shape[1]
    p = par[addr:addr + -(-n // cols)].reshape(-1, 8)[:n]
    a_mult = p[:, 0:2].copy().view("<u2")[:, 0].astype(np.int64)
    b_mult = p[:, 2:4].copy().view("<u2")[:, 0].astype(np.int64)
    shift = np.minimum(p[:, 6] & 63, V.SHIFT_MAX).astype(np.int64)
    return a_mult, b_mult, shift


#: TO_WGT's cycle constants (:func:`to_wgt_cycles`): the two setup states, the cycles
#: after the last ACT word arrives (W = X^T), a group's cycles after its last word (W = X)
TW_SETUP, TW_TAIL, KX_GAP = 2, 3, 2


def to_wgt_dims(n, m_tiles, rows, cols, wide):
    """``(channel tiles, K banks)`` of the dense weight image a TO_WGT writes (``VopBody``):
    ``W = X^T`` (``wide``: ``n`` output channels, ``T = m_tiles * rows`` inputs) or ``W = X``
    (``T`` output channels, ``n`` inputs)."""
    t = m_tiles * rows
    if wide:
        return -(-n // cols), -(-t // BANK)
    return -(-t // cols), -(-n // BANK)


def to_wgt_words(n, m_tiles, rows, cols, wide) -> int:
    """WGT words a TO_WGT writes: channel tiles x K banks x 32 entries."""
    nj, kb = to_wgt_dims(n, m_tiles, rows, cols, wide)
    return nj * kb * BANK


def to_wgt_image(x, cols, transpose) -> np.ndarray:
    """The WGT words (``[words, cols, 2]`` uint8: value byte, index byte) of the dense
    (s = 1) weight matrix ``W = x^T`` (``transpose``) or ``W = x`` (``x``: int8 ``[T, n]``,
    token ``t`` in row ``t``): word ``(j * K_banks + k) * 32 + e`` holds, for channel ``c``,
    ``(W[j*cols + c, 32k + e], e)``; channels past ``W``'s rows and inputs past its columns
    are ``(0, e)``. This is ``sw.layout.wgt_image(sparse.pack(W, 1), cols)``, word by word,
    so a GEMM at s = 1 reading it computes ``A @ W^T``."""
    w = np.asarray(x, np.int8)
    w = w.T if transpose else w
    nw, kw = w.shape
    nt, nb = -(-nw // cols), -(-kw // BANK)
    vals = np.zeros((nt * cols, nb * BANK), np.int8)
    vals[:nw, :kw] = w
    out = np.empty((nt, nb, BANK, cols, 2), np.uint8)
    out[..., 0] = vals.reshape(nt, cols, nb, BANK).transpose(0, 2, 3, 1).view(np.uint8)
    out[..., 1] = np.arange(BANK, dtype=np.uint8)[None, None, :, None]
    return out.reshape(-1, cols, 2)


def to_wgt_cycles(rows, cols, n, m_tiles, wide) -> int:
    """Cycles of a TO_WGT in the SPU, from the cycle it is taken to its done pulse (the
    vector sequencer's schedule, ``Spu._to_wgt``).

    ``wide`` (W = X^T): a read every ``P = 32 / cols`` cycles, ``B T`` of them (``B`` ACT
    words a token, ``T`` tokens), the last one's word ``rows + 1`` cycles later and its ``P``
    WGT words after it, then one cycle a ``(0, e)`` word of the padding tokens (``Tp - T``
    a channel tile). Else (W = X): per group of ``cols`` tokens and an ACT word, ``cols``
    reads, the last one's word ``r0 + min(cols, rows) + 1`` cycles later (``r0``: the
    group's first row, 0 unless ``cols < rows``), then its 32 words."""
    nj, kb = to_wgt_dims(n, m_tiles, rows, cols, wide)
    t = m_tiles * rows
    if wide:
        b = -(-n // BANK)
        return TW_SETUP + b * t * (BANK // cols) + rows + TW_TAIL + (kb * BANK - t) * nj
    tr = min(cols, rows)
    r0 = sum((j * cols) % rows for j in range(nj)) if cols < rows else 0
    return TW_SETUP + kb * (nj * (cols + tr + KX_GAP + BANK) + r0)


def vop_cycles(rows, op, n, m_tiles, wide=0, relu=0, cols=None, chan=0, units=1) -> int:
    """Cycles of a VOP in the SPU, from the cycle it is taken to its done pulse (the vector
    sequencer's schedule, ``Spu._vector_sequencer``): 1 + ``m_tiles`` x the rows' cycles,
    row ``r`` taking ``1 + issue + r + c``: the command, the reads (``B``; ADD, MUL and a
    16-bit LAYERNORM ``2B``), the row's read latency and the unit's tail ``c`` (element-wise
    5, a 16-bit ADD 6, row max and sum 6; softmax ``2B + 25``, 7-bit ``2B + 24``, 16-bit
    ``3B + 33``: its
    second and third passes over the row, the reciprocal's division and, 16-bit, a cycle more
    a result vector; LAYERNORM ``64 + (P + 3)(B - 1)`` with ``P = 32 / cols`` PAR words a
    vector: the square root and the division, then a vector each time its parameters are
    fetched). ``cols`` is needed for a LAYERNORM; ``relu`` (a 7-bit SOFTMAX) for a SOFTMAX.

    An ADD with ``chan`` (``cols`` needed) fetches each vector's ``P`` PAR words, the next
    once the unit has taken a vector; a row's first vector is read once its words are in, every
    later one ``P + 3`` cycles after the one before: row ``r`` takes ``1 + P + 4 + r + c +
    (B - 1)(P + 3)``.

    ``units`` (``Config.vec_units``, V): the rows go in groups of V, one row a unit, the
    group's rows fed by the same reads; a group takes what its last row ``r`` would take
    alone, except that a per-channel ADD's vectors are ``P + 2 + V`` cycles apart (the units
    share the parameter register). V = 1 is the above."""
    op = VopOp(op)
    if op == VopOp.TO_WGT:
        if not cols:
            raise ValueError("a TO_WGT's cycles depend on the device's cols")
        return to_wgt_cycles(rows, cols, n, m_tiles, wide)
    b, _, _ = vop_words(op, n, wide)
    wide16 = bool(wide) and op in (VopOp.ADD, VopOp.SOFTMAX)
    if op in (VopOp.ADD, VopOp.MUL):
        issue, c = 2 * b, 5 + wide16
    elif op == VopOp.GELU:
        issue, c = b, 5
    elif op in (VopOp.ROW_MAX, VopOp.ROW_SUM):
        issue, c = b, 6
    elif op == VopOp.LAYERNORM:
        if not cols:
            raise ValueError("a LAYERNORM's cycles depend on the device's cols")
        issue, c = vop_in_words(op, n, wide), 64 + (BANK // cols + 3) * (b - 1)
    else:
        issue, c = b, (3 * b + 33 if wide16 else 2 * b + 24 + (softmax_bits(wide, relu) > 7))
    v = int(units)
    if v < 1 or rows % v:
        raise ValueError(f"units must divide rows ({rows}), not {units!r}")
    g = rows // v
    # group j's last row is j*v + v - 1: the groups' row latencies add up to
    # g*(v - 1) + v*g*(g - 1)/2 (v = 1: rows*(rows - 1)/2)
    lat = g * (v - 1) + v * g * (g - 1) // 2
    if op == VopOp.ADD and chan:
        if not cols:
            raise ValueError("a per-channel ADD's cycles depend on the device's cols")
        p = BANK // cols
        per_tile = g * (1 + c + p + 4 + (b - 1) * (p + 2 + v)) + lat
        return 1 + m_tiles * per_tile
    per_tile = g * (1 + issue + c) + lat
    return 1 + m_tiles * per_tile


def vop_reference(act, *, op, n, m_tiles, a_addr, b_addr=0, out_addr, a_stride=0, b_stride=0,
                  out_stride=0, mask_n=0, relu=0, wide=0, shift=0, mult=0, mult_b=0, u_mult=0,
                  u_shift=0, chan=0, par=None, wgt=None):
    """Run one VOP on ``act`` (``[depth, rows, 32]`` int8, the ACT scratchpad, changed in
    place) with the descriptor's field values (the caller has checked them); ``par`` (the PAR
    scratchpad, ``[depth, cols, 8]`` uint8) is read by a LAYERNORM and an ADD with ``chan``
    (:func:`add_par_params`), ``wgt`` (the WGT
    scratchpad, ``[depth, cols, 2]`` uint8) written by a TO_WGT. Returns the number of rows
    processed."""
    op = VopOp(op)
    depth, rows, _ = act.shape
    nb, w, ow = vop_words(op, n, wide)
    bi = vop_in_words(op, n, wide)
    sa, sb, so = a_stride or bi, b_stride or nb, out_stride or ow
    if op == VopOp.TO_WGT:
        if wgt is None:
            raise ValueError("a TO_WGT VOP writes the WGT scratchpad: pass wgt")
        x = np.stack([act[(a_addr + i * sa + np.arange(nb)) % (1 << 16), r].reshape(-1)[:n]
                      for i in range(m_tiles) for r in range(rows)])
        img = to_wgt_image(x, wgt.shape[1], bool(wide))
        wgt[out_addr:out_addr + len(img)] = img
        return m_tiles * rows
    valid = np.ones(n, bool) if not mask_n else np.arange(n) < mask_n
    wide16 = bool(wide) and op in (VopOp.ADD, VopOp.SOFTMAX)
    if op == VopOp.LAYERNORM:
        if par is None:
            raise ValueError("a LAYERNORM VOP reads the PAR scratchpad: pass par")
        lm, lb, ls = ln_par_params(par, b_addr, n)
        ln = V.LayerNormParams(in_shift=int(shift), eps=ln_eps(mult, mult_b, u_mult),
                               mult=lm, bias=lb, shift=ls)
    add_p = (mult, mult_b, shift)
    if op == VopOp.ADD and chan:
        if par is None:
            raise ValueError("a per-channel ADD VOP reads the PAR scratchpad: pass par")
        add_p = add_par_params(par, mult, n)
    for i in range(m_tiles):
        ra = (a_addr + i * sa + np.arange(bi)) % (1 << 16)
        rb = (b_addr + i * sb + np.arange(nb)) % (1 << 16)
        ro = (out_addr + i * so + np.arange(ow)) % (1 << 16)
        for r in range(rows):
            if op == VopOp.LAYERNORM and wide:
                x = act[ra, r].reshape(-1).view("<i2")[:n].astype(np.int64)
            else:
                x = act[ra, r].reshape(-1)[:n].astype(np.int64)
            y = act[rb, r].reshape(-1)[:n].astype(np.int64) if op in (VopOp.ADD,
                                                                          VopOp.MUL) else None
            if op == VopOp.ADD:
                res = V.residual_add(x, y, *add_p, out_bits=16 if wide16 else 8,
                                     relu=bool(relu))
            elif op == VopOp.MUL:
                res = V.elementwise_mul(x, y, mult, shift, relu=bool(relu))
            elif op == VopOp.GELU:
                res = V.gelu(x, V.GeluParams(u_mult, u_shift, mult, shift))
            elif op == VopOp.LAYERNORM:
                res = V.layernorm(x[None], ln)[0]
            elif op == VopOp.SOFTMAX:
                res = V.softmax(x, mult, shift, valid, out_bits=softmax_bits(wide, relu))
            elif op == VopOp.ROW_MAX:
                res = np.array([V.row_max(x, valid)], np.int32)
            else:
                res = np.array([V.row_sum(x, valid)], np.int32)
            if op in (VopOp.ROW_MAX, VopOp.ROW_SUM):
                word = np.zeros(BANK, np.uint8)
                word[:4] = np.frombuffer(res.astype("<i4").tobytes(), np.uint8)
            else:
                word = np.zeros(ow * BANK, np.uint8)
                raw = np.frombuffer(res.astype("<i2" if wide16 else np.int8).tobytes(),
                                    np.uint8)
                word[:len(raw)] = raw
            act[ro, r] = word.view(np.int8).reshape(ow, BANK)
    return m_tiles * rows
