"""``s4 demo``: a real model, compiled at 16x sparsity, on the accelerator RTL.

1. Train the digits MLP 64 -> 512 -> 10 in numpy (scikit-learn's 8x8 digits), prune it
   bank-balanced to s = 16 gradually, fine-tuning with the masks kept
   (:mod:`s4accel.sim.workloads.digits`).
2. Compile the pruned model and the same network dense (s = 1, the weights before pruning)
   to int8 device programs (:mod:`s4accel.sw.compiler`).
3. Run the whole test split on the functional device model through the driver.
4. Run a batch of test images on the RTL of the whole accelerator (Verilator), through the
   same driver and program bytes, with a progress bar; every RTL output is checked against
   the functional model's, bit for bit.
5. Print accuracy, device cycles per image and the speedup over the dense model, and where
   each number comes from.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ...base.config import load_config
from ...sw.compiler import compile_model
from .. import report
from ..report import Column
from .digits import accuracy, load_digits_split, train_mlp
from .execute import run_on_model, run_on_rtl

__all__ = ["COLUMNS", "demo", "format_table"]


def demo(config="fpga", *, images=128, batch=32, seed=0, sim="verilator", out=sys.stdout,
         fast=True):
    """The main job. Returns a dict of the printed numbers; raises if RTL and model differ.
    ``fast``: the RTL with the DRAM model inside the design (else cocotbext-axi's RAM)."""
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    cfg = load_config(config)
    say(f"S4-open demo: digits MLP 64 -> 512 -> 10 at 16x sparsity on the '{cfg.name}' "
        f"preset ({cfg.lanes} lanes)")
    t0 = time.monotonic()
    x_tr, y_tr, x_te, y_te = load_digits_split(seed)
    pruned, dense = train_mlp(x_tr, y_tr, 512, 16, seed=seed, keep_dense=True)
    say(f"  trained in numpy on {len(y_tr)} images ({time.monotonic() - t0:.1f} s); "
        f"test split: {len(y_te)} images")
    models = {"sparse16": compile_model(pruned.layers(), x_tr, 16, host_ops=["argmax"]),
              "dense": compile_model(dense.layers(), x_tr, 1, host_ops=["argmax"])}
    say("  compiled program (16x):")
    for line in models["sparse16"].summary().splitlines():
        say("    " + line)

    x_q = models["sparse16"].quantize_input(x_te)
    xd_q = models["dense"].quantize_input(x_te)
    fm = {}
    for name, m in models.items():
        xin = x_q if name == "sparse16" else xd_q
        y, res = run_on_model(cfg, m, xin)
        if not np.array_equal(y, m.reference(xin)):
            raise AssertionError(f"{name}: the functional model differs from the golden model")
        fm[name] = y
    n = min(images, len(y_te))
    say(f"  running {n} test images on the RTL ({sim}), batches of {batch} ...")
    rtl, info = _rtl_both(cfg, models, x_q, xd_q, n, batch, sim, fast)
    for name in models:
        if not np.array_equal(rtl[name]["y"], fm[name][:n]):
            bad = int((rtl[name]["y"] != fm[name][:n]).any(axis=1).sum())
            raise AssertionError(f"{name}: {bad} of {n} RTL outputs differ from the functional "
                                 "model")
    acc = {
        "float_pruned": accuracy(pruned.logits(x_te), y_te),
        "float_dense": accuracy(dense.logits(x_te), y_te),
        "model_sparse16": accuracy(models["sparse16"].dequantize_output(fm["sparse16"]), y_te),
        "model_dense": accuracy(models["dense"].dequantize_output(fm["dense"]), y_te),
        "rtl_sparse16": accuracy(models["sparse16"].dequantize_output(rtl["sparse16"]["y"]),
                                 y_te[:n]),
    }
    cyc = {name: sum(rtl[name]["cycles"]) / n for name in models}
    speedup = cyc["dense"] / cyc["sparse16"]
    mhz = cfg.clock_mhz
    say("")
    say(format_table([
        ("stored weights", "", models["sparse16"].stored_weights,
         models["dense"].stored_weights),
        ("accuracy, float (numpy)", ".4f", acc["float_pruned"], acc["float_dense"]),
        ("accuracy, int8 on the device model", ".4f", acc["model_sparse16"],
         acc["model_dense"]),
        ("accuracy, RTL sample", ".4f", acc["rtl_sparse16"], None),
        ("device cycles per image (RTL)", ".1f", cyc["sparse16"], cyc["dense"]),
        (f"images/s at {mhz} MHz", ".0f", mhz * 1e6 / cyc["sparse16"], mhz * 1e6 / cyc["dense"]),
    ]))
    say(f"  speedup of the 16x model over the same model dense: {speedup:.2f}x")
    say("")
    say(f"  Where the numbers come from: accuracy on all {len(y_te)} test images through the "
        "driver on the functional")
    say("  device model (bit-exact with the golden model); cycles from the RTL, counted from "
        "handing over")
    say(f"  each batch's program to its completion interrupt, {n} images in batches of "
        f"{batch}; every RTL output")
    say("  equals the functional model's, bit for bit. Each batch is one program: the "
        "hidden activations stay")
    say("  in the SPU's activation scratchpad (sw/chain.py). "
        f"RTL: {info['simulator']} ({info['design']}), build {info['build_s']:.0f} s, "
        f"run {info['wall_s']:.0f} s,")
    say(f"  {info['sim_cycles_per_s']:.0f} simulated cycles per second from hand-over to "
        "interrupt.")
    return {"accuracy": acc, "cycles_per_image": cyc, "speedup": speedup, "images": n,
            "test_images": len(y_te), "sim_cycles_per_s": info["sim_cycles_per_s"],
            "info": info}


def _cell(i):
    return lambda r: None if r[i] is None else format(r[i], r[1])


#: The summary table: one row per quantity ``(label, format, 16x sparse, dense)``.
COLUMNS = [Column("", lambda r: r[0], "<34"), Column("16x sparse", _cell(2), ">12", missing=""),
           Column("dense", _cell(3), ">12", missing="")]


def format_table(rows) -> str:
    return report.format_table(rows, COLUMNS, rule=False, indent="  ")


def _rtl_both(cfg, models, x_q, xd_q, n, batch, sim, fast=True):
    # the two models were calibrated on the same inputs, so their input scales are equal and
    # so are x_q and xd_q; run both on x_q when that holds, else one job per model
    if np.array_equal(x_q, xd_q):
        return run_on_rtl(cfg, models, x_q[:n], batch=batch, sim=sim, fast=fast)
    out_s, info = run_on_rtl(cfg, {"sparse16": models["sparse16"]}, x_q[:n], batch=batch,
                             sim=sim, fast=fast)
    out_d, info_d = run_on_rtl(cfg, {"dense": models["dense"]}, xd_q[:n], batch=batch, sim=sim,
                               fast=fast)
    cycles, wall = (info[k] + info_d[k] for k in ("sim_cycles", "sim_wall_s"))
    info = dict(info, sim_cycles=cycles, sim_wall_s=wall,
                sim_cycles_per_s=cycles / wall if wall else None)
    return {**out_s, **out_d}, info
