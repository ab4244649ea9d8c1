"""Dataflow plans: whole networks on a many-SPU preset with activations kept on chip.

:func:`project_plan` projects BERT-base, BERT-Large and ResNet-50 with the mechanisms of issue
21 (``s4 project``; ``--mechanisms old`` keeps :func:`.perf_model.project_bert_resnet`'s layers
back to back through DRAM with host im2col). A *plan* lists a network's GEMMs per *pass* (one
chunk of rows on every SPU) and, for every tensor, where it lives: ``act`` (the SPU's
activation scratchpad, written by ``GemmBody.out_act``) or ``dram`` (it does not fit, or an
operand the RTL can only take from DRAM). Its mechanisms are the RTL's:

* :func:`s4accel.sw.chain.chain_program`'s data-parallel chain: every SPU runs every layer on
  its own rows, weights and parameters are read once a pass and multicast to all SPUs, in
  groups of channel tiles double-buffered through WGT / PAR (group size by the same rule:
  ``GROUP_CYCLES``, half the WGT and PAR scratchpads, whole banks where the output stays in
  ACT); an output that leaves the SPU goes through the OUT scratchpad and one STORE per SPU;
* packed weights (``LoadFormat.PACKED``: 13 bits a stored weight with its 5-bit index, 1.625
  bytes; ``VALUES`` at s = 1: 1 byte), padded to the bus per LOAD; the load path writes
  ``wpc`` WGT words a cycle (:func:`.perf_model.predict_program`'s rule);
* convolution without im2col (the RTL's ``GemmBody.conv`` window walk, ``sw/conv.py``): a row
  tile is one output pixel of ``rows`` images, the input an NHWC tensor in ACT, ``banks = k*k*ceil(C/32)``
  read one ACT word a cycle as in a plain GEMM. SPUs split a 32-image group's output pixels
  (bands in raster order); a k x k convolution needs its neighbours' border rows (the halo),
  which, with no path between SPUs in the RTL, travel through DRAM.

Cycles per GEMM descriptor are :func:`.perf_model.predict_program`'s RTL-calibrated ones
(``Timing.gemm + rows + b + (tiles - 1) * max(b, rows)``, ``b = banks * K/s``). Per layer and
pass the model takes the largest of four resources: the GEMM engine, the read path
(descriptor fetches and LOADs, one after another: ``read_job`` each plus their beats), the
write path (STOREs) and the shared DRAM (every byte at ``dram_gb_s``); the next layer's loads
overlap a layer's GEMMs only through the double buffers, which the per-layer maximum leaves out
(conservative). A test checks the per-layer cost against :func:`.perf_model.predict_program`
on real :func:`~s4accel.sw.chain.chain_program` programs.

For design studies only (none is in the RTL, ``s4 project`` uses none): :func:`bert_plan`'s
``kv="onchip"`` / ``"l2"`` (K and V through an ACT -> WGT path or a shared L2),
:func:`resnet50_plan`'s ``add="store"`` (the residual added in the store path) and
``l2_kib`` (maps and halo rows in a shared L2; :func:`run_plan` then needs
``l2_bytes_per_cycle``), :func:`resnet50_spatial_plan` (row tiles of one image's pixels,
halos written into the neighbouring rows) and :class:`Op`'s ``weight_passes``.
:func:`resnet50_ceiling` is ResNet-50's upper bound on a preset: the GEMM engines alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...base.config import BANK, load_config
from ...hw.cmd.descriptors import DESC_BYTES, LoadFormat, VopOp
from ...hw.spu.wgt_unpack import packed_word_bits
from ...hw.vector.vop import vop_cycles
from ...sw.chain import GROUP_CYCLES
from ...sw.program import PAR_DEPTH, wgt_tiles_fit
from .perf_model import TIMING, dram_bytes_per_cycle

__all__ = ["Op", "op_cost", "bank_fits", "bert_plan", "resnet50_plan", "run_plan",
           "project_plan", "plan_assumptions", "resnet50_ceiling", "resnet_ceiling_lines",
           "resnet50_spatial_plan", "run_spatial", "targets", "compare_rows", "COMPARE_COLUMNS",
           "NotPlannable"]


class NotPlannable(ValueError):
    """A layer cannot run with the preset's scratchpads (the message says why)."""


@dataclass
class Op:
    """One layer of a plan: per pass, on the busiest SPU. ``banks``: 32-wide input banks
    of a row (conv: ``k*k*ceil(C/32)``); ``n``: output channels; ``count``: GEMMs of this
    shape one after another (attention heads). Bytes are DRAM bytes of the whole pass (all
    SPUs): ``read`` / ``write`` private transfers in ``loads`` / ``stores`` descriptors;
    ``extra_wgt`` operands loaded into WGT from DRAM (attention K and V: ``extra_wgt_words``
    words a SPU) in ``extra_wgt_loads`` loads. ``weights``: the layer's weights are loaded
    from DRAM (multicast), else ``extra_wgt`` is its weight operand."""
    name: str
    mt: int
    banks: int
    n: int
    s: int
    macs: int
    out: str = "act"
    count: int = 1
    weights: bool = True
    read: int = 0
    loads: int = 0
    write: int = 0
    stores: int = 0
    extra_wgt: int = 0
    extra_wgt_words: int = 0
    extra_wgt_loads: int = 0
    note: str = ""
    #: every SPU loads its own slice of the weights (channels split), not one multicast
    private_weights: bool = False
    #: a pass of the pool walker (max pooling: no GEMM): ACT words it reads on the busiest SPU,
    #: one a cycle (``k*k`` a word of output), in one descriptor
    pool_words: int = 0
    #: vector-unit work of the pass on every SPU: VOP descriptors ``(op, n, m_tiles, wide,
    #: relu, chan)``. A VOP runs in the GEMM engine's queue (the SPU takes one GEMM or VOP at
    #: a time), so its cycles, ``Timing.vop + vop_cycles`` as the event model counts them,
    #: add to the engine's.
    vops: tuple = ()
    #: bytes of the pass through a shared on-chip L2 (LOAD / STORE descriptors, not DRAM;
    #: :func:`run_plan`'s ``l2_bytes_per_cycle``): not in the RTL, for design studies
    l2_read: int = 0
    l2_write: int = 0
    #: times the layer's weights are loaded a pass (a band-fused schedule reloads them a band)
    weight_passes: int = 1
    #: parameters (PAR, LUT) loaded a pass beside no weights (a VOP's per-channel parameters,
    #: the attention's requantization): ``par_read`` bytes in ``par_loads`` multicast LOADs
    #: on the read path, prefetched (double-buffered) as weights are, so no pipeline fill
    par_read: int = 0
    par_loads: int = 0
    placement: dict = field(default_factory=dict)


def bank_fits(config, banks, s):
    """Whether a whole bank of channel tiles (what an output written to ACT needs a group to
    be) of ``banks`` input banks at sparsity ``s`` fits half the WGT scratchpad."""
    C = config.cols
    fmt = LoadFormat.VALUES if s == 1 else LoadFormat.PACKED
    half_w = config.wgt_sram_kib * 1024 // (2 * C) // 2
    return wgt_tiles_fit(half_w, banks * (BANK // s), fmt, C,
                         config.dram_bus_bits // 8) >= BANK // C


def _pad(nbytes, unit):
    return -(-nbytes // unit) * unit


def op_cost(config, op: Op, timing=TIMING, *, search=True, l2_bytes_per_cycle=None) -> dict:
    """Cycles of one :class:`Op` per pass and its DRAM bytes (see the module docstring).
    ``search``: where the output leaves through OUT, also try groups larger than the
    chain's rule (fewer STOREs) and keep the cheapest; otherwise the rule's groups exactly
    as :func:`~s4accel.sw.chain.chain_program` cuts them. A channel tile whose output
    leaves through OUT and that does not fit half of WGT runs single-buffered in all of it
    (as ``sw/conv.py`` does: each group's load waits for the GEMM before it, so its load
    cycles add to the engine's).
    ``l2_bytes_per_cycle``: the L2's bandwidth where the op moves ``l2_read`` /
    ``l2_write`` bytes (a design study's assumption)."""
    C = config.cols
    bb = config.dram_bus_bits // 8
    half_w = config.wgt_sram_kib * 1024 // (2 * C) // 2
    half_p = PAR_DEPTH // 2
    nnz = BANK // op.s
    entries = op.banks * nnz
    nt = -(-op.n // C)
    gb = BANK // C
    fmt = LoadFormat.VALUES if op.s == 1 else LoadFormat.PACKED
    unit = gb if op.out == "act" else 1
    if op.weights:
        lim = min(wgt_tiles_fit(half_w, entries, fmt, C, bb), half_p)
        g_max = min(-(-nt // unit), lim // unit) * unit
        single = False
        if g_max == 0 and op.out != "act":
            lim = min(wgt_tiles_fit(2 * half_w, entries, fmt, C, bb), 2 * half_p)
            g_max = min(-(-nt // unit), lim // unit) * unit
            single = True
        if g_max == 0:
            raise NotPlannable(f"{op.name}: {unit} channel tile(s) of K = {op.banks * BANK} at "
                               f"s = {op.s} need {unit * entries} WGT words (" +
                               ("half the scratchpad: " if op.out == "act" else
                                "the scratchpad, single-buffered: ")
                               + f"{half_w if op.out == 'act' else 2 * half_w})")
        g = max(1, min(g_max, -(-GROUP_CYCLES // (op.mt * entries))))
        g = min(g_max, -(-g // unit) * unit)
        # the chain's rule; where outputs leave through OUT (one STORE per SPU and block)
        # larger groups too, the cheapest kept
        sizes = {g}
        if op.out == "dram" and search:
            sizes |= {min(g_max, g << i) for i in range(1, 12)}
        best = None
        for g in sorted(sizes):
            r = _op_cost(config, op, timing, [min(g, nt - j) for j in range(0, nt, g)],
                         single=single, l2_bpc=l2_bytes_per_cycle)
            if best is None or r["cycles"] < best["cycles"]:
                best = r
        return best
    return _op_cost(config, op, timing, [nt], l2_bpc=l2_bytes_per_cycle)


def _op_cost(config, op, timing, groups, *, single=False, l2_bpc=None):
    T, R, C, P = timing, config.rows, config.cols, config.spus
    bb = config.dram_bus_bits // 8
    bpc = dram_bytes_per_cycle(config)
    wpc = max(1, config.dram_bus_bits // (16 * C))
    half_o = config.out_sram_kib * 1024 // (4 * C) // 2
    fetch = T.read_job + max(1, math.ceil(DESC_BYTES / bpc))
    entries = op.banks * (BANK // op.s)
    wbits = packed_word_bits(LoadFormat.VALUES if op.s == 1 else LoadFormat.PACKED, C)
    # a block's output tiles through OUT (int8: rows / 4 words a row tile of a channel tile)
    a_max = op.mt * max(groups) if op.out == "act" else max(1, half_o // max(1, R // 4))
    b = entries
    compute = gemms = stores = 0
    if op.pool_words:
        compute += T.gemm + R + op.pool_words
        gemms += 1
    for v, n, mt, wide, relu, chan in op.vops:
        compute += T.vop + vop_cycles(R, v, n, mt, wide, relu, cols=C, chan=chan,
                                      units=config.vec_units)
        gemms += 1
        if op.out == "dram":
            stores += P
    for _ in range(op.count):
        for g in groups:
            tiles = op.mt * g
            while tiles > 0:
                a = min(tiles, a_max)
                compute += T.gemm + R + b + (a - 1) * max(b, R)
                gemms += 1
                tiles -= a
                if op.out == "dram":
                    stores += P
    wgt_bytes = wgt_loads = 0
    read_path = 0
    fill = 3 * fetch
    if op.weights:
        g = groups[0]
        fill += 2 * T.read_job + max(-(-g * entries // wpc),
                                     math.ceil(_pad(-(-g * entries * wbits // 8), bb) / bpc))
        for g in groups:
            wb = _pad(-(-g * entries * wbits // 8), bb)
            pb = _pad(g * C * 8, bb)
            wgt_bytes += wb + pb
            wgt_loads += 2
            read_path += (T.read_job + max(-(-g * entries // wpc), math.ceil(wb / bpc))
                          + T.read_job + math.ceil(pb / bpc))
    if op.private_weights:
        wgt_bytes, wgt_loads, read_path = wgt_bytes * P, wgt_loads * P, read_path * P
    wp = op.weight_passes
    wgt_bytes, wgt_loads, read_path = wgt_bytes * wp, wgt_loads * wp, read_path * wp
    if single:
        compute += read_path
    if op.extra_wgt_loads:
        per = op.extra_wgt / op.extra_wgt_loads
        read_path += op.extra_wgt_loads * (T.read_job + max(-(-op.extra_wgt_words // wpc),
                                                             math.ceil(per / bpc)))
    if op.loads:
        read_path += op.loads * T.read_job + math.ceil(op.read / bpc)
    if op.par_loads:
        read_path += op.par_loads * T.read_job + math.ceil(op.par_read / bpc)
    l2 = 0
    if op.l2_read or op.l2_write:
        if not l2_bpc:
            raise NotPlannable(f"{op.name}: moves bytes through an L2 but the plan has none")
        read_path += math.ceil(op.l2_read / l2_bpc)
        l2 = math.ceil((op.l2_read + op.l2_write) / l2_bpc)
    stores = max(stores, op.stores)
    descs = wgt_loads + op.extra_wgt_loads + op.loads + op.par_loads + gemms + stores
    read_path += descs * fetch
    write_path = stores * T.store_job + math.ceil(op.write / bpc)
    if l2:
        write_path += math.ceil(op.l2_write / l2_bpc)
    dram_bytes = wgt_bytes + op.extra_wgt + op.read + op.par_read + op.write
    dram = math.ceil((dram_bytes + descs * DESC_BYTES) / bpc)
    busy = {"compute": compute, "dma_read": read_path, "dma_write": write_path,
            "dram": dram}
    if l2:
        busy["l2"] = l2
    bound = max(busy, key=busy.get)
    # a pipeline start waits for its inputs (every SPU's LOAD, one after another); a layer
    # whose output leaves ends with its last block's STOREs (one per SPU)
    if op.loads:
        fill += op.loads * (fetch + T.read_job) + math.ceil(op.read / bpc)
    drain = 0
    if stores:
        blocks = max(1, stores // P)
        drain = P * (fetch + T.store_job) + math.ceil(op.write / blocks / bpc)
    return {"name": op.name, "cycles": busy[bound], "bound": bound, "busy": busy,
            "fill": fill, "drain": drain,
            "macs": op.macs, "dram_bytes": dram_bytes + descs * DESC_BYTES,
            "weight_bytes": wgt_bytes, "groups": len(groups), "descriptors": descs,
            "out": op.out}


# -- BERT ---------------------------------------------------------------------------------------


def _add_norm(hidden, mt):
    """A residual's VOPs as ``encoder_program`` emits them: a 16-bit ADD with per-channel
    multipliers (the residual stream's scales are per channel), then LayerNorm of 16-bit
    input."""
    return ((VopOp.ADD, hidden, mt, 1, 0, 1), (VopOp.LAYERNORM, hidden, mt, 1, 0, 0))


def bert_plan(config, s, *, seq=128, layers=12, hidden=768, ffn=3072, heads=12, kv="dram"):
    """A BERT encoder's plan. Every SPU holds ``mt`` row tiles of tokens (as many as its ACT
    holds of one layer's live tensors: residual input, Q, scores of two heads, context,
    FFN hidden); a pass is ``spus * mt * rows`` tokens (whole sequences), weights read once a
    pass. Q, the scores (softmax in place), the context and every residual and FFN tensor stay
    in ACT; K and V go to DRAM (each SPU stores its tokens') and come back as the WGT operand
    of the score and context GEMMs (a sequence spans several SPUs, and the RTL's ACT -> WGT
    copy, TO_WGT, stays within one), one LOAD each per sequence, multicast to the SPUs
    holding that sequence. The network's input (embeddings, host) is loaded and its output
    stored once a pass. Softmax, the residual ADDs and the LayerNorms are the vector unit's
    VOPs (``Op.vops``, as ``encoder_program`` emits them), in the GEMM engine's queue.
    Returns ``(ops, info)``.

    ``kv="onchip"`` (a design study; not in the RTL): K and V stay in ACT and reach the WGT
    of their sequence's SPUs through an on-chip ACT -> WGT path (transposing K) at the load
    path's WGT words a cycle, every sequence's SPUs in parallel; no DRAM bytes. ``kv="l2"``
    (neither): K and V are stored to a shared L2 instead of DRAM and loaded back from it
    (a transposing load for K); :func:`run_plan` then needs the L2's bandwidth."""
    if kv not in ("dram", "onchip", "l2", "to_wgt"):
        raise ValueError(f"kv must be 'dram', 'to_wgt', 'onchip' or 'l2', not {kv!r}")
    if kv == "to_wgt":
        return _bert_sequence_plan(config, s, seq=seq, layers=layers, hidden=hidden, ffn=ffn,
                                   heads=heads)
    R, P, C = config.rows, config.spus, config.cols
    act_words = config.act_sram_kib * 1024 // (R * BANK)
    hb, fb, d = -(-hidden // BANK), -(-ffn // BANK), hidden // heads
    sb = -(-seq // BANK)
    live = max(hb + hb + 2 * sb + hb,      # x, Q, two heads' scores, context
               hb + fb + hb)               # FFN: residual h, hidden, output
    if kv == "onchip":
        live = max(live, 4 * hb + 2 * sb + hb)   # K and V too
    mt = act_words // live
    if mt == 0:
        raise NotPlannable(f"one row tile of a BERT layer needs {live} ACT words "
                           f"(the scratchpad holds {act_words})")
    if P * mt * R < seq:
        raise NotPlannable(f"a pass of {P} SPUs x {mt * R} rows holds no whole sequence of "
                           f"{seq} tokens")
    # whole sequences a pass; rows beyond them idle (a sequence's K and V are complete
    # before its scores start)
    seqs = P * mt * R // seq
    tok = seqs * seq
    spus_per_seq = max(1, seq // (mt * R))
    ops = []
    kv_bytes = tok * 2 * hidden
    # the vector unit's VOPs as sw/encoder.py's encoder_program emits them: a head's softmax
    # (7-bit probabilities over the sequence's keys), and per residual a 16-bit ADD with
    # per-channel multipliers (the residual stream's scales are per channel) and LayerNorm
    softmax = (VopOp.SOFTMAX, seq, mt, 0, 1, 0)
    add_norm = _add_norm(hidden, mt)
    head_words = -(-seq // C) * d          # K of one head as WGT: seq channels x d entries
    for i in range(layers):
        L = f"L{i}"
        ops.append(Op(f"{L}.q", mt, hb, hidden, s, tok * hidden * hidden // s))
        on, l2 = kv == "onchip", kv == "l2"
        dram = kv == "dram"
        ops.append(Op(f"{L}.kv", mt, hb, 2 * hidden, s, tok * 2 * hidden * hidden // s,
                      out="act" if on else "dram", write=kv_bytes if dram else 0,
                      l2_write=kv_bytes if l2 else 0,
                      note={"onchip": "K, V stay in ACT", "l2": "K, V -> L2"}.get(
                          kv, "K, V -> DRAM")))
        for what, words in (("scores", heads * head_words),
                            ("context", heads * -(-d // C) * sb * BANK)):
            ops.append(Op(f"{L}.{what}", mt, -(-d // BANK) if what == "scores" else sb,
                          seq if what == "scores" else d, 1, tok * heads * d * seq,
                          count=heads, weights=False,
                          extra_wgt=seqs * seq * hidden if dram else 0,
                          l2_read=seqs * seq * hidden if l2 else 0,
                          extra_wgt_words=words, extra_wgt_loads=1 if on else seqs,
                          note=("K" if what == "scores" else "V") + {
                              "onchip": " ACT -> WGT on chip", "l2": " from the L2 as WGT"}.get(
                              kv, " from DRAM as WGT")))
            if what == "scores":
                ops.append(Op(f"{L}.softmax", mt, 0, 0, 1, 0, weights=False,
                              vops=(softmax,) * heads, note="softmax of each head's scores"))
        ops.append(Op(f"{L}.attn_o", mt, hb, hidden, s, tok * hidden * hidden // s))
        ops.append(Op(f"{L}.norm1", mt, 0, 0, 1, 0, weights=False, vops=add_norm,
                      note="residual ADD and LayerNorm"))
        ops.append(Op(f"{L}.ffn1", mt, hb, ffn, s, tok * hidden * ffn // s))
        ops.append(Op(f"{L}.ffn2", mt, fb, hidden, s, tok * ffn * hidden // s))
        ops.append(Op(f"{L}.norm2", mt, 0, 0, 1, 0, weights=False, vops=add_norm,
                      note="residual ADD and LayerNorm"))
    ops[0].read, ops[0].loads = tok * hidden, P
    # the output (the last LayerNorm's) leaves through OUT and STOREs as a GEMM's does:
    # counted on the last FFN GEMM
    last_ffn = next(op for op in reversed(ops) if op.name.endswith(".ffn2"))
    last_ffn.out, last_ffn.write = "dram", tok * hidden
    beyond = {"onchip": ["K and V reaching the score / context GEMMs' WGT through an on-chip "
                         "ACT -> WGT path that transposes K (assumed: kv on chip)"],
              "l2": ["K and V through a shared L2 (assumed)"]}.get(kv, [])
    info = {"samples": seqs, "rows_per_spu": mt * R, "spus_per_sequence": spus_per_seq,
            "beyond": beyond,
            "act_words_per_row_tile": live,
            # scores out and back, two LayerNorms' inputs out and outputs back, per token
            "host_softmax_ln_bytes": layers * seq * (2 * heads * seq + 4 * hidden),
            "placement": [
                f"tokens split by rows: {mt * R} tokens ({mt} row tile(s)) per SPU, "
                f"{spus_per_seq} SPUs per sequence; a pass is {seqs} sequences "
                f"({tok} tokens), weights read once a pass",
                f"in ACT (on chip): layer input (kept for the residual), Q, each head's "
                f"scores, context, attention output, FFN hidden (GELU through the LUT) and "
                f"output: {live} of the {act_words} ACT words of a row tile's slot",
                ("K and V in ACT, to the score / context GEMMs' WGT through an on-chip "
                 "ACT -> WGT path (not in the RTL); through DRAM: the input (embeddings) and "
                 "the output") if kv == "onchip" else
                ("through DRAM: K and V (stored by each SPU, loaded back once per sequence as "
                 f"the score / context GEMMs' WGT operand: {2 * seq * hidden // 1024} KiB a "
                 "sequence and layer each way), the input (embeddings) and the output"),
            ]}
    return ops, info


def _bert_sequence_plan(config, s, *, seq, layers, hidden, ffn, heads):
    """:func:`bert_plan` with ``kv="to_wgt"``: a sequence a SPU, run as ``sw/encoder.py``'s
    ``encoder_program`` runs it (its ACT placement, ``act_placement``, decides whether it
    fits),
    every SPU its own sequence, weights and parameters read once a pass and multicast. Per
    layer and head: the head's Q, K and V GEMMs (``d`` output channels each), a TO_WGT of K
    into WGT (the RTL's ACT -> WGT copy), the score GEMM, the 7-bit SOFTMAX, a TO_WGT of V,
    the context GEMM (its output into the context tensor's head columns); then, by chunks of
    row tiles: the attention output GEMM, the 16-bit per-channel ADD and LAYERNORM, FFN up
    (GELU through the LUT) and down, ADD and LAYERNORM (every chunk reads the weights
    again). No K or V byte leaves the SPU; DRAM carries the weights, the attention's
    per-head requantization parameters, the input (embeddings) and the output."""
    from ...hw.vector.vop import to_wgt_words
    from ...sw.encoder import act_placement
    R, P, C = config.rows, config.spus, config.cols
    act_words = config.act_sram_kib * 1024 // (R * BANK)
    if hidden % heads or (hidden // heads) % BANK:
        raise NotPlannable(f"heads of {hidden / heads:g} channels are not whole banks")
    d = hidden // heads
    hb, fb, bd = hidden // BANK, -(-ffn // BANK), d // BANK
    mt = -(-seq // R)
    bt = -(-(mt * R) // BANK)
    if config.vec_max_row < max(seq, hidden):
        raise NotPlannable(f"rows of {max(seq, hidden)} are longer than the vector unit's "
                           f"{config.vec_max_row}")
    at, chunks, words = act_placement(act_words, mt, hb, fb, bd, bt)
    if at is None:
        raise NotPlannable(f"a sequence of {seq} tokens on one SPU needs {words} ACT words "
                           f"a row (the scratchpad holds {act_words})")
    nt_s, nt_c = -(-(mt * R) // C), -(-d // C)
    copy = to_wgt_words(d, mt, R, C, 0) + to_wgt_words(d, mt, R, C, 1)
    wgt_words = config.wgt_sram_kib * 1024 // (2 * C)
    if copy > wgt_words // 2:
        raise NotPlannable(f"a head's K and V copies need {copy} WGT words, half the "
                           f"scratchpad is {wgt_words // 2}")
    tok = P * seq
    par_bytes = (nt_s + nt_c) * C * 8          # a head's score and context parameters
    softmax = (VopOp.SOFTMAX, seq, mt, 0, 1, 0)
    ops = []
    for i in range(layers):
        L = f"L{i}"
        for h in range(heads):
            for w in "qkv":
                ops.append(Op(f"{L}.{w}", mt, hb, d, s, tok * hidden * d // s,
                              note=f"head {h}'s {w.upper()}"))
            ops.append(Op(f"{L}.k_copy", mt, 0, 0, 1, 0, weights=False,
                          vops=((VopOp.TO_WGT, d, mt, 0, 0, 0),), note="TO_WGT of K"))
            ops.append(Op(f"{L}.scores", mt, bd, seq, 1, tok * d * seq, weights=False,
                          par_read=par_bytes, par_loads=1, note="Q K^T, K from WGT"))
            ops.append(Op(f"{L}.softmax", mt, 0, 0, 1, 0, weights=False, vops=(softmax,)))
            ops.append(Op(f"{L}.v_copy", mt, 0, 0, 1, 0, weights=False,
                          vops=((VopOp.TO_WGT, d, mt, 1, 0, 0),), note="TO_WGT of V"))
            ops.append(Op(f"{L}.context", mt, bt, d, 1, tok * seq * d, weights=False,
                          note="P V, V from WGT"))
        for c, (c0, mc) in enumerate(chunks):
            ct = tok * mc // mt
            add_norm = _add_norm(hidden, mc)
            ops.append(Op(f"{L}.attn_o", mc, hb, hidden, s, ct * hidden * hidden // s))
            # the ADD's and the LayerNorm's per-channel parameters: a PAR load each (8 bytes
            # a channel), multicast
            ops.append(Op(f"{L}.norm1", mc, 0, 0, 1, 0, weights=False, vops=add_norm,
                          par_read=2 * hidden * 8, par_loads=2,
                          note="residual ADD and LayerNorm"))
            ops.append(Op(f"{L}.ffn1", mc, hb, ffn, s, ct * hidden * ffn // s,
                          par_read=256 if c == 0 else 0, par_loads=int(c == 0),
                          note="GELU through the LUT (its 256 bytes loaded once a layer)"))
            ops.append(Op(f"{L}.ffn2", mc, fb, hidden, s, ct * ffn * hidden // s))
            ops.append(Op(f"{L}.norm2", mc, 0, 0, 1, 0, weights=False, vops=add_norm,
                          par_read=2 * hidden * 8, par_loads=2,
                          note="residual ADD and LayerNorm"))
    ops[0].read, ops[0].loads = tok * hidden, P
    # the output: an identity GEMM (at the sparsest level, one weight a bank) into OUT and
    # STOREs, as encoder_program copies it out; no useful MACs
    ops.append(Op("output", mt, hb, hidden, max(config.sparsities), 0, out="dram",
                  write=tok * hidden, note="identity GEMM into OUT, STOREs"))
    info = {"samples": P, "rows_per_spu": mt * R, "spus_per_sequence": 1, "beyond": [],
            "act_words_per_row_tile": -(-words // mt), "act_words": words,
            "chunks": len(chunks),
            "host_softmax_ln_bytes": layers * seq * (2 * heads * seq + 4 * hidden),
            "placement": [
                f"a sequence a SPU ({seq} tokens, {mt} row tiles), as sw/encoder.py's "
                f"encoder_program runs it; a pass is {P} sequences ({tok} tokens), weights "
                f"read once a pass (the attention output and FFN weights once a chunk of "
                f"{max(mc for _, mc in chunks)} row tiles)",
                f"in ACT (on chip), {words} of {act_words} words a row: the layer input (kept "
                f"for the residual), one head's Q, K and V at a time, its scores, the context, "
                f"and per chunk the attention output, the 16-bit residual sums, the "
                f"LayerNorms' outputs, the FFN hidden (GELU through the LUT) and output",
                f"K and V reach the score / context GEMMs' WGT through TO_WGT (RTL: "
                f"{copy} WGT words a head); through DRAM: the input (embeddings), the output, "
                f"the weights and each head's {par_bytes} bytes of requantization parameters",
            ]}
    return ops, info


# -- ResNet-50 ----------------------------------------------------------------------------------


def _band_rows(hw_out, w_out, st, k, h_in, P):
    """Input rows each SPU reads for its band of output pixels (raster order), and how many
    of them are outside the rows its own band of the input covers (its halo)."""
    n = hw_out * w_out
    per = -(-n // P)
    pad = (k - 1) // 2
    need = halo = 0
    hw_in_pix = h_in * h_in
    per_in = -(-hw_in_pix // P)
    for p in range(P):
        a, e = p * per, min(n, (p + 1) * per)
        if a >= e:
            continue
        y0, y1 = a // w_out, (e - 1) // w_out
        r0, r1 = max(0, y0 * st - pad), min(h_in - 1, y1 * st - pad + k - 1)
        need += (r1 - r0 + 1)
        # own input pixels: p * per_in .. (p + 1) * per_in (rows, rounded down / up)
        o0, o1 = p * per_in // h_in, min(h_in - 1, ((p + 1) * per_in - 1) // h_in)
        halo += max(0, o0 - r0) + max(0, r1 - o1)
    return need, halo


def _resnet50_layers(image=224, add="gemm"):
    """ResNet-50 v1.5's tensors ``{name: (channels, hw)}`` and layers ``(name, kind, inputs,
    output, k, stride, c_in, c_out, hw_in, hw_out)`` in order (kinds: ``conv``, ``pool``,
    ``add``, ``gap``, ``fc``; ``add="store"``: no ``add`` layers, the residual is the block's
    last convolution's second input)."""
    # the layers: (name, kind, inputs, output, k, stride, c_in, c_out, hw_in, hw_out)
    tensors = {}                          # name -> (ch, hw)
    layers = []
    hw = image // 2
    tensors["img"] = (3, image)
    tensors["c1"] = (64, hw)
    layers.append(("conv1", "conv", ["img"], "c1", 7, 2, 3, 64, image, hw))
    hw //= 2
    tensors["pool"] = (64, hw)
    layers.append(("maxpool", "pool", ["c1"], "pool", 3, 2, 64, 64, hw * 2, hw))
    x, c_in = "pool", 64
    for stage, (blocks, mid, c_out) in enumerate(((3, 64, 256), (4, 128, 512),
                                                  (6, 256, 1024), (3, 512, 2048)), start=2):
        for bi in range(blocks):
            st = 2 if (bi == 0 and stage > 2) else 1
            ho = hw // st
            nm = f"conv{stage}_{bi + 1}"
            res = x
            if bi == 0:
                tensors[nm + "d"] = (c_out, ho)
                layers.append((nm + "_down", "conv", [x], nm + "d", 1, st, c_in, c_out, hw, ho))
                res = nm + "d"
            tensors[nm + "a"] = (mid, hw)
            layers.append((nm + "a_1x1", "conv", [x], nm + "a", 1, 1, c_in, mid, hw, hw))
            tensors[nm + "b"] = (mid, ho)
            layers.append((nm + "b_3x3", "conv", [nm + "a"], nm + "b", 3, st, mid, mid, hw, ho))
            if add == "store":
                tensors[nm] = (c_out, ho)
                layers.append((nm + "c_1x1", "conv", [nm + "b", res], nm, 1, 1, mid, c_out, ho,
                               ho))
                x, c_in, hw = nm, c_out, ho
                continue
            tensors[nm + "c"] = (c_out, ho)
            layers.append((nm + "c_1x1", "conv", [nm + "b"], nm + "c", 1, 1, mid, c_out, ho, ho))
            # the residual addition: a 1x1 GEMM over [c | res] (sim/workloads/cnn.py QAdd)
            tensors[nm] = (c_out, ho)
            layers.append((nm + "_add", "add", [nm + "c", res], nm, 1, 1, c_out, c_out, ho, ho))
            x, c_in, hw = nm, c_out, ho
    # global average pooling: the pixel-sum GEMM (QGap), an hw x hw window over the final map
    tensors["gap"] = (2048, 1)
    layers.append(("gap", "gap", [x], "gap", hw, 1, 2048, 2048, hw, 1))
    tensors["fc"] = (1000, 1)
    layers.append(("fc", "fc", ["gap"], "fc", 1, 1, 2048, 1000, 1, 1))
    return tensors, layers


def resnet50_plan(config, s, *, image=224, add="gemm", l2_kib=0, l2_bytes_per_cycle=None):
    """ResNet-50 v1.5's plan: a pass is one group of ``rows`` images (row r of every row
    tile = image r), every convolution's output pixels split across the SPUs in raster
    bands, weights read once a group. A tensor stays in ACT while every layer of its lifetime
    fits the SPU's ACT with the tensors already placed (first produced, first placed), else it
    goes to DRAM (written once, read by each consumer); a k x k convolution's halo rows travel
    through DRAM. Every residual addition is its own layer, a 1x1 GEMM over both branches side
    by side (``sim/workloads/cnn.py``'s ``QAdd``: K = 2*C, one non-zero a bank, packed at
    s = 32), so the convolution's output before the addition is a tensor placed like the
    others; the global average pool is ``QGap``'s pixel-sum GEMM (output channels split
    across the SPUs, the final map read from DRAM); the 3x3/2 max pool is a pass of the conv
    walker's max-pool mode (``k*k`` ACT words read, one a cycle, a word of output). conv1
    (C = 3) runs as the faster of the host's im2col (K = 147, read from DRAM) and on-chip
    convolution (channels padded to 32: K = 1,568). Returns ``(ops, info)``.

    Design-study options, none in the RTL (``s4 project`` uses none): ``add="store"``
    adds the residual in the store path of the block's last convolution (it reads the
    residual's ACT word as it writes; no GEMM); ``l2_kib``: a shared L2 of that size (LOAD /
    STORE at ``l2_bytes_per_cycle``) holds the maps that do not fit ACT while it has room
    over their lifetime, and the halo rows."""
    if add not in ("gemm", "store"):
        raise ValueError(f"add must be 'gemm' or 'store', not {add!r}")
    if l2_kib and not l2_bytes_per_cycle:
        raise ValueError("an L2 needs l2_bytes_per_cycle")
    R, P, C = config.rows, config.spus, config.cols
    act_words = config.act_sram_kib * 1024 // (R * BANK)
    G = R                                 # images a group

    def words(ch, hw):                    # one SPU's share of a tensor, ACT words
        return -(-hw * hw // P) * -(-ch // BANK)

    def nbytes(ch, hw):                   # a tensor of the group, bytes
        return G * hw * hw * ch

    tensors, layers = _resnet50_layers(image, add)

    # lifetimes and placement
    prod = {lay[3]: i for i, lay in enumerate(layers)}
    last = {}
    for i, lay in enumerate(layers):
        for t in lay[2]:
            last[t] = i
    consumers = {}
    for lay in layers:
        for u in lay[2]:
            consumers[u] = consumers.get(u, 0) + 1
    candidates = [i for i, lay in enumerate(layers) if lay[3] not in ("img", "gap", "fc")]

    l2_cap = l2_kib * 1024

    def placement(order):
        place = {"img": "dram", "gap": "dram", "fc": "dram"}
        onchip = []                       # (name, first, last, words)
        in_l2 = []                        # (name, first, last, bytes)
        for i in order:
            lay = layers[i]
            t = lay[3]
            ch, thw = tensors[t]
            w = words(ch, thw)
            end = last.get(t, i)
            ok = lay[0] != "conv1"        # conv1's output feeds the max pool (a halo)
            if lay[1] == "conv" and not bank_fits(config, lay[4] ** 2 * -(-lay[6] // BANK), s):
                ok = False                # out_act needs whole banks of channels in WGT
            for j in range(i, end + 1):
                if not ok:
                    break
                used = sum(ww for _, f, e, ww in onchip if f <= j <= e)
                # an input streamed from DRAM (or not placed yet) needs two row tiles of its
                # banks in ACT
                stream = sum(2 * -(-tensors[u][0] // BANK) * layers[j][4] ** 2
                             for u in layers[j][2] if place.get(u, "dram") != "act"
                             and u != t)
                ok = used + w + stream <= act_words
            place[t] = "act" if ok else "dram"
            if ok:
                onchip.append((t, i, end, w))
            elif l2_cap:
                b = nbytes(ch, thw)
                if all(sum(bb for _, f, e, bb in in_l2 if f <= j <= e) + b <= l2_cap
                       for j in range(i, end + 1)):
                    place[t] = "l2"
                    in_l2.append((t, i, end, b))
        halo_l2 = set()
        if l2_cap:
            for j, lay in enumerate(layers):
                if lay[1] == "conv" and lay[4] > 1 and lay[0] != "conv1":
                    _, halo = _band_rows(lay[9], lay[9], lay[5], lay[4], lay[8], P)
                    used = sum(bb for _, f, e, bb in in_l2 if f <= j <= e)
                    if used + G * halo * lay[8] * lay[6] <= l2_cap:
                        halo_l2.add(lay[0])
        return place, onchip, halo_l2

    # the compiler's choice: of three orders of placing (first produced first; most
    # consumers first; smallest first), the plan of the fewest cycles
    orders = [candidates,
              sorted(candidates, key=lambda i: (-consumers.get(layers[i][3], 0), i)),
              sorted(candidates, key=lambda i: (words(*tensors[layers[i][3]]), i))]
    best = None
    for order in orders:
        place, onchip, halo_l2 = placement(order)
        ops = _resnet_ops(config, s, layers, tensors, place, words, nbytes, G, halo_l2)
        cycles = run_plan(config, ops, l2_bytes_per_cycle=l2_bytes_per_cycle)["cycles"]
        if best is None or cycles < best[0]:
            best = (cycles, place, onchip, ops)
    _, place, onchip, ops = best
    # the input images: host im2col of conv1 is read above; the output (logits) stored
    on = sorted({t for t, p in place.items() if p == "act" and t in tensors})
    off = sorted({t for t, p in place.items()
                  if p == "dram" and t not in ("img", "gap", "fc")})
    l2s = sorted(t for t, p in place.items() if p == "l2")
    info = {"samples": G, "placement": [
        f"a pass is one group of {G} images (row r of every row tile = image r); the "
        f"{P} SPUs split each layer's output pixels (raster bands), weights read once a "
        "group",
        f"in ACT (on chip): {len(on)} of {len(on) + len(off) + len(l2s)} feature maps ("
        + _stages(on) + ")",
        f"through DRAM: {len(off)} feature maps that do not fit one SPU's ACT share ("
        + _stages(off) + "), every 3x3 convolution's halo rows, the max pool's input, the "
        "final map (the global average pool splits its channels across the SPUs)",
        "conv1: " + next(o.note for o in ops if o.name == "conv1"),
    ] + ([f"in the L2 ({l2_kib} KiB): {len(l2s)} feature maps ({_stages(l2s)}) and the halo "
          f"rows of {sum(1 for o in ops if 'via the L2' in o.note)} convolutions"]
         if l2_kib else []), "place": place,
        "beyond": (["ResNet's residual additions in the store path of each block's last "
                    "convolution, no GEMM (assumed: residual at the store)"]
                   if add == "store" else [])
        + ([f"a shared L2 of {l2_kib} KiB at {l2_bytes_per_cycle} bytes a cycle (assumed)"]
           if l2_kib else []), "onchip": onchip, "act_words": act_words,
        "layers": [lay[0] for lay in layers],
        # ACT words a SPU would need at the busiest layer to keep every map on chip
        "all_on_chip_words": max(
            sum(words(*tensors[t]) for t in tensors
                if t in prod and prod[t] <= i <= last.get(t, prod[t])
                and t not in ("gap", "fc"))
            for i in range(len(layers)))}
    return ops, info


def _spu_channels(co, C, P):
    """Output channels one SPU computes where a layer's ``co`` channels split across ``P``
    SPUs by whole channel tiles of ``C`` (the global average pool, the classifier)."""
    return -(-(-(-co // C)) // P) * C


def _stage(name):
    """A ResNet-50 layer's stage: 1 for conv1 and the max pool, 2..5 for the bottleneck
    stages, 5 for the global average pool and the classifier."""
    if name.startswith("conv") and name != "conv1":
        return int(name[4])
    return 1 if name in ("conv1", "maxpool") else 5


#: Images a pass :func:`resnet50_spatial_plan` tries per stage (non-decreasing stage to stage).
SPATIAL_GROUPS = tuple(range(1, 33))


def _spatial_words(config, image):
    """:func:`resnet50_spatial_plan`'s layers and ``words(t, g)``: tensor ``t``'s ACT words a
    lane with ``g`` images a pass (its patch of pixels, with a halo border where a ``k x k``
    window reads it)."""
    R, P = config.rows, config.spus
    lanes = R * P
    tensors, layers = _resnet50_layers(image)
    halo_in = {u for lay in layers if lay[1] in ("conv", "pool") and lay[4] > 1
               for u in lay[2]}

    def words(t, g):
        ch, hw = tensors[t]
        n = -(-g * hw * hw // lanes)
        if t in halo_in:
            n = math.ceil((math.sqrt(n) + 2) ** 2)
        return n * -(-ch // BANK)
    return tensors, layers, words


def _spatial_memory(config, groups, image, stages=None):
    """Raise :class:`NotPlannable` where the maps live at a layer (of ``stages``, default
    all; a map counted with the consuming layer's G) need more ACT words a lane than there
    are."""
    act_words = config.act_sram_kib * 1024 // (config.rows * BANK)
    tensors, layers, words = _spatial_words(config, image)
    first = {lay[3]: i for i, lay in enumerate(layers)}
    last = {}
    for i, lay in enumerate(layers):
        for u in lay[2]:
            last[u] = i
    for i, lay in enumerate(layers):
        st = _stage(lay[0])
        if lay[1] in ("gap", "fc") or (stages and st not in stages):
            continue
        g = groups[st]
        need = sum(words(t, g) for t in tensors if t not in ("img", "gap", "fc")
                   and first.get(t, -1) <= i <= last.get(t, -1))
        if need > act_words:
            raise NotPlannable(f"{lay[0]}: {need} ACT words a lane with {g} images a pass "
                               f"({act_words} there are)")


def _spatial_fits(config, stage, g, image):
    """Whether stage ``stage``'s maps fit ACT with ``g`` images a pass (conv1 and the max
    pool run with stage 2's)."""
    try:
        _spatial_memory(config, {st: g for st in range(1, 6)}, image,
                        (1, 2) if stage == 2 else (stage,))
    except NotPlannable:
        return False
    return True


def resnet50_spatial_plan(config, s, *, groups=None, image=224):
    """Design study, not in the RTL (``s4 project --assume spatial-resnet``): ResNet-50 with a
    row tile of one image's pixels, so that a pass needs the feature maps of only a few
    images. Assumed beyond the RTL: each array row (lane) holds a patch of ``ceil(G * hw**2 /
    (spus * rows))`` output pixels of a layer's ``G`` images and the ``k x k`` windows' halo
    pixels of its neighbours, which every producing GEMM writes into the neighbour rows'
    memories as it writes its own (no cycles; ACT words for the halo: a patch of ``n``
    pixels stored with a border of one, ``(sqrt(n) + 2)**2``); where an image spans several
    SPUs, the band borders' rows go through DRAM (stored once, loaded by the neighbour). In the
    RTL: the residual additions as VOP ADDs (int8, ReLU, both inputs in ACT), conv1 on chip
    over the host's 2x2 space-to-depth of the image (112 x 112 x 12, channels padded to a
    word: a 4x4 stride-1 convolution, K = 16 banks, from DRAM), the stages' ``G`` images a
    pass (``groups``, ``{stage: G}``; None: the fastest non-decreasing choice from
    :data:`SPATIAL_GROUPS` whose maps fit ACT), a stage's output stored and loaded by the
    next stage where their ``G`` differ, the final map through DRAM to the global average
    pool's pixel-sum GEMM and the classifier as :func:`resnet50_plan` runs them. Returns
    ``(ops, info)``: each op is one pass of its stage's ``G`` images (``op.placement``:
    ``stage``, ``images``); :func:`run_spatial` adds them up per image."""
    if groups is None:
        # per stage the G whose maps fit (each stage's check sees only its own G), then the
        # fastest non-decreasing choice
        fit = {st: [g for g in SPATIAL_GROUPS if _spatial_fits(config, st, g, image)]
               for st in (2, 3, 4, 5)}
        best = None
        for g2 in fit[2]:
            for g3 in (g for g in fit[3] if g >= g2):
                for g4 in (g for g in fit[4] if g >= g3):
                    for g5 in (g for g in fit[5] if g >= g4):
                        gs = {1: g2, 2: g2, 3: g3, 4: g4, 5: g5}
                        ops, info = resnet50_spatial_plan(config, s, groups=gs, image=image)
                        c = run_spatial(config, ops, info)["cycles_per_sample"]
                        if best is None or c < best[0]:
                            best = (c, ops, info)
        if best is None:
            raise NotPlannable("no group sizes fit ResNet-50's maps into ACT")
        return best[1], best[2]
    R, P, C = config.rows, config.spus, config.cols
    lanes = R * P
    tensors, layers = _resnet50_layers(image)
    stage = {lay[3]: _stage(lay[0]) for lay in layers}
    stage["img"] = 1
    _spatial_memory(config, groups, image)
    ops = []
    for name, kind, ins, out, k, _st, ci, co, hi, ho in layers:
        g = groups[_stage(name)]
        mt = -(-g * ho * ho // lanes)
        read = loads = write = stores = 0
        # an input from an earlier stage with another G: stored by its producer, loaded here
        for u in ins:
            if u != "img" and groups[stage[u]] != g and kind != "gap":
                c_u, hw_u = tensors[u]
                read += g * hw_u * hw_u * c_u
                loads += P
        # the band borders of an image spanning several SPUs (k x k windows)
        spans = lanes // g // R if g * R < lanes else 1
        if kind in ("conv", "pool") and k > 1 and name != "conv1" and spans > 1:
            b = g * 2 * (spans - 1) * hi * ci
            read, write, loads, stores = read + b, write + b, loads + P, stores + P
        # this layer's output stored where the next stage's G differs
        if out in tensors and out not in ("gap", "fc") and any(
                groups[_stage(lay[0])] != g for lay in layers if out in lay[2]):
            write += g * ho * ho * co
            stores += P
        if kind == "conv" and name == "conv1":
            h2 = image // 2
            ops.append(Op(name, mt, 16, co, s, g * ho * ho * k * k * ci * co // s, read=g *
                          h2 * h2 * BANK, loads=P, write=write, stores=stores,
                          note="on chip over the 2x2 space-to-depth image (K = 16 banks)"))
        elif kind == "conv":
            ops.append(Op(name, mt, k * k * -(-ci // BANK), co, s,
                          g * ho * ho * k * k * ci * co // s, read=read, loads=loads,
                          write=write, stores=stores))
        elif kind == "pool":
            ops.append(Op(name, 0, 0, 0, 1, 0, weights=False, read=read, loads=loads,
                          write=write, stores=stores,
                          pool_words=mt * -(-ci // BANK) * k * k))
        elif kind == "add":
            ops.append(Op(name, mt, 0, 0, 1, 0, weights=False, read=read, loads=loads,
                          write=write, stores=stores,
                          vops=((VopOp.ADD, co, mt, 0, 1, 0),)))
        elif kind == "gap":
            n_spu = _spu_channels(co, C, P)
            ops.append(Op(name, -(-g // R), k * k * -(-n_spu // BANK), n_spu, 32, 0,
                          out="dram", read=g * hi * hi * ci, loads=P,
                          write=g * co + g * hi * hi * ci, stores=2 * P,
                          note="final map to DRAM, pixel-sum GEMM, channels split"))
        else:
            n_spu = _spu_channels(co, C, P)
            ops.append(Op(name, -(-g // R), -(-ci // BANK), n_spu, s, g * ci * co // s,
                          out="dram", read=g * ci, loads=1, write=g * co, stores=P,
                          private_weights=True))
        ops[-1].placement = {"stage": _stage(name), "images": g}
    info = {"samples": 1, "groups": dict(groups),
            "placement": [
                "design study (--assume spatial-resnet): a row tile is pixels of one image, "
                "halos exchanged on chip by the producing GEMM's writes; the table's batch "
                "and cycles are per image, a pass being a stage's images (by stage: "
                + ", ".join(f"{k}: {v}" for k, v in sorted(groups.items())) + ")",
                "residual additions as VOP ADDs; conv1 on chip over a 2x2 space-to-depth "
                "input; stage outputs through DRAM where the next stage's images a pass "
                "differ; band borders through DRAM where an image spans SPUs"],
            "beyond": ["ResNet-50's row tiles of one image's pixels with the k x k halos "
                       "written into neighbouring array rows' ACT by the producing GEMM "
                       "(assumed: --assume spatial-resnet)"]}
    return ops, info


def run_spatial(config, ops, info, timing=TIMING) -> dict:
    """:func:`run_plan` per stage of a :func:`resnet50_spatial_plan` (ops of one pass of
    the stage's images), added up per image: ``cycles_per_sample``, ``macs``,
    ``dram_bytes``, ``weight_bytes`` per image and ``bound_cycles``, ``ops`` (cycles per
    image)."""
    out = {"cycles_per_sample": 0.0, "macs": 0.0, "dram_bytes": 0.0, "weight_bytes": 0.0,
           "bound_cycles": {}, "ops": []}
    for st in sorted({op.placement["stage"] for op in ops}):
        sub = [op for op in ops if op.placement["stage"] == st]
        g = sub[0].placement["images"]
        tot = run_plan(config, sub, timing)
        out["cycles_per_sample"] += tot["cycles"] / g
        for key in ("macs", "dram_bytes", "weight_bytes"):
            out[key] += tot[key] / g
        for b, c in tot["bound_cycles"].items():
            out["bound_cycles"][b] = out["bound_cycles"].get(b, 0) + c / g
        for r in tot["ops"]:
            out["ops"].append(dict(r, cycles=r["cycles"] / g))
    return out


def resnet50_ceiling(config, s, *, image=224, add="gemm") -> dict:
    """What ResNet-50's GEMM engines alone need an image at sparsity ``s``, as if memory and
    DRAM cost nothing: every layer's output pixels spread evenly over all ``spus x rows``
    array rows (fractions of row tiles allowed), every tile spaced ``max(b, rows)`` cycles as
    the RTL spaces them (one requantizer a SPU takes a tile's rows one a cycle; ``b =
    banks * 32 / s``), no descriptor, fill or load cycles. conv1 counts its im2col GEMM
    (K = 147), the max pool its walker's ``k*k`` words a word of output, the global average
    pool and the classifier their plan GEMMs. ``add``: the residual additions as the RTL's
    1x1 GEMM over both branches (``"gemm"``, K = 2C at s = 32, as :func:`resnet50_plan`
    counts them), as VOP ADDs (``"vop"``, int8 with ReLU: :func:`vop_cycles` a row tile,
    the preset's ``vec_units``), or free (``"store"``, no such mechanism in the RTL). An
    upper bound for every plan: ``{"cycles", "macs", "lane_utilization", "layers"}`` an image
    (``macs`` the stored weights' multiplications, ``dense / s``, as the plans count;
    ``layers`` each layer's cycles by name)."""
    if add not in ("gemm", "vop", "store"):
        raise ValueError(f"add must be 'gemm', 'vop' or 'store', not {add!r}")
    R, P, C = config.rows, config.spus, config.cols
    lanes = R * P

    def tiles(px, banks, n, ss):
        return px / lanes * -(-n // C) * max(banks * (BANK // ss), R)

    _, layers = _resnet50_layers(image, "store" if add == "store" else "gemm")
    per, macs = {}, 0.0
    for name, kind, _ins, _out, k, _st, ci, co, _hi, ho in layers:
        px = ho * ho
        if kind == "conv":
            banks = -(-k * k * ci // BANK) if name == "conv1" else k * k * -(-ci // BANK)
            per[name] = tiles(px, banks, co, s)
            macs += px * k * k * ci * co / s
        elif kind == "pool":
            per[name] = px / lanes * -(-ci // BANK) * k * k
        elif kind == "add" and add == "vop":
            per[name] = px / lanes * (vop_cycles(R, VopOp.ADD, co, 1, 0, 1, cols=C,
                                                  units=config.vec_units) - 1)
        elif kind == "add":
            per[name] = tiles(px, 2 * -(-co // BANK), co, 32)
        else:                              # gap, fc: per image a row of one row tile
            n_spu = _spu_channels(co, C, P)
            banks = (k * k * -(-n_spu // BANK)) if kind == "gap" else -(-ci // BANK)
            ss = 32 if kind == "gap" else s
            per[name] = -(-n_spu // C) * max(banks * (BANK // ss), R) / R
            macs += ci * co / s if kind == "fc" else 0
    cycles = sum(per.values())
    return {"cycles": cycles, "macs": macs, "lane_utilization": macs / (cycles * lanes * C),
            "layers": per}


def resnet50_ceilings(config, sparsities=(1, 16)) -> dict:
    """:func:`resnet50_ceiling` for each residual-add mechanism: ``{add: {s: row}}``."""
    return {add: {s: resnet50_ceiling(config, s, add=add) for s in sparsities}
            for add in ("gemm", "vop", "store")}


def _resnet_ops(config, s, layers, tensors, place, words, nbytes, G, halo_l2=()):
    """:func:`resnet50_plan`'s ops for one placement of the feature maps (``act``, ``l2`` or
    ``dram``; ``halo_l2``: the layers whose halo rows go through the L2)."""
    ops = _resnet_ops_dram(config, s, layers, tensors,
                           {t: "dram" if p == "l2" else p for t, p in place.items()},
                           words, nbytes, G)
    if "l2" not in place.values() and not halo_l2:
        return ops
    # the same ops with the bytes of tensors in the L2 (and the halos named) moved there
    by = {op.name: op for op in ops}
    for name, kind, ins, out, k, st, ci, co, hi, ho in layers:
        op = by.get(name)
        if op is None:
            continue
        if place.get(out) == "l2" and kind in ("conv", "add", "pool"):
            b = nbytes(co, ho)
            op.write -= b
            op.l2_write += b
        for u in ins:
            if place.get(u) != "l2":
                continue
            if kind == "conv" and k > 1:
                need, _ = _band_rows(ho, ho, st, k, hi, config.spus)
                b = G * need * hi * ci
            elif kind == "pool":
                need, _ = _band_rows(ho, ho, st, k, hi, config.spus)
                b = G * need * hi * ci
            else:
                b = nbytes(*tensors[u])
            op.read -= b
            op.l2_read += b
        if name in halo_l2 and place.get(ins[0]) == "act":
            _, halo = _band_rows(ho, ho, st, k, hi, config.spus)
            b = G * halo * hi * ci
            op.read -= b
            op.write -= b
            op.l2_read += b
            op.l2_write += b
            op.note = op.note.replace("via DRAM", "via the L2")
    return ops


def _resnet_ops_dram(config, s, layers, tensors, place, words, nbytes, G):
    P, C = config.spus, config.cols
    ops = []
    for i, (name, kind, ins, out, k, st, ci, co, hi, ho) in enumerate(layers):
        outp = place[out]
        write = nbytes(co, ho) if outp == "dram" else 0
        if kind == "pool":
            # a pass of the conv walker's max-pool mode (GemmBody.pool): each SPU loads its
            # band of conv1's output (DRAM) with the halo rows and reads k*k ACT words a word
            # of output, one a cycle; the pooled map is written to DRAM when it does not stay
            # on chip (through sw/conv.py's 1x1 identity GEMM to OUT, whose cycles, a few
            # thousand a batch, are not counted)
            need, _ = _band_rows(ho, ho, st, k, hi, P)
            ops.append(Op(name, 0, 0, 0, 1, 0, out=outp, read=G * need * hi * ci, loads=P,
                          write=write, stores=P if write else 0,
                          pool_words=-(-ho * ho // P) * -(-ci // BANK) * k * k,
                          note=f"max pool {k}x{k}/{st}: {k * k} ACT words a word of output",
                          weights=False))
            continue
        if kind == "gap":
            # QGap's pixel-sum GEMM (a k x k window, weight 1 on each channel: one non-zero a
            # bank, packed at s = 32) on the final map from DRAM, output channels split across
            # the SPUs: each loads its channels of every pixel (a 2-D strided LOAD; the map is
            # first stored where it stayed in ACT) and writes the pooled features for the fc
            n_spu = _spu_channels(co, C, P)
            src = ins[0]
            read, loads, wr, st_ = nbytes(ci, hi), P, G * co, P
            if place[src] == "act":
                wr += nbytes(ci, hi)
                st_ += P
            ops.append(Op(name, 1, k * k * -(-n_spu // BANK), n_spu, 32, 0, out="dram",
                          read=read, loads=loads, write=wr, stores=st_,
                          note="pixel-sum GEMM, channels split across SPUs"))
            continue
        if kind == "add":
            # QAdd: a 1x1 GEMM over both branches side by side ([a | b] per pixel, K = 2*C,
            # one non-zero a bank, packed at s = 32); an input in DRAM is loaded next to the
            # other
            mt = -(-ho * ho // P)
            read = loads = 0
            for u in ins:
                if place[u] == "dram":
                    read += nbytes(*tensors[u])
                    loads += P
            ops.append(Op(name, mt, 2 * -(-co // BANK), co, 32, 0, out=outp, read=read,
                          loads=loads, write=write, stores=P if write else 0,
                          note="residual addition: 1x1 GEMM over [a | b]",
                          placement={"in": "+".join(place[u] for u in ins), "out": outp}))
            continue
        mt = -(-ho * ho // P) if kind == "conv" else 1
        if kind == "fc":
            # 32 images = one row tile: output channels split across the SPUs, the pooled
            # features (the global average pool's output) multicast from DRAM
            n_spu = _spu_channels(co, C, P)
            ops.append(Op(name, 1, -(-ci // BANK), n_spu, s, G * ci * co // s, out="dram",
                          read=G * ci, loads=1, write=G * co, stores=P,
                          note="channels split across SPUs", private_weights=True))
            # weights are private per SPU here: every SPU its own slice, the same bytes
            continue
        src = ins[0]
        read = loads = 0
        halo_note = ""
        if name == "conv1":
            # host im2col (K = 147) or on-chip with channels padded to 32 (K = 49 banks)
            im2col = Op(name, mt, -(-k * k * ci // BANK), co, s, G * ho * ho * k * k * ci * co
                        // s, out=outp, read=G * ho * ho * k * k * ci, loads=P, write=write,
                        note="host im2col (K = 147)")
            need, _ = _band_rows(ho, ho, st, k, hi, P)
            onchip_c = Op(name, mt, k * k * -(-ci // BANK), co, s,
                          G * ho * ho * k * k * ci * co // s, out=outp,
                          read=G * need * hi * BANK, loads=P, write=write,
                          note="on-chip convolution, channels padded to 32")
            a, b = op_cost(config, im2col), op_cost(config, onchip_c)
            ops.append(im2col if a["cycles"] <= b["cycles"] else onchip_c)
            continue
        banks = k * k * -(-ci // BANK)
        if place[src] == "dram":
            if k > 1:
                need, _ = _band_rows(ho, ho, st, k, hi, P)
                read += G * need * hi * ci
            else:
                read += nbytes(ci, hi)
            loads += P
        elif k > 1:
            _, halo = _band_rows(ho, ho, st, k, hi, P)
            # each SPU's border rows to DRAM and into its neighbours' ACT
            read += G * halo * hi * ci
            write += G * halo * hi * ci
            loads += P
            halo_note = f"halo {halo} rows via DRAM"
        if len(ins) > 1 and place[ins[1]] == "dram":     # a residual added at the store
            read += nbytes(*tensors[ins[1]])
            loads += P
        macs = G * ho * ho * k * k * ci * co // s
        ops.append(Op(name, mt, banks, co, s, macs, out=outp, read=read, loads=loads,
                      write=write, stores=P if write else 0, note=halo_note,
                      placement={"in": place[src], "out": outp}))
    return ops


def _stages(names):
    by = {}
    for t in names:
        key = "conv1/pool" if t in ("c1", "pool") else f"stage {t[4]}"
        by[key] = by.get(key, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(by.items())) or "none"


# -- running plans ------------------------------------------------------------------------------


def run_plan(config, ops, timing=TIMING, *, search=True, l2_bytes_per_cycle=None) -> dict:
    """Cost every op (:func:`op_cost`) and add them up: ``cycles`` a pass, ``macs``,
    ``dram_bytes``, ``weight_bytes``, the bound of most cycles and per-op rows."""
    rows = [op_cost(config, op, timing, search=search, l2_bytes_per_cycle=l2_bytes_per_cycle)
            for op in ops]
    # the double buffers overlap a layer's loads with the GEMMs before it only inside a
    # chain: where a pipeline starts (the first layer, a layer after one whose output left
    # through DRAM, a layer reading its input from DRAM) its first group's loads come
    # first; a layer storing its output ends with the last STORE
    for i, (op, r) in enumerate(zip(ops, rows)):
        if i == 0 or ops[i - 1].out == "dram" or op.loads:
            r["cycles"] += r["fill"]
        r["cycles"] += r["drain"]
    tot = {"cycles": sum(r["cycles"] for r in rows), "macs": sum(r["macs"] for r in rows),
           "dram_bytes": sum(r["dram_bytes"] for r in rows),
           "weight_bytes": sum(r["weight_bytes"] for r in rows), "ops": rows}
    share = {}
    for r in rows:
        share[r["bound"]] = share.get(r["bound"], 0) + r["cycles"]
    tot["bound_cycles"] = share
    return tot


def project_plan(config="antoum", *, sparsities=(1, 8, 16), seq=128, bert_large=False,
                 timing=TIMING, kv="auto", add="gemm", resnet="plan"):
    """Rows like :func:`.perf_model.project_bert_resnet`'s, from the dataflow plans. ``kv``,
    ``add``: :func:`bert_plan`'s and :func:`resnet50_plan`'s options (``s4 project
    --assume`` picks the design studies); ``kv="auto"`` (the default, the RTL's
    mechanisms): a sequence a SPU with K and V through TO_WGT (``"to_wgt"``) where a
    sequence fits one SPU's scratchpads, else K and V through DRAM (``"dram"``). ``resnet``:
    ``"plan"`` (:func:`resnet50_plan`, the RTL's mechanisms) or ``"spatial"`` (the design
    study :func:`resnet50_spatial_plan`; ``add`` then unused)."""
    if kv == "l2":
        raise ValueError("kv='l2' needs an L2 bandwidth; project_plan has none")
    if resnet not in ("plan", "spatial"):
        raise ValueError(f"resnet must be 'plan' or 'spatial', not {resnet!r}")
    from .perf_model import PUBLISHED
    config = load_config(config) if isinstance(config, str) else config
    clock = float(config.clock_mhz or 1000) * 1e6

    def bert(s, **shape):
        if kv != "auto":
            return bert_plan(config, s, kv=kv, **shape)
        try:
            return bert_plan(config, s, kv="to_wgt", **shape)
        except NotPlannable:
            return bert_plan(config, s, kv="dram", **shape)

    nets = [("BERT-base", lambda s: bert(s, seq=seq))]
    if bert_large:
        nets.append(("BERT-Large", lambda s: bert(s, seq=384, layers=24, hidden=1024,
                                                  ffn=4096, heads=16)))
    if resnet == "spatial":
        nets.append(("ResNet-50", lambda s: resnet50_spatial_plan(config, s)))
    else:
        nets.append(("ResNet-50", lambda s: resnet50_plan(config, s, add=add)))
    rows = []
    for name, plan in nets:
        for s in sparsities:
            ops, info = plan(s)
            if "groups" in info:          # the spatial study: per image, stage by stage
                tot = run_spatial(config, ops, info, timing)
                tot["cycles"] = tot["cycles_per_sample"]
            else:
                tot = run_plan(config, ops, timing)
            seconds = tot["cycles"] / clock
            bound = max(tot["bound_cycles"], key=tot["bound_cycles"].get)
            b = info["samples"]
            rows.append({
                "model": name, "s": s, "batch": b, "cycles": tot["cycles"],
                "samples_per_s": b / seconds, "bound": bound,
                "bound_share": tot["bound_cycles"][bound] / tot["cycles"],
                "macs_per_sample": tot["macs"] / b,
                "lane_utilization": tot["macs"] / (tot["cycles"] * config.spus
                                                   * config.lanes),
                "dram_gb_per_s": tot["dram_bytes"] / seconds / 1e9,
                "dram_bytes_per_sample": tot["dram_bytes"] / b,
                "weight_bytes_per_sample": tot["weight_bytes"] / b,
                "published": PUBLISHED.get(name), "layers": tot["ops"], "plan": info,
                "mechanisms": "new"})
    return rows


def plan_assumptions(config, rows) -> list:
    """The new projection's assumptions as lines of text: mechanisms, where each network's
    tensors live, what is on the host, what is projected beyond the RTL."""
    seen, lines = {}, [
        "Mechanisms (new): int8 results written into the ACT scratchpad (GemmBody.out_act / "
        "out_stride) so a chain of layers stays on chip; sw/chain.py's data-parallel chain "
        "(each SPU its own rows, weights and parameters read once a pass and multicast to "
        "every SPU, groups of channel tiles double-buffered); packed weights in DRAM (1.625 "
        "bytes a stored weight with its 5-bit index, 1.0 at s = 1); convolution without im2col "
        "(GemmBody.conv, in the RTL: a row tile is one output pixel of "
        f"{config.rows} images, "
        "the input an NHWC tensor in ACT, banks = k*k*ceil(C/32), one ACT word a cycle).",
        "Cycles per layer and pass: the largest of the GEMM engine (the RTL-calibrated GEMM "
        "cycles of perf_model.predict_program), the read path (descriptor fetches and LOADs "
        "one after another), the write path (STOREs) and the DRAM (all bytes at "
        f"{dram_bytes_per_cycle(config):.1f} bytes a cycle), plus the pipeline's fill where a "
        "chain starts and the last STOREs where a layer's output leaves; no overlap across "
        "layers (conservative).",
        "Batch (the table's column) = one pass: as many samples as the SPUs' ACT holds at once; "
        "MLPerf offline runs pass after pass, and a larger batch would not read the weights "
        "less often (a pass's activations must fit on chip).",
    ]
    for r in rows:
        if r["model"] in seen:
            continue
        seen[r["model"]] = True
        lines.append(f"{r['model']}: " + "; ".join(r["plan"]["placement"]) + ".")
    for model in seen:
        top = max((r for r in rows if r["model"] == model), key=lambda r: r["s"])
        lines.append(f"Where {model}'s cycles go at s = {top['s']}: " + where_cycles_go(top)
                     + ".")
    bert = next((r for r in rows if r["model"] == "BERT-base"), None)
    host = ""
    if bert:
        host = (f" (on the host instead, they would add "
                f"{bert['plan']['host_softmax_ln_bytes'] / 1e6:.1f} MB of DRAM traffic a "
                "BERT-base sequence)")
    wpc = max(1, config.dram_bus_bits // (16 * config.cols))
    beyond = []
    if config.spus > 16:
        beyond.append(f"one descriptor stream driving {config.spus} SPUs (the RTL builds at "
                      "most 16, MAX_SPUS, and the descriptor's spu_mask has 16 bits)")
    if config.dram_bus_bits > 256:
        beyond.append(f"a {config.dram_bus_bits}-bit DRAM bus (the RTL fetches 32-byte "
                      "descriptors as whole bus words: at most 256 bits); its bytes move at "
                      f"the preset's {dram_bytes_per_cycle(config):.1f} bytes a cycle")
    for r in rows:
        for b in r["plan"].get("beyond", ()):
            if b not in beyond:
                beyond.append(b)
    if wpc > 1:
        beyond.append(f"the load path writing {wpc} WGT words a cycle, as many as a raw load "
                      f"from the {config.dram_bus_bits}-bit bus (the RTL's unpacker writes 1)")
    lines += [
        "Counted as GEMMs (as the RTL runs them): ResNet's residual additions (a 1x1 GEMM "
        "over both branches side by side, K = 2*C, one non-zero per bank) and its global "
        "average pool (the pixel-sum window, weight 1 on each channel); ResNet's 3x3/2 max "
        "pool as a pass of the conv walker reading 9 ACT words a word of output, one a "
        "cycle. On the device at no GEMM cycles: GELU through the LUT (RTL). On the "
        "vector unit (VOP descriptors, RTL) as sw/encoder.py's encoder_program emits them: "
        "each head's softmax and, per residual, a 16-bit ADD with per-channel multipliers "
        "and a LayerNorm; an SPU runs a VOP in its GEMM engine's queue, so their cycles add "
        f"to the GEMMs' (the 'softmax' and 'norm' rows){host}. On the host, not counted: "
        "BERT's embeddings, ResNet's input quantization and conv1's im2col where chosen.",
        "Projected beyond the RTL: " + ("; ".join(beyond) or "nothing") + ". No L2: the "
        "preset's SRAM is the SPUs' scratchpads.",
    ]
    return lines


def _kind(name):
    """A layer's kind: its name without the block or layer prefix (``L3.ffn1`` -> ``ffn1``,
    ``conv4_2b_3x3`` -> ``3x3``)."""
    if "." in name:
        return name.split(".", 1)[1]
    return name.rsplit("_", 1)[-1] if name.startswith("conv") and name != "conv1" else name


def where_cycles_go(row, top=4) -> str:
    """The kinds of layers with the most cycles in a plan's row, with their share and what
    bounds each kind most."""
    cyc, bound = {}, {}
    for op in row["layers"]:
        k = _kind(op["name"])
        cyc[k] = cyc.get(k, 0) + op["cycles"]
        bound.setdefault(k, {})
        bound[k][op["bound"]] = bound[k].get(op["bound"], 0) + op["cycles"]
    total = sum(cyc.values())
    best = sorted(cyc, key=cyc.get, reverse=True)[:top]
    return ", ".join(f"{k} {cyc[k] / total:.0%} ({max(bound[k], key=bound[k].get)})"
                     for k in best)


#: Issue 21's acceptance for ``s4 project``: at s = 16 at least this much faster than at s = 1,
#: and at least this lane utilization at s = 1, for these networks.
TARGET_SPEEDUP, TARGET_UTILIZATION, TARGET_MODELS = 6.0, 0.80, ("BERT-base", "ResNet-50")


def targets(rows) -> list:
    """A line on issue 21's targets where the rows have s = 1 and s = 16 (else none)."""
    by = {(r["model"], r["s"]): r for r in rows}
    parts = []
    for model in TARGET_MODELS:
        if (model, 1) not in by or (model, 16) not in by:
            return []
        sp = by[(model, 16)]["samples_per_s"] / by[(model, 1)]["samples_per_s"]
        util = by[(model, 1)]["lane_utilization"]
        missed = [what for what, ok in (("speedup", sp >= TARGET_SPEEDUP),
                                        ("utilization", util >= TARGET_UTILIZATION)) if not ok]
        parts.append(f"{model} {sp:.2f}x, {util:.1%} ("
                     + (" and ".join(missed) + " not reached" if missed else "both reached")
                     + ")")
    assumed = any(r.get("plan", {}).get("beyond") for r in rows)
    return [f"Issue 21's targets (at s = 16 at least {TARGET_SPEEDUP:g}x the samples/s of "
            f"s = 1, lane utilization at s = 1 at least {TARGET_UTILIZATION:.0%}): "
            + "; ".join(parts) + "."
            + (" These plans assume mechanisms the RTL does not have (--assume; see "
               "'Projected beyond the RTL')." if assumed else "")]


def resnet_ceiling_lines(config, rows) -> list:
    """Lines on ResNet-50's ceiling (:func:`resnet50_ceiling`) beside its plan, where the
    rows have ResNet-50 at s = 1 and a larger s (else none)."""
    res = {r["s"]: r for r in rows if r["model"] == "ResNet-50"}
    if 1 not in res or max(res) < 2:
        return []
    top = max(res)
    ceil = resnet50_ceilings(config, (1, top))
    plan = res[top]["samples_per_s"] / res[1]["samples_per_s"]
    ratio = {a: c[1]["cycles"] / c[top]["cycles"] for a, c in ceil.items()}
    util = {a: c[1]["lane_utilization"] for a, c in ceil.items()}
    info = res[1]["plan"]
    need, have = info.get("all_on_chip_words"), info.get("act_words")
    mem = ""
    if need and have:
        mem = (f" What keeps the plan from it: a group of {res[1]['batch']} images keeps "
               f"every feature map on chip only with {need:,} ACT words a SPU at the busiest "
               f"layer, {need / have:.1f} times the {have:,} there are, so maps and halo rows "
               "go through DRAM (the plan's 'bound' column); a row tile of one image's "
               "pixels, with the halos exchanged on chip, is the mechanism that would fit "
               "them (not in the RTL; --assume spatial-resnet studies it).")
    return [f"ResNet-50's ceiling on this preset (resnet50_ceiling: the GEMM engines "
            "alone, as if memory and DRAM cost nothing, every array row busy, tiles spaced "
            f"max(b, {config.rows}) cycles as the RTL spaces them): s = {top} is "
            f"{ratio['gemm']:.2f}x s = 1 with the residual additions as the RTL's GEMMs, "
            f"{ratio['vop']:.2f}x with them as VOP ADDs, {ratio['store']:.2f}x with them "
            f"free; lane utilization at s = 1 {util['gemm']:.1%} / {util['vop']:.1%} / "
            f"{util['store']:.1%} (the plan above: {plan:.2f}x, "
            f"{res[1]['lane_utilization']:.1%})." + mem]


def compare_rows(rows, other) -> list:
    """Rows of DRAM bytes per inference and samples/s, old against new, per model and s."""
    new = {(r["model"], r["s"]): r for r in rows + other if r.get("mechanisms") == "new"}
    old = {(r["model"], r["s"]): r for r in rows + other if r.get("mechanisms") != "new"}
    out = []
    for key in [k for k in new if k in old]:
        n, o = new[key], old[key]
        out.append({"model": key[0], "s": key[1],
                    "old_mb": o["dram_bytes_per_sample"] / 1e6,
                    "new_mb": n["dram_bytes_per_sample"] / 1e6,
                    "ratio": o["dram_bytes_per_sample"] / n["dram_bytes_per_sample"],
                    "old_sps": o["samples_per_s"], "new_sps": n["samples_per_s"]})
    return out


def _col():
    from ..report import Column
    return [Column("model", "model", "<11"), Column("s", "s", ">3"),
            Column("old MB/inf", "old_mb", ">10.2f"), Column("new MB/inf", "new_mb", ">10.2f"),
            Column("old/new", "ratio", ">7.2f"),
            Column("old samples/s", "old_sps", ">13,.0f"),
            Column("new samples/s", "new_sps", ">13,.0f")]


#: The columns of :func:`compare_rows`'s table.
COMPARE_COLUMNS = _col()
