"""``s4 bench jpeg``: cycles per pixel of the JPEG decoder RTL (``jpeg_decoder``, cocotb on
Verilator or Icarus), per image, sampling mode and quality.

Images: scikit-learn's ``china.jpg`` and ``flower.jpg`` re-encoded by Pillow at 4:2:0, quality
75 (the issue's acceptance images, 427 x 640), then seeded synthetic images at each sampling
mode and several qualities. Cycles run from the cycle the first scan byte is offered to the
cycle the last pixel is taken, without input gaps or output stalls; loading the tables
(``i_table`` / ``i_qt`` writes, one a cycle) is reported apart. Every decoded image is compared
with the golden decoder (it must be equal) and with Pillow.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ..report import Column, format_table as _format_table
from ..workloads.jpeg import encode, sample_image, smooth_image

__all__ = ["COLUMNS", "JSON_KEYS", "bench_images", "bench_jpeg", "format_table", "rtl_decode"]

#: The keys of each JSON row, in order.
JSON_KEYS = ("image", "width", "height", "sampling", "quality", "cycles", "cycles_per_pixel",
             "bit_exact_vs_pillow", "max_abs_diff_vs_pillow")

#: Synthetic images: (sampling, quality, Pillow options)
SYNTHETIC = [("grey", 75, {}), ("4:4:4", 90, {}), ("4:2:2", 50, {}), ("4:2:0", 20, {}),
             ("4:2:0", 75, {"restart_marker_blocks": 4}), ("4:2:0", 95, {})]


def bench_images(*, max_side: int | None = None, synthetic=(96, 128), seed: int = 0,
                 samples=("china.jpg", "flower.jpg")):
    """[(name, sampling, quality, JPEG bytes)]: the scikit-learn samples at 4:2:0 q75 (cropped
    to ``max_side`` x ``max_side`` when given), then :data:`SYNTHETIC` at ``synthetic``
    (height, width)."""
    out = []
    for name in samples:
        img = sample_image(name)
        if max_side:
            img = img.crop((0, 0, min(max_side, img.width), min(max_side, img.height)))
        out.append((name, "4:2:0", 75, encode(img, "4:2:0", quality=75)))
    rng = np.random.default_rng(seed)
    h, w = synthetic
    for mode, q, kw in SYNTHETIC:
        name = f"synthetic_{h}x{w}" + ("_rst" if kw else "")
        out.append((name, mode, q, encode(smooth_image(rng, h, w), mode, quality=q, **kw)))
    return out


def rtl_decode(files: list[bytes], config="fpga", sim: str = "verilator", seed: int = 0):
    """Run each JPEG of ``files`` through the decoder RTL; returns ([results dict per file:
    width, height, error, done, cycles, run_cycles, table_cycles, pixels (n, 3) uint8], run
    seconds). A file the driver refuses raises :class:`s4accel.base.jpeg.JpegError` before
    any simulation."""
    from ...base.jpeg import parse
    from ...hw.jpeg.decoder import decoder_config
    from ..tb import runner

    for data in files:
        decoder_config(parse(data))     # the driver's checks, before building anything
    with tempfile.TemporaryDirectory(prefix="s4jpeg_") as tmp:
        tmp = Path(tmp)
        jobs = []
        for i, data in enumerate(files):
            path = tmp / f"in_{i}.jpg"
            path.write_bytes(data)
            jobs.append({"file": str(path)})
        (tmp / "jobs.json").write_text(json.dumps({"jobs": jobs}))
        t0 = time.monotonic()
        runner.run_tests("jpeg_decoder", config, sim, "s4accel.sim.tb.jpeg",
                         testcase="decode_jobs", tag="jobs",
                         env={"S4_JPEG_JOBS": str(tmp / "jobs.json"), "S4_SEED": seed})
        seconds = time.monotonic() - t0
        results = json.loads((tmp / "results.json").read_text())
        for i, r in enumerate(results):
            r["pixels"] = np.load(tmp / f"pixels_{i}.npy")
    return results, seconds


def bench_jpeg(config="fpga", *, sim: str = "verilator", max_side: int | None = None,
               seed: int = 0, images=None):
    """Rows with :data:`JSON_KEYS` plus ``table_cycles`` and ``exact_vs_golden``, and run
    information (config, simulator, run seconds, simulated cycles)."""
    from PIL import Image

    from ...base.config import load_config
    from ...base.jpeg import decode

    cfg = load_config(config)
    images = images if images is not None else bench_images(max_side=max_side, seed=seed)
    results, seconds = rtl_decode([d for *_, d in images], cfg, sim, seed)
    rows = []
    for (name, mode, q, data), r in zip(images, results, strict=True):
        h, w = r["height"], r["width"]
        ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
        golden = decode(data)
        if golden.ndim == 2:
            golden = np.repeat(golden[:, :, None], 3, axis=2)
        ok = r["done"] and r["error"] == "NONE" and len(r["pixels"]) == w * h
        got = r["pixels"].reshape(h, w, 3).astype(np.int16) if ok else None
        rows.append({
            "image": name, "width": w, "height": h, "sampling": mode, "quality": q,
            "cycles": r["cycles"], "cycles_per_pixel": r["cycles"] / (w * h),
            "bit_exact_vs_pillow": bool(ok and np.array_equal(got, ref)),
            "max_abs_diff_vs_pillow": int(np.abs(got - ref).max()) if ok else None,
            "table_cycles": r["table_cycles"],
            "exact_vs_golden": bool(ok and np.array_equal(got, golden)),
            "error": r["error"],
        })
    info = {"config": cfg.name, "simulator": sim, "run_s": seconds,
            "sim_cycles": sum(r["run_cycles"] + r["table_cycles"] for r in results)}
    return rows, info


COLUMNS = [Column("image", "image", "<20"), Column("size", lambda r: f"{r['width']}x"
                                                   f"{r['height']}", ">8"),
           Column("sampling", "sampling", "<8"), Column("q", "quality", ">3"),
           Column("cycles", "cycles", ">8"), Column("cyc/px", "cycles_per_pixel", ">6.3f"),
           Column("tables", "table_cycles", ">6"),
           Column("=golden", lambda r: "yes" if r["exact_vs_golden"] else "NO", ">7"),
           Column("=Pillow", lambda r: "yes" if r["bit_exact_vs_pillow"] else "no", ">7"),
           Column("max diff", "max_abs_diff_vs_pillow", ">8")]


def format_table(rows) -> str:
    return _format_table(rows, COLUMNS)


def json_rows(rows) -> list[dict]:
    """The rows with exactly :data:`JSON_KEYS`."""
    return [{k: r[k] for k in JSON_KEYS} for r in rows]
