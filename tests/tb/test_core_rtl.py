"""The tensor core RTL on Verilator and Icarus, checked tile by tile against the golden model.

One simulator build per (configuration, simulator) is shared by all tests of the cocotb
module ``s4accel.sim.tb.core``. Set ``S4_SEED`` to replay, ``WAVES=1`` for waveforms.
"""

import pytest

from s4accel.sim.tb import runner

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_tensor_core(sim, config, seed):
    runner.run_tests("tensor_core", config, sim, "s4accel.sim.tb.core",
                     env={"S4_SEED": seed}, tag=f"pytest_{seed}")
