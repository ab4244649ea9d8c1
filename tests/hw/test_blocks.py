"""Amaranth-simulator unit tests of the small blocks: lane (window select, MAC) and requantizer."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from s4accel.base import golden
from s4accel.hw.core.lane import LANE_LATENCY, Lane
from s4accel.hw.core.requant import OutMode, Requantizer


def _run(dut, *benches, cycles=None):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for i, bench in enumerate(benches):
        if i == 0:
            sim.add_testbench(bench)
        else:
            sim.add_testbench(bench, background=True)
    sim.run()


def test_lane_selects_and_accumulates(rng):
    """Random windows, indices and bubbles; the lane's tile sums equal numpy dot products.

    Tiles follow each other back to back or with bubbles (``valid`` low, garbage operands) in
    between and inside them; a result is in ``o_acc`` exactly in the cycles ``o_done`` is high.
    """
    dut = Lane()
    tiles = []
    for _ in range(8):
        beats = int(rng.integers(1, 12))
        windows = rng.integers(-128, 128, (beats, 32))
        index = rng.integers(0, 32, beats)
        weight = rng.integers(-128, 128, beats)
        expect = int(sum(windows[i, index[i]] * weight[i] for i in range(beats)))
        tiles.append((windows, index, weight, expect))
    results = []

    def word(values):
        return int.from_bytes(np.asarray(values).astype(np.int8).tobytes(), "little")

    async def tick(ctx):
        await ctx.tick()
        if ctx.get(dut.o_done):
            results.append(ctx.get(dut.o_acc))

    async def bench(ctx):
        for windows, index, weight, _ in tiles:
            for i in range(len(index)):
                while rng.random() < 0.3:  # a bubble with garbage operands
                    ctx.set(dut.valid, 0)
                    ctx.set(dut.first, int(rng.integers(0, 2)))
                    ctx.set(dut.last, int(rng.integers(0, 2)))
                    ctx.set(dut.window, word(rng.integers(-128, 128, 32)))
                    ctx.set(dut.weight, int(rng.integers(-128, 128)))
                    await tick(ctx)
                ctx.set(dut.window, word(windows[i]))
                ctx.set(dut.index, int(index[i]))
                ctx.set(dut.weight, int(weight[i]))
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, i == 0)
                ctx.set(dut.last, i == len(index) - 1)
                await tick(ctx)
        ctx.set(dut.valid, 0)
        for _ in range(LANE_LATENCY + 2):
            await tick(ctx)

    _run(dut, bench)
    assert results == [t[3] for t in tiles]


def _requant_rows(rng, cols, count):
    rows = []
    for _ in range(count):
        mode = OutMode.INT8 if rng.random() < 0.7 else OutMode.RAW
        rows.append({
            "data": rng.integers(-(1 << 31), 1 << 31, cols).tolist(),
            "bias": rng.integers(-(1 << 31), 1 << 31, cols).tolist(),
            "mult": rng.integers(0, 1 << 16, cols).tolist(),
            "shift": rng.integers(0, 48, cols).tolist(),
            "mode": mode, "relu": int(rng.integers(0, 2)), "lut": int(rng.integers(0, 2)),
            "last": int(rng.integers(0, 2)),
        })
    return rows


def _requant_expect(row, lut):
    data = np.array(row["data"], np.int64) + np.array(row["bias"], np.int64)
    data = golden.wrap32(data)
    if row["mode"] == OutMode.RAW:
        return data.tolist()
    y = golden.requantize(data[None], row["mult"], row["shift"], relu=bool(row["relu"]),
                          lut=lut if row["lut"] else None)
    return y[0].astype(np.int64).tolist()


@pytest.mark.parametrize("cols", [1, 4])
def test_requantizer_bit_exact_with_backpressure(rng, cols):
    dut = Requantizer(cols)
    lut = rng.integers(-128, 128, 256, dtype=np.int8)
    rows = _requant_rows(rng, cols, 60)
    got = []

    async def producer(ctx):
        for addr in range(256):
            ctx.set(dut.i_lut.valid, 1)
            ctx.set(dut.i_lut.payload, {"addr": addr, "data": int(lut[addr])})
            await ctx.tick()
        ctx.set(dut.i_lut.valid, 0)
        for row in rows:
            while rng.random() < 0.3:
                ctx.set(dut.i_row.valid, 0)
                await ctx.tick()
            ctx.set(dut.i_row.valid, 1)
            ctx.set(dut.i_row.payload, row)
            await ctx.tick().until(dut.i_row.ready)
        ctx.set(dut.i_row.valid, 0)
        for _ in range(200):
            await ctx.tick()
            if len(got) == len(rows):
                break

    async def consumer(ctx):
        while True:
            ready = int(rng.random() >= 0.4)
            ctx.set(dut.o_res.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o_res.valid, dut.o_res.payload)
            if ready and valid:
                got.append(([int(payload.data[c]) for c in range(cols)], int(payload.last)))

    _run(dut, producer, consumer)
    assert len(got) == len(rows)
    for i, (row, (data, last)) in enumerate(zip(rows, got, strict=True)):
        assert last == row["last"], i
        assert data == _requant_expect(row, lut), f"row {i}: {row}"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_requantizer_rejects_bad_cols():
    with pytest.raises(ValueError, match="cols must be a positive integer, not 0"):
        Requantizer(0)


def test_reg_slice_keeps_order_and_throughput_under_random_stalls():
    """RegSlice: every word arrives once, in order, through random valid gaps and ready
    stalls; with both sides always ready it moves one word a cycle; clear empties it."""
    import random

    from amaranth.sim import Simulator

    from s4accel.hw.bus.slice import RegSlice

    seed = 7
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = RegSlice(16)
    words = [rng.randrange(1 << 16) for _ in range(200)]
    got = []
    cycles = {}

    async def bench(ctx):
        # phase 1: random gaps and stalls
        sent = 0
        for _ in range(5000):           # bounded: a lost word fails instead of hanging
            if len(got) == len(words):
                break
            ctx.set(dut.i.valid, sent < len(words) and rng.random() < 0.7)
            ctx.set(dut.i.payload, words[sent] if sent < len(words) else 0)
            ctx.set(dut.o.ready, rng.random() < 0.6)
            await ctx.delay(1e-9)
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                sent += 1
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
        # phase 2: both sides always ready -> one word a cycle after one cycle of latency
        ctx.set(dut.o.ready, 1)
        out = 0
        for n in range(50):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, n)
            await ctx.delay(1e-9)
            assert ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                assert ctx.get(dut.o.payload) == out
                out += 1
            await ctx.tick()
        cycles["streamed"] = out
        # phase 3: a stalled, full slice is emptied by clear
        ctx.set(dut.o.ready, 0)
        await ctx.tick().repeat(3)
        assert ctx.get(dut.o.valid) and not ctx.get(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await ctx.delay(1e-9)
        assert not ctx.get(dut.o.valid) and ctx.get(dut.i.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == words
    assert cycles["streamed"] == 49


def test_skid_slice_keeps_order_with_no_latency_and_a_registered_ready():
    """SkidSlice: every word arrives once, in order, through random valid gaps and ready
    stalls; a word offered to a ready consumer passes in the same cycle; ``i.ready`` does not
    follow ``o.ready`` within a cycle (it is a flip-flop); clear empties the skid entry."""
    import random

    from amaranth.sim import Simulator

    from s4accel.hw.bus.slice import SkidSlice

    seed = 11
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = SkidSlice(16)
    words = [rng.randrange(1 << 16) for _ in range(300)]
    got = []
    seen = {"skid_used": 0}

    async def bench(ctx):
        # phase 1: random gaps and stalls (the producer holds its word until it is taken)
        sent = 0
        for _ in range(5000):           # bounded: a lost word fails instead of hanging
            if len(got) == len(words):
                break
            ctx.set(dut.i.valid, sent < len(words) and rng.random() < 0.7)
            ctx.set(dut.i.payload, words[sent] if sent < len(words) else 0)
            ctx.set(dut.o.ready, 0)
            await ctx.delay(1e-9)
            ready_before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, rng.random() < 0.6)
            await ctx.delay(1e-9)
            assert ctx.get(dut.i.ready) == ready_before     # no path from o.ready to i.ready
            if not ready_before:
                seen["skid_used"] += 1
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                sent += 1
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
        # phase 2: a ready consumer sees each word in the cycle it is offered
        ctx.set(dut.o.ready, 1)
        for n in range(20):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, 1000 + n)
            await ctx.delay(1e-9)
            assert ctx.get(dut.i.ready) and ctx.get(dut.o.valid)
            assert ctx.get(dut.o.payload) == 1000 + n
            await ctx.tick()
        # phase 3: a stalled consumer fills the skid entry; clear empties it
        ctx.set(dut.o.ready, 0)
        await ctx.tick()
        await ctx.delay(1e-9)
        assert not ctx.get(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await ctx.delay(1e-9)
        assert not ctx.get(dut.o.valid) and ctx.get(dut.i.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == words
    assert seen["skid_used"] > 20        # the random stalls did exercise the skid entry
