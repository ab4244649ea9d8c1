"""Board wrappers of :class:`~s4accel.hw.top.S4Top`: the accelerator with on-chip DRAM and a
UART host bridge, so the Python driver runs jobs on the board through a serial port.

- :class:`AxiRam`: a small AXI4 subordinate over block RAM (``words`` beats of the DRAM bus;
  addresses wrap), one burst at a time, two cycles per read beat;
- :class:`BoardCore`: S4Top, a :class:`~s4accel.hw.fpga.uart.UartBridge` on its register port,
  and the accelerator's ``dram`` port and the bridge's ``mem`` port sharing one :class:`AxiRam`
  through an :class:`~s4accel.hw.bus.arbiter.AxiArbiter`. It runs in the ``sync`` domain and
  is also the top level of the RTL simulation of the board (:func:`sim_board`);
- :class:`BoardTop`: the pins. ``clk`` (the board oscillator, used directly), ``btn`` (reset
  button), ``uart_rx`` / ``uart_tx`` (the board's USB serial port), ``led[8]``: ``led[0]`` the
  interrupt, ``led[1]`` reset, ``led[2]`` / ``led[3]`` serial receive / send, ``led[4]`` a
  bridge error flag not yet reported (lost byte, framing error, abandoned command), ``led[5]``
  / ``led[6]`` DRAM access by the accelerator / the bridge, ``led[7]`` a heartbeat.

The host side is ``s4accel.sw.uart_backend.UartBackend``; the DRAM appears to the driver at
any base that is a multiple of its size (the driver's default ``0x1000_0000`` is).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, ClockDomain, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ...base.config import Config
from ...base.uart_proto import DRAM_BYTES
from ..bus.arbiter import AxiArbiter
from ..bus.axi import AXI4
from ..bus.slice import AxiSlice
from ..ram import NO_RW_CHECK
from ..top import S4Top
from .pll import Pll, pll_params
from .uart import UartBridge

__all__ = ["Board", "BOARDS", "AxiRam", "board_config", "BoardCore", "BoardTop", "sim_board",
           "DRAM_BYTES", "SIM_DIVISOR"]


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
        m.submodules.mem = mem = memory.Memory(shape=self._dw, depth=self._words, init=[],
                                                     attrs=NO_RW_CHECK)
        wp = mem.write_port(granularity=8)
        rp = mem.read_port()

        addr = Signal(abits)
        count = Signal(8)
        rid = Signal.like(bus.arid)
        bid = Signal.like(bus.awid)
        # read data passes two registers: the first loads every cycle right behind the block
        # RAM (nothing but routing follows the RAM's long clock-to-out, and it can sit next to
        # the RAM), the second, loaded a cycle later, is what the bridge / DMA see (u_fpga32:
        # RAM -> the one register placed toward its readers, 9.8 ns)
        rdata0 = Signal(self._dw, reset_less=True)
        rdata = Signal(self._dw, reset_less=True)
        m.d.sync += rdata0.eq(rp.data)
        # writes reach the RAM a cycle after the W beat, from registers (the byte enables
        # were a LUT of wvalid and the state right in front of every block RAM's enables);
        # a read starts at least two cycles after a write burst's last beat (WRESP, IDLE)
        w_addr = Signal(abits, reset_less=True)
        w_data = Signal(self._dw, reset_less=True)
        w_en = Signal(nbytes)
        m.d.sync += [w_addr.eq(addr), w_data.eq(bus.wdata),
                     w_en.eq(Mux(bus.wvalid & bus.wready, bus.wstrb, 0))]
        m.d.comb += [rp.addr.eq(addr), wp.addr.eq(w_addr), wp.data.eq(w_data), wp.en.eq(w_en),
                     bus.rdata.eq(rdata), bus.rid.eq(rid), bus.bid.eq(bid),
                     bus.rresp.eq(0), bus.bresp.eq(0)]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(bus.arvalid):
                    m.d.sync += [addr.eq(bus.araddr[shift:]), count.eq(bus.arlen),
                                 rid.eq(bus.arid)]
                    m.next = "RADDR"
                with m.Elif(bus.awvalid):
                    m.next = "WADDR"
            with m.State("WADDR"):
                # AW is taken one cycle later, so neither ready depends on a valid
                m.d.sync += [addr.eq(bus.awaddr[shift:]), count.eq(bus.awlen),
                             bid.eq(bus.awid)]
                m.next = "WDATA"
            with m.State("RADDR"):
                m.next = "RWORD"
            with m.State("RWORD"):
                m.next = "RWORD2"
            with m.State("RWORD2"):
                m.d.sync += rdata.eq(rdata0)
                m.next = "RDATA"
            with m.State("RDATA"):
                with m.If(bus.rready):
                    m.d.sync += [addr.eq(addr + 1), count.eq(count - 1)]
                    m.next = "RNEXT"
            with m.State("RNEXT"):
                # count wrapped below zero after the last beat
                with m.If(count == 0xFF):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "RWORD"
            with m.State("WDATA"):
                with m.If(bus.wvalid):
                    m.d.sync += addr.eq(addr + 1)
                    with m.If(bus.wlast):
                        m.next = "WRESP"
            with m.State("WRESP"):
                with m.If(bus.bready):
                    m.next = "IDLE"
        # handshakes as plain expressions of the state
        st = fsm.ongoing
        m.d.comb += [
            bus.arready.eq(st("IDLE")), bus.awready.eq(st("WADDR")),
            # the read port reads every cycle (reads have no side effects; its data is taken
            # in RWORD2 only): an enable of the state and count fanned out to every block RAM
            # was u_fpga32's worst path (10.27 ns into the state register)
            rp.en.eq(1),
            bus.rvalid.eq(st("RDATA")), bus.rlast.eq(count == 0),
            bus.wready.eq(st("WDATA")),
            bus.bvalid.eq(st("WRESP")),
        ]
        return m


def _stretch(m, pulse, bits):
    """A level that stays high for ``2**bits`` cycles after ``pulse``: visible on an LED."""
    count = Signal(bits)
    with m.If(pulse):
        m.d.sync += count.eq(~0)
    with m.Elif(count != 0):
        m.d.sync += count.eq(count - 1)
    return count != 0


def board_config(config: Config) -> Config:
    """The configuration a board build realizes: ``config`` without its vector units
    (``vec_max_row = 0``; a VOP is then an unknown opcode, as ``CAP_VEC`` says). The unit is a
    one-stage datapath of 32 lanes with five wide multipliers each, about 4.6k LUT4 and 12
    MULT18 a lane, which fits neither board (issue 22 pipelines and narrows it first)."""
    return config.replace(vec_max_row=0, name=config.name)


class BoardCore(wiring.Component):
    """The accelerator, its DRAM and the UART host bridge, in the ``sync`` domain.

    Parameters
    ----------
    config : Config
    divisor : int
        Clock cycles per UART bit.
    dram_words : int or None
        On-chip DRAM in words of ``config.dram_bus_bits`` (default :data:`DRAM_BYTES`).
    stretch_bits : int
        Activity LEDs stay on for ``2**stretch_bits`` cycles.

    Members
    -------
    uart_rx : In(1)
        Serial line from the host.
    uart_tx : Out(1)
        Serial line to the host.
    irq : Out(1)
        The accelerator's interrupt.
    status : Out(6)
        Receive, send, bridge error, accelerator DRAM access, bridge DRAM access, heartbeat.
    """

    uart_rx: In(1)
    uart_tx: Out(1, init=1)
    irq: Out(1)
    status: Out(6)

    def __init__(self, config: Config, *, divisor: int, dram_words=None, stretch_bits=20):
        config = board_config(config)
        if dram_words is None:
            dram_words = DRAM_BYTES // (config.dram_bus_bits // 8)
        if not isinstance(dram_words, int) or dram_words < 1 or dram_words & (dram_words - 1):
            raise ValueError(f"dram_words must be a positive power of two, not {dram_words!r}")
        self._config, self._divisor = config, divisor
        self._dram_words, self._stretch_bits = dram_words, stretch_bits
        super().__init__()

    @property
    def dram_bytes(self):
        return self._dram_words * self._config.dram_bus_bits // 8

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.s4 = s4 = S4Top(cfg)
        iw = len(s4.dram.awid)
        m.submodules.bridge = bridge = UartBridge(self._divisor, mem_data_width=cfg.dram_bus_bits,
                                                  mem_id_width=iw)
        m.submodules.arbiter = arb = AxiArbiter(data_width=cfg.dram_bus_bits, id_width=iw)
        m.submodules.dram = ram = AxiRam(data_width=cfg.dram_bus_bits, words=self._dram_words,
                                         id_width=iw)
        # a register slice on every side of the arbiter: the RAM's, the bridge's and the
        # arbiter's handshake logic stay out of the DMA's timing paths (and out of each other's)
        sig = arb.bus_signature
        m.submodules.dma_slice = dma_slice = AxiSlice(sig)
        m.submodules.bridge_slice = bridge_slice = AxiSlice(sig)
        m.submodules.ram_slice = ram_slice = AxiSlice(sig)
        wiring.connect(m, manager=bridge.csr, subordinate=s4.csr)
        wiring.connect(m, manager=s4.dram, subordinate=dma_slice.mgr)
        wiring.connect(m, manager=dma_slice.sub, subordinate=arb.mgr0)
        wiring.connect(m, manager=bridge.mem, subordinate=bridge_slice.mgr)
        wiring.connect(m, manager=bridge_slice.sub, subordinate=arb.mgr1)
        wiring.connect(m, manager=arb.sub, subordinate=ram_slice.mgr)
        wiring.connect(m, manager=ram_slice.sub, subordinate=ram.bus)
        m.d.comb += [bridge.rx.eq(self.uart_rx), self.uart_tx.eq(bridge.tx),
                     bridge.irq.eq(s4.irq), self.irq.eq(s4.irq)]
        beat = Signal(24)
        m.d.sync += beat.eq(beat + 1)
        bits = self._stretch_bits
        m.d.comb += self.status.eq(Cat(
            _stretch(m, bridge.rx_active, bits), _stretch(m, bridge.tx_active, bits),
            bridge.flags != 0, _stretch(m, arb.grant[0], bits),
            _stretch(m, arb.grant[1], bits), beat[-1]))
        return m


#: UART bit time of the simulated board, in clock cycles (``sim/tb/uart.py``).
SIM_DIVISOR = 8


def sim_board(config: Config) -> BoardCore:
    """The board as simulated by ``sim/tb/uart.py``: :data:`SIM_DIVISOR` cycles per bit,
    :data:`DRAM_BYTES` of DRAM."""
    return BoardCore(config, divisor=SIM_DIVISOR, stretch_bits=4)


class BoardTop(wiring.Component):
    """:class:`BoardCore` at the pins of ``board`` (see the module documentation).

    The logic runs at ``clock_mhz`` (default: the configuration's ``clock_mhz``): from the
    board oscillator directly when that is within 5 % of it, else from the family's PLL
    (:mod:`.pll`; reset is held until it locks). ``clock_mhz`` is then the frequency reached.
    ``baud`` sets the UART divisor, ``round(clock_mhz * 1e6 / baud)`` cycles per bit; a rate the
    clock cannot make within 2 % is refused.
    """

    def __init__(self, config: Config, board: Board, *, clock_mhz=None, baud=115_200,
                 dram_words=None):
        want = float(clock_mhz or config.clock_mhz)
        if abs(want - board.clk_mhz) <= 0.05 * want:
            self.pll = None
            self.clock_mhz = board.clk_mhz
        else:
            self.pll = pll_params(board.family, board.clk_mhz, want, tolerance=0.05)
            self.clock_mhz = self.pll.f_out
        clock_hz = self.clock_mhz * 1e6
        divisor = round(clock_hz / baud) if baud > 0 else 0
        if divisor < 4 or abs(clock_hz / divisor - baud) > 0.02 * baud:
            raise ValueError(f"baud {baud} cannot be made from the {self.clock_mhz:g} MHz clock "
                             f"on {board.name} (at least 4 cycles per bit, within 2 %)")
        self._config, self._board = config, board
        self._divisor, self._dram_words = divisor, dram_words
        super().__init__({"clk": In(1), "btn": In(1), "uart_rx": In(1),
                          "uart_tx": Out(1, init=1), "led": Out(8)})

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.domains.por = cd_por = ClockDomain("por", reset_less=True)
        clk, locked = self.clk, Const(1)
        if self.pll is not None:
            m.submodules.pll = pll = Pll(self.pll)
            m.d.comb += pll.clk_in.eq(self.clk)
            clk, locked = pll.clk_out, pll.locked
        m.d.comb += [cd.clk.eq(clk), cd_por.clk.eq(clk)]
        # reset: power-on (FFs start at their init value) and PLL lock, then the synchronized
        # button
        por = Signal(4)
        btn_sync = Signal(2, init=0b11 if self._board.button_active_low else 0)
        rst = Signal(init=1)
        pressed = ~btn_sync[1] if self._board.button_active_low else btn_sync[1]
        m.d.por += [btn_sync.eq(Cat(self.btn, btn_sync[0])), rst.eq((por != 0xF) | pressed)]
        with m.If(~locked):
            m.d.por += por.eq(0)
        with m.Elif(por != 0xF):
            m.d.por += por.eq(por + 1)
        m.d.comb += cd.rst.eq(rst)

        m.submodules.core = core = BoardCore(self._config, divisor=self._divisor,
                                             dram_words=self._dram_words)
        m.d.comb += [core.uart_rx.eq(self.uart_rx), self.uart_tx.eq(core.uart_tx)]
        # the LEDs through a register (never reset, so led[1] shows the reset): no logic
        # between the core and the long route to the pins
        m.d.por += self.led.eq(Cat(core.irq, rst, core.status))
        return m
