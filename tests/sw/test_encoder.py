"""Whole encoder layers (issue 22, ``sw/encoder.py``): the integer layer against the float
one, its program on the functional model against the golden layer bit for bit, and the
program's placement and refusals. (The RTL runs the program in ``sim/tb/fast.py``
``encoder_on_chip``.)"""

import numpy as np
import pytest

from s4accel.base.config import load_config
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import encoder as E
from s4accel.sw import scenarios
from s4accel.sw.driver import Driver, run
from s4accel.sw.program import Allocator, DeviceInfo


def _info(config):
    return DeviceInfo.from_config(load_config(config))


def _cos(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("s", [1, 8])
def test_integer_layer_against_float(rng, s):
    """A random layer (hidden 128, 4 heads, FFN 256) calibrated on 16 random sequences (the
    per-channel scales need a few hundred samples a channel), run on another: the integer
    layer's output against the float layer's on the same (quantized) input. s = 1: cosine
    >= 0.99 (the error is the int8 activations, the 7-bit softmax and the GELU table's int8
    input); s = 8 against the float layer with the same pruned weights, >= 0.99."""
    w = E.random_layer(rng, 128, 4, 256)
    xs = [rng.normal(0, 1, (24, 128)) for _ in range(17)]
    layer = E.compile_layer(w, E.calibrate(w, xs[:16]), s)
    if s > 1:        # the float reference with the weights the device keeps
        from s4accel.base.sparse import prune
        for n in ("wq", "wk", "wv", "wo", "w1", "w2"):
            setattr(w, n, prune(getattr(w, n), s))
    x = np.clip(np.round(xs[4] / layer.in_scale), -128, 127).astype(np.int8)
    want = E.float_layer(w, x * layer.in_scale)
    got = layer.reference(x).astype(np.float64) * layer.out_scale
    assert _cos(got, want) >= 0.99, _cos(got, want)


def test_masked_keys_do_not_matter(rng):
    """With ``mask_n``, the keys (tokens) past it do not change the first ``mask_n`` rows."""
    w = E.random_layer(rng, 64, 2, 64)
    xs = [rng.normal(0, 1, (12, 64)) for _ in range(2)]
    layer = E.compile_layer(w, E.calibrate(w, xs), 1)
    x = np.clip(np.round(xs[0] / layer.in_scale), -128, 127).astype(np.int8)
    y = layer.reference(x, mask_n=9)
    x2 = x.copy()
    x2[9:] = rng.integers(-128, 128, x2[9:].shape)
    assert np.array_equal(layer.reference(x2, mask_n=9)[:9], y[:9])
    assert not np.array_equal(layer.reference(x2)[:9], y[:9])


@pytest.mark.parametrize("config,s", [("tiny", 1), ("tiny", 8), ("fpga", 1), ("fpga", 8)])
def test_program_on_the_model(rng, config, s):
    """The encoder program (``scenarios.encoder_case``: tiny 16 tokens of hidden 64; fpga
    MiniLM's layer at 32 tokens) on the functional model equals the golden layer bit for bit
    (``check_encoder_against_model`` runs it on two model drivers here)."""
    info = _info(config)
    case = scenarios.encoder_case(rng, info, s)

    async def main():
        dev, model = Driver(ModelBackend(config)), Driver(ModelBackend(config))
        await dev.open()
        await model.open()
        return await scenarios.check_encoder_against_model(dev, model, *case)
    res = run(main())
    assert res.y.shape[1] == case[1].hidden


def test_tokens_not_whole_row_tiles(rng):
    """13 tokens on tiny (rows 2: the last row tile half padding), FFN wider than the hidden
    size, a key mask: still bit-exact on the model."""
    info = _info("tiny")
    case = scenarios.encoder_case(rng, info, 8, shape=(13, 64, 2, 128))

    async def main():
        dev, model = Driver(ModelBackend("tiny")), Driver(ModelBackend("tiny"))
        await dev.open()
        await model.open()
        return await scenarios.check_encoder_against_model(dev, model, *case)
    run(main())


def test_regions_never_overlap_live_tensors():
    """The first-fit placement: two tensors whose lives overlap never share a word."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 9))
        sizes = {i: int(rng.integers(1, 20)) for i in range(n)}
        spans = {}
        for i in range(n):
            a = int(rng.integers(-1, 6))
            spans[i] = (a, a + int(rng.integers(0, 4)))
        at = E._regions(sizes, spans)
        for i in range(n):
            for j in range(i + 1, n):
                live = not (spans[i][1] < spans[j][0] or spans[j][1] < spans[i][0])
                apart = at[i] + sizes[i] <= at[j] or at[j] + sizes[j] <= at[i]
                assert apart or not live, (sizes, spans, at)


def test_program_refuses_what_does_not_fit(rng):
    info = _info("fpga")
    _, layer, x, _ = scenarios.encoder_case(rng, info, 8)
    alloc = Allocator(0, 1 << 40)
    with pytest.raises(ValueError, match="activation words"):
        E.encoder_program(info, layer, np.zeros((512, 384), np.int8), alloc=alloc)
    with pytest.raises(ValueError, match=r"x must be int8 \[L, 384\]"):
        E.encoder_program(info, layer, x.astype(np.int16), alloc=alloc)
    no_vec = DeviceInfo(**{**info.__dict__, "vec_max_row": 0})
    with pytest.raises(ValueError, match="no vector unit"):
        E.encoder_program(no_vec, layer, x, alloc=alloc)


@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_layers_chained_on_the_model(rng, config):
    """Three layers as one program (each layer's output the next one's input in ACT, each
    its own GELU table): bit-exact against the golden layers run one after the other."""
    info = _info(config)
    case = scenarios.encoder_case(rng, info, 8, layers=3)

    async def main():
        dev, model = Driver(ModelBackend(config)), Driver(ModelBackend(config))
        await dev.open()
        await model.open()
        return await scenarios.check_encoder_against_model(dev, model, *case)
    run(main())
