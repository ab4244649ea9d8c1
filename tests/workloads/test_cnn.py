"""The digits CNN: data, float training and pruning, and its int8 inference."""

import numpy as np
import pytest

from s4accel.base import golden
from s4accel.base.sparse import check_sparsity
from s4accel.sim.workloads import cnn


@pytest.fixture(scope="module")
def data():
    return cnn.load_split()


@pytest.fixture(scope="module")
def small(data):
    """A width-12 network trained briefly, pruned to 4x (about 9 s on one core). Eight
    epochs: after six, int8/float top-1 agreement was 0.9889 or 0.9955 depending on BLAS's
    thread count (the float training differs in its last bits); after eight it is 0.9955 to
    1.0 over 1 and 2 threads and seeds 0 and 1."""
    x, y, _, _ = data
    return cnn.train(x, y, width=12, seed=0, epochs=8, lr=5e-3, sparsities=(1, 4), steps=1,
                     step_epochs=1, finetune=0)


def test_split_and_upscale(data):
    x, y, xt, yt = data
    assert x.shape == (1348, 16, 16, 1) and xt.shape == (449, 16, 16, 1)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    img = np.arange(12.0).reshape(3, 4)
    up = cnn.upscale2x(img)
    assert up.shape == (6, 8)
    assert up[0, 0] == img[0, 0] and up[5, 7] == img[2, 3]             # clamped corners
    assert up[2, 3] == pytest.approx(0.75 * (0.75 * img[1, 1] + 0.25 * img[1, 2])
                                     + 0.25 * (0.75 * img[0, 1] + 0.25 * img[0, 2]))
    from PIL import Image                                              # the same as Pillow's
    pil = np.asarray(Image.fromarray(img.astype(np.float32), "F").resize((8, 6),
                                                                          Image.BILINEAR))
    assert np.allclose(up, pil, atol=1e-5)


def test_gradients_match_finite_differences(data):
    x, y, _, _ = data
    rng = np.random.default_rng(0)
    p = {k: v.astype(np.float64) for k, v in cnn.init_params(4, seed=1).items()}
    for k in p:
        if k.endswith(".b"):      # away from ReLU kinks (zero bias on zero padding)
            p[k] += rng.normal(0, 0.1, p[k].shape)
    xb, yb = x[:4].astype(np.float64), y[:4]

    def loss(p):
        z = cnn.forward(p, xb)
        z = z - z.max(1, keepdims=True)
        return -(z[np.arange(4), yb] - np.log(np.exp(z).sum(1))).mean()

    cache = {}
    g = cnn._backward(p, cache, cnn._loss_grad(cnn.forward(p, xb, cache), yb).astype(
        np.float64))
    for k in p:
        idx = tuple(int(rng.integers(0, n)) for n in p[k].shape)
        old = p[k][idx]
        p[k][idx] = old + 1e-6
        lp = loss(p)
        p[k][idx] = old - 1e-6
        lm = loss(p)
        p[k][idx] = old
        assert (lp - lm) / 2e-6 == pytest.approx(g[k][idx], rel=1e-3, abs=1e-7), k


def test_training_is_deterministic_and_prunes_bank_balanced(data):
    x, y, _, _ = data
    kw = dict(width=8, epochs=1, sparsities=(1, 8), steps=2, step_epochs=1, finetune=0)
    a = cnn.train(x[:96], y[:96], seed=3, **kw)
    b = cnn.train(x[:96], y[:96], seed=3, **kw)
    c = cnn.train(x[:96], y[:96], seed=4, **kw)
    for s in (1, 8):
        for k in a[s]:
            assert np.array_equal(a[s][k], b[s][k]), (s, k)
    assert not np.array_equal(a[1]["b1a"], c[1]["b1a"])
    for k in cnn.PRUNED:
        check_sparsity(a[8][k].reshape(a[8][k].shape[0], -1), 8)
        assert np.count_nonzero(a[8][k]) < np.count_nonzero(a[1][k])
    assert np.count_nonzero(a[8]["stem"]) == a[8]["stem"].size


def test_int8_network_agrees_with_float(small, data):
    x, _, xt, yt = data
    p = small[1]
    q = cnn.quantize(p, x[:256], 1)
    zf = cnn.logits_batched(p, xt)
    zq = q.logits(q.quantize_input(xt))
    agree = float((zf.argmax(1) == zq.argmax(1)).mean())
    print(f"float {cnn.accuracy(zf, yt):.4f} int8 {cnn.accuracy(zq, yt):.4f} agree {agree:.4f}")
    assert cnn.accuracy(zf, yt) > 0.8
    assert agree >= 0.99


@pytest.mark.parametrize("s", (1, 4))
def test_fast_integer_path_is_the_golden_model(small, data, s):
    x, _, xt, _ = data
    q = cnn.quantize(small[s], x[:64], s)
    assert q.convs["b1a"].packed.s == s and q.convs["stem"].packed.s == 1
    xq = q.quantize_input(xt[:3])
    fast = q.forward_int(xq)
    assert fast.dtype == np.int32
    assert np.array_equal(fast, q.forward_int(xq, exact=False))
    # the classifier is the FC layer on the average-pooled features: the pixel sum
    # requantized (plain numpy rounding half up), then the int8 GEMM
    taps = {}
    q._forward(xq, True, taps)
    h2 = taps["s2"].astype(np.int64)
    t = (h2.sum(axis=(1, 2)) * q.gap.mult + (1 << q.gap.shift >> 1)) >> q.gap.shift
    assert np.array_equal(taps["gap"], np.clip(t, -128, 127))
    assert np.array_equal(fast, taps["gap"].astype(np.int64) @ q.fc_w.T.astype(np.int64)
                          + q.fc_bias)


def test_macs_per_image():
    p = cnn.init_params(64, seed=0)
    x = np.random.default_rng(0).random((4, 16, 16, 1)).astype(np.float32)
    q1, q16 = cnn.quantize(p, x, 1), cnn.quantize(p, x, 16)
    m1, m16 = cnn.macs_per_image(q1), cnn.macs_per_image(q16)
    stem = 256 * 9 * 64
    fc = 10 * 128
    pruned = 2 * 256 * 576 * 64 + 64 * 576 * 128 + 64 * 1152 * 128 + 64 * 64 * 128
    assert m1 == {"dense_macs": stem + pruned + fc, "sparse_macs": stem + pruned + fc}
    assert m16 == {"dense_macs": stem + pruned + fc, "sparse_macs": stem + pruned // 16 + fc}
    rows = q16.summary()
    assert [r["name"] for r in rows] == ["stem", "b1a", "b1b", "b1", "s2a", "s2b", "s2p", "s2",
                                         "gap", "fc"]
    by = {r["name"]: r for r in rows}
    assert by["s2a"]["shape"] == (8, 8, 128) and by["s2a"]["k"] == 576
    assert by["fc"]["k"] == 128 and by["gap"]["pixels"] == 64 and by["stem"]["sparsity"] == 1
    assert sum(r["m"] * r["k"] * r["n"] for r in rows if "m" in r) == m1["dense_macs"]


def test_onnx_export_matches_onnxruntime(small, data):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    _, _, xt, _ = data
    p = small[4]
    model = cnn.export_onnx(p)
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": xt[:64].transpose(0, 3, 1, 2)})[0]
    want = cnn.forward(p, xt[:64])
    assert got.shape == (64, 10)
    assert np.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert np.array_equal(got.argmax(1), want.argmax(1))


def test_trained_weights_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("S4_CACHE_DIR", str(tmp_path))
    kw = dict(width=4, seed=5, epochs=1, sparsities=(1, 2), steps=1, step_epochs=0, finetune=0)
    first = cnn.train_cached(**kw)
    assert len(list(tmp_path.glob("cnn-w4-seed5-*.npz"))) == 1

    def no_training(*a, **k):
        raise AssertionError("trained again despite the cache")

    monkeypatch.setattr(cnn, "train", no_training)
    again = cnn.train_cached(**kw)
    assert sorted(again) == [1, 2]
    for s in first:
        for k in first[s]:
            assert np.array_equal(first[s][k], again[s][k]), (s, k)
    # a prefix of the levels comes out of the longer run's file
    prefix = cnn.train_cached(**{**kw, "sparsities": (1,)})
    assert sorted(prefix) == [1]
    assert all(np.array_equal(prefix[1][k], first[1][k]) for k in first[1])
    with pytest.raises(AssertionError, match="trained again"):   # not a prefix: trains
        cnn.train_cached(**{**kw, "sparsities": (1, 4)})
