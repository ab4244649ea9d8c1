"""The DMA engine: burst walker in Amaranth's simulator, the engine on Verilator and Icarus.

The cocotb module ``s4accel.sim.tb.dma`` runs the engine against cocotbext-axi's RAM with
random pauses on every AXI channel. Set ``S4_SEED`` to replay, ``WAVES=1`` for waveforms.
"""

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from s4accel.base.config import load_config
from s4accel.hw.dma.engine import BurstWalker, DmaEngine
from s4accel.sim.tb import runner
from s4accel.sim.tb.dma import bursts

runner.register_design("dma_engine", "s4accel.hw.dma.engine:DmaEngine")


def test_engine_rejects_non_config():
    with pytest.raises(TypeError, match="config must be a Config"):
        DmaEngine("tiny")


def test_walker_rejects_bus_width():
    with pytest.raises(ValueError, match="bus_bytes must be 4, 8, 16, 32 or 64, not 3"):
        BurstWalker(3)


def test_engine_ports():
    dut = DmaEngine(load_config("fpga"))
    assert dut.bus.signature.data_width == 128
    assert len(dut.o_rd_data.payload.data) == 128
    assert len(dut.rd_bytes) == 48 and len(dut.wr_bytes) == 48
    Fragment.get(dut, None)  # elaborates


@pytest.mark.parametrize("nbytes", [4, 16])
def test_burst_walker(nbytes, rng):
    """The walker's bursts equal the reference split: <= 16 beats, none across 4 KiB."""
    jobs = []
    for _ in range(12):
        row_beats = int(rng.integers(1, 300))
        rows = int(rng.integers(1, 5))
        stride = nbytes * int(rng.integers(0, 2000))
        addr = nbytes * int(rng.integers(0, 1 << 20))
        jobs.append((addr, rows, row_beats * nbytes, stride))
    dut = BurstWalker(nbytes)

    async def bench(ctx):
        for addr, rows, row_bytes, stride in jobs:
            ctx.set(dut.job, {"addr": addr, "rows": rows, "row_beats": row_bytes // nbytes,
                              "stride": stride, "discard": 0})
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            got = []
            for _ in range(10000):
                if not ctx.get(dut.busy):
                    break
                step = bool(rng.integers(0, 4)) and bool(ctx.get(dut.ready))
                ctx.set(dut.step, step)
                if step:
                    got.append((ctx.get(dut.addr), ctx.get(dut.beats)))
                await ctx.tick()
            ctx.set(dut.step, 0)
            want = [((a & 0xFFFFFFFF), b) for a, b in bursts(addr, rows, row_bytes, stride,
                                                             nbytes)]
            assert got == want, (addr, rows, row_bytes, stride)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_burst_walker_discard(rng):
    """Discard mode (set by the job or raised mid-walk) covers every remaining beat of an
    unaligned region in chunks of at most 16, ignoring 4 KiB."""
    nbytes = 16
    dut = BurstWalker(nbytes)
    cases = [(int(rng.integers(1, 6)), int(rng.integers(1, 100)), bool(rng.integers(0, 2)),
              int(rng.integers(0, 8))) for _ in range(10)]

    async def bench(ctx):
        for rows, row_beats, from_start, switch_after in cases:
            # a real walk needs an aligned region; a refused one may be anything
            addr, stride = (0xFF3, 0x1001) if from_start else (0xFC0, 0x1010)
            ctx.set(dut.job, {"addr": addr, "rows": rows, "row_beats": row_beats,
                              "stride": stride, "discard": from_start})
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            total = 0
            steps = 0
            waits = 0
            while ctx.get(dut.busy):
                assert steps < 10000 and waits < 3 * 10000
                if not ctx.get(dut.ready):      # the next burst is being cut
                    ctx.set(dut.step, 0)
                    waits += 1
                    await ctx.tick()
                    continue
                if steps == switch_after:
                    ctx.set(dut.discard, 1)
                disc = ctx.get(dut.is_discard)
                beats = ctx.get(dut.beats)
                assert 1 <= beats <= 16
                assert disc == (from_start or steps >= switch_after)
                total += beats
                ctx.set(dut.step, 1)
                await ctx.tick()
                ctx.set(dut.discard, 0)
                steps += 1
            ctx.set(dut.step, 0)
            assert total == rows * row_beats

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("config", ["tiny", "fpga"])
@pytest.mark.rtl
@pytest.mark.slow
def test_dma_engine(sim, config, seed):
    runner.run_tests("dma_engine", config, sim, "s4accel.sim.tb.dma",
                     env={"S4_SEED": seed}, tag=f"pytest_{seed}")
