"""Helpers for the amaranth.sim benches of one SPU (``hw/spu/spu.py``) that drive its VOP
input directly (tests/hw/test_to_wgt_spu.py, test_vop_chan_spu.py, tests/sw/test_vop.py)."""

import numpy as np


def set_words(ctx, mem, words):
    """Write ``words`` (an array whose first axis is the word address; each word's bytes
    little-endian) into the simulated memory ``mem`` from address 0."""
    for a in range(len(words)):
        ctx.set(mem.data[a], int.from_bytes(np.ascontiguousarray(words[a]).tobytes(), "little"))


def set_act(ctx, rams, act):
    """Write ``act`` (``[words, rows, 32]`` int8) into the SPU's ACT row memories."""
    for r in range(act.shape[1]):
        set_words(ctx, rams["act"][r].sim_memory, act[:, r])


async def run_vop(ctx, dut, fields, limit, what="the VOP"):
    """Issue one VOP with descriptor ``fields`` and wait for the SPU's done pulse; returns
    the cycles from the cycle it was taken (an ``AssertionError`` past ``limit``)."""
    ctx.set(dut.i_vop.payload, fields)
    ctx.set(dut.i_vop.valid, 1)
    await ctx.tick().until(dut.i_vop.ready)
    ctx.set(dut.i_vop.valid, 0)
    cycles = 0
    while not ctx.get(dut.gemm_done):
        await ctx.tick()
        cycles += 1
        assert cycles < limit, f"{what} never finished"
    return cycles


async def check_vop(ctx, dut, act, par, fields, what):
    """Load ``act`` (``[words, rows, 32]`` int8) into ACT and ``par`` (``[words, cols, 8]``
    uint8) into PAR, run the VOP ``fields`` and compare ACT with what
    :func:`~s4accel.hw.vector.vop.vop_reference` makes of ``act``: returns ``(cycles, ACT
    words that differ)``."""
    from s4accel.base.config import BANK
    from s4accel.hw.vector.vop import vop_reference
    rams = dut.sim_rams
    set_act(ctx, rams, act)
    set_words(ctx, rams["par"].sim_memory, par)
    cycles = await run_vop(ctx, dut, fields, 20000, what)
    await ctx.tick()
    want = act.copy()
    vop_reference(want, par=par, **fields)
    got = np.array([[np.frombuffer(ctx.get(rams["act"][r].sim_memory.data[a]).to_bytes(
        BANK, "little"), np.int8) for r in range(act.shape[1])] for a in range(len(act))])
    return cycles, int((got != want).any(axis=(1, 2)).sum())


def run_cases(cfg, cases, one):
    """An SPU of ``cfg`` in amaranth.sim running ``await one(ctx, dut, case)`` for each case
    in turn; returns their results."""
    from amaranth.sim import Simulator

    from s4accel.hw.spu.spu import Spu
    dut = Spu(cfg)
    out = []

    async def bench(ctx):
        for case in cases:
            out.append(await one(ctx, dut, case))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out
