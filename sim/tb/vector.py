"""cocotb testbench of the vector unit (``vector_unit``, :mod:`s4accel.sim.hdl.vector`):
commands from :mod:`s4accel.sim.tb.vector_jobs` (random rows and the extremes) streamed in on
``i_cmd``, ``i_a``, ``i_b`` and ``i_chan`` under input gaps and output back-pressure, every
output vector compared bit for bit with :mod:`s4accel.base.vector`, in order; the run ends
with every expected vector seen and no extra one, within a cycle bound.

Tests: ``softmax_layernorm`` (S4_CASES rows of each, default 6, lengths 1..max_row, plus the
extremes), ``all_ops`` (every operation once on a random length).
"""

from __future__ import annotations

import cocotb
import numpy as np

from ...hw.vector.unit import vec_chan_layout, vec_cmd_layout, vec_in_layout
from ..hdl.vector import MAX_ROW
from .base import cases_from_env, config_from_env, rng_from_env, start
from .core_job import pack_struct
from .streams import Sink, Source, StreamLoop
from .vector_jobs import OPS, random_job

__all__ = ["VectorTB"]


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


class VectorTB:
    def __init__(self, dut, config, rng, idle=0.2, stall=0.2):
        self.dut, self.config, self.rng = dut, config, rng
        self.lanes = config.bank
        self.sources = {name: Source(dut, name, rng=rng, idle=idle)
                        for name in ("i_cmd", "i_a", "i_b", "i_chan")}
        self.sink = Sink(dut, "o_data", rng=rng, stall=stall)
        self.loop = StreamLoop(dut.clk, self.sources.values(), [self.sink])

    async def start(self):
        await start(self.dut)

    async def run(self, jobs):
        """Send ``jobs``, take their outputs, compare them; returns the cycles spent."""
        lanes = self.lanes
        src = self.sources
        for j in jobs:
            src["i_cmd"].extend([pack_struct(vec_cmd_layout, j.cmd)])
            src["i_a"].extend([pack_struct(vec_in_layout(lanes), {"data": d, "mask": mk})
                               for d, mk in j.a])
            src["i_b"].extend([pack_struct(_b_layout(lanes), b) for b in j.b])
            src["i_chan"].extend([pack_struct(vec_chan_layout(lanes), c) for c in j.chan])
        want = [(j, k) for j in jobs for k in range(len(j.out))]
        start_beats = len(self.sink.beats)
        bound = 300 + sum(4 * len(j.a) + 120 for j in jobs) * 4
        cycles = await self.loop.run_until(
            lambda: len(self.sink.beats) - start_beats >= len(want), bound, "vector jobs")
        got = self.sink.beats[start_beats:]
        assert len(got) == len(want), f"{len(got)} output vectors, expected {len(want)}"
        for (j, k), beat in zip(want, got, strict=True):
            data = [_signed(beat >> (32 * i) & 0xFFFFFFFF, 32) for i in range(lanes)]
            last = beat >> (32 * lanes) & 1
            assert data == j.out[k], (f"{j.name} n={j.cmd['n']} vector {k}: "
                                      f"{data} != {j.out[k]}")
            assert last == (k == len(j.out) - 1), f"{j.name} vector {k}: last={last}"
        assert all(s.done for s in src.values()), "input vectors left untaken"
        return cycles


def _b_layout(lanes):
    from amaranth.hdl import signed
    from amaranth.lib import data
    return data.ArrayLayout(signed(8), lanes)


async def _run(dut, name, ops, cases):
    tb = VectorTB(dut, config_from_env(), rng_from_env(dut, name))
    await tb.start()
    rng = tb.rng
    jobs = []
    for op in ops:
        lo = 2 if op == "layernorm" else 1
        lengths = [lo, MAX_ROW] + [int(rng.integers(lo, MAX_ROW + 1)) for _ in range(cases)]
        jobs += [random_job(rng, op, n, tb.lanes) for n in lengths]
        jobs += [random_job(rng, op, int(rng.integers(lo, MAX_ROW + 1)), tb.lanes,
                            extreme=True) for _ in range(2)]
    cycles = await tb.run(jobs)
    dut._log.info("%s: %d commands exact in %d cycles", name, len(jobs), cycles)


@cocotb.test()
async def softmax_layernorm(dut):
    await _run(dut, "softmax_layernorm", ["softmax", "layernorm"], cases_from_env(6))


@cocotb.test()
async def all_ops(dut):
    await _run(dut, "all_ops", list(OPS), 1)
