"""A register slice for valid/ready streams."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegSlice", "SkidSlice", "AxiSlice"]


class _StreamSlice(wiring.Component):
    """A stream of ``shape`` in (``i``) and out (``o``), and ``clear``."""

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
                          "clear": In(1)})


class RegSlice(_StreamSlice):
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


class SkidSlice(_StreamSlice):
    """A skid register that cuts only the ready path, with no latency.

    ``i.ready`` is a flip-flop ("the skid entry is empty"), so the consumer's ready reaches
    nothing upstream but that flip-flop; ``o.valid`` is ``i.valid | skid_valid`` and
    ``o.payload`` a 2:1 mux of the skid register and ``i.payload``, one LUT from registers
    when the producer's valid and payload are registers. A word the consumer does not take
    as it arrives waits in the skid register while the producer (stalled by ``i.ready``)
    holds the next one; full throughput, order kept. Use it where the producer's handshake
    logic (counters, read enables) must not wait on a far-away consumer's ready and a cycle of
    latency would cost; :class:`RegSlice` cuts both directions for one cycle. ``clear``
    empties the skid entry.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    clear : In(1)
    """

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self._shape, reset_less=True)
        skid_valid = Signal()
        m.d.comb += [self.i.ready.eq(~skid_valid),
                     self.o.valid.eq(skid_valid | self.i.valid),
                     self.o.payload.eq(Mux(skid_valid, skid, self.i.payload))]
        with m.If(~skid_valid):
            m.d.sync += [skid.eq(self.i.payload),          # captured while empty
                         skid_valid.eq(self.i.valid & ~self.o.ready)]
        with m.Elif(self.o.ready):
            m.d.sync += skid_valid.eq(0)
        with m.If(self.clear):
            m.d.sync += skid_valid.eq(0)
        return m


_CHANNELS = {   # channel: (payload members, True when it runs from the manager to the subordinate)
    "aw": (("awid", "awaddr", "awlen", "awsize", "awburst", "awprot", "awcache"), True),
    "w": (("wdata", "wstrb", "wlast"), True),
    "b": (("bid", "bresp"), False),
    "ar": (("arid", "araddr", "arlen", "arsize", "arburst", "arprot", "arcache"), True),
    "r": (("rid", "rdata", "rresp", "rlast"), False),
}


class AxiSlice(wiring.Component):
    """An AXI4 register slice: one :class:`RegSlice` on each of the five channels.

    Every signal it drives on either side is a flip-flop, so no combinational path crosses it
    (an arbiter's or a subordinate's handshake logic stays out of the manager's timing paths).
    Each channel costs one cycle of latency and keeps full throughput; channel order and the
    AXI rules are unchanged (each channel is a FIFO).

    Members
    -------
    mgr : In(signature)
        Faces the manager.
    sub : Out(signature)
        Faces the subordinate.
    """

    def __init__(self, signature):
        self._sig = signature
        super().__init__({"mgr": In(signature), "sub": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        for ch, (names, forward) in _CHANNELS.items():
            src, dst = (self.mgr, self.sub) if forward else (self.sub, self.mgr)
            width = sum(len(getattr(src, n)) for n in names)
            m.submodules[ch] = s = RegSlice(width)
            m.d.comb += [s.i.valid.eq(getattr(src, f"{ch}valid")),
                         getattr(src, f"{ch}ready").eq(s.i.ready),
                         getattr(dst, f"{ch}valid").eq(s.o.valid),
                         s.o.ready.eq(getattr(dst, f"{ch}ready")),
                         s.i.payload.eq(Cat(*(getattr(src, n) for n in names))),
                         Cat(*(getattr(dst, n) for n in names)).eq(s.o.payload)]
        return m
