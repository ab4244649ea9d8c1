"""cocotb testbench of the sparse tensor core (``hw/core/tensor_core.py``).

Parameters come from the environment so one simulator build serves every test:
``S4_CONFIG`` (JSON configuration), ``S4_SEED`` (replay a run), ``S4_CASES`` (random cases per
test). Every result tile is checked against the golden model bit for bit.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from ...base.config import Config
from ...base.sparse import pack, prune
from ...hw.core.lane import LANE_LATENCY
from ...hw.core.requant import REQUANT_LATENCY
from .core_job import CoreJob, OutputParams
from .streams import Sink, Source, StreamLoop

CLOCK_NS = 10


def config_from_env() -> Config:
    return Config.from_dict(json.loads(os.environ["S4_CONFIG"]))


def seed_from_env(dut, name) -> int:
    seed = int(os.environ.get("S4_SEED") or np.random.SeedSequence().entropy % (1 << 32))
    dut._log.info("%s: seed %d (replay with S4_SEED=%d)", name, seed, seed)
    return seed


class CoreTB:
    """Owns the clock, reset and the stream drivers of one tensor core."""

    def __init__(self, dut, config: Config, rng=None, idle=0.0):
        self.dut, self.config = dut, config
        self.rng = rng or np.random.default_rng(0)
        r = self.rng
        self.cmd = Source(dut, "i_cmd", rng=r, idle=idle)
        self.act = Source(dut, "i_act", rng=r, idle=idle)
        self.wgt = Source(dut, "i_wgt", rng=r, idle=idle)
        self.lut = Source(dut, "i_lut", rng=r, idle=idle)
        self.res = Sink(dut, "o_res", rng=r)   # the core's output has no backpressure
        self.loop = StreamLoop(dut.clk, [self.cmd, self.act, self.wgt, self.lut], [self.res])

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, CLOCK_NS, unit="ns").start())
        self.dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def counters(self) -> dict:
        d = self.dut
        return {name: getattr(d, name).value.to_unsigned() for name in
                ("busy_cycles", "mac_cycles", "stall_input_cycles", "stall_output_cycles",
                 "tiles_done")}

    def cycle_bound(self, job: CoreJob) -> int:
        ideal = len(job.acts) + len(job.wgts) + job.beats_out + len(job.lut_writes)
        slow = 1.0 / max(0.05, 1 - self.cmd.idle)
        return int(200 + 8 * ideal * slow)

    async def run(self, job: CoreJob):
        """Run one job to completion; return ``(output [M, N], cycles)``."""
        if job.lut_writes:
            self.lut.extend(job.lut_writes)
            await self.loop.run_until(lambda: self.lut.done, 4 * 256 + 100, "LUT load")
        self.res.beats = []
        self.cmd.extend(job.cmds)
        self.act.extend(job.acts)
        self.wgt.extend(job.wgts)
        want = job.beats_out
        cycles = await self.loop.run_until(lambda: len(self.res.beats) >= want,
                                           self.cycle_bound(job), "tensor-core job")
        return job.decode(self.res.beats), cycles

    async def check(self, job: CoreJob, label: str):
        got, cycles = await self.run(job)
        report = job.mismatches(got)
        assert not report, f"{label}: RTL differs from the golden model: {report}"
        return cycles


def random_case(rng, config: Config, s, *, mode=None, m=None, n=None, k=None):
    R, C = config.rows, config.cols
    m = m or int(rng.integers(1, 2 * R + 2))
    n = n or int(rng.integers(1, 2 * C + 2))
    k = k or int(rng.integers(1, 130))
    x = rng.integers(-128, 128, size=(m, k), dtype=np.int8)
    w = prune(rng.integers(-128, 128, size=(n, k), dtype=np.int8), s)
    packed = pack(w, s)
    mode = mode or ("raw", "int8")[int(rng.integers(0, 2))]
    if mode == "raw":
        params = OutputParams("raw", bias=rng.integers(-(1 << 31), 1 << 31, n))
    else:
        # scales that put most outputs inside the int8 range (a random shift saturates nearly
        # everything and would hide rounding errors), plus a few extreme channels
        from ...base import golden
        bias = rng.integers(-(1 << 12), 1 << 12, n)
        peak = np.abs(golden.gemm_raw(x, packed, bias).astype(np.int64)).max(axis=0) + 1
        mult = rng.integers(1 << 14, 1 << 16, n)
        shift = np.array([int(p * mu).bit_length() for p, mu in zip(peak, mult, strict=True)]) - 8
        shift = np.clip(shift + rng.integers(-1, 3, n), 0, 47)
        wild = rng.random(n) < 0.15
        mult[wild] = rng.integers(0, 1 << 16, int(wild.sum()))
        shift[wild] = rng.integers(0, 48, int(wild.sum()))
        params = OutputParams(
            "int8", bias=bias, mult=mult, shift=shift, relu=bool(rng.integers(0, 2)),
            lut=rng.integers(-128, 128, 256, dtype=np.int8) if rng.integers(0, 2) else None)
    return x, packed, params


def _levels(config):
    return [s for s in (1, 2, 4, 8, 16, 32) if s in config.sparsities]


@cocotb.test()
async def every_sparsity_both_modes(dut):
    """Every s in raw and int8 mode on random shapes, no stalls, back to back."""
    config = config_from_env()
    rng = np.random.default_rng(seed_from_env(dut, "every_sparsity_both_modes"))
    tb = CoreTB(dut, config, rng)
    await tb.start()
    for s in _levels(config):
        for mode in ("raw", "int8"):
            job = CoreJob.build(config, *random_case(rng, config, s, mode=mode))
            await tb.check(job, f"s={s} mode={mode} m={job.m} n={job.n} k={job.k}")


@cocotb.test()
async def random_gaps_every_input(dut):
    """Random shapes, sparsity and mode with random valid gaps on every input stream."""
    config = config_from_env()
    rng = np.random.default_rng(seed_from_env(dut, "random_gaps_every_input"))
    cases = int(os.environ.get("S4_CASES", "6"))
    tb = CoreTB(dut, config, rng, idle=0.3)
    await tb.start()
    for i in range(cases):
        s = _levels(config)[int(rng.integers(0, len(_levels(config))))]
        job = CoreJob.build(config, *random_case(rng, config, s))
        await tb.check(job, f"case {i}: s={s} m={job.m} n={job.n} k={job.k}")


@cocotb.test()
async def full_rate_and_counters(dut):
    """At full stream rate a tile costs K/s cycles: check cycles and performance counters."""
    config = config_from_env()
    rng = np.random.default_rng(seed_from_env(dut, "full_rate_and_counters"))
    tb = CoreTB(dut, config, rng)
    await tb.start()
    R, C = config.rows, config.cols
    for s in _levels(config):
        k = 256
        job = CoreJob.build(config, *random_case(rng, config, s, mode="raw", m=2 * R, n=2 * C,
                                                 k=k))
        before = tb.counters()
        cycles = await tb.check(job, f"full rate s={s}")
        after = tb.counters()
        delta = {key: after[key] - before[key] for key in after}
        tiles = len(job.tiles)
        issue = tiles * k // s
        assert delta["tiles_done"] == tiles, delta
        assert delta["mac_cycles"] == issue, f"s={s}: {delta} (expected {issue} MAC cycles)"
        assert delta["stall_input_cycles"] == 0, delta
        # pipeline fill and the last drain are the only overhead (5 cycles besides the lane
        # and the requantizer)
        assert cycles <= issue + R + 5 + LANE_LATENCY + REQUANT_LATENCY, \
            f"s={s}: {cycles} cycles for {issue} issue cycles"
        dut._log.info("s=%d: %d cycles for %d MAC cycles, counters %s", s, cycles, issue, delta)


@cocotb.test()
async def short_tiles_one_row_a_cycle(dut):
    """Tiles shorter than ``rows`` cycles: their ends are ``rows`` cycles apart, so the result
    rows leave one a cycle and the parameter slots never hold the array back."""
    config = config_from_env()
    rng = np.random.default_rng(seed_from_env(dut, "short_tiles_one_row_a_cycle"))
    tb = CoreTB(dut, config, rng)
    await tb.start()
    R, C = config.rows, config.cols
    s = max(_levels(config))
    job = CoreJob.build(config, *random_case(rng, config, s, mode="int8", m=6 * R, n=2 * C,
                                             k=32))
    before = tb.counters()
    cycles = await tb.check(job, f"short tiles s={s}")
    after = tb.counters()
    delta = {key: after[key] - before[key] for key in after}
    tiles = len(job.tiles)
    issue = tiles * 32 // s
    assert delta["tiles_done"] == tiles, delta
    assert delta["mac_cycles"] == issue, delta
    if R > 2:
        # every tile after the first waits for the previous end to be `rows` cycles old (with
        # 2 rows the command intake, one command per 2 cycles, is the same bound)
        assert delta["stall_output_cycles"] > 0, delta
    # the output rows are the bound: one a cycle, plus pipeline fill and the last tile
    assert tiles * R <= cycles <= tiles * R + 40, f"{cycles} cycles for {tiles} tiles of {R} rows"
    dut._log.info("%d short tiles: %d cycles, counters %s", tiles, cycles, delta)


@cocotb.test()
async def command_arrives_as_a_tile_leaves(dut):
    """The second tile's command comes 0, 1, 2, ... cycles after the first, so in some run it
    arrives (valid rising, a new payload) in the very cycle the first tile's last row leaves
    the parameter queue: its parameters must go into the slot that frees, not a copy of what a
    free slot took the cycle before (the old command's)."""
    config = config_from_env()
    rng = np.random.default_rng(seed_from_env(dut, "command_arrives_as_a_tile_leaves"))
    tb = CoreTB(dut, config, rng)
    await tb.start()
    R, C = config.rows, config.cols
    s = max(_levels(config))
    for gap in range(3 * R + 16):
        # two tiles (two column groups) whose biases differ
        job = CoreJob.build(config, *random_case(rng, config, s, mode="raw", m=R, n=2 * C,
                                                 k=32))
        assert len(job.cmds) == 2, len(job.cmds)
        tb.cmd.gaps.extend([0, gap])
        await tb.check(job, f"second command {gap} cycles late")
