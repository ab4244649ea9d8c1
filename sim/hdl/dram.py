"""A DRAM model in the simulated design: an AXI4 subordinate over a memory with a backdoor.

Benches and long workloads simulate the whole accelerator with this model beside it
(:class:`~s4accel.sim.hdl.top.SimTop`) instead of cocotbext-axi's ``AxiRam`` on the ``dram``
port, so no Python runs per bus beat: the testbench loads the DRAM image and reads results in
bulk through the backdoor between jobs, and the simulator free-runs in between.

Timing (what the performance model is calibrated against) is cocotbext-axi's ``AxiRam``, cycle
for cycle as the accelerator sees it:

- AR and AW are taken into queues of three (the burst in progress and two waiting); ``arready``
  / ``awready`` are the queues' ``w_rdy``.
- Read: the first R beat of a burst is offered the cycle after its AR is at the queue head, so
  an AR taken at edge ``k`` gives its first R handshake at edge ``k + 2``; then one beat a
  cycle while ``rready``, bursts back to back.
- Write: W beats go through a queue of two (``wready`` its ``w_rdy``) and are written one a
  cycle once their AW is at the head; the B response of a burst is offered the cycle after its
  last beat was written, so the last W handshake at edge ``j`` gives the B handshake at edge
  ``j + 2``.

Faults: addresses outside ``[base, base + size)`` answer DECERR; four programmable ranges
``fault{i}_lo <= addr < fault{i}_hi`` answer ``fault{i}_resp`` (2 = SLVERR, 3 = DECERR,
0 = range off; the lowest index wins). A read beat from a faulty address carries the response
(data: the memory's word); a faulty write beat is not written and the burst's BRESP is the
first faulty beat's response. The ranges are inputs, so a testbench reprograms them between
jobs.

Window monitor: every AR / AW is checked against four windows ``[win{i}_base, win{i}_limit)``
with read / write permission (``win_rd`` / ``win_wr``, one bit per window; an enabled window has
its bit set) as the testbench last set them from the driver's register writes. The first burst
outside them sets ``stray`` (sticky until reset) with its address in ``stray_addr`` and
``stray_write``; ``rd_bursts`` / ``wr_bursts`` count the bursts taken.

Backdoor (``sim_mem.v``): ``bd_req`` is a sequence number; when it changes and differs from
``bd_ack`` the memory, at once (outside the clock), either loads ``s4_dram_load.hex`` or
(``bd_dump``) writes words ``bd_lo..bd_hi`` to ``s4_dram_dump.hex`` in the simulator's working
directory, and sets ``bd_ack = bd_req``.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ...hw.bus.axi import AXI4, Resp

__all__ = ["SimDram", "N_FAULTS", "N_WINDOWS", "MEM_VERILOG", "control_members"]

#: Programmable fault-injection ranges.
N_FAULTS = 4
#: Windows watched by the monitor (as many as the DMA has).
N_WINDOWS = 4
#: The hand-written storage module instantiated by :class:`SimDram`.
MEM_VERILOG = Path(__file__).with_name("sim_mem.v")

ID_WIDTH = 4


def control_members(abits: int) -> dict:
    """The testbench-facing members of :class:`SimDram` (everything but ``bus``)."""
    members = {}
    for i in range(N_FAULTS):
        members.update({f"fault{i}_lo": In(32), f"fault{i}_hi": In(32), f"fault{i}_resp": In(2)})
    for i in range(N_WINDOWS):
        members.update({f"win{i}_base": In(32), f"win{i}_limit": In(32)})
    members.update({
        "win_rd": In(N_WINDOWS), "win_wr": In(N_WINDOWS),
        "stray": Out(1), "stray_addr": Out(32), "stray_write": Out(1),
        "rd_bursts": Out(32), "wr_bursts": Out(32),
        "bd_req": In(32), "bd_dump": In(1), "bd_lo": In(abits), "bd_hi": In(abits),
        "bd_ack": Out(32),
    })
    return members


class SimDram(wiring.Component):
    """AXI4 subordinate DRAM of ``size`` bytes at ``base`` for a ``data_width``-bit bus (see the
    module docstring for its timing, faults, monitor and backdoor).

    Members
    -------
    bus : In(AXI4.Signature(addr_width=32, data_width=data_width, id_width=4))
    fault{i}_lo, fault{i}_hi : In(32); fault{i}_resp : In(2)
    win{i}_base, win{i}_limit : In(32); win_rd, win_wr : In(4)
    stray, stray_write : Out(1); stray_addr, rd_bursts, wr_bursts : Out(32)
    bd_req : In(32); bd_dump : In(1); bd_lo, bd_hi : In(abits); bd_ack : Out(32)
    """

    def __init__(self, data_width: int, base: int, size: int):
        nb = data_width // 8
        if size <= 0 or size % nb or size & (size - 1):
            raise ValueError(f"DRAM size must be a power of two multiple of {nb} bytes, "
                             f"not {size}")
        if base % size or base + size > 1 << 32:
            raise ValueError(f"DRAM base {base:#x} must be a multiple of its size {size:#x} "
                             "inside the 32-bit address space")
        self.data_width, self.base, self.size = data_width, base, size
        self.abits = (size // nb).bit_length() - 1
        super().__init__({
            "bus": In(AXI4.Signature(addr_width=32, data_width=data_width, id_width=ID_WIDTH)),
            **control_members(self.abits),
        })

    def _resp(self, m, addr, name):
        """The response for a beat at ``addr`` (a comb signal)."""
        resp = Signal(2, name=name)
        inside = (addr >= self.base) & (addr < self.base + self.size)
        m.d.comb += resp.eq(Resp.OKAY)
        for i in reversed(range(N_FAULTS)):         # the lowest index is assigned last: wins
            lo, hi, r = (getattr(self, f"fault{i}_{k}") for k in ("lo", "hi", "resp"))
            with m.If((r != 0) & (lo <= addr) & (addr < hi)):
                m.d.comb += resp.eq(r)
        with m.If(~inside):
            m.d.comb += resp.eq(Resp.DECERR)
        return resp

    def _index(self, addr):
        lb = (self.data_width // 8).bit_length() - 1
        return ((addr - self.base) >> lb)[:self.abits]

    def _allowed(self, m, addr, beats, write, name):
        """Comb: the burst ``[addr, addr + beats * bus bytes)`` is inside a window with the
        permission it needs."""
        ok = Signal(name=name)
        end = Signal(33, name=f"{name}_end")
        lb = (self.data_width // 8).bit_length() - 1
        m.d.comb += end.eq(addr + (beats << lb))
        perm = self.win_wr if write else self.win_rd
        m.d.comb += ok.eq(0)
        for i in range(N_WINDOWS):
            base, limit = getattr(self, f"win{i}_base"), getattr(self, f"win{i}_limit")
            with m.If(perm[i] & (base <= addr) & (end <= limit)):
                m.d.comb += ok.eq(1)
        return ok

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        nb = self.data_width // 8
        lb = nb.bit_length() - 1

        ren, wen = Signal(), Signal()
        raddr, waddr = Signal(self.abits), Signal(self.abits)
        rdata = Signal(self.data_width)
        wdata, wstrb = Signal(self.data_width), Signal(nb)
        m.submodules.mem = Instance(
            "s4_sim_mem", p_WIDTH=self.data_width, p_ABITS=self.abits,
            i_clk=ClockSignal(), i_ren=ren, i_raddr=raddr, o_rdata=rdata,
            i_wen=wen, i_waddr=waddr, i_wdata=wdata, i_wstrb=wstrb,
            i_bd_req=self.bd_req, i_bd_dump=self.bd_dump, i_bd_lo=self.bd_lo,
            i_bd_hi=self.bd_hi, o_bd_ack=self.bd_ack)

        # == monitor ==========================================================================
        ar_hs = bus.arvalid & bus.arready
        aw_hs = bus.awvalid & bus.awready
        rd_ok = self._allowed(m, bus.araddr, bus.arlen + 1, False, "rd_ok")
        wr_ok = self._allowed(m, bus.awaddr, bus.awlen + 1, True, "wr_ok")
        with m.If(ar_hs):
            m.d.sync += self.rd_bursts.eq(self.rd_bursts + 1)
        with m.If(aw_hs):
            m.d.sync += self.wr_bursts.eq(self.wr_bursts + 1)
        with m.If(~self.stray):
            with m.If(ar_hs & ~rd_ok):
                m.d.sync += [self.stray.eq(1), self.stray_addr.eq(bus.araddr),
                             self.stray_write.eq(0)]
            with m.Elif(aw_hs & ~wr_ok):
                m.d.sync += [self.stray.eq(1), self.stray_addr.eq(bus.awaddr),
                             self.stray_write.eq(1)]

        # == read =============================================================================
        m.submodules.ar_q = ar_q = SyncFIFO(width=32 + 8 + ID_WIDTH, depth=3)
        m.d.comb += [ar_q.w_data.eq(Cat(bus.araddr, bus.arlen, bus.arid)),
                     ar_q.w_en.eq(bus.arvalid), bus.arready.eq(ar_q.w_rdy)]
        r_addr0, r_len, r_id = ar_q.r_data[:32], ar_q.r_data[32:40], ar_q.r_data[40:]
        r_beat = Signal(8)
        r_addr = Signal(32)
        m.d.comb += r_addr.eq(r_addr0 + (r_beat << lb))
        r_resp = self._resp(m, r_addr, "r_resp")
        advance = ~bus.rvalid | bus.rready
        issue = advance & ar_q.r_rdy
        r_last = r_beat == r_len
        m.d.comb += [ren.eq(issue), raddr.eq(self._index(r_addr)), bus.rdata.eq(rdata)]
        with m.If(advance):
            m.d.sync += bus.rvalid.eq(ar_q.r_rdy)
        with m.If(issue):
            m.d.sync += [bus.rlast.eq(r_last), bus.rresp.eq(r_resp), bus.rid.eq(r_id),
                         r_beat.eq(Mux(r_last, 0, r_beat + 1))]
            m.d.comb += ar_q.r_en.eq(r_last)

        # == write ============================================================================
        m.submodules.aw_q = aw_q = SyncFIFO(width=32 + 8 + ID_WIDTH, depth=3)
        m.d.comb += [aw_q.w_data.eq(Cat(bus.awaddr, bus.awlen, bus.awid)),
                     aw_q.w_en.eq(bus.awvalid), bus.awready.eq(aw_q.w_rdy)]
        m.submodules.w_q = w_q = SyncFIFO(width=self.data_width + nb, depth=2)
        m.d.comb += [w_q.w_data.eq(Cat(bus.wdata, bus.wstrb)), w_q.w_en.eq(bus.wvalid),
                     bus.wready.eq(w_q.w_rdy)]
        m.submodules.b_q = b_q = SyncFIFO(width=2 + ID_WIDTH, depth=2)
        m.d.comb += [bus.bvalid.eq(b_q.r_rdy), bus.bresp.eq(b_q.r_data[:2]),
                     bus.bid.eq(b_q.r_data[2:]), b_q.r_en.eq(bus.bready)]

        w_addr0, w_len, w_id = aw_q.r_data[:32], aw_q.r_data[32:40], aw_q.r_data[40:]
        w_beat = Signal(8)
        w_addr = Signal(32)
        m.d.comb += w_addr.eq(w_addr0 + (w_beat << lb))
        w_resp = self._resp(m, w_addr, "w_resp")
        w_err = Signal(2)        # the burst's first error response so far
        w_last = w_beat == w_len
        take = aw_q.r_rdy & w_q.r_rdy & b_q.w_rdy
        m.d.comb += [waddr.eq(self._index(w_addr)), wdata.eq(w_q.r_data[:self.data_width]),
                     wstrb.eq(w_q.r_data[self.data_width:])]
        with m.If(take):
            m.d.comb += [w_q.r_en.eq(1), wen.eq(w_resp == Resp.OKAY)]
            err_now = Mux(w_err != Resp.OKAY, w_err, w_resp)
            with m.If(w_last):
                m.d.comb += [aw_q.r_en.eq(1), b_q.w_en.eq(1),
                             b_q.w_data.eq(Cat(err_now, w_id))]
                m.d.sync += [w_beat.eq(0), w_err.eq(Resp.OKAY)]
            with m.Else():
                m.d.sync += [w_beat.eq(w_beat + 1), w_err.eq(err_now)]
        return m
