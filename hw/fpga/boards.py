"""Board wrappers for resource / Fmax builds of :class:`~s4accel.hw.top.S4Top`.

The accelerator's ports are an AXI4-Lite register port and an AXI4 DRAM manager port: far more
signals than a board has pins. :class:`BoardTop` closes them on chip so the whole accelerator
survives synthesis with only a clock, a reset button and eight LEDs at the pins:

- ``dram``: :class:`AxiRam`, a small AXI4 subordinate over block RAM (``dram_words`` beats of
  ``dram_bus_bits``; addresses wrap), one burst at a time, two cycles per read beat;
- ``csr``: :class:`LfsrCsrDriver`, an AXI4-Lite manager that writes pseudo-random data to
  pseudo-random register addresses and reads pseudo-random registers, alternately, from a
  32-bit LFSR. Nothing is tied to a constant, so no register or datapath is dead logic;
- LEDs: ``led[0]`` is ``irq``, ``led[1]`` the reset, ``led[2:8]`` an XOR fold of every CSR
  read data word (status, perf counters, ring head, ...), so the reads cannot be removed.

This is for resource and timing numbers, not for running a workload: the random register
writes start the command processor on garbage rings. A host link (UART bridge to the CSR port)
is the next step.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, ClockDomain, Const, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ...config import Config
from ..bus.axi import AXI4, AXI4Lite
from ..top import S4Top

__all__ = ["Board", "BOARDS", "AxiRam", "LfsrCsrDriver", "BoardTop"]


@dataclass(frozen=True)
class Board:
    name: str
    family: str             #: "ecp5" or "ice40"
    device: str             #: nextpnr device option(s)
    package: str
    constraints: str        #: file name in ``constraints/``
    clk_mhz: float          #: board oscillator
    button_active_low: bool


BOARDS = {
    "ulx3s": Board("ulx3s", "ecp5", "85k", "CABGA381", "ulx3s.lpf", 25.0, True),
    "icebreaker": Board("icebreaker", "ice40", "up5k", "sg48", "icebreaker.pcf", 12.0, True),
}


class AxiRam(wiring.Component):
    """AXI4 subordinate over ``words`` x ``data_width`` of on-chip RAM (addresses wrap)."""

    def __init__(self, *, data_width, words=256, addr_width=32, id_width=4):
        self._dw, self._words = data_width, words
        super().__init__({"bus": In(AXI4.Signature(addr_width=addr_width, data_width=data_width,
                                                   id_width=id_width))})

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        nbytes = self._dw // 8
        shift = (nbytes - 1).bit_length()
        abits = (self._words - 1).bit_length()
        m.submodules.mem = mem = memory.Memory(shape=self._dw, depth=self._words, init=[])
        wp = mem.write_port(granularity=8)
        rp = mem.read_port()

        addr = Signal(abits)
        count = Signal(8)
        rid = Signal.like(bus.arid)
        bid = Signal.like(bus.awid)
        m.d.comb += [rp.addr.eq(addr), wp.addr.eq(addr), wp.data.eq(bus.wdata),
                     bus.rdata.eq(rp.data), bus.rid.eq(rid), bus.bid.eq(bid),
                     bus.rresp.eq(0), bus.bresp.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += bus.arready.eq(1)
                with m.If(bus.arvalid):
                    m.d.sync += [addr.eq(bus.araddr[shift:]), count.eq(bus.arlen),
                                 rid.eq(bus.arid)]
                    m.next = "RADDR"
                with m.Else():
                    m.d.comb += bus.awready.eq(1)
                    with m.If(bus.awvalid):
                        m.d.sync += [addr.eq(bus.awaddr[shift:]), count.eq(bus.awlen),
                                     bid.eq(bus.awid)]
                        m.next = "WDATA"
            with m.State("RADDR"):
                m.d.comb += rp.en.eq(1)
                m.next = "RDATA"
            with m.State("RDATA"):
                m.d.comb += [rp.en.eq(0), bus.rvalid.eq(1), bus.rlast.eq(count == 0)]
                with m.If(bus.rready):
                    m.d.sync += [addr.eq(addr + 1), count.eq(count - 1)]
                    m.next = "RNEXT"
            with m.State("RNEXT"):
                # count wrapped below zero after the last beat
                with m.If(count == 0xFF):
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += rp.en.eq(1)
                    m.next = "RDATA"
            with m.State("WDATA"):
                m.d.comb += bus.wready.eq(1)
                with m.If(bus.wvalid):
                    m.d.comb += wp.en.eq(bus.wstrb)
                    m.d.sync += addr.eq(addr + 1)
                    with m.If(bus.wlast):
                        m.next = "WRESP"
            with m.State("WRESP"):
                m.d.comb += bus.bvalid.eq(1)
                with m.If(bus.bready):
                    m.next = "IDLE"
        return m


class LfsrCsrDriver(wiring.Component):
    """AXI4-Lite manager: alternately a write of LFSR data to an LFSR address and a read of an
    LFSR address; ``fold`` is the XOR of every read data word."""

    def __init__(self, *, addr_width=12):
        self._aw = addr_width
        super().__init__({"bus": Out(AXI4Lite.Signature(addr_width=addr_width, data_width=32)),
                          "fold": Out(32)})

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        lfsr = Signal(32, init=0xACE1_2468)
        # Galois LFSR, taps 32, 22, 2, 1
        m.d.sync += lfsr.eq(Cat(lfsr[1:], Const(0, 1)) ^ (0x80200003 * lfsr[0]))
        aw_done, w_done = Signal(), Signal()
        addr = Signal(self._aw)
        data = Signal(32)
        m.d.comb += [bus.awaddr.eq(addr), bus.araddr.eq(addr), bus.wdata.eq(data),
                     bus.wstrb.eq(0xF), bus.awprot.eq(0), bus.arprot.eq(0)]
        with m.FSM():
            with m.State("PICK_W"):
                m.d.sync += [addr.eq(Cat(Const(0, 2), lfsr[:self._aw - 2])), data.eq(lfsr[::-1]),
                             aw_done.eq(0), w_done.eq(0)]
                m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [bus.awvalid.eq(~aw_done), bus.wvalid.eq(~w_done)]
                with m.If(bus.awvalid & bus.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(bus.wvalid & bus.wready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | bus.awready) & (w_done | bus.wready)):
                    m.next = "BRESP"
            with m.State("BRESP"):
                m.d.comb += bus.bready.eq(1)
                with m.If(bus.bvalid):
                    m.next = "PICK_R"
            with m.State("PICK_R"):
                m.d.sync += addr.eq(Cat(Const(0, 2), lfsr[3:self._aw + 1]))
                m.next = "READ"
            with m.State("READ"):
                m.d.comb += bus.arvalid.eq(1)
                with m.If(bus.arready):
                    m.next = "RDATA"
            with m.State("RDATA"):
                m.d.comb += bus.rready.eq(1)
                with m.If(bus.rvalid):
                    m.d.sync += self.fold.eq(self.fold ^ bus.rdata ^ bus.rresp)
                    m.next = "PICK_W"
        return m


class BoardTop(wiring.Component):
    """Pins: ``clk`` (board oscillator, used directly), ``btn`` (reset button), ``led[8]``."""

    def __init__(self, config: Config, board: Board, *, dram_words=256):
        self._config, self._board, self._dram_words = config, board, dram_words
        super().__init__({"clk": In(1), "btn": In(1), "led": Out(8)})

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.domains.sync = cd = ClockDomain("sync")
        m.domains.por = cd_por = ClockDomain("por", reset_less=True)
        m.d.comb += [cd.clk.eq(self.clk), cd_por.clk.eq(self.clk)]
        # reset: power-on (FFs start at their init value), then the synchronized button
        por = Signal(4)
        btn_sync = Signal(2, init=0b11 if self._board.button_active_low else 0)
        rst = Signal(init=1)
        pressed = ~btn_sync[1] if self._board.button_active_low else btn_sync[1]
        m.d.por += [btn_sync.eq(Cat(self.btn, btn_sync[0])), rst.eq((por != 0xF) | pressed)]
        with m.If(por != 0xF):
            m.d.por += por.eq(por + 1)
        m.d.comb += cd.rst.eq(rst)

        m.submodules.s4 = s4 = S4Top(cfg)
        m.submodules.dram = ram = AxiRam(data_width=cfg.dram_bus_bits, words=self._dram_words,
                                         id_width=len(s4.dram.awid))
        m.submodules.host = host = LfsrCsrDriver(addr_width=12)
        wiring.connect(m, s4.dram, ram.bus)
        wiring.connect(m, host.bus, s4.csr)
        f = host.fold
        m.d.comb += self.led.eq(Cat(s4.irq, rst, *[f[i::6].xor() for i in range(6)]))
        return m
