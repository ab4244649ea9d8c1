"""The vector unit RTL (hw/vector/unit.py) on Verilator and Icarus through cocotb
(sim/tb/vector.py): softmax and LayerNorm rows (random and extreme, lengths 1..128) and every
other operation equal the golden model s4accel.base.vector bit for bit under input gaps and
output back-pressure. The unit takes only the bank width from the configuration, so one
configuration (fpga) is built."""

import pytest

from s4accel.sim.tb import runner

pytestmark = [pytest.mark.rtl]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_vector_softmax_layernorm(sim, seed):
    runner.run_tests("vector_unit", "fpga", sim, "s4accel.sim.tb.vector",
                     testcase="softmax_layernorm", env={"S4_SEED": seed, "S4_CASES": 4},
                     tag=f"smln_{seed}")


def test_vector_all_ops(seed):
    runner.run_tests("vector_unit", "fpga", "verilator", "s4accel.sim.tb.vector",
                     testcase="all_ops", env={"S4_SEED": seed}, tag=f"all_{seed}")
