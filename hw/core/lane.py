"""One multiplier lane of the sparse tensor core."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...base.config import BANK
from .dsp import registered_product
from .lutmux import word_select

__all__ = ["Lane", "LANE_LATENCY"]

#: Cycles from a beat at a lane's inputs to its product being in the accumulator register.
LANE_LATENCY = 4


class Lane(wiring.Component):
    """Select, multiply and accumulate one stored weight per cycle.

    A free-running four-stage pipeline (there is no stall input: the tensor core only feeds
    bubbles, so no enable has to reach every register of the array):

    1. select ``window[index]`` (the 32:1 mux, registered next to it) and register the weight;
    2. the multiplier's operand registers;
    3. the product (int8 x int8 -> int16, registered);
    4. accumulate into the int32 accumulator (``first`` restarts it from zero).

    Stages 2 and 3 are the ECP5 DSP block's own registers in an ECP5 build (``hw/core/dsp.py``),
    so the select's LUTs and the DSP are a register apart on both sides.

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
        v3 = Signal(3)

        # stage 1: the selected activation and the weight, in fabric registers
        act1 = Signal(signed(8), reset_less=True)
        wgt1 = Signal(signed(8), reset_less=True)
        sel = word_select(m, self.window, self.index, 8, platform=platform, name="sel")
        m.d.sync += [act1.eq(sel.as_signed()),
                     wgt1.eq(self.weight)]
        # stages 2 and 3: operand registers, then the product (the DSP's own on the ECP5)
        prod3 = registered_product(m, act1, wgt1, width=16, platform=platform, name="prod3")
        m.d.sync += [
            v1.eq(self.valid | (self.first << 1) | (self.last << 2)),
            v2.eq(v1),
            v3.eq(v2),
            self.o_done.eq(v3[0] & v3[2]),
        ]
        with m.If(v3[0]):
            m.d.sync += acc.eq(Mux(v3[1], 0, acc) + prod3)

        m.d.comb += [self.o_acc.eq(acc), self.o_pending.eq(v3[0])]
        return m
