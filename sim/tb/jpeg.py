"""cocotb testbench of the JPEG decoder (``jpeg_decoder``, :mod:`s4accel.sim.hdl.jpeg`): the
driver's part (headers parsed by :func:`s4accel.base.jpeg.parse`, tables written through
``i_table`` / ``i_qt``, ``config`` set, ``start`` pulsed), then the scan data byte by byte,
pixels collected and compared bit for bit with the golden decoder.

Cycles are counted from the cycle the first scan byte is offered to the cycle the last pixel
is taken (table loading counted apart). A run ends with ``done`` or ``error`` within a bound
linear in the input (``scan_bound``); the pixels written never exceed width x height.

Tests: ``images_exact`` (generated images, every sampling mode, input gaps and output
back-pressure, a frame without DHT decoded with the Annex K.3 tables), ``corrupt_streams``
(seeded mutations of the entropy-coded data: bounded termination, no pixel past the image, then
a good image decodes exactly), and ``decode_jobs`` (the files listed in ``S4_JPEG_JOBS``,
results written beside it: the benchmark and the ``rtl`` backend of ``s4 jpeg decode``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ...base.jpeg import JpegError, decode, parse
from ...hw.jpeg.decoder import decoder_config, decoder_config_layout, table_image
from ...hw.jpeg.entropy import EntropyError
from ..workloads.jpeg import encode, mutate, scan_data, smooth_image, strip_dht
from .base import cases_from_env, config_from_env, reset, rng_from_env, start_clock
from .core_job import pack_struct

__all__ = ["ScanResult", "JpegTB", "scan_bound"]


def scan_bound(payload_len: int, width: int, height: int) -> int:
    """Cycles within which a scan must end with ``done`` or ``error``."""
    return 500 + 40 * payload_len + 4 * width * height


@dataclass
class ScanResult:
    pixels: np.ndarray      #: (n, 3) uint8, in the order taken
    error: EntropyError
    done: bool
    cycles: int             #: first byte offered .. last pixel taken (0: no pixel)
    run_cycles: int         #: start .. done or error
    table_cycles: int       #: table and quantizer writes
    late_pixels: int        #: pixels taken after done or error (the pipeline draining)


class JpegTB:
    def __init__(self, dut, config, rng, idle=0.0, stall=0.0):
        self.dut, self.config, self.rng = dut, config, rng
        self.idle, self.stall = idle, stall
        dut.start.value = 0
        dut.dec_config.value = 0
        for name in ("i_data", "i_table", "i_qt"):
            getattr(dut, f"{name}__valid").value = 0
        dut.o_pixel__ready.value = 0

    async def start(self):
        start_clock(self.dut, impl="gpi")
        await reset(self.dut)

    async def _writes(self, port: str, beats: list[int]) -> int:
        dut = self.dut
        valid, ready = getattr(dut, f"{port}__valid"), getattr(dut, f"{port}__ready")
        payload = getattr(dut, f"{port}__payload")
        cycles = 0
        for beat in beats:
            payload.value = beat
            valid.value = 1
            while True:
                await ReadOnly()
                taken = ready.value == 1
                await RisingEdge(dut.clk)
                cycles += 1
                if taken:
                    break
        valid.value = 0
        return cycles

    async def program(self, tables) -> int:
        """Write the tables of ``tables`` and set ``config``; returns the write cycles."""
        from ...hw.jpeg.entropy import table_write_layout
        from ...hw.jpeg.idct import qt_write_layout

        huff, qt = table_image(tables)
        cycles = await self._writes("i_table", [
            pack_struct(table_write_layout, {"table": t, "addr": a, "data": v})
            for t, a, v in huff])
        cycles += await self._writes("i_qt", [
            pack_struct(qt_write_layout, {"comp": c, "k": k, "data": v}) for c, k, v in qt])
        # (refuses an image wider than the design's jpeg_max_width, as DECODE does)
        self.dut.dec_config.value = pack_struct(
            decoder_config_layout,
            decoder_config(tables, max_width=config_from_env().jpeg_max_width))
        return cycles

    async def run_scan(self, payload: bytes, width: int, height: int, *, bound=None,
                       tail: int = 64, idle=None, stall=None) -> ScanResult:
        """Pulse ``start``, send ``payload`` (the last byte marked ``last``), take pixels until
        ``done`` or ``error``, then (ready high) until no pixel came for ``tail`` cycles: after
        an error the pipeline drains what it holds, which must stop within ``drain`` cycles
        (an MCU row's worth)."""
        dut, rng = self.dut, self.rng
        idle = self.idle if idle is None else idle
        stall = self.stall if stall is None else stall
        bound = bound or scan_bound(len(payload), width, height)
        drain = 1000 + 32 * width
        d_valid, d_ready, d_payload = dut.i_data__valid, dut.i_data__ready, dut.i_data__payload
        p_valid, p_ready, p_payload = dut.o_pixel__valid, dut.o_pixel__ready, dut.o_pixel__payload
        await RisingEdge(dut.clk)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        n, i = len(payload), 0
        driving = False
        ready = 1
        pixels = []
        cycle, first, last_px = 0, None, None
        done, error = False, EntropyError.NONE
        end = None
        while True:
            if not driving and i < n and not (idle and rng.random() < idle):
                d_payload.value = payload[i] | ((i == n - 1) << 8)
                d_valid.value = 1
                driving = True
                if first is None:
                    first = cycle
            elif not driving:
                d_valid.value = 0
            if end is None and stall:
                ready = 0 if rng.random() < stall else 1
            elif end is not None:
                ready = 1
            p_ready.value = ready
            await ReadOnly()
            if driving and d_ready.value == 1:
                i += 1
                driving = False
            if ready and p_valid.value == 1:
                pixels.append(p_payload.value.to_unsigned())
                last_px = cycle
            if end is None:
                done = dut.done.value == 1
                error = EntropyError(dut.error.value.to_unsigned())
                if done or error != EntropyError.NONE:
                    end = (cycle, len(pixels))
                elif cycle >= bound:
                    raise AssertionError(
                        f"no done or error within {bound} cycles ({i} of {n} bytes taken, "
                        f"{len(pixels)} of {width * height} pixels)")
            elif cycle >= max(end[0], last_px or 0) + tail:
                break
            elif cycle >= end[0] + drain:
                raise AssertionError(f"pixels still coming {drain} cycles after "
                                     f"{'done' if done else error.name}")
            await RisingEdge(dut.clk)
            cycle += 1
        busy = dut.busy.value == 1
        await RisingEdge(dut.clk)
        d_valid.value = 0
        assert not busy, "busy still high after done or error"
        v = np.array(pixels, dtype=np.uint32)
        rgb = np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=-1).astype(np.uint8)
        cycles = 0 if last_px is None or first is None else last_px - first + 1
        return ScanResult(pixels=rgb.reshape(-1, 3), error=error, done=done, cycles=cycles,
                          run_cycles=end[0] + 1, table_cycles=0,
                          late_pixels=len(pixels) - end[1])

    async def decode_file(self, data: bytes, *, headers: bytes | None = None, **kw):
        """The driver's whole job: parse the headers (of ``headers``, default ``data``),
        program them, run the scan of ``data``."""
        tables = parse(headers or data)
        if not scan_data(data):
            # nothing to send: a driver refuses the file instead of starting a scan that
            # would wait for its first byte
            raise JpegError("no entropy-coded data after the SOS segment")
        table_cycles = await self.program(tables)
        res = await self.run_scan(scan_data(data), tables.width, tables.height, **kw)
        res.table_cycles = table_cycles
        return tables, res


class _must_refuse:
    """Context: the block must raise :class:`JpegError` (an AssertionError naming ``what``
    otherwise)."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            raise AssertionError(f"{self.what}: the driver refused it, the golden decoder "
                                 "decodes it")
        return issubclass(kind, JpegError)


def golden_rgb(data: bytes) -> np.ndarray:
    """The golden decoder's image as (H, W, 3) (grey repeated into three channels)."""
    want = decode(data)
    if want.ndim == 2:
        want = np.repeat(want[:, :, None], 3, axis=2)
    return want


def check_exact(res: ScanResult, data: bytes, what: str) -> None:
    assert res.done and res.error == EntropyError.NONE, f"{what}: ended with {res.error.name}"
    want = golden_rgb(data)
    h, w = want.shape[:2]
    assert len(res.pixels) == h * w, f"{what}: {len(res.pixels)} pixels, expected {h * w}"
    got = res.pixels.reshape(h, w, 3)
    diff = np.argwhere(np.any(got != want, axis=-1))
    assert diff.size == 0, (f"{what}: {len(diff)} pixels differ from the golden decoder, first "
                            f"at (y, x) = {tuple(diff[0])}: {got[tuple(diff[0])]} vs "
                            f"{want[tuple(diff[0])]}")


#: (sampling, height, width, Pillow options) of ``images_exact``
IMAGE_CASES = [
    ("grey", 13, 21, {"quality": 75}),
    ("4:4:4", 9, 17, {"quality": 90}),
    ("4:2:2", 17, 23, {"quality": 50, "restart_marker_blocks": 2}),
    ("4:2:0", 19, 35, {"quality": 75, "optimize": True}),
    ("4:2:0", 1, 33, {"quality": 20}),
    ("4:2:2", 24, 1, {"quality": 95}),
]


@cocotb.test()
async def images_exact(dut):
    tb = JpegTB(dut, config_from_env(), rng_from_env(dut, "images_exact"))
    await tb.start()
    for i, (mode, h, w, kw) in enumerate(IMAGE_CASES):
        data = encode(smooth_image(tb.rng, h, w), mode, **kw)
        idle, stall = (0.0, 0.0) if i == 0 else (0.1, 0.2)
        _, res = await tb.decode_file(data, idle=idle, stall=stall)
        check_exact(res, data, f"{mode} {h}x{w} {kw}")
        dut._log.info("%s %dx%d %s: exact, %d cycles, tables %d cycles", mode, h, w, kw,
                      res.cycles, res.table_cycles)
    # a Motion JPEG style frame without DHT: the driver programs the Annex K.3 tables
    data = strip_dht(encode(smooth_image(tb.rng, 15, 21), "4:2:0", quality=60))
    tables, res = await tb.decode_file(data)
    assert tables.standard_huffman == {("DC", 0), ("AC", 0), ("DC", 1), ("AC", 1)}
    check_exact(res, data, "4:2:0 15x21 without DHT")
    dut._log.info("4:2:0 15x21 without DHT: exact, %d cycles, tables %d cycles", res.cycles,
                  res.table_cycles)


@cocotb.test()
async def corrupt_streams(dut):
    """Seeded mutations of the entropy-coded data (S4_CASES of them, default 20): each ends
    with done or an error within :func:`scan_bound`, writes no pixel past width x height,
    none after done and stops draining after an error; when the golden decoder decodes the
    mutated file too and the decoder ends with done, the pixels are equal; every 5th is
    followed by a good image that must decode exactly."""
    tb = JpegTB(dut, config_from_env(), rng_from_env(dut, "corrupt_streams"))
    await tb.start()
    rng = tb.rng
    n = cases_from_env(20)
    modes = ["grey", "4:4:4", "4:2:2", "4:2:0"]
    errors = {}
    for case in range(n):
        mode = modes[case % 4]
        h, w = int(rng.integers(1, 24)), int(rng.integers(1, 40))
        kw = {"quality": int(rng.integers(10, 96))}
        if rng.random() < 0.3:
            kw["restart_marker_blocks"] = int(rng.integers(1, 4))
        good = encode(smooth_image(rng, h, w), mode, **kw)
        bad, how = mutate(good, rng, data_only=True)
        what = f"case {case}: {mode} {h}x{w} {kw}, {how}"
        try:
            _, res = await tb.decode_file(bad, headers=good, stall=0.2)
        except JpegError as e:
            # the driver refuses it before a scan starts (no entropy-coded data left): the
            # golden decoder must refuse it too
            with _must_refuse(what):
                decode(bad)
            errors["refused"] = errors.get("refused", 0) + 1
            dut._log.info("%s -> refused by the driver (%s)", what, e)
            continue
        assert len(res.pixels) <= w * h, f"{what}: {len(res.pixels)} pixels written past {w * h}"
        assert not (res.done and res.late_pixels), f"{what}: {res.late_pixels} pixels after done"
        try:
            decode(bad)
            model = "decodes"
        except JpegError as e:
            model = f"JpegError ({e})"
        if model == "decodes" and res.done:
            check_exact(res, bad, f"{what} (decoded by both)")
        errors[res.error.name] = errors.get(res.error.name, 0) + 1
        dut._log.info("%s -> %s, %d pixels (%d after the end); model %s", what, res.error.name,
                      len(res.pixels), res.late_pixels, model)
        if case % 5 == 4:
            _, res = await tb.decode_file(good)
            check_exact(res, good, f"{what}, then the good file")
    dut._log.info("corrupt_streams: %d cases, endings %s", n, errors)


@cocotb.test()
async def decode_jobs(dut):
    """The files of the job list ``S4_JPEG_JOBS`` (JSON: ``{"jobs": [{"file": path}...]}``);
    writes ``results.json`` (error, cycles, table cycles, pixels taken) and one
    ``pixels_<i>.npy`` per job beside it. No job list: nothing to do."""
    path = os.environ.get("S4_JPEG_JOBS")
    if not path:
        return
    spec = json.loads(Path(path).read_text())
    tb = JpegTB(dut, config_from_env(), rng_from_env(dut, "decode_jobs"))
    await tb.start()
    out = Path(path).parent
    results = []
    for i, job in enumerate(spec["jobs"]):
        data = Path(job["file"]).read_bytes()
        headers = Path(job["headers"]).read_bytes() if job.get("headers") else None
        tables, res = await tb.decode_file(data, headers=headers)
        np.save(out / f"pixels_{i}.npy", res.pixels)
        results.append({"file": job["file"], "width": tables.width, "height": tables.height,
                        "error": res.error.name, "done": res.done, "cycles": res.cycles,
                        "run_cycles": res.run_cycles, "table_cycles": res.table_cycles,
                        "pixels": len(res.pixels), "late_pixels": res.late_pixels})
        dut._log.info("job %d %s: %s, %d cycles", i, job["file"], res.error.name, res.cycles)
    (out / "results.json").write_text(json.dumps(results, indent=1))
