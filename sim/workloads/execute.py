"""Compiled models on the device: the functional model through the driver, or the RTL of
the whole accelerator (a cocotb job in a simulator) with a progress bar. Shared by the
workloads (:mod:`.demo`, :mod:`.digits`)."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from ...base.config import load_config
from ...sw.compiler import run_model
from ...sw.driver import Driver, run
from ..model.device_model import ModelBackend
from ..tb import runner

__all__ = ["run_on_rtl", "run_on_model", "run_net_on_model", "run_net_on_driver"]


def _bar(done, total, label, width=30, out=sys.stderr):
    fill = int(width * done / total) if total else width
    out.write(f"\r  RTL [{'#' * fill}{'.' * (width - fill)}] {done}/{total} batches  {label:<12}")
    out.flush()


def run_on_rtl(config, models: dict, x_q, *, batch=32, sim="verilator", show_progress=True,
               fast=True):
    """Run compiled ``models`` (:class:`~s4accel.sw.compiler.CompiledModel`, or
    :class:`~s4accel.sw.convnet.QuantNet` on NHWC images: one device program per batch) on
    int8 inputs ``x_q`` on the accelerator RTL; returns
    ``{name: {"y", "cycles" (per batch), "counters", "wall_s" (per batch)}}`` and run
    information, with ``sim_cycles_per_s``: device cycles over the wall time from each
    hand-over to its interrupt, summed. ``fast``: the ``s4_sim`` design (DRAM model inside),
    else ``s4_top`` with cocotbext-axi's RAM and the Python bus monitor."""
    config = load_config(config)
    t0 = time.monotonic()
    design = runner.whole_device_design(fast)
    build_s = runner.build_shared(design, config, sim)
    total = len(models) * -(-len(x_q) // batch)
    last = [-1]

    def poll(progress):
        if not show_progress or not progress.exists():
            return
        try:
            p = json.loads(progress.read_text())
        except ValueError:
            return
        if p["done"] != last[0]:
            last[0] = p["done"]
            _bar(p["done"], p["total"], p["model"])
    ok = False
    try:
        out, run_ = runner.run_pickled_job(design, config, sim, "run_models",
                                           {"models": models, "x_q": np.asarray(x_q),
                                            "batch": batch}, poll=poll, interval=0.2)
        ok = True
    finally:
        if show_progress:
            _bar(total if ok else max(last[0], 0), total, "done")
            sys.stderr.write("\n")
    cycles = sum(sum(o["cycles"]) for o in out.values())
    wall = sum(sum(o["wall_s"]) for o in out.values())
    info = {"config": config.name, "simulator": sim, "design": design, "build_s": build_s,
            "wall_s": time.monotonic() - t0, "log": str(run_.log),
            "sim_cycles": cycles, "sim_wall_s": wall,
            "sim_cycles_per_s": cycles / wall if wall else None}
    return out, info


def run_on_model(config, model, x_q):
    """Run one compiled model on the functional device model; returns ``(y, LayerResults)``."""
    async def main():
        dev = Driver(ModelBackend(config))
        await dev.open()
        y, _, results = await run_model(dev, model, x_q)
        return y, results
    return run(main())


def run_net_on_model(config, net, x_q, *, batch=64, progress=None, dram_size=None):
    """Run a convolutional network (:class:`~s4accel.sw.convnet.QuantNet`, or an
    :class:`~s4accel.sw.encoder.EncoderStack` with ``batch`` 1) on int8 NHWC images ``x_q``
    on the functional device model (:func:`run_net_on_driver`; ``dram_size``: its DRAM's
    bytes, default the model's); returns ``(output as QuantNet.forward_int gives it, total
    device cycles)``."""
    async def main():
        dev = Driver(ModelBackend(config) if dram_size is None
                     else ModelBackend(config, dram_size=dram_size))
        await dev.open()
        y, cycles, _ = await run_net_on_driver(dev, net, x_q, batch=batch, progress=progress)
        return y, cycles
    return run(main())


async def run_net_on_driver(dev, net, x_q, *, batch=64, progress=None):
    """Run a convolutional network (:class:`~s4accel.sw.convnet.QuantNet`) on int8 NHWC
    images ``x_q`` through an opened :class:`~s4accel.sw.driver.Driver`, one program
    (:meth:`~s4accel.sw.convnet.QuantNet.device_program`) per ``batch`` images; returns
    ``(output as QuantNet.forward_int gives it, total device cycles, LayerResult per batch)``.
    ``progress(done, total)`` is called after each batch."""
    x_q = np.asarray(x_q)
    outs, cycles, results = [], 0, []
    for i in range(0, len(x_q), batch):
        chunk = x_q[i:i + batch]
        mark = dev.alloc.top
        try:
            res = await dev.run_program(net.device_program(chunk, dev.info, dev.alloc),
                                        max_cycles=1 << 31)
        finally:
            dev.alloc.top = mark
        outs.append(net.device_output(res.y, len(chunk), dev.info.rows))
        cycles += res.cycles
        results.append(res)
        if progress:
            progress(min(i + batch, len(x_q)), len(x_q))
    return np.concatenate(outs), cycles, results
