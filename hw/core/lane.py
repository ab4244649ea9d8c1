"""One multiplier lane of the sparse tensor core."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...config import BANK

__all__ = ["Lane", "LANE_LATENCY"]

#: Cycles from a beat entering a lane to its product reaching the accumulator.
LANE_LATENCY = 3


class Lane(wiring.Component):
    """Select, multiply and accumulate one stored weight per cycle.

    A three-stage pipeline that advances when ``en`` is high (the whole array stalls together):

    1. select ``window[index]`` (the 32:1 mux, registered so it never sits in the multiplier's
       timing path) and register the weight;
    2. multiply (int8 x int8 -> int16, registered);
    3. accumulate into the int32 accumulator (``first`` restarts it from zero).

    Members
    -------
    en : In(1)
        Pipeline advance.
    window : In(unsigned(256))
        The 32 int8 activations of the current bank, element ``i`` at bits ``8*i``.
    index : In(5), weight : In(signed(8))
        The stored weight of this cycle and its position in the bank.
    valid, first, last : In(1)
        The beat is real / starts a tile / ends a tile.
    o_done : Out(1)
        The beat ending a tile is in the accumulate stage; ``o_sum`` is the tile's result.
        It is taken at the next advancing clock edge.
    o_sum : Out(signed(32))
        Accumulator plus the product in the accumulate stage (wraps at 32 bits).
    o_pending : Out(1)
        The accumulate stage holds a valid beat.
    """

    en: In(1)
    window: In(unsigned(8 * BANK))
    index: In(5)
    weight: In(signed(8))
    valid: In(1)
    first: In(1)
    last: In(1)
    o_done: Out(1)
    o_sum: Out(signed(32))
    o_pending: Out(1)

    def elaborate(self, platform):
        m = Module()
        act1 = Signal(signed(8))
        wgt1 = Signal(signed(8))
        prod2 = Signal(signed(16))
        acc = Signal(signed(32))
        v1 = Signal(3)  # valid, first, last
        v2 = Signal(3)

        with m.If(self.en):
            m.d.sync += [
                act1.eq(self.window.word_select(self.index, 8).as_signed()),
                wgt1.eq(self.weight),
                v1.eq(self.valid | (self.first << 1) | (self.last << 2)),
                prod2.eq(act1 * wgt1),
                v2.eq(v1),
            ]
            with m.If(v2[0]):
                m.d.sync += acc.eq(self.o_sum)

        m.d.comb += [
            self.o_sum.eq(Mux(v2[1], 0, acc) + prod2),
            self.o_pending.eq(v2[0]),
            self.o_done.eq(v2[0] & v2[2]),
        ]
        return m
