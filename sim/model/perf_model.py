"""Cycle-level performance model: the cycles of a descriptor program, without the RTL.

:func:`predict_program` replays a :class:`~s4accel.sw.program.LayerProgram` (its 32-byte
descriptors, decoded with the hardware's own layouts) through a discrete-event model of the
device: descriptor fetch over the DMA read path, dispatch into the LOAD / GEMM / STORE queues
(two entries each, the RTL's ``SyncFIFOBuffered``), the dependency tokens, the read path shared
by descriptor fetches and LOADs (LOAD first), the independent write path, and GEMM blocks of
``m_tiles * n_tiles * banks * nnz`` cycles. Every transfer moves one bus word a cycle plus a
fixed per-job latency (an activation load held up where GEMM results meet it, see
:func:`predict_program`); all latencies are :class:`Timing` fields, calibrated cycle by cycle
against Verilator traces of the whole accelerator (``sim/bench/gemm.py``'s layers). By
default the driver's submission is modelled too (the whole program written into the ring,
then one tail write), because the RTL's measured ``cycles`` run from submission to the
completion interrupt as seen by that driver.

:func:`predict_layer` builds a layer's program itself; :func:`project` extends the model to
presets with many SPUs on one DRAM bus (more than the RTL builds), or on one DRAM bandwidth
shared by reads and writes where the preset sets ``dram_gb_s`` (``antoum``), and
:func:`project_bert_resnet` projects BERT-base, BERT-Large and ResNet-50 throughput on the
``antoum`` preset with the old mechanisms (layers back to back through DRAM, host im2col:
``s4 project --mechanisms old``); :mod:`.dataflow` projects them with activations on chip
(``s4 project``), and :func:`format_projection` / :func:`projection_json` print either.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
from amaranth.lib import data

from ...base.config import BANK, L2_BASE, load_config
from ...base import codec
from ...base.codec import TABLE_BLOCK_BYTES
from ...base.jpeg import JpegError, _unstuff
from ...hw.cmd.descriptors import (DESC_BYTES, DecodeBody, DmaBody, GemmBody, Header, LoadFormat,
                                   Opcode, Target, VopBody, VopOp)
from ...hw.jpeg.idct import UNIT_LATENCY
from ...hw.spu.wgt_unpack import packed_word_bits
from ...hw.vector.vop import vop_cycles
from ...sw.driver import RING_SLOTS
from .. import report
from ..report import Column

__all__ = ["Timing", "TIMING", "decode_program", "predict_program", "predict_layer",
           "dram_bytes_per_cycle", "project", "project_bert_resnet", "bert_base_layers",
           "resnet50_layers", "format_projection", "projection_json", "projection_assumptions",
           "PUBLISHED"]


@dataclass(frozen=True)
class Timing:
    """Fixed latencies in cycles (calibrated against Verilator traces of ``s4_top``)."""
    #: read path (DMA read engine + command processor) held beyond the job's bus beats:
    #: grant -> CHECK0..4 -> DECIDE -> RUN -> first burst cut -> AR (9), AR -> first R (2),
    #: last R -> done -> free
    read_job: int = 14
    #: a fetched LOAD, GEMM or STORE is dispatched no earlier than this many cycles after the
    #: fetch's end (the dispatch checks, ``CHECK_STAGES`` after its last word)
    dispatch_check: int = 3
    #: a LOAD taken from its queue requests the read path this many cycles later (check stage)
    load_request: int = 4
    #: a STORE taken from its queue frees its engine (and gives its token) after its beats plus
    #: this: check (3), issue, DMA checks (6), first burst cut, burst decision, AW, last W ->
    #: B -> done
    store_job: int = 19
    #: a GEMM taken from its queue finishes (engine free, tokens visible) after its MAC cycles
    #: plus this plus ``rows``: check, issue, SPU setup, operand readers, lane pipeline and
    #: requantizer; the last tile's ``rows`` output rows leave the systolic array one a cycle
    gemm: int = 31
    #: the driver's submission (``Driver.submit``: one ring-head read, the descriptors written
    #: to DRAM, one ring-tail write): from its first cycle to the new tail being seen by the
    #: fetcher
    host_tail: int = 7
    #: a program longer than the ring: from a ring-head read that found no free slot to the
    #: next (``wait_irq(64)`` + read); that path is modelled approximately (the driver writes
    #: the tail only when the ring is full or the program ends)
    host_full_wait: int = 72
    #: completion interrupt -> the driver's cycle stamp (IRQ read + acknowledge write)
    host_end: int = 9
    #: an ACT LOAD's first word is written into the activation memories this many cycles
    #: after the LOAD takes the read path (then one bus word a cycle)
    act_load_write: int = 12
    #: a GEMM with ``out_act`` writes tile ``i``'s result row ``r`` into row ``r``'s
    #: activation memory at ``start + gemm_result + banks * nnz + i * max(banks * nnz, rows)
    #: + r``; a loaded activation word that meets it at that memory waits a cycle
    #: (``ld_hold`` in ``hw/spu/spu.py``), and so does the rest of its load. (29 since the
    #: result rows go into ACT from a register, stop 52; 28 before.)
    gemm_result: int = 29
    #: a LOAD from the on-chip L2 (``hw/bus/l2.py``) holds the read path this many cycles
    #: longer than one from DRAM (the router's queue and its read engine's FIFO before the
    #: first beat), and a STORE into it holds its engine this many cycles longer or shorter
    l2_read: int = 2
    l2_write: int = -1
    #: a max pooling GEMM (``GemmBody.pool``) taken from its queue finishes after its
    #: ``tiles * banks`` window words (one a cycle, nothing waits) plus this plus ``rows``:
    #: check, issue, SPU setup, the read pipeline and the last row's maximum write
    pool: int = 11
    #: a pool writes window ``i``'s maximum of row ``r`` into row ``r``'s activation memory at
    #: ``start + pool_result + (i + 1) * banks + r``
    pool_result: int = 10
    #: a VOP taken from its queue finishes after the SPU's cycles for it
    #: (:func:`~s4accel.hw.vector.vop.vop_cycles`) plus this: check, issue, the fan-out and
    #: the completion's way back. (Its result writes into ACT, like a GEMM's with
    #: ``out_act``, would hold an ACT LOAD running beside it a cycle each; programs wait for
    #: their loads before a VOP, and the model does not count that case.)
    vop: int = 7
    #: a TO_WGT VOP holds a LOAD into WGT running beside it (``Spu``'s ``wgt_wait``): from
    #: this many cycles after the GEMM engine takes the VOP, for the copy's cycles
    #: (``to_wgt_cycles``), the load takes no word; its end moves by the overlap less
    #: ``tw_slack``, the words the DMA's read path keeps fetching meanwhile (fitted: exact on
    #: the 16 programs of ``vops_on_chip`` on tiny seed 11 and fpga seed 5, overlaps of 4 to
    #: 56 cycles)
    tw_lock: int = 3
    tw_slack: int = 9
    #: a DECODE (codec wrapper) whose table block and bitstream the model is given (the
    #: program's DRAM images, :func:`predict_program`'s ``images``) holds the LOAD stage (and,
    #: approximately, the read path) for the table block (:func:`table_block_cycles`: a used
    #: byte a cycle, unused runs dropped a bus word a cycle, ``TableLoader``),
    #: plus this, plus its scan as :func:`decode_scan_cycles` places it stage by stage: the
    #: dispatch checks, the table block's first word, the decoder's start, the bitstream's
    #: first word, the colour stage's and the post-processing's pipelines and the job's end
    #: (fitted, with ``decode_restart`` and ``decode_post``, for the least worst error on the
    #: RTL's cycles of random images, ``sim/tb/decode_probe.py``: every sampling, 5..55
    #: pixels a side, quality 15..97, crops, restart intervals; checked again after the
    #: decoder was pipelined for the FPGA clock: equal to the RTL's cycles on all 200 images
    #: of seed 3 and all 60 of seed 1, within -3 .. 0 cycles on seed 2's 200)
    decode: int = 42
    #: a restart marker holds the entropy decoder this many cycles (``RESTART``: the marker
    #: item), and it starts the next interval with an empty bit buffer
    decode_restart: int = 1
    #: the crop's last pixel leaves the colour stage this many cycles before its lane is
    #: written (``hw/jpeg/post.py``: the window sums, the 8-stage divider, normalisation, the
    #: output queue), when the crop ends before the frame does that is the DECODE's end
    decode_post: int = 17
    #: Motion JPEG's overlap (``hw/jpeg/job.py``): of ``decode``, the cycles from the read
    #: path's grant to the decoder's start (table block apart); a DECODE releases the LOAD
    #: stage ``decode_release`` cycles after the entropy decoder's last symbol (its scan's
    #: end read, the bitstream's transfer done) when its last lanes are still to come, and
    #: ends (tokens) when they are out; the next DECODE's table block loads meanwhile, and
    #: its decoder starts ``decode_gap`` cycles after that end at the earliest (fitted on
    #: pairs of random images back to back, ``sim/tb/decode_probe.py``'s ``pairs``: equal to
    #: the RTL's cycles on 71 of seed 1's 80 pairs and 55 of seed 2's 60, 13 to 20 cycles
    #: over it on the others, most with a grey first frame, whose entropy decoder ends
    #: earlier than :func:`decode_scan_times` places it; at most 0.65 %. After the colour
    #: stage's and post-processing's pipelining, seed 3's 80 pairs: 71 equal, the others
    #: -6 to +35 cycles, at most 0.91 %)
    decode_go: int = 10
    decode_release: int = 26
    decode_gap: int = 15
    #: a DECODE whose table block or bitstream the model does not have (a bare list of
    #: descriptors), or cannot read, is a first-order fit instead: a colour frame's table
    #: block with the Annex K.3 tables (``_typical_table_cycles``) plus
    #: ``decode_fit + decode_bit * bits_len * 8 + decode_pixel * (crop_x + crop_w) * (crop_y +
    #: crop_h)`` (the frame's size, sampling and MCU padding are in the table block; least
    #: squares on the ``decode_timing`` images on ``tiny``, seed 1, when the table block took
    #: 2,112 cycles for every frame: within 2 % of those full frames, 3 % of other seeds',
    #: far off for crops; since the loader drops unused words, a grey frame's block or one
    #: with optimized tables takes 300 to 700 cycles less than the colour block assumed here)
    decode_fit: int = 102
    decode_bit: float = 0.083
    decode_pixel: float = 1.019
    #: slots of the driver's descriptor ring (``s4accel.sw.driver.RING_SLOTS``): every bench
    #: program fits, so the device never waits for the host after the hand-over
    ring_slots: int = RING_SLOTS


TIMING = Timing()

# -- descriptor decoding -----------------------------------------------------------------------


def _fields(layout, base=0):
    return {name: (base + f.offset, (1 << f.width) - 1) for name, f in data.Layout.cast(layout)}


_BODY = data.Layout.cast(Header).size
_HDR = _fields(Header)
_DMA = _fields(DmaBody, _BODY)
_GEMM = _fields(GemmBody, _BODY)
_VOP = _fields(VopBody, _BODY)
_DEC = _fields(DecodeBody, _BODY)

# op kinds of the decoded form
_LOAD, _GEMMOP, _STORE, _SYNC, _COMPLETE, _NOP, _VOPOP, _DECODEOP = range(8)
_OPS = {Opcode.LOAD.value: _LOAD, Opcode.GEMM.value: _GEMMOP, Opcode.STORE.value: _STORE,
        Opcode.SYNC.value: _SYNC, Opcode.COMPLETE.value: _COMPLETE, Opcode.NOP.value: _NOP,
        Opcode.VOP.value: _VOPOP, Opcode.DECODE.value: _DECODEOP}


def _get(v, f):
    off, mask = f
    return (v >> off) & mask


def decode_program(descs) -> list:
    """Descriptors (32-byte strings) -> tuples ``(kind, wait_prev, wait_next, sig_prev,
    sig_next, a, b, c)`` with, for a LOAD ``a`` = bytes, ``b`` = target, ``c`` = fmt
    (:class:`~s4accel.hw.cmd.descriptors.LoadFormat`); for a STORE ``a`` =
    bytes; for a GEMM ``a`` = tiles (m_tiles * n_tiles), ``b`` = banks * nnz, ``c`` = m_tiles;
    for a VOP ``a`` = op, ``b`` = n, ``c`` = (m_tiles, wide, relu, chan).
    Field positions come from the hardware's layouts (:mod:`s4accel.hw.cmd.descriptors`)."""
    out = []
    for d in descs:
        v = int.from_bytes(bytes(d), "little")
        op = _get(v, _HDR["opcode"])
        if op not in _OPS:
            raise ValueError(f"descriptor {len(out)}: unknown opcode {op}")
        kind = _OPS[op]
        flags = tuple(_get(v, _HDR[k]) for k in ("wait_prev", "wait_next", "sig_prev",
                                                   "sig_next"))
        a = b = c = 0
        if kind in (_LOAD, _STORE):
            a = _get(v, _DMA["rows"]) * _get(v, _DMA["row_bytes"])
            b = _get(v, _DMA["target"])
            c = _get(v, _DMA["fmt"])
        elif kind == _GEMMOP:
            mt, nt = _get(v, _GEMM["m_tiles"]), _get(v, _GEMM["n_tiles"])
            nnz = BANK >> _get(v, _GEMM["log2s"])
            a, b, c = mt * nt, _get(v, _GEMM["banks"]) * nnz, mt
        elif kind == _VOPOP:
            a, b = _get(v, _VOP["op"]), _get(v, _VOP["n"])
            c = (_get(v, _VOP["m_tiles"]), _get(v, _VOP["wide"]), _get(v, _VOP["relu"]),
                 _get(v, _VOP["chan"]))
        elif kind == _DECODEOP:
            a = _get(v, _DEC["bits_len"])
            b = _get(v, _DEC["out_h"]) * _get(v, _DEC["out_w"])
            # (the frame's size is in the table block: the crop's far corner bounds it)
            c = ((_get(v, _DEC["crop_x"]) + _get(v, _DEC["crop_w"]))
                 * (_get(v, _DEC["crop_y"]) + _get(v, _DEC["crop_h"])))
        out.append((kind, *flags, a, b, c))
    return out


# -- DECODE ------------------------------------------------------------------------------------

#: luma blocks (h, v) of an MCU per sampling code of the table block (``codec.SAMPLING``)
_LUMA_HV = ((1, 1), (1, 1), (2, 1), (2, 2))
#: the bit buffer of the entropy decoder (``hw/jpeg/entropy.py``'s ``_BUF``): a byte joins the
#: bits left whenever 8 fit
_BIT_BUF = 64


@functools.lru_cache(maxsize=32)
def _scan_symbols(block_raw: bytes, bits: bytes) -> tuple:
    """``(sampling code, width, height, restart interval, blocks)`` of a DECODE's table block
    and bitstream: ``blocks`` has, per 8x8 block in scan order, ``(code bits, code and extra
    bits)`` of each of its Huffman symbols, what ``hw/jpeg/entropy.py`` decodes. Raises
    :class:`~s4accel.base.codec.BlockError` or :class:`~s4accel.base.jpeg.JpegError` where the
    decoder would end with ``DECODE_ERROR``."""
    block = codec.parse_block(block_raw)
    t = block.tables
    sampling = codec.SAMPLING.index(t.sampling)
    h, v = _LUMA_HV[sampling]
    slots = [0] * (h * v) + ([1, 2] if block.channels == 3 else [])
    mcus = -(-t.width // (8 * h)) * -(-t.height // (8 * v))
    luts = [(t.dc_huffman[c].lookup(), t.ac_huffman[c].lookup()) for c in range(block.channels)]
    ri = t.restart_interval
    out = []
    mcu = 0
    for seg in codec.scan_segments(bits):
        if mcu >= mcus:
            break
        data = _unstuff(seg) + bytes(4)
        nbits = 8 * (len(data) - 4)
        pos = 0
        end = mcus if not ri else min(mcus, mcu + ri)
        while mcu < end:
            for c in slots:
                (dcl, dcs), (acl, acs) = luts[c]
                p = pos >> 3
                peek = (int.from_bytes(data[p:p + 3], "big") >> (8 - (pos & 7))) & 0xFFFF
                if not dcl[peek]:
                    raise JpegError("bad Huffman code in DC coefficient")
                syms = [(dcl[peek], dcl[peek] + dcs[peek])]
                pos += syms[0][1]
                k = 1
                while k < 64:
                    p = pos >> 3
                    peek = (int.from_bytes(data[p:p + 3], "big") >> (8 - (pos & 7))) & 0xFFFF
                    if not acl[peek]:
                        raise JpegError("bad Huffman code in AC coefficient")
                    rs = acs[peek]
                    syms.append((acl[peek], acl[peek] + (rs & 15)))
                    pos += syms[-1][1]
                    if rs & 15 == 0 and rs != 0xF0:
                        break               # EOB
                    k += (rs >> 4) + 1
                if pos > nbits:
                    raise JpegError("truncated entropy-coded data")
                out.append(syms)
            mcu += 1
    if mcu < mcus:
        raise JpegError("truncated entropy-coded data")
    return sampling, t.width, t.height, ri, tuple(out)


def decode_scan_cycles(block_raw: bytes, bits: bytes, crop, timing: Timing = TIMING) -> int:
    """The cycles of a DECODE's scan, from the decoder's start to its last lane (its
    ``timing.decode`` and table block apart): :func:`decode_scan_times`' second value."""
    return decode_scan_times(block_raw, bits, crop, timing)[1]


def decode_scan_times(block_raw: bytes, bits: bytes, crop,
                      timing: Timing = TIMING) -> tuple[int, int]:
    """``(entropy end, scan cycles)``: the cycle after the entropy decoder's last symbol and
    the cycles of a DECODE's scan, from the decoder's start to its last lane (its
    ``timing.decode`` and table block apart), placed stage by stage as the RTL runs it:

    - the entropy decoder (``hw/jpeg/entropy.py``) tries a symbol every three cycles (MATCH,
      SYMBOL, SHIFT): it is decoded when its code was inside the 64-bit buffer's bits at MATCH
      and its extra bits too at SYMBOL; a bitstream byte joins the buffer in MATCH and SYMBOL
      where 8 bits fit (so a run of long symbols waits for bytes); the item goes into a
      register, then a second (EXTEND), then the output register, whence the IDCT takes it
      (once the block's buffer is free), so SHIFT waits for the item three before to have
      been taken in an earlier cycle; a restart interval ends
      with ``timing.decode_restart`` cycles and an empty buffer;
    - the IDCT (``hw/jpeg/idct.py``) has two block buffers: a block's buffer is full four
      cycles after it takes the block's last item, its column pass (8 cycles) starts then and
      once the last block's row pass has ended, and frees the buffer; its row pass starts ``UNIT_LATENCY``
      cycles after the column pass (the last column's result), issues a row a cycle while
      fewer than 8 rows are waiting to be taken, and a row can be taken ``UNIT_LATENCY + 2``
      cycles after its issue (the 1-D unit's pipeline, the output queue);
    - the colour stage (``hw/jpeg/color.py``) takes an MCU row's rows once the output has read
      the lines they overwrite (a ring of two MCU rows plus two lines), and writes one pixel a
      cycle, row ``y`` from two cycles after the MCU row holding line ``y`` (4:2:0: ``y +
      1``) is in (its readers see the lines a cycle after they are written, and a word read
      spends a cycle more in a register, the block RAM's data);
    - the post-processing (``hw/jpeg/post.py``) writes the crop's last lane
      ``timing.decode_post`` cycles after the crop's last pixel.

    ``crop`` is ``(x, y, w, h)``. Raises :class:`~s4accel.base.codec.BlockError` or
    :class:`~s4accel.base.jpeg.JpegError` for a DECODE that ends with ``DECODE_ERROR``."""
    sampling, width, height, restart, blocks = _scan_symbols(bytes(block_raw), bytes(bits))
    h, v = _LUMA_HV[sampling]
    mcus_x, mcus_y = -(-width // (8 * h)), -(-height // (8 * v))
    per_mcu = h * v + (2 if sampling else 0)
    lines = 8 * v                           # luma lines of an MCU row
    ring = 2 * lines + 2                    # ``_NY_V1`` / ``_NY_V2``
    below = 1 if sampling == 3 else 0       # 4:2:0 reads the chroma line below
    row_in = []                             # each MCU row's last IDCT row written
    reader_reg = 2                          # the readers' row wait and registers
    row_end = []                            # each output row's last pixel
    out_t = 0

    def output_until(y):                    # output rows up to y (their MCU rows are in)
        nonlocal out_t
        while len(row_end) <= y:
            k = min((len(row_end) + below) // lines, mcus_y - 1)
            out_t = max(out_t, row_in[k] + reader_reg) + width
            row_end.append(out_t)
        return row_end[y]

    t = 0                                   # the entropy decoder's next cycle
    nbits = 0                               # bits in its buffer
    free = [0, 0]                           # the IDCT's block buffers
    rows_out = 0                            # the IDCT's last row out (taken)
    takes = [0] * 8                         # when each of its last 8 rows was taken
    issue_end = 0                           # the 1-D unit is free for the next column pass
    item_takes = [0, 0, 0]                  # when the IDCT took the last three items
    b = 0
    for k in range(mcus_y):
        # the MCU row overwrites the lines of output rows below (k + 1) * lines - ring
        need = (k + 1) * lines - ring - 1
        gate = output_until(need) if need >= 0 else 0
        for x in range(mcus_x):
            if restart and b and (b // per_mcu) % restart == 0:
                t += timing.decode_restart
                nbits = 0
            for _ in range(per_mcu):
                f = free[b % 2]                 # the IDCT takes this block's items from then
                for code_bits, need_bits in blocks[b]:
                    while True:         # MATCH, SYMBOL (a byte may join in each), SHIFT
                        at_match = nbits
                        if nbits <= _BIT_BUF - 8:
                            nbits += 8
                        at_symbol = nbits
                        if nbits <= _BIT_BUF - 8:
                            nbits += 8
                        t += 3
                        if code_bits <= at_match and need_bits <= at_symbol:
                            break
                    nbits -= need_bits
                    # SHIFT emits the item into a register, whence it moves through a
                    # second (EXTEND) to the output register: it waits for the item three
                    # before to have been taken (in an earlier cycle)
                    shift = max(t - 1, item_takes[0] + 1)
                    t = shift + 1
                    item_takes = [item_takes[1], item_takes[2],
                                  max(shift + 3, f, item_takes[2] + 1)]
                # column pass, the wait for its last result, the row pass (a row a cycle
                # while the output queue has room: 8 rows not yet taken)
                col = max(item_takes[2] + 4, issue_end)
                free[b % 2] = col + 8
                issue = col + 7 + UNIT_LATENCY
                for r in range(8):
                    issue = max(issue + 1, takes[r] + 1)
                    rows_out = max(issue + UNIT_LATENCY + 2, gate + 1, rows_out + 1)
                    takes[r] = rows_out
                issue_end = issue + 1
                b += 1
        row_in.append(rows_out)
    end = output_until(height - 1)
    cx, cy, cw, ch = crop
    return t, max(end, output_until(cy + ch - 1) - width + cx + cw + timing.decode_post)


def table_block_cycles(block_raw: bytes, word_bytes: int) -> int:
    """The cycles ``hw/jpeg/tables.py``'s ``TableLoader`` takes for table block `block_raw`
    arriving as `word_bytes`-byte bus words (one a cycle or faster): a used byte a cycle, and
    one cycle to drop the rest of a word from an unused byte on when the unused run goes to
    the word's end at least (reserved bytes, symbol slots past a Huffman table's count, the
    components a grey frame does not have). A valid block only (a refused one is not
    modelled)."""
    n = TABLE_BLOCK_BYTES
    if word_bytes <= 1:
        return n
    sampling = block_raw[5]
    ncomp = 1 if sampling == 0 else 3
    comps_end = codec.COMP0 + codec.COMP_BYTES * ncomp

    def run_end(pos):
        if 40 <= pos < codec.COMP0:
            return codec.COMP0
        if pos >= comps_end:
            return n
        if pos >= codec.COMP0:
            c, rel = divmod(pos - codec.COMP0, codec.COMP_BYTES)
            for tbase in (128, 400):
                if tbase + 16 <= rel < tbase + 272:
                    at = codec.COMP0 + codec.COMP_BYTES * c + tbase
                    if rel - tbase - 16 >= sum(block_raw[at:at + 16]):
                        return at + 272
        return 0

    cycles = 0
    for word in range(0, n, word_bytes):
        end = word + word_bytes
        for pos in range(word, end):
            cycles += 1
            if run_end(pos) >= end:
                break
    return cycles


@functools.lru_cache(maxsize=8)
def _typical_table_cycles(word_bytes: int) -> int:
    """The table block of a colour frame with T.81 Annex K.3's tables (no DHT: the commonest
    Huffman tables), for a DECODE whose block the model does not have."""
    from ...base.jpeg import STANDARD_AC, STANDARD_DC
    raw = bytearray(TABLE_BLOCK_BYTES)
    raw[5] = 3
    for c in range(3):
        at = codec.COMP0 + codec.COMP_BYTES * c
        for k, t in enumerate((STANDARD_DC[min(c, 1)], STANDARD_AC[min(c, 1)])):
            raw[at + 128 + 272 * k:at + 144 + 272 * k] = bytes(t.counts)
    return table_block_cycles(bytes(raw), word_bytes)


def _decode_scan(desc, images, timing, word_bytes):
    """``(table block cycles, entropy end, scan cycles)`` (:func:`table_block_cycles`,
    :func:`decode_scan_times`) of DECODE descriptor ``desc`` with its table block and
    bitstream from ``images`` (``(address, bytes)`` pairs), its block arriving in
    ``word_bytes``-byte bus words; None where they are not there or do not decode."""
    v = int.from_bytes(bytes(desc), "little")

    def read(addr, n):
        for at, img in images:
            if at <= addr and addr + n <= at + len(img):
                return bytes(img[addr - at:addr - at + n])
        return None

    block = read(_get(v, _DEC["table_addr"]), TABLE_BLOCK_BYTES)
    bits = read(_get(v, _DEC["bits_addr"]), _get(v, _DEC["bits_len"]))
    if block is None or bits is None:
        return None
    crop = tuple(_get(v, _DEC[f"crop_{k}"]) for k in "xywh")
    try:
        front, scan = decode_scan_times(block, bits, crop, timing)
    except ValueError:      # BlockError, JpegError: DECODE_ERROR, after a time not modelled
        return None
    return table_block_cycles(block, word_bytes), front, scan


def _decode_times(t, dur, parts, tail, timing, word_bytes):
    """A DECODE granted the read path at ``t`` (its duration alone ``dur``; ``parts`` from
    :func:`_decode_scan` or None) behind a released DECODE whose lanes end at ``tail``:
    ``(read path free, LOAD stage free, end (tokens), the new tail)``. Its decoder starts
    once its table block is in and ``decode_gap`` cycles after ``tail``; it releases the stage
    after its entropy decoder's end when lanes are still to come (``hw/jpeg/job.py``)."""
    if parts is None:       # (no data: its start waits for the tail by a typical block)
        end = max(t + dur, tail + timing.decode_gap + dur - timing.decode_go
                  - _typical_table_cycles(word_bytes))
        return end, end, end, tail
    table, front, scan = parts
    go = max(t + timing.decode_go + table, tail + timing.decode_gap)
    end = go + timing.decode - timing.decode_go + scan
    rel = go + timing.decode_release + front
    if rel < end:
        return rel, rel, end, end
    return end, end, end, tail


# -- the event model ---------------------------------------------------------------------------

_INF = 1 << 62


class _Queue:
    """The RTL's two-entry ``SyncFIFOBuffered``: an inner slot and an output register."""
    __slots__ = ("inner", "inner_at", "inner_free", "out", "out_at")

    def __init__(self):
        self.inner = self.out = None
        self.inner_at = self.inner_free = self.out_at = 0


def predict_program(config, prog, *, host=True, timing: Timing = TIMING, bandwidth=None,
                    shared_dram=False, images=None):
    """Predict the cycles of ``prog`` (a LayerProgram or a list of descriptors) on ``config``.

    ``host``: model the cocotb driver's submission and completion handshake (what the RTL
    benchmark measures); otherwise every descriptor is in the ring at cycle 0 and ``cycles``
    ends at the completion interrupt. ``bandwidth``: bytes per cycle for each kind of traffic
    (keys ``act``, ``wgt`` (weights, parameters, LUT), ``out`` (stores) and ``desc``; default
    the bus width for all), used by :func:`project` for SPUs that share one DRAM bus.
    ``shared_dram``: reads and writes share one DRAM (a configuration's ``dram_gb_s``): every
    transfer's bus beats (descriptor fetches, LOADs and STOREs) hold that one resource, so a
    STORE's beats and a LOAD's or fetch's never overlap; the read and write engines keep their
    own fixed latencies. Otherwise (the RTL's AXI port) the read and write paths are
    independent.

    A GEMM that writes its int8 results into the activation scratchpad (``out_act``, the
    chains of :mod:`s4accel.sw.chain`) and an ACT LOAD share the activation memories' write
    ports: where a loaded word meets a result row at one row's memory, the word waits a cycle
    and the rest of the load with it (``ld_hold`` in ``hw/spu/spu.py``); the model places
    every result row and every loaded word on its cycle (:attr:`Timing.gemm_result`,
    :attr:`Timing.act_load_write`) and counts those cycles (``act_load_stalls``), where the
    activation words arrive one a cycle (not with ``bandwidth`` or ``shared_dram``).

    A DECODE's time depends on its data (the frame's size and sampling in the table block,
    the bitstream's symbols): ``images``, the ``(address, bytes)`` pairs of DRAM the program
    reads (default: a LayerProgram's own ``images``), give the model its table block and
    bitstream (:func:`decode_scan_cycles`); without them, or where they do not decode, it
    takes :attr:`Timing.decode_fit`'s first-order fit.

    Returns a dict: ``cycles``, ``mac_cycles``, ``dma_read_bytes``, ``dma_write_bytes`` (DRAM
    and L2), ``l2_bytes`` (the transfers to or from the on-chip L2), ``descriptors``, ``act_load_stalls``, per-resource busy cycles (``busy``; ``vector``: the part of
    ``compute`` that VOPs take) and ``bound``,
    the resource with the most busy cycles: ``compute``, ``dma_read``, ``dma_write``,
    ``descriptors`` or, with ``shared_dram``, ``dram`` (the beats of all transfers together).
    """
    config = load_config(config) if isinstance(config, str) else config
    descs = getattr(prog, "descs", prog)
    if images is None:
        images = getattr(prog, "images", ())
    ops = decode_program(descs)
    bb = config.dram_bus_bits // 8
    bw = {"act": bb, "wgt": bb, "out": bb, "desc": bb}
    bw.update(bandwidth or {})
    R = config.rows
    T = timing
    n = len(ops)
    if n == 0:
        raise ValueError("the program has no descriptors")

    def beats(nbytes, kind):
        return max(1, math.ceil(nbytes / bw[kind]))

    # GEMMs writing int8 results into ACT (``out_act``) and ACT LOADs: the ``ld_hold``
    # arbitration (see :func:`_act_load_stalls`)
    out_act = [k == _GEMMOP and _get(int.from_bytes(bytes(d), "little"), _GEMM["out_act"])
               and _get(int.from_bytes(bytes(d), "little"), _GEMM["mode"])
               for d, (k, *_) in zip(descs, ops)]
    # transfers to or from the on-chip L2: their own latency, and (``shared_dram``) none of
    # the DRAM's bandwidth
    l2_lo, l2_hi = L2_BASE, L2_BASE + config.l2_kib * 1024
    in_l2 = [k in (_LOAD, _STORE) and config.l2_kib > 0
             and l2_lo <= _get(int.from_bytes(bytes(d), "little"), _DMA["dram_addr"]) < l2_hi
             for d, (k, *_) in zip(descs, ops)]
    # max pooling GEMMs (``pool``): ``banks`` words a window, no MACs
    pool = [_get(int.from_bytes(bytes(d), "little"), _GEMM["banks"])
            if k == _GEMMOP and _get(int.from_bytes(bytes(d), "little"), _GEMM["pool"]) else 0
            for d, (k, *_) in zip(descs, ops)]
    act_rows = _act_word_rows(config)
    # (modelled where activation words arrive one a cycle, as on the RTL's own bus)
    hold = bw["act"] == bb and not shared_dram
    desc_beats = beats(DESC_BYTES, "desc")
    fetch_time = T.read_job + desc_beats
    gemm_lat = T.gemm + R
    # per-descriptor durations, precomputed
    dur = [0] * n
    dec_parts = {}      # DECODE with its data: (table block, entropy end, scan) cycles
    dbeats = [0] * n              # beats on the DRAM (``shared_dram``)
    mac = rd_bytes = wr_bytes = 0
    by_class = {"act": 0, "wgt": 0, "out": 0, "desc": n * DESC_BYTES}
    busy = {"compute": 0, "dma_read": 0, "dma_write": 0, "descriptors": n * fetch_time,
            "vector": 0}
    # packed weight loads: the unpacker (hw/spu/wgt_unpack.py) writes one WGT word a cycle;
    # where the bus is wider than a WGT word (antoum, projections only: no RTL) the load path
    # is assumed to write as many words a cycle as a raw load does
    wbits = {f.value: packed_word_bits(f, config.cols)
             for f in (LoadFormat.PACKED, LoadFormat.VALUES)}
    wpc = max(1, config.dram_bus_bits // (16 * config.cols))
    l2_bytes = 0
    for i, (kind, _, _, _, _, a, b, c) in enumerate(ops):
        if kind == _LOAD:
            cls = "act" if b == Target.ACT.value else "wgt"
            nb = max(1, -(-a // bb)) if in_l2[i] else beats(a, cls)   # (the L2: its own port)
            if b == Target.LUT.value:     # the LUT takes one byte a cycle
                d = T.read_job + max(a, nb)
            elif c in wbits:              # a packed weight stream: one scratchpad word a cycle
                d = T.read_job + max(-(-(a * 8 // wbits[c]) // wpc), nb)
            else:
                d = T.read_job + nb
            if in_l2[i]:
                d += T.l2_read
                l2_bytes += a
            else:
                dbeats[i] = nb
            rd_bytes += a
            by_class[cls] += a
            busy["dma_read"] += d
        elif kind == _STORE:
            nb = max(1, -(-a // bb)) if in_l2[i] else beats(a, "out")
            d = T.store_job + nb
            if in_l2[i]:
                d += T.l2_write
                l2_bytes += a
            else:
                dbeats[i] = nb
            wr_bytes += a
            by_class["out"] += a
            busy["dma_write"] += d
        elif kind == _VOPOP:
            mt, wide, relu, chan = c
            d = T.vop + vop_cycles(R, a, b, mt, wide, relu, cols=config.cols, chan=chan,
                                   units=config.vec_units)
            busy["compute"] += d
            busy["vector"] += d
        elif kind == _DECODEOP:
            span = -(-a // bb) * bb
            known = _decode_scan(descs[i], images, T, bb)
            if known is None:
                d = (T.decode_fit + _typical_table_cycles(bb)
                     + int(T.decode_bit * a * 8 + T.decode_pixel * c))
            else:
                d = T.decode + known[0] + known[2]
                dec_parts[i] = known
            rd_bytes += TABLE_BLOCK_BYTES + span
            by_class["act"] += TABLE_BLOCK_BYTES + span
            busy["dma_read"] += d
        elif kind == _GEMMOP and pool[i]:
            d = T.pool + R + a * pool[i]
            busy["compute"] += d
        elif kind == _GEMMOP:
            mac += a * b
            # tile ends are at least ``rows`` cycles apart (one output row a cycle)
            d = gemm_lat + b + (a - 1) * max(b, R)
            busy["compute"] += d
        else:
            d = 0
        dur[i] = d
    rd_bytes += n * DESC_BYTES
    if shared_dram:
        busy["dram"] = sum(dbeats) + n * desc_beats
    # the shared DRAM is free from then on (always 0 without ``shared_dram``)
    dram_free = 0

    # tokens: visibility times (each has one producer finishing in order) and uses
    tok_t = {k: [] for k in ("ld2ex", "ex2ld", "ex2st", "st2ex")}
    tok_p = dict.fromkeys(tok_t, 0)
    tok_used = dict.fromkeys(tok_t, 0)

    def tok(name, t):
        lst, p = tok_t[name], tok_p[name]
        while p < len(lst) and lst[p] <= t:
            p += 1
        tok_p[name] = p
        return p - tok_used[name]

    # ``ld_hold``: GEMMs writing into ACT, ``(first result write, tile spacing, tiles)``, and
    # the last ACT LOAD, ``(start, end without stalls, words, its ld2ex token, descriptor)``
    act_gemms = []
    act_ld = None

    def stall_load(now):
        nonlocal rd_free, ld_until, stalls
        start, end, words, tok_at, _ = act_ld
        act_gemms[:] = [g for g in act_gemms if g[0] + g[1] * g[2] + R > now]
        n_st = _act_load_stalls(start + T.act_load_write, words, act_rows, act_gemms, R)
        stalls += n_st - act_ld_stalls[0]
        act_ld_stalls[0] = n_st
        rd_free = ld_until = end + n_st
        if tok_at is not None:
            tok_t["ld2ex"][tok_at] = ld_until

    stalls = 0
    act_ld_stalls = [0]
    # TO_WGT copies, ``(start, end)`` of each one's hold on WGT LOADs, and the running LOAD
    # into WGT, ``(start, end without holds, its ld2ex token, descriptor)``
    tw_locks = []
    wgt_ld = None

    def stall_wgt_load():
        nonlocal rd_free, ld_until
        s0, e, tok_at, _ = wgt_ld
        for a, b in sorted(tw_locks):
            if a < e and b > s0:
                e += max(0, b - max(a, s0) - T.tw_slack)
        rd_free = ld_until = max(e, ld_until)
        if tok_at is not None:
            tok_t["ld2ex"][tok_at] = ld_until

    qld, qex, qst = _Queue(), _Queue(), _Queue()
    queues = (qld, qex, qst)
    qof = {_LOAD: qld, _DECODEOP: qld, _GEMMOP: qex, _VOPOP: qex, _STORE: qst}

    # host / ring
    if host:
        tail, tail_next, tail_at = 0, 0, _INF
        written, host_at = 0, 1
    else:
        tail, tail_next, tail_at = n, n, _INF
        written, host_at = n, _INF
    head = 0                      # descriptors fetched (the ring head, unwrapped)
    nxt = 0                       # next descriptor to fetch
    valid_at = _INF               # the fetched descriptor is in the dispatch register from then
    cur = -1
    rd_free = 0
    ld_cur, ld_req, ld_until = -1, _INF, 0
    dec_tail = 0        # a released DECODE writes its last lanes until then
    ex_free = st_free = 0
    done_at = None
    t = 0
    steps = 0
    while done_at is None:
        steps += 1
        acted = False
        # registers that change at t
        if valid_at == t:
            head += 1
        if tail_at <= t:
            tail, tail_at = tail_next, _INF
        # the driver: one ring-head read, every descriptor that fits, one ring-tail write
        if host_at == t:
            room = T.ring_slots - 1 - (written - head)
            if written < n and room > 0:
                written += min(room, n - written)
                tail_next, tail_at = written, t + T.host_tail
                host_at = _INF if written == n else t + T.host_full_wait
            else:                   # ring full: poll the head
                host_at = t + T.host_full_wait
        # LOAD engine takes its queue head
        if ld_until <= t and qld.out is not None and qld.out_at <= t:
            i = qld.out
            op = ops[i]
            # (behind a released DECODE only a DECODE takes the stage)
            if (not op[2] or tok("ex2ld", t) > 0) and (op[0] == _DECODEOP or dec_tail <= t):
                if op[2]:
                    tok_used["ex2ld"] += 1
                qld.out = None
                ld_cur, ld_req, ld_until = i, t + T.load_request, _INF
                acted = True
        # GEMM engine
        if ex_free <= t and qex.out is not None and qex.out_at <= t:
            i = qex.out
            op = ops[i]
            if (not op[1] or tok("ld2ex", t) > 0) and (not op[2] or tok("st2ex", t) > 0):
                if op[1]:
                    tok_used["ld2ex"] += 1
                if op[2]:
                    tok_used["st2ex"] += 1
                qex.out = None
                ex_free = t + dur[i]
                if op[0] == _VOPOP and op[5] == VopOp.TO_WGT.value:
                    tw_locks.append((t + T.tw_lock, ex_free - T.vop + T.tw_lock))
                    if wgt_ld is not None and wgt_ld[3] == ld_cur and ld_req == _INF \
                            and ld_until > t:
                        stall_wgt_load()
                if out_act[i]:
                    _, _, _, _, _, a_t, b_e, _ = op
                    if pool[i]:
                        b_e = pool[i]
                        act_gemms.append((t + T.pool_result + b_e, b_e, a_t))
                    else:
                        act_gemms.append((t + T.gemm_result + b_e, max(b_e, R), a_t))
                    if act_ld is not None and act_ld[4] == ld_cur and ld_req == _INF \
                            and ld_until > t:
                        stall_load(t)
                if op[3]:
                    tok_t["ex2ld"].append(ex_free)
                if op[4]:
                    tok_t["ex2st"].append(ex_free)
                acted = True
        # STORE engine
        if st_free <= t and dram_free <= t and qst.out is not None and qst.out_at <= t:
            i = qst.out
            op = ops[i]
            if not op[1] or tok("ex2st", t) > 0:
                if op[1]:
                    tok_used["ex2st"] += 1
                qst.out = None
                st_free = t + dur[i]
                if shared_dram:
                    dram_free = t + dbeats[i]
                if op[3]:
                    tok_t["st2ex"].append(st_free)
                acted = True
        # the read path: a waiting LOAD first, else a descriptor fetch
        if rd_free <= t and dram_free <= t:
            if ld_req <= t:
                rd_free = ld_until = end = t + dur[ld_cur]
                if ops[ld_cur][0] == _DECODEOP:
                    rd_free, ld_until, end, dec_tail = _decode_times(
                        t, dur[ld_cur], dec_parts.get(ld_cur), dec_tail, T, bb)
                if shared_dram:
                    dram_free = t + dbeats[ld_cur]
                tok_at = None
                if ops[ld_cur][4]:
                    tok_at = len(tok_t["ld2ex"])
                    tok_t["ld2ex"].append(end)
                act_ld = wgt_ld = None
                if ops[ld_cur][0] == _LOAD and ops[ld_cur][6] == Target.WGT.value:
                    wgt_ld = (t, ld_until, tok_at, ld_cur)
                    if tw_locks:
                        stall_wgt_load()
                if hold and ops[ld_cur][0] == _LOAD and ops[ld_cur][6] == Target.ACT.value:
                    act_ld = (t, ld_until, beats(ops[ld_cur][5], "act"), tok_at, ld_cur)
                    act_ld_stalls[0] = 0
                    if act_gemms:
                        stall_load(t)
                ld_req = _INF
                acted = True
            elif valid_at == _INF and nxt < tail and nxt < n:
                valid_at = rd_free = t + fetch_time
                if shared_dram:
                    dram_free = t + desc_beats
                cur, nxt = nxt, nxt + 1
                acted = True
        # dispatch
        if valid_at <= t:
            kind = ops[cur][0]
            ok = False
            if kind in qof and valid_at + T.dispatch_check > t:
                pass                        # still being checked
            elif kind in qof:
                q = qof[kind]
                if q.inner is None and q.inner_free <= t:
                    q.inner, q.inner_at = cur, t + 1
                    ok = True
            elif kind == _NOP:
                ok = True
            else:       # SYNC, COMPLETE: every stage idle
                ok = (ld_until <= t and dec_tail <= t and ex_free <= t and st_free <= t
                      and all(q.out is None or q.out_at > t for q in queues))
                if ok and kind == _COMPLETE:
                    done_at = t + 1         # the interrupt line
            if ok:
                valid_at = _INF
                acted = True
        # queues: the inner slot moves to the output register
        for q in queues:
            if q.inner is not None and q.inner_at <= t and q.out is None:
                q.out, q.out_at = q.inner, t + 1
                q.inner, q.inner_free = None, t + 1
                acted = True
        if done_at is not None:
            break
        # next cycle at which something can change
        cand = [host_at, tail_at, valid_at, valid_at + T.dispatch_check, rd_free, ld_req,
                ld_until, ex_free, st_free, dram_free, dec_tail]
        for q in queues:
            cand += (q.inner_at, q.inner_free, q.out_at)
        nt = min((c for c in cand if c > t), default=_INF)
        if acted:
            nt = min(nt, t + 1)
        if nt >= _INF:
            raise RuntimeError(f"the program stalls at cycle {t} (descriptor {cur}, {head} "
                               "fetched): its tokens never arrive")
        t = nt
    cycles = done_at + (T.host_end if host else 0)
    busy["dma_read"] += stalls
    read_path = busy["dma_read"] + busy["descriptors"]
    if busy["compute"] >= max(read_path, busy["dma_write"]):
        bound = "compute"
    elif read_path >= busy["dma_write"]:
        bound = "dma_read" if busy["dma_read"] >= busy["descriptors"] else "descriptors"
    else:
        bound = "dma_write"
    if shared_dram and busy["dram"] > max(busy["compute"], read_path, busy["dma_write"]):
        bound = "dram"
    return {"cycles": cycles, "mac_cycles": mac, "dma_read_bytes": rd_bytes,
            "dma_write_bytes": wr_bytes, "l2_bytes": l2_bytes, "bytes": by_class, "descriptors": n, "busy": busy,
            "bound": bound,
            "lane_utilization": mac / cycles, "model_steps": steps, "act_load_stalls": stalls}


def _act_word_rows(config) -> list:
    """For each bus word of an activation word (in load order), the set of row memories it
    writes (``Spu``: a row is ``BANK`` bytes; a bus word covers part of one row or whole
    rows)."""
    row_bits, bus = BANK * 8, config.dram_bus_bits
    lanes = config.rows * row_bits // bus
    if bus <= row_bits:
        return [frozenset({lane // (row_bits // bus)}) for lane in range(lanes)]
    j = bus // row_bits
    return [frozenset(range(lane * j, lane * j + j)) for lane in range(lanes)]


def _act_load_stalls(first, words, word_rows, gemms, rows) -> int:
    """Cycles an ACT load of ``words`` bus words, its first written at cycle ``first``, waits
    for GEMM results written into the same row memories (``ld_hold``): ``gemms`` are
    ``(first result write, tile spacing, tiles)``, each tile writing rows ``0 .. rows - 1`` on
    consecutive cycles (a pool's windows may be closer than ``rows``: rows of several windows
    then write in one cycle, each its own memory). A word that meets a result waits a cycle,
    and so does every later word of the load."""
    live = [g for g in gemms
            if g[0] < first + words * (rows + 1) and g[0] + g[1] * g[2] + rows > first]
    if not live:
        return 0
    n = len(word_rows)
    c = first
    stalls = 0
    for k in range(words):
        want = word_rows[k % n]
        while True:
            hit = False
            for base, sp, tiles in live:
                for r in want:
                    d = c - base - r
                    if 0 <= d < sp * tiles and d % sp == 0 and r < rows:
                        hit = True
                        break
                if hit:
                    break
            if not hit:
                break
            c += 1
            if k < words - 1:
                stalls += 1
        c += 1
    return stalls


# -- building programs ------------------------------------------------------------------------


def _encode(opcode, *, dma=None, gemm=None, **header):
    """:func:`s4accel.sw.program.descriptor`, bit for bit, without building Amaranth constants
    (about 100 times faster; the test suite checks that the bytes are identical). ``header``:
    the header's flag fields (``wait_prev``, ``sig_next``, ...)."""
    v = int(opcode.value if isinstance(opcode, Opcode) else opcode) << _HDR["opcode"][0]
    if dma is not None and dma["row_bytes"] > _DMA["row_bytes"][1] and dma["rows"] == 1 \
            and dma["stride"] == dma["row_bytes"]:
        # one contiguous region too long for ``row_bytes`` (big scratchpads of projected
        # presets): the same bytes as rows of half the length (the compiler does not split)
        rows, nbytes = 1, dma["row_bytes"]
        while nbytes > _DMA["row_bytes"][1] and nbytes % 2 == 0:
            rows, nbytes = rows * 2, nbytes // 2
        dma = dict(dma, rows=rows, row_bytes=nbytes, stride=nbytes)
    for fields, body in ((_HDR, header), (_DMA, dma), (_GEMM, gemm)):
        for name, value in (body or {}).items():
            value = int(value.value if hasattr(value, "value") else value)
            off, mask = fields[name]
            if not 0 <= value <= mask:
                raise ValueError(f"descriptor field {name}={value} does not fit")
            v |= value << off
    return v.to_bytes(DESC_BYTES, "little")


def _info(config, bus_bits=None):
    from ...sw.program import DeviceInfo
    info = DeviceInfo.from_config(config)
    return replace(info, spus=1, bus_bits=bus_bits or info.bus_bits)


def build_layer(config, m, k, n, s, mode="int8", *, seed=0, info=None, fast=True, lut=False,
                random=True):
    """The program of one ``M x K x N`` layer at sparsity ``s`` for ``config`` (or a
    :class:`~s4accel.sw.program.DeviceInfo` ``info``): random int8 activations and weights,
    pruned and packed (:mod:`s4accel.base.sparse`), or, with ``random=False``, zeros packed
    directly (much faster for big layers; the schedule depends on the shape only)."""
    from ...base.sparse import PackedWeights, pack, prune
    from ...sw.program import Allocator, LayerParams, layer_program
    config = load_config(config) if isinstance(config, str) else config
    rng = np.random.default_rng(seed)
    if random:
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        w = rng.integers(-128, 128, (n, k), dtype=np.int8)
        packed = pack(prune(w, s), s)
    else:
        x = np.zeros((m, k), np.int8)
        nb, nnz = -(-k // BANK), BANK // s
        packed = PackedWeights(n=n, k=k, s=s, values=np.zeros((n, nb, nnz), np.int8),
                               indices=np.broadcast_to(np.arange(nnz, dtype=np.uint8),
                                                       (n, nb, nnz)))
    if mode == "int8":
        params = LayerParams("int8", bias=rng.integers(-4096, 4096, n),
                             mult=rng.integers(1 << 14, 1 << 16, n),
                             shift=np.full(n, 20), relu=True,
                             lut=rng.integers(-128, 128, 256, dtype=np.int8) if lut else None)
    else:
        params = LayerParams("raw", bias=rng.integers(-4096, 4096, n))
    info = info or _info(config)
    alloc = Allocator(0x1000_0000, 1 << 40)
    return layer_program(info, x, packed, params, alloc, encode=_encode if fast else None)


def predict_layer(config, m, k, n, s, mode="int8", *, host=True, seed=0, timing=TIMING,
                  lut=False):
    """Build the program of one layer (:func:`build_layer`) and predict it
    (:func:`predict_program`); ``host`` as there (True: what ``s4 bench gemm`` measures)."""
    config = load_config(config) if isinstance(config, str) else config
    prog = build_layer(config, m, k, n, s, mode, seed=seed, lut=lut)
    out = predict_program(config, prog, host=host, timing=timing)
    out.update(m=m, k=k, n=n, sparsity=s, dram_bytes=prog.dram_bytes)
    return out


def build_conv(config, images, h, w, c, ksize, stride, pad, cout, s, *, seed=0, info=None):
    """The program of one convolution on an NHWC tensor (:func:`s4accel.sw.conv.conv_program`,
    on-chip windows) of ``images`` images ``h x w x c`` at sparsity ``s``, int8 output; random
    data (the schedule depends on the shapes only)."""
    from ...base.sparse import pack, prune
    from ...sw.conv import conv_program, conv_weights
    from ...sw.program import Allocator, LayerParams
    config = load_config(config) if isinstance(config, str) else config
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (images, h, w, c), dtype=np.int8)
    wk = conv_weights(rng.integers(-128, 128, (cout, ksize, ksize, c), dtype=np.int8))
    packed = pack(prune(wk, s), s)
    params = LayerParams("int8", bias=rng.integers(-4096, 4096, cout),
                         mult=rng.integers(1 << 14, 1 << 16, cout), shift=np.full(cout, 20),
                         relu=True)
    return conv_program(info or _info(config), x, packed, params,
                        Allocator(0x1000_0000, 1 << 40), ksize=ksize, stride=stride, pad=pad,
                        encode=_encode)


def predict_conv(config, images, h, w, c, ksize, stride, pad, cout, s, *, host=True,
                 timing=TIMING):
    """:func:`build_conv` predicted by :func:`predict_program` (what ``s4 bench gemm``'s
    convolution rows measure)."""
    config = load_config(config) if isinstance(config, str) else config
    prog = build_conv(config, images, h, w, c, ksize, stride, pad, cout, s)
    out = predict_program(config, prog, host=host, timing=timing)
    out.update(sparsity=s, dram_bytes=prog.dram_bytes)
    return out


# -- several SPUs ------------------------------------------------------------------------------


def _pow2_divisors(v):
    d, out = 1, []
    while d <= v:
        out.append(d)
        d *= 2
    return out


def dram_bytes_per_cycle(config) -> float:
    """DRAM bytes a ``clock_mhz`` cycle: ``dram_gb_s`` (reads and writes together) where the
    configuration sets it, else the AXI bus width (each of its read and write channels)."""
    if config.dram_gb_s is None:
        return config.dram_bus_bits / 8
    return config.dram_gb_s * 1e3 / config.clock_mhz


def project(config, m, k, n, s, mode="int8", *, grid=None, seed=0, timing=TIMING):
    """One ``M x K x N`` layer on a preset with ``config.spus`` SPUs.

    The SPUs form a ``g_m x g_n`` grid (``g_m * g_n = spus``): output channels are split
    across the ``g_n`` columns (each SPU its own channel tiles, weights and scratchpads, as in
    the single-SPU program) and, when there are fewer channel tiles than SPUs, rows across the
    ``g_m`` grid rows. Every SPU runs the single-SPU program of its ``M/g_m x K x N/g_n`` slice
    in lockstep with the others on one shared DRAM bus (AXI: a read and a write channel, each
    ``dram_bus_bits`` wide): an activation read is multicast to the ``g_n`` SPUs of a grid row
    (the bus carries ``g_m`` distinct activation streams), a weight / parameter read to the
    ``g_m`` SPUs of a grid column (``g_n`` streams), while outputs and descriptor fetches are
    private (``spus`` streams). Each SPU's transfers therefore see ``bus / streams`` bytes a
    cycle. The slice's program is compiled for that weight bandwidth (the compiler's
    row-reuse rule), so weights are reused across as many row tiles as the bandwidth needs.

    With ``config.dram_gb_s`` set, the bus is that one DRAM bandwidth (``dram_gb_s`` at
    ``clock_mhz``: :func:`dram_bytes_per_cycle`) shared by reads and writes
    (:func:`predict_program`'s ``shared_dram``) instead of the AXI port's two channels.

    ``grid``: force ``(g_m, g_n)``; by default every power-of-two split without idle SPUs is
    predicted and the fastest kept. Returns :func:`predict_program`'s dict (of one SPU, no
    host) plus ``grid``, whole-layer ``dram_read_bytes`` / ``dram_write_bytes``, ``macs`` and
    ``lane_utilization`` over all SPUs.
    """
    config = load_config(config) if isinstance(config, str) else config
    P, R, C = config.spus, config.rows, config.cols
    bb, shared = dram_bytes_per_cycle(config), config.dram_gb_s is not None
    mt, nt = -(-m // R), -(-n // C)
    if grid is None:
        grids = [(P // g, g) for g in _pow2_divisors(P) if g <= nt and P // g <= mt]
        grids = grids or [(1, min(_pow2_divisors(P), key=lambda g: abs(g - nt)))]
    else:
        grids = [tuple(grid)]
    best = None
    for g_m, g_n in grids:
        m_s = min(m, -(-mt // g_m) * R)
        n_s = min(n, -(-nt // g_n) * C)
        bw = {"act": bb / g_m, "wgt": bb / g_n, "out": bb / P,
              "desc": bb / P}
        bus_bits = max(8, int(8 * bw["wgt"]))
        info = _info(config, bus_bits)
        prog = build_layer(config, m_s, k, n_s, s, mode, seed=seed, info=info, random=False)
        r = predict_program(config, prog, host=False, timing=timing, bandwidth=bw,
                            shared_dram=shared)
        r.update(grid=(g_m, g_n), m=m, k=k, n=n, sparsity=s, slice=(m_s, n_s))
        if best is None or r["cycles"] < best["cycles"]:
            best = r
    g_m, g_n = best["grid"]
    cls = best["bytes"]
    best["dram_read_bytes"] = cls["act"] * g_m + cls["wgt"] * g_n + cls["desc"] * P
    best["dram_write_bytes"] = cls["out"] * P
    best["macs"] = m * n * (-(-k // BANK)) * BANK // s
    best["lane_utilization"] = best["macs"] / (best["cycles"] * P * config.lanes)
    return best


def _project_cached(config, m, k, n, s, mode, timing):
    key = (config, m, k, n, s, mode, timing)
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = project(config, m, k, n, s, mode, timing=timing)
    return hit


_CACHE: dict = {}


def _project_independent(config, count, m, k, n, s, mode, timing):
    """``count`` independent GEMMs (attention heads): each on one SPU with private traffic
    (``bus / spus`` a cycle), the SPUs taking them in turns."""
    key = ("indep", config, m, k, n, s, mode, timing)
    one = _CACHE.get(key)
    if one is None:
        P, bb = config.spus, dram_bytes_per_cycle(config)
        bw = dict.fromkeys(("act", "wgt", "out", "desc"), bb / P)
        info = _info(config, max(8, int(8 * bb / P)))
        prog = build_layer(config, m, k, n, s, mode, info=info, random=False)
        one = _CACHE[key] = predict_program(config, prog, host=False, timing=timing,
                                            bandwidth=bw,
                                            shared_dram=config.dram_gb_s is not None)
    waves = -(-count // config.spus)
    macs = count * m * n * (-(-k // BANK)) * BANK // s
    return {"cycles": waves * one["cycles"], "macs": macs, "bound": one["bound"],
            "dram_read_bytes": count * one["dma_read_bytes"],
            "dram_write_bytes": count * one["dma_write_bytes"],
            "grid": (1, 1)}


# -- networks -----------------------------------------------------------------------------------


def bert_base_layers(batch=1, seq=128, *, layers=12, hidden=768, ffn=3072, heads=12):
    """BERT encoder GEMMs as ``(name, count, M, K, N, sparse)``: per layer the four attention
    projections and the two FFN layers on all ``batch * seq`` tokens (weights, pruned), and
    per sequence and head the score (``Q K^T``) and context (``P V``) matmuls, whose operands
    are both activations (dense, ``s = 1``): ``count`` independent GEMMs, spread over the
    SPUs. Softmax, layer norm, GELU and the embeddings are left to the host."""
    t, d = batch * seq, hidden // heads
    one = [(f"attn_{p}", 1, t, hidden, hidden, True) for p in "qkvo"]
    one += [("ffn1", 1, t, hidden, ffn, True),
           ("ffn2", 1, t, ffn, hidden, True),
           ("attn_scores", batch * heads, seq, d, seq, False),
           ("attn_context", batch * heads, seq, seq, d, False)]
    return [(f"L{i}.{name}", *rest) for i in range(layers) for name, *rest in one]


def resnet50_layers(batch=1, image=224):
    """ResNet-50 (v1.5: stride on the 3x3 convolutions) at ``image`` x ``image``: every
    convolution as an im2col GEMM ``(name, count, M = batch*H_out*W_out, K = kh*kw*C_in,
    N = C_out, sparse)`` and the final fully connected layer. Pooling, the residual additions
    and the input quantization are left to the host."""
    out = []
    hw = image // 2                                     # conv1 7x7 stride 2
    out.append(("conv1", 1, batch * hw * hw, 7 * 7 * 3, 64, True))
    hw //= 2                                            # max pool 3x3 stride 2
    c_in = 64
    for stage, (blocks, mid, c_out) in enumerate(((3, 64, 256), (4, 128, 512),
                                                  (6, 256, 1024), (3, 512, 2048)), start=2):
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 2) else 1
            ho = hw // stride
            name = f"conv{stage}_{b + 1}"
            out.append((f"{name}a_1x1", 1, batch * hw * hw, c_in, mid, True))
            out.append((f"{name}b_3x3", 1, batch * ho * ho, 9 * mid, mid, True))
            out.append((f"{name}c_1x1", 1, batch * ho * ho, mid, c_out, True))
            if b == 0:
                out.append((f"{name}_down", 1, batch * ho * ho, c_in, c_out, True))
            c_in, hw = c_out, ho
    out.append(("fc", 1, batch, 2048, 1000, True))
    return out


def project_network(config, layers, s, *, mode="int8", timing=TIMING):
    """Sum the projected cycles of a network's GEMMs (:func:`project` per layer, back to back)
    at sparsity ``s`` (dense where a layer is not sparse). A layer with ``count > 1`` is that
    many independent small GEMMs (attention heads), each on one SPU. Returns totals and
    per-layer rows."""
    config = load_config(config) if isinstance(config, str) else config
    rows, total = [], {"cycles": 0, "macs": 0, "dram_read_bytes": 0, "dram_write_bytes": 0}
    for name, count, m, k, n, sparse in layers:
        sl = s if sparse else 1
        if count == 1:
            r = _project_cached(config, m, k, n, sl, mode, timing)
        else:
            r = _project_independent(config, count, m, k, n, sl, mode, timing)
        row = {"name": name, "count": count, "m": m, "k": k, "n": n, "s": sl,
               "cycles": r["cycles"], "grid": r["grid"], "bound": r["bound"]}
        for key in ("macs", "dram_read_bytes", "dram_write_bytes"):
            row[key] = r[key]
            total[key] += r[key]
        total["cycles"] += row["cycles"]
        rows.append(row)
    total["bound"] = {}
    for row in rows:
        total["bound"][row["bound"]] = total["bound"].get(row["bound"], 0) + row["cycles"]
    return total, rows


#: Published figures the projection is printed beside, per chip: (model, (samples/s per chip,
#: source)). The S4 card has one Antoum chip; the S30 card has three.
PUBLISHED = {
    "ResNet-50": (31_678, "MLPerf Inference v2.1, S4 card (1 chip)"),
    "BERT-Large": (1_219, "MLPerf Inference v2.1, S4 card (1 chip)"),
    "BERT-base": (7_739 / 3, "ByteMLPerf, S30 card (3 chips) 7,739 at 16x, / 3"),
}


def bert_large_layers(batch=1, seq=384):
    """BERT-Large (24 layers, hidden 1024, FFN 4096, 16 heads) as :func:`bert_base_layers`;
    MLPerf runs it at sequence length 384."""
    return bert_base_layers(batch, seq, layers=24, hidden=1024, ffn=4096, heads=16)


def project_bert_resnet(config="antoum", *, sparsities=(1, 8, 16), batch=8, seq=128,
                        bert_large=False, timing=TIMING):
    """Project BERT-base (sequence ``seq``) and ResNet-50 (224 x 224) throughput on a
    multi-SPU preset at each sparsity: every GEMM through :func:`project`, layers back to back
    on ``batch`` samples, at the preset's ``clock_mhz`` (1000 MHz if absent). Returns one row
    per model and sparsity with ``samples_per_s``, ``cycles`` per batch, the bound of most of
    the cycles and DRAM traffic."""
    config = load_config(config) if isinstance(config, str) else config
    clock = float(getattr(config, "clock_mhz", 0) or 1000.0) * 1e6
    nets = [("BERT-base", bert_base_layers(batch, seq)), ("ResNet-50", resnet50_layers(batch))]
    if bert_large:
        nets.insert(1, ("BERT-Large", bert_large_layers(batch)))
    rows = []
    for name, layers in nets:
        for s in sparsities:
            total, per_layer = project_network(config, layers, s, timing=timing)
            seconds = total["cycles"] / clock
            bound = max(total["bound"], key=total["bound"].get)
            rows.append({
                "model": name, "s": s, "batch": batch, "cycles": total["cycles"],
                "samples_per_s": batch / seconds,
                "bound": bound, "bound_share": total["bound"][bound] / total["cycles"],
                "macs_per_sample": total["macs"] / batch,
                # share of lane-cycles issuing a MAC (stored weights: K/s per output)
                "lane_utilization": total["macs"] / (total["cycles"] * config.spus
                                                     * config.lanes),
                "dram_gb_per_s": (total["dram_read_bytes"] + total["dram_write_bytes"])
                / seconds / 1e9,
                "dram_bytes_per_sample": (total["dram_read_bytes"]
                                          + total["dram_write_bytes"]) / batch,
                "published": PUBLISHED.get(name), "layers": per_layer, "mechanisms": "old",
            })
    return rows


def _published(r):
    pub = r["published"]
    # two more blanks set the free-text column apart from the numbers
    return f"  {pub[0]:,.0f}" if pub else None


def _speedups(rows):
    """Each row's samples/s over its model's s = 1 row (None without one)."""
    dense = {r["model"]: r["samples_per_s"] for r in rows if r["s"] == 1}
    return [r["samples_per_s"] / dense[r["model"]] if r["model"] in dense else None
            for r in rows]


#: The table of :func:`project_bert_resnet`'s and :func:`.dataflow.project_plan`'s rows.
PROJECTION_COLUMNS = [
    Column("model", "model", "<11"), Column("s", "s", ">3"),
    Column("batch", "batch", ">5"),
    Column("samples/s", "samples_per_s", ">10,.0f"),
    Column("vs s=1", "speedup", ">6.2f", missing=""),
    Column("lane util", "lane_utilization", ">9.1%"), Column("DRAM GB/s", "dram_gb_per_s", ">9.1f"),
    Column("MB/inf", lambda r: r["dram_bytes_per_sample"] / 1e6, ">7.2f"),
    Column("bound (share)", lambda r: f"{r['bound']} ({r['bound_share']:.0%})", "<18"),
    Column("  published per chip", _published, missing="")]

#: The keys of :func:`projection_json`'s objects.
PROJECTION_JSON_KEYS = ("model", "sparsity", "samples_per_s", "lane_utilization", "dram_gb_s",
                        "bound", "bound_share", "batch", "speedup_vs_dense",
                        "dram_bytes_per_sample", "mechanisms",
                        "published_samples_per_s_per_chip")


def projection_json(rows) -> list:
    """Projection rows as plain objects (``s4 project --json``): ``model``, ``sparsity``,
    ``samples_per_s``, ``lane_utilization`` (0..1), ``dram_gb_s`` (the DRAM traffic, reads
    and writes, in GB/s), ``bound`` (the resource bounding most of the cycles),
    ``bound_share``, ``batch`` (samples a pass: weights are read once a pass),
    ``speedup_vs_dense`` (over the model's s = 1 row, or ``None``), ``dram_bytes_per_sample``
    (DRAM bytes per inference), ``mechanisms`` (``new``: :mod:`.dataflow`'s plans; ``old``:
    layers back to back through DRAM) and the published figure per chip (or ``None``)."""
    return [{"model": r["model"], "sparsity": int(r["s"]),
             "samples_per_s": float(r["samples_per_s"]),
             "lane_utilization": float(r["lane_utilization"]),
             "dram_gb_s": float(r["dram_gb_per_s"]), "bound": r["bound"],
             "bound_share": float(r["bound_share"]), "batch": int(r["batch"]),
             "speedup_vs_dense": None if sp is None else float(sp),
             "dram_bytes_per_sample": float(r["dram_bytes_per_sample"]),
             "mechanisms": r.get("mechanisms", "old"),
             "published_samples_per_s_per_chip":
                 float(r["published"][0]) if r["published"] else None}
            for r, sp in zip(rows, _speedups(rows))]


def projection_assumptions(config) -> list:
    """The hardware figures a projection assumes, as lines of text."""
    config = load_config(config) if isinstance(config, str) else config
    mhz = config.clock_mhz
    macs = config.spus * config.lanes
    other = (config.sram_kib_per_spu - config.act_sram_kib - config.wgt_sram_kib
             - config.out_sram_kib)
    if config.dram_gb_s is None:
        bus = config.dram_bus_bits / 8 * mhz / 1000
        dram = (f"DRAM: the {config.dram_bus_bits}-bit AXI port, {bus:g} GB/s read + "
                f"{bus:g} GB/s write")
    else:
        dram = (f"DRAM: {config.dram_gb_s:g} GB/s shared by reads and writes "
                f"({dram_bytes_per_cycle(config):.1f} bytes a cycle)")
    return [
        f"lanes: {config.spus} SPUs x {config.rows}x{config.cols} = {macs:,} int8 MACs/cycle "
        f"at {mhz:g} MHz = {config.dense_tmac_s:.2f} dense TMAC/s",
        f"peak: {config.peak_tops():.1f} dense INT8 TOPS, {config.peak_tops(32):.1f} "
        f"sparse-equivalent at 32x",
        dram,
        f"on-chip SRAM: {config.sram_mib:.1f} MiB ({config.spus} SPUs x "
        f"{config.act_sram_kib}/{config.wgt_sram_kib}/{config.out_sram_kib} KiB ACT/WGT/OUT "
        f"+ {other:g} KiB parameters, LUT and vector row buffers; no shared L2)",
        *([f"vector units: {config.vec_units} a SPU (a VOP runs {config.vec_units} rows of a "
           f"row tile at once), rows of up to {config.vec_max_row}"]
          if config.vec_max_row else []),
    ]


#: What the old projection (``--mechanisms old``) assumes.
OLD_ASSUMPTIONS = (
    "Assumptions (old mechanisms): every GEMM runs on the SPU grid of "
    "sim/model/perf_model.project (output channels split across SPUs, rows too when a layer "
    "has fewer channel tiles than SPUs; activations multicast to the SPUs sharing them, "
    "weights to those sharing a channel slice; outputs and descriptors private); layers run "
    "back to back through DRAM (im2col activations for convolutions); BERT-base at sequence "
    "length 128, BERT-Large at 384 (MLPerf); BERT's attention score and context matmuls run "
    "dense (s = 1) on the array, one head per SPU; softmax, layer norm, GELU, pooling, "
    "residual additions and embeddings are on the host and not counted; every conv/linear "
    "layer (ResNet's first and last included) is pruned to s. int8 outputs leave the SPU as "
    "bytes (the RTL's int8 mode).")


def format_projection(rows, config="antoum", *, compare=None) -> str:
    """The projection's text: hardware assumptions, the table, the published figures and
    the mechanisms' assumptions (a new plan's placement per network). ``compare``: the other
    mechanisms' rows, for a table of DRAM bytes per inference and samples/s side by side."""
    from . import dataflow
    config = load_config(config) if isinstance(config, str) else config
    new = bool(rows) and rows[0].get("mechanisms") == "new"
    for r, sp in zip(rows, _speedups(rows)):
        r["speedup"] = sp
    what = ("new mechanisms: dataflow plans, activations on chip" if new else
            f"old mechanisms: layers back to back through DRAM, batch {rows[0]['batch']}"
            if rows else "")
    lines = [
        f"S4-open '{config.name}' projection (performance model, RTL-calibrated per SPU), "
        f"{what}:",
        *(f"  {line}" for line in projection_assumptions(config)),
        "",
        report.format_table(rows, PROJECTION_COLUMNS),
        "",
        "Published per chip: " + "; ".join(
            f"{model} {n:,.0f} samples/s ({src})" for model, (n, src) in PUBLISHED.items())
        + ".",
        "",
    ]
    if new:
        lines += dataflow.plan_assumptions(config, rows)
        lines += dataflow.targets(rows)
        lines += dataflow.resnet_ceiling_lines(config, rows)
    else:
        lines.append(OLD_ASSUMPTIONS)
    if compare:
        lines += ["", "DRAM bytes per inference and samples/s, old mechanisms (layers through "
                  "DRAM, host im2col, batch "
                  f"{next(r['batch'] for r in rows + compare if r.get('mechanisms') != 'new')})"
                  " vs new (dataflow plans):", ""]
        lines.append(report.format_table(dataflow.compare_rows(rows, compare),
                                         dataflow.COMPARE_COLUMNS))
    return "\n".join(lines)
