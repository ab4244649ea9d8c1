"""Packed weight loads: the DMA read stream of a ``LoadFormat.PACKED`` or ``VALUES`` LOAD ->
weight scratchpad words.

A packed LOAD's bytes (all its rows, in order) are one little-endian bit stream of weight
words, bit 0 of the first byte first (:func:`~s4accel.sw.layout.wgt_packed_image` writes it):

- ``PACKED``: per word ``13 * cols`` bits, the ``cols`` value bytes (channel 0 first), then the
  ``cols`` 5-bit bank indices (channel 0 in the low bits). 1.625 bytes per stored weight.
- ``VALUES`` (s = 1, where every bank keeps all 32 entries): per word the ``cols`` value bytes
  only; the index of every channel is the word's entry, its position from the LOAD's first word
  modulo 32 (so such a LOAD starts at entry 0 of a bank). 1 byte per stored weight.

The LOAD writes every whole word of the stream, ``floor(rows * row_bytes * 8 / word_bits)``
words from ``sram_addr`` on; bits after the last whole word (the padding to the bus width) are
dropped. Each word is written as the scratchpad holds it (``cols`` x value byte, index byte
with the index zero-extended), so nothing downstream of the load path knows the format.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..cmd.descriptors import LoadFormat
from ..core.lutmux import shift_units

__all__ = ["WgtUnpack", "packed_word_bits"]


def packed_word_bits(fmt, cols):
    """Bits of one weight word in the packed stream of a LOAD with format ``fmt``
    (``PACKED`` or ``VALUES``; a ``ValueError`` for others)."""
    fmt = LoadFormat(fmt)
    if fmt == LoadFormat.PACKED:
        return 13 * cols
    if fmt == LoadFormat.VALUES:
        return 8 * cols
    raise ValueError(f"not a packed weight format: {fmt.name}")


class WgtUnpack(wiring.Component):
    """Bit-stream gearbox from bus words to weight scratchpad words, one word a cycle.

    A bus word is taken (``i.ready``) in the cycle its last bits go into a word or into the
    residue (fewer bits than a word), never earlier: the load is done, as for a raw load, when
    its last bus word is taken, and the last scratchpad word is written the cycle after.

    Members
    -------
    start : In(1)
        Pulse: a packed load begins (``fmt`` sampled); the residue and entry count clear.
    fmt : In(2)
        ``LoadFormat.PACKED`` or ``VALUES`` (others: the unpacker is not used).
    i : In(stream.Signature(bus_bits))
        The load's bus words.
    emit : Out(1)
        A word is produced this cycle (the word address advances).
    o_valid, o_word : Out
        Registered: ``o_word`` (``cols * 16`` bits, the scratchpad word) is to be written this
        cycle, one cycle after its ``emit``.
    """

    def __init__(self, *, cols: int, bus_bits: int):
        if cols < 1 or cols & (cols - 1):
            raise ValueError(f"cols must be a positive power of two, not {cols}")
        if bus_bits < 8 or bus_bits & (bus_bits - 1):
            raise ValueError(f"bus_bits must be a power of two of at least 8, not {bus_bits}")
        self._cols, self._bus_bits = cols, bus_bits
        super().__init__({
            "start": In(1),
            "fmt": In(2),
            "i": In(stream.Signature(bus_bits)),
            "emit": Out(1),
            "o_valid": Out(1),
            "o_word": Out(cols * 16),
        })

    @property
    def cols(self):
        return self._cols

    @property
    def bus_bits(self):
        return self._bus_bits

    def elaborate(self, platform):
        m = Module()
        C, W = self._cols, self._bus_bits
        wp, wv = packed_word_bits(LoadFormat.PACKED, C), packed_word_bits(LoadFormat.VALUES, C)
        # every word size and the bus width are multiples of g bits (13C, 8C and W with C and
        # W powers of two), so every position in the stream is: positions are counted in units
        # of g, and the shifts below move whole units (log2(g) fewer multiplexer levels each)
        g = min(C, W)
        fmt = Signal(2)
        packed = fmt == LoadFormat.PACKED.value
        res = Signal(wp)                            # residue: res_n (< a word) low bits
        res_n = Signal(range(wp // g))              # in units of g bits, as pos and avail
        pos = Signal(range(W // g))                 # units of the current bus word used
        entry = Signal(5)
        wbits = Mux(packed, wp // g, wv // g)

        # the stream from here: the residue, then the bus word from unit ``pos``. A residue
        # and a used part of the bus word never coexist (a bus word is taken whenever a residue
        # is left), so the two shifts are alternatives side by side, not a chain
        cat = Signal(wp + W)
        bus_r = shift_units(m, self.i.payload, pos, g, W, platform=platform, name="sr")
        bus_l = shift_units(m, self.i.payload, res_n, g, wp + W, left=True, platform=platform,
                            name="sl")
        m.d.comb += cat.eq(Mux(pos != 0, bus_r, res | bus_l))
        avail = Signal(range((wp + W) // g + 1))
        m.d.comb += avail.eq(res_n + W // g - pos)
        after = Signal(wp + W)                      # the stream after this cycle's word
        m.d.comb += after.eq(Mux(packed, cat >> wp, cat >> wv))
        left = Signal(range((wp + W) // g + 1))
        m.d.comb += left.eq(avail - wbits)

        word = Signal(C * 16)
        for c in range(C):
            idx = Mux(packed, cat[wv + 5 * c:wv + 5 * c + 5], entry)
            m.d.comb += word[16 * c:16 * c + 16].eq(Cat(cat[8 * c:8 * c + 8], idx, Const(0, 3)))
        m.d.sync += self.o_valid.eq(self.emit)
        with m.If(self.emit):
            m.d.sync += [self.o_word.eq(word), entry.eq(entry + 1)]

        with m.If(self.i.valid):
            with m.If(avail >= wbits):
                m.d.comb += self.emit.eq(1)
                with m.If(left < wbits):            # what is left of this bus word: residue
                    m.d.comb += self.i.ready.eq(1)
                    m.d.sync += [res.eq(after), res_n.eq(left), pos.eq(0)]
                with m.Else():                      # another whole word in this bus word
                    m.d.sync += [res.eq(0), res_n.eq(0), pos.eq(W // g - left)]
            with m.Else():                          # bus narrower than a word: gather
                m.d.comb += self.i.ready.eq(1)
                m.d.sync += [res.eq(cat), res_n.eq(avail), pos.eq(0)]
        with m.If(self.start):
            m.d.sync += [fmt.eq(self.fmt), res.eq(0), res_n.eq(0), pos.eq(0), entry.eq(0)]
        return m
