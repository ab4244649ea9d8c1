"""The whole accelerator RTL driven by the Python driver on Verilator and Icarus: layers at
every sparsity bit-exact against the golden model, AXI backpressure, every error code with
the interrupt and a following good job, soft reset mid-job, no DRAM access outside windows."""

import pytest

from s4accel.sim import runner


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_top(sim, config, seed):
    runner.run_tests("s4_top", config, sim, "s4accel.sim.tb_top", env={"S4_SEED": seed},
                     tag=f"pytest_{seed}")
