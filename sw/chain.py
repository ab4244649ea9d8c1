"""A chain of layers as one device program, its activations kept on chip.

:func:`chain_program` lowers ``Y = L_n(... L_1(L_0(X)))`` (int8 layers, each one's output the
next one's input: an MLP, the linear layers of a transformer FFN) to one descriptor program:
the host hands over X once and reads Y once. Between layers nothing goes to DRAM: every layer
but the last writes its int8 results straight into the activation scratchpad (``GemmBody.
out_act``), in the ``[row tile][bank]`` layout the next layer's GEMM reads (``out_stride``: the
channel-tile groups of a layer fill one tensor). Only weights, parameters, the input and the
output travel over the bus.

Placement, per SPU (``rows x 32``-byte activation words)::

    ACT  [ input, chunk c even | input, chunk c odd | hidden A | hidden B ]
    WGT  [ group buffer 0 | group buffer 1 ]     PAR, OUT (last layer): the same halves

Rows are split into chunks of ``mt`` row tiles per SPU; with several SPUs each takes its own
rows (data parallel: the weights are multicast, one DRAM read for all SPUs, and every SPU runs
the whole chain on its rows). Layer ``l`` reads hidden ``(l - 1) % 2`` (layer 0: its chunk's
input) and writes hidden ``l % 2``; the last layer writes the output scratchpad, stored per
group as :func:`~.program.layer_program` does. Every layer is cut into groups of channel tiles
(whole banks of 32 channels, except a layer's last group) double-buffered through WGT and PAR
as in a single layer: group ``k``'s loads wait for GEMM ``k - 2`` and signal GEMM ``k``, so the
next group's weights load while a GEMM computes. The first chunk's input is loaded between its
first group's WGT and PAR loads (the PAR load's token starts that GEMM); the input of chunk
``c + 1`` right after chunk ``c``'s first PAR load, into the input half chunk ``c - 1`` used:
that load follows a WGT load that waited for the GEMM two groups back, and with two layers or
more every layer-0 GEMM of chunk ``c - 1`` is at least that far back. So the next chunk's
input streams in while this chunk's GEMMs write the activation memories (the SPU lets a
result row go first where both meet at one memory). A one-layer chain loads each chunk's input
in its own first group. GEMMs run one at a time in program order, so a layer's GEMMs finish
before the next layer's read what they wrote.

What does not fit raises :class:`NotOnChip` (the caller runs the layers one by one):
intermediate layers that the device cannot requantize (``LayerParams.mode`` raw, or a bank that
does not fit half the weight scratchpad), more than one distinct activation table, or a chunk
of one row tile that does not fit the activation scratchpad.
"""

from __future__ import annotations

import numpy as np

from ..base.config import BANK
from ..base.sparse import pack, unpack
from ..hw.cmd.descriptors import Opcode, Target
from ..hw.cmd.processor import QUEUE_DEPTH
from . import layout
from .program import (Allocator, DeviceInfo, LayerParams, LayerProgram, RegionPool,
                      layer_program, wgt_tiles_fit)
from .program import descriptor as _descriptor

__all__ = ["NotOnChip", "chain_program", "gather_chain_program", "GROUP_CYCLES"]

#: Compute cycles a chain's channel-tile group aims for (``program.GROUP_CYCLES`` is the
#: layer programs'; chains keep 384, what their bench rows and ``s4 demo`` were measured with
#: and what ``sim/model/dataflow.py`` models).
GROUP_CYCLES = 384


class NotOnChip(ValueError):
    """The chain cannot run as one on-chip program (the message says why)."""


def chain_program(info: DeviceInfo, x, layers, alloc: Allocator, *, encode=None,
                  max_chunk=None) -> LayerProgram:
    """One program for the chain ``layers`` (a list of ``(PackedWeights, LayerParams)``) on
    int8 input ``x`` [M, K0]; the returned :class:`~.program.LayerProgram` decodes the last
    layer's output (raw int32 or int8). ``max_chunk`` caps the row tiles of a chunk (tests)."""
    descriptor = encode or _descriptor
    x = np.asarray(x)
    layers = list(layers)
    if not layers:
        raise ValueError("a chain needs at least one layer")
    if x.dtype != np.int8 or x.ndim != 2 or x.shape[1] != layers[0][0].k:
        raise ValueError(f"x must be int8 [M, {layers[0][0].k}], not {x.dtype} {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"x has no rows (M = 0): a chain needs at least one, not {x.shape}")
    for i, (packed, params) in enumerate(layers):
        if packed.s not in info.sparsities:
            raise ValueError(f"layer {i}: sparsity {packed.s} is not supported by the device "
                             f"({info.sparsities})")
        if i and packed.k != layers[i - 1][0].n:
            raise ValueError(f"layer {i} takes K={packed.k} inputs but layer {i - 1} gives "
                             f"N={layers[i - 1][0].n}")
        if params.mode not in ("raw", "int8"):
            raise ValueError(f"layer {i}: output mode must be 'raw' or 'int8', not "
                             f"{params.mode!r}")
    R, C, bb = info.rows, info.cols, info.bus_bytes
    spus = max(1, info.spus)
    gb = BANK // C                         # channel tiles of one bank
    L = len(layers)
    if R * BANK % bb:
        raise NotOnChip(f"an activation bank of a row tile ({R * BANK} bytes) is not whole "
                        f"bus words ({bb} bytes)")
    for i, (_, params) in enumerate(layers[:-1]):
        if params.mode != "int8":
            raise NotOnChip(f"layer {i} has raw (int32) output: only int8 stays on chip")
    luts = {p.lut.tobytes() for _, p in layers if p.lut is not None}
    if len(luts) > 1:
        raise NotOnChip("more than one activation table in the chain")
    last_int8 = layers[-1][1].mode == "int8"
    half_w, half_p, half_o = info.wgt_depth // 2, info.par_depth // 2, info.out_depth // 2

    m = x.shape[0]
    mt_all = -(-m // R)
    mt_spu = -(-mt_all // spus)
    nbs = [p.banks for p, _ in layers]                      # input banks of each layer
    hid = [-(-p.n // BANK) for p, _ in layers[:-1]]         # output banks of int8 layers
    n_hid = min(2, len(hid))
    max_h = max(hid, default=0)

    def act_words(mt, chunks):
        return mt * (nbs[0] * (2 if chunks > 1 else 1) + n_hid * max_h)

    mt = min(mt_spu, max_chunk or mt_spu)
    while mt > 0 and act_words(mt, -(-mt_spu // mt)) > info.act_depth:
        mt -= 1
    # the last layer's output half: raw, a word per row of a channel tile; int8, a bank of
    # a row tile takes R * 32 / (4 C) words
    nt_last = -(-layers[-1][0].n // C)
    out_per_tile = (R * gb + 3) // 4 if last_int8 else R    # words per (bank or tile) x row tile
    while mt > 0 and mt * out_per_tile > half_o:
        mt -= 1
    if mt == 0:
        raise NotOnChip(f"one row tile of the chain needs {act_words(1, 2)} activation words "
                        f"(the scratchpad holds {info.act_depth}) or more than half the output "
                        "scratchpad")
    chunks = [(c0, min(mt, mt_spu - c0)) for c0 in range(0, mt_spu, mt)]
    regions_in = [0, mt * nbs[0]] if len(chunks) > 1 else [0]
    h0 = mt * nbs[0] * len(regions_in)
    regions_h = [h0, h0 + mt * max_h]

    # groups of channel tiles per layer
    plans = []
    for i, (packed, params) in enumerate(layers):
        entries = packed.banks * packed.nnz
        nt = -(-packed.n // C)
        last = i == L - 1
        unit = gb if (not last or last_int8) else 1
        lim = min(wgt_tiles_fit(half_w, entries, layout.wgt_format(packed.s), C, bb), half_p)
        if last:
            lim = min(lim, half_o // (mt * out_per_tile) * (1 if not last_int8 else gb))
        g_max = min(-(-nt // unit), lim // unit) * unit
        if g_max == 0:
            raise NotOnChip(f"layer {i}: one bank of channel tiles needs {unit * entries} weight "
                            f"words (half the scratchpad is {half_w})")
        g_tiles = max(1, min(g_max, -(-GROUP_CYCLES // (mt * entries))))
        g_tiles = min(g_max, -(-g_tiles // unit) * unit)
        plans.append((entries, nt, g_tiles))

    prog = LayerProgram(m=m, n=layers[-1][0].n, mode=layers[-1][1].mode, rows=R, cols=C)
    prog.placement.append(("input", "DRAM", m * nbs[0] * BANK))
    for i in range(L - 1):
        prog.placement.append((f"layer {i} output", "ACT", m * hid[i] * BANK))
    prog.placement.append((f"layer {L - 1} output", "DRAM",
                           m * (-(-layers[-1][0].n // BANK) * BANK if last_int8
                                else layers[-1][0].n * 4)))
    if last_int8:
        prog.out_banks = -(-nt_last // gb)
    bank_bytes = R * BANK
    act_word = R * BANK

    def image(data: bytes) -> int:
        return prog.image(data, alloc, bb)

    def load(*args, **flags):
        prog.load(descriptor, *args, **flags)

    one = (lambda p: 1 << p) if spus > 1 else (lambda p: 0)
    # weights packed (layout.wgt_packed_image), one stream per group's LOAD
    wgt_at, par_at = [], []
    for (packed, params), (entries, nt, gt) in zip(layers, plans):
        raw = layout.wgt_image(packed, C)
        tile = entries * C * 2
        fmt = layout.wgt_format(packed.s)
        parts = {}
        for j0 in range(0, nt, gt):
            data = layout.pack_wgt_words(raw[j0 * tile:(j0 + gt) * tile], C, fmt, bb)
            parts[j0] = (image(data), len(data), fmt)
        wgt_at.append(parts)
        par_at.append(image(layout.par_image(params.bias, params.mult, params.shift, packed.n,
                                             C)))
    if luts:
        lut = next(p.lut for _, p in layers if p.lut is not None)
        load(Target.LUT, image(layout.lut_image(lut)), 256, 0)
    # inputs: per chunk and SPU, the rows of row tiles (c * spus + p) * mt ...
    ins = {}
    for ci, (c0, mtc) in enumerate(chunks):
        for p in range(spus):
            t0 = p * mt_spu + c0
            r0, r1 = t0 * R, min(m, (t0 + mtc) * R)
            if r0 < r1:
                img = layout.act_image(x[r0:r1], R)
                ins[ci, p] = (image(img), len(img) // act_word, r0, r1 - r0)
    def load_input(ci):
        for p in range(spus):
            if (ci, p) in ins:
                addr, words, _, _ = ins[ci, p]
                load(Target.ACT, addr, words * act_word, regions_in[ci % len(regions_in)],
                     spu_mask=one(p))

    total = len(chunks) * sum(-(-nt // gt) for _, nt, gt in plans)
    last_groups = len(chunks) * -(-plans[-1][1] // plans[-1][2])
    idx = 0          # groups so far (WGT / PAR buffers)
    q = 0            # last-layer groups so far (OUT buffers)
    defer = spus > QUEUE_DEPTH
    pending = []
    for ci, (c0, mtc) in enumerate(chunks):
        a_in = regions_in[ci % len(regions_in)]
        outs = {}
        for p in range(spus):
            if (ci, p) in ins:
                _, _, r0, nrows = ins[ci, p]
                ob = (mtc * prog.out_banks * bank_bytes if last_int8
                      else nt_last * mtc * R * C * 4)
                at = alloc.alloc(ob)
                outs[p] = at
                prog.outputs.append((at, ob, r0, nrows, mtc))
        for li, ((packed, params), (entries, nt, gt)) in enumerate(zip(layers, plans)):
            last = li == L - 1
            src = a_in if li == 0 else regions_h[(li - 1) % 2]
            dst = regions_h[li % 2]
            for j0 in range(0, nt, gt):
                g = min(gt, nt - j0)
                buf = idx % 2
                more = idx + 2 < total
                w_at, wb, wfmt = wgt_at[li][j0]
                load(Target.WGT, w_at, wb, buf * half_w, fmt=wfmt, wait_next=idx >= 2)
                first = li == 0 and j0 == 0
                if first and (ci == 0 or L == 1):
                    load_input(ci)
                load(Target.PAR, par_at[li] + j0 * C * 8, -(-g * C * 8 // bb) * bb,
                     buf * half_p, sig_next=1)
                if first and L > 1 and ci + 1 < len(chunks):
                    load_input(ci + 1)
                prog.dram_bytes += wb + g * C * 8
                prog.descs += pending
                pending = []
                gemm = {"act_addr": src, "wgt_addr": buf * half_w, "par_addr": buf * half_p,
                        "banks": packed.banks, "m_tiles": mtc, "n_tiles": g,
                        "log2s": packed.s.bit_length() - 1,
                        "mode": int(params.mode == "int8"),
                        "relu": int(params.relu and params.mode == "int8"),
                        "lut": int(params.lut is not None and params.mode == "int8")}
                if not last:
                    gemm.update(out_addr=dst + j0 // gb, out_act=1, out_stride=hid[li])
                    prog.descs.append(descriptor(Opcode.GEMM, gemm=gemm, wait_prev=1,
                                                 sig_prev=more))
                else:
                    qbuf = q % 2
                    gemm["out_addr"] = qbuf * half_o
                    prog.descs.append(descriptor(Opcode.GEMM, gemm=gemm, wait_prev=1,
                                                 wait_next=q >= 2, sig_prev=more, sig_next=1))
                    stores = sorted(outs)
                    for k, p in enumerate(stores):
                        if last_int8:
                            rb = -(-g // gb) * bank_bytes
                            dma = {"dram_addr": outs[p] + j0 // gb * bank_bytes,
                                   "stride": prog.out_banks * bank_bytes, "row_bytes": rb,
                                   "rows": mtc}
                            ob = rb * mtc
                        else:
                            ob = g * mtc * R * C * 4
                            dma = {"dram_addr": outs[p] + j0 * mtc * R * C * 4, "stride": ob,
                                   "row_bytes": ob, "rows": 1}
                        (pending if defer else prog.descs).append(descriptor(
                            Opcode.STORE, dma={**dma, "target": 0, "sram_addr": qbuf * half_o},
                            wait_prev=k == 0,
                            sig_prev=(q + 2 < last_groups) and k == len(stores) - 1,
                            spu_mask=one(p)))
                        prog.dram_bytes += ob
                    q += 1
                idx += 1
    prog.descs += pending
    prog.descs.append(descriptor(Opcode.COMPLETE))
    return prog


def chain_layers(model) -> list:
    """``(packed, params)`` of every layer of a :class:`~.compiler.CompiledModel`."""
    return [(layer.packed, layer.params) for layer in model.layers]


LayerParams  # re-exported for callers building chains by hand  # noqa: B018


def _pad_k(packed, k):
    """``packed`` with zero input channels appended up to ``k`` (a multiple of 32)."""
    if packed.k >= k:
        return packed
    w = unpack(packed)
    return pack(np.pad(w, ((0, 0), (0, k - w.shape[1]))), packed.s)


def gather_chain_program(info: DeviceInfo, x, chain, alloc: Allocator, *,
                         encode=None) -> LayerProgram:
    """A chain of layers (``[(packed, params), ...]``, as :func:`chain_program` takes) as one
    program in which every layer is split across the SPUs by *output channel* and gathers its
    input from the on-chip L2: each SPU computes its channel tiles of the layer with its own
    weights and STOREs them into the layer's output tensor, one tensor for all SPUs; after a
    SYNC, the next layer LOADs the whole tensor back into every SPU at once (a multicast from
    one read). The tensors between layers are placed in the L2 (``info.l2_kib``) where a free
    run of it holds them (a tensor's buffer is freed once the layer after it has read it) and
    in device DRAM otherwise (``prog.placement`` says where). This is the layout for
    layers whose weights are too large to multicast to every SPU (each SPU holds only its
    share); :func:`chain_program` (rows split across SPUs, weights multicast, activations
    never leaving the SPUs) is the one for small layers.

    Each layer is :func:`~.program.layer_program` with its input and output on the device;
    a layer's K is padded with zero weights to the previous layer's stored banks (multi-SPU
    groups store whole groups). The last layer's output goes to DRAM for the host."""
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be int8 [M, K] with M > 0, not {x.dtype} {x.shape}")
    if not chain:
        raise ValueError("a chain needs at least one layer")
    m = x.shape[0]
    R = info.rows
    l2 = RegionPool(info.l2_base, info.l2_kib * 1024, align=max(64, info.bus_bytes))
    prog = LayerProgram(rows=R, cols=info.cols)
    prev_l2 = None           # the L2 buffer of the layer before's input (freed after it)
    prog.placement.append(("x", "DRAM", x.size))
    src = None
    k_in = x.shape[1]
    for li, (packed, params) in enumerate(chain):
        last = li == len(chain) - 1
        if packed.k != k_in and not (li > 0 and packed.k <= k_in):
            raise ValueError(f"layer {li} takes K={packed.k}, its input has {k_in} channels")
        packed = _pad_k(packed, k_in)
        where = {}

        def dst(nbytes, where=where):
            at = l2.alloc(nbytes)
            if at is not None:
                where["place"], where["bytes"], where["at"] = "L2", nbytes, at
                return at
            where["place"], where["bytes"] = "DRAM", nbytes
            return alloc.alloc(nbytes)
        if not last and params.mode != "int8":
            raise ValueError(f"layer {li}: only int8 outputs feed other layers")
        xin = x if li == 0 else np.zeros((m, packed.k), np.int8)
        sub = layer_program(info, xin, packed, params, alloc, encode=encode, src=src,
                            dst=None if last else dst, complete=last)
        prog.descs += sub.descs
        prog.images += sub.images
        prog.dram_bytes += sub.dram_bytes
        if last:
            prog.outputs, prog.out_banks = sub.outputs, sub.out_banks
            prog.host_requant = sub.host_requant
            prog.m, prog.n, prog.mode = sub.m, sub.n, sub.mode
            prog.placement.append((f"layer {li} (output)", "DRAM",
                                   sum(nb for _, nb, *_ in sub.outputs)))
        else:
            if not sub.out_banks or "place" not in where:
                raise ValueError(f"layer {li}: its int8 output does not fit the device")
            prog.descs.append((encode or _descriptor)(Opcode.SYNC))
            prog.placement.append((f"layer {li}", where["place"], where["bytes"]))
            # this layer's input has been read (the SYNC): its L2 buffer is free again
            if prev_l2 is not None:
                l2.free(prev_l2)
            prev_l2 = where.get("at")
            src = sub.outputs[0][0]
            k_in = sub.out_banks * BANK
    return prog
