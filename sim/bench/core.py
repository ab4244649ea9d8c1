"""``s4 bench core``: the tensor core RTL (Verilator) on a BERT-FFN-like GEMM at every sparsity."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ...base.config import load_config
from ...base.sparse import prune
from .. import report
from ..report import Column
from ..tb import runner

__all__ = ["COLUMNS", "bench_core", "format_table", "plot_speedup"]


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


def _ratio(r):
    sp = r["speedup_vs_dense"]
    return sp / r["sparsity"] if sp else None


#: The table of :func:`bench_core`'s rows: speedup against the ideal (``s``), the share of busy
#: cycles in which every lane issued a MAC, and the simulator's speed.
COLUMNS = [Column("s", "sparsity", ">3"), Column("cycles", "cycles", ">9"),
           Column("dense-eq MACs", "macs_dense_equiv", ">14"),
           Column("speedup", "speedup_vs_dense", ">8.2f"), Column("ideal", "sparsity", ">6"),
           Column("ratio", _ratio, ">6.3f"), Column("lane util", "lane_utilization", ">9.4f"),
           Column("bit-exact", lambda r: str(r["bit_exact"]), ">9"),
           Column("sim cyc/s", lambda r: r["sim_cycles_per_s"] or 0, ">10.0f")]


def format_table(rows) -> str:
    return report.format_table(rows, COLUMNS)


def plot_speedup(rows, path, title):
    series = {"RTL (Verilator), measured": [(r["sparsity"], r["speedup_vs_dense"]) for r in rows]}
    return report.plot_speedup(series, path, title, ylabel="speedup over dense (same array)")
