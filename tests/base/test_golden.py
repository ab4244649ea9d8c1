from fractions import Fraction

import numpy as np
import pytest

from s4accel.base import golden
from s4accel.base.sparse import pack, prune


@pytest.mark.parametrize("s", (1, 2, 4, 8, 16, 32))
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 7, 45), (16, 9, 96), (3, 33, 200)])
def test_gemm_matches_numpy(rng, s, m, n, k):
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = prune(rng.integers(-128, 128, (n, k), dtype=np.int8), s)
    bias = rng.integers(-(1 << 31), 1 << 31, n)
    got = golden.gemm_raw(x, pack(w, s), bias)
    ref = x.astype(np.int64) @ w.T.astype(np.int64) + bias
    ref = ((ref + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
    assert got.dtype == np.int32
    assert np.array_equal(got, ref)
    assert np.array_equal(golden.gemm_raw(x, pack(w, s)), x.astype(np.int64) @ w.T.astype(np.int64))


def test_wraps_at_32_bits():
    x = np.full((1, 32), -128, np.int8)
    w = np.full((1, 32), -128, np.int8)
    bias = np.array([(1 << 31) - 1])
    assert golden.gemm_raw(x, pack(w, 1), bias)[0, 0] == np.int32(-(1 << 31) + 32 * 16384 - 1)


def _requant_reference(v, mult, shift, relu, lut):
    t = Fraction(int(v) * int(mult), 1 << int(shift))
    y = int((t + Fraction(1, 2)).__floor__())
    y = max(-128, min(127, y))
    if relu:
        y = max(0, y)
    return int(lut[y + 128]) if lut is not None else y


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_lut", [False, True])
def test_requantize_matches_rational_reference(rng, relu, with_lut):
    n = 12
    raw = rng.integers(-(1 << 31), 1 << 31, (20, n)).astype(np.int32)
    raw[0] = [0, 1, -1, 127, -128, (1 << 31) - 1, -(1 << 31), 3, -3, 5, -5, 2]
    mult = rng.integers(0, 1 << 16, n)
    shift = rng.integers(0, 48, n)
    shift[:4] = [0, 1, 47, 16]
    lut = rng.integers(-128, 128, 256, dtype=np.int8) if with_lut else None
    got = golden.requantize(raw, mult, shift, relu=relu, lut=lut)
    for i in range(raw.shape[0]):
        for j in range(n):
            assert got[i, j] == _requant_reference(raw[i, j], mult[j], shift[j], relu, lut), (i, j)


def test_requantize_rejects_bad_params():
    raw = np.zeros((1, 2), np.int32)
    with pytest.raises(ValueError, match="mult must be in 0..65535"):
        golden.requantize(raw, [1, 1 << 16], 0)
    with pytest.raises(ValueError, match="shift must be in 0..47"):
        golden.requantize(raw, 1, [0, 48])
    with pytest.raises(ValueError, match="lut must be 256 int8"):
        golden.requantize(raw, 1, 0, lut=np.zeros(10, np.int8))
    with pytest.raises(ValueError, match="activations must be int8"):
        golden.gemm_raw(np.zeros((1, 32), np.int16), pack(np.zeros((1, 32), np.int8), 1))
