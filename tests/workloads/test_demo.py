"""``s4 demo`` end to end on the fpga preset (a small sample: 32 images): trains, compiles,
runs the RTL (Verilator) and
the functional model, and they agree bit for bit (the demo raises otherwise)."""

import io

import pytest

from s4accel.sim.workloads.demo import demo

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


def test_demo_fpga():
    out = io.StringIO()
    r = demo("fpga", images=32, batch=16, out=out)
    text = out.getvalue()
    assert r["images"] == 32
    assert r["accuracy"]["model_sparse16"] > 0.85 and r["accuracy"]["model_dense"] > 0.9
    # the device model runs the quantized network: its accuracy is the int8 one, close to float
    assert abs(r["accuracy"]["model_sparse16"] - r["accuracy"]["float_pruned"]) < 0.03
    assert r["speedup"] > 1.5
    assert "speedup of the 16x model over the same model dense" in text
