"""A register slice for valid/ready streams."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegSlice"]


class RegSlice(wiring.Component):
    """Two-entry register slice: every signal it drives is a flip-flop.

    ``i.ready`` is "the skid entry is empty" and ``o.valid`` / ``o.payload`` are registers, so
    no combinational path runs through the slice in either direction; it costs one cycle of
    latency and keeps full throughput. The wide payload registers are enabled only by
    ``o.ready`` and the slice's own state, never by ``i.valid``. ``clear`` empties it.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    clear : In(1)
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
                          "clear": In(1)})

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self._shape, reset_less=True)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~skid_valid):
            m.d.sync += skid.eq(self.i.payload)        # captured while empty, valid or not
        with m.If(~self.o.valid | self.o.ready):
            m.d.sync += [self.o.payload.eq(Mux(skid_valid, skid, self.i.payload)),
                         self.o.valid.eq(skid_valid | self.i.valid), skid_valid.eq(0)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += skid_valid.eq(1)
        with m.If(self.clear):
            m.d.sync += [self.o.valid.eq(0), skid_valid.eq(0)]
        return m
