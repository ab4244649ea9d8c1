"""The fast simulation path: the accelerator with the HDL DRAM model inside the design
(``s4_sim``, :mod:`s4accel.sim.hdl`) on Verilator and Icarus, and its equivalence with the
bus-checking path (cocotbext-axi's RAM on ``s4_top``): the same programs take the same cycles
on both, so benches on the fast path measure what the performance model was calibrated on."""

import pytest

from rtl_configs import named_config

from s4accel.base.config import load_config
from s4accel.sim.bench.gemm import bench_gemm
from s4accel.sim.tb import runner

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


@pytest.mark.parametrize("sim,config", [("verilator", "tiny"), ("icarus", "tiny"),
                                        ("verilator", "fpga"), ("icarus", "fpga"),
                                        ("verilator", "tiny_v2"), ("icarus", "tiny_v2")])
def test_fast_design(sim, config, seed):
    """Backdoor, layers against the golden and functional models, every error code with
    fault ranges reprogrammed between jobs, the design's window monitor, soft reset, vector
    operations (``tiny_v2``: with two vector units, ``Config.vec_units``).

    On Icarus the VOPs are the quick set (``S4_CASES=1``: one small case of each operation,
    LayerNorm included): the vector unit's datapath costs Icarus about a hundred times what it
    costs Verilator per active cycle (tiny: the full set 153 s there); Verilator runs them all."""
    cfg = named_config(config)
    # (two vector units: the tests that run VOPs, and the pools and chains that share the
    # row memories' write ports with them)
    cases = (["vops_on_chip", "encoder_on_chip", "pools_on_chip", "chains_on_chip"]
             if cfg.vec_units > 1 else None)
    runner.run_tests("s4_sim", cfg, sim, "s4accel.sim.tb.fast", testcase=cases,
                     env={"S4_SEED": seed, **({"S4_CASES": "1"} if sim == "icarus" else {})},
                     tag=f"pytest_{seed}")


#: Small layers, drain-bound tiles and row chunks included.
LAYERS = {"a": (4, 64, 8), "b": (6, 256, 12), "c": (16, 96, 16), "d": (3, 33, 5),
          "e": (40, 200, 40)}


def test_fast_path_takes_the_bus_paths_cycles(seed):
    """Every layer at every sparsity: identical cycles, bytes and descriptors on the HDL DRAM
    model and on cocotbext-axi's RAM (its timing is what the DRAM model reproduces)."""
    fast, info = bench_gemm("tiny", layers=LAYERS, seed=seed, fast=True)
    # (the bus path's design is test_top_rtl's, built without the vector unit: a GEMM's
    # cycles do not depend on it)
    bus, _ = bench_gemm(load_config("tiny").replace(vec_max_row=0, name="tiny_novec"),
                        layers=LAYERS, seed=seed, fast=False)
    assert info["design"] == "s4_sim" and len(fast) == len(bus) == 5 * 6
    off = [f"{f['layer']} s={f['sparsity']}: fast {f['cycles']} bus {b['cycles']}"
           for f, b in zip(fast, bus, strict=True)
           if (f["cycles"], f["dram_bytes"], f["descriptors"])
           != (b["cycles"], b["dram_bytes"], b["descriptors"])]
    assert not off, "; ".join(off)
    assert all(r["bit_exact"] for r in fast + bus)
