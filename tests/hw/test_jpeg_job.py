"""DECODE's datapath (hw/jpeg/job.py: table loader, JPEG decoder, post-processing) on
Amaranth's simulator: table block and bitstream bytes in, ACT lanes out, equal to the
functional model's golden job (s4accel.base.codec.decode_job); corrupt blocks and streams end
with ``error`` within a bounded number of cycles, and the next job runs."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from jpeg_images import encode, smooth_image

from s4accel.base import codec
from s4accel.hw.jpeg.job import DecodeJob


def run_jobs(jobs, rng, *, stall=0.2):
    """Run ``jobs`` [(block, bits, crop, out_h, out_w)] back to back on one DecodeJob;
    returns per job (lanes as [(index, 32 bytes)], "done" or "error", cycles)."""
    dut = DecodeJob(max_width=64, max_out_w=64)
    results = []

    async def main(ctx):
        for block, bits, crop, out_h, out_w in jobs:
            x, y, w, h = crop
            ctx.set(dut.geometry, {"crop_x": x, "crop_y": y, "crop_w": w, "crop_h": h,
                                   "out_w": out_w, "out_h": out_h})
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            lanes, kb, kd, cycles = [], 0, 0, 0
            bound = 40 * (len(block) + len(bits)) + 200 * out_h * out_w + 20000
            while cycles < bound:
                if ctx.get(dut.done) or ctx.get(dut.error):
                    break
                ready = rng.random() >= stall
                ctx.set(dut.o_lane.ready, ready)
                ctx.set(dut.i_block.valid, kb < len(block))
                if kb < len(block):
                    ctx.set(dut.i_block.payload, block[kb])
                ctx.set(dut.i_bits.valid, kd < len(bits))
                if kd < len(bits):
                    ctx.set(dut.i_bits.payload, {"data": bits[kd], "last": kd == len(bits) - 1})
                tb = kb < len(block) and ctx.get(dut.i_block.ready)
                td = kd < len(bits) and ctx.get(dut.i_bits.ready)
                valid = ctx.get(dut.o_lane.valid)
                item = (ctx.get(dut.o_lane.payload.index), ctx.get(dut.o_lane.payload.data))
                await ctx.tick()
                cycles += 1
                kb += bool(tb)
                kd += bool(td)
                if ready and valid:
                    lanes.append(item)
            else:
                raise AssertionError(f"no done or error within {bound} cycles")
            status = "error" if ctx.get(dut.error) else "done"
            ctx.set(dut.i_block.valid, 0)
            ctx.set(dut.i_bits.valid, 0)
            results.append((lanes, status, cycles))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.run()
    return results


def _lanes(q):
    return [bytes(r) for r in np.frombuffer(codec.act_lane_image(q), np.uint8).reshape(-1, 32)]


def _job(rng, mode, h, w):
    data = encode(smooth_image(rng, h, w), mode, quality=int(rng.integers(30, 95)))
    tables, bits = codec.split_scan(data)
    norm = codec.Norm(int(rng.integers(0, 4096)), int(rng.integers(1, 50)),
                      int(rng.integers(3, 9)))
    block = codec.table_block(tables, norm)
    x0, y0 = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    crop = (x0, y0, w - x0 - int(rng.integers(0, 3)), h - y0)
    oh, ow = int(rng.integers(1, crop[3] + 1)), int(rng.integers(1, crop[2] + 1))
    return ((block, bits, crop, oh, ow),
            _lanes(codec.decode_job(block, bits, crop=crop, out_h=oh, out_w=ow)))


def _check(result, exp, what):
    lanes, status, cycles = result
    assert status == "done", what
    assert [i for i, _ in lanes] == list(range(len(exp))), what
    assert [d.to_bytes(32, "little") for _, d in lanes] == exp, what
    return cycles


def test_job_grey_errors_and_recovery(rng):
    """A good grey job; a corrupt block (no lane, error), a corrupt stream (error), a crop
    outside the frame (no lane, error); a good job of another size after them."""
    (j0, e0), (j1, e1) = _job(rng, "grey", 16, 16), _job(rng, "grey", 24, 32)
    bad_block = bytearray(j0[0])
    bad_block[64 + 128] = 3                      # 3 DC codes of length 1: overflow
    bad_bits = bytearray(j0[1])
    for i in range(len(bad_bits) // 3, len(bad_bits) - 2):
        bad_bits[i] = 0xFF if bad_bits[i] != 0xFF else 0xFE
    jobs = [j0, (bytes(bad_block),) + j0[1:], (j0[0], bytes(bad_bits)) + j0[2:],
            (j0[0], j0[1], (1, 0, 16, 16), 4, 4), j1]
    results = run_jobs(jobs, rng)
    print(f"16x16 grey: {_check(results[0], e0, 0)} cycles (2112 of them the table block)")
    _check(results[4], e1, 4)
    assert results[1][1] == "error" and not results[1][0]
    assert results[2][1] == "error"
    assert results[3][1] == "error" and not results[3][0]


def test_job_420(rng):
    job, exp = _job(rng, "4:2:0", 24, 32)
    (result,) = run_jobs([job], rng)
    print(f"24x32 4:2:0: {_check(result, exp, '4:2:0')} cycles")


@pytest.mark.slow
def test_job_mutated_streams_equal_model(seed):
    """20 seeded mutations of the entropy-coded data (sim.workloads.jpeg.mutate, data only: the
    block stays valid), back to back on one DecodeJob: each ends as the functional model's
    golden job does, ``error`` where it raises and the same lanes where it decodes, within
    the cycle bound (about 40 s)."""
    from s4accel.sim.workloads.jpeg import mutate, scan_start
    rng = np.random.default_rng(seed)
    jobs, exp, hows = [], [], []
    for i in range(20):
        mode = ["grey", "4:4:4", "4:2:2", "4:2:0"][i % 4]
        h, w = int(rng.integers(4, 20)), int(rng.integers(4, 24))
        kw = {"restart_marker_blocks": 1} if i % 3 == 0 else {}
        good = encode(smooth_image(rng, h, w), mode, quality=int(rng.integers(20, 95)), **kw)
        bad, how = mutate(good, rng, data_only=True)
        block = codec.table_block(codec.split_scan(good)[0])
        bits = bad[scan_start(good):]
        try:
            e = _lanes(codec.decode_job(block, bits, crop=(0, 0, w, h), out_h=h, out_w=w))
        except ValueError:
            e = None
        jobs.append((block, bits, (0, 0, w, h), h, w))
        exp.append(e)
        hows.append(f"seed {seed} case {i}: {mode} {h}x{w} {kw} {how}")
    results = run_jobs(jobs, rng)
    for (lanes, status, _), e, how in zip(results, exp, hows, strict=True):
        if e is None:
            assert status == "error", how
        else:
            assert status == "done", how
            assert [d.to_bytes(32, "little") for _, d in lanes] == e, how
    assert any(e is None for e in exp) and any(e is not None for e in exp)
