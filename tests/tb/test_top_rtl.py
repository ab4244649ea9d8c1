"""The whole accelerator RTL driven by the Python driver on Verilator and Icarus: layers at
every sparsity bit-exact against the golden model and the functional model, AXI backpressure,
every error code with the interrupt and a following good job, soft reset mid-job, no DRAM
access outside windows. ``tiny_x2`` is the tiny preset with two SPUs (channel split across
SPUs, activation loads multicast)."""

import pytest

from s4accel.base.config import load_config
from s4accel.sim.tb import runner

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

CONFIGS = {
    "tiny": lambda: load_config("tiny"),
    "fpga": lambda: load_config("fpga"),
    "tiny_x2": lambda: load_config("tiny").replace(spus=2, name="tiny_x2"),
}


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_top(sim, config, seed):
    runner.run_tests("s4_top", CONFIGS[config](), sim, "s4accel.sim.tb.top",
                     env={"S4_SEED": seed}, tag=f"pytest_{seed}")
