"""The on-chip L2 buffer: SRAM in the DMA's address space, between the DMA and the DRAM port.

``Config.l2_kib`` KiB at :data:`~s4accel.base.config.L2_BASE` (aligned to its size). The
router sits on the DMA's AXI4 manager port: a burst whose address falls in the L2 is served
by the SRAM inside the chip, any other goes on to DRAM unchanged. So LOAD and STORE
descriptors reach the L2 exactly as they reach DRAM (same fields, same access windows, same
checks): a tensor the compiler places there never leaves the chip, and with several SPUs a
layer split by output channel gathers its input from it (each SPU STOREs its channels, one
multicast LOAD reads them all back).

Ordering: the DMA keeps up to four bursts outstanding per direction, all with ID 0, and AXI
returns same-ID responses in order. The router records the target of every accepted burst in
order (``rq`` for reads; ``wq`` for write data, ``bq`` for write responses) and passes each
response channel from the target at the head only, so the two sources never reorder. The L2's
read engine runs ahead into a small FIFO of beats (one beat a cycle, a burst starting in the
cycle the previous one's last beat is read), which the R channel drains when the L2 is at the
head. Write data is written as it arrives; a burst's response waits in ``lb`` until its last
beat is in. The L2 always answers OKAY. Bursts never cross a 4 KiB boundary (the DMA cuts
them there) and the L2 is at least 4 KiB and aligned to its size, so a burst lies wholly in
the L2 or wholly outside it.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...base.config import L2_BASE
from .axi import AXI4

__all__ = ["L2Router", "ORDER_DEPTH"]

#: Bursts per direction the router keeps track of (the DMA issues at most four).
ORDER_DEPTH = 8
#: Read beats the L2 runs ahead of its R channel.
_AHEAD = 4


class L2Router(wiring.Component):
    """AXI4 ``up`` (from the DMA) to ``down`` (DRAM), serving ``[base, base + kib KiB)`` from an
    SRAM of its own.

    Members
    -------
    up : In(AXI4.Signature(...))
        Subordinate port facing the DMA.
    down : Out(AXI4.Signature(...))
        Manager port to DRAM: every burst outside the L2, unchanged.
    """

    def __init__(self, *, kib, data_width, addr_width=32, id_width=4, base=L2_BASE):
        nbytes = kib * 1024
        if kib < 4 or kib & (kib - 1):
            raise ValueError(f"the L2 must be a power of two of at least 4 KiB, not {kib} KiB")
        if base % nbytes:
            raise ValueError(f"the L2's base {base:#x} must be aligned to its size {nbytes:#x}")
        self._kib, self._base, self._dw = kib, base, data_width
        sig = AXI4.Signature(addr_width=addr_width, data_width=data_width, id_width=id_width)
        super().__init__({"up": In(sig), "down": Out(sig)})

    def elaborate(self, platform):
        m = Module()
        up, dn = self.up, self.down
        nbytes = self._kib * 1024
        bb = self._dw // 8
        lg_size, lg_bb = nbytes.bit_length() - 1, bb.bit_length() - 1
        wbits = lg_size - lg_bb                     # word address bits
        iw = len(up.arid)
        m.submodules.mem = mem = Memory(shape=self._dw, depth=nbytes // bb, init=[])
        wr = mem.write_port(granularity=8)
        rdp = mem.read_port()

        def hit(addr):
            return addr[lg_size:] == (self._base >> lg_size)

        # -- reads -------------------------------------------------------------------------
        m.submodules.rq = rq = SyncFIFO(width=1, depth=ORDER_DEPTH)       # 1: the L2's
        m.submodules.lar = lar = SyncFIFO(width=wbits + 8 + iw, depth=ORDER_DEPTH)
        ar_hit = hit(up.araddr)
        for name in ("arid", "araddr", "arlen", "arsize", "arburst", "arprot", "arcache"):
            m.d.comb += getattr(dn, name).eq(getattr(up, name))
        m.d.comb += [
            dn.arvalid.eq(up.arvalid & ~ar_hit & rq.w_rdy),
            up.arready.eq(rq.w_rdy & Mux(ar_hit, lar.w_rdy, dn.arready)),
        ]
        ar_take = up.arvalid & up.arready
        m.d.comb += [rq.w_en.eq(ar_take), rq.w_data.eq(ar_hit),
                     lar.w_en.eq(ar_take & ar_hit),
                     lar.w_data.eq(Cat(up.araddr[lg_bb:lg_size], up.arlen, up.arid))]
        # the read engine: one word a cycle into ``lr`` while it has room for it
        m.submodules.lr = lr = SyncFIFO(width=self._dw + 1 + iw, depth=_AHEAD)
        busy = Signal()
        cur = Signal(wbits)
        left = Signal(8)
        cur_id = Signal(iw)
        rd_v, rd_last = Signal(), Signal()
        rd_id = Signal(iw)
        room = Signal()
        m.d.comb += room.eq(lr.level + rd_v < _AHEAD)
        issue = Signal()
        m.d.comb += [issue.eq(busy & room), rdp.addr.eq(cur), rdp.en.eq(issue)]
        last_issue = issue & (left == 0)
        m.d.sync += [rd_v.eq(issue), rd_last.eq(left == 0), rd_id.eq(cur_id)]
        with m.If(issue):
            m.d.sync += [cur.eq(cur + 1), left.eq(left - 1)]
        with m.If(last_issue):
            m.d.sync += busy.eq(0)
        take_ar = lar.r_rdy & (~busy | last_issue)
        m.d.comb += lar.r_en.eq(take_ar)
        with m.If(take_ar):
            m.d.sync += [busy.eq(1), cur.eq(lar.r_data[:wbits]),
                         left.eq(lar.r_data[wbits:wbits + 8]), cur_id.eq(lar.r_data[wbits + 8:])]
        m.d.comb += [lr.w_en.eq(rd_v), lr.w_data.eq(Cat(rdp.data, rd_last, rd_id))]
        # R: from the head's target only
        head_l2 = rq.r_data[0]
        m.d.comb += [
            up.rvalid.eq(rq.r_rdy & Mux(head_l2, lr.r_rdy, dn.rvalid)),
            up.rdata.eq(Mux(head_l2, lr.r_data[:self._dw], dn.rdata)),
            up.rlast.eq(Mux(head_l2, lr.r_data[self._dw], dn.rlast)),
            up.rid.eq(Mux(head_l2, lr.r_data[self._dw + 1:], dn.rid)),
            up.rresp.eq(Mux(head_l2, 0, dn.rresp)),
            dn.rready.eq(up.rready & rq.r_rdy & ~head_l2),
            lr.r_en.eq(up.rready & rq.r_rdy & head_l2),
            rq.r_en.eq(up.rvalid & up.rready & up.rlast),
        ]

        # -- writes ------------------------------------------------------------------------
        m.submodules.wq = wq = SyncFIFO(width=1, depth=ORDER_DEPTH)       # W routing
        m.submodules.bq = bq = SyncFIFO(width=1, depth=ORDER_DEPTH)       # B order
        m.submodules.law = law = SyncFIFO(width=wbits + iw, depth=ORDER_DEPTH)
        m.submodules.lb = lb = SyncFIFO(width=iw, depth=ORDER_DEPTH)      # L2 responses due
        aw_hit = hit(up.awaddr)
        for name in ("awid", "awaddr", "awlen", "awsize", "awburst", "awprot", "awcache"):
            m.d.comb += getattr(dn, name).eq(getattr(up, name))
        aw_room = wq.w_rdy & bq.w_rdy
        m.d.comb += [
            dn.awvalid.eq(up.awvalid & ~aw_hit & aw_room),
            up.awready.eq(aw_room & Mux(aw_hit, law.w_rdy, dn.awready)),
        ]
        aw_take = up.awvalid & up.awready
        m.d.comb += [wq.w_en.eq(aw_take), wq.w_data.eq(aw_hit),
                     bq.w_en.eq(aw_take), bq.w_data.eq(aw_hit),
                     law.w_en.eq(aw_take & aw_hit),
                     law.w_data.eq(Cat(up.awaddr[lg_bb:lg_size], up.awid))]
        w_l2 = wq.r_data[0]
        in_burst = Signal()
        w_word = Signal(wbits)
        m.d.comb += [
            dn.wdata.eq(up.wdata), dn.wstrb.eq(up.wstrb), dn.wlast.eq(up.wlast),
            dn.wvalid.eq(up.wvalid & wq.r_rdy & ~w_l2),
            up.wready.eq(wq.r_rdy & Mux(w_l2, law.r_rdy & lb.w_rdy, dn.wready)),
        ]
        w_take = up.wvalid & up.wready
        to_l2 = w_take & w_l2
        addr = Mux(in_burst, w_word, law.r_data[:wbits])
        m.d.comb += [wr.addr.eq(addr), wr.data.eq(up.wdata),
                     wr.en.eq(Mux(to_l2, up.wstrb, Const(0, len(up.wstrb))))]
        with m.If(to_l2):
            m.d.sync += [w_word.eq(addr + 1), in_burst.eq(~up.wlast)]
        m.d.comb += [law.r_en.eq(to_l2 & up.wlast),
                     lb.w_en.eq(to_l2 & up.wlast), lb.w_data.eq(law.r_data[wbits:]),
                     wq.r_en.eq(w_take & up.wlast)]
        # B: from the head's target only
        b_l2 = bq.r_data[0]
        m.d.comb += [
            up.bvalid.eq(bq.r_rdy & Mux(b_l2, lb.r_rdy, dn.bvalid)),
            up.bresp.eq(Mux(b_l2, 0, dn.bresp)),
            up.bid.eq(Mux(b_l2, lb.r_data, dn.bid)),
            dn.bready.eq(up.bready & bq.r_rdy & ~b_l2),
            lb.r_en.eq(up.bready & bq.r_rdy & b_l2),
            bq.r_en.eq(up.bvalid & up.bready),
        ]
        return m
