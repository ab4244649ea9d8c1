"""The JPEG decoder RTL (hw/jpeg/decoder.py) on Verilator and Icarus through cocotb
(sim/tb/jpeg.py): generated images in every sampling mode equal the golden decoder bit for bit
under input gaps and output back-pressure; seeded corrupt scans end with done or an error
within a cycle bound and write no pixel past the image. The decoder takes nothing from the
configuration, so one configuration (fpga) is built."""

import pytest

from s4accel.sim.tb import runner

pytestmark = [pytest.mark.rtl]


@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_jpeg_images_exact(sim, seed):
    runner.run_tests("jpeg_decoder", "fpga", sim, "s4accel.sim.tb.jpeg",
                     testcase="images_exact", env={"S4_SEED": seed}, tag=f"exact_{seed}")


@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_jpeg_corrupt_streams(sim, seed):
    runner.run_tests("jpeg_decoder", "fpga", sim, "s4accel.sim.tb.jpeg",
                     testcase="corrupt_streams", env={"S4_SEED": seed, "S4_CASES": 20},
                     tag=f"corrupt_{seed}")


@pytest.mark.slow
def test_jpeg_corrupt_streams_sweep(seed):
    """The long sweep: 200 corrupt scans on Verilator."""
    runner.run_tests("jpeg_decoder", "fpga", "verilator", "s4accel.sim.tb.jpeg",
                     testcase="corrupt_streams", env={"S4_SEED": seed, "S4_CASES": 200},
                     tag=f"corrupt_sweep_{seed}")
