"""cocotb testbench of the sparse tensor core (``hw/core/tensor_core.py``).

Parameters come from the environment so one simulator build serves every test:
``S4_CONFIG`` (JSON configuration), ``S4_SEED`` (replay a run), ``S4_CASES`` (random cases per
test). Every result tile is checked against the golden model bit for bit.
"""

from __future__ import annotations

import cocotb

from ...hw.core.lane import LANE_LATENCY
from ...hw.core.requant import REQUANT_LATENCY
from .base import cases_from_env, started
from .core_job import CoreJob, CoreTB, random_case


def _levels(config):
    return [s for s in (1, 2, 4, 8, 16, 32) if s in config.sparsities]


@cocotb.test()
async def every_sparsity_both_modes(dut):
    """Every s in raw and int8 mode on random shapes, no stalls, back to back."""
    tb = await started(CoreTB, dut, "every_sparsity_both_modes")
    config, rng = tb.config, tb.rng
    for s in _levels(config):
        for mode in ("raw", "int8"):
            job = CoreJob.build(config, *random_case(rng, config, s, mode=mode))
            await tb.check(job, f"s={s} mode={mode} m={job.m} n={job.n} k={job.k}")


@cocotb.test()
async def random_gaps_every_input(dut):
    """Random shapes, sparsity and mode with random valid gaps on every input stream."""
    tb = await started(CoreTB, dut, "random_gaps_every_input", idle=0.3)
    config, rng = tb.config, tb.rng
    for i in range(cases_from_env(6)):
        s = _levels(config)[int(rng.integers(0, len(_levels(config))))]
        job = CoreJob.build(config, *random_case(rng, config, s))
        await tb.check(job, f"case {i}: s={s} m={job.m} n={job.n} k={job.k}")


@cocotb.test()
async def full_rate_and_counters(dut):
    """At full stream rate a tile costs K/s cycles: check cycles and performance counters."""
    tb = await started(CoreTB, dut, "full_rate_and_counters")
    config, rng = tb.config, tb.rng
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
    tb = await started(CoreTB, dut, "short_tiles_one_row_a_cycle")
    config, rng = tb.config, tb.rng
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
    tb = await started(CoreTB, dut, "command_arrives_as_a_tile_leaves")
    config, rng = tb.config, tb.rng
    R, C = config.rows, config.cols
    s = max(_levels(config))
    for gap in range(3 * R + 16):
        # two tiles (two column groups) whose biases differ
        job = CoreJob.build(config, *random_case(rng, config, s, mode="raw", m=R, n=2 * C,
                                                 k=32))
        assert len(job.cmds) == 2, len(job.cmds)
        tb.cmd.gaps.extend([0, gap])
        await tb.check(job, f"second command {gap} cycles late")
