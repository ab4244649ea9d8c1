"""Attention on the device: each head's Q K^T and P V as dense GEMMs on the tensor core whose
second operand is an activation, copied into the weight scratchpad by a TO_WGT VOP, around a
7-bit SOFTMAX VOP (issue 22). :func:`~s4accel.base.vector.attention` is the definition.

Per head ``h`` (all on the GEMM stage, in order; the SPU's scratchpads hold every head's Q, K
and V, loaded once):

1. TO_WGT ``K_h`` into WGT as ``W = K_h`` (its tokens are the output channels);
2. GEMM ``Q_h`` x it (s = 1, int8, ``out_act``): the int8 scores ``S_h [L, T]`` into ACT
   (``T``: the tokens padded to whole row tiles), requantized with ``s_mult``, ``s_shift``;
3. SOFTMAX in place over the ``L`` keys (``mask_n``): 7-bit probabilities (``relu``);
4. TO_WGT ``V_h`` into WGT as ``W = V_h^T``;
5. GEMM ``P_h`` x it (int8) into OUT: the context ``[L, d]``, requantized with ``c_mult``,
   ``c_shift``; a STORE writes it as head ``h``'s banks of the ``[L, H * d]`` output.
"""

from __future__ import annotations

import numpy as np

from ..base import vector as V
from ..base.config import BANK
from ..hw.cmd.descriptors import Opcode, Target, VopOp
from ..hw.spu.spu import int8_out_words
from . import layout
from .program import Allocator, DeviceInfo, LayerProgram, descriptor

__all__ = ["attention_program", "attention_reference"]


def _heads(t, name):
    t = np.asarray(t)
    if t.dtype != np.int8 or t.ndim != 3 or min(t.shape) == 0:
        raise ValueError(f"{name} must be a non-empty int8 [heads, tokens, d] array, not "
                         f"{t.dtype} {t.shape}")
    return t


def attention_reference(q, k, v, params, mask_n=0) -> np.ndarray:
    """The golden result of :func:`attention_program`: ``[L, H * d]`` int8, head ``h`` in
    columns ``h*d .. h*d + d - 1`` (:func:`~s4accel.base.vector.attention` per head)."""
    q, k, v = _heads(q, "q"), _heads(k, "k"), _heads(v, "v")
    ps = params if isinstance(params, (list, tuple)) else [params] * q.shape[0]
    return np.concatenate([V.attention(q[h], k[h], v[h], ps[h], mask_n)
                           for h in range(q.shape[0])], axis=1)


def attention_program(info: DeviceInfo, q, k, v, params, *, alloc: Allocator,
                      mask_n=0) -> LayerProgram:
    """Multi-head attention of int8 ``q``, ``k``, ``v`` (``[H, L, d]``, self-attention: one
    length) on the device, as one program (module docstring); ``params``: one
    :class:`~s4accel.base.vector.AttentionParams` or one a head. The output decodes
    (``decode``) to :func:`attention_reference`'s ``[L, H * d]``. Shapes that do not fit the
    scratchpads, or a device without a vector unit, are a ``ValueError``."""
    q, k, v = _heads(q, "q"), _heads(k, "k"), _heads(v, "v")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q {q.shape}, k {k.shape} and v {v.shape} must have one shape")
    if not info.vec_max_row:
        raise ValueError("the device has no vector unit (CAP_VEC.max_row is 0)")
    H, L, d = q.shape
    if L > info.vec_max_row:
        raise ValueError(f"{L} keys are more than the vector unit's rows of "
                         f"{info.vec_max_row}")
    ps = list(params) if isinstance(params, (list, tuple)) else [params] * H
    if len(ps) != H:
        raise ValueError(f"{len(ps)} parameter sets for {H} heads")
    R, C, bb = info.rows, info.cols, info.bus_bytes
    mt = -(-L // R)
    t = mt * R
    bd, bt = -(-d // BANK), -(-t // BANK)      # ACT words a row tile: Q/K/V, scores
    nt_s, nt_c = -(-t // C), -(-d // C)        # channel tiles: scores, context
    head_w = mt * bd
    s_at = 3 * H * head_w                      # the scores (then P), after Q, K, V
    wk, wv = 0, nt_s * bd * BANK               # WGT: K's copy, then V's
    par_c = nt_s                               # PAR: the scores' parameters, the context's
    out_w = int8_out_words(R, C, mt, nt_c)
    if (s_at + mt * bt > info.act_depth or wv + nt_c * bt * BANK > info.wgt_depth
            or par_c + nt_c > info.par_depth or H * out_w > info.out_depth):
        raise ValueError(f"{H} heads of {L} x {d} do not fit the device's scratchpads")
    prog = LayerProgram(rows=R, cols=C, m=L, n=H * d, mode="int8")
    prog.out_banks = H * bd

    def load(target, data, sram, **flags):
        prog.load(descriptor, target, prog.image(data, alloc, bb), -(-len(data) // bb) * bb,
                  sram, **flags)
    # per head, the scores' and the context's requantization (PAR) are loaded before its
    # GEMMs; with one parameter set for all heads they are loaded once
    same = all(p == ps[0] for p in ps)
    pars = [(layout.par_image(0, p.s_mult, p.s_shift, nt_s * C, C),
             layout.par_image(0, p.c_mult, p.c_shift, nt_c * C, C)) for p in ps]
    for h in range(H):
        for j, x in enumerate((q, k, v)):
            load(Target.ACT, layout.act_image(x[h], R), (j * H + h) * head_w)
    nbytes = mt * R * BANK * bd * H
    dst = alloc.alloc(nbytes)
    for h in range(H):
        p = ps[h]
        new_par = h == 0 or not same
        if new_par:     # (the head's GEMMs wait for its parameters: the second load signals)
            load(Target.PAR, pars[h][0], 0)
            load(Target.PAR, pars[h][1], par_c, sig_next=1)
        prog.descs.append(descriptor(Opcode.VOP, vop={
            "op": VopOp.TO_WGT.value, "n": d, "m_tiles": mt, "a_addr": (H + h) * head_w,
            "out_addr": wk, "wide": 0}, wait_prev=int(new_par)))
        prog.descs.append(descriptor(Opcode.GEMM, gemm={
            "act_addr": h * head_w, "wgt_addr": wk, "par_addr": 0, "banks": bd,
            "m_tiles": mt, "n_tiles": nt_s, "log2s": 0, "mode": 1, "out_act": 1,
            "out_addr": s_at}))
        prog.descs.append(descriptor(Opcode.VOP, vop={
            "op": VopOp.SOFTMAX.value, "n": L, "m_tiles": mt, "a_addr": s_at,
            "out_addr": s_at, "mask_n": mask_n, "relu": 1, "mult": p.sm_mult,
            "shift": p.sm_shift}))
        prog.descs.append(descriptor(Opcode.VOP, vop={
            "op": VopOp.TO_WGT.value, "n": d, "m_tiles": mt, "a_addr": (2 * H + h) * head_w,
            "out_addr": wv, "wide": 1}))
        prog.descs.append(descriptor(Opcode.GEMM, gemm={
            "act_addr": s_at, "wgt_addr": wv, "par_addr": par_c, "banks": bt,
            "m_tiles": mt, "n_tiles": nt_c, "log2s": 0, "mode": 1,
            "out_addr": h * out_w}, sig_next=int(h == H - 1)))
    bank = R * BANK * bd
    for h in range(H):
        prog.descs.append(descriptor(Opcode.STORE, dma={
            "dram_addr": dst + h * bank, "stride": H * bank, "row_bytes": bank, "rows": mt,
            "target": 0, "sram_addr": h * out_w}, wait_prev=int(h == 0)))
    prog.descs.append(descriptor(Opcode.COMPLETE))
    prog.outputs.append((dst, nbytes, 0, L))
    prog.dram_bytes += nbytes
    return prog
