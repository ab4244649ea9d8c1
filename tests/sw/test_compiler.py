"""The compiler: float layers -> pruned, quantized, packed programs; the chain runs on the
functional device model bit-exact with the golden model and close to the float model."""

import asyncio

import numpy as np
import pytest

from s4accel.base.sparse import check_sparsity, unpack
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw.compiler import FloatLinear, compile_model, requant_params, run_model
from s4accel.base.config import load_config
from s4accel.sw.chain import NotOnChip, chain_layers, chain_program
from s4accel.sw.driver import Driver
from s4accel.sw.program import Allocator, DeviceInfo


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

    async def main(on_chip):
        dev = Driver(ModelBackend("tiny"))
        await dev.open()
        return await run_model(dev, model, x_q, on_chip=on_chip)
    y, cycles, results = asyncio.run(main(True))
    y_ll, _, results_ll = asyncio.run(main(False))
    try:            # one program where the chain fits on chip (at s = 1 its weights do not)
        chain_program(DeviceInfo.from_config(load_config("tiny")), x_q, chain_layers(model),
                      Allocator(0, 1 << 30))
        fits = True
    except NotOnChip:
        fits = False
    assert fits == (s > 1)
    assert len(results) == (1 if fits else 2) and len(results_ll) == 2
    assert y.dtype == np.int32 and np.array_equal(y, y_ll)
    assert np.array_equal(y, model.reference(x_q))
    # int8 quantization of the pruned float model: close, not equal
    ref = model.float_pruned(x)
    got = model.dequantize_output(y)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < 0.08, f"quantized output is {err:.3f} of the range away from the float model"
    assert "input quantization" in model.summary() and "fc1" in model.summary()


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_lut_activation_on_the_device_model(rng, act):
    """A LUT activation after an int8 layer: the table runs on the device (bit-exact with the
    golden model) and the result stays close to the pruned float model."""
    layers = _mlp(rng)
    layers[0].relu, layers[0].act = False, act
    x = rng.normal(0, 1, (40, 96))
    model = compile_model(layers, x, 4)
    assert model.layers[0].params.lut is not None and f"LUT {act}" in model.summary()
    x_q = model.quantize_input(x)

    async def main():
        dev = Driver(ModelBackend("tiny"))
        await dev.open()
        return await run_model(dev, model, x_q)
    y, _, _ = asyncio.run(main())
    assert np.array_equal(y, model.reference(x_q))
    ref = model.float_pruned(x)
    err = np.abs(model.dequantize_output(y) - ref).max() / np.abs(ref).max()
    assert err < 0.08, f"quantized output is {err:.3f} of the range away from the float model"


def test_activation_errors(rng):
    with pytest.raises(ValueError, match="act must be one of sigmoid, tanh or None, not 'gelu'"):
        FloatLinear(rng.normal(size=(4, 32)), act="gelu", name="a")
    with pytest.raises(ValueError, match="ReLU and tanh together"):
        FloatLinear(rng.normal(size=(4, 32)), relu=True, act="tanh", name="a")


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


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_compile_refuses_non_finite_calibration(rng, bad):
    """Issue 20 item 9: a NaN in the calibration data used to set the input scale to 1.0."""
    x = rng.normal(0, 1, (4, 96))
    x[2, 7] = bad
    with pytest.raises(ValueError, match=r"calibration data contains NaN or inf \(at \[2, 7\]\)"):
        compile_model(_mlp(rng), x, 2)


@pytest.mark.parametrize("what", ["weight", "bias"])
def test_compile_refuses_non_finite_weights(rng, what):
    """Issue 20 item 9: a NaN weight used to give garbage int8 weights."""
    w, b = rng.normal(0, 1, (8, 32)), rng.normal(0, 1, 8)
    (w if what == "weight" else b)[3] = np.nan
    with pytest.raises(ValueError, match=rf"layer 'fc': {what} contains NaN or inf"):
        FloatLinear(w, b, name="fc")


def test_compile_refuses_empty_inputs(rng):
    """Issue 20 item 9: empty calibration data or K = 0 gave numpy's "zero-size array"."""
    with pytest.raises(ValueError, match=r"calibration inputs are empty \(shape \(0, 96\)\)"):
        compile_model(_mlp(rng), np.zeros((0, 96)), 2)
    with pytest.raises(ValueError, match=r"layer 'k0': weight needs N > 0 and K > 0, not \(4, 0\)"):
        compile_model([FloatLinear(np.zeros((4, 0)), name="k0")], np.zeros((3, 0)), 2)
    with pytest.raises(ValueError, match=r"layer 'n0': weight needs N > 0 and K > 0, not \(0, 8\)"):
        compile_model([FloatLinear(np.zeros((0, 8)), name="n0")], np.ones((3, 8)), 2)


def test_quantize_input_refuses_non_finite(rng):
    model = compile_model(_mlp(rng), rng.normal(0, 1, (4, 96)), 2)
    x = rng.normal(0, 1, (2, 96))
    x[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"input contains NaN or inf \(at \[1, 5\]\)"):
        model.quantize_input(x)


# -- the host's input transforms: SmoothQuant's division and a zero point ------------------------

def _rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.mark.parametrize("s", [1, 4])
def test_zero_point_halves_the_error_of_a_one_sided_input(rng, s):
    """A GELU-like input (>= -0.17, a long positive tail): with ``zero_point`` the int8 codes
    span the whole range (about -127 .. 127 on the calibration data) and the layer's error
    against its float output is about half the plain per-tensor quantization's; the float
    reference is unchanged (the shift's share of the bias in float), and the device runs the
    same integers (the shift is a bias change)."""
    k, n = 256, 64
    pre = rng.normal(0, 1, (200, k)) * np.where(rng.random(k) < 0.05, 6, 1)
    x = 0.5 * pre * (1 + np.tanh(0.7978845608 * (pre + 0.044715 * pre ** 3)))     # GELU
    layer = FloatLinear(rng.normal(0, 1 / np.sqrt(k), (n, k)), rng.normal(0, 0.1, n), name="l")
    plain = compile_model([layer], x, s)
    zp = compile_model([layer], x, s, zero_point=True)
    codes = zp.quantize_input(x)
    assert codes.min() <= -125 and codes.max() >= 125
    # an integer zero point: 0.0 is code -in_zero exactly
    assert isinstance(zp.in_zero, int) and zp.in_zero > 0
    assert (zp.quantize_input(np.zeros(k)) == -zp.in_zero).all()
    assert plain.quantize_input(x).min() > -5        # (the plain codes use half the range)
    ref = x @ plain.layers[0].w_pruned.T + layer.bias
    assert np.allclose(zp.float_pruned(x), ref) and np.allclose(plain.float_pruned(x), ref)
    e_plain = _rms(plain.dequantize_output(plain.reference(plain.quantize_input(x))) - ref)
    e_zp = _rms(zp.dequantize_output(zp.reference(zp.quantize_input(x))) - ref)
    print(f"s={s}: rms error plain {e_plain:.5f}, zero point {e_zp:.5f}")
    assert e_zp < 0.65 * e_plain
    assert "input zero point" in zp.summary()


def test_smoothing_moves_outlier_channels_into_the_weights(rng):
    """A few input channels 40x larger than the rest: dividing each channel by
    ``smoothing_factors`` before the per-tensor quantization (weights multiplied by it)
    cuts the error to well under half; the float model is the same function."""
    from s4accel.sim.workloads.minilm import smoothing_factors
    k, n = 128, 32
    x = rng.normal(0, 1, (300, k)) * np.where(np.arange(k) % 32 == 5, 40, 1)
    layer = FloatLinear(rng.normal(0, 1 / np.sqrt(k), (n, k)), np.zeros(n), name="l")
    div = smoothing_factors(x, [layer.weight])
    assert div.shape == (k,) and np.all(div > 0)
    plain = compile_model([layer], x, 1)
    smooth = compile_model([layer], x, 1, in_div=div)
    ref = x @ layer.weight.T
    assert np.allclose(smooth.float_pruned(x), ref)
    e_plain = _rms(plain.dequantize_output(plain.reference(plain.quantize_input(x))) - ref)
    e_smooth = _rms(smooth.dequantize_output(smooth.reference(smooth.quantize_input(x))) - ref)
    print(f"rms error plain {e_plain:.5f}, smoothed {e_smooth:.5f}")
    assert e_smooth < 0.5 * e_plain
    with pytest.raises(ValueError, match="in_div must be 128 positive"):
        compile_model([layer], x, 1, in_div=-div)


def test_a_transformed_model_is_not_saved_without_its_transform(rng, tmp_path):
    from s4accel.sw import model_file
    layer = FloatLinear(rng.normal(0, 0.1, (32, 64)), np.zeros(32), name="l")
    m = compile_model([layer], np.abs(rng.normal(0, 1, (20, 64))), 1, zero_point=True)
    with pytest.raises(ValueError, match="input transform"):
        model_file.save(tmp_path / "m.s4", m, "tiny")
