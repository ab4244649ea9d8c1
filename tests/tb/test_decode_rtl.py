"""DECODE (the codec wrapper) on the RTL: ``s4_sim`` with one decoder, a conv layer fed by a
DECODE bit-exact against the functional model, and mutated bitstreams (sim/tb/decode.py):
on Verilator every test with 20 mutants; on Icarus the conv layer with 4 mutants, every
error case and the Motion JPEG stream (the timing images, a few minutes there, only on
Verilator)."""

import pytest

from s4accel.sim.tb import runner
from s4accel.sim.tb.decode import tiny_jpeg

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


def test_decode_on_rtl(seed):
    runner.run_tests("s4_sim", tiny_jpeg(), "verilator", "s4accel.sim.tb.decode",
                     env={"S4_SEED": seed}, tag=f"pytest_{seed}")


def test_decode_on_icarus(seed):
    runner.run_tests("s4_sim", tiny_jpeg(), "icarus", "s4accel.sim.tb.decode",
                     testcase="decode_feeds_conv,decode_errors,decode_stream",
                     env={"S4_SEED": seed, "S4_CASES": "4"}, tag=f"pytest_{seed}")
