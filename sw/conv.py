"""Convolution without im2col: a conv layer as one device program from an NHWC tensor.

The device reads a convolution's im2col windows straight from an NHWC tensor in the
activation scratchpad (``GemmBody.conv``; the docstring there defines the walk). A row tile
is one output pixel of ``rows`` images (array row ``r``: image ``r``), so a chunk of ``rows``
images is laid out as the matrix ``X2[pixel * rows + r, c] = x[image r, pixel, c]`` in the
usual ``[row tile][bank]`` activation layout (:func:`nhwc_rows`): every row tile reads the
same word in every row memory and nothing crosses rows. Channels are padded to whole banks
(``cbanks = ceil(C / 32)``) and the weights are ``[Cout, k, k, cbanks * 32]`` in that order
(:func:`conv_weights`), pruned bank-balanced along that K.

Placement (one SPU; with several, every SPU computes and the lowest one's outputs are
stored)::

    ACT  [ zero word | input band, even | input band, odd ]
    WGT, PAR, OUT: double-buffered halves, as in :func:`~.program.layer_program`

The output rows are cut into bands (at least four where the map has the rows, so that the
first band's load, the pipeline's fill, is short) whose input rows (with the halo of
``k - stride`` rows) fit half the activation scratchpad; each band is loaded once (DRAM reads: the input tensor
plus the halos, never the ``k * k``-fold im2col matrix) and every group of channel tiles runs
one conv GEMM over the band. Band ``t + 1``'s input loads after band ``t``'s second PAR load
(by then band ``t - 1``, the other half's user, is done), so it streams in while band ``t``
computes; a band of one group loads its own input. Output: int8 bytes in the activation layout
(a DRAM row per row tile: the next conv layer's input) or raw int32 words.
"""

from __future__ import annotations

import numpy as np

from ..base import golden
from ..base.config import BANK
from ..base.sparse import PackedWeights
from ..hw.cmd.descriptors import Opcode, Target
from ..hw.spu.spu import int8_out_words
from . import layout
from .program import (GROUP_CYCLES, Allocator, DeviceInfo, LayerParams, LayerProgram,
                      wgt_tiles_fit)
from .program import descriptor as _descriptor

__all__ = ["conv_program", "conv_weights", "nhwc_rows", "rows_nhwc", "conv_reference"]


def conv_weights(w) -> np.ndarray:
    """``w [Cout, k, k, C]`` (int8 or float) as the device's K order: ``[Cout, k*k*cbanks*32]``
    with the channels of every tap zero-padded to whole banks."""
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[1] != w.shape[2]:
        raise ValueError(f"conv weights must be [Cout, k, k, C], not {w.shape}")
    cout, k, _, c = w.shape
    cp = -(-c // BANK) * BANK
    out = np.zeros((cout, k, k, cp), w.dtype)
    out[..., :c] = w
    return out.reshape(cout, k * k * cp)


def nhwc_rows(x, rows: int) -> np.ndarray:
    """``x [N, H, W, C]`` as the matrix a conv GEMM reads: chunks of ``rows`` images (the last
    padded with zero images), ``[chunk][pixel][image]`` rows, channels padded to whole banks:
    ``[chunks * H * W * rows, cbanks * 32]``."""
    x = np.asarray(x)
    n, h, w, c = x.shape
    chunks = -(-n // rows)
    cp = -(-c // BANK) * BANK
    pad = np.zeros((chunks * rows, h, w, cp), x.dtype)
    pad[:n, ..., :c] = x
    return pad.reshape(chunks, rows, h * w, cp).transpose(0, 2, 1, 3).reshape(-1, cp)


def rows_nhwc(y2, n: int, h: int, w: int, rows: int) -> np.ndarray:
    """The inverse of :func:`nhwc_rows` for an output ``[chunks * h * w * rows, N]``: the first
    ``n`` images as ``[n, h, w, N]``."""
    y2 = np.asarray(y2)
    chunks = y2.shape[0] // (h * w * rows)
    return y2.reshape(chunks, h * w, rows, -1).transpose(0, 2, 1, 3).reshape(
        chunks * rows, h, w, -1)[:n]


def conv_reference(x, packed: PackedWeights, params: LayerParams, *, ksize, stride, pad):
    """What :func:`conv_program` computes, from the golden model: the GEMM of the channel-padded
    input's im2col rows (``golden.im2col_nhwc``) with ``packed``, ``[N, Ho, Wo, Cout]``."""
    x = np.asarray(x)
    cp = -(-x.shape[3] // BANK) * BANK
    xp = np.zeros(x.shape[:3] + (cp,), np.int8)
    xp[..., :x.shape[3]] = x
    cols = golden.im2col_nhwc(xp, ksize, ksize, stride, pad)
    if params.mode == "int8":
        y = golden.gemm_int8(cols, packed, params.bias, params.mult, params.shift,
                             relu=params.relu, lut=params.lut)
    else:
        y = golden.gemm_raw(cols, packed, params.bias)
    ho = golden.conv_out_size(x.shape[1], ksize, stride, pad)
    wo = golden.conv_out_size(x.shape[2], ksize, stride, pad)
    return y.reshape(x.shape[0], ho, wo, packed.n)


def conv_program(info: DeviceInfo, x, packed: PackedWeights, params: LayerParams,
                 alloc: Allocator, *, ksize: int, stride: int = 1, pad: int = 0, encode=None,
                 max_band=None) -> LayerProgram:
    """One conv layer (``ksize`` x ``ksize``, ``stride`` 1 or 2, zero padding ``pad``) on int8
    NHWC ``x [N, H, W, C]`` with ``packed`` weights over :func:`conv_weights`' K. The returned
    program's output decodes to ``[chunks * Ho * Wo * rows, Cout]`` (:func:`rows_nhwc` makes it
    NHWC). ``max_band`` caps the output rows of a band (tests)."""
    descriptor = encode or _descriptor
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 4:
        raise ValueError(f"x must be int8 NHWC [N, H, W, C], not {x.dtype} {x.shape}")
    n_img, H, W, C = x.shape
    if min(x.shape) == 0:
        raise ValueError(f"x must not be empty, not {x.shape}")
    if not 1 <= ksize <= 7:
        raise ValueError(f"kernel size must be 1..7, not {ksize}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, not {stride}")
    if not 0 <= pad < ksize:
        raise ValueError(f"padding must be 0..{ksize - 1} for a {ksize}x{ksize} kernel, "
                         f"not {pad}")
    cbanks = -(-C // BANK)
    if packed.k != ksize * ksize * cbanks * BANK:
        raise ValueError(f"weights take K={packed.k}; a {ksize}x{ksize} conv of {C} channels "
                         f"needs K={ksize * ksize * cbanks * BANK} (conv_weights)")
    if packed.s not in info.sparsities:
        raise ValueError(f"sparsity {packed.s} is not supported by the device "
                         f"({info.sparsities})")
    if params.mode not in ("raw", "int8"):
        raise ValueError(f"output mode must be 'raw' or 'int8', not {params.mode!r}")
    Ho = golden.conv_out_size(H, ksize, stride, pad)
    Wo = golden.conv_out_size(W, ksize, stride, pad)
    if Ho <= 0 or Wo <= 0:
        raise ValueError(f"a {ksize}x{ksize} kernel with padding {pad} does not fit a "
                         f"{H}x{W} input")
    R, C_, bb = info.rows, info.cols, info.bus_bytes
    int8 = params.mode == "int8"
    if R * BANK % bb:
        raise ValueError(f"an activation bank of a row tile ({R * BANK} bytes) is not whole "
                         f"bus words ({bb} bytes)")
    if W > 1023 or Wo > 1023:
        raise ValueError(f"rows of at most 1023 pixels, not {W}")
    gbt = BANK // C_ if int8 else 1          # channel tiles a group is a multiple of
    nbk = ksize * ksize * cbanks             # banks of K
    entries = nbk * packed.nnz
    nt = -(-packed.n // C_)
    pitch = W * cbanks
    half_a = (info.act_depth - 1) // 2
    half_w, half_p, half_o = info.wgt_depth // 2, info.par_depth // 2, info.out_depth // 2
    if pitch >= 1 << 16:
        raise ValueError(f"an input row is {pitch} activation words; at most 65535")

    def band_in(r):            # input rows a band of r output rows reads (with its halo)
        return min(H, (r - 1) * stride + ksize)

    def out_words(mt, g):
        return int8_out_words(R, C_, mt, g) if int8 else g * mt * R

    # at least four bands where the map has the rows: the first band's load is the pipeline's
    # fill (the others load while the band before computes), at the price of the halo rows
    # read twice
    rmax = min(Ho, max_band or -(-Ho // 4), 1023)
    while rmax > 0 and (band_in(rmax) * pitch > half_a or out_words(rmax * Wo, gbt) > half_o
                        or rmax * Wo >= 1 << 16):
        rmax -= 1
    if rmax == 0:
        raise ValueError(f"one output row needs {band_in(1) * pitch} activation words (half "
                         f"the scratchpad is {half_a}) and {out_words(Wo, gbt)} output words "
                         f"(half is {half_o}): the input rows are too wide for this device")
    mt_band = rmax * Wo
    wfmt = layout.wgt_format(packed.s)
    lim = min(wgt_tiles_fit(half_w, entries, wfmt, C_, bb), half_p)
    while lim > 0 and out_words(mt_band, lim) > half_o:
        lim -= 1
    g_max = min(-(-nt // gbt), lim // gbt) * gbt
    host_requant = None
    if g_max == 0 and int8:
        # a bank of channel tiles does not fit: raw on the device, requantized by the host
        # (golden arithmetic), as layer_program does
        int8, gbt = False, 1
        n = packed.n
        host_requant = (np.broadcast_to(1 if params.mult is None else np.asarray(params.mult),
                                        (n,)),
                        np.broadcast_to(0 if params.shift is None else
                                        np.asarray(params.shift), (n,)),
                        params.relu, params.lut)
        rmax = min(Ho, max_band or -(-Ho // 4), 1023)
        while rmax > 0 and (band_in(rmax) * pitch > half_a or out_words(rmax * Wo, 1) > half_o
                            or rmax * Wo >= 1 << 16):
            rmax -= 1
        if rmax == 0:
            raise ValueError(f"one output row needs {out_words(Wo, 1)} raw output words (half "
                             f"the scratchpad is {half_o})")
        mt_band = rmax * Wo
        lim = min(wgt_tiles_fit(half_w, entries, wfmt, C_, bb), half_p)
        while lim > 0 and out_words(mt_band, lim) > half_o:
            lim -= 1
        g_max = min(nt, lim)
    if g_max == 0:
        raise ValueError(f"one bank of channel tiles needs {gbt * entries} weight words (half "
                         f"the scratchpad is {half_w})")
    g_tiles = max(1, min(g_max, -(-GROUP_CYCLES // (mt_band * entries))))
    g_tiles = min(g_max, -(-g_tiles // gbt) * gbt)
    groups = [(j0, min(g_tiles, nt - j0)) for j0 in range(0, nt, g_tiles)]

    chunks = -(-n_img // R)
    x2 = nhwc_rows(x, R)                            # [chunks * H * W * R, cbanks * 32]
    prog = LayerProgram(m=chunks * Ho * Wo * R, n=packed.n, mode=params.mode, rows=R,
                        cols=C_, host_requant=host_requant)
    if int8:
        prog.out_banks = -(-nt // gbt)
    act_word = R * BANK

    def image(data: bytes) -> int:
        return prog.image(data, alloc, bb)

    def load(*args, **flags):
        prog.load(descriptor, *args, **flags)

    raw_w = layout.wgt_image(packed, C_)
    tile = entries * C_ * 2
    wgt_at = {}
    for j0, g in groups:
        data = layout.pack_wgt_words(raw_w[j0 * tile:(j0 + g) * tile], C_, wfmt, bb)
        wgt_at[j0] = (image(data), len(data))
    par_at = image(layout.par_image(params.bias, params.mult, params.shift, packed.n, C_))
    if params.lut is not None and int8:
        load(Target.LUT, image(layout.lut_image(params.lut)), 256, 0)
    load(Target.ACT, image(bytes(act_word)), act_word, 0)       # the zero word
    # bands: (chunk, first output row, output rows, first input row, input rows)
    bands = []
    for c in range(chunks):
        for oy0 in range(0, Ho, rmax):
            r = min(rmax, Ho - oy0)
            iy0 = max(0, oy0 * stride - pad)
            iy1 = min(H, (oy0 + r - 1) * stride - pad + ksize)
            bands.append((c, oy0, r, iy0, max(0, iy1 - iy0)))
    band_img = []
    for c, oy0, r, iy0, ih in bands:
        base = (c * H * W + iy0 * W) * R
        img = layout.act_image(x2[base:base + ih * W * R], R) if ih else b""
        band_img.append((image(img) if img else 0, len(img)))

    def load_band(t):
        at, nbytes = band_img[t]
        if nbytes:
            load(Target.ACT, at, nbytes, 1 + (t % 2) * half_a)

    total = len(bands) * len(groups)
    idx = 0
    for t, (c, oy0, r, iy0, ih) in enumerate(bands):
        mt = r * Wo
        out_bytes = mt * prog.out_banks * act_word if int8 else nt * mt * R * C_ * 4
        out_at = alloc.alloc(out_bytes)
        prog.outputs.append((out_at, out_bytes, (c * Ho * Wo + oy0 * Wo) * R, mt * R, mt))
        for gi, (j0, g) in enumerate(groups):
            buf = idx % 2
            more = idx + 2 < total
            w_at, wb = wgt_at[j0]
            load(Target.WGT, w_at, wb, buf * half_w, fmt=wfmt, wait_next=idx >= 2)
            if gi == 0 and (t == 0 or len(groups) == 1):
                load_band(t)
            load(Target.PAR, par_at + j0 * C_ * 8, -(-g * C_ * 8 // bb) * bb, buf * half_p,
                 sig_next=1)
            if gi == 1 and t + 1 < len(bands):
                load_band(t + 1)
            prog.dram_bytes += wb + g * C_ * 8
            prog.descs.append(descriptor(Opcode.GEMM, gemm={
                "act_addr": 1 + (t % 2) * half_a, "wgt_addr": buf * half_w,
                "par_addr": buf * half_p, "out_addr": buf * half_o, "banks": nbk,
                "m_tiles": mt, "n_tiles": g, "log2s": packed.s.bit_length() - 1,
                "mode": int(int8), "relu": int(params.relu and int8),
                "lut": int(params.lut is not None and int8),
                "conv": 1, "ksize": ksize, "stride2": int(stride == 2), "pad": pad,
                "top": iy0 - (oy0 * stride - pad), "cbanks": cbanks, "row_pitch": pitch,
                "in_h": ih, "out_w": Wo, "pad_addr": 0},
                wait_prev=1, wait_next=idx >= 2, sig_prev=more, sig_next=1))
            if int8:
                rb = -(-g // gbt) * act_word
                dma = {"dram_addr": out_at + j0 // gbt * act_word,
                       "stride": prog.out_banks * act_word, "row_bytes": rb, "rows": mt}
                ob = rb * mt
            else:
                ob = g * mt * R * C_ * 4
                dma = {"dram_addr": out_at + j0 * mt * R * C_ * 4, "stride": ob,
                       "row_bytes": ob, "rows": 1}
            prog.descs.append(descriptor(Opcode.STORE, dma={
                **dma, "target": 0, "sram_addr": buf * half_o},
                wait_prev=1, sig_prev=more))
            prog.dram_bytes += ob
            idx += 1
    prog.descs.append(descriptor(Opcode.COMPLETE))
    return prog
