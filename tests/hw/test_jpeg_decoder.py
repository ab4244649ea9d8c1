"""Amaranth-simulator tests of the whole JPEG decoder (hw/jpeg/decoder.py: entropy decoder,
IDCT, colour stage) on images Pillow encodes: the pixels must equal the golden decoder's and
Pillow's, in every sampling mode, at odd sizes, with restart intervals, under input gaps and
output back-pressure; a corrupt stream must end with the error output and a new image must
then decode cleanly. The cycles per pixel from ``start`` to the last pixel are measured and
bounded. Randomized tests log their seed (S4_SEED replays one).
"""

import io

import numpy as np
import pytest
from amaranth.sim import Simulator
from jpeg_images import encode, smooth_image
from PIL import Image

from s4accel.base.jpeg import JpegError, decode, parse
from s4accel.hw.jpeg.decoder import JpegDecoder, decoder_config, table_image
from s4accel.hw.jpeg.entropy import EntropyError


def scan_data(data):
    """The bytes after the (only) SOS segment: entropy-coded data, then the file's tail."""
    pos = 2
    while True:
        marker, length = data[pos + 1], (data[pos + 2] << 8) | data[pos + 3]
        pos += 2 + length
        if marker == 0xDA:
            return data[pos:]


def run_decoder(images, *, rng, gap=0.0, stall=0.0, max_width=64):
    """Decode each of `images` [(file bytes, tables whose headers to program)] in turn on one
    decoder; returns [(pixels as an (n, 3) array, error, cycles from start to done or
    error)]."""
    dut = JpegDecoder(max_width=max_width)
    results = []
    state = {"feed": None, "gen": 0, "pixels": []}

    async def feed(ctx):
        gen = 0
        while True:
            if state["gen"] == gen:
                await ctx.tick()
                continue
            gen = state["gen"]
            payload = state["feed"]
            for i, b in enumerate(payload):
                while rng.random() < gap:
                    ctx.set(dut.i_data.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i_data.valid, 1)
                ctx.set(dut.i_data.payload, {"data": b, "last": i == len(payload) - 1})
                # a new start drops the rest of a stream the decoder stopped reading
                while not (await ctx.tick().sample(dut.i_data.ready))[2]:
                    if state["gen"] != gen:
                        break
                if state["gen"] != gen:
                    break
            ctx.set(dut.i_data.valid, 0)

    async def collect(ctx):
        while True:
            ready = rng.random() >= stall
            ctx.set(dut.o_pixel.ready, ready)
            _, _, valid, p = await ctx.tick().sample(dut.o_pixel.valid, dut.o_pixel.payload)
            if ready and valid:
                state["pixels"].append((p.r, p.g, p.b))

    async def main(ctx):
        for data, tables in images:
            huff, qt = table_image(tables)
            for t, a, v in huff:
                ctx.set(dut.i_table.valid, 1)
                ctx.set(dut.i_table.payload, {"table": t, "addr": a, "data": v})
                await ctx.tick()
            ctx.set(dut.i_table.valid, 0)
            for c, k, v in qt:
                ctx.set(dut.i_qt.valid, 1)
                ctx.set(dut.i_qt.payload, {"comp": c, "k": k, "data": v})
                await ctx.tick()
            ctx.set(dut.i_qt.valid, 0)
            ctx.set(dut.config, decoder_config(tables, max_width=max_width))
            payload = scan_data(data)
            bound = 500 + 40 * len(payload) + 4 * tables.width * tables.height
            ctx.set(dut.start, 1)
            state["pixels"] = []
            await ctx.tick()
            ctx.set(dut.start, 0)
            state["feed"] = payload
            state["gen"] += 1
            cycles = 1
            while not (ctx.get(dut.done) or ctx.get(dut.error) != EntropyError.NONE):
                await ctx.tick()
                cycles += 1
                assert cycles <= bound, f"no done or error within {bound} cycles"
            error = ctx.get(dut.error)
            for _ in range(8):
                await ctx.tick()
            assert not ctx.get(dut.busy)
            results.append((np.array(state["pixels"], dtype=np.uint8).reshape(-1, 3), error,
                            cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(collect, background=True)
    sim.run()
    return results


def expected(data):
    want = decode(data)
    if want.ndim == 2:
        want = np.repeat(want[:, :, None], 3, axis=2)
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(want, ref), "the golden decoder differs from Pillow"
    return want


def check_image(got, data):
    want = expected(data)
    h, w = want.shape[:2]
    assert got.shape == (h * w, 3), f"{len(got)} pixels, expected {h * w}"
    got = got.reshape(h, w, 3)
    diff = np.argwhere(np.any(got != want, axis=-1))
    assert diff.size == 0, (f"{len(diff)} pixels differ, first at (y, x) = {tuple(diff[0])}: "
                            f"{got[tuple(diff[0])]} vs {want[tuple(diff[0])]}")


CASES = [
    ("grey", 13, 21, {"quality": 75}),
    ("4:4:4", 9, 17, {"quality": 90}),
    ("4:2:2", 17, 23, {"quality": 50, "restart_marker_blocks": 2}),
    ("4:2:0", 19, 35, {"quality": 75, "optimize": True}),
    ("4:2:0", 1, 33, {"quality": 20}),
    ("4:2:2", 37, 1, {"quality": 95}),
]


@pytest.mark.parametrize("mode,h,w,kw", [
    pytest.param(*c, id=f"{c[0]}-{c[1]}x{c[2]}-{'-'.join(c[3])}",
                 marks=() if c is CASES[3] else pytest.mark.slow) for c in CASES])
def test_decoder_exact(mode, h, w, kw, seed):
    """Whole images through the decoder with input gaps and output stalls equal Pillow."""
    rng = np.random.default_rng(seed)
    data = encode(smooth_image(rng, h, w), mode, **kw)
    [(got, error, cycles)] = run_decoder([(data, parse(data))], rng=rng, gap=0.1, stall=0.2)
    assert error == EntropyError.NONE
    check_image(got, data)


@pytest.mark.slow
def test_decoder_recovers_after_error():
    """A truncated stream ends with TRUNCATED; the next image (start) then decodes exactly,
    nothing of the broken one left inside."""
    rng = np.random.default_rng(4)
    good = encode(smooth_image(rng, 20, 24), "4:2:0", quality=75)
    sos = len(good) - len(scan_data(good))
    bad = good[:sos + 40] + b"\xff\xd9"
    with pytest.raises(JpegError):
        decode(bad)
    (_, err1, _), (got, err2, _) = run_decoder([(bad, parse(good)), (good, parse(good))],
                                               rng=rng, stall=0.5)
    assert err1 == EntropyError.TRUNCATED
    assert err2 == EntropyError.NONE
    check_image(got, good)


@pytest.mark.slow
def test_decoder_cycles_per_pixel():
    """Cycles from start to done (tables loaded beforehand), no gaps or stalls, on a 4:2:0
    image at quality 75: the slower of the colour stage (a pixel a cycle) and the entropy
    decoder (three cycles a symbol) sets the pace, the other runs beside it, so the total
    stays within 5 % of the slower's cycles plus the first MCU row (16 lines) and the
    pipeline's fill. (This noisy image has about 0.4 symbols a pixel, so the entropy decoder
    paces it; the issue's photographs, ``s4 bench jpeg``, have fewer.)"""
    from s4accel.base import codec
    from s4accel.sim.model.perf_model import _scan_symbols
    rng = np.random.default_rng(9)
    data = encode(smooth_image(rng, 48, 64), "4:2:0", quality=75)
    [(got, error, cycles)] = run_decoder([(data, parse(data))], rng=rng)
    assert error == EntropyError.NONE
    check_image(got, data)
    tables, bits = codec.split_scan(data)
    symbols = sum(len(b) for b in _scan_symbols(codec.table_block(tables), bits)[4])
    pace = max(64 * 48, 3 * symbols)
    print(f"4:2:0 q75 64x48: {cycles} cycles, {cycles / (64 * 48):.3f} cycles per pixel, "
          f"{symbols} symbols, pace {pace}")
    assert cycles <= 1.05 * pace + 16 * 64 + 100


def test_decoder_config_refuses():
    data = encode(smooth_image(np.random.default_rng(1), 8, 80), "4:2:0")
    with pytest.raises(JpegError, match="width 80 is over the decoder's 64"):
        decoder_config(parse(data), max_width=64)
