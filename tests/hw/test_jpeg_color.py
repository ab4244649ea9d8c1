"""Amaranth-simulator tests of the JPEG colour stage (hw/jpeg/color.py) against the golden
decoder's `upsample_fancy` and `ycc_to_rgb`, bit for bit.

Blocks of 8x8 samples go in as the IDCT emits them (scan order, a row of 8 per transfer),
with random input gaps and output back-pressure; the RGB pixels out must equal the golden
decoder's result: on random planes (padding included, which must never show) of every
sampling mode and of odd sizes down to 1xN and Nx1, and on the IDCT output of images Pillow
encodes (where the result must also be Pillow's own decode). A throughput test checks one
pixel per cycle once the input is ahead. Randomized tests log their seed (S4_SEED replays).
"""

import gc
import io

import numpy as np
import pytest
from amaranth.sim import Simulator
from jpeg_images import encode, smooth_image
from PIL import Image

from s4accel.base.jpeg import decode, idct_islow, parse, scan_blocks, upsample_fancy, ycc_to_rgb
from s4accel.hw.jpeg.color import ColorConverter, Sampling, sampling_of

MODES = {Sampling.GREY: (1, 1, 1), Sampling.S444: (1, 1, 3), Sampling.S422: (2, 1, 4),
         Sampling.S420: (2, 2, 6)}   # hmax, vmax, blocks per MCU


def geometry(sampling, h, w):
    hmax, vmax, nblocks = MODES[sampling]
    return hmax, vmax, nblocks, -(-w // (8 * hmax)), -(-h // (8 * vmax))


def random_blocks(rng, sampling, h, w):
    """Random 8x8 sample blocks in scan order: [(comp, slot, 8x8 uint8)]."""
    hmax, vmax, nblocks, mx, my = geometry(sampling, h, w)
    out = []
    for _ in range(mx * my):
        for slot in range(nblocks):
            comp = 0 if slot < hmax * vmax else slot - hmax * vmax + 1
            out.append((comp, slot, rng.integers(0, 256, (8, 8), dtype=np.uint8)))
    return out


def image_blocks(data):
    """The IDCT output of a Pillow-encoded file in scan order, and its tables."""
    tables = parse(data)
    nblocks = MODES[sampling_of(tables)][2]
    q = {ci: tables.scan_qtables[0][c.tq] for ci, c in enumerate(tables.components)}
    blocks = [(ci, i % nblocks, idct_islow(coef, q[ci]))
              for i, (ci, coef) in enumerate(scan_blocks(tables))]
    return blocks, tables


def golden(blocks, sampling, h, w, ycc=True):
    """What the colour stage must produce: decode_tables' planes, upsampling and colour."""
    hmax, vmax, _, mx, my = geometry(sampling, h, w)
    ncomp = 1 if sampling == Sampling.GREY else 3
    planes = [np.zeros((my * 8 * (vmax if c == 0 else 1), mx * 8 * (hmax if c == 0 else 1)),
                       dtype=np.uint8) for c in range(ncomp)]
    it = iter(blocks)
    for by in range(my):
        for bx in range(mx):
            for comp, slot, blk in (next(it) for _ in range(MODES[sampling][2])):
                if comp == 0:
                    r, c = by * vmax + slot // hmax, bx * hmax + slot % hmax
                else:
                    r, c = by, bx
                planes[comp][8 * r:8 * r + 8, 8 * c:8 * c + 8] = blk
    out = []
    for c, plane in enumerate(planes):
        hs, vs = (1, 1) if c == 0 else (hmax, vmax)
        up = upsample_fancy(plane[:-(-h // vs), :-(-w // hs)], hs, vs)
        out.append(up[:h, :w])
    if ncomp == 1:
        return np.repeat(out[0][:, :, None], 3, axis=2)
    return ycc_to_rgb(*out) if ycc else np.stack(out, axis=-1)


def run_color(blocks, sampling, h, w, *, rng, gap=0.0, stall=0.0, ycc=True, max_width=64,
              mutate=None):
    """Feed `blocks` as IDCT rows; returns ((h, w, 3) pixels, cycle of each pixel's
    transfer counted from start)."""
    dut = ColorConverter(max_width=max_width)
    if mutate:
        mutate(dut)
    pixels, cycles = [], []
    bound = 200 + 4 * h * w + 20 * len(blocks)
    state = {"cycle": 0}

    async def feed(ctx):
        await ctx.tick()
        for comp, slot, blk in blocks:
            for row in range(8):
                while rng.random() < gap:
                    ctx.set(dut.i_row.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i_row.valid, 1)
                ctx.set(dut.i_row.payload, {"comp": comp, "slot": slot, "row": row,
                                            "last": row == 7,
                                            "pixels": [int(x) for x in blk[row]]})
                while not (await ctx.tick().sample(dut.i_row.ready))[2]:
                    pass
        ctx.set(dut.i_row.valid, 0)

    async def collect(ctx):
        while True:
            ready = rng.random() >= stall
            ctx.set(dut.o_pixel.ready, ready)
            _, _, valid, p = await ctx.tick().sample(dut.o_pixel.valid, dut.o_pixel.payload)
            state["cycle"] += 1
            if ready and valid:
                n = len(pixels)
                assert p.row_last == (n % w == w - 1), f"row_last at pixel {n}"
                assert p.last == (n == h * w - 1), f"last at pixel {n}"
                pixels.append((p.r, p.g, p.b))
                cycles.append(state["cycle"])

    async def main(ctx):
        ctx.set(dut.config, {"sampling": sampling, "width": w, "height": h, "ycc": ycc})
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        state["cycle"] = 0
        for _ in range(bound):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"no done within {bound} cycles ({len(pixels)} pixels out)")
        for _ in range(4):   # nothing more may come out
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(collect, background=True)
    sim.run()
    assert len(pixels) == h * w, f"{len(pixels)} pixels, expected {h * w}"
    return np.array(pixels, dtype=np.uint8).reshape(h, w, 3), cycles


def check(got, want):
    diff = np.argwhere(np.any(got != want, axis=-1))
    assert diff.size == 0, (f"{len(diff)} pixels differ, first at (y, x) = {tuple(diff[0])}: "
                            f"{got[tuple(diff[0])]} vs {want[tuple(diff[0])]}")


# the fast tier keeps 1xN, Nx1 and one odd size in every mode (an even height: in 4:2:0 the
# last row's missing chroma line below is then a padding line, which must not be used); the
# rest are `slow`
FAST_SIZES = [(1, 37), (37, 1), (18, 23)]
SIZES = [pytest.param(s, id=f"{s[0]}x{s[1]}", marks=() if s in FAST_SIZES else pytest.mark.slow)
         for s in [(1, 1), (1, 37), (37, 1), (2, 5), (5, 2), (3, 4), (17, 23), (18, 23),
                   (33, 18), (24, 32)]]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("sampling", list(Sampling), ids=lambda s: s.name)
def test_color_random_planes(sampling, size, seed):
    """Random samples (padding included) in every mode and odd sizes, with input gaps and
    output stalls: the pixels equal upsample_fancy + ycc_to_rgb of the image's planes."""
    rng = np.random.default_rng(seed)
    h, w = size
    blocks = random_blocks(rng, sampling, h, w)
    # grey ignores ycc; the other modes are checked unconverted in their own test
    got, _ = run_color(blocks, sampling, h, w, rng=rng, gap=0.3, stall=0.3,
                       ycc=sampling != Sampling.GREY)
    check(got, golden(blocks, sampling, h, w))


@pytest.mark.parametrize("sampling", list(Sampling), ids=lambda s: s.name)
def test_color_ring_full_at_mcu_rows(sampling, seed):
    """Rows back to back and a slow output (ready 30 % of cycles): the writer fills the
    line ring and waits for room at each MCU row's start, right after the row before ended
    (``room`` is computed with the next MCU row's need from that cycle on; with the current
    row's need for one cycle, a grey image's next row overwrote a line still to be read)."""
    rng = np.random.default_rng(seed)
    h, w = 40, 24
    blocks = random_blocks(rng, sampling, h, w)
    got, _ = run_color(blocks, sampling, h, w, rng=rng, gap=0.0, stall=0.7,
                       ycc=sampling != Sampling.GREY)
    check(got, golden(blocks, sampling, h, w))


def test_color_unconverted_planes(seed):
    """ycc = 0 (an RGB-coded file): the upsampled planes pass through unconverted."""
    rng = np.random.default_rng(seed)
    blocks = random_blocks(rng, Sampling.S420, 19, 21)
    got, _ = run_color(blocks, Sampling.S420, 19, 21, rng=rng, gap=0.2, stall=0.2, ycc=False)
    check(got, golden(blocks, Sampling.S420, 19, 21, ycc=False))


IMAGES = [("grey", 13, 21), ("4:4:4", 9, 17), ("4:2:2", 17, 23), ("4:2:0", 19, 35),
          ("4:2:0", 1, 40), ("4:2:2", 30, 1), ("4:2:0", 34, 4)]


@pytest.mark.parametrize("mode,h,w", [
    pytest.param(*c, id=f"{c[0]}-{c[1]}x{c[2]}",
                 marks=() if c in (IMAGES[0], IMAGES[3], IMAGES[5]) else pytest.mark.slow)
    for c in IMAGES])
def test_color_pillow_images(mode, h, w, seed):
    """The IDCT output of Pillow-encoded images: the pixels equal Pillow's decode."""
    rng = np.random.default_rng(seed)
    data = encode(smooth_image(rng, h, w), mode, quality=80)
    blocks, tables = image_blocks(data)
    sampling = sampling_of(tables)
    got, _ = run_color(blocks, sampling, h, w, rng=rng, gap=0.1, stall=0.2)
    want = decode(data)
    if want.ndim == 2:
        want = np.repeat(want[:, :, None], 3, axis=2)
    check(got, want)
    img = Image.open(io.BytesIO(data))
    check(got, np.asarray(img.convert("RGB")))


@pytest.mark.parametrize("sampling", [
    pytest.param(s, id=s.name, marks=() if s in (Sampling.S444, Sampling.S420)
                 else pytest.mark.slow) for s in Sampling])
def test_color_pixel_per_cycle(sampling):
    """With the input ahead (rows arrive a row per cycle) and the output always ready, a pixel
    leaves every cycle from the first to the last: rows follow each other without a bubble."""
    rng = np.random.default_rng(11)
    h, w = 40, 48
    blocks = random_blocks(rng, sampling, h, w)
    got, cycles = run_color(blocks, sampling, h, w, rng=rng)
    check(got, golden(blocks, sampling, h, w))
    span = cycles[-1] - cycles[0] + 1
    print(f"{sampling.name}: {h * w} pixels in {span} cycles from the first to the last "
          f"({h * w / span:.3f} pixels per cycle), first pixel at cycle {cycles[0]}")
    assert span == h * w


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_color_max_width_is_checked():
    for bad in (8, 48, 100, "64"):
        with pytest.raises(ValueError, match="max_width must be a power of two"):
            ColorConverter(max_width=bad)
    gc.collect()   # the refused objects warn (UnusedElaboratable) here, where it is ignored


@pytest.mark.parametrize("max_width", [512, 2048])
@pytest.mark.parametrize("sampling", [Sampling.GREY, Sampling.S420], ids=lambda s: s.name)
def test_color_luma_banks(sampling, max_width, seed):
    """A wider stage's luma ring is split into banks of lines (3 at 512, 9 at 2048): every
    line slot is used once 37 rows have gone through, with input gaps and output stalls."""
    rng = np.random.default_rng(seed)
    h, w = 37, 9
    blocks = random_blocks(rng, sampling, h, w)
    got, _ = run_color(blocks, sampling, h, w, rng=rng, gap=0.3, stall=0.3,
                       max_width=max_width)
    check(got, golden(blocks, sampling, h, w))
