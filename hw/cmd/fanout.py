"""Multicast of a stream to the SPUs a descriptor's ``spu_mask`` selects."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SpuFanout", "multicast_layout", "spu_select"]


def spu_select(mask):
    """The outputs (SPUs) ``mask`` selects: its bits, or all ``len(mask)`` of them if it is 0."""
    return Mux(mask == 0, (1 << len(mask)) - 1, mask)


def multicast_layout(shape, outputs):
    """The payload of a :class:`SpuFanout`'s input: ``mask`` (bit k: output k; 0: all of
    them) and the ``item`` every selected output receives."""
    return data.StructLayout({"mask": outputs, "item": shape})


class SpuFanout(wiring.Component):
    """One stream in, ``outputs`` streams out: each item goes to the outputs its mask selects.

    An item is offered to every selected output at once (``o[k].valid``, ``o[k].payload``)
    and stays offered to an output until that output takes it; outputs take it each in their
    own time (an SPU may need several cycles per word, as LUT loads do). The item leaves ``i``
    in the cycle its last selected output takes it, so an output that has taken it sees the
    next item no earlier than the slowest one. ``o[k].valid`` depends on ``i.valid``,
    ``i.payload.mask`` and registers only, never on a ready; ``i.ready`` depends on the
    outputs' readies. Every output that is ready when an item arrives takes it in that cycle:
    with all selected outputs ready, the item passes in zero cycles, as a plain wire would.

    With ``done=True`` the block also reports each item's completion: output ``k`` pulses
    ``done[k]`` when it has finished the work of the item it took, and ``o_done`` carries one
    transfer per item once every output it went to has done so (from the cycle of the last
    ``done`` pulse, which needs no register, and held until taken). It then takes one item at
    a time: the next item is neither offered nor taken until ``o_done`` has been taken.

    Reset empties the block (an item half delivered is forgotten); hold it in reset with the
    outputs' consumers.

    Members
    -------
    i : In(stream.Signature(multicast_layout(shape, outputs)))
        Items and their output masks.
    o : Out(stream.Signature(shape)).array(outputs)
        One stream per output.
    done : In(outputs)
        With ``done=True``: pulses, output ``k`` has finished its item.
    o_done : Out(stream.Signature(data.StructLayout({})))
        With ``done=True``: one transfer per completed item.
    """

    def __init__(self, shape, outputs, *, done=False):
        if not isinstance(outputs, int) or outputs < 1:
            raise ValueError(f"outputs must be a positive integer, not {outputs!r}")
        self._shape = shape
        self._outputs = outputs
        self._done = bool(done)
        members = {
            "i": In(stream.Signature(multicast_layout(shape, outputs))),
            "o": Out(stream.Signature(shape)).array(outputs),
        }
        if done:
            members["done"] = In(outputs)
            members["o_done"] = Out(stream.Signature(data.StructLayout({})))
        super().__init__(members)

    @property
    def shape(self):
        return self._shape

    @property
    def outputs(self):
        return self._outputs

    def elaborate(self, platform):
        m = Module()
        n = self._outputs
        mask = self.i.payload.mask
        sel = Signal(n)            # the outputs this item goes to
        m.d.comb += sel.eq(spu_select(mask))
        taken = Signal(n)          # outputs that already took the current item
        took = Signal(n)           # outputs taking it this cycle
        offer = Signal()
        if self._done:
            sent = Signal()        # an item went out, its completion is not yet taken
            m.d.comb += offer.eq(self.i.valid & ~sent)
        else:
            m.d.comb += offer.eq(self.i.valid)
        for k in range(n):
            o = self.o[k]
            m.d.comb += [o.valid.eq(offer & sel[k] & ~taken[k]),
                         o.payload.eq(self.i.payload.item),
                         took[k].eq(o.valid & o.ready)]
        last = Signal()            # every selected output has it now
        m.d.comb += [last.eq((~sel | taken | took).all()),
                     self.i.ready.eq(offer & last)]
        with m.If(offer & last):
            m.d.sync += taken.eq(0)
        with m.Elif(offer):
            m.d.sync += taken.eq(taken | took)

        if self._done:
            running = Signal(n)    # outputs that took an item and have not reported done
            m.d.sync += running.eq((running & ~self.done) | took)
            m.d.comb += self.o_done.valid.eq(sent & ~(running & ~self.done).any())
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += sent.eq(1)
            with m.Elif(self.o_done.valid & self.o_done.ready):
                m.d.sync += sent.eq(0)
        return m
