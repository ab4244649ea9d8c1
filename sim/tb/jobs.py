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

from ...base.sparse import pack
from .base import config_from_env
from .core_job import CoreJob, CoreTB, OutputParams


async def whole_device(dut):
    """A started driver backend for the whole-accelerator design under test: the fast one on
    ``s4_sim`` (DRAM model in the design), cocotbext-axi's RAM and monitors on ``s4_top``."""
    try:
        dut.bd_req  # noqa: B018 (the DRAM model's backdoor: only s4_sim has it)
    except AttributeError:
        from .rtl_backend import RtlBackend
        be = RtlBackend(dut)
    else:
        from .fast_backend import FastBackend
        be = FastBackend(dut)
    await be.start()
    return be


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


@cocotb.test()
async def bench_gemm(dut):
    """End-to-end layers through the driver on the whole accelerator (``s4 bench gemm``):
    DRAM to DRAM, int8 output with bias, requantization and ReLU, checked against the golden
    model; one JSON row per layer and sparsity, written as soon as it is measured."""
    from ...base.sparse import prune
    from ...sw import scenarios
    from ...sw.driver import Driver

    spec = json.loads(os.environ["S4_JOB"])
    rng = np.random.default_rng(spec["seed"])
    be = await whole_device(dut)
    dev = Driver(be)
    info = await dev.open()
    rows = []
    for layer in spec["layers"]:
        if "conv" in layer:
            rows += await _bench_conv(dut, be, dev, info, rng, layer, spec["sparsities"], rows)
            continue
        m, k, n = layer["m"], layer["k"], layer["n"]
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        dense = rng.integers(-128, 128, (n, k), dtype=np.int8)
        for s in spec["sparsities"]:
            packed = pack(prune(dense, s), s)
            params = scenarios.int8_params(rng, x, packed, lut=False)
            res = await scenarios.check_layer(dev, x, packed, params,
                                              f"{layer['name']} s={s}", max_cycles=50_000_000)
            assert not be.violations, be.violations
            wall = res.wall_s     # hand-over to interrupt
            rows.append({"layer": layer["name"], "m": m, "k": k, "n": n, "sparsity": s,
                         "cycles": res.cycles, "counters": res.counters,
                         "dram_bytes": res.counters["perf_dma_rd_bytes"]
                         + res.counters["perf_dma_wr_bytes"],
                         "image_bytes": res.dram_bytes, "descriptors": res.descriptors,
                         "wall_s": wall, "bit_exact": True, "lanes": info.rows * info.cols,
                         "bus_bytes": info.bus_bytes})
            dut._log.info("%s s=%d: %d cycles, %.0f cycles/s, counters %s", layer["name"], s,
                          res.cycles, res.cycles / wall, res.counters)
            with open(os.environ["S4_RESULT"], "w") as f:
                json.dump(rows, f)


async def _bench_conv(dut, be, dev, info, rng, layer, sparsities, done):
    """A ``s4 bench gemm`` convolution row: NHWC input of ``rows`` images, on-chip windows
    (``sw/conv.py``), checked against the golden model (im2col + GEMM)."""
    from ...base.sparse import prune
    from ...sw import scenarios
    from ...sw.conv import conv_weights

    g = layer["conv"]
    geo = {"ksize": g["k"], "stride": g["stride"], "pad": g["pad"]}
    x = rng.integers(-128, 128, (info.rows, g["h"], g["w"], g["c"]), dtype=np.int8)
    dense = conv_weights(rng.integers(-128, 128, (g["cout"], g["k"], g["k"], g["c"]),
                                      dtype=np.int8))
    cols = scenarios._conv_cols(x, g["k"], g["stride"], g["pad"])
    out = []
    for s in sparsities:
        packed = pack(prune(dense, s), s)
        params = scenarios.int8_params(rng, cols, packed, lut=False)
        want = scenarios.conv_expected(x, packed, params, geo)
        res = await dev.run_conv(x, packed, params, max_cycles=50_000_000, **geo)
        ok = bool(np.array_equal(res.y, want))
        assert ok, f"{layer['name']} s={s}: {int((res.y != want).sum())} outputs differ"
        assert not be.violations, be.violations
        out.append({"layer": layer["name"], "m": cols.shape[0], "k": packed.k, "n": packed.n,
                    "sparsity": s, "cycles": res.cycles, "counters": res.counters,
                    "dram_bytes": res.counters["perf_dma_rd_bytes"]
                    + res.counters["perf_dma_wr_bytes"],
                    "image_bytes": res.dram_bytes, "descriptors": res.descriptors,
                    "wall_s": res.wall_s, "bit_exact": ok, "lanes": info.rows * info.cols,
                    "bus_bytes": info.bus_bytes})
        dut._log.info("%s s=%d: %d cycles, counters %s", layer["name"], s, res.cycles,
                      res.counters)
        with open(os.environ["S4_RESULT"], "w") as f:
            json.dump(done + out, f)
    return out


@cocotb.test()
async def run_models(dut):
    """Compiled models on the whole accelerator (``s4 demo``, ``s4 digits``, ``s4 run``): each
    model of the pickled job (a chain of layers, a convolutional network: one device program
    per batch, or an encoder: one per sequence) runs batch by batch through the driver;
    outputs, cycles and counters are written back, and progress goes to ``S4_PROGRESS`` as it
    happens."""
    import pickle

    from ...sw.compiler import run_model
    from ...sw.convnet import QuantNet
    from ...sw.driver import Driver
    from ...sw.encoder import EncoderStack
    from ..workloads.execute import run_net_on_driver

    with open(os.environ["S4_JOB"], "rb") as f:
        job = pickle.load(f)
    be = await whole_device(dut)
    dev = Driver(be)
    await dev.open()
    x_q, batch = job["x_q"], job["batch"]
    total = len(job["models"]) * -(-len(x_q) // batch)
    done = 0
    out = {}
    for name, model in job["models"].items():
        ys, cycles, counters, walls = [], [], [], []
        for i in range(0, len(x_q), batch):
            if isinstance(model, (QuantNet, EncoderStack)):   # an encoder: a program a sequence
                y, cyc, results = await run_net_on_driver(
                    dev, model, x_q[i:i + batch], batch=getattr(model, "program_batch", batch))
            else:
                y, cyc, results = await run_model(dev, model, x_q[i:i + batch])
            assert not be.violations, be.violations
            ys.append(y)
            cycles.append(cyc)
            counters.append([r.counters for r in results])
            walls.append(sum(r.wall_s for r in results))
            done += 1
            with open(os.environ["S4_PROGRESS"], "w") as f:
                json.dump({"done": done, "total": total, "model": name}, f)
        out[name] = {"y": np.concatenate(ys), "cycles": cycles, "counters": counters,
                     "wall_s": walls}
    with open(os.environ["S4_RESULT"], "wb") as f:
        pickle.dump(out, f)


@cocotb.test()
async def bench_model(dut):
    """Whole networks as one device program each (``s4 bench model``): every pickled job
    (:class:`s4accel.sim.bench.model.Job`) builds its program through the driver's allocator,
    runs it, and its output is compared with the job's golden output; cycles, counters, the
    descriptors (for the performance model) and the verdict are written back after each job,
    and a line per job goes to ``S4_PROGRESS``."""
    import pickle

    from ...sw.driver import Driver

    with open(os.environ["S4_JOB"], "rb") as f:
        jobs = pickle.load(f)
    be = await whole_device(dut)
    dev = Driver(be)
    await dev.open()
    out = []
    for job in jobs:
        mark = dev.alloc.top
        try:
            prog = job.program(dev.info, job.inputs, dev.alloc)
            res = await dev.run_program(prog, max_cycles=100_000_000)
        finally:
            dev.alloc.top = mark
        assert not be.violations, be.violations
        exp = np.asarray(job.expected)
        exact = res.y.shape == exp.shape and np.array_equal(res.y.astype(np.int64),
                                                             exp.astype(np.int64))
        if not exact:
            bad = int((res.y.astype(np.int64) != exp.astype(np.int64)).sum()) \
                if res.y.shape == exp.shape else exp.size
            dut._log.error("%s s=%d: %d outputs differ from the golden model", job.network,
                           job.sparsity, bad)
        out.append({"network": job.network, "sparsity": job.sparsity, "cycles": res.cycles,
                    "counters": res.counters, "descs": [bytes(d) for d in prog.descs],
                    "bit_exact": bool(exact), "wall_s": res.wall_s})
        line = (f"{job.network} s={job.sparsity}: {res.cycles} cycles, "
                f"{'bit-exact' if exact else 'DIFFERS from the golden model'}, "
                f"{res.cycles / res.wall_s:.0f} cycles/s")
        dut._log.info("%s", line)
        with open(os.environ["S4_RESULT"], "wb") as f:
            pickle.dump(out, f)
        with open(os.environ["S4_PROGRESS"], "a") as f:
            f.write(line + "\n")


@cocotb.test()
async def fuzz(dut):
    """``s4 fuzz --backend rtl``: random programs on ``s4_sim`` against the functional model
    (:mod:`s4accel.sim.fuzz`); the statistics and reports go to ``S4_RESULT`` as JSON."""
    from .. import fuzz as fz

    spec = json.loads(os.environ["S4_JOB"])
    config = config_from_env()
    stats = await fz.fuzz_rtl(dut, config, spec["seed"], spec["descriptors"],
                              only=spec.get("only"), spus=spec.get("spus"),
                              log=dut._log.info, preset=spec.get("preset"))
    with open(os.environ["S4_RESULT"], "w") as f:
        json.dump({"stats": stats.as_json(), "reports": stats.reports}, f)
    for line in stats.reports:
        dut._log.info("%s", line)
