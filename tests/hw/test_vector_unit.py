"""Amaranth-simulator tests of the vector unit (hw/vector/unit.py) against the golden model
s4accel.base.vector, bit for bit: every operation on random inputs and on the edge cases
(saturation, all-masked rows, extreme int32 values, all-equal rows, one large value, rows of
length 1 and of the buffer's length), under random input gaps and output back-pressure.
Randomized tests log their seed (S4_SEED replays one)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from s4accel.hw.vector.unit import VectorUnit
from s4accel.sim.tb.vector_jobs import OPS, job, random_job

LANES, MAX_ROW = 32, 128


def run_jobs(jobs, rng, *, gap=0.3, stall=0.3, lanes=LANES, max_row=MAX_ROW, mutate=None):
    """Run ``jobs`` through one VectorUnit in order; returns (outputs per job, cycles per job
    from the command's acceptance to its last output). Every wait is bounded."""
    dut = VectorUnit(lanes, max_row)
    if mutate:
        mutate(dut)
    outs = [[] for _ in jobs]
    cycles = []
    total_out = sum(len(j.out) for j in jobs)
    bound = 400 + sum(20 * (len(j.a) + 1) * 4 + 200 for j in jobs)

    def feeder(port, items_of):
        async def feed(ctx):
            for j in jobs:
                for item in items_of(j):
                    while rng.random() < gap:
                        ctx.set(port.valid, 0)
                        await ctx.tick()
                    ctx.set(port.valid, 1)
                    ctx.set(port.payload, item)
                    while not (await ctx.tick().sample(port.ready))[2]:
                        pass
                ctx.set(port.valid, 0)
        return feed

    async def collect(ctx):
        k = 0
        while True:
            ready = rng.random() >= stall
            ctx.set(dut.o_data.ready, ready)
            _, _, valid, p = await ctx.tick().sample(dut.o_data.valid, dut.o_data.payload)
            if ready and valid:
                while k < len(jobs) and len(outs[k]) == len(jobs[k].out):
                    k += 1
                assert k < len(jobs), "an output vector beyond the expected ones"
                outs[k].append([int(t) for t in p.data])
                assert bool(p.last) == (len(outs[k]) == len(jobs[k].out)), (
                    f"job {k} ({jobs[k].name}): last flag wrong on vector {len(outs[k]) - 1}")

    async def main(ctx):
        n = 0
        for j in jobs:
            ctx.set(dut.i_cmd.valid, 1)
            ctx.set(dut.i_cmd.payload, j.cmd)
            while not (await ctx.tick().sample(dut.i_cmd.ready))[2]:
                n += 1
                assert n <= bound, "command not taken within the cycle bound"
            ctx.set(dut.i_cmd.valid, 0)
            start = n
            k = jobs.index(j)
            while len(outs[k]) < len(j.out):
                await ctx.tick()
                n += 1
                assert n <= bound, f"job {j.name}: {len(outs[k])} of {len(j.out)} vectors " \
                                   f"within {bound} cycles"
            cycles.append(n - start)
        assert sum(len(o) for o in outs) == total_out

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(feeder(dut.i_a, lambda j: [{"data": d, "mask": mk} for d, mk in j.a]),
                      background=True)
    sim.add_testbench(feeder(dut.i_b, lambda j: j.b), background=True)
    sim.add_testbench(feeder(dut.i_chan, lambda j: j.chan), background=True)
    sim.add_testbench(collect, background=True)
    sim.run()
    return outs, cycles


def check(jobs, outs):
    for j, got in zip(jobs, outs, strict=True):
        want = np.array(j.out)
        got = np.array(got)
        assert got.shape == want.shape, f"{j.name}: {got.shape} output, expected {want.shape}"
        bad = np.argwhere(got != want)
        assert not len(bad), (f"{j.name} (n={j.cmd['n']}): {len(bad)} lanes differ, first at "
                              f"{tuple(bad[0])}: {got[tuple(bad[0])]} vs {want[tuple(bad[0])]}")


@pytest.mark.parametrize("op", list(OPS))
def test_vector_op_random(op, seed):
    rng = np.random.default_rng(seed)
    lengths = [1, 2, 31, 33, MAX_ROW, int(rng.integers(2, MAX_ROW + 1))]
    if op == "layernorm":
        lengths = [n for n in lengths if n >= 2]
    jobs = [random_job(rng, op, n) for n in lengths]
    jobs += [random_job(rng, op, int(rng.integers(1 if op != "layernorm" else 2,
                                                  MAX_ROW + 1)), extreme=True)
             for _ in range(4)]
    outs, _ = run_jobs(jobs, rng)
    check(jobs, outs)
