"""DECODE's table loader: a table block's bytes in, the JPEG decoder programmed (issue 23).

Reads the :data:`~s4accel.base.codec.TABLE_BLOCK_BYTES` bytes of a table block (the layout is
:mod:`s4accel.base.codec`'s) one a cycle and turns them into what
:class:`.decoder.JpegDecoder` takes: Huffman table writes (``o_table``: component ``c``'s DC
table as table ``c``, its AC table as ``4 + c``; per code length the entry ``LIMIT | OFFSET <<
17`` computed from the counts as :func:`.entropy.huffman_table_image` does, and the 256 symbol
bytes), quantizer writes (``o_qt``, zig-zag index ``k``), the decoder's ``config`` (scan and
image, the MCU count a product of the MCU columns and rows), the per-channel normalisation and
``grey``. It checks the block as :func:`s4accel.base.codec.parse_block` does (magic, version,
sampling code, width 1 .. ``max_width`` (the decoder's line buffers, at most
``codec.MAX_WIDTH``), height, shifts, and for the components the sampling uses the Huffman
counts: at most 256 symbols, no all-ones or overflowing code) and reports the verdict with
``done``: ``error`` then means ``DECODE_ERROR``. A block with an error is still read to
its end (the DMA transfer completes), with no further writes.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...base import codec
from ...base.jpeg import ZIGZAG
from .color import Sampling
from .decoder import decoder_config_layout
from .entropy import MAX_BLOCKS, table_write_layout
from .idct import qt_write_layout
from .post import norm_layout

__all__ = ["TableLoader"]

_MAGIC = int.from_bytes(codec.MAGIC, "little")
# natural index -> zig-zag index
_INV_ZZ = [0] * 64
for _k, _n in enumerate(ZIGZAG.tolist()):
    _INV_ZZ[_n] = _k
# block slots of each sampling code (component of each block in MCU order)
_SLOTS = {0: [0], 1: [0, 1, 2], 2: [0, 0, 1, 2], 3: [0, 0, 0, 0, 1, 2]}
# what a byte in the second stage is
_NONE, _QT, _COUNT, _SYMBOL = range(4)


class TableLoader(wiring.Component):
    """A table block's bytes in; decoder table writes, configuration and a verdict out.

    Members
    -------
    i_byte : In(stream.Signature(8))
    o_table : Out(stream.Signature(table_write_layout))
    o_qt : Out(stream.Signature(qt_write_layout))
    config : Out(decoder_config_layout)
    norm : Out(data.ArrayLayout(norm_layout, 3))
    grey : Out(1)
    start : In(1)
        Pulse: forget the last block.
    done, error : Out(1)
        ``done`` once the block's last byte is taken (until ``start``); ``error`` with it when
        the block is unusable.
    skip : Out(1)
        With ``word_bytes`` > 1 (the block arrives as bus words of that many bytes, the
        block's first byte first in a word): the byte at the head of ``i_byte`` and the rest of
        its word are bytes the decoder does not use (reserved bytes, a Huffman table's symbol
        slots past its count, the components a grey frame does not have, everything after an
        error), so the sender drops them in this cycle instead of sending them one a cycle;
        ``i_byte.ready`` is low meanwhile.
    """

    i_byte: In(stream.Signature(8))
    o_table: Out(stream.Signature(table_write_layout))
    o_qt: Out(stream.Signature(qt_write_layout))
    config: Out(decoder_config_layout)
    norm: Out(data.ArrayLayout(norm_layout, 3))
    grey: Out(1)
    start: In(1)
    done: Out(1)
    error: Out(1)
    skip: Out(1)

    def __init__(self, *, max_width: int = codec.MAX_WIDTH, word_bytes: int = 1):
        if not (isinstance(max_width, int) and 1 <= max_width <= codec.MAX_WIDTH):
            raise ValueError(f"max_width must be 1 .. {codec.MAX_WIDTH}, not {max_width!r}")
        if (not isinstance(word_bytes, int) or word_bytes < 1 or word_bytes & (word_bytes - 1)
                or codec.TABLE_BLOCK_BYTES % word_bytes):
            raise ValueError(f"word_bytes must be a power of two dividing the table block, "
                             f"not {word_bytes!r}")
        self._max_width, self._word_bytes = max_width, word_bytes
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        pos = Signal(range(codec.TABLE_BLOCK_BYTES + 1))
        b = self.i_byte.payload
        # two stages: a byte taken (its place in the block decoded, the Huffman code and count
        # carried on), then its checks and writes (``bv``)
        bv = Signal()
        free = (~self.o_table.valid | self.o_table.ready) & (~self.o_qt.valid | self.o_qt.ready)
        fire = bv & free
        taken_all = Signal()       # the block's last byte was taken
        skip = Signal()
        m.d.comb += [self.i_byte.ready.eq((~bv | fire) & ~taken_all & ~skip),
                     self.done.eq(taken_all & ~bv)]
        take = self.i_byte.valid & self.i_byte.ready
        m.d.sync += bv.eq(take | (bv & ~fire))
        with m.If(self.o_table.ready):
            m.d.sync += self.o_table.valid.eq(0)
        with m.If(self.o_qt.ready):
            m.d.sync += self.o_qt.valid.eq(0)

        err = Signal()
        magic = Signal(32)
        sampling = Signal(8)
        flags = Signal(8)
        width = Signal(16)
        height = Signal(16)
        restart = Signal(16)
        # the end of the components the sampling uses
        comps_end = Mux(sampling == 0, codec.COMP0 + codec.COMP_BYTES,
                        codec.COMP0 + 3 * codec.COMP_BYTES)
        lo = Signal(8)             # the low byte of a 16-bit field
        # Huffman state of the table being read
        code = Signal(18)
        count = Signal(10)         # symbols so far
        # where the symbols of the table being read end: its slots from there on are unused
        sym_end = Signal(range(codec.TABLE_BLOCK_BYTES + 1))
        cfg = self.config
        # the byte in the second stage: what it is, where it goes
        b_byte, b_lo = Signal(8), Signal(8)
        b_kind = Signal(2)         # _NONE, _QT, _COUNT, _SYMBOL
        b_comp = Signal(3)         # the quantizer's component, or the Huffman table
        b_k = Signal(6)
        b_len = Signal(4)          # code length - 1
        b_addr = Signal(8)
        b_code = Signal(18)        # the code and symbol count before this length's count
        b_count = Signal(10)

        code_b, count_b, sym_end_b = Signal(18), Signal(10), Signal.like(sym_end)
        m.d.comb += [code_b.eq(code + b), count_b.eq(count + b), sym_end_b.eq(sym_end + b)]
        with m.If(take):
            m.d.sync += [pos.eq(pos + 1), b_byte.eq(b), b_lo.eq(lo), b_kind.eq(_NONE)]
            with m.If(pos == codec.TABLE_BLOCK_BYTES - 1):
                m.d.sync += taken_all.eq(1)
            m.d.sync += lo.eq(b)
            # -- header ------------------------------------------------------------------------
            with m.If(pos < 4):
                m.d.sync += magic.eq(Cat(magic[8:], b))
            with m.If((pos == 4) & ((b != codec.VERSION) | (magic != _MAGIC))):
                m.d.sync += err.eq(1)          # (magic is complete when the version comes)
            with m.If(pos == 5):
                m.d.sync += sampling.eq(b)
                with m.If(b > 3):
                    m.d.sync += err.eq(1)
            with m.If(pos == 6):
                m.d.sync += flags.eq(b)
            with m.If(pos == 9):
                w = Cat(lo, b)
                m.d.sync += width.eq(w)
                with m.If((w == 0) | (w > self._max_width)):
                    m.d.sync += err.eq(1)
            with m.If(pos == 11):
                h = Cat(lo, b)
                m.d.sync += height.eq(h)
                with m.If(h == 0):
                    m.d.sync += err.eq(1)
            with m.If(pos == 13):
                m.d.sync += restart.eq(Cat(lo, b))
            for c in range(3):
                at = 16 + 8 * c
                n = self.norm[c]
                with m.If(pos == at + 1):
                    m.d.sync += n.offset.eq(Cat(lo, b))
                with m.If(pos == at + 3):
                    m.d.sync += n.mult.eq(Cat(lo, b))
                with m.If(pos == at + 4):
                    m.d.sync += n.shift.eq(b)
                    with m.If(b > 31):
                        m.d.sync += err.eq(1)
            # -- components: where the byte is (comparisons of ``pos`` with constants) -------
            for c in range(3):
                base = codec.COMP0 + codec.COMP_BYTES * c
                used = (sampling != 0) if c else Const(1)
                here = (pos >= base) & (pos < base + codec.COMP_BYTES) & used
                with m.If(here & (pos < base + 128) & pos[0]):        # a quantizer value
                    nat = (pos[:7] - base % 128)[1:7]
                    m.d.sync += [b_kind.eq(_QT), b_comp.eq(c), b_k.eq(Array(_INV_ZZ)[nat])]
                for t, tbase in ((0, 128), (1, 400)):
                    at = base + tbase
                    with m.If(used & (pos >= at) & (pos < at + 16)):   # the count of length L
                        # (the sums run beside the place's decoding, which only picks one:
                        # the table's first count starts from 0; at any later count,
                        # ``sym_end`` is the table's ``at + 16 + count``)
                        first = pos == at
                        m.d.sync += [b_kind.eq(_COUNT), b_comp.eq(4 * t + c),
                                     b_len.eq(pos[:4] - at % 16),
                                     b_code.eq(Mux(first, 0, code)),
                                     b_count.eq(Mux(first, 0, count)),
                                     code.eq(Mux(first, b, code_b) << 1),
                                     count.eq(Mux(first, b, count_b)),
                                     sym_end.eq(Mux(first, at + 16 + b, sym_end_b))]
                    with m.If(used & (pos >= at + 16) & (pos < at + 272)):   # a symbol
                        m.d.sync += [b_kind.eq(_SYMBOL), b_comp.eq(4 * t + c),
                                     b_addr.eq(pos[:8] - (at + 16) % 256)]

        # -- the byte's checks and writes ----------------------------------------------------------
        with m.If(fire & ~err):
            with m.Switch(b_kind):
                with m.Case(_QT):
                    m.d.sync += [self.o_qt.valid.eq(1), self.o_qt.payload.comp.eq(b_comp),
                                 self.o_qt.payload.k.eq(b_k),
                                 self.o_qt.payload.data.eq(Cat(b_lo, b_byte))]
                with m.Case(_COUNT):
                    # b_code + b_byte and b_count + b_byte: the first stage's sums, in
                    # ``code`` (shifted left once) and ``count`` until the next byte is taken
                    # (no adder here; ``new`` < 2 ** 17 while no error was found)
                    new = code[1:]
                    # a code longer than its length (``new >= 2 ** L``) or too many symbols
                    over = (b_byte != 0) & ((new & ~((Const(2, 18) << b_len) - 1)) != 0)
                    with m.If(over | (count > 256)):
                        m.d.sync += err.eq(1)
                    limit = new        # a length without codes: the first code it would have
                    offset = Mux(b_byte != 0, (b_count - b_code)[:8], 0)
                    m.d.sync += [self.o_table.valid.eq(1), self.o_table.payload.table.eq(b_comp),
                                 self.o_table.payload.addr.eq(256 + b_len),
                                 self.o_table.payload.data.eq(limit[:17] | (offset << 17))]
                with m.Case(_SYMBOL):
                    m.d.sync += [self.o_table.valid.eq(1), self.o_table.payload.table.eq(b_comp),
                                 self.o_table.payload.addr.eq(b_addr),
                                 self.o_table.payload.data.eq(b_byte)]

        # -- configuration (stable once done) ---------------------------------------------------
        sc = cfg.scan
        slots = Array(Const(len(_SLOTS[s]), 4) for s in range(4))
        mcu_w = Mux(sampling >= 2, 16, 8)
        mcu_h = Mux(sampling == 3, 16, 8)
        mcols = Signal(16)
        mrows = Signal(16)
        # registered, then their product (the header is read long before the block's end)
        m.d.sync += [mcols.eq((width + mcu_w - 1) >> Mux(sampling >= 2, 4, 3)),
                     mrows.eq((height + mcu_h - 1) >> Mux(sampling == 3, 4, 3))]
        mcus = Signal(32)
        m.d.sync += mcus.eq(mcols * mrows)
        m.d.comb += [sc.mcus.eq(mcus), sc.blocks.eq(slots[sampling[:2]]),
                     sc.restart.eq(restart)]
        for i in range(MAX_BLOCKS):
            m.d.comb += sc.comp[i].eq(Array(Const(_SLOTS[s][i] if i < len(_SLOTS[s]) else 0, 2)
                                            for s in range(4))[sampling[:2]])
        for c in range(3):
            m.d.comb += [sc.dc[c].eq(c), sc.ac[c].eq(c)]
        m.d.comb += [cfg.image.sampling.eq(Mux(sampling == 0, Sampling.GREY,
                                           Mux(sampling == 1, Sampling.S444,
                                           Mux(sampling == 2, Sampling.S422, Sampling.S420)))),
                     cfg.image.width.eq(width), cfg.image.height.eq(height),
                     cfg.image.ycc.eq((sampling != 0) & flags[0]),
                     self.grey.eq(sampling == 0), self.error.eq(err & self.done)]

        # -- skipping unused bytes a word at a time ---------------------------------------------
        nb = self._word_bytes
        if nb > 1:
            n = codec.TABLE_BLOCK_BYTES
            # ``pos + 1`` and the end of pos's word, ``(pos | (nb - 1)) + 1``, kept in registers
            # with ``pos`` (so the compares below start from flip-flops, not adders)
            pos1 = Signal(range(n + 2))
            word_end = Signal(range(n + nb + 1))

            def unused(p, se):
                # the byte at ``p`` starts or lies in an unused run that goes to the end of its
                # word at least: reserved bytes, absent components, a symbol slot past its
                # table's count (``se``, set with the table's counts)
                u = ((p >= 40) & (p < codec.COMP0)) | (p >= comps_end)
                for c in range(3):
                    for tbase in (128, 400):
                        at = codec.COMP0 + codec.COMP_BYTES * c + tbase
                        past = ((p >= at + 16) & (p < at + 272) & (p >= se) & (p < comps_end))
                        u |= past & ((p | (nb - 1)) < at + 272)
                return u

            # ``unused(pos, sym_end)`` in a register (the skip decision is then a flip-flop and
            # an error, not the compares): computed for the place a take or a skip moves to.
            # A take changes ``sym_end`` only at a count byte, whose next place is a symbol
            # slot only for the last count (length 16): there the registered ``sym_end`` lacks
            # that count, so a first slot past it is unused only if the count is 0. (The
            # sampling, read at byte 5, is stable long before byte 40, where it first matters.)
            last_count = Const(0)
            for c in range(3):
                for tbase in (128, 400):
                    last_count |= pos == codec.COMP0 + codec.COMP_BYTES * c + tbase + 15
            unused_r = Signal()
            with m.If(skip):
                m.d.sync += [unused_r.eq(unused(word_end, sym_end)), pos1.eq(word_end + 1),
                             word_end.eq(word_end + nb)]
            with m.Elif(take):
                m.d.sync += [unused_r.eq(unused(pos1, sym_end) & ~(last_count & (b != 0))),
                             pos1.eq(pos1 + 1),
                             word_end.eq((pos1 | (nb - 1)) + 1)]
            m.d.comb += [skip.eq(self.i_byte.valid & ~taken_all & (err | unused_r)),
                         self.skip.eq(skip)]
            with m.If(skip):
                m.d.sync += pos.eq(word_end)
                with m.If(word_end == n):
                    m.d.sync += taken_all.eq(1)
            with m.If(self.start):
                m.d.sync += [unused_r.eq(0), pos1.eq(1), word_end.eq(nb)]

        with m.If(self.start):
            m.d.sync += [pos.eq(0), taken_all.eq(0), err.eq(0), code.eq(0), count.eq(0), bv.eq(0),
                         sym_end.eq(codec.TABLE_BLOCK_BYTES),
                         self.o_table.valid.eq(0), self.o_qt.valid.eq(0)]
        return m
