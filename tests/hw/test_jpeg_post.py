"""DECODE's post-processing RTL (hw/jpeg/post.py) on Amaranth's simulator: crop, box resize,
normalisation and quantisation of a raster pixel stream equal to the golden model
(s4accel.base.codec.box_resize / normalise), with random input gaps and output stalls."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from s4accel.base import codec
from s4accel.hw.jpeg.post import PostProcessor


def run_post(img, crop, out_h, out_w, norms, grey, rng, *, stall=0.3, gap=0.3):
    """Stream ``img`` through the RTL (one testbench drives both sides, cycle by cycle, with
    random input gaps and output stalls); returns the lanes as (index, data)."""
    h, w = img.shape[:2]
    dut = PostProcessor(max_out_w=64)
    got = []
    n_out = out_h * out_w
    pixels = [(yy, xx) for yy in range(h) for xx in range(w)]

    async def main(ctx):
        x, y, cw, ch = crop
        ctx.set(dut.config, {"crop_x": x, "crop_y": y, "crop_w": cw, "crop_h": ch,
                             "out_w": out_w, "out_h": out_h, "grey": grey,
                             "norm": [{"offset": n.offset, "mult": n.mult, "shift": n.shift}
                                      for n in norms]})
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        k = 0
        bound = 20 * (h * w + n_out) + 100
        for _ in range(bound):
            if len(got) >= n_out and k == len(pixels):
                break
            ready = rng.random() >= stall
            ctx.set(dut.o_lane.ready, ready)
            send = k < len(pixels) and rng.random() >= gap
            if send:
                yy, xx = pixels[k]
                r, g, b = (int(v) for v in img[yy, xx])
                ctx.set(dut.i_pixel.payload, {"r": r, "g": g, "b": b, "row_last": xx == w - 1,
                                              "last": k == len(pixels) - 1})
            ctx.set(dut.i_pixel.valid, send)
            taken = send and ctx.get(dut.i_pixel.ready)
            valid = ctx.get(dut.o_lane.valid)
            item = (ctx.get(dut.o_lane.payload.index), ctx.get(dut.o_lane.payload.data))
            await ctx.tick()
            k += bool(taken)
            if ready and valid:
                got.append(item)
        ctx.set(dut.i_pixel.valid, 0)
        ctx.set(dut.o_lane.ready, 1)
        for _ in range(20):      # nothing more may come out
            if ctx.get(dut.o_lane.valid):
                got.append((ctx.get(dut.o_lane.payload.index), None))
            await ctx.tick()
        assert not ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.run()
    return got


@pytest.mark.parametrize("grey", [0, 1])
def test_post_equals_golden(grey, rng):
    for case in range(8):
        h, w = int(rng.integers(1, 20)), int(rng.integers(1, 24))
        if case == 0:      # a fixed downscale with windows of 2 and 3 samples each way
            h, w = 12, 17
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if grey:
            img[..., 1] = img[..., 2] = img[..., 0]
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        cw, ch = int(rng.integers(1, w - x0 + 1)), int(rng.integers(1, h - y0 + 1))
        ow, oh = int(rng.integers(1, cw + 1)), int(rng.integers(1, ch + 1))
        if case == 0:
            x0, y0, cw, ch, ow, oh = 0, 0, w, h, 7, 5
        norms = [codec.Norm(int(rng.integers(-4096, 4096)), int(rng.integers(-300, 300)),
                            int(rng.integers(0, 14))) for _ in range(3)]
        c = 1 if grey else 3
        exp = codec.normalise(codec.box_resize(img[y0:y0 + ch, x0:x0 + cw, :c], oh, ow), norms)
        lanes = np.frombuffer(codec.act_lane_image(exp), np.uint8).reshape(-1, 32)
        got = run_post(img, (x0, y0, cw, ch), oh, ow, norms, grey, rng)
        what = f"{h}x{w} crop {(x0, y0, cw, ch)} -> {oh}x{ow}"
        assert [i for i, _ in got] == list(range(oh * ow)), what
        data = np.array([list(d.to_bytes(32, "little")) for _, d in got], np.uint8)
        assert np.array_equal(data, lanes), what


def test_post_extreme_norms(rng):
    """The normalisation at the ends of its fields (offset and mult int16, shift 0..31): the
    products pass 2**30 in magnitude (``(v << 4) - offset`` up to 36,848 times a mult of
    -32,768), and the clamp, the rounding and the shift agree with the golden model there
    too."""
    img = rng.integers(0, 256, (3, 9, 3), dtype=np.uint8)
    img[0, :3] = [[0, 0, 0], [255, 255, 255], [0, 255, 128]]
    cases = [[codec.Norm(-32768, -32768, 0), codec.Norm(32767, 32767, 31),
              codec.Norm(-32768, 32767, 17)],
             [codec.Norm(32767, -32768, 24), codec.Norm(-32768, -32768, 31),
              codec.Norm(0, 32767, 26)]]
    for norms in cases:
        exp = codec.normalise(codec.box_resize(img, 3, 9), norms)
        lanes = np.frombuffer(codec.act_lane_image(exp), np.uint8).reshape(-1, 32)
        got = run_post(img, (0, 0, 9, 3), 3, 9, norms, 0, rng)
        assert [i for i, _ in got] == list(range(27)), norms
        data = np.array([list(d.to_bytes(32, "little")) for _, d in got], np.uint8)
        assert np.array_equal(data, lanes), norms
        # the test means something only if the clamp does not hide every product
        assert len(np.unique(exp)) > 2, norms
