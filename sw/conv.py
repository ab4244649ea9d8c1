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

from dataclasses import dataclass

import numpy as np

from ..base import golden
from ..base.config import BANK
from ..base.sparse import PackedWeights, pack
from ..hw.cmd.descriptors import Opcode, Target
from ..hw.spu.spu import int8_out_words
from . import layout
from .program import host_requant as _host_requant
from .program import (GROUP_CYCLES, Allocator, DeviceInfo, LayerParams, LayerProgram,
                      RegionPool, wgt_tiles_fit)
from .program import descriptor as _descriptor

__all__ = ["Tensor", "ConvOp", "PoolOp", "network_program", "conv_program", "pool_program",
           "conv_cols", "emit_conv", "emit_pool", "conv_weights", "nhwc_rows", "rows_nhwc",
           "conv_reference"]


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


def conv_cols(x, ksize, stride, pad) -> np.ndarray:
    """The im2col rows of int8 NHWC ``x`` with its channels padded to whole banks: the K
    of a conv GEMM over :func:`conv_weights`."""
    cp = -(-x.shape[3] // BANK) * BANK
    xp = np.zeros(x.shape[:3] + (cp,), np.int8)
    xp[..., :x.shape[3]] = x
    return golden.im2col_nhwc(xp, ksize, ksize, stride, pad)


def conv_reference(x, packed: PackedWeights, params: LayerParams, *, ksize, stride, pad):
    """What :func:`conv_program` computes, from the golden model: the GEMM of the channel-padded
    input's im2col rows (``golden.im2col_nhwc``) with ``packed``, ``[N, Ho, Wo, Cout]``."""
    x = np.asarray(x)
    cols = conv_cols(x, ksize, stride, pad)
    if params.mode == "int8":
        y = golden.gemm_int8(cols, packed, params.bias, params.mult, params.shift,
                             relu=params.relu, lut=params.lut)
    else:
        y = golden.gemm_raw(cols, packed, params.bias)
    ho = golden.conv_out_size(x.shape[1], ksize, stride, pad)
    wo = golden.conv_out_size(x.shape[2], ksize, stride, pad)
    return y.reshape(x.shape[0], ho, wo, packed.n)


@dataclass(frozen=True)
class Tensor:
    """An int8 NHWC tensor of ``chunks`` x ``rows`` images in DRAM, in the activation layout:
    chunk ``c``'s pixel ``p`` (row-major) is ``pix`` activation words (``rows x 32`` bytes,
    32 channels of every image of the chunk) at ``addr + (c * h * w + p) * pix * word``; the
    tensor's ``banks`` banks of 32 channels start at bank ``off`` of the pixel (so tensors can
    share pixels: a residual addition reads two of them as one)."""
    addr: int
    chunks: int
    h: int
    w: int
    banks: int
    pix: int = 0
    off: int = 0

    @property
    def stride(self):
        return self.pix or self.banks


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
    if min(x.shape) == 0:
        raise ValueError(f"x must not be empty, not {x.shape}")
    R, bb = info.rows, info.bus_bytes
    if R * BANK % bb:
        raise ValueError(f"an activation bank of a row tile ({R * BANK} bytes) is not whole "
                         f"bus words ({bb} bytes)")
    n_img, H, W, C = x.shape
    _check_geometry(ksize, stride, pad, H, W)
    prog = LayerProgram(rows=R, cols=info.cols)
    img = layout.act_image(nhwc_rows(x, R), R)
    at = alloc.alloc(len(img))
    prog.images.append((at, img))      # (its bytes count as the bands load them)
    src = Tensor(at, -(-n_img // R), H, W, -(-C // BANK))
    emit_conv(prog, info, alloc, descriptor, src, packed, params, ksize=ksize, stride=stride,
              pad=pad, max_band=max_band)
    prog.descs.append(descriptor(Opcode.COMPLETE))
    return prog


def _check_geometry(ksize, stride, pad, h, w):
    if not 1 <= ksize <= 15:
        raise ValueError(f"kernel size must be 1..15, not {ksize}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, not {stride}")
    if not 0 <= pad < min(ksize, 8):
        raise ValueError(f"padding must be 0..{min(ksize, 8) - 1} for a {ksize}x{ksize} "
                         f"kernel, not {pad}")
    ho, wo = (golden.conv_out_size(v, ksize, stride, pad) if v + 2 * pad >= ksize else 0
              for v in (h, w))
    if ho <= 0 or wo <= 0:
        raise ValueError(f"a {ksize}x{ksize} kernel with padding {pad} does not fit a "
                         f"{h}x{w} input")
    if w > 1023 or wo > 1023:
        raise ValueError(f"rows of at most 1023 pixels, not {w}")
    return ho, wo


def emit_conv(prog: LayerProgram, info: DeviceInfo, alloc: Allocator, descriptor, src: Tensor,
              packed: PackedWeights, params: LayerParams, *, ksize: int, stride: int = 1,
              pad: int = 0, dst: Tensor | None = None, max_band=None,
              resident: bool = False) -> Tensor | None:
    """Append one conv layer's descriptors (not COMPLETE) to ``prog``: input ``src`` in DRAM,
    output into ``dst`` (int8; allocated when ``None``, pixels of its own) or, in raw mode
    (and int8 requantized by the host where a bank of channel tiles does not fit), into
    ``prog.outputs``. Its tokens are balanced: the next layer starts after a SYNC. Returns the
    output tensor (``None`` when the output goes to ``prog.outputs``).

    ``resident``: a chunk's whole input is loaded once into the activation scratchpad (one
    LOAD a chunk, before its first band; a SYNC before each next chunk's) and every band's GEMM
    reads its rows there, instead of a LOAD a band into alternating halves. For an input that
    is not cheap to load twice (the image DECODE of :mod:`s4accel.sim.workloads.image_demo`)
    and fits the scratchpad; ValueError where a chunk's input does not."""
    cbanks = src.banks
    if packed.k != ksize * ksize * cbanks * BANK and not (ksize == 1 and
                                                           packed.banks == cbanks):
        raise ValueError(f"weights take K={packed.k}; a {ksize}x{ksize} conv of {cbanks} "
                         f"banks of channels needs K={ksize * ksize * cbanks * BANK} "
                         "(conv_weights)")
    if packed.s not in info.sparsities:
        raise ValueError(f"sparsity {packed.s} is not supported by the device "
                         f"({info.sparsities})")
    if params.mode not in ("raw", "int8"):
        raise ValueError(f"output mode must be 'raw' or 'int8', not {params.mode!r}")
    H, W = src.h, src.w
    Ho, Wo = _check_geometry(ksize, stride, pad, H, W)
    R, C_, bb = info.rows, info.cols, info.bus_bytes
    int8 = params.mode == "int8"
    gbt = BANK // C_ if int8 else 1          # channel tiles a group is a multiple of
    nbk = ksize * ksize * cbanks             # banks of K
    entries = nbk * packed.nnz
    nt = -(-packed.n // C_)
    pitch = W * cbanks
    zero = 1 if pad else 0                   # the zero word (padding reads it)
    half_a = (info.act_depth - zero) // 2
    whole = [False]                          # one band at a time in all of ACT (below)
    if pitch >= 1 << 16:
        raise ValueError(f"an input row is {pitch} activation words; at most 65535")
    wfmt = layout.wgt_format(packed.s)

    def band_in(r):            # input rows a band of r output rows reads (with its halo)
        return min(H, (r - 1) * stride + ksize)

    def out_words(mt, g):
        return int8_out_words(R, C_, mt, g) if int8 else g * mt * R

    def plan(single):
        """(band rows, group tiles) for double- or single-buffered weights, or None."""
        half_w = info.wgt_depth // (1 if single else 2)
        half_p = info.par_depth // (1 if single else 2)
        half_o = info.out_depth // 2
        # at least four bands where the map has the rows: the first band's load is the
        # pipeline's fill (the others load while the band before computes), at the price of
        # the halo rows read twice
        # (a window smaller than its stride skips input rows: a band of one output row
        # reads only the rows it uses)
        r = min(Ho, max_band or (1 if ksize < stride else -(-Ho // 4)), 1023)
        while r > 0 and (band_in(r) * pitch > half_a or out_words(r * Wo, gbt) > half_o
                         or r * Wo >= 1 << 16):
            r -= 1
        whole[0] = False
        if r == 0 and band_in(1) * pitch <= info.act_depth - zero:
            # a band does not fit half the activation scratchpad (a classifier over the whole
            # feature map): bands one at a time in all of it, a SYNC before each next band
            r = min(Ho, max_band or Ho, 1023)
            while r > 0 and (band_in(r) * pitch > info.act_depth - zero
                             or out_words(r * Wo, gbt) > half_o or r * Wo >= 1 << 16):
                r -= 1
            whole[0] = r > 0
        if r == 0:
            return None
        lim = min(wgt_tiles_fit(half_w, entries, wfmt, C_, bb), half_p)
        while lim > 0 and out_words(r * Wo, lim) > half_o:
            lim -= 1
        g_max = min(-(-nt // gbt), lim // gbt) * gbt
        if g_max == 0:
            return None
        g = max(1, min(g_max, -(-GROUP_CYCLES // (r * Wo * entries))))
        return r, min(g_max, -(-g // gbt) * gbt), single

    # double-buffered weights; else, for a final output, raw on the device and requantized
    # by the host (golden arithmetic, as layer_program does) where a bank of channel tiles
    # does not fit half the weight scratchpad; else single-buffered weights (each group's
    # load waits for the GEMM before it)
    host_requant = None
    best = plan(False)
    if best is None and int8 and dst is None:
        int8, gbt = False, 1
        best = plan(False)
        if best is None:
            int8, gbt = True, BANK // C_
        else:
            host_requant = _host_requant(params, packed.n)
    if best is None:
        best = plan(True)
    if best is None:
        raise ValueError(f"a {ksize}x{ksize} layer of {cbanks} input banks does not fit the "
                         f"device: one output row needs {band_in(1) * pitch} activation "
                         f"words (half the scratchpad is {half_a}), one channel tile "
                         f"{entries} weight words (the scratchpad holds {info.wgt_depth})")
    rmax, g_tiles, single = best
    if resident:
        if H * pitch > info.act_depth - zero:
            raise ValueError(f"a resident input needs {H * pitch} activation words a chunk; "
                             f"the scratchpad has {info.act_depth - zero}")
        whole[0] = False
    nbuf = 1 if single else 2
    half_w, half_p = info.wgt_depth // nbuf, info.par_depth // nbuf
    half_o = info.out_depth // 2
    groups = [(j0, min(g_tiles, nt - j0)) for j0 in range(0, nt, g_tiles)]
    act_word = R * BANK
    out_banks = -(-nt // gbt)
    if int8 and dst is None:
        dst = Tensor(alloc.alloc(src.chunks * Ho * Wo * out_banks * act_word), src.chunks,
                     Ho, Wo, out_banks)
        prog.outputs.append((dst.addr, src.chunks * Ho * Wo * out_banks * act_word, 0,
                             src.chunks * Ho * Wo * R, src.chunks * Ho * Wo))
        prog.out_banks = out_banks
        prog.m, prog.n, prog.mode = src.chunks * Ho * Wo * R, packed.n, params.mode
    elif not int8:
        prog.m, prog.n, prog.mode = src.chunks * Ho * Wo * R, packed.n, params.mode
        prog.host_requant = host_requant
    if dst is not None and (dst.h, dst.w, dst.chunks) != (Ho, Wo, src.chunks):
        raise ValueError(f"the output tensor is {dst.chunks} x {dst.h}x{dst.w}, the layer's "
                         f"{src.chunks} x {Ho}x{Wo}")

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
    if zero:
        load(Target.ACT, image(bytes(act_word)), act_word, 0)       # the zero word
    whole = whole[0]
    # bands: (chunk, first output row, output rows, first input row, input rows)
    bands = []
    for c in range(src.chunks):
        for oy0 in range(0, Ho, rmax):
            r = min(rmax, Ho - oy0)
            iy0 = max(0, oy0 * stride - pad)
            iy1 = min(H, (oy0 + r - 1) * stride - pad + ksize)
            bands.append((c, oy0, r, iy0, max(0, iy1 - iy0)))

    def load_band(t):
        c, _, _, iy0, ih = bands[t]
        if resident:
            iy0, ih = 0, H
        if not ih:
            return
        at = src.addr + ((c * H + iy0) * W * src.stride + src.off) * act_word
        sram = zero + (0 if whole or resident else (t % 2) * half_a)
        if src.stride == cbanks:         # whole pixels: one run
            load(Target.ACT, at, ih * W * cbanks * act_word, sram)
        else:                            # a bank range of every pixel: a row per pixel
            prog.descs.append(descriptor(Opcode.LOAD, dma={
                "dram_addr": at, "stride": src.stride * act_word,
                "row_bytes": cbanks * act_word, "rows": ih * W, "target": Target.ACT,
                "sram_addr": sram, "fmt": 0}))
        prog.dram_bytes += ih * W * cbanks * act_word

    total = len(bands) * len(groups)
    idx = 0
    for t, (c, oy0, r, iy0, ih) in enumerate(bands):
        mt = r * Wo
        if not int8:
            out_bytes = nt * mt * R * C_ * 4
            out_at = alloc.alloc(out_bytes)
            prog.outputs.append((out_at, out_bytes, (c * Ho * Wo + oy0 * Wo) * R, mt * R, mt))
        for gi, (j0, g) in enumerate(groups):
            buf = idx % nbuf
            more = idx + nbuf < total
            w_at, wb = wgt_at[j0]
            if gi == 0 and t > 0 and (whole or (resident and oy0 == 0)):
                prog.descs.append(descriptor(Opcode.SYNC))    # the band before is done
            load(Target.WGT, w_at, wb, buf * half_w, fmt=wfmt, wait_next=idx >= nbuf)
            if resident:
                if gi == 0 and oy0 == 0:
                    load_band(t)
            elif gi == 0 and (t == 0 or len(groups) == 1 or whole):
                load_band(t)
            load(Target.PAR, par_at + j0 * C_ * 8, -(-g * C_ * 8 // bb) * bb, buf * half_p,
                 sig_next=1)
            if gi == 1 and t + 1 < len(bands) and not whole and not resident:
                load_band(t + 1)
            prog.dram_bytes += wb + g * C_ * 8
            prog.descs.append(descriptor(Opcode.GEMM, gemm={
                "act_addr": zero + (iy0 * pitch if resident else
                                    0 if whole else (t % 2) * half_a),
                "wgt_addr": buf * half_w,
                "par_addr": buf * half_p, "out_addr": (idx % 2) * half_o, "banks": nbk,
                "m_tiles": mt, "n_tiles": g, "log2s": packed.s.bit_length() - 1,
                "mode": int(int8), "relu": int(params.relu and int8),
                "lut": int(params.lut is not None and int8),
                "conv": 1, "ksize": ksize, "stride2": int(stride == 2), "pad": pad,
                "top": iy0 - (oy0 * stride - pad), "cbanks": cbanks, "row_pitch": pitch,
                "in_h": ih, "out_w": Wo, "pad_addr": 0},
                wait_prev=1, wait_next=idx >= 2, sig_prev=more, sig_next=1))
            if int8:
                rb = -(-g // gbt) * act_word
                dma = {"dram_addr": dst.addr + ((c * Ho * Wo + oy0 * Wo) * dst.stride
                                                + dst.off + j0 // gbt) * act_word,
                       "stride": dst.stride * act_word, "row_bytes": rb, "rows": mt}
                ob = rb * mt
            else:
                ob = g * mt * R * C_ * 4
                dma = {"dram_addr": out_at + j0 * mt * R * C_ * 4, "stride": ob,
                       "row_bytes": ob, "rows": 1}
            prog.descs.append(descriptor(Opcode.STORE, dma={
                **dma, "target": 0, "sram_addr": (idx % 2) * half_o},
                wait_prev=1, sig_prev=idx + 2 < total))
            prog.dram_bytes += ob
            idx += 1
    return dst if int8 else None


def pool_program(info: DeviceInfo, x, alloc: Allocator, *, ksize: int, stride: int = 1,
                 pad: int = 0, encode=None, max_band=None) -> LayerProgram:
    """Max pooling (``ksize`` x ``ksize`` windows, ``stride`` 1 or 2, ``pad`` pixels that never
    win) of int8 NHWC ``x [N, H, W, C]`` on the device (:func:`emit_pool`); the program's
    output decodes to ``[chunks * Ho * Wo * rows, C]`` as a conv program's does."""
    descriptor = encode or _descriptor
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 4 or min(x.shape) == 0:
        raise ValueError(f"x must be a non-empty int8 NHWC array, not {x.dtype} {x.shape}")
    R = info.rows
    prog = LayerProgram(rows=R, cols=info.cols)
    img = layout.act_image(nhwc_rows(x, R), R)
    at = alloc.alloc(len(img))
    prog.images.append((at, img))
    src = Tensor(at, -(-x.shape[0] // R), x.shape[1], x.shape[2], -(-x.shape[3] // BANK))
    dst = emit_pool(prog, info, alloc, descriptor, src, ksize=ksize, stride=stride, pad=pad,
                    max_band=max_band)
    prog.outputs.append((dst.addr, dst.chunks * dst.h * dst.w * dst.banks * R * BANK, 0,
                         dst.chunks * dst.h * dst.w * R, dst.chunks * dst.h * dst.w))
    prog.out_banks = dst.banks
    prog.m, prog.n, prog.mode = dst.chunks * dst.h * dst.w * R, x.shape[3], "int8"
    prog.descs.append(descriptor(Opcode.COMPLETE))
    return prog


def emit_pool(prog: LayerProgram, info: DeviceInfo, alloc: Allocator, descriptor, src: Tensor,
              *, ksize: int, stride: int = 1, pad: int = 0, dst: Tensor | None = None,
              max_band=None) -> Tensor:
    """Append a max pooling layer's descriptors (not COMPLETE) to ``prog``: ``src`` in DRAM
    into the int8 tensor ``dst`` (allocated when ``None``). Tokens balanced, as
    :func:`emit_conv`'s.

    Per band of output rows: the band's input rows are loaded into one half of ACT; a
    ``pool`` GEMM (``GemmBody.pool``) writes the window maxima into a pooled region of ACT
    (``[pixel][bank]``, the plain activation layout); a 1x1 identity GEMM (weights 1 on the
    diagonal, one per bank, at the device's highest sparsity; requantization ``mult = 1,
    shift = 0``, exact) moves them to the output scratchpad, and a STORE writes them out.
    The pooling costs ``k * k`` cycles per pixel and channel bank, the identity GEMM ``n_tiles
    * max(cbanks, rows)`` per pixel: a STORE reads only the output scratchpad. Padding taps
    read a word of -128 kept at ACT word 0 (ONNX ``MaxPool`` pads with minus infinity)::

        ACT  [ -128 word | input band, even | input band, odd | pooled, even | pooled, odd ]
    """
    cbanks, H, W = src.banks, src.h, src.w
    Ho, Wo = _check_geometry(ksize, stride, pad, H, W)
    if dst is not None and (dst.h, dst.w, dst.chunks, dst.banks) != (Ho, Wo, src.chunks,
                                                                       cbanks):
        raise ValueError(f"the output tensor is {dst.chunks} x {dst.h}x{dst.w} x {dst.banks} "
                         f"banks, the pooling's {src.chunks} x {Ho}x{Wo} x {cbanks}")
    R, C_, bb = info.rows, info.cols, info.bus_bytes
    act_word = R * BANK
    pitch = W * cbanks
    c = cbanks * BANK
    s = max(info.sparsities)
    ident = pack(np.eye(c, dtype=np.int8), s)
    nt = -(-c // C_)
    entries = cbanks * ident.nnz
    wfmt = layout.wgt_format(s)
    if nt * entries > info.wgt_depth or nt > info.par_depth:
        raise ValueError(f"max pooling of {c} channels needs {nt * entries} weight words "
                         f"and {nt} parameter words for its identity GEMM; the device has "
                         f"{info.wgt_depth} and {info.par_depth}")

    def band_in(r):
        return min(H, (r - 1) * stride + ksize)

    r = min(Ho, max_band or (1 if ksize < stride else -(-Ho // 4)), 1023)
    while r > 0 and (1 + 2 * band_in(r) * pitch + 2 * r * Wo * cbanks > info.act_depth
                     or int8_out_words(R, C_, r * Wo, nt) > info.out_depth // 2
                     or r * Wo >= 1 << 16):
        r -= 1
    if r == 0:
        raise ValueError(f"max pooling of a {H}x{W} map of {cbanks} banks does not fit the "
                         f"device: one output row needs {2 * band_in(1) * pitch + 2 * Wo * cbanks + 1} "
                         f"activation words, the scratchpad has {info.act_depth}")
    half_a = band_in(r) * pitch
    pooled = 1 + 2 * half_a                     # the pooled regions
    half_o = info.out_depth // 2
    if dst is None:
        dst = Tensor(alloc.alloc(src.chunks * Ho * Wo * cbanks * act_word), src.chunks,
                     Ho, Wo, cbanks)

    def image(data: bytes) -> int:
        return prog.image(data, alloc, bb)

    def load(*args, **flags):
        prog.load(descriptor, *args, **flags)

    wd = layout.pack_wgt_words(layout.wgt_image(ident, C_), C_, wfmt, bb)
    load(Target.ACT, image(b"\x80" * act_word), act_word, 0)          # the -128 word
    load(Target.WGT, image(wd), len(wd), 0, fmt=wfmt)
    load(Target.PAR, image(layout.par_image(np.zeros(c, np.int32), np.ones(c, np.int64),
                                            np.zeros(c, np.int64), c, C_)),
         -(-nt * C_ * 8 // bb) * bb, 0)
    prog.dram_bytes += act_word
    bands = []
    for ch in range(src.chunks):
        for oy0 in range(0, Ho, r):
            rr = min(r, Ho - oy0)
            iy0 = max(0, oy0 * stride - pad)
            iy1 = min(H, (oy0 + rr - 1) * stride - pad + ksize)
            bands.append((ch, oy0, rr, iy0, max(0, iy1 - iy0)))
    nb = len(bands)

    def load_band(t):
        ch, _, _, iy0, ih = bands[t]
        at = src.addr + ((ch * H + iy0) * W * src.stride + src.off) * act_word
        sram = 1 + (t % 2) * half_a
        flags = {"sig_next": 1, "wait_next": int(t >= 2)}
        if src.stride == cbanks:
            load(Target.ACT, at, ih * W * cbanks * act_word, sram, **flags)
        else:
            prog.descs.append(descriptor(Opcode.LOAD, dma={
                "dram_addr": at, "stride": src.stride * act_word,
                "row_bytes": cbanks * act_word, "rows": ih * W, "target": Target.ACT,
                "sram_addr": sram, "fmt": 0}, **flags))
        prog.dram_bytes += ih * W * cbanks * act_word

    for t in range(min(2, nb)):
        load_band(t)
    for t, (ch, oy0, rr, iy0, ih) in enumerate(bands):
        mt = rr * Wo
        p_at = pooled + (t % 2) * r * Wo * cbanks
        prog.descs.append(descriptor(Opcode.GEMM, gemm={
            "act_addr": 1 + (t % 2) * half_a, "out_addr": p_at, "banks": ksize * ksize,
            "m_tiles": mt, "n_tiles": cbanks, "mode": 1, "out_act": 1, "pool": 1,
            "conv": 1, "ksize": ksize, "stride2": int(stride == 2), "pad": pad,
            "top": iy0 - (oy0 * stride - pad), "cbanks": cbanks, "row_pitch": pitch,
            "in_h": ih, "out_w": Wo, "pad_addr": 0},
            wait_prev=1, sig_prev=int(t + 2 < nb)))
        prog.descs.append(descriptor(Opcode.GEMM, gemm={
            "act_addr": p_at, "wgt_addr": 0, "par_addr": 0, "out_addr": (t % 2) * half_o,
            "banks": cbanks, "m_tiles": mt, "n_tiles": nt, "log2s": s.bit_length() - 1,
            "mode": 1}, wait_next=int(t >= 2), sig_next=1))
        rb = cbanks * act_word
        prog.descs.append(descriptor(Opcode.STORE, dma={
            "dram_addr": dst.addr + ((ch * Ho * Wo + oy0 * Wo) * dst.stride + dst.off)
            * act_word, "stride": dst.stride * act_word, "row_bytes": rb, "rows": mt,
            "target": 0, "sram_addr": (t % 2) * half_o}, wait_prev=1, sig_prev=int(t + 2 < nb)))
        prog.dram_bytes += rb * mt
        if t + 2 < nb:
            load_band(t + 2)
    return dst


@dataclass
class PoolOp:
    """A max pooling layer of :func:`network_program` (``ksize`` x ``ksize`` windows at
    ``stride``, ``pad`` pixels that never win): tensor ``src`` into tensor ``name``."""
    name: str
    src: str
    ksize: int = 2
    stride: int = 2
    pad: int = 0


@dataclass
class ConvOp:
    """One layer of :func:`network_program`: a ``ksize`` x ``ksize`` convolution of tensor
    ``src`` (a name; a pair of names is the two tensors side by side, ``[a | b]`` per pixel,
    for a residual addition as a 1x1 GEMM) into tensor ``name``."""
    name: str
    src: str | tuple
    packed: PackedWeights
    params: LayerParams
    ksize: int = 1
    stride: int = 1
    pad: int = 0


def network_program(info: DeviceInfo, x, ops, alloc: Allocator, *, encode=None,
                    max_band=None, resident=()) -> LayerProgram:
    """A network of convolutions (:class:`ConvOp`, in execution order; the first reads ``"x"``,
    the int8 NHWC input ``[N, H, W, C]``) as one device program: the host hands over ``x``
    once and reads the last layer's output once (decoded ``[chunks * Ho * Wo * rows, N]``, see
    :func:`rows_nhwc`). Every intermediate tensor lives in the on-chip L2 while it has room
    (``info.l2_kib``; the placement report says which) and in device DRAM after that, in the
    activation layout (:class:`Tensor`): the ones a residual addition reads share their pixels, so the addition
    is one 1x1 GEMM over ``[a | b]``. Layers are separated by SYNC (a layer's loads read what
    the one before stored). Weights travel packed, convolutions read their windows on chip.
    ``max_band`` caps the output rows of a band: one number for every layer, or a dict from
    layer names to numbers (the layers it does not name choose their own). The convolutions
    ``resident`` names load a chunk's whole input once (:func:`emit_conv`)."""
    descriptor = encode or _descriptor
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 4 or min(x.shape) == 0:
        raise ValueError(f"x must be a non-empty int8 NHWC array, not {x.dtype} {x.shape}")
    R, bb = info.rows, info.bus_bytes
    if R * BANK % bb:
        raise ValueError(f"an activation bank of a row tile ({R * BANK} bytes) is not whole "
                         f"bus words ({bb} bytes)")
    ops = list(ops)
    if not ops:
        raise ValueError("a network needs at least one layer")
    banks = {"x": -(-x.shape[3] // BANK)}
    for op in ops:
        if isinstance(op, PoolOp):
            if op.src not in banks:
                raise ValueError(f"{op.name}: no tensor {op.src!r} before it")
            banks[op.name] = banks[op.src]
        else:
            banks[op.name] = -(-op.packed.n // BANK)
    pair = {}
    for op in ops:
        if isinstance(op.src, tuple):
            a, b = op.src
            for t in (a, b):
                if t in pair or t == "x":
                    raise ValueError(f"{op.name}: tensor {t!r} is already read side by side "
                                     "with another one (or is the network input)")
                pair[t] = (a, b)
    prog = LayerProgram(rows=R, cols=info.cols)
    n_img, H, W, _ = x.shape
    chunks = -(-n_img // R)
    img = layout.act_image(nhwc_rows(x, R), R)
    at = alloc.alloc(len(img))
    prog.images.append((at, img))
    tensors = {"x": Tensor(at, chunks, H, W, banks["x"])}
    prog.placement.append(("x", "DRAM", len(img)))
    shared = {}                                  # pair -> buffer address
    act_word = R * BANK
    # intermediate tensors go to the on-chip L2 (DeviceInfo.l2_kib) where a free run of it
    # holds them, else to device DRAM; an L2 buffer is freed after its last reader (the SYNC
    # between layers orders that reader before the next writer). The layers' LOADs and
    # STOREs are the same either way.
    l2 = RegionPool(info.l2_base, info.l2_kib * 1024, align=max(64, info.bus_bytes))
    place = {}
    last_read = {}
    for i, op in enumerate(ops):
        for t in (op.src if isinstance(op.src, tuple) else (op.src,)):
            last_read[t] = i
    held = []                                    # (buffer's last reader, L2 address)

    def band_of(op):
        return max_band.get(op.name) if isinstance(max_band, dict) else max_band

    def tensor_alloc(name, nbytes, readers=(None,)):
        at = l2.alloc(nbytes)
        if at is not None:
            place[name] = "L2"
            held.append((max(last_read.get(r, len(ops)) for r in readers), at))
            return at
        place[name] = "DRAM"
        return alloc.alloc(nbytes)
    for i, op in enumerate(ops):
        for k, (until, at) in enumerate(list(held)):
            if until < i:
                l2.free(at)
                held.remove((until, at))
        if isinstance(op.src, tuple):
            a, b = (tensors[t] for t in op.src)
            if (a.addr, a.pix) != (b.addr, b.pix) or a.off != 0 or b.off != a.banks:
                raise ValueError(f"{op.name}: its inputs do not share their pixels")
            src = Tensor(a.addr, a.chunks, a.h, a.w, a.banks + b.banks)
        else:
            if op.src not in tensors:
                raise ValueError(f"{op.name}: no tensor {op.src!r} before it")
            src = tensors[op.src]
        last = i == len(ops) - 1
        dst = None
        pool = isinstance(op, PoolOp)
        if not last:
            if not pool and op.params.mode != "int8":
                raise ValueError(f"{op.name}: only int8 outputs feed other layers")
            ho = golden.conv_out_size(src.h, op.ksize, op.stride, op.pad)
            wo = golden.conv_out_size(src.w, op.ksize, op.stride, op.pad)
            if op.name in pair:
                a, b = pair[op.name]
                pix = banks[a] + banks[b]
                if pair[op.name] not in shared:
                    shared[pair[op.name]] = tensor_alloc(op.name,
                                                         chunks * ho * wo * pix * act_word,
                                                         (a, b))
                else:
                    place[op.name] = place[a if op.name == b else b]
                dst = Tensor(shared[pair[op.name]], chunks, ho, wo, banks[op.name], pix,
                             0 if op.name == a else banks[a])
            else:
                dst = Tensor(tensor_alloc(op.name, chunks * ho * wo * banks[op.name] * act_word,
                                          (op.name,)),
                             chunks, ho, wo, banks[op.name])
        if pool:
            out = emit_pool(prog, info, alloc, descriptor, src, ksize=op.ksize,
                            stride=op.stride, pad=op.pad, dst=dst, max_band=band_of(op))
            if last:
                nbytes = out.chunks * out.h * out.w * out.banks * act_word
                prog.outputs.append((out.addr, nbytes, 0, out.chunks * out.h * out.w * R,
                                     out.chunks * out.h * out.w))
                prog.out_banks = out.banks
                prog.m, prog.n, prog.mode = out.chunks * out.h * out.w * R, \
                    out.banks * BANK, "int8"
        else:
            out = emit_conv(prog, info, alloc, descriptor, src, op.packed, op.params,
                            ksize=op.ksize, stride=op.stride, pad=op.pad, dst=dst,
                            max_band=band_of(op), resident=op.name in resident)
        if not last:
            tensors[op.name] = out
            prog.descs.append(descriptor(Opcode.SYNC))
            other = [t for t in pair.get(op.name, ()) if t != op.name]
            prog.placement.append((op.name + (f" (pixels shared with {other[0]})" if other
                                             else ""), place[op.name],
                                   out.chunks * out.h * out.w * out.banks * act_word))
        else:
            prog.placement.append((op.name + " (output)", "DRAM",
                                   sum(nb for _, nb, *_ in prog.outputs)))
    prog.descs.append(descriptor(Opcode.COMPLETE))
    return prog
