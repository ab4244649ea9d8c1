"""Attention on the device (issue 22): the golden integer attention against float, and
``sw/attention.py``'s program on the functional model against the golden one, bit for bit.
(The RTL runs it in ``sim/tb/fast.py`` ``vops_on_chip``.)"""

import numpy as np
import pytest

from s4accel.base import vector as V
from s4accel.base.config import load_config
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import scenarios
from s4accel.sw.attention import attention_program, attention_reference
from s4accel.sw.driver import Driver, run
from s4accel.sw.program import Allocator, DeviceInfo


def _float_attention(q, k, v, mask_n=0):
    s = q @ k.T / np.sqrt(q.shape[1])
    if mask_n:
        s[:, mask_n:] = -np.inf
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ v


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_integer_attention_against_float(seed):
    """Q, K, V of a head with peaked attention (scores up to about +-8), int8 at their
    ranges' scales: the integer context is within 3 LSB of float attention on the same
    quantized inputs within 4.5 LSB, cosine at least 0.999 (40 seeds: at most 4.13 LSB, mean
    3.16; cosine at least 0.99933): 7-bit probabilities (2**-7 each, the saturation at
    127/128) and the int8 scores dominate."""
    rng = np.random.default_rng(seed)
    L, d = 64, 32
    qf, kf = rng.normal(0, 1.6, (L, d)), rng.normal(0, 1.6, (L, d))
    vf = rng.normal(0, 1, (L, d))
    sc = [np.abs(t).max() / 127 for t in (qf, kf, vf)]
    q, k, v = (np.clip(np.round(t / s), -128, 127).astype(np.int8)
               for t, s in zip((qf, kf, vf), sc))
    ref = _float_attention(q * sc[0], k * sc[1], v * sc[2], mask_n=L - 5)
    scores = (q * sc[0]) @ (k * sc[1]).T / np.sqrt(d)
    s_scale, out_scale = np.abs(scores).max() / 127, np.abs(ref).max() / 127
    p = V.attention_params(*sc, s_scale, out_scale, d)
    got = V.attention(q, k, v, p, mask_n=L - 5).astype(np.float64) * out_scale
    err = np.abs(got - ref).max() / out_scale
    cos = np.dot(got.ravel(), ref.ravel()) / np.linalg.norm(got) / np.linalg.norm(ref)
    print(f"seed {seed}: max error {err:.2f} LSB, cosine {cos:.5f}")
    assert err <= 4.5 and cos >= 0.999


def test_attention_reference_is_per_head_golden():
    rng = np.random.default_rng(4)
    q, k, v = (rng.integers(-128, 128, (3, 10, 32), dtype=np.int8) for _ in range(3))
    p = V.attention_params(0.02, 0.02, 0.03, 0.08, 0.02, 32)
    y = attention_reference(q, k, v, p, 7)
    assert y.shape == (10, 96)
    for h in range(3):
        assert np.array_equal(y[:, 32 * h:32 * h + 32], V.attention(q[h], k[h], v[h], p, 7))


@pytest.mark.parametrize("name", ["tiny", "fpga"])
def test_attention_program_on_the_model(name):
    cfg = load_config(name)

    async def main():
        dev = Driver(ModelBackend(cfg))
        await dev.open()
        rng = np.random.default_rng(5)
        await scenarios.check_attention_against_model(
            dev, dev, *scenarios.attention_case(rng, dev.info))
        # one parameter set a head, and no mask
        q, k, v = (rng.integers(-128, 128, (2, 9, 32), dtype=np.int8) for _ in range(3))
        ps = [V.attention_params(0.02, 0.02, 0.03, s, 0.02, 32) for s in (0.05, 0.1)]
        await scenarios.check_attention_against_model(dev, dev, "two sets", q, k, v, ps, 0)
    run(main())


def test_attention_program_refusals():
    info = DeviceInfo.from_config(load_config("tiny"))
    p = V.attention_params(0.02, 0.02, 0.03, 0.08, 0.02, 32)
    a = Allocator(0, 1 << 20)
    x = np.zeros((1, 8, 32), np.int8)
    with pytest.raises(ValueError, match="one shape"):
        attention_program(info, x, x, np.zeros((1, 9, 32), np.int8), p, alloc=a)
    with pytest.raises(ValueError, match="int8"):
        attention_program(info, x.astype(np.int16), x, x, p, alloc=a)
    big = np.zeros((1, 129, 32), np.int8)
    with pytest.raises(ValueError, match="vector unit's rows"):
        attention_program(info, big, big, big, p, alloc=a)
    many = np.zeros((8, 64, 32), np.int8)
    with pytest.raises(ValueError, match="do not fit"):
        attention_program(info, many, many, many, p, alloc=a)
