"""Reusable property sets, written in Amaranth: AXI4 manager, AXI4-Lite subordinate and stream
producer rules.

Each checker is a plain function that adds ``Assert`` s (what the block under test promises)
and ``Assume`` s (what its neighbour promises) to a formal wrapper's module. Their coverage
follows ZipCPU's wb2axip checkers (``faxi_master`` / ``faxil_slave``): valid held until ready
and the payload stable meanwhile, nothing valid in the cycle after reset, outstanding bursts
counted per channel (no response without a request, response ordering with one ID), WLAST on
the last beat of each burst and only there, RLAST on the last read beat.

Past values are kept in reset-less registers next to a ``past_valid`` flag, since Amaranth 0.5
has no ``Past``; the counters of the checkers are in the ``sync`` domain and reset with the
block under test.
"""

from amaranth.hdl import Array, Assert, Assume, Cat, Module, Mux, ResetSignal, Signal

__all__ = ["Past", "stream_producer", "stream_consumer_env", "axi4_manager", "axi4lite_subordinate",
           "axi4lite_manager"]


class Past:
    """``past(expr)``: the value of ``expr`` in the previous cycle (valid when ``valid``),
    ``was_reset``: the reset was high in the previous cycle."""

    def __init__(self, m: Module):
        self._m = m
        self.valid = Signal(name="past_valid", reset_less=True)
        m.d.sync += self.valid.eq(1)
        self.rst = self(ResetSignal())
        # a check of "stable since the previous cycle" applies when there is a previous cycle
        # and it was not a reset cycle
        self.ok = Signal(name="past_ok")
        m.d.comb += self.ok.eq(self.valid & ~self.rst)

    def __call__(self, expr, name=None):
        expr = Cat(expr) if not hasattr(expr, "shape") else expr
        reg = Signal(len(Cat(expr)), name=name, reset_less=True)
        self._m.d.sync += reg.eq(expr)
        return reg


def _skip(*args, **kwargs):
    return None


def _stable(m, past, valid, ready, payload, check, what, *, src_loc_at=0):
    """``valid & ~ready`` in one cycle: ``valid`` again and ``payload`` unchanged in the next.
    (The checks carry the source line ``src_loc_at`` frames above the caller, so that a
    failure names the stream.)"""
    if check is _skip:
        return
    was_waiting = past(valid & ~ready)
    before = past(Cat(*payload))
    m.d.comb += check(~(past.ok & was_waiting) | valid, f"{what}: valid dropped before ready",
                      src_loc_at=1 + src_loc_at)
    m.d.comb += check(~(past.ok & was_waiting) | (Cat(*payload) == before),
                      f"{what}: payload changed while valid and not ready",
                      src_loc_at=1 + src_loc_at)


def stream_producer(m, past, s, what, *, check=Assert, src_loc_at=0):
    """Stream rules for a producer (``check=Assume`` for an environment's producer):
    valid stays up until the transfer, the payload is stable meanwhile."""
    _stable(m, past, s.valid, s.ready, [s.payload], check, what, src_loc_at=1 + src_loc_at)


def stream_consumer_env(m, past, s, what):
    """The environment's producer into ``s`` obeys the stream rules (assumptions)."""
    stream_producer(m, past, s, what, check=Assume, src_loc_at=1)


def _add(m, statements):
    m.d.comb += [s for s in statements if s is not None]


class _Queue:
    """A shadow queue of burst lengths (``depth`` a power of two) with free-running pointers."""

    def __init__(self, m, name, depth, width):
        self.bits = depth.bit_length() - 1
        self.mem = Array(Signal(width, name=f"{name}_q{i}") for i in range(depth))
        self.wp = Signal(self.bits + 1, name=f"{name}_wp")
        self.rp = Signal(self.bits + 1, name=f"{name}_rp")
        self.count = Signal(self.bits + 1, name=f"{name}_count")
        self._m = m
        m.d.comb += self.count.eq(self.wp - self.rp)

    def push(self, en, value):
        with self._m.If(en):
            self._m.d.sync += [self.mem[self.wp[:self.bits]].eq(value), self.wp.eq(self.wp + 1)]

    def head(self, offset=0):
        return self.mem[(self.rp + offset)[:self.bits]]

    def pop(self, en):
        with self._m.If(en):
            self._m.d.sync += self.rp.eq(self.rp + 1)


def axi4_manager(m, past, bus, *, max_outstanding, checks=("read", "write"), name="axi"):
    """AXI4 rules for a manager port ``bus`` (an ``AXI4.Signature`` port of the block under
    test), with the subordinate's side assumed.

    Asserted (``checks`` selects ``"read"`` and / or ``"write"``): AR / AW / W valid held
    until ready with a stable payload; no valid in the cycle after a reset; at most
    ``max_outstanding`` bursts in flight per direction; on W, WLAST exactly on beat ``AWLEN``
    of each burst (W never runs ahead of its burst's address: the W of a burst is offered only
    once its AW is, which these managers promise). Assumed: R / B valid held until ready with a
    stable payload; no R beat without an outstanding read burst and RLAST exactly on its last
    beat; no B response before that burst's AW and last W beat. Returns the count of
    outstanding read and write bursts."""
    depth = 8
    assert max_outstanding < depth
    rd, wr = "read" in checks, "write" in checks

    def chk(on):
        # a direction not checked is not assumed either: its outputs stay unconstrained
        return Assert if on else _skip

    ar_hs = bus.arvalid & bus.arready
    r_hs = bus.rvalid & bus.rready
    aw_hs = bus.awvalid & bus.awready
    w_hs = bus.wvalid & bus.wready
    b_hs = bus.bvalid & bus.bready

    # -- read ---------------------------------------------------------------------------------
    _stable(m, past, bus.arvalid, bus.arready,
            [bus.araddr, bus.arlen, bus.arsize, bus.arburst, bus.arid, bus.arprot, bus.arcache],
            chk(rd), f"{name} AR")
    _stable(m, past, bus.rvalid, bus.rready, [bus.rdata, bus.rresp, bus.rlast, bus.rid],
            Assume, f"{name} R")
    arq = _Queue(m, f"{name}_ar", depth, 8)
    arq.push(ar_hs, bus.arlen)
    rbeat = Signal(8, name=f"{name}_rbeat")
    r_end = r_hs & bus.rlast
    arq.pop(r_end)
    with m.If(r_hs):
        m.d.sync += rbeat.eq(Mux(bus.rlast, 0, rbeat + 1))
    _add(m, [
        Assume(~bus.rvalid | (arq.count != 0), f"{name}: no R beat without a read burst"),
        Assume(~bus.rvalid | (bus.rlast == (rbeat == arq.head())), f"{name}: RLAST placement"),
        Assume(~bus.rvalid | (bus.rid == 0), f"{name}: RID of the request"),
        chk(rd)(arq.count <= max_outstanding, f"{name}: too many read bursts outstanding"),
    ])
    # -- write --------------------------------------------------------------------------------
    _stable(m, past, bus.awvalid, bus.awready,
            [bus.awaddr, bus.awlen, bus.awsize, bus.awburst, bus.awid, bus.awprot, bus.awcache],
            chk(wr), f"{name} AW")
    _stable(m, past, bus.wvalid, bus.wready, [bus.wdata, bus.wstrb, bus.wlast], chk(wr),
            f"{name} W")
    _stable(m, past, bus.bvalid, bus.bready, [bus.bresp, bus.bid], Assume, f"{name} B")
    awq = _Queue(m, f"{name}_aw", depth, 8)     # AW taken, B not yet
    awq.push(aw_hs, bus.awlen)
    n_wl = Signal(awq.bits + 1, name=f"{name}_wlast_count")  # bursts whose W is complete
    wbeat = Signal(8, name=f"{name}_wbeat")
    w_end = w_hs & bus.wlast
    with m.If(w_hs):
        m.d.sync += wbeat.eq(Mux(bus.wlast, 0, wbeat + 1))
    with m.If(w_end):
        m.d.sync += n_wl.eq(n_wl + 1)
    awq.pop(b_hs)
    # bursts whose W is complete and whose B has not come: n_wl - awq.rp
    w_done = Signal(awq.bits + 1, name=f"{name}_w_done")
    m.d.comb += w_done.eq(n_wl - awq.rp)
    # the burst the W channel is on: awq.rp + w_done; its AW taken if that is below wp
    w_has_aw = Signal(name=f"{name}_w_has_aw")
    m.d.comb += w_has_aw.eq(w_done < awq.count)
    w_len = Mux(w_has_aw, awq.head(w_done), bus.awlen)
    _add(m, [
        chk(wr)(~bus.wvalid | w_has_aw | bus.awvalid,
                f"{name}: W offered before its burst's address"),
        chk(wr)(~bus.wvalid | (bus.wlast == (wbeat == w_len)), f"{name}: WLAST placement"),
        chk(wr)(awq.count <= max_outstanding, f"{name}: too many write bursts outstanding"),
        chk(wr)(w_done <= awq.count + 1, f"{name}: W ahead of AW by more than a burst"),
        Assume(~bus.bvalid | ((awq.count != 0) & (w_done != 0)),
               f"{name}: no B before the burst's address and last beat"),
        Assume(~bus.bvalid | (bus.bid == 0), f"{name}: BID of the request"),
    ])
    # -- reset --------------------------------------------------------------------------------
    after_reset = past.valid & past.rst
    if rd:
        m.d.comb += Assert(~after_reset | ~bus.arvalid, f"{name}: ARVALID after reset")
    if wr:
        m.d.comb += Assert(~after_reset | ~(bus.awvalid | bus.wvalid),
                           f"{name}: AWVALID / WVALID after reset")
    m.d.comb += Assume(~after_reset | ~(bus.rvalid | bus.bvalid), f"{name}: R / B after reset")
    return arq.count, awq.count


def _axil_counts(m, name, bus):
    aw_out = Signal(2, name=f"{name}_aw_out")
    w_out = Signal(2, name=f"{name}_w_out")
    ar_out = Signal(2, name=f"{name}_ar_out")
    aw_hs = bus.awvalid & bus.awready
    w_hs = bus.wvalid & bus.wready
    b_hs = bus.bvalid & bus.bready
    ar_hs = bus.arvalid & bus.arready
    r_hs = bus.rvalid & bus.rready
    m.d.sync += [aw_out.eq(aw_out + aw_hs - b_hs), w_out.eq(w_out + w_hs - b_hs),
                 ar_out.eq(ar_out + ar_hs - r_hs)]
    return aw_out, w_out, ar_out


def _axil_rules(m, past, bus, name, *, requests, responses):
    """The AXI4-Lite rules both sides share: AW / W / AR (``requests``: Assert on a manager,
    Assume on a subordinate) and B / R (``responses``: the other one) held until ready with a
    stable payload; a response only to a request taken, none just after reset. Returns the
    outstanding counts (AW, W, AR)."""
    aw_out, w_out, ar_out = _axil_counts(m, name, bus)
    _stable(m, past, bus.awvalid, bus.awready, [bus.awaddr, bus.awprot], requests, f"{name} AW")
    _stable(m, past, bus.wvalid, bus.wready, [bus.wdata, bus.wstrb], requests, f"{name} W")
    _stable(m, past, bus.arvalid, bus.arready, [bus.araddr, bus.arprot], requests, f"{name} AR")
    _stable(m, past, bus.bvalid, bus.bready, [bus.bresp], responses, f"{name} B")
    _stable(m, past, bus.rvalid, bus.rready, [bus.rdata, bus.rresp], responses, f"{name} R")
    after_reset = past.valid & past.rst
    m.d.comb += [
        responses(~bus.bvalid | ((aw_out != 0) & (w_out != 0)), f"{name}: B without AW and W"),
        responses(~bus.rvalid | (ar_out != 0), f"{name}: R without AR"),
        responses(~after_reset | ~(bus.bvalid | bus.rvalid), f"{name}: B / R after reset"),
    ]
    return aw_out, w_out, ar_out


def axi4lite_subordinate(m, past, bus, *, name="axil", one_outstanding=True):
    """AXI4-Lite rules for a subordinate port (the host's side assumed), as ``faxil_slave``.

    Asserted: B and R valid held until ready with a stable response and data; one response per
    request (no B without an AW and a W taken, no R without an AR taken); nothing valid after
    reset. With ``one_outstanding`` (this CSR block's promise) each of AW, W and AR is not
    ready while one is held, which also makes the counts a k-inductive invariant."""
    aw_out, w_out, ar_out = _axil_rules(m, past, bus, name, requests=Assume, responses=Assert)
    if one_outstanding:
        m.d.comb += [
            Assert(aw_out <= 1, f"{name}: more than one write address held"),
            Assert(w_out <= 1, f"{name}: more than one write data held"),
            Assert(ar_out <= 1, f"{name}: more than one read held"),
            Assert(bus.awready | (aw_out == 1), f"{name}: AW not ready with none held"),
            Assert(bus.wready | (w_out == 1), f"{name}: W not ready with none held"),
            Assert(bus.arready | (ar_out == 1), f"{name}: AR not ready with none held"),
            Assert(~bus.awready | (aw_out == 0), f"{name}: AW ready while one is held"),
            Assert(~bus.wready | (w_out == 0), f"{name}: W ready while one is held"),
            Assert(~bus.arready | (ar_out == 0), f"{name}: AR ready while one is held"),
        ]
    return aw_out, w_out, ar_out


def axi4lite_manager(m, past, bus, *, name="axil"):
    """AXI4-Lite rules for a manager port (the subordinate's side assumed), as
    ``faxil_master``: AW, W, AR valid held until ready with a stable payload, none after reset;
    the subordinate answers only what was asked, holding its response until taken."""
    aw_out, w_out, ar_out = _axil_rules(m, past, bus, name, requests=Assert, responses=Assume)
    after_reset = past.valid & past.rst
    m.d.comb += [
        Assert(~after_reset | ~(bus.awvalid | bus.wvalid | bus.arvalid),
               f"{name}: valid after reset"),
        Assert((aw_out <= 1) & (w_out <= 1) & (ar_out <= 1), f"{name}: more than one request"),
    ]
    return aw_out, w_out, ar_out
