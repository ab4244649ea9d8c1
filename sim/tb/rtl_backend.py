"""The driver's RTL backend: the whole accelerator (``hw/top.py``) under cocotb.

Registers are reached with cocotbext-axi's ``AxiLiteMaster`` on the ``csr`` port, DRAM is a
cocotbext-axi ``AxiRam`` on the ``dram`` port (answering DECERR outside the modelled DRAM
and SLVERR / DECERR where a test injects them), and an AXI monitor fails the run on any DRAM
access outside the windows the driver programmed.
"""

from __future__ import annotations

import logging

import cocotb
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster

from ...sw import regs
from ...sw.driver import DRAM_BASE, DRAM_SIZE, Backend, CsrBusError
from .axi_ram import AxiResp, Faults, FaultyAxiRam
from .base import CLOCK_NS, pauses, reset, start_clock


class RtlBackend(Backend):
    def __init__(self, dut, *, dram_base=DRAM_BASE, dram_size=DRAM_SIZE, rng=None,
                 axi_pause=0.0):
        self.dut = dut
        self.dram_base, self.dram_size = dram_base, dram_size
        self.csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr_"), dut.clk, dut.rst)
        # addresses outside the modelled DRAM answer DECERR, as on a real interconnect
        self.faults = Faults([(0, dram_base, AxiResp.DECERR),
                              (dram_base + dram_size, 2**32, AxiResp.DECERR)])
        self.ram = FaultyAxiRam(AxiBus.from_prefix(dut, "dram_"), dut.clk, dut.rst, 2**32,
                                self.faults)
        for side in (self.csr.write_if, self.csr.read_if):
            side.log.setLevel(logging.WARNING)   # one INFO line per register access otherwise
        self.violations = []
        self.bursts = {"read": 0, "write": 0}
        self.windows = []       # (base, limit, read, write) as the driver programmed them
        if axi_pause and rng is not None:
            for ch in (self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
                       self.ram.write_if.b_channel, self.ram.read_if.ar_channel,
                       self.ram.read_if.r_channel):
                ch.set_pause_generator(pauses(rng, axi_pause))
            for ch in (self.csr.write_if.aw_channel, self.csr.write_if.w_channel,
                       self.csr.write_if.b_channel, self.csr.read_if.ar_channel,
                       self.csr.read_if.r_channel):
                ch.set_pause_generator(pauses(rng, axi_pause))

    async def start(self):
        start_clock(self.dut)
        cocotb.start_soon(self._monitor())
        await reset(self.dut, 4)

    def _allowed(self, start, end, write):
        for base, limit, rd, wr in self.windows:
            if (wr if write else rd) and base <= start and end <= limit:
                return True
        return False

    async def _monitor(self):
        d = self.dut
        nb = len(d.dram__wdata) // 8
        while True:
            await RisingEdge(d.clk)
            await ReadOnly()
            for kind, pre in (("read", "ar"), ("write", "aw")):
                if getattr(d, f"dram__{pre}valid").value == 1 and \
                        getattr(d, f"dram__{pre}ready").value == 1:
                    addr = getattr(d, f"dram__{pre}addr").value.to_unsigned()
                    beats = getattr(d, f"dram__{pre}len").value.to_unsigned() + 1
                    self.bursts[kind] += 1
                    if not self._allowed(addr, addr + beats * nb, kind == "write"):
                        self.violations.append(f"{kind} burst [{addr:#x}, "
                                               f"{addr + beats * nb:#x}) outside the windows")

    # -- Backend ----------------------------------------------------------------------------
    async def read32(self, offset):
        r = await self.csr.read(offset, 4)
        if int(r.resp) != 0:
            raise CsrBusError(offset, False, r.resp.name)
        return int.from_bytes(r.data, "little")

    async def write32(self, offset, value):
        r = await self.csr.write(offset, int(value & 0xFFFFFFFF).to_bytes(4, "little"))
        if int(r.resp) != 0:
            raise CsrBusError(offset, True, r.resp.name)
        self._shadow(offset, value)

    def _shadow(self, offset, value):
        """Track the windows the driver programs, for the DRAM access monitor."""
        names = {getattr(regs, f"WIN{i}_{k}"): (i, k) for i in range(4) for k in ("BASE", "LIMIT")}
        if not hasattr(self, "_win"):
            self._win = {(i, k): 0 for i in range(4) for k in ("BASE", "LIMIT")}
            self._win_ctrl = 0
        if offset in names:
            self._win[names[offset]] = value
        elif offset == regs.WIN_CTRL:
            self._win_ctrl = value
        else:
            return
        reg = regs.REGISTERS["WIN_CTRL"]
        en, rd, wr = (reg.field(n).get(self._win_ctrl) for n in ("en", "rd", "wr"))
        self.windows = [(self._win[(i, "BASE")], self._win[(i, "LIMIT")], rd >> i & 1,
                         wr >> i & 1) for i in range(4) if en >> i & 1]

    async def mem_write(self, addr, data):
        self.ram.write(addr, bytes(data))

    async def mem_read(self, addr, n):
        return bytes(self.ram.read(addr, n))

    async def wait_irq(self, max_cycles):
        # one trigger, as the fast backend: cycle counts of the two paths compare directly
        d = self.dut
        if d.irq.value != 1 and max_cycles > 0:
            await First(RisingEdge(d.irq), Timer(max_cycles * CLOCK_NS, "ns"))
        return d.irq.value == 1

    async def cycle(self):
        """Rising clock edges so far, from simulation time (the clock starts at time 0)."""
        return int(get_sim_time("ps")) // (CLOCK_NS * 1000)

    def inject_bus_error(self, lo, hi, kind):
        resp = {"slverr": AxiResp.SLVERR, "decerr": AxiResp.DECERR}.get(kind)
        if resp is None:
            raise ValueError(f"bus error kind must be 'slverr' or 'decerr', not {kind!r}")
        self.faults.ranges.insert(0, (lo, hi, resp))

    def clear_bus_errors(self):
        self.faults.ranges.clear()
