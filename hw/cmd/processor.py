"""The command processor: fetches descriptors from a ring in DRAM and runs them.

Three stages execute in parallel, each from its own small queue: LOAD (DMA read into a
scratchpad), GEMM (the SPU) and STORE (DMA write from the output scratchpad). Counting
semaphores between adjacent stages (``ld2ex``, ``ex2ld``, ``ex2st``, ``st2ex``) order them
where descriptors ask for it (see :mod:`.descriptors`). SYNC and COMPLETE wait until everything
before them has finished.

Every error stops the machine cleanly: the DMA finishes the bursts it has issued (no stray
access), queues are flushed, the datapath is reset, the ring is emptied (head = tail), STATUS
gets the error code and the faulting descriptor's address and the error interrupt is raised.
The processor stays halted until the driver acknowledges the error (``error_ack``), then it
accepts new descriptors. A soft reset does the same without reporting an error.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ...base.config import BANK, Config
from ..core.dsp import registered_uproduct
from ..dma.engine import N_WINDOWS, DmaError, dma_cmd_layout, dma_status_layout, windows_layout
from ..spu.spu import SpuGeometry
from ..spu.wgt_unpack import packed_word_bits
from ...base import codec
from ..jpeg.engine import DecodeEngine, act_write_layout
from .descriptors import (DESC_BYTES, MAX_SPUS, Descriptor, ErrorCode, LoadFormat, Opcode,
                          Target, VopOp, ex_cmd_layout)
from .fanout import multicast_layout

__all__ = ["CommandProcessor", "spu_load_cmd", "spu_store_cmd"]

QUEUE_DEPTH = 2

#: Bits of a dependency-token counter, and the most signals one may hold: a descriptor whose
#: signal would take a counter past ``TOKEN_LIMIT`` (counted at dispatch) is refused with
#: ``TOKEN``, so the counters neither wrap nor saturate (``TOKEN_LIMIT`` leaves room for the
#: waits that are dispatched but not yet taken, at most ``2 * QUEUE_DEPTH + 2``).
TOKEN_BITS = 16
TOKEN_LIMIT = (1 << TOKEN_BITS) - 8

#: Cycles from a fetched descriptor's last word to the dispatch checks' verdict (the check
#: pipeline of :func:`_dispatch_checks`); the performance model's ``Timing.dispatch_check``.
CHECK_STAGES = 5


def _dma_code(code):
    """DMA status code -> STATUS error code."""
    return Mux(code == DmaError.OUT_OF_WINDOW, ErrorCode.OUT_OF_WINDOW,
           Mux(code == DmaError.SLVERR, ErrorCode.BUS_SLVERR,
           Mux(code == DmaError.DECERR, ErrorCode.BUS_DECERR, ErrorCode.BAD_FIELD)))


def spu_load_cmd(spus):
    """Where a LOAD's words go: scratchpad ``target`` from word ``addr`` on, in every SPU that
    ``mask`` selects (0: all), decoded as ``fmt`` says (:class:`LoadFormat`)."""
    return data.StructLayout({"mask": spus, "target": Target, "addr": 16, "fmt": 2})


def _bad_fmt(body, is_store):
    """A ``fmt`` the descriptor cannot have (``BAD_FIELD``): 3, or a packed format on a STORE
    or on a LOAD whose target is not WGT."""
    return ((body.fmt == 3)
            | ((body.fmt != LoadFormat.RAW.value) & (is_store | (body.target != Target.WGT))))


def _bound(past, limit, body, depth, word_bytes):
    """The bound of a LOAD or STORE on a scratchpad of ``depth`` words of ``word_bytes``
    (``past``: ``sram_addr`` beyond it; ``limit``: the bytes from ``sram_addr`` to its end)."""
    return [past.eq(body.sram_addr >= depth),
            limit.eq(_times(depth - body.sram_addr, word_bytes))]


def _wgt_bound(past, limit, body, geom):
    """The WGT bound of a LOAD (``past``: ``sram_addr`` beyond the scratchpad; ``limit``: the
    most bytes the transfer may move). A packed format writes ``floor(bytes * 8 /
    word_bits)`` words, which fit the ``D = depth - sram_addr`` left while ``bytes <=
    floor(((D + 1) * word_bits - 1) / 8)``."""
    depth, cols = geom.wgt_depth, geom.wgt_bits // 16
    room = depth + 1 - body.sram_addr
    return [past.eq(body.sram_addr >= depth),
            limit.eq(Mux(body.fmt == LoadFormat.RAW.value,
                         _times(depth - body.sram_addr, cols * 2),
                         (Mux(body.fmt == LoadFormat.PACKED.value,
                              _times(room, packed_word_bits(LoadFormat.PACKED, cols)),
                              _times(room, packed_word_bits(LoadFormat.VALUES, cols))) - 1) >> 3))]


def _times(x, k):
    """``x * k`` for a constant ``k >= 1``, as the sum of ``x`` shifted to each set bit of ``k``.
    Yosys maps every product, a constant's too, to a multiplier block, and on the ECP5 one
    without registers is the slowest element of a path: ``room * 104`` (the packed format's
    13 bits a weight x 8 columns) in this check stage was the `fpga` build's worst path
    (placer's estimate 45.9 MHz, stop 52). The same value, bit for bit."""
    terms = [x << i for i in range(k.bit_length()) if k >> i & 1]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def spu_store_cmd(spus):
    """What a STORE reads: ``beats`` bus words from word ``addr`` of the output scratchpad of
    the lowest SPU that ``mask`` selects (0: all, so SPU 0)."""
    return data.StructLayout({"mask": spus, "addr": 16, "beats": 24})


def _absent_spus(header, spus):
    """A mask that names SPUs but none the device has: refused (``BAD_FIELD``) rather than
    read as "all SPUs" (the functional model and docs/architecture.md agree)."""
    if spus >= len(header.spu_mask):
        return 0
    return (header.spu_mask != 0) & (header.spu_mask[:spus] == 0)


def _transfer_checks(m, platform, *, name, queue, entry, check, lg, bounds, spus, geom):
    """The checks of a LOAD or STORE descriptor, in three registered stages (a 16 x 16
    product, then a compare, then the verdict), so that no multiplier or comparator chain
    limits the clock.

    ``queue`` is the engine's descriptor queue and ``entry`` the engine's register loaded from
    it when ``queue.r_en``; ``check`` (3 bits) walks the stages, ``check[0]`` set when the entry
    is taken. ``bounds`` maps a scratchpad :class:`Target` (``None``: the only one) to its
    (depth in words, bytes per word). Returns ``(beats, fault_field, fault_over, ok)``:
    ``beats`` (rows * row_bytes / bus bytes) from the second stage on, and three pulses of
    the verdict stage.
    """
    body = entry.desc.body.dma
    beats = Signal(36, name=f"{name}_beats")   # rows * row_bytes / bus_bytes
    limit = Signal(40, name=f"{name}_limit")   # scratchpad bytes from sram_addr to its end
    bad = Signal(name=f"{name}_bad")
    past = Signal(name=f"{name}_past")
    over = Signal(name=f"{name}_over")
    # rows x row words: the operands registered (inside the DSP on the ECP5) with the entry,
    # the product in the first check stage
    new = data.View(entry.shape(), queue.r_data).desc.body.dma
    m.d.comb += beats.eq(registered_uproduct(
        m, new.rows, new.row_bytes[lg:], width=36, platform=platform,
        name=f"{name}_beats_p", en_in=queue.r_en, en_out=check[0]))

    def bound(depth, word_bytes):
        m.d.sync += _bound(past, limit, body, depth, word_bytes)
    is_store = list(bounds) == [None]
    with m.If(check[0]):
        m.d.sync += bad.eq((body.rows == 0) | (body.row_bytes == 0)
                           | (body.row_bytes[:lg] != 0 if lg else 0)
                           | _absent_spus(entry.desc.header, spus) | _bad_fmt(body, is_store))
        if is_store:
            bound(*bounds[None])
        else:
            with m.Switch(body.target):
                for t, (depth, word_bytes) in bounds.items():
                    with m.Case(t):
                        if t == Target.WGT:
                            m.d.sync += _wgt_bound(past, limit, body, geom)
                        else:
                            bound(depth, word_bytes)
    with m.If(check[1]):
        m.d.sync += over.eq(past | ((beats << lg) > limit))
    with m.If(check.any()):   # never in the cycle that takes a new entry
        m.d.sync += check.eq(check << 1)
    return (beats, *_verdict(m, name, check[2], bad, over))


def _verdict(m, name, when, bad, over):
    """The last check stage of a descriptor: in a cycle ``when`` is high, pulses
    ``fault_field`` if ``bad``, else ``fault_over`` if ``over``, else ``ok``. Returns the three
    pulses."""
    fault_field = Signal(name=f"{name}_fault_field")
    fault_over = Signal(name=f"{name}_fault_over")
    ok = Signal(name=f"{name}_ok")
    with m.If(when):
        with m.If(bad):
            m.d.comb += fault_field.eq(1)
        with m.Elif(over):
            m.d.comb += fault_over.eq(1)
        with m.Else():
            m.d.comb += ok.eq(1)
    return fault_field, fault_over, ok


def _bad_conv(gb):
    """A ``conv`` GEMM whose walk has a zero count, or a ``pool`` without ``conv`` and
    ``out_act``, with ``relu`` or ``lut``, or with more passes than channel banks
    (``n_tiles > cbanks``) (``BAD_FIELD``)."""
    return ((gb.conv & ((gb.ksize == 0) | (gb.cbanks == 0) | (gb.out_w == 0)))
            | (gb.pool & (~gb.conv | ~gb.out_act | gb.relu | gb.lut
                          | (gb.n_tiles > gb.cbanks))))


def _act_rows(gb):
    """The first operand of a GEMM's activation bound ``act_addr + rows x run``: ``m_tiles``
    row tiles of ``banks`` words, or (``conv``) ``in_h`` input rows of ``row_pitch`` words."""
    return Mux(gb.conv, gb.in_h, gb.m_tiles)


def _act_run(gb):
    return Mux(gb.conv, gb.row_pitch, gb.banks)


def _alias(gb, need_act, need_out):
    """``out_act`` words that overlap what the GEMM reads: the words ``[act_addr, need_act)``
    or (``conv``) the zero word ``pad_addr`` (``BAD_FIELD``)."""
    return gb.out_act & (((gb.out_addr < need_act) & (gb.act_addr < need_out))
                         | (gb.conv & (gb.out_addr <= gb.pad_addr) & (gb.pad_addr < need_out)))


def _out_tiles(gb, cols):
    """The channel-tile operand of a GEMM's output bound: ``n_tiles`` (raw: a word per row), or
    in int8 mode the banks the block spans, ``ceil(n_tiles * cols / 32)`` (an add and a shift,
    in front of the product's operand register); ``pool``: ``n_tiles``, a word per channel
    bank."""
    g = BANK // cols
    return Mux(gb.mode & ~gb.pool, (gb.n_tiles + (g - 1)) >> (g.bit_length() - 1), gb.n_tiles)


def _out_step(gb, cols):
    """The product operand of a GEMM's output bound with ``out_stride``: the stride where one
    is given (``out_act``), else :func:`_out_tiles`; ``need = out_addr + m_tiles * step +
    nbk - step`` (:func:`_out_need`)."""
    return Mux(gb.out_act & (gb.out_stride != 0), gb.out_stride, _out_tiles(gb, cols))


def _out_need(gb, p, rows, cols):
    """Words past the end of a GEMM's output from ``p = m_tiles * _out_step``: in ACT
    (``out_act``) ``out_addr + (m_tiles - 1) * step + nbk``, else ``out_addr +``
    :func:`_out_words`."""
    nbk = _out_tiles(gb, cols)
    return gb.out_addr + Mux(gb.out_act, p + nbk - _out_step(gb, cols),
                             _out_words(p, gb.mode, rows, cols))


def _out_words(p, mode, rows, cols):
    """Output words of a GEMM block from ``p`` = ``m_tiles`` x :func:`_out_tiles`: raw ``p *
    rows``; int8 ``ceil(p * rows * 32 / (cols * 4))`` (:func:`~..spu.spu.int8_out_words`).
    Both are shifts (powers of two)."""
    lg_rg = (rows * (BANK // cols)).bit_length() - 1    # slots (quarter words) per bank
    if lg_rg >= 2:
        words8 = p << (lg_rg - 2)
    else:
        words8 = ((p << lg_rg) + 3) >> 2
    return Mux(mode, words8, p * rows)


def _dispatch_checks(m, platform, *, desc, windows, geom, rows, cols, lg, spus, sparsities):
    """Every check of a fetched LOAD, STORE or GEMM, before it is dispatched (the "precise"
    rule of docs/faults.md: a descriptor that fails never runs, nor does anything after it).

    A free-running pipeline on the dispatch register ``desc``: its verdict is that of the
    descriptor once it has been there for :data:`CHECK_STAGES` cycles. One operation per stage, as
    in the engines' and the DMA's own checks (which stay as a second line): products (operands
    and product registered, one DSP each), sums, compares, the window hits. Returns the
    verdict, combinational from the last stage's registers: ``(field, over, dma_bad,
    outside)`` for a transfer and ``(gemm_field, gemm_over)`` for a GEMM, in the order they
    are reported (the order of the engines' and the DMA's checks)."""
    h = desc.header
    dma_b = desc.body.dma
    gb = desc.body.gemm
    is_st = h.opcode == Opcode.STORE.value
    # stage 1 (from desc) ----------------------------------------------------------------
    field, past = Signal(name="dc_field"), Signal(name="dc_past")
    dma_bad = Signal(name="dc_dma_bad")
    limit = Signal(40, name="dc_limit")
    end0 = Signal(33, name="dc_end0")
    above = [Signal(name=f"dc_above{i}") for i in range(N_WINDOWS)]
    g_field = Signal(name="dc_gemm_field")
    need_par = Signal(17, name="dc_need_par")
    wgt_room = geom.wgt_depth + 1
    wgt_lim = Signal(wgt_room.bit_length() + 7, name="dc_wgt_lim")
    wgt_addr_over = Signal(name="dc_wgt_addr_over")
    smask = sum(1 << (s.bit_length() - 1) for s in sparsities)
    m.d.sync += [
        field.eq((dma_b.rows == 0) | (dma_b.row_bytes == 0)
                 | (dma_b.row_bytes[:lg] != 0 if lg else 0) | _absent_spus(h, spus)
                 | _bad_fmt(dma_b, is_st)),
        dma_bad.eq((dma_b.dram_addr[:lg] != 0 if lg else 0)
                   | (dma_b.stride[:lg] != 0 if lg else 0)),
        end0.eq(dma_b.dram_addr + dma_b.row_bytes),
        g_field.eq((gb.log2s > 5) | ~(Const(smask, 6) >> gb.log2s)[0] | (gb.banks == 0)
                   | (gb.m_tiles == 0) | (gb.n_tiles == 0) | _absent_spus(h, spus)
                   | (gb.out_act & ~gb.mode) | (~gb.out_act & (gb.out_stride != 0))
                   | _bad_conv(gb)),
        need_par.eq(gb.par_addr + gb.n_tiles),
        wgt_addr_over.eq(gb.wgt_addr > geom.wgt_depth),
        wgt_lim.eq((wgt_room - gb.wgt_addr)[:wgt_room.bit_length()] << gb.log2s),
    ]
    for i in range(N_WINDOWS):
        m.d.sync += above[i].eq(dma_b.dram_addr >= windows[i].base)

    def bound(depth, word_bytes):
        m.d.sync += _bound(past, limit, dma_b, depth, word_bytes)
    with m.If(is_st):
        bound(geom.out_depth, geom.out_bits // 8)
    with m.Else():
        with m.Switch(dma_b.target):
            for t in Target:
                with m.Case(t):
                    if t == Target.WGT:
                        m.d.sync += _wgt_bound(past, limit, dma_b, geom)
                    else:
                        bound(geom.depth(t), geom.bits(t) // 8)
    # products (operands registered in stage 1, products in stage 2): a descriptor is a
    # transfer or a GEMM, so the two kinds share the multipliers
    is_gemm = h.opcode == Opcode.GEMM.value

    def product(a_dma, b_dma, a_gemm, b_gemm, name, width=32):
        return registered_uproduct(m, Mux(is_gemm, a_gemm, a_dma), Mux(is_gemm, b_gemm, b_dma),
                                   width=width, platform=platform, name=name)
    # rows x row words (the transfer's bus words), m x banks (activation words)
    # (conv: the band of input rows it reads, in_h x row_pitch)
    p0 = product(dma_b.rows, dma_b.row_bytes[lg:], _act_rows(gb), _act_run(gb), "dc_p0",
                 width=36)
    # (rows - 1) x stride as two 16 x 16 partial products; n x banks, n (int8: banks) x m
    rows1 = (dma_b.rows - 1)[:16]
    p1 = product(rows1, dma_b.stride[:16], gb.n_tiles, gb.banks, "dc_p1")
    p2 = product(rows1, dma_b.stride[16:], _out_step(gb, cols), gb.m_tiles, "dc_p2")
    # stage 2 (products there) -------------------------------------------------------------
    over, span = Signal(name="dc_over"), Signal(48, name="dc_span")
    need_act, need_out = Signal(37, name="dc_need_act"), Signal(40, name="dc_need_out")
    wgt_over = Signal(name="dc_wgt_over")
    m.d.sync += [over.eq(past | ((p0 << lg) > limit)),
                 span.eq(p1 + (p2 << 16)),
                 need_act.eq(gb.act_addr + p0),
                 wgt_over.eq(wgt_addr_over | ((p1 << 5) >= wgt_lim)),
                 need_out.eq(_out_need(gb, p2, rows, cols))]
    # stage 3 ------------------------------------------------------------------------------
    end = Signal(50, name="dc_end")
    g_over = Signal(name="dc_gemm_over")
    g_alias = Signal(name="dc_gemm_alias")    # out_act words overlap the words it reads
    m.d.sync += [end.eq(end0 + span),
                 g_over.eq((need_act > geom.act_depth) | (wgt_over & ~gb.pool)
                           | ((need_par > geom.par_depth) & ~gb.pool)
                           | (need_out > Mux(gb.out_act, geom.act_depth, geom.out_depth))
                           | (gb.conv & (gb.pad_addr >= geom.act_depth))),
                 g_alias.eq(_alias(gb, need_act, need_out))]
    # stage 4: the window compares -----------------------------------------------------------
    inside = Signal(name="dc_inside")
    hits = [windows[i].enable & Mux(is_st, windows[i].write, windows[i].read) & above[i]
            & (end <= windows[i].limit) for i in range(N_WINDOWS)]
    m.d.sync += inside.eq(Cat(*hits).any())
    # (no stage needs its inputs delayed: the verdict is used only once the descriptor has
    # been in ``desc`` for CHECK_STAGES cycles, when every stage describes it)
    return (field, over, dma_bad, ~inside), (g_field | g_alias, g_over)


def _vop_checks(m, platform, *, desc, spus, act_depth, max_row, par_depth, cols, rows,
                wgt_depth):
    """The dispatch checks of a VOP (``VopBody``'s docstring; the functional model's
    ``_vop_check``), a free-running pipeline on the dispatch register like
    :func:`_dispatch_checks`: operands and field tests (stage 1), the three ``(m_tiles - 1)
    x stride`` products (stage 2), the spans' ends (stage 3), the compares (stage 4). Returns
    ``(field, over)``, combinational from stage 4's registers."""
    v = desc.body.vop
    h = desc.header
    # stage 1 -------------------------------------------------------------------------------
    nb = Signal(12, name="vc_nb")               # words a row, ceil(n / 32)
    nbi = Signal(13, name="vc_nbi")             # A's words a row (LAYERNORM wide: 2B)
    ow = Signal(13, name="vc_ow")               # output words a row
    binary = Signal(name="vc_binary")
    wide_add = Signal(name="vc_wide_add")
    bad1 = Signal(name="vc_bad1")
    par_end = Signal(18, name="vc_par_end")     # LAYERNORM's, a per-channel ADD's PAR end
    ln = v.op == VopOp.LAYERNORM
    add_chan = (v.op == VopOp.ADD) & v.chan
    row_op = ((v.op == VopOp.ROW_MAX) | (v.op == VopOp.ROW_SUM) | (v.op == VopOp.SOFTMAX)
              | ln)
    reduce = (v.op == VopOp.ROW_MAX) | (v.op == VopOp.ROW_SUM)
    wide = v.wide & ((v.op == VopOp.ADD) | (v.op == VopOp.SOFTMAX))
    b_new = ((v.n + 31) >> 5)[:12]
    bi_new = Mux(ln & v.wide, b_new << 1, b_new)
    lg_p = (32 // cols).bit_length() - 1        # PAR words a vector of 32 channels: 2**lg_p
    m.d.sync += [
        nb.eq(b_new),
        nbi.eq(bi_new),
        ow.eq(Mux(reduce, 1, Mux(wide, b_new << 1, b_new))),
        binary.eq((v.op == VopOp.ADD) | (v.op == VopOp.MUL)),
        wide_add.eq(v.wide & (v.op == VopOp.ADD)),
        par_end.eq(Mux(ln, v.b_addr, Mux(add_chan, v.mult, 0)) + Mux(ln | add_chan,
                                                                      b_new << lg_p, 0)),
        bad1.eq((v.n == 0) | (v.m_tiles == 0)
                | (row_op & (v.n > max_row)) | (v.shift > 47) | (v.u_shift > 47)
                | (ln & ((v.n < 2) | (v.shift > 31) | (v.u_mult > 255)))
                | ((v.op == VopOp.SOFTMAX) & v.relu & v.wide)
                | (v.chan & (v.op != VopOp.ADD))
                | _absent_spus(h, spus)),
    ]
    m1 = (v.m_tiles - 1)[:16]
    # TO_WGT: its WGT span is channel tiles x K banks x 32 words (``to_wgt_words``)
    tw1 = Signal(name="vc_tw1")
    m.d.sync += tw1.eq(v.op == VopOp.TO_WGT)
    lg_c, lg_r = cols.bit_length() - 1, rows.bit_length() - 1
    x_bits = 16 + max(0, lg_r - lg_c)           # ceil(T / cols) and ceil(n / cols) fit
    tok = Cat(Const(0, lg_r), v.m_tiles)        # T = m_tiles * rows
    ceil_c = lambda x: (x + cols - 1) >> lg_c   # noqa: E731
    ceil_b = lambda x: (x + 31) >> 5            # noqa: E731
    tw_words = registered_uproduct(m, Mux(v.wide, ceil_c(v.n), ceil_c(tok))[:x_bits],
                                   Mux(v.wide, ceil_b(tok), ceil_b(v.n))[:16], width=32,
                                   platform=platform, name="vc_tw")

    def product(stride, dflt, name):   # (m_tiles - 1) * (stride, or dflt when 0)
        return registered_uproduct(m, m1, Mux(stride == 0, dflt, stride)[:16], width=32,
                                   platform=platform, name=name)
    # (the defaults are formed from the fields, beside the stage-1 registers)
    pa = product(v.a_stride, bi_new, "vc_pa")
    pb = product(v.b_stride, b_new, "vc_pb")
    po = product(v.out_stride, Mux(reduce, 1, Mux(wide, b_new << 1, b_new)), "vc_po")
    # stage 2: the products are there; keep stage 1's flags a stage longer ------------------
    bad2, bin2, wa2 = Signal(name="vc_bad2"), Signal(name="vc_bin2"), Signal(name="vc_wa2")
    nb2, ow2 = Signal(12, name="vc_nb2"), Signal(13, name="vc_ow2")
    nbi2 = Signal(13, name="vc_nbi2")
    par2 = Signal(name="vc_par2")
    tw2 = Signal(name="vc_tw2")
    m.d.sync += [bad2.eq(bad1), bin2.eq(binary), wa2.eq(wide_add), nb2.eq(nb), ow2.eq(ow),
                 nbi2.eq(nbi), par2.eq(par_end > par_depth), tw2.eq(tw1)]
    # stage 3: the ends --------------------------------------------------------------------
    a_end, b_end, o_end = (Signal(34, name=f"vc_{x}_end") for x in "abo")
    bad3, bin3, wa3 = Signal(name="vc_bad3"), Signal(name="vc_bin3"), Signal(name="vc_wa3")
    par3 = Signal(name="vc_par3")
    tw3 = Signal(name="vc_tw3")
    w_end = Signal(40, name="vc_w_end")
    m.d.sync += [a_end.eq(v.a_addr + pa + nbi2), b_end.eq(v.b_addr + pb + nb2),
                 o_end.eq(v.out_addr + po + ow2), bad3.eq(bad2), bin3.eq(bin2),
                 wa3.eq(wa2), par3.eq(par2), tw3.eq(tw2),
                 w_end.eq(v.out_addr + (tw_words << 5))]
    # stage 4: the compares ----------------------------------------------------------------
    field, over = Signal(name="vc_field"), Signal(name="vc_over")

    def alias(addr, stride, end):      # the output span overlaps this input, not in place
        same = (v.out_addr == addr) & (v.out_stride == stride) & ~wa3
        return (v.out_addr < end) & (addr < o_end) & ~same
    # (a TO_WGT writes WGT: no ACT output span, its WGT span instead)
    m.d.sync += [field.eq(bad3 | (~tw3 & alias(v.a_addr, v.a_stride, a_end))
                          | (bin3 & alias(v.b_addr, v.b_stride, b_end))),
                 over.eq((a_end > act_depth) | (bin3 & (b_end > act_depth))
                         | (~tw3 & (o_end > act_depth)) | par3
                         | (tw3 & (w_end > wgt_depth)))]
    return field, over


def _decode_checks(m, platform, *, desc, windows, spus, rows, act_depth, lg):
    """The dispatch checks of a DECODE (``DecodeBody``'s docstring; the functional model's
    ``_decode``, in its order), a free-running pipeline on the dispatch register like
    :func:`_dispatch_checks`: field tests, operands and the extents' ends (stage 1), the
    ``out_h x out_w`` product and the window hits (stage 2), the bound and the hits' OR
    (stage 3). Returns ``(field, over, align, outside)``, combinational from stage 3's
    registers."""
    d = desc.body.decode
    h = desc.header
    bb = 1 << lg
    # stage 1 -------------------------------------------------------------------------------
    field1, align1 = Signal(name="dd_field1"), Signal(name="dd_align1")
    t_end = Signal(34, name="dd_t_end")
    b_end = Signal(34, name="dd_b_end")
    m.d.sync += [
        field1.eq((d.bits_len == 0) | (d.crop_w == 0) | (d.crop_h == 0) | (d.out_w == 0)
                  | (d.out_h == 0) | (d.out_w > d.crop_w) | (d.out_h > d.crop_h)
                  | (d.out_w > codec.MAX_OUT_W) | (d.lane >= rows) | _absent_spus(h, spus)),
        align1.eq((d.table_addr[:lg] != 0 if lg else 0) | (d.bits_addr[:lg] != 0 if lg else 0)),
        t_end.eq(d.table_addr + codec.TABLE_BLOCK_BYTES),
        b_end.eq(d.bits_addr + (((d.bits_len + (bb - 1)) >> lg) << lg)),
    ]
    prod = registered_uproduct(m, d.out_h, d.out_w, width=24, platform=platform,
                               name="dd_p")
    # stage 2 -------------------------------------------------------------------------------
    field2, align2 = Signal(name="dd_field2"), Signal(name="dd_align2")
    t_hit = [Signal(name=f"dd_t_hit{i}") for i in range(N_WINDOWS)]
    b_hit = [Signal(name=f"dd_b_hit{i}") for i in range(N_WINDOWS)]
    m.d.sync += [field2.eq(field1), align2.eq(align1)]
    for i in range(N_WINDOWS):
        w = windows[i]
        ok = w.enable & w.read
        m.d.sync += [t_hit[i].eq(ok & (d.table_addr >= w.base) & (t_end <= w.limit)
                                 & ~t_end[32:].any()),
                     b_hit[i].eq(ok & (d.bits_addr >= w.base) & (b_end <= w.limit)
                                 & ~b_end[32:].any())]
    # stage 3 -------------------------------------------------------------------------------
    field, over = Signal(name="dd_field"), Signal(name="dd_over")
    align, outside = Signal(name="dd_align"), Signal(name="dd_outside")
    m.d.sync += [field.eq(field2), align.eq(align2),
                 over.eq(d.act_addr + prod > act_depth),
                 outside.eq(~Cat(*t_hit).any() | ~Cat(*b_hit).any())]
    return field, over, align, outside


class CommandProcessor(wiring.Component):
    """Descriptor fetch, dispatch, dependency tokens, error and reset handling.

    Members
    -------
    enable, ring_base, ring_size, ring_tail, watchdog : In
        From the register block. ``ring_size`` is in descriptors; ``watchdog`` in cycles
        without progress (0 disables it).
    windows : In(windows_layout)
        The DRAM windows (the DMA engine's): LOAD and STORE extents are checked against them
        at dispatch.
    soft_reset : In(1)
        Pulse: abort everything and return to idle.
    error_ack : In(1)
        Level: the driver has not yet acknowledged the last error while high... see
        ``error_pending``; the processor stays halted while ``error_pending`` is high.
    error_pending : In(1)
        The error interrupt bit as the register block holds it.
    ring_head, busy, err_code, err_addr, desc_done : Out
        To the register block.
    irq_done_set, irq_error_set : Out(1)
        Pulses that set the interrupt bits.
    flush : Out(1)
        High while the datapath (SPU) must be held in reset.
    dma_* :
        The DMA engine's command, data and status streams.
    spu_gemm : Out(stream.Signature(multicast_layout(ex_cmd_layout, spus)))
        GEMM and VOP commands (:data:`~.descriptors.ex_cmd_layout`: the body, ``vop`` set for
        a VOP) and the SPUs they go to, for a :class:`~.fanout.SpuFanout` with
        ``done=True``; ``spu_gemm_done`` (In, a stream) is its completion, one per command.
    spu_load : Out(stream.Signature(multicast_layout(word, spus)))
        A LOAD's DMA read words and the SPUs they go to, for a :class:`~.fanout.SpuFanout`.
    spu_load_start, spu_load_cmd : Out
        ``spu_load_start`` pulses in the cycle the DMA takes a LOAD's read command (the
        selected SPUs then start a load as ``spu_load_cmd`` says); its words follow on
        ``spu_load``.
    spu_dec : Out(stream.Signature(multicast_layout(act_write_layout, spus)))
        With a decoder (``config.jpeg_decoders``): a DECODE's ACT writes (one a pixel: word,
        row memory, 32 bytes) and the SPUs they go to, for a :class:`~.fanout.SpuFanout`.
    spu_store_start, spu_store_cmd : Out
        ``spu_store_start`` pulses in the cycle the DMA takes a STORE's write command; the
        SPU that ``spu_store_cmd`` selects then reads out its words for the DMA.

    The start pulses mark the transfer of the DMA command (they are not streams of their
    own): an SPU takes a start in any cycle, and it starts in the cycle the DMA takes the
    command, so its store words are there as soon as the DMA asks for them. A stream would
    need either a valid that waits for the DMA's ready, or a register that starts the SPU a
    cycle later.
    """

    def __init__(self, config: Config):
        self._config = config
        self._geom = g = SpuGeometry.of(config)
        word = data.StructLayout({"data": g.bus_bits, "last": 1})
        self._spus = spus = min(config.spus, MAX_SPUS)
        super().__init__({
            "enable": In(1), "ring_base": In(32), "ring_size": In(32), "ring_tail": In(32),
            "watchdog": In(32), "soft_reset": In(1), "error_pending": In(1),
            "windows": In(windows_layout),
            "ring_head": Out(32), "busy": Out(1), "err_code": Out(ErrorCode),
            "err_addr": Out(32), "desc_done": Out(32), "error": Out(1),
            "irq_done_set": Out(1), "irq_error_set": Out(1), "flush": Out(1),
            # DMA engine
            "dma_rd": Out(stream.Signature(dma_cmd_layout)),
            "dma_rd_data": In(stream.Signature(word)),
            "dma_rd_done": In(stream.Signature(dma_status_layout)),
            "dma_wr": Out(stream.Signature(dma_cmd_layout)),
            "dma_wr_done": In(stream.Signature(dma_status_layout)),
            "dma_abort": Out(1), "dma_idle": In(1),
            # SPUs (GEMM commands and load words through a SpuFanout)
            "spu_gemm": Out(stream.Signature(multicast_layout(ex_cmd_layout, spus))),
            "spu_gemm_done": In(stream.Signature(data.StructLayout({}))),
            "spu_load_start": Out(1), "spu_load_cmd": Out(spu_load_cmd(spus)),
            "spu_load": Out(stream.Signature(multicast_layout(word, spus))),
            "spu_store_start": Out(1), "spu_store_cmd": Out(spu_store_cmd(spus)),
            # the decoder's ACT writes (DECODE), for a SpuFanout
            **({"spu_dec": Out(stream.Signature(multicast_layout(act_write_layout, spus)))}
               if config.jpeg_decoders else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, g = self._config, self._geom
        bus_bytes = g.bus_bits // 8
        desc_words = DESC_BYTES // bus_bytes

        flush = Signal()       # datapath and queues held in reset
        m.d.comb += self.flush.eq(flush)
        fault_r = Signal()     # a fault is registered, the flush starts next cycle
        seen = Signal()        # some fault condition was true in the previous cycle
        stop = Signal()        # no new work: flushing, or about to
        m.d.comb += stop.eq(flush | fault_r | seen)
        halted = Signal()      # stopped after an error until acknowledged

        # -- fault reporting (first one wins) -----------------------------------------------
        fault = Signal()
        fault_code = Signal(ErrorCode)
        fault_addr = Signal(32)
        faults = []            # (condition, code, addr) in priority order

        # -- queues --------------------------------------------------------------------------
        entry = data.StructLayout({"desc": Descriptor, "addr": 32})
        qs = {}
        for name in ("ld", "ex", "st"):
            fifo = SyncFIFOBuffered(width=data.Layout.cast(entry).size, depth=QUEUE_DEPTH)
            m.submodules[f"{name}_queue"] = ResetInserter(flush)(fifo)
            qs[name] = fifo
        heads = {n: data.View(entry, q.r_data) for n, q in qs.items()}

        # -- tokens --------------------------------------------------------------------------
        tok = {n: Signal(TOKEN_BITS, name=f"tok_{n}") for n in ("ld2ex", "ex2ld", "ex2st", "st2ex")}
        inc = {n: Signal(name=f"inc_{n}") for n in tok}
        dec = {n: Signal(name=f"dec_{n}") for n in tok}
        # tok_nz[n] is "tok[n] != 0" kept as a register, so a queue's pop decision (which
        # loads a ~300-bit engine register) does not wait for a compare
        tok_nz = {n: Signal(name=f"tok_nz_{n}") for n in tok}
        for n in tok:
            with m.If(flush):
                m.d.sync += [tok[n].eq(0), tok_nz[n].eq(0)]
            with m.Elif(inc[n] & ~dec[n]):
                m.d.sync += [tok[n].eq(tok[n] + 1), tok_nz[n].eq(1)]
            with m.Elif(dec[n] & ~inc[n]):
                m.d.sync += [tok[n].eq(tok[n] - 1), tok_nz[n].eq(tok[n] != 1)]

        progress = Signal()    # something completed this cycle (watchdog)
        # descriptors finished: dispatcher (NOP/SYNC/COMPLETE), LOAD, GEMM and STORE can each
        # finish one in the same cycle, so each has its own counter and the total is their sum
        done_inc = [Signal(name=f"done_inc{i}") for i in range(4)]
        done_cnt = [Signal(32, name=f"done_cnt{i}") for i in range(4)]
        for i, (inc_k, cnt_k) in enumerate(zip(done_inc, done_cnt, strict=True)):
            # counted one cycle later: the end of the dispatch / engine logic enables one
            # flip-flop, not a 32-bit counter
            inc_r = Signal(name=f"done_inc{i}_r")
            m.d.sync += inc_r.eq(inc_k)
            with m.If(inc_r):
                m.d.sync += cnt_k.eq(cnt_k + 1)
        m.d.comb += self.desc_done.eq(sum(done_cnt)[:32])

        # -- read path ownership (descriptor fetch or LOAD) ----------------------------------
        rd_busy = Signal()
        rd_is_load = Signal()

        # -- fetch ----------------------------------------------------------------------------
        head = Signal(32)
        m.d.comb += self.ring_head.eq(head)
        desc = Signal(Descriptor)
        desc_addr = Signal(32)
        desc_valid = Signal()
        fetching = Signal()
        fetch_cnt = Signal(range(desc_words + 1))
        fetch_addr = Signal(32)
        m.d.comb += fetch_addr.eq(self.ring_base + (head << 5))
        # "the ring holds work" as a register (the 32-bit compare stays off the DMA command
        # path): one cycle late after a tail write; after a fetch moves the head, the fetched
        # descriptor blocks the next fetch for longer than that
        pending = Signal()
        m.d.sync += pending.eq(head != self.ring_tail)
        # a ring whose tail the head never meets, or a head outside the ring (registered, as
        # `pending`): the fetch is refused with BAD_RING instead of running stale slots
        bad_ring = Signal()
        m.d.sync += bad_ring.eq((self.ring_tail >= self.ring_size)
                                | (head >= self.ring_size))
        # a precise fault (docs/faults.md): found at fetch or dispatch, in program order; nothing
        # more is fetched or dispatched, and it is reported once everything before it is done
        pfault = Signal()
        pcode = Signal(ErrorCode)
        paddr = Signal(32)

        def precise(code, addr):
            m.d.sync += [pfault.eq(1), pcode.eq(code), paddr.eq(addr)]
        may_fetch = self.enable & ~halted & ~stop & ~pfault & ~desc_valid & ~fetching & pending
        can_fetch = may_fetch & ~rd_busy & ~bad_ring
        with m.If(may_fetch & bad_ring):
            precise(ErrorCode.BAD_RING, fetch_addr)

        # LOAD engine wants the read path (declared below, used here for arbitration)
        ld_req = Signal()
        ld_grant = Signal()
        fetch_start = Signal()
        m.d.comb += [fetch_start.eq(can_fetch & ~ld_req), ld_grant.eq(ld_req & ~rd_busy)]

        rd = self.dma_rd.payload
        with m.If(fetch_start):
            m.d.comb += [self.dma_rd.valid.eq(1), rd.addr.eq(fetch_addr), rd.rows.eq(1),
                         rd.row_bytes.eq(DESC_BYTES), rd.stride.eq(DESC_BYTES)]
            with m.If(self.dma_rd.ready):
                m.d.sync += [fetching.eq(1), rd_busy.eq(1), rd_is_load.eq(0), fetch_cnt.eq(0),
                             desc_addr.eq(fetch_addr)]
        # words of a fetch fill the descriptor register
        # cycles since the last word arrived: the dispatch checks' verdict is valid once this
        # reaches CHECK_STAGES
        age = Signal(range(CHECK_STAGES + 1))
        with m.If(fetching & self.dma_rd_data.valid):
            m.d.sync += age.eq(0)
        with m.Elif(age != CHECK_STAGES):
            m.d.sync += age.eq(age + 1)
        with m.If(fetching & self.dma_rd_data.valid):
            m.d.sync += [desc.as_value().eq(Cat(desc.as_value()[g.bus_bits:],
                                                self.dma_rd_data.payload.data)
                                            if desc_words > 1 else self.dma_rd_data.payload.data),
                         fetch_cnt.eq(fetch_cnt + 1)]
        # (not once a flush has started: it emptied the ring, head = tail, and a fetch that
        # ends in its first cycles must not move the head past the tail; the DECODE_ERROR
        # fault, raised while fetches go on, found this)
        with m.If(fetching & self.dma_rd_done.valid & ~flush):
            m.d.sync += [fetching.eq(0), rd_busy.eq(0)]
            with m.If(self.dma_rd_done.payload.code == DmaError.OK):
                m.d.sync += [desc_valid.eq(1),
                             head.eq(Mux(head + 1 >= self.ring_size, 0, head + 1))]
            with m.Else():
                precise(_dma_code(self.dma_rd_done.payload.code), desc_addr)

        # -- dispatch --------------------------------------------------------------------------
        op = desc.header.opcode
        hd = desc.header
        all_idle = Signal()
        consume = Signal()
        lg = (bus_bytes - 1).bit_length()
        (x_field, x_over, x_dma_bad, x_outside), (g_field, g_over) = _dispatch_checks(
            m, platform, desc=desc, windows=self.windows, geom=g, rows=cfg.rows, cols=cfg.cols,
            lg=lg, spus=self._spus, sparsities=cfg.sparsities)
        checked = Signal()
        m.d.comb += checked.eq(age == CHECK_STAGES)
        has_vec = bool(cfg.vec_max_row)
        if has_vec:
            v_field, v_over = _vop_checks(m, platform, desc=desc, spus=self._spus,
                                          act_depth=g.act_depth, max_row=cfg.vec_max_row,
                                          par_depth=g.par_depth, cols=cfg.cols,
                                          rows=cfg.rows, wgt_depth=g.wgt_depth)
        else:           # (no vector unit: a VOP is an unknown opcode)
            v_field = v_over = Const(0)
        has_codec = bool(cfg.jpeg_decoders)
        if has_codec:
            d_field, d_over, d_align, d_outside = _decode_checks(
                m, platform, desc=desc, windows=self.windows, spus=self._spus, rows=cfg.rows,
                act_depth=g.act_depth, lg=lg)
        else:           # (no decoder: a DECODE is an unknown opcode)
            d_field = d_over = d_align = d_outside = Const(0)
        # dependency tokens counted at dispatch, in program order: a wait needs a signal from a
        # descriptor dispatched before it (else it could only be met by a later one, which the
        # functional model, running in program order, cannot do), and no counter may pass
        # TOKEN_LIMIT. (waits, signals) of each opcode:
        tok_use = {Opcode.LOAD: ({"ex2ld": hd.wait_next}, {"ld2ex": hd.sig_next}),
                   Opcode.GEMM: ({"ld2ex": hd.wait_prev, "st2ex": hd.wait_next},
                                 {"ex2ld": hd.sig_prev, "ex2st": hd.sig_next}),
                   Opcode.STORE: ({"ex2st": hd.wait_prev}, {"st2ex": hd.sig_prev})}
        if has_vec:     # a VOP runs on the GEMM stage and takes its tokens as a GEMM does
            tok_use[Opcode.VOP] = tok_use[Opcode.GEMM]
        if has_codec:   # a DECODE runs on the LOAD stage and takes its tokens as a LOAD does
            tok_use[Opcode.DECODE] = tok_use[Opcode.LOAD]
        dtok = {n: Signal(TOKEN_BITS, name=f"dtok_{n}") for n in tok}
        dtok_nz = {n: Signal(name=f"dtok_nz_{n}") for n in tok}
        dtok_full = {n: Signal(name=f"dtok_full_{n}") for n in tok}
        tok_bad = Signal()
        # what the descriptor does to each counter once consumed: one more (``d_inc``) or one
        # less (``d_dec``; never both: no opcode waits and signals on one counter)
        d_inc = {n: Signal(name=f"dinc_{n}") for n in tok}
        d_dec = {n: Signal(name=f"ddec_{n}") for n in tok}
        # ``tok_bad``, ``d_inc`` and ``d_dec`` are registers: the counters move only when a
        # descriptor is consumed (or on a flush), and the next descriptor's verdict is read
        # CHECK_STAGES cycles after its last word arrived, so they describe it and the
        # settled counters by then. This cuts the loop counters -> verdict -> consume ->
        # counters (the ``fpga`` core's worst path once), and ``consume`` only enables the
        # counters' registers: their next values do not wait for it. (Only a ``checked``
        # descriptor moves them: a NOP, SYNC or COMPLETE may be consumed the cycle after its
        # last word, when these registers still describe the descriptor before it.)
        with m.Switch(op):
            for opcode, (waits, sigs) in tok_use.items():
                with m.Case(opcode.value):
                    m.d.sync += tok_bad.eq(
                        Cat(*(w & ~dtok_nz[n] for n, w in waits.items()),
                            *(sg & dtok_full[n] for n, sg in sigs.items())).any())
                    m.d.sync += [d_dec[n].eq(waits.get(n, 0)) for n in tok]
                    m.d.sync += [d_inc[n].eq(sigs.get(n, 0)) for n in tok]
            with m.Default():
                m.d.sync += [tok_bad.eq(0), *(d.eq(0) for d in (*d_inc.values(),
                                                               *d_dec.values()))]
        for n in tok:
            # the next count and its flags either way, formed from the count alone (no
            # compare after the choice): a count is at most TOKEN_LIMIT (a signal that would
            # pass it is refused), so one more is never 0, and one less passes the limit
            # only from above it
            new = Mux(d_inc[n], dtok[n] + 1, dtok[n] - 1)[:TOKEN_BITS]
            new_nz = Mux(d_inc[n], 1, dtok[n] != 1)
            new_full = Mux(d_inc[n], dtok[n] >= TOKEN_LIMIT - 1, dtok[n] >= TOKEN_LIMIT + 1)
            with m.If(flush):
                m.d.sync += [dtok[n].eq(0), dtok_nz[n].eq(0), dtok_full[n].eq(0)]
            with m.Elif(consume & checked & (d_inc[n] | d_dec[n])):
                m.d.sync += [dtok[n].eq(new), dtok_nz[n].eq(new_nz),
                             dtok_full[n].eq(new_full)]
        # the verdict for a LOAD, GEMM or STORE (checked), in the engines' order of checks
        v_code = Signal(ErrorCode)
        with m.If((op == Opcode.LOAD.value) | (op == Opcode.STORE.value)
                  | (op == Opcode.DECODE.value if has_codec else 0)):
            # a transfer, or a DECODE with its own checks' verdict (the same order)
            is_dec = op == Opcode.DECODE.value
            with m.If(Mux(is_dec, d_field, x_field)):
                m.d.comb += v_code.eq(ErrorCode.BAD_FIELD)
            with m.Elif(Mux(is_dec, d_over, x_over)):
                m.d.comb += v_code.eq(ErrorCode.SCRATCHPAD_OVERFLOW)
            with m.Elif(Mux(is_dec, d_align, x_dma_bad)):
                m.d.comb += v_code.eq(ErrorCode.BAD_FIELD)
            with m.Elif(Mux(is_dec, d_outside, x_outside)):
                m.d.comb += v_code.eq(ErrorCode.OUT_OF_WINDOW)
            with m.Elif(tok_bad):
                m.d.comb += v_code.eq(ErrorCode.TOKEN)
        with m.Else():           # a GEMM, or a VOP with its own checks' verdict
            is_vop = op == Opcode.VOP.value
            with m.If(Mux(is_vop, v_field, g_field)):
                m.d.comb += v_code.eq(ErrorCode.BAD_FIELD)
            with m.Elif(Mux(is_vop, v_over, g_over)):
                m.d.comb += v_code.eq(ErrorCode.SCRATCHPAD_OVERFLOW)
            with m.Elif(tok_bad):
                m.d.comb += v_code.eq(ErrorCode.TOKEN)
        v_ok = Signal()
        m.d.comb += v_ok.eq(v_code == ErrorCode.NONE)
        go = Signal()          # the dispatch register may act this cycle
        m.d.comb += go.eq(desc_valid & ~stop & ~pfault)
        engine_ops = {"ld": [Opcode.LOAD] + [Opcode.DECODE] * has_codec,
                      "ex": [Opcode.GEMM] + [Opcode.VOP] * has_vec, "st": [Opcode.STORE]}
        for name, opcodes in engine_ops.items():
            q = qs[name]
            m.d.comb += q.w_data.eq(Cat(desc.as_value(), desc_addr))
            with m.If(go & Cat(*(op == o.value for o in opcodes)).any() & checked):
                with m.If(~v_ok):
                    precise(v_code, desc_addr)
                with m.Elif(q.w_rdy):
                    m.d.comb += [q.w_en.eq(1), consume.eq(1)]
        with m.If(go):
            with m.Switch(op):
                with m.Case(Opcode.NOP.value):
                    m.d.comb += [consume.eq(1), progress.eq(1)]
                with m.Case(Opcode.SYNC.value):
                    with m.If(all_idle):
                        m.d.comb += [consume.eq(1), progress.eq(1)]
                with m.Case(Opcode.COMPLETE.value):
                    with m.If(all_idle):
                        m.d.comb += [consume.eq(1), progress.eq(1), self.irq_done_set.eq(1)]
                with m.Case(Opcode.LOAD.value, Opcode.GEMM.value, Opcode.STORE.value,
                            *([Opcode.VOP.value] * has_vec),
                            *([Opcode.DECODE.value] * has_codec)):
                    pass
                with m.Default():
                    precise(ErrorCode.UNKNOWN_OPCODE, desc_addr)
        # reported once everything dispatched before it has finished (an earlier descriptor's
        # bus fault, raised meanwhile, is reported instead)
        faults.append((pfault & all_idle, pcode, paddr))
        with m.If(consume):
            m.d.sync += desc_valid.eq(0)
        with m.If(consume & (op <= Opcode.STORE.value) & (op != Opcode.NOP.value)):
            pass
        with m.If(consume & ((op == Opcode.NOP.value) | (op == Opcode.SYNC.value)
                             | (op == Opcode.COMPLETE.value))):
            m.d.comb += done_inc[0].eq(1)

        def ready_tokens(h, prev, nxt):
            ok = Const(1)
            if prev:
                ok = ok & (~h.wait_prev | tok_nz[prev])
            if nxt:
                ok = ok & (~h.wait_next | tok_nz[nxt])
            return ok

        def take_tokens(h, prev, nxt):
            if prev:
                m.d.comb += dec[prev].eq(h.wait_prev)
            if nxt:
                m.d.comb += dec[nxt].eq(h.wait_next)

        def give_tokens(h, prev, nxt):
            if prev:
                m.d.comb += inc[prev].eq(h.sig_prev)
            if nxt:
                m.d.comb += inc[nxt].eq(h.sig_next)

        def take_entry(name, prev, nxt, reg, busy, check, may=None):
            """An idle engine takes the head of its queue once its tokens are there (and
            ``may``)."""
            h = heads[name].desc.header
            ok = ~busy & qs[name].r_rdy & ready_tokens(h, prev, nxt) & ~stop
            with m.If(ok if may is None else ok & may):
                m.d.comb += qs[name].r_en.eq(1)
                take_tokens(h, prev, nxt)
                m.d.sync += [reg.eq(qs[name].r_data), busy.eq(1), check.eq(1)]

        # -- LOAD engine -----------------------------------------------------------------------
        ld = Signal(entry)
        ld_busy = Signal()
        ld_check = Signal(3)
        ld_wait = Signal()
        # a DECODE released the LOAD stage once its bitstream was read; its last lanes are
        # still being written (Motion JPEG: the next DECODE's table block is read meanwhile).
        # Only a DECODE may follow it onto the stage until then, its bus fault waits for it,
        # and its own verdict comes after it (``DecodeEngine``); it ends (tokens, count) when
        # its last lane is written.
        dec_tail = Signal()
        ld_may = None
        if has_codec:
            ld_may = ~dec_tail | (heads["ld"].desc.header.opcode == Opcode.DECODE.value)
        take_entry("ld", None, "ex2ld", ld, ld_busy, ld_check, ld_may)
        lb = ld.desc.body.dma

        def spu_mask(h):
            """The mask bits of the SPUs there are (none of them set: all SPUs)."""
            return h.spu_mask[:self._spus]
        _, ld_fault_field, ld_fault_over, ld_ok = _transfer_checks(
            m, platform, name="ld", queue=qs["ld"], entry=ld, check=ld_check, lg=lg,
            bounds={t: (g.depth(t), g.bits(t) // 8) for t in Target}, spus=self._spus,
            geom=g)
        # a DECODE on the LOAD stage: checked once, at dispatch (the transfer checks here do
        # not apply to its body); it reads the table block, then (once the decoder took it)
        # the bitstream, through the read path, into the decoder (``_decode_engine``)
        ld_dec = Signal()
        if has_codec:
            m.d.comb += ld_dec.eq(ld.desc.header.opcode == Opcode.DECODE.value)
        with m.If(ld_ok & ~ld_dec):
            m.d.sync += ld_wait.eq(1)
        faults.append((ld_fault_field & ~ld_dec, ErrorCode.BAD_FIELD, ld.addr))
        faults.append((ld_fault_over & ~ld_dec, ErrorCode.SCRATCHPAD_OVERFLOW, ld.addr))
        ld_running = Signal()
        m.d.comb += ld_req.eq(ld_wait & ~ld_running)
        dec_bits = Signal()      # the DECODE's second transfer (the bitstream) is the one
        with m.If(ld_grant):
            m.d.comb += [self.dma_rd.valid.eq(1), rd.addr.eq(lb.dram_addr), rd.rows.eq(lb.rows),
                         rd.row_bytes.eq(lb.row_bytes), rd.stride.eq(lb.stride),
                         self.spu_load_cmd.mask.eq(spu_mask(ld.desc.header)),
                         self.spu_load_cmd.target.eq(lb.target),
                         self.spu_load_cmd.addr.eq(lb.sram_addr),
                         self.spu_load_cmd.fmt.eq(lb.fmt)]
            if has_codec:
                db = ld.desc.body.decode
                span = (((db.bits_len + (bus_bytes - 1)) >> lg) << lg)[:20]
                with m.If(ld_dec):
                    nbytes = Mux(dec_bits, span, codec.TABLE_BLOCK_BYTES)
                    m.d.comb += [rd.addr.eq(Mux(dec_bits, db.bits_addr, db.table_addr)),
                                 rd.rows.eq(1), rd.row_bytes.eq(nbytes), rd.stride.eq(nbytes)]
            with m.If(self.dma_rd.ready):
                m.d.comb += self.spu_load_start.eq(~ld_dec)
                m.d.sync += [ld_running.eq(1), rd_busy.eq(1), rd_is_load.eq(1)]
        ld_fault_bus = Signal()
        dec_wait_block = Signal()    # the block is read: wait for the decoder's verdict
        dec_wait_end = Signal()      # the bitstream is read: wait for the decoder's end
        with m.If(ld_running & self.dma_rd_done.valid & self.dma_rd_done.ready):
            m.d.sync += [ld_running.eq(0), ld_wait.eq(0), rd_busy.eq(0)]
            with m.If(self.dma_rd_done.payload.code == DmaError.OK):
                with m.If(ld_dec):
                    m.d.sync += [dec_wait_block.eq(~dec_bits), dec_wait_end.eq(dec_bits)]
                with m.Else():
                    m.d.sync += ld_busy.eq(0)
                    give_tokens(ld.desc.header, None, "ld2ex")
                    m.d.comb += [progress.eq(1), done_inc[1].eq(1)]
            with m.Else():
                m.d.sync += ld_busy.eq(0)
                m.d.comb += ld_fault_bus.eq(1)
        faults.append((ld_fault_bus, _dma_code(self.dma_rd_done.payload.code), ld.addr))
        dec_i_ready = Signal()       # the decoder takes the read word
        if has_codec:
            dec_fault = self._decode_engine(
                m, ld=ld, ld_dec=ld_dec, dec_go=ld_check[2] & ld_dec, ld_wait=ld_wait,
                ld_busy=ld_busy, dec_bits=dec_bits, dec_wait_block=dec_wait_block,
                dec_wait_end=dec_wait_end, rd_valid=self.dma_rd_data.valid & rd_is_load
                & rd_busy & ld_dec, dec_i_ready=dec_i_ready, progress=progress,
                done_inc=done_inc[1], give=lambda: give_tokens(ld.desc.header, None, "ld2ex"),
                mask=spu_mask(ld.desc.header), dec_tail=dec_tail, inc=inc["ld2ex"])
            faults.append((dec_fault, ErrorCode.DECODE_ERROR, ld.addr))
        # read data goes to the descriptor register, to the SPU or to the decoder
        m.d.comb += [
            self.spu_load.valid.eq(self.dma_rd_data.valid & rd_is_load & rd_busy & ~ld_dec),
            self.spu_load.payload.mask.eq(spu_mask(ld.desc.header)),
            self.spu_load.payload.item.eq(self.dma_rd_data.payload),
            self.dma_rd_data.ready.eq(Mux(rd_is_load, Mux(ld_dec, dec_i_ready,
                                                          self.spu_load.ready), 1)),
            # (a DECODE's bus fault waits for the lanes of the DECODE before it)
            self.dma_rd_done.ready.eq(~(rd_is_load & ld_dec & dec_tail
                                        & (self.dma_rd_done.payload.code != DmaError.OK))),
        ]

        # -- GEMM engine -----------------------------------------------------------------------
        ex = Signal(entry)
        ex_busy = Signal()
        ex_check = Signal(4)
        ex_issue = Signal()
        ex_run = Signal()
        take_entry("ex", "ld2ex", "st2ex", ex, ex_busy, ex_check)
        gb = ex.desc.body.gemm
        smask = sum(1 << (s.bit_length() - 1) for s in cfg.sparsities)
        # checks in four registered stages: 16 x 16 products, sums, compares, verdict. The
        # products' operands are registered with the entry (inside a DSP on the ECP5), the
        # products in the first check stage.
        gb_new = entry(qs["ex"].r_data).desc.body.gemm

        def ex_product(a, b, name):
            return registered_uproduct(m, a, b, width=32, platform=platform, name=name,
                                       en_in=qs["ex"].r_en, en_out=ex_check[0])
        p_act = ex_product(_act_rows(gb_new), _act_run(gb_new), "p_act")
        p_wgt = ex_product(gb_new.n_tiles, gb_new.banks, "p_wgt")
        p_out = ex_product(_out_step(gb_new, cfg.cols), gb_new.m_tiles, "p_out")
        need_act, need_out, need_par = Signal(33), Signal(40), Signal(17)
        ex_bad, ex_over = Signal(), Signal()
        # the weight words, wgt_addr + (p_wgt * 32 >> log2s), against the depth: as
        # p_wgt * 32 >= (depth - wgt_addr + 1) << log2s (the same test for whole numbers), with
        # the bound formed from the entry beside the product, so no shifter sits between the
        # product's DSP and the compare (10.1 ns on ulx3s / fpga as shift + add)
        wgt_room = g.wgt_depth + 1
        wgt_lim = Signal(wgt_room.bit_length() + 7)
        wgt_addr_over, wgt_over = Signal(), Signal()
        with m.If(ex_check[0]):
            m.d.sync += [need_par.eq(gb.par_addr + gb.n_tiles),
                         wgt_addr_over.eq(gb.wgt_addr > g.wgt_depth),
                         wgt_lim.eq((wgt_room - gb.wgt_addr)[:wgt_room.bit_length()]
                                    << gb.log2s),
                         ex_bad.eq((gb.log2s > 5) | ~(Const(smask, 6) >> gb.log2s)[0]
                                   | (gb.banks == 0) | (gb.m_tiles == 0) | (gb.n_tiles == 0)
                                   | _absent_spus(ex.desc.header, self._spus)
                                   | (gb.out_act & ~gb.mode)
                                   | (~gb.out_act & (gb.out_stride != 0)) | _bad_conv(gb))]
        with m.If(ex_check[1]):
            m.d.sync += [need_act.eq(gb.act_addr + p_act),
                         wgt_over.eq(wgt_addr_over | ((p_wgt << 5) >= wgt_lim)),
                         need_out.eq(_out_need(gb, p_out, cfg.rows, cfg.cols))]
        ex_alias = Signal()      # out_act: the words written overlap the words read
        with m.If(ex_check[2]):
            m.d.sync += [ex_over.eq((need_act > g.act_depth) | (wgt_over & ~gb.pool)
                                    | ((need_par > g.par_depth) & ~gb.pool)
                                    | (need_out > Mux(gb.out_act, g.act_depth, g.out_depth))
                                    | (gb.conv & (gb.pad_addr >= g.act_depth))),
                         ex_alias.eq(_alias(gb, need_act, need_out))]
        with m.If(ex_check.any()):   # never in the cycle that takes a new entry
            m.d.sync += ex_check.eq(ex_check << 1)
        # a VOP is checked once, at dispatch: the GEMM checks here do not apply to its body
        ex_vop = ex.desc.header.opcode == Opcode.VOP.value
        ex_fault_field, ex_fault_over, ex_ok = _verdict(
            m, "ex", ex_check[3], (ex_bad | ex_alias) & ~ex_vop, ex_over & ~ex_vop)
        with m.If(ex_ok):
            m.d.sync += ex_issue.eq(1)
        faults.append((ex_fault_field, ErrorCode.BAD_FIELD, ex.addr))
        faults.append((ex_fault_over, ErrorCode.SCRATCHPAD_OVERFLOW, ex.addr))
        m.d.comb += [self.spu_gemm.valid.eq(ex_issue),
                     self.spu_gemm.payload.mask.eq(spu_mask(ex.desc.header)),
                     self.spu_gemm.payload.item.body.eq(ex.desc.body),
                     self.spu_gemm.payload.item.vop.eq(ex_vop),
                     self.spu_gemm_done.ready.eq(ex_run)]
        with m.If(ex_issue & self.spu_gemm.ready):
            m.d.sync += [ex_issue.eq(0), ex_run.eq(1)]
        with m.If(ex_run & self.spu_gemm_done.valid):
            m.d.sync += [ex_run.eq(0), ex_busy.eq(0)]
            m.d.comb += done_inc[2].eq(1)
            give_tokens(ex.desc.header, "ex2ld", "ex2st")
            m.d.comb += progress.eq(1)

        # -- STORE engine ----------------------------------------------------------------------
        st = Signal(entry)
        st_busy = Signal()
        st_check = Signal(3)
        st_issue = Signal()
        st_run = Signal()
        take_entry("st", "ex2st", None, st, st_busy, st_check)
        sb = st.desc.body.dma
        st_beats, st_fault_field, st_fault_over, st_ok = _transfer_checks(
            m, platform, name="st", queue=qs["st"], entry=st, check=st_check, lg=lg,
            bounds={None: (g.out_depth, g.out_bits // 8)}, spus=self._spus, geom=g)
        with m.If(st_ok):
            m.d.sync += st_issue.eq(1)
        faults.append((st_fault_field, ErrorCode.BAD_FIELD, st.addr))
        faults.append((st_fault_over, ErrorCode.SCRATCHPAD_OVERFLOW, st.addr))
        wr = self.dma_wr.payload
        m.d.comb += [self.dma_wr.valid.eq(st_issue), wr.addr.eq(sb.dram_addr),
                     wr.rows.eq(sb.rows), wr.row_bytes.eq(sb.row_bytes), wr.stride.eq(sb.stride),
                     self.spu_store_cmd.mask.eq(spu_mask(st.desc.header)),
                     self.spu_store_cmd.addr.eq(sb.sram_addr),
                     self.spu_store_cmd.beats.eq(st_beats),
                     self.dma_wr_done.ready.eq(1)]
        with m.If(st_issue & self.dma_wr.ready):
            m.d.comb += self.spu_store_start.eq(1)
            m.d.sync += [st_issue.eq(0), st_run.eq(1)]
        st_fault_bus = Signal()
        with m.If(st_run & self.dma_wr_done.valid):
            m.d.sync += [st_run.eq(0), st_busy.eq(0)]
            with m.If(self.dma_wr_done.payload.code == DmaError.OK):
                give_tokens(st.desc.header, "st2ex", None)
                m.d.comb += [progress.eq(1), done_inc[3].eq(1)]
            with m.Else():
                m.d.comb += st_fault_bus.eq(1)
        faults.append((st_fault_bus, _dma_code(self.dma_wr_done.payload.code), st.addr))

        m.d.comb += all_idle.eq(~ld_busy & ~ex_busy & ~st_busy & ~qs["ld"].r_rdy
                                & ~qs["ex"].r_rdy & ~qs["st"].r_rdy & ~dec_tail)
        work = Signal()
        # (a pending precise fault is work: STATUS.busy stays up until it is reported)
        m.d.comb += [work.eq(desc_valid | fetching | pfault | ~all_idle),
                     self.busy.eq(work | flush)]

        # -- watchdog -----------------------------------------------------------------------------
        wd = Signal(32)
        wd_fire = Signal()
        # wd_over is "wd >= watchdog" for the value wd takes next: the 32-bit compare is off
        # the fault path and still exact
        wd_over = Signal()
        # the restart condition is registered (the watchdog counts one cycle late; it only
        # matters after `watchdog` cycles without progress)
        wd_clear = Signal()
        m.d.sync += wd_clear.eq(~work | progress | flush)
        with m.If(wd_clear | flush):
            m.d.sync += [wd.eq(0), wd_over.eq(0)]
        with m.Else():
            m.d.sync += [wd.eq(wd + 1),
                         wd_over.eq((self.watchdog != 0) & (wd + 1 >= self.watchdog))]
        m.d.comb += wd_fire.eq(wd_over & work)
        # the descriptor the watchdog blames, registered: it only fires after ``watchdog``
        # cycles without progress, so the value of the previous cycle is the same one
        stuck = Signal(32)
        m.d.sync += stuck.eq(
            Mux(ex_busy, ex.addr, Mux(qs["ex"].r_rdy, heads["ex"].addr,
            Mux(ld_busy, ld.addr, Mux(qs["ld"].r_rdy, heads["ld"].addr,
            Mux(st_busy, st.addr, Mux(qs["st"].r_rdy, heads["st"].addr, desc_addr)))))))
        faults.append((wd_fire, ErrorCode.WATCHDOG, stuck))

        # -- fault, flush, soft reset --------------------------------------------------------------
        # every fault source is registered (condition, code, address) before the priority
        # choice, so no source's logic shares a path with it; `seen` stops new work meanwhile
        m.d.sync += seen.eq(Cat(cond for cond, _, _ in faults).any() & ~flush)
        registered = []
        for i, (cond, code, addr) in enumerate(faults):
            cond_r = Signal(name=f"fault{i}_cond")
            addr_r = Signal(32, name=f"fault{i}_addr", reset_less=True)
            m.d.sync += [cond_r.eq(cond & ~flush), addr_r.eq(addr)]
            if not isinstance(code, ErrorCode):
                code_r = Signal(ErrorCode, name=f"fault{i}_code", reset_less=True)
                m.d.sync += code_r.eq(code)
                code = code_r
            registered.append((cond_r, code, addr_r))
        with m.If(~flush):
            for cond_r, code, addr_r in reversed(registered):
                with m.If(cond_r):
                    m.d.comb += [fault.eq(1), fault_code.eq(code), fault_addr.eq(addr_r)]
        m.d.comb += self.error.eq(halted)
        # the first fault is registered with its code and address, and acted on in the next
        # cycle: the priority choice among a dozen sources stays off the flush / STATUS paths
        # (an engine whose check failed does not advance in that cycle; the DMA abort drains
        # whatever the others start)
        fault_code_r = Signal(ErrorCode)
        fault_addr_r = Signal(32)
        with m.If(fault & ~fault_r):
            m.d.sync += [fault_r.eq(1), fault_code_r.eq(fault_code),
                         fault_addr_r.eq(fault_addr)]
        flushing = Signal()
        # the ring is emptied (head = tail) when the flush starts, and again by a soft reset
        # during it; a RING_TAIL written after that (a driver that has seen the error and
        # submits again) is kept and runs once the error is acknowledged
        with m.If((fault_r | self.soft_reset) & ~flushing):
            m.d.sync += [flushing.eq(1), flush.eq(1), fault_r.eq(0), head.eq(self.ring_tail)]
            with m.If(fault_r & ~self.soft_reset):
                m.d.sync += [self.err_code.eq(fault_code_r), self.err_addr.eq(fault_addr_r),
                             halted.eq(1)]
                m.d.comb += self.irq_error_set.eq(1)
            with m.Else():
                m.d.sync += [halted.eq(0), self.err_code.eq(ErrorCode.NONE)]
        m.d.comb += self.dma_abort.eq(flushing)
        with m.If(flushing):
            # no new work; in-flight bursts finish inside the DMA engine
            m.d.sync += [desc_valid.eq(0), fetching.eq(0), ld_busy.eq(0), ld_check.eq(0),
                         ld_wait.eq(0), ld_running.eq(0), ex_busy.eq(0), ex_check.eq(0),
                         ex_issue.eq(0), ex_run.eq(0), st_busy.eq(0), st_check.eq(0),
                         st_issue.eq(0), st_run.eq(0), pfault.eq(0), dec_bits.eq(0),
                         dec_wait_block.eq(0), dec_wait_end.eq(0), dec_tail.eq(0)]
            m.d.sync += fault_r.eq(0)
            # a soft reset during a fault's flush still returns the device to idle without an
            # error (the flush goes on until the DMA is idle)
            with m.If(self.soft_reset):
                m.d.sync += [halted.eq(0), self.err_code.eq(ErrorCode.NONE),
                             head.eq(self.ring_tail)]
            with m.If(self.dma_idle & ~self.soft_reset):
                m.d.sync += [flushing.eq(0), flush.eq(0), rd_busy.eq(0)]
        with m.If(halted & ~self.error_pending & ~flushing):
            m.d.sync += halted.eq(0)
        return m

    def _decode_engine(self, m, *, ld, ld_dec, dec_go, ld_wait, ld_busy, dec_bits,
                       dec_wait_block, dec_wait_end, rd_valid, dec_i_ready, progress, done_inc,
                       give, mask, dec_tail, inc):
        """The decoder (:class:`~..jpeg.engine.DecodeEngine`, held in reset with the datapath)
        and the DECODE's sequence on the LOAD stage: started by the verdict pulse ``dec_go``,
        the table block's transfer, the decoder's verdict on it, the bitstream's transfer, the
        decoder's end, or its release (``dec_tail``: the bitstream read, lanes still to write)
        and then the last lane. Returns the ``DECODE_ERROR`` pulse (a refused block or a
        corrupt stream: imprecise, found while the DECODE runs, as a bus fault is)."""
        g = self._geom
        m.submodules.decoder = eng = ResetInserter(self.flush)(
            DecodeEngine(bus_bits=g.bus_bits, max_width=self._config.jpeg_max_width))
        db = ld.desc.body.decode
        c = eng.config
        m.d.comb += [c.geometry.crop_x.eq(db.crop_x), c.geometry.crop_y.eq(db.crop_y),
                     c.geometry.crop_w.eq(db.crop_w), c.geometry.crop_h.eq(db.crop_h),
                     c.geometry.out_w.eq(db.out_w), c.geometry.out_h.eq(db.out_h),
                     c.act_addr.eq(db.act_addr), c.lane.eq(db.lane), c.bits_len.eq(db.bits_len),
                     eng.start.eq(dec_go)]
        with m.If(dec_go):
            m.d.sync += [ld_wait.eq(1), dec_bits.eq(0)]
        # read words: the block's, then the bitstream's
        for port, want in ((eng.i_block, ~dec_bits), (eng.i_bits, dec_bits)):
            m.d.comb += [port.valid.eq(rd_valid & want),
                         port.payload.eq(self.dma_rd_data.payload)]
        m.d.comb += dec_i_ready.eq(Mux(dec_bits, eng.i_bits.ready, eng.i_block.ready))
        # pixels out to the selected SPUs: the DECODE's whose scan runs (its mask kept from
        # its verdict on, as the next DECODE may be on the LOAD stage meanwhile)
        dec_mask = Signal.like(mask)
        tail_sig = Signal()      # the released DECODE signals ld2ex at its end
        m.d.comb += [self.spu_dec.valid.eq(eng.o_act.valid),
                     self.spu_dec.payload.mask.eq(dec_mask),
                     self.spu_dec.payload.item.eq(eng.o_act.payload),
                     eng.o_act.ready.eq(self.spu_dec.ready)]
        with m.If(eng.o_act.valid & eng.o_act.ready):
            m.d.comb += progress.eq(1)
        fault = Signal()
        with m.If(dec_wait_block):
            with m.If(eng.block_ok):
                m.d.sync += [dec_wait_block.eq(0), dec_bits.eq(1), ld_wait.eq(1),
                             dec_mask.eq(mask)]
            with m.Elif(eng.error):
                m.d.sync += [dec_wait_block.eq(0), ld_busy.eq(0)]
                m.d.comb += fault.eq(1)
        with m.If(dec_wait_end):
            with m.If(eng.done):
                m.d.sync += [dec_wait_end.eq(0), ld_busy.eq(0), dec_bits.eq(0)]
                give()
                m.d.comb += [progress.eq(1), done_inc.eq(1)]
            with m.Elif(eng.error):
                m.d.sync += [dec_wait_end.eq(0), ld_busy.eq(0)]
                m.d.comb += fault.eq(1)
            with m.Elif(eng.released & eng.back_busy):
                # the LOAD stage is free for the next DECODE; this one ends with its lanes
                m.d.sync += [dec_wait_end.eq(0), ld_busy.eq(0), dec_bits.eq(0),
                             dec_tail.eq(1), tail_sig.eq(ld.desc.header.sig_next)]
        with m.If(dec_tail & ~eng.back_busy):
            m.d.sync += dec_tail.eq(0)
            m.d.comb += [inc.eq(tail_sig), progress.eq(1), done_inc.eq(1)]
        return fault
