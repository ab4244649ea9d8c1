"""The simulation top level ``s4_sim``: the accelerator with the DRAM model inside the design.

Ports: the accelerator's ``csr`` (AXI4-Lite) and ``irq``, and the control members of
:class:`~s4accel.sim.hdl.dram.SimDram` (fault ranges, monitor windows and result, backdoor),
which the fast testbench backend (:mod:`s4accel.sim.tb.fast_backend`) drives between jobs.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...base.config import Config
from ...hw.bus.axi import AXI4Lite
from ...hw.top import S4Top
from ...sw.driver import DRAM_BASE, DRAM_SIZE
from .dram import MEM_VERILOG, SimDram, control_members

__all__ = ["SimTop"]


class SimTop(wiring.Component):
    """:class:`~s4accel.hw.top.S4Top` with a :class:`SimDram` of ``dram_size`` bytes at
    ``dram_base`` on its DRAM port (the driver's default region).

    Members
    -------
    csr : In(AXI4Lite.Signature(addr_width=12, data_width=32))
    irq : Out(1)
    (and every member of :func:`~s4accel.sim.hdl.dram.control_members`)
    """

    #: hand-written Verilog the design instantiates (appended to its generated Verilog)
    extra_verilog = (MEM_VERILOG,)

    def __new__(cls, config: Config, *args, **kwargs):
        S4Top.check(config)
        return super().__new__(cls)

    def __init__(self, config: Config, dram_base: int = DRAM_BASE, dram_size: int = DRAM_SIZE):
        self._config = config
        self._dram = (dram_base, dram_size)
        abits = (dram_size // (config.dram_bus_bits // 8)).bit_length() - 1
        super().__init__({
            "csr": In(AXI4Lite.Signature(addr_width=12, data_width=32)),
            "irq": Out(1),
            **control_members(abits),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        # The design's reset is a register of the ``rst`` input. Amaranth folds the reset into
        # every register's next-state logic; driven straight from a top-level input, all that
        # logic would be "input combinational" to Verilator and evaluated again at every clock
        # toggle (a quarter of the simulation time, measured with perf). Through one flip-flop
        # it is ordinary clocked logic. The reset reaches the design one cycle later.
        m.domains.core = core = ClockDomain("core")
        rst_q = Signal(init=1, reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += [core.clk.eq(ClockSignal("sync")), core.rst.eq(rst_q)]
        m.submodules.top = top = DomainRenamer("core")(S4Top(self._config))
        m.submodules.dram = dram = DomainRenamer("core")(
            SimDram(self._config.dram_bus_bits, *self._dram))
        wiring.connect(m, wiring.flipped(self.csr), top.csr)
        wiring.connect(m, top.dram, dram.bus)
        m.d.comb += self.irq.eq(top.irq)
        for name, member in dram.signature.members.items():
            if name == "bus":
                continue
            mine, theirs = getattr(self, name), getattr(dram, name)
            if member.flow == In:
                m.d.comb += theirs.eq(mine)
            else:
                m.d.comb += mine.eq(theirs)
        return m
