"""The SPU RTL (scratchpads + sequencer + tensor core) on Verilator and Icarus: whole layers
loaded in the device layouts of ``sw/layout.py``, checked against the golden model."""

import pytest

from s4accel.sim.tb import runner

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_spu(sim, config, seed):
    runner.run_tests("spu", config, sim, "s4accel.sim.tb.spu", env={"S4_SEED": seed},
                     tag=f"pytest_{seed}")
