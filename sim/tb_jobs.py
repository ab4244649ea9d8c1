"""cocotb entry points behind the command line: ``s4 bench core`` and ``s4 gemm --backend rtl``.

They take a job description from a ``.npz`` file named by ``S4_JOB`` and write their results to
``S4_RESULT`` (JSON or ``.npy``), so the command line can drive a simulator it does not run in.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np

from ..sw.sparse import pack
from .core_job import CoreJob, OutputParams
from .tb_core import CoreTB, config_from_env


@cocotb.test()
async def bench_core(dut):
    """Run one GEMM per sparsity level at full stream rate; record cycles and counters."""
    config = config_from_env()
    job_file = np.load(os.environ["S4_JOB"])
    x = job_file["x"]
    tb = CoreTB(dut, config)
    await tb.start()
    rows = []
    for s in job_file["levels"].tolist():
        w = job_file[f"w{s}"]
        job = CoreJob.build(config, x, pack(w, s), OutputParams("raw"))
        before = tb.counters()
        t0 = time.perf_counter()
        got, cycles = await tb.run(job)
        wall = time.perf_counter() - t0
        after = tb.counters()
        delta = {k: after[k] - before[k] for k in after}
        report = job.mismatches(got)
        assert not report, f"s={s}: {report}"
        rows.append({"sparsity": s, "cycles": cycles, "counters": delta, "wall_s": wall,
                     "bit_exact": True})
        dut._log.info("s=%d: %d cycles (%.0f cycles/s)", s, cycles, cycles / wall)
    with open(os.environ["S4_RESULT"], "w") as f:
        json.dump(rows, f)


@cocotb.test()
async def gemm_file(dut):
    """One raw GEMM from files: ``Y = X @ W.T`` on the RTL."""
    config = config_from_env()
    job_file = np.load(os.environ["S4_JOB"])
    s = int(job_file["s"])
    job = CoreJob.build(config, job_file["x"], pack(job_file["w"], s), OutputParams("raw"))
    tb = CoreTB(dut, config)
    await tb.start()
    got, cycles = await tb.run(job)
    np.save(os.environ["S4_RESULT"], got.astype(np.int32))
    with open(os.environ["S4_RESULT"] + ".json", "w") as f:
        json.dump({"cycles": cycles, "counters": tb.counters()}, f)
