"""``s4 bench core``: the tensor core RTL (Verilator) on a BERT-FFN-like GEMM at every sparsity."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ...base.config import load_config
from ...base.sparse import prune
from ..tb import runner

__all__ = ["bench_core", "format_table", "plot_speedup"]


def default_shape(config):
    """M x K x N scaled so the dense run is 256 tiles of K = 768 (BERT-base FFN K) cycles each.

    For the ``fpga`` preset this is M=64, K=768, N=256.
    """
    return 8 * config.rows, 768, 32 * config.cols


def bench_core(config_name="fpga", *, m=None, k=None, n=None, seed=0, sim="verilator",
               progress=None):
    """Run the benchmark; returns ``(rows, info)`` where rows are the JSON objects."""
    config = load_config(config_name)
    dm, dk, dn = default_shape(config)
    m, k, n = m or dm, k or dk, n or dn
    rng = np.random.default_rng(seed)
    levels = [s for s in (1, 2, 4, 8, 16, 32) if s in config.sparsities]
    arrays = {"x": rng.integers(-128, 128, (m, k), dtype=np.int8),
              "levels": np.array(levels)}
    for s in levels:
        arrays[f"w{s}"] = prune(rng.integers(-128, 128, (n, k), dtype=np.int8), s)
    build_s = runner.build_shared("tensor_core", config, sim)
    with tempfile.TemporaryDirectory() as tmp:
        job, result = Path(tmp) / "job.npz", Path(tmp) / "result.json"
        np.savez(job, **arrays)
        t0 = time.monotonic()
        run = runner.run_tests("tensor_core", config, sim, "s4accel.sim.tb.jobs",
                               testcase="bench_core", tag="bench_core",
                               env={"S4_JOB": job, "S4_RESULT": result})
        wall = time.monotonic() - t0
        raw = json.loads(result.read_text())
    dense = next(r["cycles"] for r in raw if r["sparsity"] == 1) if 1 in levels else None
    rows = []
    for r in raw:
        c = r["counters"]
        rows.append({
            "config": config.name, "m": m, "k": k, "n": n,
            "sparsity": r["sparsity"],
            "cycles": r["cycles"],
            "macs_dense_equiv": m * n * k,
            "speedup_vs_dense": (dense / r["cycles"]) if dense else None,
            "lane_utilization": c["mac_cycles"] / c["busy_cycles"] if c["busy_cycles"] else 0.0,
            "mac_cycles": c["mac_cycles"],
            "stall_input_cycles": c["stall_input_cycles"],
            "stall_output_cycles": c["stall_output_cycles"],
            "bit_exact": r["bit_exact"],
            "sim_cycles_per_s": r["cycles"] / r["wall_s"] if r["wall_s"] else None,
        })
    info = {"config": config.name, "simulator": sim, "build_s": build_s, "run_s": wall,
            "log": str(run.log), "lanes": config.lanes}
    return rows, info


def format_table(rows) -> str:
    head = (f"{'s':>3} {'cycles':>9} {'dense-eq MACs':>14} {'speedup':>8} {'ideal':>6} "
            f"{'ratio':>6} {'lane util':>9} {'bit-exact':>9} {'sim cyc/s':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        sp = r["speedup_vs_dense"]
        lines.append(f"{r['sparsity']:>3} {r['cycles']:>9} {r['macs_dense_equiv']:>14} "
                     f"{sp:>8.2f} {r['sparsity']:>6} {sp / r['sparsity']:>6.3f} "
                     f"{r['lane_utilization']:>9.4f} {str(r['bit_exact']):>9} "
                     f"{r['sim_cycles_per_s'] or 0:>10.0f}")
    return "\n".join(lines)


def plot_speedup(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [r["sparsity"] for r in rows]
    sp = [r["speedup_vs_dense"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(s, s, "--", color="gray", label="ideal (speedup = s)")
    ax.plot(s, sp, "o-", label="RTL (Verilator), measured")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(s, [str(v) for v in s])
    ax.set_yticks(s, [str(v) for v in s])
    ax.set_xlabel("weight sparsity s")
    ax.set_ylabel("speedup over dense (same array)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
