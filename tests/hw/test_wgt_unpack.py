"""The packed-weight unpacker (``hw/spu/wgt_unpack.py``) against the golden decoder
(``sw/layout.unpack_wgt_stream``): every sparsity, odd K, every bus width of the presets, with
random gaps in the read stream."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from s4accel.base.sparse import pack, prune
from s4accel.hw.cmd.descriptors import LoadFormat
from s4accel.hw.spu.wgt_unpack import WgtUnpack
from s4accel.sw import layout


def _unpack_rtl(cols, bus_bits, fmt, streams, rng, gaps=0.3):
    """Feed each of ``streams`` (bytes, whole bus words) to a WgtUnpack as one load; the words
    it writes, per load."""
    dut = WgtUnpack(cols=cols, bus_bits=bus_bits)
    bb = bus_bits // 8
    out = [[] for _ in streams]
    cur = [0]

    async def bench(ctx):
        for n, stream in enumerate(streams):
            beats = [int.from_bytes(stream[i:i + bb], "little")
                     for i in range(0, len(stream), bb)]
            cur[0] = n
            ctx.set(dut.fmt, fmt)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for b in beats:
                while rng.random() < gaps:
                    ctx.set(dut.i.valid, 0)
                    ctx.set(dut.i.payload, int(rng.integers(0, 1 << 30)))
                    await ctx.tick()
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, b)
                for _ in range(64):              # a bus word is taken within a few cycles
                    ready = ctx.get(dut.i.ready)
                    await ctx.tick()
                    if ready:
                        break
                else:
                    raise AssertionError("bus word never taken")
            ctx.set(dut.i.valid, 0)
            for _ in range(4):
                await ctx.tick()

    async def monitor(ctx):
        async for _, _, o_valid, word in ctx.tick().sample(dut.o_valid, dut.o_word):
            if o_valid:
                out[cur[0]].append(word)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return [b"".join(w.to_bytes(cols * 2, "little") for w in o) for o in out]


@pytest.mark.parametrize("s", [1, 2, 4, 8, 16, 32])
@pytest.mark.parametrize("cols,bus_bits", [(4, 32), (8, 128), (16, 512)])
def test_unpacker_decodes_packed_weights_bit_exact(rng, s, cols, bus_bits):
    """Pruned weights with K = 40 and 72 (not whole banks), packed with the format of their
    sparsity, decode to exactly the scratchpad words of ``wgt_image`` (plus the whole words of
    the padding, which the golden decoder also writes). A load of the stream's first bus
    words before it (a word count that is not whole banks) leaves nothing behind."""
    for k in (40, 72):
        n = int(rng.integers(1, 3 * cols))
        w = prune(rng.integers(-128, 128, (n, k)).astype(np.int8), s)
        p = pack(w, s)
        fmt = layout.wgt_format(s)
        stream = layout.wgt_packed_image(p, cols, bus_bits // 8)
        want = layout.unpack_wgt_stream(stream, cols, fmt)
        assert want[:len(layout.wgt_image(p, cols))] == layout.wgt_image(p, cols)
        bb = bus_bits // 8
        part = stream[:bb * int(rng.integers(1, len(stream) // bb + 1))]
        got = _unpack_rtl(cols, bus_bits, fmt.value, [part, stream], rng)
        assert got[0] == layout.unpack_wgt_stream(part, cols, fmt), (k, n)
        assert got[1] == want, (k, n)


def test_unpacker_runs_a_word_a_cycle(rng):
    """Without gaps, a PACKED stream on a bus wider than a word writes one word every cycle:
    16 words of 104 bits (13 bus words of 128) in 16 cycles of bus words offered."""
    raw = rng.integers(0, 256, 16 * 16).astype(np.uint8)
    raw[1::2] &= 31
    stream = layout.pack_wgt_words(raw.tobytes(), 8, LoadFormat.PACKED, 16)
    assert len(stream) == 13 * 16
    cycles = []
    dut = WgtUnpack(cols=8, bus_bits=128)

    async def bench(ctx):
        ctx.set(dut.fmt, LoadFormat.PACKED.value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        t = 0
        for i in range(13):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, int.from_bytes(stream[16 * i:16 * i + 16], "little"))
            while True:
                ready, emit = ctx.get(dut.i.ready), ctx.get(dut.emit)
                await ctx.tick()
                t += 1
                cycles.append(emit)
                if ready:
                    break
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(cycles) == 16 and all(cycles)


def test_unpacker_rejects_bad_parameters():
    with pytest.raises(ValueError, match="cols must be a positive power of two, not 6"):
        WgtUnpack(cols=6, bus_bits=128)
    with pytest.raises(ValueError, match="bus_bits must be a power of two of at least 8, not 96"):
        WgtUnpack(cols=8, bus_bits=96)
