"""Calibration data for the performance model's DECODE time (``Timing.decode``,
``decode_restart``, ``decode_post`` in ``sim/model/perf_model.py``); not part of the test suite.

``probe``: ``S4_CASES`` (default 40) random images alone (DECODE, COMPLETE) on ``s4_sim`` with a
decoder (sim/tb/decode.py's ``tiny_jpeg``): every sampling in turn, 5..55 pixels a
side, quality 15..97, a fifth with a restart interval of 1..3 MCUs, half with a random crop,
a random output size; each logged as a ``PROBE`` line of JSON with the RTL's cycles and the
JPEG file. Run with ``runner.run_tests("s4_sim", tiny_jpeg(), "verilator",
"s4accel.sim.tb.decode_probe", env={"S4_SEED": ..., "S4_CASES": ...})``. (The constants were
fitted on seeds 1 (60 images) and 2 (200) and checked on seed 3 (200); ``sim/tb/decode.py``
checks them against the RTL.)"""

from __future__ import annotations

import json
import os

import cocotb

from ...base import codec
from ...sw.codec import decode_program
from ...sw.driver import Driver
from ..workloads.jpeg import encode, smooth_image
from .base import rng_from_env
from .fast_backend import started

MODES = ("grey", "4:4:4", "4:2:2", "4:2:0")


async def _open(dut, name):
    """Test ``name``'s seeded generator, a driver on the started design, its capabilities and
    the number of cases (``S4_CASES``, default 40)."""
    rng = rng_from_env(dut, name)
    dev = Driver(await started(dut))
    info = await dev.open()
    return rng, dev, info, int(os.environ.get("S4_CASES") or 40)


@cocotb.test()
async def probe(dut):
    rng, dev, info, n = await _open(dut, "probe")
    for k in range(n):
        d = _random_decode(rng, k)
        data = bytes.fromhex(d["data"])
        prog = decode_program(info, dev.alloc, data, crop=d["crop"], out_h=d["out"][0],
                              out_w=d["out"][1])
        res = await dev.run_program(prog)
        _, bits = codec.split_scan(data)
        dut._log.info("PROBE %s", json.dumps(d | {"bits": len(bits), "cycles": res.cycles}))


def _random_decode(rng, k, wide=False):
    mode = MODES[k % 4]
    h, w = int(rng.integers(5, 56)), int(rng.integers(5, 56))
    if wide:        # a long last MCU row: the next DECODE's decoder waits for its lanes
        mode, h, w = "4:2:0", int(rng.integers(16, 41)), int(rng.integers(48, 65))
    q = int(rng.integers(15, 98))
    kw = {}
    if rng.random() < 0.2:
        kw["restart_marker_blocks"] = int(rng.integers(1, 4))
    data = encode(smooth_image(rng, h, w), mode, quality=q, **kw)
    if rng.random() < 0.5:
        cw, ch = int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))
        cx, cy = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    else:
        cx, cy, cw, ch = 0, 0, w, h
    oh, ow = int(rng.integers(1, min(ch, 8) + 1)), int(rng.integers(1, min(cw, 12) + 1))
    return {"mode": mode, "h": h, "w": w, "q": q, "kw": kw, "crop": [cx, cy, cw, ch],
            "out": [oh, ow], "data": data.hex()}


@cocotb.test()
async def pairs(dut):
    """``S4_CASES`` pairs of random images (as ``probe``'s; every third a wide 4:2:0 frame and
    a grey one) decoded back to back (DECODE,
    DECODE, COMPLETE: Motion JPEG's overlap, ``Timing.decode_go``, ``decode_release``,
    ``decode_gap``), each logged as a ``PAIR`` line of JSON with the RTL's cycles."""
    rng, dev, info, n = await _open(dut, "pairs")
    for k in range(n):
        # every third pair: a wide 4:2:0 frame, then a grey one (its table block is short)
        wide = k % 3 == 2
        jobs = [_random_decode(rng, k, wide),
                _random_decode(rng, 0 if wide else k + int(rng.integers(0, 4)))]
        prog = None
        for j, d in enumerate(jobs):
            one = decode_program(info, dev.alloc, bytes.fromhex(d["data"]), crop=d["crop"],
                                 out_h=d["out"][0], out_w=d["out"][1], lane=j,
                                 act_addr=100 * j, complete=j == 1)
            if prog is None:
                prog = one
            else:
                prog.descs += one.descs
                prog.images += one.images
        res = await dev.run_program(prog)
        dut._log.info("PAIR %s", json.dumps({"jobs": jobs, "cycles": res.cycles}))
