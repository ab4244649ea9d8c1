"""Device programs: descriptors and DRAM images for whole layers.

A layer ``Y = requant(X @ W.T + bias)`` becomes (all addresses chosen by the caller's
allocator)::

    LOAD LUT            (if the layer has one)
    LOAD ACT            all row tiles of X, once (a SYNC separates row chunks that don't fit)
    for each group g of channel tiles (double-buffered weights, parameters and outputs):
        LOAD WGT[g % 2]   wait_next (g >= 2: GEMM g-2 is done with this buffer)
        LOAD PAR[g % 2]   sig_next  (tell GEMM g its operands are in)
        GEMM g            wait_prev; wait_next (g >= 2: STORE g-2 emptied OUT[g % 2]);
                          sig_prev (g + 2 < groups), sig_next
        STORE OUT[g % 2]  wait_prev; sig_prev (g + 2 < groups)
    COMPLETE

so the next group's loads and the previous group's store run while a GEMM computes.

Weights travel packed (``layout.wgt_packed_image``; ``wgt_packed=False`` ships the raw
scratchpad words): each WGT LOAD is one bit stream of its channel tiles' words padded to the
bus width, 1.625 bytes per stored weight (1 at s = 1, where the load path generates the
indices) plus that padding. A packed LOAD writes every whole word of its stream, so a
buffer's load may write a zero word past its tiles; groups are sized so that it stays in
the buffer's half of the scratchpad.

int8 outputs are stored as bytes in the activation layout (``layout.decode_out``): a group
covers whole banks of 32 channels (``32 / cols`` channel tiles) so that its STORE writes whole
32-byte rows, one DRAM row per row tile (``rows x 32`` bytes a bank, at the output's bank
stride). Only the last group of a single SPU may end inside a bank. Where one bank of channel
tiles does not fit half the weight (or parameter, or output) scratchpad (large K at low
sparsity, or few columns), the layer runs in raw mode and the host requantizes
(``LayerProgram.host_requant``, golden arithmetic): its outputs leave the device as int32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base import golden
from ..base.config import BANK, L2_BASE, Config
from ..base.sparse import PackedWeights
from ..hw.cmd.descriptors import DESC_BYTES, LoadFormat, Opcode, Target, encode_descriptor
from ..hw.cmd.processor import QUEUE_DEPTH
from ..hw.spu.spu import PAR_DEPTH
from . import layout

__all__ = ["DeviceInfo", "LayerParams", "LayerProgram", "descriptor", "layer_program",
           "Allocator", "RegionPool", "wgt_load_words", "wgt_tiles_fit"]


@dataclass(frozen=True)
class DeviceInfo:
    """What the driver knows of a device: read from capability registers, or a Config."""
    rows: int
    cols: int
    spus: int
    sparsities: tuple
    bus_bits: int
    act_sram_kib: int
    wgt_sram_kib: int
    out_sram_kib: int
    #: the on-chip L2 shared by the SPUs (KiB, 0: none), at :data:`L2_BASE`
    l2_kib: int = 0
    #: the longest row of the vector unit's row operations (0: no vector unit, no VOP)
    vec_max_row: int = 0
    #: JPEG decoder instances of the codec wrapper (0: DECODE is not available)
    jpeg_decoders: int = 0
    #: the widest image a JPEG decoder takes (``CAP_CODEC.max_width_log2``)
    jpeg_max_width: int = 2048
    #: vector units a SPU (``CAP_VEC.units_log2``; ``Config.vec_units``)
    vec_units: int = 1

    @classmethod
    def from_config(cls, c: Config) -> DeviceInfo:
        return cls(c.rows, c.cols, c.spus, c.sparsities, c.dram_bus_bits, c.act_sram_kib,
                   c.wgt_sram_kib, c.out_sram_kib, c.l2_kib, c.vec_max_row, c.jpeg_decoders,
                   c.jpeg_max_width, c.vec_units)

    @property
    def l2_base(self):
        return L2_BASE

    @property
    def bus_bytes(self):
        return self.bus_bits // 8

    @property
    def act_depth(self):
        return self.act_sram_kib * 1024 // (self.rows * BANK)

    @property
    def wgt_depth(self):
        return self.wgt_sram_kib * 1024 // (self.cols * 2)

    @property
    def out_depth(self):
        return self.out_sram_kib * 1024 // (self.cols * 4)

    par_depth = PAR_DEPTH


@dataclass
class LayerParams:
    """Output mode of a layer (see :mod:`s4accel.base.golden`)."""
    mode: str = "raw"
    bias: np.ndarray | None = None
    mult: np.ndarray | None = None
    shift: np.ndarray | None = None
    relu: bool = False
    lut: np.ndarray | None = None


def descriptor(opcode: Opcode, *, wait_prev=0, wait_next=0, sig_prev=0, sig_next=0,
               dma=None, gemm=None, vop=None, spu_mask=0, decode=None) -> bytes:
    """One 32-byte descriptor, encoded with the hardware's own layout (``spu_mask`` 0: all
    SPUs); ``dma``, ``gemm``, ``vop`` or ``decode``: the body's fields."""
    body = ({"dma": dma} if dma is not None else {"gemm": gemm} if gemm is not None
            else {"vop": vop} if vop is not None else {"decode": decode} if decode is not None
            else {})
    value = encode_descriptor({
        "header": {"opcode": opcode.value if isinstance(opcode, Opcode) else int(opcode),
                   "wait_prev": int(wait_prev), "wait_next": int(wait_next),
                   "sig_prev": int(sig_prev), "sig_next": int(sig_next),
                   "spu_mask": int(spu_mask)},
        "body": body,
    })
    return value.to_bytes(DESC_BYTES, "little")


class Allocator:
    """Bump allocator over a DRAM region; every block aligned to ``align`` bytes."""

    def __init__(self, base: int, size: int, align: int = 64):
        self.base, self.size, self.align = base, size, align
        self.top = base

    def alloc(self, nbytes: int) -> int:
        addr = -(-self.top // self.align) * self.align
        if addr + nbytes > self.base + self.size:
            raise MemoryError(f"DRAM region [{self.base:#x}, {self.base + self.size:#x}) has no "
                              f"room for {nbytes} more bytes")
        self.top = addr + nbytes
        return addr


class RegionPool:
    """First-fit allocator with ``free`` over ``[base, base + size)`` (the on-chip L2: the
    compiler places a tensor there for its lifetime and frees it after its last reader).
    :meth:`alloc` returns ``None`` when no free run is large enough."""

    def __init__(self, base: int, size: int, align: int = 64):
        self.base, self.size, self.align = base, size, align
        self.runs = [(base, base + size)] if size else []     # free, sorted, disjoint
        self.used = {}

    def alloc(self, nbytes: int):
        n = -(-max(1, nbytes) // self.align) * self.align
        for k, (lo, hi) in enumerate(self.runs):
            if hi - lo >= n:
                self.runs[k:k + 1] = [(lo + n, hi)] if hi - lo > n else []
                self.used[lo] = n
                return lo
        return None

    def free(self, addr: int):
        n = self.used.pop(addr)
        runs = sorted(self.runs + [(addr, addr + n)])
        merged = [runs[0]]
        for lo, hi in runs[1:]:
            if lo == merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        self.runs = merged


#: Compute cycles a channel-tile group aims for: short enough that filling the pipeline (the
#: first group's weights) and draining it (the last group's outputs) cost little, long enough
#: that its four descriptors are a small share of the DMA traffic and a GEMM's fixed cost (its
#: setup and the array's drain, about ``31 + rows`` cycles) a small share of its time. 768
#: since the packed weights (was 384: ``bert_attn`` at s = 16 lost 10 % to per-GEMM costs,
#: 0.876 of the ideal speedup, 0.906 now; no bench layer or network got slower).
GROUP_CYCLES = 768


@dataclass
class LayerProgram:
    """Descriptors plus the DRAM images they read and the regions they write."""
    descs: list = field(default_factory=list)
    images: list = field(default_factory=list)       # (addr, bytes)
    #: (addr, nbytes, m0, m_rows[, row_tiles]): row_tiles where the block has more row tiles
    #: than its rows fill (a raw block's row-tile stride)
    outputs: list = field(default_factory=list)
    out_banks: int = 0                                 # int8: banks per row tile in DRAM
    #: int8 layers run in raw mode (see the module docstring): (mult, shift, relu, lut)
    host_requant: tuple | None = None
    m: int = 0
    n: int = 0
    mode: str = "raw"
    dram_bytes: int = 0
    rows: int = 0
    cols: int = 0
    #: where the program keeps each tensor: (tensor, place, bytes), place "ACT" (on chip) or
    #: "DRAM" (the compiler's report; chain and network programs fill it)
    placement: list = field(default_factory=list)

    def image(self, data: bytes, alloc: Allocator, bus_bytes: int) -> int:
        """Place ``data`` (padded to whole bus words) in DRAM; returns its address."""
        data = _padded(data, bus_bytes)
        addr = alloc.alloc(len(data))
        self.images.append((addr, data))
        self.dram_bytes += len(data)
        return addr

    def load(self, descriptor, target, dram, nbytes, sram, fmt=LoadFormat.RAW, **flags):
        """Append a one-row LOAD of ``nbytes`` from ``dram`` to word ``sram`` of ``target``
        (``descriptor``: :func:`descriptor` or the performance model's encoder)."""
        self.descs.append(descriptor(Opcode.LOAD, dma={
            "dram_addr": dram, "stride": nbytes, "row_bytes": nbytes, "rows": 1,
            "target": target, "sram_addr": sram, "fmt": fmt.value}, **flags))

    def decode(self, read) -> np.ndarray:
        """Assemble Y from the output regions; ``read(addr, nbytes)`` returns bytes."""
        stored = "raw" if self.host_requant else self.mode
        y = np.zeros((self.m, self.n), np.int8 if stored == "int8" else np.int32)
        for addr, nbytes, m0, rows, *tiles in self.outputs:
            y[m0:m0 + rows] = layout.decode_out(read(addr, nbytes), rows, self.n, self.rows,
                                                self.cols, stored, banks=self.out_banks,
                                                row_tiles=tiles[0] if tiles else None)
        if self.host_requant:
            mult, shift, relu, lut = self.host_requant
            y = golden.requantize(y, mult, shift, relu=relu, lut=lut)
        return y


def wgt_load_words(words: int, fmt, cols: int, bus_bytes: int) -> int:
    """WGT words a LOAD of ``words`` weight words in format ``fmt`` writes: ``words`` raw; a
    packed stream padded to the bus writes every whole word of it, now and then one more."""
    if LoadFormat(fmt) == LoadFormat.RAW:
        return words
    wbits = layout.packed_word_bits(fmt, cols)
    return -(-words * wbits // (8 * bus_bytes)) * 8 * bus_bytes // wbits


def wgt_tiles_fit(buf_words: int, entries: int, fmt, cols: int, bus_bytes: int) -> int:
    """Channel tiles of ``entries`` words each whose weight LOAD fits ``buf_words`` words."""
    t = buf_words // entries
    while t > 0 and wgt_load_words(t * entries, fmt, cols, bus_bytes) > buf_words:
        t -= 1
    return t


def host_requant(params: LayerParams, n: int) -> tuple:
    """``LayerProgram.host_requant`` for an int8 layer of ``n`` channels computed raw on the
    device: ``(mult, shift, relu, lut)``, mult 1 and shift 0 where ``params`` has none."""
    return (np.broadcast_to(1 if params.mult is None else np.asarray(params.mult), (n,)),
            np.broadcast_to(0 if params.shift is None else np.asarray(params.shift), (n,)),
            params.relu, params.lut)


def _padded(buf: bytes, unit: int) -> bytes:
    return buf + b"\0" * (-len(buf) % unit)


def layer_program(info: DeviceInfo, x, packed: PackedWeights, params: LayerParams,
                  alloc: Allocator, *, encode=None, wgt_packed: bool = True, src=None,
                  dst=None, complete: bool = True) -> LayerProgram:
    """Tile, place and schedule one layer for a device with ``info``. ``encode`` replaces
    :func:`descriptor` (same signature and bytes; the performance model passes a faster one).

    For layers chained through device memory (:func:`~.chain.gather_chain_program`): ``src``,
    the device address of the input in the activation layout (``[row tile][bank]``, the
    ``ceil(K / 32)`` banks of a row tile contiguous; ``x`` then gives only the shape), and
    ``dst``, a function ``dst(nbytes) -> address`` that places the int8 output as one tensor
    (``prog.out_banks`` banks a row tile) instead of a block per row chunk. ``complete =
    False`` leaves out the final COMPLETE.

    ``x`` needs at least one row: M = 0 is a ``ValueError`` (there is no empty program; the
    caller decides what an empty batch means). Parameters the PAR words cannot hold exactly
    (:func:`.layout.par_image`) are a ``ValueError`` naming the field. Both are raised before
    anything is allocated."""
    descriptor = encode or globals()["descriptor"]
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 2 or x.shape[1] != packed.k:
        raise ValueError(f"x must be int8 [M, {packed.k}], not {x.dtype} {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"x has no rows (M = 0): a layer needs at least one, not {x.shape}")
    if packed.s not in info.sparsities:
        raise ValueError(f"sparsity {packed.s} is not supported by the device "
                         f"({info.sparsities})")
    if params.mode not in ("raw", "int8"):
        raise ValueError(f"output mode must be 'raw' or 'int8', not {params.mode!r}")
    R, C, bb = info.rows, info.cols, info.bus_bytes
    # int8 on the device: a row tile's bank (R x 32 bytes) must be whole bus words
    int8 = params.mode == "int8" and R * BANK % bb == 0
    gb_tiles = BANK // C if int8 else 1      # channel tiles a group is a multiple of
    m, n = x.shape[0], packed.n
    nb, nnz = packed.banks, packed.nnz
    mt_all, nt = layout.tiles(m, n, R, C)
    entries = nb * nnz
    wfmt = layout.wgt_format(packed.s) if wgt_packed else LoadFormat.RAW
    w_fit = wgt_tiles_fit(info.wgt_depth // 2, entries, wfmt, C, bb)
    if nb > info.act_depth:
        raise ValueError(f"K={packed.k} needs {nb} activation words per row tile; the "
                         f"scratchpad holds {info.act_depth}")
    # Row chunks. Each weight word is used once per row tile of a chunk, so a chunk of
    # ``reuse`` row tiles keeps the weight traffic of all SPUs at most half the DRAM bus;
    # with more than one chunk, the activation scratchpad is double-buffered and the next
    # chunk's activations load while this chunk computes.
    reuse = max(1, -(-4 * C * max(1, info.spus) // bb))    # every SPU reads its own weights
    half_a = info.act_depth // 2
    if mt_all <= reuse or half_a < nb:
        act_double = False
        mt_chunk = min(mt_all, info.act_depth // nb)
    else:
        act_double = True
        mt_chunk = min(mt_all, reuse, half_a // nb)
    chunks = [(c0, min(mt_chunk, mt_all - c0)) for c0 in range(0, mt_all, mt_chunk)]
    # channel-tile groups: at most half of each double-buffered scratchpad, about GROUP_CYCLES
    # of compute (short groups fill and drain the pipeline quickly), at least two per chunk
    if int8:       # whole banks; an int8 row tile's bank takes R * 32 / (4 C) words
        g_max = min(-(-nt // gb_tiles), w_fit // gb_tiles,
                    info.par_depth // 2 // gb_tiles,
                    (info.out_depth // 2) * 4 // (mt_chunk * R * gb_tiles)) * gb_tiles
        if g_max == 0:     # a bank does not fit: raw on the device, requantized by the host
            int8, gb_tiles = False, 1
    if not int8:
        g_max = min(nt, w_fit, info.par_depth // 2,
                    (info.out_depth // 2) // (mt_chunk * R))
    if g_max == 0:
        raise ValueError(f"one channel tile needs {entries} weight words (half the weight "
                         f"scratchpad is {info.wgt_depth // 2}) and {mt_chunk * R} output "
                         f"words (half is {info.out_depth // 2}); use a smaller K or sparser "
                         "weights")
    spus = max(1, info.spus)
    g_tiles = max(1, min(g_max, -(-GROUP_CYCLES // (mt_chunk * entries)),
                         -(-nt // (2 * spus))))
    g_tiles = min(g_max, -(-g_tiles // gb_tiles) * gb_tiles)
    if act_double and nt < 2:
        act_double = False                    # one group per chunk: nothing to overlap with
        mt_chunk = min(mt_all, info.act_depth // nb)
        chunks = [(c0, min(mt_chunk, mt_all - c0)) for c0 in range(0, mt_all, mt_chunk)]
    prog = LayerProgram(m=m, n=n, mode=params.mode, rows=R, cols=C)
    if params.mode == "int8" and not int8:
        prog.host_requant = host_requant(params, n)
    if int8:       # the bank stride of the DRAM output: multi-SPU groups store padded banks
        stored = -(-nt // (spus * g_tiles)) * spus * g_tiles if spus > 1 else nt
        prog.out_banks = -(-stored // gb_tiles)
    bank_bytes = R * BANK                  # one int8 bank of a row tile

    def image(data: bytes) -> int:
        return prog.image(data, alloc, bb)

    def load(*args, **flags):
        prog.load(descriptor, *args, **flags)
    one = (lambda p: 1 << p) if spus > 1 else (lambda p: 0)

    wgt_tile_bytes = entries * C * 2
    par_img = layout.par_image(params.bias, params.mult, params.shift, n, C)
    # channel tiles are split across the SPUs, ``g_tiles`` each per group; the images are
    # padded with zero channels to whole groups (padded outputs are computed, never stored)
    step = spus * g_tiles
    nt_pad = -(-nt // step) * step
    par_img += bytes((nt_pad - nt) * C * 8)
    wgt_img = layout.wgt_image(packed, C) + bytes((nt_pad - nt) * wgt_tile_bytes)
    if wfmt == LoadFormat.RAW:
        wgt_at = image(wgt_img)
    wgt_parts = {}      # packed: one stream per LOAD (first tile, tiles) -> (addr, bytes)

    def wgt_part(j, tiles):
        if wfmt == LoadFormat.RAW:
            return wgt_at + j * wgt_tile_bytes, tiles * wgt_tile_bytes
        if (j, tiles) not in wgt_parts:
            data = layout.pack_wgt_words(
                wgt_img[j * wgt_tile_bytes:(j + tiles) * wgt_tile_bytes], C, wfmt, bb)
            wgt_parts[j, tiles] = (image(data), len(data))
        return wgt_parts[j, tiles]
    par_at = image(par_img)
    if params.lut is not None and int8:
        load(Target.LUT, image(layout.lut_image(params.lut)), 256, 0)
    half_w, half_o = info.wgt_depth // 2, info.out_depth // 2
    half_p = info.par_depth // 2
    act_word = R * BANK
    groups = [(j0, g_tiles) for j0 in range(0, nt, step)]
    acts = []
    for c0, mtc in chunks:
        if src is not None:             # already on the device, [row tile][nb banks]
            acts.append((src + c0 * nb * act_word, mtc * nb))
            continue
        act_img = layout.act_image(x[c0 * R:(c0 + mtc) * R], R)
        acts.append((image(act_img), len(act_img) // act_word))
    out_all = None
    if dst is not None:
        if not int8:
            raise ValueError("a layer whose output stays on the device must be int8 on the "
                             "device (its banks do not fit half the weight scratchpad)")
        out_all = dst(mt_all * prog.out_banks * bank_bytes)
    total = len(chunks) * len(groups)
    idx = 0
    # The command processor dispatches in program order into queues of QUEUE_DEPTH entries.
    # With more stores per group than the store queue holds, dispatch would stop at this
    # group's stores until its GEMM ends, before the next group's loads: so those stores are
    # emitted after the next group's loads (every token producer still precedes its consumer).
    defer = spus > QUEUE_DEPTH
    pending = []
    for ci, (c0, mtc) in enumerate(chunks):
        act_base = (ci % 2) * half_a if act_double else 0
        if ci == 0:
            load(Target.ACT, acts[0][0], acts[0][1] * act_word, 0)
        elif not act_double:
            prog.descs += pending
            pending = []
            prog.descs.append(descriptor(Opcode.SYNC))
            load(Target.ACT, acts[ci][0], acts[ci][1] * act_word, 0)
        out_bytes = mtc * prog.out_banks * bank_bytes if int8 else nt * mtc * R * C * 4
        out_at = (alloc.alloc(out_bytes) if out_all is None
                  else out_all + c0 * prog.out_banks * bank_bytes)
        prog.outputs.append((out_at, out_bytes, c0 * R, min(m - c0 * R, mtc * R)))
        # the next chunk's activations, in pieces after groups 1.. of this one: by then every
        # GEMM of the previous chunk (the other half's user) has finished (those groups' WGT
        # loads wait for it). With one group per chunk no load of this chunk waits for that
        # GEMM, so each chunk's activations are loaded with its own group instead, between its
        # WGT load (which waits for the GEMM two back, the half's last user) and its PAR load
        # (whose signal starts the GEMM, so the activations are in before it)
        pieces = {}
        own_act = act_double and len(groups) == 1 and ci >= 1
        if act_double and len(groups) > 1 and ci + 1 < len(chunks):
            words = acts[ci + 1][1]
            slots = list(range(1, len(groups))) or [0]
            per = -(-words // len(slots))
            for k, g in enumerate(slots):
                w0, w1 = k * per, min(words, (k + 1) * per)
                if w0 < w1:
                    pieces[g] = (w0, w1)
        for g, (j0, gt) in enumerate(groups):
            buf = idx % 2
            more = idx + 2 < total
            if spus == 1:
                gt = min(gt, nt - j0)
            for p in range(spus):
                jp = j0 + p * gt
                w_at, wb = wgt_part(jp, gt)
                load(Target.WGT, w_at, wb, buf * half_w, fmt=wfmt,
                     wait_next=idx >= 2 and p == 0, spu_mask=one(p))
                if own_act and p == spus - 1:
                    load(Target.ACT, acts[ci][0], acts[ci][1] * act_word, act_base)
                load(Target.PAR, par_at + jp * C * 8, _len_pad(gt * C * 8, bb), buf * half_p,
                     sig_next=p == spus - 1, spu_mask=one(p))
                prog.dram_bytes += wb + gt * C * 8
            if g in pieces:
                w0, w1 = pieces[g]
                load(Target.ACT, acts[ci + 1][0] + w0 * act_word, (w1 - w0) * act_word,
                     ((ci + 1) % 2) * half_a + w0)
            prog.descs += pending          # the previous group's stores (see ``defer``)
            pending = []
            prog.descs.append(descriptor(Opcode.GEMM, gemm={
                "act_addr": act_base, "wgt_addr": buf * half_w, "par_addr": buf * half_p,
                "out_addr": buf * half_o, "banks": nb, "m_tiles": mtc, "n_tiles": gt,
                "log2s": packed.s.bit_length() - 1, "mode": int(int8),
                "relu": int(params.relu and int8), "lut": int(params.lut is not None and int8)},
                wait_prev=1, wait_next=idx >= 2, sig_prev=more, sig_next=1))
            stores = [(p, j0 + p * gt, min(gt, nt - j0 - p * gt)) for p in range(spus)
                      if j0 + p * gt < nt]
            for k, (p, jp, real) in enumerate(stores):
                if int8:   # a DRAM row per row tile: the GEMM's banks, at the bank stride
                    rb = -(-gt // gb_tiles) * bank_bytes
                    dma = {"dram_addr": out_at + jp // gb_tiles * bank_bytes,
                           "stride": prog.out_banks * bank_bytes, "row_bytes": rb,
                           "rows": mtc}
                    ob = rb * mtc
                else:
                    ob = real * mtc * R * C * 4
                    dma = {"dram_addr": out_at + jp * mtc * R * C * 4, "stride": ob,
                           "row_bytes": ob, "rows": 1}
                (pending if defer else prog.descs).append(descriptor(Opcode.STORE, dma={
                    **dma, "target": 0, "sram_addr": buf * half_o},
                    wait_prev=k == 0, sig_prev=more and k == len(stores) - 1,
                    spu_mask=one(p)))
                prog.dram_bytes += ob
            idx += 1
    prog.descs += pending
    if complete:
        prog.descs.append(descriptor(Opcode.COMPLETE))
    return prog


def _len_pad(nbytes, unit):
    return -(-nbytes // unit) * unit
