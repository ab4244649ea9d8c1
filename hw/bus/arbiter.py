"""Two AXI4 managers sharing one AXI4 subordinate."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4

__all__ = ["AxiArbiter"]

_AR = ("arid", "araddr", "arlen", "arsize", "arburst", "arprot", "arcache")
_AW = ("awid", "awaddr", "awlen", "awsize", "awburst", "awprot", "awcache")
_W = ("wdata", "wstrb", "wlast")
_R = ("rid", "rdata", "rresp", "rlast")
_B = ("bid", "bresp")


class AxiArbiter(wiring.Component):
    """Two AXI4 managers -> one AXI4 subordinate, one whole transaction at a time.

    A grant covers one transaction: AR up to the R beat with ``rlast``, or AW, the W beats up
    to ``wlast`` and B. Managers are granted round robin; a manager with both AR and AW valid
    gets the kind it did not get last time. IDs pass through unchanged (only one transaction is
    ever in flight, so responses need no routing by ID). W is forwarded only after its AW, as a
    subordinate may require; AXI managers must not wait for WREADY before raising AWVALID, so
    this cannot deadlock. Every transaction costs one arbitration cycle.

    Members
    -------
    mgr0, mgr1 : In(AXI4.Signature(addr_width, data_width, id_width))
        The managers.
    sub : Out(AXI4.Signature(addr_width, data_width, id_width))
        The shared subordinate.
    grant : Out(2)
        One-hot: the manager that holds the subordinate (0 between transactions).
    """

    def __init__(self, *, addr_width=32, data_width=64, id_width=4):
        sig = AXI4.Signature(addr_width=addr_width, data_width=data_width, id_width=id_width)
        self._sig = sig
        super().__init__({"mgr0": In(sig), "mgr1": In(sig), "sub": Out(sig), "grant": Out(2)})

    @property
    def bus_signature(self):
        return self._sig

    def elaborate(self, platform):
        m = Module()
        mgrs, sub = (self.mgr0, self.mgr1), self.sub
        sel = Signal()           # the granted manager
        last = Signal()          # manager granted last, for round robin
        last_read = Signal(2)    # per manager: its last grant was a read

        def pick(name):
            return Mux(sel, getattr(mgrs[1], name), getattr(mgrs[0], name))

        # payloads always follow the selected manager / go to both; only handshakes are gated
        for name in _AR + _AW + _W:
            m.d.comb += getattr(sub, name).eq(pick(name))
        for mgr in mgrs:
            for name in _R + _B:
                m.d.comb += getattr(mgr, name).eq(getattr(sub, name))

        req = [mgr.arvalid | mgr.awvalid for mgr in mgrs]
        who = Signal()           # the manager to grant next
        ar, aw = Signal(), Signal()
        m.d.comb += [who.eq(Mux(req[0] & req[1], ~last, req[1])),
                     ar.eq(Mux(who, mgrs[1].arvalid, mgrs[0].arvalid)),
                     aw.eq(Mux(who, mgrs[1].awvalid, mgrs[0].awvalid))]
        read = ar & ~(aw & last_read.bit_select(who, 1))
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(req[0] | req[1]):
                    m.d.sync += [sel.eq(who), last.eq(who),
                                 last_read.bit_select(who, 1).eq(read)]
                    with m.If(read):
                        m.next = "AR"
                    with m.Else():
                        m.next = "AW"
            with m.State("AR"):
                with m.If(sub.arvalid & sub.arready):
                    m.next = "R"
            with m.State("R"):
                with m.If(sub.rvalid & sub.rready & sub.rlast):
                    m.next = "IDLE"
            with m.State("AW"):
                with m.If(sub.awvalid & sub.awready):
                    m.next = "W"
            with m.State("W"):
                with m.If(sub.wvalid & sub.wready & sub.wlast):
                    m.next = "B"
            with m.State("B"):
                with m.If(sub.bvalid & sub.bready):
                    m.next = "IDLE"

        # handshakes as plain expressions of the state
        phase = {name: fsm.ongoing(name) for name in ("AR", "R", "AW", "W", "B")}
        for valid, ready, ph in (("arvalid", "arready", "AR"), ("awvalid", "awready", "AW"),
                                 ("wvalid", "wready", "W")):
            m.d.comb += getattr(sub, valid).eq(pick(valid) & phase[ph])
            for i, mgr in enumerate(mgrs):
                m.d.comb += getattr(mgr, ready).eq(getattr(sub, ready) & phase[ph] & (sel == i))
        for valid, ready, ph in (("rvalid", "rready", "R"), ("bvalid", "bready", "B")):
            m.d.comb += getattr(sub, ready).eq(pick(ready) & phase[ph])
            for i, mgr in enumerate(mgrs):
                m.d.comb += getattr(mgr, valid).eq(getattr(sub, valid) & phase[ph] & (sel == i))
        m.d.comb += self.grant.eq(Mux(fsm.ongoing("IDLE"), 0, Mux(sel, 0b10, 0b01)))
        return m
