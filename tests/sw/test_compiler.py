"""The compiler: float layers -> pruned, quantized, packed programs; the chain runs on the
functional device model bit-exact with the golden model and close to the float model."""

import asyncio

import numpy as np
import pytest

from s4accel.base.sparse import check_sparsity, unpack
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw.compiler import FloatLinear, compile_model, requant_params, run_model
from s4accel.sw.driver import Driver


def _mlp(rng, k=96, h=64, n=10):
    return [FloatLinear(rng.normal(0, 1 / np.sqrt(k), (h, k)), rng.normal(0, 0.1, h), relu=True,
                        name="fc1"),
            FloatLinear(rng.normal(0, 1 / np.sqrt(h), (n, h)), rng.normal(0, 0.1, n),
                        name="fc2")]


@pytest.mark.parametrize("s", [1, 4, 16])
def test_compiled_chain_runs_on_the_device_model(rng, s):
    layers = _mlp(rng)
    x = rng.normal(0, 1, (40, 96))
    model = compile_model(layers, x, s)
    for q in model.layers:
        check_sparsity(unpack(q.packed), s)     # what the device stores is bank-balanced at s
        assert q.stored_weights == q.packed.n * q.packed.banks * (32 // s)
    x_q = model.quantize_input(x)

    async def main():
        dev = Driver(ModelBackend("tiny"))
        await dev.open()
        return await run_model(dev, model, x_q)
    y, cycles, results = asyncio.run(main())
    assert len(results) == 2 and y.dtype == np.int32
    assert np.array_equal(y, model.reference(x_q))
    # int8 quantization of the pruned float model: close, not equal
    ref = model.float_pruned(x)
    got = model.dequantize_output(y)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < 0.08, f"quantized output is {err:.3f} of the range away from the float model"
    assert "input quantization" in model.summary() and "fc1" in model.summary()


def test_requant_params_approximate_the_scale():
    scales = np.array([1e-6, 3.7e-3, 0.25, 0.9, 1.7])
    mult, shift = requant_params(scales)
    assert np.all(mult < 1 << 16)
    approx = mult / 2.0 ** shift
    assert np.all(np.abs(approx - scales) / scales < 1e-3)
    with pytest.raises(ValueError, match="positive"):
        requant_params([0.5, 0.0])


def test_compile_errors(rng):
    layers = _mlp(rng)
    with pytest.raises(ValueError, match="sparsity must be one of"):
        compile_model(layers, rng.normal(0, 1, (4, 96)), 3)
    with pytest.raises(ValueError, match=r"calibration inputs must be \[B, 96\]"):
        compile_model(layers, rng.normal(0, 1, (4, 95)), 2)
    bad = [layers[0], FloatLinear(rng.normal(0, 1, (10, 63)))]
    with pytest.raises(ValueError, match="layer 1 takes K=63 inputs but layer 0 gives N=64"):
        compile_model(bad, rng.normal(0, 1, (4, 96)), 2)
