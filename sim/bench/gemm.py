"""``s4 bench gemm``: whole layers on the whole accelerator RTL, DRAM to DRAM through the
driver, at every sparsity.

The layers are BERT-base's linear layers (32 tokens, so that the simulation takes minutes)
and two ResNet-50 convolutions lowered to GEMM by im2col (``K = kh * kw * C_in``, output pixels
as rows). Weights are random int8 pruned bank-balanced at each ``s`` from the
same dense matrix; outputs are int8 (bias, requantization, ReLU) and are checked against the
golden model. ``cycles`` runs from handing the descriptors to the device to its completion
interrupt, so it includes every DMA transfer and all descriptor overhead.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

from ...base.config import load_config
from .. import report
from ..report import Column
from ..tb import runner

__all__ = ["COLUMNS", "LAYERS", "bench_gemm", "format_table", "plot_layers", "parse_shape"]

#: name -> (M rows, K, N output channels)
LAYERS = {
    "bert_attn_768x768": (32, 768, 768),      # Q, K, V and attention output projections
    "bert_ffn1_768x3072": (32, 768, 3072),    # FFN up-projection
    "bert_ffn2_3072x768": (32, 3072, 768),    # FFN down-projection
    "resnet50_conv3_3x3": (64, 3 * 3 * 128, 128),   # conv3_x 3x3, 128 -> 128, 64 of 28x28 px
    "resnet50_conv5_1x1": (49, 2048, 512),    # conv5_x 1x1 reduce, 2048 -> 512, all 7x7 px
}

#: Convolutions run from an NHWC tensor through the on-chip windows (``GemmBody.conv``,
#: ``sw/conv.py``): name -> geometry. ``images`` is the row count of the configuration's array
#: (a row tile is one output pixel of that many images). ``resnet50_conv3_3x3_nhwc`` is
#: ResNet-50's conv3_x 3x3 layer (128 -> 128 channels) on a 4 x 8 patch of each of 8 images
#: (on ``fpga``: M = 8 x 32 = 256, K = 1152, N = 128), zero padding around the patch, read
#: from the NHWC patch (32 KiB plus halo rows) instead of 256 im2col rows (288 KiB).
CONVS = {
    "resnet50_conv3_3x3_nhwc": {"h": 4, "w": 8, "c": 128, "k": 3, "stride": 1, "pad": 1,
                                "cout": 128},
}


def conv_shape(config, geo) -> tuple[int, int, int]:
    """(M, K, N) of a conv bench row on ``config``: M = rows x output pixels."""
    from ...base.golden import conv_out_size
    ho = conv_out_size(geo["h"], geo["k"], geo["stride"], geo["pad"])
    wo = conv_out_size(geo["w"], geo["k"], geo["stride"], geo["pad"])
    return (config.rows * ho * wo, geo["k"] ** 2 * -(-geo["c"] // 32) * 32, geo["cout"])


def parse_shape(text: str) -> tuple[str, tuple[int, int, int]]:
    """``"MxKxN"`` -> ``("custom_MxKxN", (M, K, N))``."""
    m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text.strip())
    if not m or min(int(v) for v in m.groups()) < 1:
        raise ValueError(f"a shape is MxKxN with positive integers, not {text!r}")
    return f"custom_{text.strip()}", tuple(int(v) for v in m.groups())


def bench_gemm(config_name="fpga", *, layers=None, sparsities=None, seed=0, sim="verilator",
               fast=True, variant=None, convs=None):
    """Run the benchmark; returns ``(rows, info)``. ``layers`` maps names to ``(M, K, N)``,
    ``convs`` names to conv geometries (:data:`CONVS`; with ``layers`` given, default none).

    ``fast``: the simulation top ``s4_sim`` (DRAM model inside the design, Python only between
    jobs); else ``s4_top`` with cocotbext-axi's RAM and the Python bus monitor. ``variant``:
    a Verilator build variant (:data:`~s4accel.sim.tb.runner.VERILATOR_VARIANTS`)."""
    config = load_config(config_name)
    convs = dict(CONVS if convs is None and layers is None else (convs or {}))
    layers = dict(LAYERS if layers is None else layers)
    levels = [s for s in (sparsities or config.sparsities) if s in config.sparsities]
    bad = [s for s in (sparsities or []) if s not in config.sparsities]
    if bad:
        raise ValueError(f"sparsity {bad[0]} is not supported by {config.name} "
                         f"({list(config.sparsities)})")
    spec = {"seed": seed, "sparsities": levels,
            "layers": [{"name": k, "m": v[0], "k": v[1], "n": v[2]} for k, v in layers.items()]
            + [{"name": k, "conv": g} for k, g in convs.items()]}
    design = runner.whole_device_design(fast)
    build_s = runner.build_shared(design, config, sim, variant=variant)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        t0 = time.monotonic()
        run = runner.run_tests(design, config, sim, "s4accel.sim.tb.jobs",
                               testcase="bench_gemm", tag="bench_gemm", variant=variant,
                               env={"S4_JOB": json.dumps(spec), "S4_RESULT": result})
        wall = time.monotonic() - t0
        raw = json.loads(result.read_text())
    dense = {r["layer"]: r["cycles"] for r in raw if r["sparsity"] == 1}
    rows = []
    for r in raw:
        c, cyc, bb = r["counters"], r["cycles"], r["bus_bytes"]
        base = dense.get(r["layer"])
        rows.append({
            "config": config.name, "layer": r["layer"], "m": r["m"], "k": r["k"], "n": r["n"],
            "sparsity": r["sparsity"], "cycles": cyc,
            "speedup_vs_dense": base / cyc if base else None,
            # fraction of the job's cycles in which every lane issued a MAC
            "lane_utilization": c["perf_mac"] / cyc,
            "dram_bytes": r["dram_bytes"],
            "dram_read_util": c["perf_dma_rd_bytes"] / (cyc * bb),
            "dram_write_util": c["perf_dma_wr_bytes"] / (cyc * bb),
            "mac_cycles": c["perf_mac"], "core_busy_cycles": c["perf_busy"],
            "stall_input_cycles": c["perf_stall_in"],
            "stall_output_cycles": c["perf_stall_out"],
            "descriptors": r["descriptors"], "bit_exact": r["bit_exact"],
            "sim_cycles_per_s": cyc / r["wall_s"] if r["wall_s"] else None,
        })
    info = {"config": config.name, "simulator": sim, "design": design, "build_s": build_s,
            "run_s": wall, "sim_cycles": sum(r["cycles"] for r in raw),
            "sim_wall_s": sum(r["wall_s"] for r in raw),
            "log": str(run.log), "lanes": config.lanes, "dram_bus_bits": config.dram_bus_bits}
    return rows, info


def _ratio(r):
    sp = r["speedup_vs_dense"]
    return sp / r["sparsity"] if sp else None


#: The table of :func:`bench_gemm`'s rows (speedup and ratio are ``-`` without a dense run).
COLUMNS = [Column("layer", "layer", "<20"),
           Column("MxKxN", lambda r: f"{r['m']}x{r['k']}x{r['n']}", ">15"),
           Column("s", "sparsity", ">3"), Column("cycles", "cycles", ">9"),
           Column("speedup", lambda r: r["speedup_vs_dense"] or None, ">8.2f"),
           Column("ratio", _ratio, ">6.3f"), Column("lane util", "lane_utilization", ">9.4f"),
           Column("DRAM bytes", "dram_bytes", ">11"), Column("rd util", "dram_read_util", ">7.3f"),
           Column("wr util", "dram_write_util", ">7.3f"),
           Column("stall in", "stall_input_cycles", ">9"),
           Column("stall out", "stall_output_cycles", ">9"), Column("descs", "descriptors", ">5")]


def format_table(rows) -> str:
    return report.format_table(rows, COLUMNS)


def plot_layers(rows, path, title):
    series = {}
    for r in rows:
        series.setdefault(r["layer"], []).append((r["sparsity"], r["speedup_vs_dense"]))
    return report.plot_speedup(series, path, title, levels={r["sparsity"] for r in rows},
                               ylabel="layer speedup over dense, DRAM to DRAM", figsize=(7, 5),
                               legend_size=8)
