"""The UART host bridge (hw/fpga/uart.py), the board design (hw/fpga/boards.py) and the driver's
UART backend (sw/uart_backend.py): the whole board driven through its serial line by the driver
(cocotb, sim/tb/uart.py), the UART and the bridge's corner cases in Amaranth's simulator, and
the backend against a Python model of the bridge."""

import gc
import json

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from s4accel.base import uart_proto
from s4accel.base.config import load_config
from s4accel.hw.fpga import boards, uart
from s4accel.hw.fpga.boards import BOARDS, DRAM_BYTES, BoardCore, BoardTop
from s4accel.hw.fpga.uart import Command, UartBridge, UartRx, UartTx
from s4accel.sim.model import uart_model
from s4accel.sim.model.uart_model import ModelTransport
from s4accel.sim.tb import runner
from s4accel.sw import scenarios, uart_backend
from s4accel.sw.driver import DRAM_BASE, CsrBusError, Driver, run
from s4accel.sw.uart_backend import BridgeError, UartBackend

#: Icarus runs about 8x slower than Verilator here, so it runs the protocol test and one layer.
ICARUS_TESTS = ["bridge_protocol", "layer_through_bridge"]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.rtl
@pytest.mark.slow
def test_board_over_uart(sim, seed):
    env = {"S4_SEED": seed}
    if sim == "icarus":
        env["S4_CASES"] = 1
    runner.run_tests("uart_board", load_config("tiny"), sim, "s4accel.sim.tb.uart",
                     testcase=ICARUS_TESTS if sim == "icarus" else None,
                     env=env, tag=f"pytest_{seed}")


# -- Amaranth simulator: the UART and the bridge's protocol corner cases ------------------------

async def send_bits(ctx, line, byte, divisor, stop=1):
    """One 8N1 character on ``line``, ``divisor`` clock cycles per bit."""
    for bit in [0] + [byte >> i & 1 for i in range(8)] + [stop]:
        ctx.set(line, bit)
        await ctx.tick().repeat(divisor)
    ctx.set(line, 1)


async def recv_bits(ctx, line, divisor, max_cycles=100_000):
    """The next 8N1 character on ``line``, sampled in the middle of each bit."""
    for _ in range(max_cycles):
        if not ctx.get(line):
            break
        await ctx.tick()
    else:
        raise AssertionError(f"no start bit within {max_cycles} cycles")
    await ctx.tick().repeat(divisor // 2)
    assert ctx.get(line) == 0, "start bit too short"
    byte = 0
    for i in range(8):
        await ctx.tick().repeat(divisor)
        byte |= ctx.get(line) << i
    await ctx.tick().repeat(divisor)
    assert ctx.get(line) == 1, "no stop bit"
    return byte


@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_loopback(divisor, rng):
    dut = Module()
    dut.submodules.tx = tx = UartTx(divisor)
    dut.submodules.rx = rx = UartRx(divisor)
    dut.d.comb += rx.rx.eq(tx.tx)
    data = [int(b) for b in rng.integers(0, 256, 24)] + [0x00, 0xFF, 0x55]
    got = []

    async def producer(ctx):
        for i, b in enumerate(data):
            ctx.set(tx.i_data.payload, b)
            ctx.set(tx.i_data.valid, 1)
            await ctx.tick().until(tx.i_data.ready)
            ctx.set(tx.i_data.valid, 0)
            if i % 5 == 4:   # idle gaps between characters too
                await ctx.tick().repeat(int(rng.integers(1, 3 * divisor)))

    async def consumer(ctx):
        ctx.set(rx.o_data.ready, 1)
        async for _, _, valid, payload, err, ovr in ctx.tick().sample(
                rx.o_data.valid, rx.o_data.payload, rx.framing_error, rx.overrun):
            assert not err and not ovr
            if valid:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.run_until(len(data) * 12 * divisor * 1e-6 + 1e-4)
    assert got == data


def test_uart_rx_glitch_and_framing_error():
    d = 8
    rx = UartRx(d)
    events = []

    async def bench(ctx):
        ctx.set(rx.rx, 1)
        ctx.set(rx.o_data.ready, 1)
        await ctx.tick().repeat(4)
        ctx.set(rx.rx, 0)                 # shorter than half a bit: not a start bit
        await ctx.tick().repeat(d // 2 - 2)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(2 * d)
        await send_bits(ctx, rx.rx, 0xA5, d, stop=0)     # framing error
        await ctx.tick().repeat(2 * d)
        await send_bits(ctx, rx.rx, 0x3C, d)
        await ctx.tick().repeat(2 * d)

    async def watch(ctx):
        async for _, _, valid, payload, err in ctx.tick().sample(
                rx.o_data.valid, rx.o_data.payload, rx.framing_error):
            if valid:
                events.append(payload)
            if err:
                events.append("framing")

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert events == ["framing", 0x3C]


def test_bridge_unknown_command_status_and_timeout():
    d = 4
    dut = UartBridge(d, timeout_bits=30)
    replies = []

    async def host(ctx):
        ctx.set(dut.rx, 1)
        ctx.set(dut.irq, 1)
        await ctx.tick().repeat(8)

        async def reply(n):
            return [await recv_bits(ctx, dut.tx, d) for _ in range(n)]

        await send_bits(ctx, dut.rx, 0x42, d)
        replies.append(await reply(2))
        await send_bits(ctx, dut.rx, Command.STATUS, d)
        replies.append(await reply(10))
        # a CSR write cut short: abandoned after timeout_bits, then the bridge is idle
        for b in (Command.CSR_WRITE, 0x10, 0x00):
            await send_bits(ctx, dut.rx, b, d)
        await ctx.tick().repeat(40 * d)
        assert not ctx.get(dut.busy)
        await send_bits(ctx, dut.rx, Command.STATUS, d)
        replies.append(await reply(10))
        await send_bits(ctx, dut.rx, Command.STATUS, d)
        replies.append(await reply(10))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run()
    assert replies[0] == [0xEE, 0x42]
    status = [(r[0], r[1], int.from_bytes(bytes(r[2:]), "little")) for r in replies[1:]]
    assert [s[:2] for s in status] == [(0x85, 0x01), (0x85, 0x09), (0x85, 0x01)], status
    assert 0 < status[0][2] < status[1][2] < status[2][2] < 1 << 48


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_parameters_are_checked():
    with pytest.raises(ValueError, match="divisor must be an integer of at least 4"):
        UartRx(3)
    with pytest.raises(ValueError, match="counter_width must be 16..64"):
        UartBridge(8, counter_width=80)
    with pytest.raises(ValueError, match="baud 2500000 cannot be made from the 24 MHz clock"):
        BoardTop(load_config("tiny"), BOARDS["icebreaker"], baud=2_500_000)
    with pytest.raises(ValueError, match="dram_words must be a positive power of two"):
        BoardCore(load_config("tiny"), divisor=8, dram_words=1000)
    assert BoardTop(load_config("tiny"), BOARDS["ulx3s"], baud=1_000_000).divisor == 25
    assert DRAM_BYTES == uart_backend.DRAM_BYTES
    gc.collect()    # the refused objects warn when collected: while the filter is on


def test_one_protocol_definition():
    """The gateware, the backend and the model share s4accel.base.uart_proto, whose bytes and
    lengths are the protocol of hw/fpga/uart.py's documentation."""
    C, R = uart_proto.Command, uart_proto.Reply
    assert {int(c): c.request_len for c in C} == {1: 9, 2: 5, 3: 7, 4: 7, 5: 1}
    assert {int(c): c.reply_len for c in C} == {1: 2, 2: 6, 3: 2, 4: 2, 5: 10}
    assert [int(c.reply) for c in C] == [0x81, 0x82, 0x83, 0x84, 0x85] == [int(r) for r in R]
    assert (uart_proto.ERROR, uart_proto.ERROR_REPLY_LEN, uart_proto.MAX_ARGS) == (0xEE, 2, 8)
    assert uart_proto.DRAM_BYTES == 16 << 10
    assert uart.Command is uart_backend.Command is C and uart.Reply is R
    assert boards.DRAM_BYTES is uart_backend.DRAM_BYTES is uart_proto.DRAM_BYTES
    assert uart_model.Command is C and uart_model.ERROR is uart_proto.ERROR


# -- the driver's UART backend against a Python model of the bridge -----------------------------

def test_uart_backend_runs_a_layer_on_the_model_bridge(rng):
    bridge = ModelTransport("tiny")
    dev = Driver(UartBackend(bridge), ring_slots=16)
    run(dev.open())
    x, packed, params = scenarios.random_layer(rng, dev.info, 4, "int8", m=3, n=5, k=70)
    res = run(dev.run_layer(x, packed, params))
    assert np.array_equal(res.y, scenarios.expected(x, packed, params))
    assert res.cycles > 0


class Canned:
    """A transport that answers every command with the same bytes."""

    def __init__(self, reply):
        self.reply = reply

    async def send(self, data):
        pass

    async def recv(self, n):
        return self.reply[:n]


def test_uart_backend_errors():
    with pytest.raises(BridgeError, match=r"CSR read 0x8: sent 02 08 00 00 00, expected 6 "
                                          r"bytes starting 82, no reply"):
        run(UartBackend(Canned(b"")).read32(8))
    with pytest.raises(BridgeError, match=r"status: .* received ee 05"):
        run(UartBackend(Canned(b"\xee\x05")).cycle())
    # a register access the device refuses is the Backend contract's CsrBusError (the bridge
    # itself worked)
    with pytest.raises(CsrBusError, match="CSR write at offset 0xffc: .* DECERR"):
        run(UartBackend(Canned(b"\x81\x03")).write32(0xFFC, 1))
    with pytest.raises(BridgeError, match="a lost byte"):
        run(UartBackend(Canned(b"\x85\x02" + bytes(8))).wait_irq(10))
    be = UartBackend(Canned(b""))
    with pytest.raises(ValueError, match=r"memory write \[0x10003ffe, 0x10004002\) is outside"):
        run(be.mem_write(DRAM_BASE + DRAM_BYTES - 2, b"1234"))
    with pytest.raises(NotImplementedError, match="cannot inject bus errors"):
        be.inject_bus_error(0, 1, "slverr")


def test_fpga_run_command_on_the_model_port(capsys):
    from s4accel.cli import main
    assert main(["fpga", "run", "--port", "model", "--seed", "5", "--sparsity", "2", "32",
                 "--shape", "5x96x12", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["sparsity"], r["bit_exact"], r["mismatches"]) for r in rows] == \
        [(2, True, 0), (32, True, 0)]
    assert main(["fpga", "run", "--port", "model", "--sparsity", "3"]) == 1
    assert "sparsity 3 is not supported" in capsys.readouterr().err


def test_serial_transport_through_a_pty():
    """SerialTransport (pyserial) on a pseudo-terminal whose other end is the bridge protocol
    answered by the functional model: the path a board's USB serial port takes."""
    import os
    import threading

    from s4accel.sw.board import run_layers
    from s4accel.sw.uart_backend import SerialTransport

    master, slave = os.openpty()
    model = ModelTransport("tiny")
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            run(model.send(data))
            out = run(model.recv(1 << 20))
            if out:
                os.write(master, out)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with SerialTransport(os.ttyname(slave), 115_200, timeout=2.0) as port:
            rows = run(run_layers(port, sparsities=[8], shape=(3, 64, 6), seed=11,
                                  say=lambda *a: None))
        assert rows[0]["bit_exact"] and rows[0]["cycles"] > 0
    finally:
        stop.set()
        os.close(master)
        os.close(slave)
