"""One multiplier lane of the sparse tensor core."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...config import BANK
from .dsp import registered_product

__all__ = ["Lane", "LANE_LATENCY"]

#: Cycles from a beat at a lane's inputs to its product being in the accumulator register.
LANE_LATENCY = 3


class Lane(wiring.Component):
    """Select, multiply and accumulate one stored weight per cycle.

    A free-running three-stage pipeline (there is no stall input: the tensor core only feeds
    bubbles, so no enable has to reach every register of the array):

    1. select ``window[index]`` (the 32:1 mux, registered so it never sits in the multiplier's
       timing path) and register the weight;
    2. multiply (int8 x int8 -> int16, registered);
    3. accumulate into the int32 accumulator (``first`` restarts it from zero).

    Members
    -------
    window : In(unsigned(256))
        The 32 int8 activations of the current bank, element ``i`` at bits ``8*i``.
    index : In(5), weight : In(signed(8))
        The stored weight of this cycle and its position in the bank.
    valid, first, last : In(1)
        The beat is real / starts a tile / ends a tile.
    o_acc : Out(signed(32))
        The accumulator register (wraps at 32 bits).
    o_done : Out(1)
        ``o_acc`` holds a finished tile's sum in this cycle. It is there for exactly this cycle
        when the next tile follows back to back.
    o_pending : Out(1)
        A valid beat is in the accumulate stage.
    """

    window: In(unsigned(8 * BANK))
    index: In(5)
    weight: In(signed(8))
    valid: In(1)
    first: In(1)
    last: In(1)
    o_acc: Out(signed(32))
    o_done: Out(1)
    o_pending: Out(1)

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(32), reset_less=True)
        v1 = Signal(3)  # valid, first, last
        v2 = Signal(3)

        # stages 1 and 2: the selected activation and the weight registered, then their
        # product registered (on the ECP5 these are the DSP block's own registers)
        prod2 = registered_product(m, self.window.word_select(self.index, 8).as_signed(),
                                   self.weight, width=16, platform=platform, name="prod2")
        m.d.sync += [
            v1.eq(self.valid | (self.first << 1) | (self.last << 2)),
            v2.eq(v1),
            self.o_done.eq(v2[0] & v2[2]),
        ]
        with m.If(v2[0]):
            m.d.sync += acc.eq(Mux(v2[1], 0, acc) + prod2)

        m.d.comb += [self.o_acc.eq(acc), self.o_pending.eq(v2[0])]
        return m
