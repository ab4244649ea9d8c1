"""The CNN operations of the golden model against plain loops and rational arithmetic."""

from fractions import Fraction

import numpy as np
import pytest

from s4accel.base import golden
from s4accel.base.sparse import pack, prune


def _direct_conv(x, w, stride, pad):
    """int64 convolution by loops: x [N, H, W, C], w [Cout, kh, kw, C], zero padding."""
    n, h, wd, c = x.shape
    cout, kh, kw, _ = w.shape
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, ho, wo, cout), np.int64)
    for oy in range(ho):
        for ox in range(wo):
            for i in range(kh):
                for j in range(kw):
                    iy, ix = oy * stride - pad + i, ox * stride - pad + j
                    if 0 <= iy < h and 0 <= ix < wd:
                        y[:, oy, ox] += x[:, iy, ix].astype(np.int64) @ w[:, i, j].T.astype(
                            np.int64)
    return y


@pytest.mark.parametrize("k,stride,pad", [(1, 1, 0), (1, 2, 0), (3, 1, 1), (3, 2, 1),
                                          (3, 1, 0), (5, 2, 2), (7, 1, 3), (3, 2, 2)])
def test_im2col_gemm_is_the_direct_convolution(rng, k, stride, pad):
    x = rng.integers(-128, 128, (2, 7, 9, 5), dtype=np.int8)
    w = rng.integers(-128, 128, (6, k, k, 5), dtype=np.int8)
    cols = golden.im2col_nhwc(x, k, k, stride, pad)
    ho = golden.conv_out_size(7, k, stride, pad)
    wo = golden.conv_out_size(9, k, stride, pad)
    assert cols.dtype == np.int8 and cols.shape == (2 * ho * wo, k * k * 5)
    raw = golden.gemm_raw(cols, pack(w.reshape(6, -1), 1))
    assert np.array_equal(raw.reshape(2, ho, wo, 6), _direct_conv(x, w, stride, pad))


def test_im2col_order_and_padding():
    x = np.arange(1, 1 + 2 * 3 * 2, dtype=np.int8).reshape(1, 2, 3, 2)
    cols = golden.im2col_nhwc(x, 3, 3, 1, 1)
    # row 0: window centred on pixel (0, 0); taps in (kh, kw, cin) order
    want = np.zeros((3, 3, 2), np.int8)
    want[1:, 1:] = x[0, :2, :2]
    assert np.array_equal(cols[0], want.reshape(-1))
    assert np.array_equal(cols[5].reshape(3, 3, 2)[1, 1], x[0, 1, 2])


@pytest.mark.parametrize("s", (1, 4, 16))
def test_conv_nhwc_int8_is_gemm_int8_on_im2col(rng, s):
    x = rng.integers(-128, 128, (2, 8, 8, 32), dtype=np.int8)
    w = prune(rng.integers(-127, 128, (16, 9 * 32), dtype=np.int8), s)
    bias = rng.integers(-5000, 5000, 16)
    mult, shift = rng.integers(1, 1 << 16, 16), rng.integers(10, 24, 16)
    y = golden.conv_nhwc_int8(x, pack(w, s), bias, mult, shift, kh=3, kw=3, stride=2, pad=1,
                              relu=True)
    raw = _direct_conv(x, w.reshape(16, 3, 3, 32), 2, 1) + bias
    assert y.shape == (2, 4, 4, 16)
    assert np.array_equal(y, golden.requantize(golden.wrap32(raw), mult, shift, relu=True))


def _add_reference(a, b, ma, mb, shift, relu):
    t = Fraction(int(a) * int(ma) + int(b) * int(mb), 1 << int(shift))
    y = max(-128, min(127, int((t + Fraction(1, 2)).__floor__())))
    return max(0, y) if relu else y


@pytest.mark.parametrize("relu", [False, True])
def test_add_int8_matches_rational_reference(rng, relu):
    c = 6
    a = rng.integers(-128, 128, (40, c), dtype=np.int8)
    b = rng.integers(-128, 128, (40, c), dtype=np.int8)
    a[0], b[0] = -128, -128
    a[1], b[1] = 127, 127
    ma, mb = rng.integers(0, 1 << 16, c), rng.integers(0, 1 << 16, c)
    shift = rng.integers(0, 48, c)
    shift[:3] = [0, 1, 16]
    got = golden.add_int8(a, b, ma, mb, shift, relu=relu)
    assert got.dtype == np.int8
    for i in range(a.shape[0]):
        for j in range(c):
            assert got[i, j] == _add_reference(a[i, j], b[i, j], ma[j], mb[j], shift[j],
                                               relu), (i, j)


def test_add_int8_is_the_float_sum_within_rounding(rng):
    sa, sb, sy = 0.031, 0.0123, 0.04
    shift = 16
    ma, mb = round(sa / sy * 2 ** shift), round(sb / sy * 2 ** shift)
    a = rng.integers(-128, 128, (8, 8, 8, 16), dtype=np.int8)
    b = rng.integers(-128, 128, (8, 8, 8, 16), dtype=np.int8)
    got = golden.add_int8(a, b, ma, mb, shift)
    want = np.clip((a * sa + b.astype(np.float64) * sb) / sy, -128, 127)
    assert np.abs(got - want).max() <= 0.5 + 1e-3
    assert np.array_equal(golden.add_int8(a, b, ma, mb, shift, relu=True), np.maximum(got, 0))


def _maxpool_reference(x, k, stride, pad):
    n, h, w, c = x.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    y = np.full((n, ho, wo, c), -999)
    for oy in range(ho):
        for ox in range(wo):
            for i in range(k):
                for j in range(k):
                    iy, ix = oy * stride - pad + i, ox * stride - pad + j
                    if 0 <= iy < h and 0 <= ix < w:
                        y[:, oy, ox] = np.maximum(y[:, oy, ox], x[:, iy, ix])
    return y


@pytest.mark.parametrize("k,stride,pad", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_maxpool_matches_loops(rng, k, stride, pad):
    x = rng.integers(-128, 128, (2, 7, 6, 3), dtype=np.int8)
    got = golden.maxpool_nhwc(x, k, stride, pad)
    assert got.dtype == np.int8
    assert np.array_equal(got, _maxpool_reference(x, k, stride, pad))
    neg = np.full((1, 4, 4, 1), -128, np.int8)
    assert (golden.maxpool_nhwc(neg, 3, 2, 1) == -128).all()   # padding never wins


def test_cnn_ops_reject_bad_arguments():
    x = np.zeros((1, 4, 4, 2), np.int8)
    with pytest.raises(ValueError, match="activations must be int8"):
        golden.im2col_nhwc(x.astype(np.int16), 3, 3)
    with pytest.raises(ValueError, match=r"NHWC array \[N, H, W, C\]"):
        golden.im2col_nhwc(x[0], 3, 3)
    with pytest.raises(ValueError, match="stride must be an integer >= 1, not 0"):
        golden.im2col_nhwc(x, 3, 3, 0)
    with pytest.raises(ValueError, match="does not fit 4 pixels padded by 0"):
        golden.im2col_nhwc(x, 5, 5)
    with pytest.raises(ValueError, match="padding must be smaller than the window"):
        golden.maxpool_nhwc(x, 2, 2, 2)
    with pytest.raises(ValueError, match="same shape"):
        golden.add_int8(x, x[:, :2], 1, 1, 0)
    with pytest.raises(ValueError, match="both addends must be int8"):
        golden.add_int8(x, x.astype(np.int32), 1, 1, 0)
    with pytest.raises(ValueError, match="mult must be in 0..65535"):
        golden.add_int8(x, x, 1 << 16, 1, 0)
