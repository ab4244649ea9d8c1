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
from ..tb import runner

__all__ = ["LAYERS", "bench_gemm", "format_table", "plot_layers", "parse_shape"]

#: name -> (M rows, K, N output channels)
LAYERS = {
    "bert_attn_768x768": (32, 768, 768),      # Q, K, V and attention output projections
    "bert_ffn1_768x3072": (32, 768, 3072),    # FFN up-projection
    "bert_ffn2_3072x768": (32, 3072, 768),    # FFN down-projection
    "resnet50_conv3_3x3": (64, 3 * 3 * 128, 128),   # conv3_x 3x3, 128 -> 128, 64 of 28x28 px
    "resnet50_conv5_1x1": (49, 2048, 512),    # conv5_x 1x1 reduce, 2048 -> 512, all 7x7 px
}


def parse_shape(text: str) -> tuple[str, tuple[int, int, int]]:
    """``"MxKxN"`` -> ``("custom_MxKxN", (M, K, N))``."""
    m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text.strip())
    if not m or min(int(v) for v in m.groups()) < 1:
        raise ValueError(f"a shape is MxKxN with positive integers, not {text!r}")
    return f"custom_{text.strip()}", tuple(int(v) for v in m.groups())


def bench_gemm(config_name="fpga", *, layers=None, sparsities=None, seed=0, sim="verilator"):
    """Run the benchmark; returns ``(rows, info)``. ``layers`` maps names to ``(M, K, N)``."""
    config = load_config(config_name)
    layers = dict(layers or LAYERS)
    levels = [s for s in (sparsities or config.sparsities) if s in config.sparsities]
    bad = [s for s in (sparsities or []) if s not in config.sparsities]
    if bad:
        raise ValueError(f"sparsity {bad[0]} is not supported by {config.name} "
                         f"({list(config.sparsities)})")
    spec = {"seed": seed, "sparsities": levels,
            "layers": [{"name": k, "m": v[0], "k": v[1], "n": v[2]} for k, v in layers.items()]}
    build_s = runner.build_shared("s4_top", config, sim)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        t0 = time.monotonic()
        run = runner.run_tests("s4_top", config, sim, "s4accel.sim.tb.jobs",
                               testcase="bench_gemm", tag="bench_gemm",
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
    info = {"config": config.name, "simulator": sim, "build_s": build_s, "run_s": wall,
            "log": str(run.log), "lanes": config.lanes, "dram_bus_bits": config.dram_bus_bits}
    return rows, info


def format_table(rows) -> str:
    head = (f"{'layer':<20} {'MxKxN':>15} {'s':>3} {'cycles':>9} {'speedup':>8} {'ratio':>6} "
            f"{'lane util':>9} {'DRAM bytes':>11} {'rd util':>7} {'wr util':>7} "
            f"{'stall in':>9} {'stall out':>9} {'descs':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        sp = r["speedup_vs_dense"]
        sp_txt = f"{sp:>8.2f} {sp / r['sparsity']:>6.3f}" if sp else f"{'-':>8} {'-':>6}"
        shape = f"{r['m']}x{r['k']}x{r['n']}"
        lines.append(f"{r['layer']:<20} {shape:>15} {r['sparsity']:>3} {r['cycles']:>9} "
                     f"{sp_txt} {r['lane_utilization']:>9.4f} {r['dram_bytes']:>11} "
                     f"{r['dram_read_util']:>7.3f} {r['dram_write_util']:>7.3f} "
                     f"{r['stall_input_cycles']:>9} {r['stall_output_cycles']:>9} "
                     f"{r['descriptors']:>5}")
    return "\n".join(lines)


def plot_layers(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    levels = sorted({r["sparsity"] for r in rows})
    ax.plot(levels, levels, "--", color="gray", label="ideal (speedup = s)")
    for name in dict.fromkeys(r["layer"] for r in rows):
        pts = [(r["sparsity"], r["speedup_vs_dense"]) for r in rows
               if r["layer"] == name and r["speedup_vs_dense"]]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(levels, [str(v) for v in levels])
    ax.set_yticks(levels, [str(v) for v in levels])
    ax.set_xlabel("weight sparsity s")
    ax.set_ylabel("layer speedup over dense, DRAM to DRAM")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
