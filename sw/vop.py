"""Programs that run one vector operation (a VOP descriptor) on the device.

:func:`vop_program` loads an int8 matrix (two for ADD and MUL) into the activation scratchpad
in the GEMM's activation layout, runs the VOP on every row, and brings the results out: a
STORE reads only the output scratchpad, so a 1x1 identity GEMM (weights 1 on the diagonal, at
the device's highest sparsity, requantization ``mult = 1, shift = 0``: every byte copied
exactly) moves the result words there first, as :func:`~.conv.emit_pool` does. The decoded
result (:func:`vop_decode`) is what :func:`~s4accel.hw.vector.vop.vop_reference` gives.
"""

from __future__ import annotations

import numpy as np

from ..base.config import BANK
from ..base.sparse import pack
from ..hw.cmd.descriptors import (LoadFormat, Opcode, Target, VopOp, vop_in_words,
                                  vop_par_words, vop_words)
from . import layout
from .program import Allocator, DeviceInfo, LayerProgram
from .program import descriptor as _descriptor

__all__ = ["vop_program", "vop_decode", "ln_fields", "to_wgt_program", "VOP_PARAMS",
           "VOP_OPS"]

#: The operations :func:`vop_program` runs (TO_WGT: :func:`to_wgt_program`).
VOP_OPS = (VopOp.ADD, VopOp.MUL, VopOp.GELU, VopOp.ROW_MAX, VopOp.ROW_SUM, VopOp.SOFTMAX,
           VopOp.LAYERNORM)

#: The parameter fields of a VOP (``VopBody``) a caller may give.
VOP_PARAMS = ("mask_n", "relu", "wide", "shift", "mult", "mult_b", "u_mult", "u_shift")


def _matrix(x, name):
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 2 or min(x.shape) == 0:
        raise ValueError(f"{name} must be a non-empty 2-D int8 array, not {x.dtype} {x.shape}")
    return x


def ln_fields(p) -> dict:
    """A LAYERNORM VOP's descriptor fields for :class:`~s4accel.base.vector.LayerNormParams`
    ``p`` (``VopBody``: ``shift`` is ``in_shift``, ``eps`` split over ``mult``, ``mult_b``,
    ``u_mult``); an ``eps`` of 2**40 or more is a ``ValueError``."""
    if not 0 <= p.in_shift <= 31:
        raise ValueError(f"LayerNorm in_shift must be in 0..31, not {p.in_shift}")
    if not 0 <= p.eps < 1 << 40:
        raise ValueError(f"LayerNorm eps must be in 0..2**40-1 on the device, not {p.eps}")
    e = int(p.eps)
    return {"shift": int(p.in_shift), "mult": e & 0xFFFF, "mult_b": e >> 16 & 0xFFFF,
            "u_mult": e >> 32}


def vop_program(info: DeviceInfo, a, b=None, *, op, alloc: Allocator, in_place=False,
                encode=None, ln=None, **params) -> LayerProgram:
    """One VOP (:class:`~s4accel.hw.vector.vop` semantics) on the rows of int8 ``a [M, n]``
    (and ``b``, same shape, for ADD and MUL) as a device program. ``params``: the VOP's
    parameter fields (:data:`VOP_PARAMS`). ``in_place``: the result overwrites A (same
    address and stride). An ADD whose ``mult``, ``mult_b`` or ``shift`` is an array (one per
    channel, the others broadcast) runs per channel (``VopBody``'s ``chan``: the three arrays
    into PAR, :func:`~.layout.add_par_image`). LAYERNORM takes its parameters as ``ln``
    (:class:`~s4accel.base.vector.LayerNormParams`, per-channel ones into PAR) and ``a`` as
    int8 or int16 (``wide`` is then set). The program's output decodes
    (``LayerProgram.decode``) to the result words' bytes ``[M_padded, w * 32]`` int8
    (:func:`vop_decode` turns them into results)."""
    descriptor = encode or _descriptor
    op = VopOp(op)
    if op not in VOP_OPS:
        raise ValueError(f"VOP operation {op.name} writes the weight scratchpad, not rows of "
                         "results: vop_program does not run it")
    unknown = set(params) - set(VOP_PARAMS)
    if unknown:
        raise ValueError(f"unknown VOP parameters: {sorted(unknown)}")
    if not info.vec_max_row:
        raise ValueError("the device has no vector unit (CAP_VEC.max_row is 0)")
    is_ln = op == VopOp.LAYERNORM
    if is_ln:
        if ln is None:
            raise ValueError("a LAYERNORM VOP needs its parameters: ln=LayerNormParams")
        if set(params) - {"wide"}:
            raise ValueError(f"LAYERNORM takes its parameters from ln, not "
                             f"{sorted(set(params) - {'wide'})}")
        a16 = np.asarray(a)
        if a16.dtype == np.int16:
            params["wide"] = 1
            if a16.ndim != 2 or min(a16.shape) == 0:
                raise ValueError(f"a must be a non-empty 2-D array, not {a16.shape}")
            a = a16
        else:
            params["wide"] = 0
            a = _matrix(a, "a")
        params.update(ln_fields(ln))
    elif ln is not None:
        raise ValueError(f"{op.name} takes no LayerNorm parameters")
    else:
        a = _matrix(a, "a")
    binary = op in (VopOp.ADD, VopOp.MUL)
    if binary:
        b = _matrix(b, "b")
        if b.shape != a.shape:
            raise ValueError(f"a and b must have one shape, not {a.shape} and {b.shape}")
    elif b is not None:
        raise ValueError(f"{op.name} takes one operand")
    m, n = a.shape
    R, C, bb = info.rows, info.cols, info.bus_bytes
    chan = op == VopOp.ADD and any(np.ndim(params.get(k, 0)) for k in ("mult", "mult_b",
                                                                       "shift"))
    if chan:
        add_p = [np.broadcast_to(np.asarray(params.pop(k, 0)), (n,))
                 for k in ("mult", "mult_b", "shift")]
    nb, _, ow = vop_words(op, n, params.get("wide", 0))
    bi = vop_in_words(op, n, params.get("wide", 0))
    if (op in (VopOp.SOFTMAX, VopOp.ROW_MAX, VopOp.ROW_SUM, VopOp.LAYERNORM)
            and n > info.vec_max_row):
        raise ValueError(f"rows of {n} elements are longer than the vector unit's "
                         f"{info.vec_max_row}")
    if is_ln and n < 2:
        raise ValueError("LayerNorm needs at least 2 channels")
    mt = -(-m // R)
    if in_place and (ow != nb and op not in (VopOp.ROW_MAX, VopOp.ROW_SUM, VopOp.SOFTMAX)):
        raise ValueError(f"a 16-bit {op.name} cannot run in place")
    stride = max(bi, ow) if in_place else 0
    a_at = 0
    b_at = mt * (stride or bi)
    out_at = a_at if in_place else b_at + (mt * nb if binary else 0)
    end = max(b_at + (mt * nb if binary else 0), out_at + (mt - 1) * (stride or ow) + ow)
    # the identity GEMM that copies the result words to the output scratchpad
    s = max(info.sparsities)
    ch = ow * BANK
    ident = pack(np.eye(ch, dtype=np.int8), s)
    nt = -(-ch // C)
    wfmt = layout.wgt_format(s)
    from ..hw.spu.spu import int8_out_words
    ln_at = nt                      # LAYERNORM's parameters: PAR words after the GEMM's
    if is_ln:
        b_at = ln_at
    if chan:                        # a per-channel ADD's parameters: there too, from mult
        params.update(chan=1, mult=ln_at)
    if (end > info.act_depth or nt * ow * ident.nnz > info.wgt_depth
            or nt + vop_par_words(op, n, C, chan) > info.par_depth
            or int8_out_words(R, C, mt, nt) > info.out_depth):
        raise ValueError(f"a {m} x {n} {op.name} does not fit the device's scratchpads")
    prog = LayerProgram(rows=R, cols=C)

    def load(target, data, sram, fmt=layout.LoadFormat.RAW, **flags):
        if target == Target.WGT:
            data = layout.pack_wgt_words(data, C, fmt, bb)
        prog.load(descriptor, target, prog.image(data, alloc, bb),
                  -(-len(data) // bb) * bb, sram, fmt=fmt, **flags)

    def act(x):
        if x.dtype == np.int16:     # 16-bit elements: two bytes each, 2B words a row
            xb = np.zeros((x.shape[0], bi * BANK), np.int8)
            xb[:, :2 * n] = np.ascontiguousarray(x.astype("<i2")).view(np.int8)
            x = xb
        img = layout.act_image(x, R)
        if not stride:
            return img
        full = np.zeros((mt, stride, R * BANK), np.int8)
        full[:, :bi] = np.frombuffer(img, np.int8).reshape(mt, bi, R * BANK)
        return full.tobytes()
    load(Target.WGT, layout.wgt_image(ident, C), 0, fmt=wfmt)
    load(Target.PAR, layout.par_image(np.zeros(ch, np.int32), np.ones(ch, np.int64),
                                      np.zeros(ch, np.int64), ch, C), 0)
    if is_ln:
        load(Target.PAR, layout.ln_par_image(ln.mult, ln.bias, ln.shift, C), ln_at)
    if chan:
        load(Target.PAR, layout.add_par_image(*add_p, C), ln_at)
    if binary:
        load(Target.ACT, layout.act_image(b, R), b_at)
    load(Target.ACT, act(a), a_at, sig_next=1)
    prog.descs.append(descriptor(Opcode.VOP, vop={
        "op": op.value, "n": n, "m_tiles": mt, "a_addr": a_at, "b_addr": b_at,
        "out_addr": out_at, "a_stride": stride, "b_stride": 0, "out_stride": stride,
        **{k: int(v) for k, v in params.items()}}, wait_prev=1))
    gemm = {"wgt_addr": 0, "par_addr": 0, "banks": ow, "n_tiles": nt,
            "log2s": s.bit_length() - 1, "mode": 1}
    if (stride or ow) == ow:      # the result runs are back to back: one identity GEMM
        prog.descs.append(descriptor(Opcode.GEMM, gemm={
            **gemm, "act_addr": out_at, "out_addr": 0, "m_tiles": mt}, sig_next=1))
    else:                         # in place: one a row tile, at A's stride
        per = int8_out_words(R, C, 1, nt)
        for i in range(mt):
            prog.descs.append(descriptor(Opcode.GEMM, gemm={
                **gemm, "act_addr": out_at + i * stride, "out_addr": i * per, "m_tiles": 1},
                sig_next=int(i == mt - 1)))
    nbytes = mt * ow * R * BANK
    dst = alloc.alloc(nbytes)
    prog.descs.append(descriptor(Opcode.STORE, dma={
        "dram_addr": dst, "stride": nbytes, "row_bytes": nbytes, "rows": 1, "target": 0,
        "sram_addr": 0}, wait_prev=1))
    prog.descs.append(descriptor(Opcode.COMPLETE))
    prog.outputs.append((dst, nbytes, 0, mt * R, mt))
    prog.out_banks = ow
    prog.m, prog.n, prog.mode = mt * R, ch, "int8"
    prog.dram_bytes += nbytes
    return prog


def vop_decode(y, op, n, *, wide=0) -> np.ndarray:
    """The results in the bytes ``y [M, w * 32]`` (int8) of a VOP's output words: ``[M, n]``
    int8 (ADD, MUL, GELU), int16 (ADD ``wide``), uint8 / uint16 (SOFTMAX), or ``[M]`` int32
    (ROW_MAX, ROW_SUM)."""
    op = VopOp(op)
    raw = np.ascontiguousarray(np.asarray(y, np.int8)).view(np.uint8)
    if op in (VopOp.ROW_MAX, VopOp.ROW_SUM):
        return raw[:, :4].copy().view("<i4")[:, 0].astype(np.int32)
    if op == VopOp.SOFTMAX:
        return (raw[:, :2 * n].copy().view("<u2") if wide else raw[:, :n].copy())
    if op == VopOp.ADD and wide:
        return raw[:, :2 * n].copy().view("<i2")
    return raw[:, :n].view(np.int8).copy()


def to_wgt_program(info: DeviceInfo, x, a, *, transpose, alloc: Allocator, w2=None,
                   w2_fmt=LoadFormat.RAW) -> LayerProgram:
    """An activation as a GEMM's second operand, as attention needs it: the int8 matrix
    ``x [L, n]`` (tokens as rows) is loaded into ACT, a TO_WGT VOP copies it into WGT as the
    dense weight matrix ``W = x^T`` (``transpose``: P V's V) or ``W = x`` (Q K^T's K), and a
    raw (int32) GEMM multiplies ``a`` with it: ``Y = a @ W^T``, that is ``a [M, L] @ x``
    (``transpose``) or ``a [M, n] @ x^T``. ``x``'s rows are padded with zero tokens to whole
    row tiles (``T``), so ``Y`` has ``T`` columns without ``transpose``.

    ``w2`` (int8 ``[N2, K]``, ``K`` as ``a``'s): a LOAD of its dense weights into WGT (in
    ``w2_fmt``) runs beside the copy (the LOAD stage does not wait for the VOP), and a second
    GEMM multiplies ``a`` with it: a LOAD into WGT racing a TO_WGT. The program's output
    decodes (``decode``) to int32 ``[M, (J1 + J2) * cols]``: ``Y``'s ``J1`` channel tiles,
    then ``a @ w2^T``'s ``J2`` (the channels past each one's end are 0)."""
    x, a = _matrix(x, "x"), _matrix(a, "a")
    R, C, bb = info.rows, info.cols, info.bus_bytes
    L, n = x.shape
    mt_x = -(-L // R)
    t = mt_x * R
    k = t if transpose else n
    if a.shape[1] not in (L, k):
        raise ValueError(f"a must have {L if transpose else n} columns, not {a.shape[1]}")
    n1 = n if transpose else t
    nj1, kb = -(-n1 // C), -(-k // BANK)
    words1 = nj1 * kb * BANK
    m = a.shape[0]
    mt_a = -(-m // R)
    b_x = -(-n // BANK)
    a_at = mt_x * b_x
    prog = LayerProgram(rows=R, cols=C, m=m, mode="raw")
    n2, nj2, w2_at = 0, 0, words1
    if w2 is not None:
        w2 = _matrix(w2, "w2")
        if w2.shape[1] != a.shape[1]:
            raise ValueError(f"w2 must have {a.shape[1]} columns, not {w2.shape[1]}")
        n2 = w2.shape[0]
        nj2 = -(-n2 // C)
    if (a_at + mt_a * kb > info.act_depth or w2_at + nj2 * kb * BANK > info.wgt_depth
            or max(nj1, nj2) > info.par_depth or (nj1 + nj2) * mt_a * R > info.out_depth):
        raise ValueError(f"x {x.shape} and a {a.shape} do not fit the device's scratchpads")

    def load(target, data, sram, fmt=LoadFormat.RAW, **flags):
        if target == Target.WGT:
            data = layout.pack_wgt_words(data, C, fmt, bb) if fmt != LoadFormat.RAW else data
        prog.load(_descriptor, target, prog.image(data, alloc, bb),
                  -(-len(data) // bb) * bb, sram, fmt=fmt, **flags)
    ak = np.zeros((m, kb * BANK), np.int8)
    ak[:, :a.shape[1]] = a
    load(Target.ACT, layout.act_image(x, R), 0)
    load(Target.ACT, layout.act_image(ak, R), a_at)
    load(Target.PAR, layout.par_image(0, 1, 0, max(nj1, nj2) * C, C), 0, sig_next=1)
    prog.descs.append(_descriptor(Opcode.VOP, vop={
        "op": VopOp.TO_WGT.value, "n": n, "m_tiles": mt_x, "a_addr": 0,
        "out_addr": 0, "wide": int(bool(transpose))}, wait_prev=1))
    if w2 is not None:
        load(Target.WGT, layout.wgt_image(pack(w2, 1), C), w2_at, fmt=w2_fmt, sig_next=1)
    gemm = {"act_addr": a_at, "par_addr": 0, "banks": kb, "m_tiles": mt_a, "log2s": 0,
            "mode": 0}
    prog.descs.append(_descriptor(Opcode.GEMM, gemm={
        **gemm, "wgt_addr": 0, "n_tiles": nj1, "out_addr": 0}, sig_next=int(w2 is None)))
    if w2 is not None:
        prog.descs.append(_descriptor(Opcode.GEMM, gemm={
            **gemm, "wgt_addr": w2_at, "n_tiles": nj2, "out_addr": nj1 * mt_a * R},
            wait_prev=1, sig_next=1))
    nbytes = (nj1 + nj2) * mt_a * R * C * 4
    dst = alloc.alloc(nbytes)
    prog.descs.append(_descriptor(Opcode.STORE, dma={
        "dram_addr": dst, "stride": nbytes, "row_bytes": nbytes, "rows": 1, "target": 0,
        "sram_addr": 0}, wait_prev=1))
    prog.descs.append(_descriptor(Opcode.COMPLETE))
    prog.outputs.append((dst, nbytes, 0, m))
    prog.n = (nj1 + nj2) * C
    prog.dram_bytes += nbytes
    return prog
