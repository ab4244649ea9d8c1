"""UART host bridge: a serial port reaches the accelerator's registers and the board's DRAM.

:class:`UartRx` and :class:`UartTx` are 8N1 (one start bit, eight data bits LSB first, one stop
bit, no parity) at ``divisor`` clock cycles per bit. :class:`UartBridge` decodes the byte
protocol below into AXI4-Lite register accesses (``csr``) and AXI4 memory accesses (``mem``).
The host driver side is ``s4accel.sw.uart_backend``; the command and reply bytes and lengths
are defined once, in ``s4accel.base.uart_proto``, for both sides.

Protocol
--------
All multi-byte fields are little-endian. The host sends one command and waits for its reply
before sending the next (a memory write's data bytes are part of its command).

=========================== ========================== =========================================
command (host -> board)     reply (board -> host)      meaning
=========================== ========================== =========================================
``01 addr32 data32``        ``81 resp8``               CSR write (``addr`` low 12 bits)
``02 addr32``               ``82 resp8 data32``        CSR read
``03 addr32 len16 data*``   ``83 resp8``               memory write of ``len`` bytes
``04 addr32 len16``         ``84 data*len resp8``      memory read of ``len`` bytes
``05``                      ``85 flags8 cycles64``     status
other byte ``c``            ``EE c``                   unknown command; the bridge is idle again
=========================== ========================== =========================================

- ``resp8`` is the AXI response (0 OKAY, 2 SLVERR, 3 DECERR); for memory commands the first
  non-OKAY response of the command's accesses, else 0. A memory read sends its data as it reads
  it, so the response comes last.
- ``len`` 0 is allowed: no data, the reply follows at once.
- Memory accesses are single-beat byte accesses (``axsize`` 0, the byte's ``wstrb`` lane).
- ``flags8``: bit 0 the interrupt line; bits 1-3 sticky since the previous status reply: a
  received byte was lost (receive FIFO full), a framing error (no stop bit), a command was
  abandoned because the host paused for more than ``timeout_bits`` bit times inside it (the
  bridge then waits for a new command byte).
- ``cycles64``: the free-running cycle counter (``counter_width`` bits, zero-extended) when the
  status command arrived.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import cdc, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ...base.uart_proto import ERROR, ERROR_REPLY_LEN, MAX_ARGS, Command, Reply
from ..bus.axi import AXI4, BURST_INCR, AXI4Lite, Resp
from ..bus.slice import RegSlice

__all__ = ["UartRx", "UartTx", "UartBridge", "Command", "Reply"]


class _Kind(enum.Enum, shape=3):
    """Which fixed reply the bridge's REPLY state loads."""
    STATUS = 0
    UNKNOWN = 1
    CSR_WRITE = 2
    CSR_READ = 3
    MEM_WRITE = 4
    MR_HEAD = 5     #: the MEM_READ header, before the data bytes
    MR_END = 6      #: the MEM_READ response byte, after them


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor must be an integer of at least 4 (clock cycles per bit), "
                         f"not {divisor!r}")


class _UartSide(wiring.Component):
    """A UART direction at ``divisor`` clock cycles per bit (members: the subclass's)."""

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor


class UartRx(_UartSide):
    """8N1 receiver.

    The line goes through a two-flip-flop synchronizer; a start bit is confirmed at its middle
    and every bit is sampled at its middle, counted from the falling edge. A byte whose stop
    bit is low is dropped (framing error) and the receiver waits for the line to go high.

    Members
    -------
    rx : In(1)
        The serial line (asynchronous, idle high).
    o_data : Out(stream.Signature(8))
        Received bytes. There is no backpressure on a serial line: a byte that completes while
        the previous one is still waiting here is dropped (``overrun``).
    overrun, framing_error : Out(1)
        High for one cycle when a byte is dropped.
    active : Out(1)
        Receiving a byte.
    """

    rx: In(1)
    o_data: Out(stream.Signature(8))
    overrun: Out(1)
    framing_error: Out(1)
    active: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        line = Signal(init=1)
        m.submodules.sync = cdc.FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(d))
        bits = Signal(range(8))
        shreg = Signal(8)
        out = self.o_data
        # comb outputs are plain expressions of the state
        stop = Signal()         # sampling the stop bit
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                    # a glitch shorter than half a bit is not a start bit
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bits.eq(bits + 1),
                                 shreg.eq(Cat(shreg[1:], line))]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(~line):
                        m.next = "BREAK"
                    with m.Else():
                        with m.If(~self.overrun):
                            m.d.sync += [out.payload.eq(shreg), out.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        m.d.comb += [
            stop.eq(fsm.ongoing("STOP") & (timer == 0)),
            self.framing_error.eq(stop & ~line),
            self.overrun.eq(stop & line & out.valid & ~out.ready),
            self.active.eq(fsm.ongoing("START") | fsm.ongoing("DATA") | fsm.ongoing("STOP")),
        ]
        return m


class UartTx(_UartSide):
    """8N1 transmitter.

    Members
    -------
    i_data : In(stream.Signature(8))
        Bytes to send; taken when the transmitter is idle.
    tx : Out(1)
        The serial line (idle high).
    active : Out(1)
        Sending a byte.
    """

    i_data: In(stream.Signature(8))
    tx: Out(1, init=1)
    active: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        bits = Signal(range(10))
        shreg = Signal(9)       # data bits, then the stop bit
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.i_data.valid):
                    m.d.sync += [self.tx.eq(0), shreg.eq(Cat(self.i_data.payload, Const(1, 1))),
                                 timer.eq(d - 1), bits.eq(9)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bits.eq(bits - 1)]
                    with m.If(bits == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg[1:])]
        m.d.comb += [self.i_data.ready.eq(fsm.ongoing("IDLE")),
                     self.active.eq(fsm.ongoing("SEND"))]
        return m


class UartBridge(wiring.Component):
    """Serial host bridge: the protocol of :mod:`this module <.uart>` to AXI4-Lite (``csr``)
    and AXI4 (``mem``).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (``round(clock_hz / baud)``), at least 4.
    mem_data_width, mem_id_width : int
        The memory port's data and ID widths.
    csr_addr_width : int
        The register port's address width (the low bits of the host's address).
    fifo_depth : int
        Receive FIFO bytes: room for the bytes that arrive while the bridge waits for the
        memory (which the accelerator may hold for a burst).
    timeout_bits : int
        A command whose next byte does not come within this many bit times is abandoned
        (0: never), so that a host can resynchronize after an interrupted command.
    counter_width : int
        Width of the free-running cycle counter, 64 at most.

    Members
    -------
    rx : In(1)
        Serial line from the host.
    tx : Out(1)
        Serial line to the host.
    csr : Out(AXI4Lite.Signature(addr_width=csr_addr_width, data_width=32))
        Register port.
    mem : Out(AXI4.Signature(addr_width=32, data_width=mem_data_width, id_width=mem_id_width))
        Memory port (ID 0, single-beat byte accesses).
    irq : In(1)
        The accelerator's interrupt, reported by the status command.
    flags : Out(3)
        The sticky error flags (status ``flags8`` bits 1-3) not yet reported.
    rx_active, tx_active, busy : Out(1)
        Receiving, sending, inside a command.
    """

    def __init__(self, divisor: int, *, mem_data_width=32, mem_id_width=4, csr_addr_width=12,
                 fifo_depth=16, timeout_bits=10_000, counter_width=48):
        _check_divisor(divisor)
        if not isinstance(counter_width, int) or not 16 <= counter_width <= 64:
            raise ValueError(f"counter_width must be 16..64, not {counter_width!r}")
        if not isinstance(fifo_depth, int) or fifo_depth < 1:
            raise ValueError(f"fifo_depth must be a positive integer, not {fifo_depth!r}")
        if not isinstance(timeout_bits, int) or timeout_bits < 0:
            raise ValueError(f"timeout_bits must be a non-negative integer, not "
                             f"{timeout_bits!r}")
        self._divisor, self._fifo_depth = divisor, fifo_depth
        self._timeout_bits, self._counter_width = timeout_bits, counter_width
        super().__init__({
            "rx": In(1), "tx": Out(1, init=1),
            "csr": Out(AXI4Lite.Signature(addr_width=csr_addr_width, data_width=32)),
            "mem": Out(AXI4.Signature(addr_width=32, data_width=mem_data_width,
                                      id_width=mem_id_width)),
            "irq": In(1), "flags": Out(3),
            "rx_active": Out(1), "tx_active": Out(1), "busy": Out(1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        csr, mem = self.csr, self.mem
        m.submodules.receiver = rx = UartRx(self._divisor)
        m.submodules.transmitter = tx = UartTx(self._divisor)
        m.submodules.fifo = rxq = fifo.SyncFIFOBuffered(width=8, depth=self._fifo_depth)
        # register slices between the bridge and the receiver / transmitter: those sit by their
        # pins, the bridge by the buses it drives, and every path between them now starts and
        # ends at a flip-flop (the transmitter's ready into the reply shift register crossed
        # the chip: 11.3 ns on ulx3s / fpga). A cycle each way is nothing at a bit time.
        m.submodules.rx_slice = rx_slice = RegSlice(8)
        m.submodules.tx_slice = tx_slice = RegSlice(8)
        wiring.connect(m, producer=rx.o_data, consumer=rx_slice.i)
        wiring.connect(m, producer=rx_slice.o, consumer=rxq.w_stream)
        wiring.connect(m, producer=tx_slice.o, consumer=tx.i_data)
        inp = rxq.r_stream
        out = tx_slice.i
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx),
                     self.rx_active.eq(rx.active), self.tx_active.eq(tx.active)]

        counter = Signal(self._counter_width)
        m.d.sync += counter.eq(counter + 1)

        overrun, framing, timed_out = Signal(), Signal(), Signal()
        m.d.comb += self.flags.eq(Cat(overrun, framing, timed_out))

        cmd = Signal(8)
        args = Signal(8 * MAX_ARGS)     # addr32, then data32 or len16
        nargs = Signal(range(MAX_ARGS + 1))
        idx = Signal(range(MAX_ARGS + 1))
        addr = args[:32]
        count = Signal(16)
        byte = Signal(8)
        resp = Signal(2)        # first non-OKAY response of a memory command
        longest = max(c.reply_len for c in Command)
        reply = Signal(8 * longest)     # fixed replies, sent from the low byte up
        kind = Signal(_Kind)    # the reply the REPLY state loads
        bresp_q, rresp_q = Signal(2), Signal(2)
        rdata_q = Signal(32)
        nreply = Signal(range(longest + 1))
        aw_done, w_done = Signal(), Signal()

        nbytes = len(mem.wdata) // 8
        shift = (nbytes - 1).bit_length()
        lane = addr[:shift] if shift else Const(0, 1)

        # a command whose next byte is late is abandoned
        waiting = Signal()
        limit = self._timeout_bits * self._divisor
        late = Signal()
        if limit:
            idle = Signal(range(limit + 1))
            with m.If(waiting & ~inp.valid):
                m.d.sync += idle.eq(idle + 1)
            with m.Else():
                m.d.sync += idle.eq(0)
            m.d.comb += late.eq(waiting & (idle == limit))

        m.d.comb += [
            csr.awaddr.eq(addr), csr.araddr.eq(addr), csr.wdata.eq(args[32:]),
            csr.wstrb.eq(0xF), csr.awprot.eq(0), csr.arprot.eq(0),
            mem.awaddr.eq(addr), mem.araddr.eq(addr), mem.awlen.eq(0), mem.arlen.eq(0),
            mem.awsize.eq(0), mem.arsize.eq(0), mem.awburst.eq(BURST_INCR),
            mem.arburst.eq(BURST_INCR), mem.awid.eq(0), mem.arid.eq(0), mem.awprot.eq(0),
            mem.arprot.eq(0), mem.awcache.eq(0), mem.arcache.eq(0),
            mem.wdata.eq(Cat(*[byte] * nbytes)), mem.wstrb.eq(Const(1, nbytes) << lane),
            mem.wlast.eq(1),
        ]

        def first_error(r):
            with m.If(resp == Resp.OKAY):
                m.d.sync += resp.eq(r)

        # Memory bytes are stepped (address + 1, count - 1) in states of their own, and the
        # memory side's B and R are always taken: the bridge has one transfer outstanding,
        # and a response is captured (b_got / r_got, cleared when the next transfer starts)
        # whenever it arrives. So no register enable waits on a state decode and a handshake
        # together (10.3 ns on ulx3s / fpga, across the chip to the AXI slice).
        count_zero = Signal()     # register: count == 0

        def step():
            m.d.sync += [addr.eq(addr + 1), count.eq(count - 1), count_zero.eq(count == 1)]

        b_got, r_got = Signal(), Signal()
        bresp_m, rresp_m = Signal(2), Signal(2)
        rbyte_m = Signal(8)
        with m.If(mem.bvalid):
            m.d.sync += [b_got.eq(1), bresp_m.eq(mem.bresp)]
        with m.If(mem.rvalid):
            m.d.sync += [r_got.eq(1), rresp_m.eq(mem.rresp),
                         rbyte_m.eq(mem.rdata.word_select(lane, 8))]

        with m.If(rx.overrun):
            m.d.sync += overrun.eq(1)
        with m.If(rx.framing_error):
            m.d.sync += framing.eq(1)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(inp.valid):
                    m.d.sync += [cmd.eq(inp.payload), idx.eq(0), resp.eq(Resp.OKAY),
                                 aw_done.eq(0), w_done.eq(0)]
                    with m.Switch(inp.payload):
                        for code in (Command.CSR_WRITE, Command.CSR_READ, Command.MEM_WRITE,
                                     Command.MEM_READ):
                            with m.Case(code.value):
                                m.d.sync += nargs.eq(code.args)
                                m.next = "ARGS"
                        with m.Case(Command.STATUS.value):
                            m.d.sync += kind.eq(_Kind.STATUS)
                            m.next = "REPLY"
                        with m.Default():
                            m.d.sync += kind.eq(_Kind.UNKNOWN)
                            m.next = "REPLY"
            with m.State("ARGS"):
                with m.If(inp.valid):
                    m.d.sync += [args.word_select(idx, 8).eq(inp.payload), idx.eq(idx + 1)]
                    with m.If(idx == nargs - 1):
                        m.next = "DISPATCH"
                with m.Elif(late):
                    m.d.sync += timed_out.eq(1)
                    m.next = "IDLE"
            with m.State("DISPATCH"):
                m.d.sync += [count.eq(args[32:48]), count_zero.eq(args[32:48] == 0)]
                with m.Switch(cmd):
                    with m.Case(Command.CSR_WRITE.value):
                        m.next = "CSR_W"
                    with m.Case(Command.CSR_READ.value):
                        m.next = "CSR_AR"
                    with m.Case(Command.MEM_WRITE.value):
                        m.next = "MW_DATA"
                    with m.Default():
                        m.d.sync += kind.eq(_Kind.MR_HEAD)
                        m.next = "REPLY"

            # -- registers --------------------------------------------------------------------
            with m.State("CSR_W"):
                with m.If(csr.awvalid & csr.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(csr.wvalid & csr.wready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | csr.awready) & (w_done | csr.wready)):
                    m.next = "CSR_B"
            with m.State("CSR_B"):
                with m.If(csr.bvalid):
                    m.d.sync += [bresp_q.eq(csr.bresp), kind.eq(_Kind.CSR_WRITE)]
                    m.next = "REPLY"
            with m.State("CSR_AR"):
                with m.If(csr.arready):
                    m.next = "CSR_R"
            with m.State("CSR_R"):
                with m.If(csr.rvalid):
                    m.d.sync += [rresp_q.eq(csr.rresp), rdata_q.eq(csr.rdata),
                                 kind.eq(_Kind.CSR_READ)]
                    m.next = "REPLY"

            # -- memory write -----------------------------------------------------------------
            with m.State("MW_DATA"):
                with m.If(count_zero):
                    m.d.sync += kind.eq(_Kind.MEM_WRITE)
                    m.next = "REPLY"
                with m.Else():
                    with m.If(inp.valid):
                        m.d.sync += [byte.eq(inp.payload), aw_done.eq(0), w_done.eq(0),
                                     b_got.eq(0)]
                        m.next = "MW_AW"
                    with m.Elif(late):
                        m.d.sync += timed_out.eq(1)
                        m.next = "IDLE"
            with m.State("MW_AW"):
                with m.If(mem.awvalid & mem.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(mem.wvalid & mem.wready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | mem.awready) & (w_done | mem.wready)):
                    m.next = "MW_B"
            with m.State("MW_B"):
                with m.If(b_got):
                    first_error(bresp_m)
                    m.next = "MW_STEP"
            with m.State("MW_STEP"):
                step()
                m.next = "MW_DATA"

            # -- memory read ------------------------------------------------------------------
            with m.State("MR_HEAD"):
                with m.If(out.ready):
                    m.next = "MR_NEXT"
            with m.State("MR_NEXT"):
                with m.If(count_zero):
                    m.d.sync += kind.eq(_Kind.MR_END)
                    m.next = "REPLY"
                with m.Else():
                    m.d.sync += r_got.eq(0)
                    m.next = "MR_AR"
            with m.State("MR_AR"):
                with m.If(mem.arready):
                    m.next = "MR_R"
            with m.State("MR_R"):
                with m.If(r_got):
                    first_error(rresp_m)
                    m.d.sync += byte.eq(rbyte_m)
                    m.next = "MR_DATA"
            with m.State("MR_DATA"):
                with m.If(out.ready):
                    m.next = "MR_STEP"
            with m.State("MR_STEP"):
                step()
                m.next = "MR_NEXT"

            # -- fixed replies ----------------------------------------------------------------
            # loaded in a state of their own from registered sources, so the 80-bit reply
            # register's enable is a state decode, not the handshakes that ended the command
            with m.State("REPLY"):
                m.next = "SEND"
                with m.Switch(kind):
                    with m.Case(_Kind.STATUS):
                        flags = Cat(self.irq, overrun, framing, timed_out, Const(0, 4))
                        m.d.sync += [
                            reply.eq(Cat(Const(Reply.STATUS, 8), flags, counter)),
                            nreply.eq(Command.STATUS.reply_len), overrun.eq(rx.overrun),
                            framing.eq(rx.framing_error), timed_out.eq(0)]
                    with m.Case(_Kind.UNKNOWN):
                        m.d.sync += [reply.eq(Cat(Const(ERROR, 8), cmd)),
                                     nreply.eq(ERROR_REPLY_LEN)]
                    with m.Case(_Kind.CSR_WRITE):
                        m.d.sync += [reply.eq(Cat(Const(Reply.CSR_WRITE, 8), bresp_q)),
                                     nreply.eq(Command.CSR_WRITE.reply_len)]
                    with m.Case(_Kind.CSR_READ):
                        m.d.sync += [reply.eq(Cat(Const(Reply.CSR_READ, 8), rresp_q,
                                                  Const(0, 6), rdata_q)),
                                     nreply.eq(Command.CSR_READ.reply_len)]
                    with m.Case(_Kind.MEM_WRITE):
                        m.d.sync += [reply.eq(Cat(Const(Reply.MEM_WRITE, 8), resp)),
                                     nreply.eq(Command.MEM_WRITE.reply_len)]
                    with m.Case(_Kind.MR_HEAD):
                        m.d.sync += [reply.eq(Reply.MEM_READ), nreply.eq(1)]
                        m.next = "MR_HEAD"
                    with m.Case(_Kind.MR_END):
                        m.d.sync += [reply.eq(resp), nreply.eq(1)]
            with m.State("SEND"):
                with m.If(out.ready):
                    m.d.sync += [reply.eq(reply[8:]), nreply.eq(nreply - 1)]
                    with m.If(nreply == 1):
                        m.next = "IDLE"

        # handshakes as plain expressions of the state, not comb assignments inside states
        st = fsm.ongoing
        take_data = st("MW_DATA") & ~count_zero
        m.d.comb += [
            inp.ready.eq(st("IDLE") | st("ARGS") | take_data),
            waiting.eq(st("ARGS") | take_data),
            self.busy.eq(~st("IDLE")),
            csr.awvalid.eq(st("CSR_W") & ~aw_done), csr.wvalid.eq(st("CSR_W") & ~w_done),
            csr.bready.eq(st("CSR_B")), csr.arvalid.eq(st("CSR_AR")), csr.rready.eq(st("CSR_R")),
            mem.awvalid.eq(st("MW_AW") & ~aw_done), mem.wvalid.eq(st("MW_AW") & ~w_done),
            mem.bready.eq(1), mem.arvalid.eq(st("MR_AR")), mem.rready.eq(1),
            out.valid.eq(st("SEND") | st("MR_HEAD") | st("MR_DATA")),
            out.payload.eq(Mux(st("MR_DATA"), byte, reply[:8])),
        ]
        return m
