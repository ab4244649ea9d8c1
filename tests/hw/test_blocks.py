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


def _requant_check(rng, cols, rows, lut):
    """Run ``rows`` through a Requantizer of ``cols`` with random gaps and backpressure;
    every output row against the golden model."""
    dut = Requantizer(cols)
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


@pytest.mark.parametrize("cols", [1, 4])
def test_requantizer_bit_exact_with_backpressure(rng, cols):
    lut = rng.integers(-128, 128, 256, dtype=np.int8)
    _requant_check(rng, cols, _requant_rows(rng, cols, 60), lut)


def test_requantizer_saturation_edges(rng):
    """Products whose shifted value h = t >> shift sits at the int8 range's edges (-130 ..
    -127, 126 .. 128) with the rounding bit 0 and 1, for every shift: 127 rounded up saturates,
    -129 rounded up is -128; data and bias are split at random (the sum wraps at 32 bits)."""
    cols, rows, kinds = 4, [], set()
    for shift in range(48):
        for h in (-130, -129, -128, -127, 126, 127, 128):
            for b in (0, 1) if shift else (0,):
                t = (h << shift) + (b << (shift - 1) if shift else 0)
                if shift > 1:
                    t += int(rng.integers(0, 1 << (shift - 1)))
                # t = sum * mult, sum an int32: mult 1 while t fits, else the largest mult
                mult = 1 if shift < 16 else (1 << 15 if shift < 38 else 65535)
                total = int(np.clip(t // mult, -(1 << 31), (1 << 31) - 1))
                tt = total * mult
                kinds.add((tt >> shift, (tt >> (shift - 1)) & 1 if shift else 0))
                bias = int(rng.integers(-(1 << 31), 1 << 31))
                data = (total - bias + (1 << 31)) % (1 << 32) - (1 << 31)
                rows.append((data, bias, mult, shift))
    rng.shuffle(rows)
    lut = np.arange(-128, 128, dtype=np.int8)
    reqs = []
    for i in range(0, len(rows), cols):
        chunk = rows[i:i + cols]
        chunk += [chunk[-1]] * (cols - len(chunk))
        reqs.append({"data": [r[0] for r in chunk], "bias": [r[1] for r in chunk],
                     "mult": [r[2] for r in chunk], "shift": [r[3] for r in chunk],
                     "mode": OutMode.INT8, "relu": 0, "lut": int(rng.integers(0, 2)),
                     "last": int(rng.integers(0, 2))})
    # the edges are really there (h and the rounding bit of the products as built)
    assert {(127, 1), (127, 0), (-129, 1), (-129, 0), (-128, 0), (128, 0)} <= kinds
    _requant_check(rng, cols, reqs, lut)


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


def test_spu_fanout_multicasts_by_mask_without_valid_on_ready():
    """SpuFanout: every item reaches exactly the outputs its mask selects (0: all), in order,
    through random gaps and per-output stalls; an output's valid does not follow any ready
    within a cycle; with every selected output ready an item passes in the cycle it is
    offered."""
    import random

    from amaranth.sim import Simulator

    from s4accel.hw.cmd.fanout import SpuFanout

    seed = 13
    print(f"seed {seed}")
    rng = random.Random(seed)
    n = 3
    dut = SpuFanout(16, n)
    items = [(rng.randrange(1 << n), rng.randrange(1 << 16)) for _ in range(200)]
    want = [[d for mask, d in items if mask == 0 or mask >> k & 1] for k in range(n)]
    got = [[] for _ in range(n)]

    async def bench(ctx):
        sent = 0
        for _ in range(5000):           # bounded: a lost item fails instead of hanging
            if sent == len(items) and all(len(g) == len(w) for g, w in zip(got, want, strict=True)):
                break
            mask, d = items[sent] if sent < len(items) else (0, 0)
            ctx.set(dut.i.valid, sent < len(items) and rng.random() < 0.7)
            ctx.set(dut.i.payload.mask, mask)
            ctx.set(dut.i.payload.item, d)
            for k in range(n):
                ctx.set(dut.o[k].ready, 0)
            await ctx.delay(1e-9)
            valid_before = [ctx.get(dut.o[k].valid) for k in range(n)]
            for k in range(n):
                ctx.set(dut.o[k].ready, rng.random() < 0.5)
            await ctx.delay(1e-9)
            assert [ctx.get(dut.o[k].valid) for k in range(n)] == valid_before
            for k in range(n):
                if ctx.get(dut.o[k].valid) and ctx.get(dut.o[k].ready):
                    got[k].append(ctx.get(dut.o[k].payload))
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                sent += 1
            await ctx.tick()
        # every selected output ready: one item a cycle, each in the cycle it is offered
        for k in range(n):
            ctx.set(dut.o[k].ready, 1)
        for j in range(10):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.mask, 0b101)
            ctx.set(dut.i.payload.item, 100 + j)
            await ctx.delay(1e-9)
            assert ctx.get(dut.i.ready)
            assert [ctx.get(dut.o[k].valid) for k in range(n)] == [1, 0, 1]
            assert ctx.get(dut.o[2].payload) == 100 + j
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == want


def test_spu_fanout_reports_completion_once_every_output_is_done():
    """SpuFanout(done=True): ``o_done`` is valid from the cycle the last selected output
    pulses ``done`` (not before), stays valid until taken, and the next item is neither
    offered nor taken until then."""
    import random

    from amaranth.sim import Simulator

    from s4accel.hw.cmd.fanout import SpuFanout

    seed = 17
    print(f"seed {seed}")
    rng = random.Random(seed)
    n = 4
    dut = SpuFanout(8, n, done=True)
    checked = {"items": 0}

    async def bench(ctx):
        for j in range(30):
            mask = rng.randrange(1 << n)
            sel = [k for k in range(n) if mask == 0 or mask >> k & 1]
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.mask, mask)
            ctx.set(dut.i.payload.item, j)
            ctx.set(dut.o_done.ready, 0)
            finish = {}                    # output -> cycle of its done pulse
            for cycle in range(200):       # bounded
                ready = {k: rng.random() < 0.5 for k in range(n)}
                for k in range(n):
                    ctx.set(dut.o[k].ready, ready[k])
                    ctx.set(dut.done[k], finish.get(k) == cycle)
                await ctx.delay(1e-9)
                for k in range(n):
                    if ctx.get(dut.o[k].valid):
                        assert k in sel and k not in finish
                        assert ctx.get(dut.o[k].payload) == j
                        if ready[k]:
                            finish[k] = cycle + rng.randrange(1, 6)
                taken = ctx.get(dut.i.valid) and ctx.get(dut.i.ready)
                await ctx.tick()
                if taken:
                    break
            assert sorted(finish) == sel
            ctx.set(dut.i.valid, 0)
            # completion: not before the last done pulse, then held until taken
            last = max(finish.values())
            cycle += 1
            while True:
                for k in range(n):
                    ctx.set(dut.done[k], finish.get(k) == cycle)
                await ctx.delay(1e-9)
                assert ctx.get(dut.o_done.valid) == (cycle >= last)
                if cycle >= last + rng.randrange(3):
                    break
                ctx.set(dut.i.valid, 1)        # a next item waits for the completion
                await ctx.delay(1e-9)
                assert not ctx.get(dut.i.ready)
                assert not any(ctx.get(dut.o[k].valid) for k in range(n))
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.o_done.ready, 1)       # (taken with this cycle's done pulses)
            await ctx.tick()
            ctx.set(dut.o_done.ready, 0)
            for k in range(n):
                ctx.set(dut.done[k], 0)
            await ctx.delay(1e-9)
            assert not ctx.get(dut.o_done.valid)
            checked["items"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert checked["items"] == 30


def test_spu_fanout_rejects_bad_outputs():
    from s4accel.hw.cmd.fanout import SpuFanout

    with pytest.raises(ValueError, match="outputs must be a positive integer, not 0"):
        SpuFanout(8, 0)


@pytest.mark.parametrize("change, words", [({"dram_bus_bits": 512}, "256 bits"),
                                           ({"spus": 32}, "at most 16")])
def test_top_refuses_what_the_rtl_cannot_build(change, words):
    """``dram_bus_bits: 512`` and more than 16 SPUs are valid configurations (the performance
    model projects them) but refused where RTL is generated, with a message naming why."""
    import dataclasses

    from s4accel.base.config import load_config
    from s4accel.hw.top import S4Top
    from s4accel.sim.model import perf_model

    cfg = dataclasses.replace(load_config("fpga"), **change)
    assert perf_model.predict_layer(cfg, 16, 256, 16, 4)["cycles"] > 0
    with pytest.raises(ValueError, match=words):
        S4Top(cfg)
