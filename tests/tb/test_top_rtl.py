"""The whole accelerator RTL (``s4_top``) on the bus-checking path, driven by the Python driver
on Verilator and Icarus: cocotbext-axi's RAM with error responses, random backpressure on every
AXI channel of the DRAM and CSR ports, the Python monitor of DRAM accesses outside the windows.
Layers at every sparsity bit-exact against the golden model and the functional model, every
error code with the interrupt and a following good job, soft reset mid-job. ``tiny_x2`` is the
tiny preset with two SPUs (channel split across SPUs, activation loads multicast) and a 16 KiB
on-chip L2 (``hw/bus/l2.py``: layers split by output channel gather their inputs through it).

The fpga preset runs the same kinds of checks on the fast path (``s4_sim``,
tests/tb/test_fast_rtl.py), whose DRAM model takes the same cycles as the RAM here (checked
there)."""

import pytest

from s4accel.base.config import load_config
from s4accel.sim.tb import runner

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

#: Built without the vector unit (``vec_max_row = 0``): these runs issue no VOP (a VOP is then
#: ``UNKNOWN_OPCODE``, which ``every_error_code`` checks), and the unit's datapath makes each
#: Verilator build slower; the VOPs run on the fast path (tests/tb/test_fast_rtl.py), whose
#: DRAM model takes these cycles.
CONFIGS = {
    "tiny": lambda: load_config("tiny").replace(vec_max_row=0, name="tiny_novec"),
    "tiny_x2": lambda: load_config("tiny").replace(spus=2, l2_kib=16, vec_max_row=0,
                                                   name="tiny_x2_novec"),
}


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_top(sim, config, seed):
    runner.run_tests("s4_top", CONFIGS[config](), sim, "s4accel.sim.tb.top",
                     env={"S4_SEED": seed}, tag=f"pytest_{seed}")
