"""The SPU RTL (scratchpads + sequencer + tensor core) on Verilator and Icarus: whole layers
loaded in the device layouts of ``sw/layout.py``, checked against the golden model."""

import pytest

from s4accel.base.config import load_config
from s4accel.sim.tb import runner

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_spu(sim, config, seed):
    """Layers only: the SPU is built without its vector unit (the VOP sequencer runs in the
    whole-device tests, tests/tb/test_fast_rtl.py), which keeps the Icarus runs fast."""
    cfg = load_config(config).replace(vec_max_row=0, name=f"{config}_novec")
    runner.run_tests("spu", cfg, sim, "s4accel.sim.tb.spu", env={"S4_SEED": seed},
                     tag=f"pytest_{seed}")
