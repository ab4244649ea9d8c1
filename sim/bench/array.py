"""``s4 bench array``: the same layers on 1, 2 and 4 SPUs (RTL of the whole accelerator).

Output channels are split across the SPUs (each SPU holds its share of the weights in its own
scratchpads), activation loads are multicast (one DRAM read feeds every SPU), one GEMM
descriptor starts all SPUs and each SPU's results are stored from its own output scratchpad.
Every SPU shares the one DMA engine and DRAM port, so throughput grows with the number of SPUs
until the DRAM bus is saturated; the table gives the read and write utilization that says when.
"""

from __future__ import annotations

from ...base.config import load_config
from .. import report
from ..report import Column
from .gemm import LAYERS, bench_gemm

__all__ = ["ARRAY_LAYERS", "COLUMNS", "bench_array", "format_table"]

#: Default layers: a BERT-base projection and a ResNet-50 convolution.
ARRAY_LAYERS = ("bert_attn_768x768", "resnet50_conv3_3x3")


def array_config(base, spus: int):
    base = load_config(base)
    if spus == base.spus:
        return base
    return base.replace(spus=spus, name=f"{base.name}_x{spus}")


def bench_array(config="fpga", *, spus=(1, 2, 4), layers=None, sparsities=(1, 8, 16), seed=0,
                sim="verilator", progress=None, fast=True, configs=None):
    """Rows with ``spus``, ``layer``, ``sparsity``, ``cycles``, ``speedup_vs_one_spu`` and the
    DMA utilization, and per-N run information. ``configs`` (``{n: Config}``) gives the design
    for ``n`` SPUs instead of :func:`array_config` (a test shares another test's build)."""
    layers = dict(layers or {k: LAYERS[k] for k in ARRAY_LAYERS})
    rows, infos = [], []
    for n in spus:
        cfg = (configs or {}).get(n) or array_config(config, n)
        if cfg.spus != n:
            raise ValueError(f"configuration {cfg.name!r} has {cfg.spus} SPUs, not {n}")
        if progress:
            progress(f"{n} SPU(s): building and running {cfg.name} ...")
        r, info = bench_gemm(cfg, layers=layers, sparsities=list(sparsities), seed=seed,
                             sim=sim, fast=fast)
        for row in r:
            row["spus"] = n
        rows += r
        infos.append(info)
    base = {(r["layer"], r["sparsity"]): r["cycles"] for r in rows if r["spus"] == spus[0]}
    for r in rows:
        r["speedup_vs_one_spu"] = base[(r["layer"], r["sparsity"])] / r["cycles"]
        r["lanes"] = r["spus"] * load_config(config).lanes
    return rows, infos


#: The table of :func:`bench_array`'s rows; lane utilization is per SPU.
COLUMNS = [Column("layer", "layer", "<20"), Column("s", "sparsity", ">3"),
           Column("SPUs", "spus", ">4"), Column("lanes", "lanes", ">5"),
           Column("cycles", "cycles", ">9"), Column("vs 1 SPU", "speedup_vs_one_spu", ">8.2f"),
           Column("lane util", lambda r: r["lane_utilization"] / r["spus"], ">9.4f"),
           Column("rd util", "dram_read_util", ">7.3f"),
           Column("wr util", "dram_write_util", ">7.3f")]


def format_table(rows) -> str:
    """The rows by layer, sparsity and number of SPUs."""
    return report.format_table(
        sorted(rows, key=lambda r: (r["layer"], r["sparsity"], r["spus"])), COLUMNS)
