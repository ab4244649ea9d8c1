"""cocotb tests of the board design (``hw/fpga/boards.py`` :func:`sim_board`: the accelerator,
its on-chip DRAM shared through the AXI arbiter, and the UART host bridge) driven through the
serial line only, by the driver's :class:`~s4accel.sw.uart_backend.UartBackend`.

The host's UART is cocotbext-uart (``UartSource`` on ``uart_rx``, ``UartSink`` on ``uart_tx``)
at :data:`~s4accel.hw.fpga.boards.SIM_DIVISOR` clock cycles per bit. The layer test runs the
same driver program as the functional model and compares bit for bit.
"""

from __future__ import annotations

import logging

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from cocotbext.uart import UartSink, UartSource

from ...base.uart_proto import DRAM_BYTES, ERROR, Command
from ...hw.fpga.boards import SIM_DIVISOR, board_config
from ...sw import regs, scenarios
from ...sw.driver import DRAM_BASE, CsrBusError, Driver
from ...sw.uart_backend import UartBackend
from ..model.device_model import ModelBackend
from .base import CLOCK_NS, cases_from_env, config_from_env, rng_from_env, start

BIT_NS = SIM_DIVISOR * CLOCK_NS
#: A reply byte later than this (after the previous one) is a timeout.
SILENCE_NS = 2_000_000


class SimTransport:
    """The host's serial port: bytes to ``uart_rx``, bytes from ``uart_tx``."""

    def __init__(self, dut):
        self.source = UartSource(dut.uart_rx, baud=1e9 / BIT_NS)
        self.sink = UartSink(dut.uart_tx, baud=1e9 / BIT_NS)
        for model in (self.source, self.sink):
            model.log.setLevel(logging.WARNING)    # one INFO line per byte otherwise
        self.sent = self.received = 0

    async def send(self, data: bytes) -> None:
        self.sent += len(data)
        await self.source.write(data)
        await self.source.wait()        # as a blocking write: the timeout counts from here

    async def recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if self.sink.empty():
                await self.sink.wait(SILENCE_NS, "ns")
                if self.sink.empty():
                    break
            buf += self.sink.read_nowait(min(n - len(buf), self.sink.count()))
        self.received += len(buf)
        return bytes(buf)

    async def drain(self) -> bytes:
        await self.sink.wait(20 * BIT_NS, "ns")
        return bytes(self.sink.read_nowait())


class TB:
    """Owns the clock, the reset and the host's serial port."""

    def __init__(self, dut):
        self.dut = dut
        self.port = SimTransport(dut)
        self.be = UartBackend(self.port, dram_base=DRAM_BASE, dram_size=DRAM_BYTES)

    async def start(self):
        await start(self.dut, 4)

    async def open(self):
        await self.start()
        dev = Driver(self.be, ring_slots=16)
        await dev.open()
        return dev

    def log_traffic(self, label, t0):
        self.dut._log.info("%s: %d bytes sent, %d received, %.0f us simulated", label,
                           self.port.sent, self.port.received,
                           (cocotb.utils.get_sim_time("ns") - t0) / 1000)


async def _raw(port, data: bytes, n: int) -> bytes:
    await port.send(data)
    return await port.recv(n)


@cocotb.test()
async def bridge_protocol(dut):
    """Register read/write round trip, status and cycle counter, unknown commands (the bridge
    answers EE and the byte, then works), empty memory commands, unaligned memory round trips,
    and a DECERR register read reported as such."""
    rng = rng_from_env(dut, "bridge_protocol")
    tb = TB(dut)
    await tb.start()
    be, port = tb.be, tb.port
    assert await be.read32(regs.ID) == regs.ID_VALUE_RESET
    for _ in range(4):
        value = int(rng.integers(0, 1 << 32))
        await be.write32(regs.WIN1_BASE, value)
        got = await be.read32(regs.WIN1_BASE)
        assert got == value, f"WIN1_BASE reads {got:#x} after writing {value:#x}"
    flags, c0 = await be.status()
    flags, c1 = await be.status()
    assert flags == 0, f"status flags {flags:#x}"
    # a status command is 1 + 10 bytes on the line, 10 bit times each
    assert 110 * SIM_DIVISOR <= c1 - c0 < 200 * SIM_DIVISOR, f"cycle counter {c0} -> {c1}"
    assert await be.cycle() > c1
    for byte in (0x00, 0x06, 0x7F, 0x80, 0x81, 0xEE, 0xFF, int(rng.integers(0x06, 0x100))):
        got = await _raw(port, bytes([byte]), 2)
        assert got == bytes([ERROR, byte]), f"unknown command {byte:#04x}: {got.hex()}"
    assert await be.read32(regs.ID) == regs.ID_VALUE_RESET, "no register access after junk"
    assert await _raw(port, bytes([Command.MEM_WRITE, 0, 0, 0, 0x10, 0, 0]), 2) == b"\x83\x00"
    assert await _raw(port, bytes([Command.MEM_READ, 0, 0, 0, 0x10, 0, 0]), 3) == b"\x84\x00"
    span = 160
    base = DRAM_BASE + DRAM_BYTES - span    # the top of DRAM: its aliases wrap to the bottom
    shadow = bytearray(await be.mem_read(base, span))
    for _ in range(8):
        off = int(rng.integers(0, span - 8))
        n = int(rng.integers(1, min(span - off, 48) + 1))
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        await be.mem_write(base + off, data)
        shadow[off:off + n] = data
        lo = int(rng.integers(max(0, off - 8), off + 1))
        hi = int(rng.integers(off + n, min(span, off + n + 8) + 1))
        got = await be.mem_read(base + lo, hi - lo)
        assert got == bytes(shadow[lo:hi]), \
            f"memory [{lo}, {hi}) after writing [{off}, {off + n}) differs"
    try:
        await be.read32(0xFFC)
    except CsrBusError as e:
        assert e.resp == "DECERR" and not e.write, e
    else:
        raise AssertionError("a read of an unmapped register reported no error")
    flags, _ = await be.status()
    assert flags == 0, f"status flags {flags:#x} at the end"


@cocotb.test()
async def layer_through_bridge(dut):
    """Small random layers (raw int32 and int8 with bias, requant, ReLU, LUT; one per sparsity
    level, or ``S4_CASES`` of them) run by the driver through the bridge, bit-exact against the
    golden model and the functional model running the same program bytes."""
    cfg = config_from_env()
    rng = rng_from_env(dut, "layer_through_bridge")
    tb = TB(dut)
    t0 = cocotb.utils.get_sim_time("ns")
    dev = await tb.open()
    # (the board's configuration: board builds leave the vector unit out)
    model = Driver(ModelBackend(board_config(cfg), DRAM_BASE, DRAM_BYTES), ring_slots=16)
    await model.open()
    assert model.info == dev.info, f"capabilities differ: board {dev.info}, model {model.info}"
    info = dev.info
    levels = list(cfg.sparsities)
    rng.shuffle(levels)
    cases = cases_from_env(len(levels))
    for i in range(cases):
        s, mode = levels[i % len(levels)], ("raw", "int8")[i % 2]
        x, packed, params = scenarios.random_layer(
            rng, info, s, mode, m=int(rng.integers(1, 2 * info.rows + 1)),
            n=int(rng.integers(1, 2 * info.cols + 1)), k=int(rng.integers(1, 80)))
        res = await scenarios.check_layer_against_model(dev, model, x, packed, params,
                                                        f"s={s} {mode}")
        dut._log.info("s=%d %s M=%d N=%d K=%d: %d cycles, %d descriptors", s, mode,
                      x.shape[0], packed.n, packed.k, res.cycles, res.descriptors)
    tb.log_traffic("layers", t0)


@cocotb.test()
async def dram_shared_while_running(dut):
    """The bridge reads the job's DRAM images and writes and reads a free region while the
    accelerator runs the job from the same RAM: the arbiter makes the bridge wait for the
    accelerator's bursts (counted), every byte reads back right and the job's result is
    bit-exact."""
    rng = rng_from_env(dut, "dram_shared_while_running")
    tb = TB(dut)
    dev = await tb.open()
    be = tb.be
    info = dev.info
    x, packed, params = scenarios.random_layer(rng, info, 1, "raw", m=3 * info.rows,
                                               n=2 * info.cols, k=150)
    prog = dev.program(x, packed, params)
    scratch = dev.alloc.alloc(64)
    for addr, data in prog.images:
        await be.mem_write(addr, data)
    arb = dut.arbiter
    waited = [0]       # cycles the bridge's request waited while the accelerator held the RAM

    async def count_waits():
        while True:
            await RisingEdge(dut.clk)
            if (arb.mgr1__arvalid.value == 1 or arb.mgr1__awvalid.value == 1) and \
                    arb.grant.value == 1:
                waited[0] += 1
    watcher = cocotb.start_soon(count_waits())
    await dev.submit(prog.descs)
    assert (await be.read32(regs.STATUS)) & 1, "the job should be running"
    data = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    for addr, image in prog.images:
        n = min(len(image), 96)
        got = await be.mem_read(addr, n)
        assert got == image[:n], f"image at {addr:#x} reads back wrong while the job runs"
        await be.mem_write(scratch, data)
        assert await be.mem_read(scratch, 64) == data, "scratch region reads back wrong"
    await dev.wait(2_000_000)
    watcher.cancel()
    out = {a: await be.mem_read(a, n) for a, n, *_ in prog.outputs}
    y = prog.decode(lambda a, n: out[a][:n])
    exp = scenarios.expected(x, packed, params)
    assert np.array_equal(y.astype(np.int64), exp.astype(np.int64)), \
        "the job's output differs from the golden model"
    dut._log.info("bridge requests waited %d cycles for the accelerator's DRAM bursts",
                  waited[0])
    assert waited[0] > 0, "the bridge never met the accelerator at the RAM: nothing was shared"


@cocotb.test()
async def error_job_through_bridge(dut):
    """A bad descriptor's error code, faulting address and interrupt reach the driver through
    the bridge; the next job is correct."""
    rng = rng_from_env(dut, "error_job_through_bridge")
    tb = TB(dut)
    dev = await tb.open()
    good = scenarios.random_layer(rng, dev.info, 4, "raw", m=2, n=3, k=32)
    wanted = {"unknown opcode", "out of window"}
    cases = [c for c in scenarios.error_programs(dev, bus_errors=False) if c[0] in wanted]
    assert {c[0] for c in cases} == wanted
    reported = []      # the interrupt bit of every status reply
    status = tb.be.status

    async def watched_status():
        flags, cycles = await status()
        reported.append(flags & 1)
        return flags, cycles
    tb.be.status = watched_status
    for name, code, descs, index in cases:
        reported.clear()

        def irq_reported(name=name):
            # checked as soon as the error is reported (and acknowledged)
            assert any(reported), f"{name}: no status reply showed the interrupt"
            assert dut.irq.value == 0, f"{name}: the interrupt stayed high after the ack"

        await scenarios.run_error_case(dev, name, code, descs, index, good_layer=good,
                                       after_error=irq_reported)
        dut._log.info("%s: %s reported through the bridge, next job correct", name, code.name)


