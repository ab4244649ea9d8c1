"""Post-training pruning of the MiniLM encoder (``pruned_weights``' ``block`` and ``distill``
methods): the hand-written backward pass, block-wise reconstruction and the result cache, on a
tiny random encoder of the same structure (no model package needed; fast)."""

import numpy as np
import pytest

from s4accel.base.sparse import check_sparsity
from s4accel.sim.workloads import minilm

HIDDEN, HEADS, FFN, LAYERS, VOCAB = 64, 4, 128, 2, 97


class TinyMiniLM(minilm.MiniLM):
    """:class:`minilm.MiniLM` with random weights (hidden 64, 4 heads, FFN 128, 2 layers) and
    a word-hash tokenizer."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.n_layers, self.hidden, self.heads, self.eps = LAYERS, HIDDEN, HEADS, 1e-12
        w = {"embeddings.word_embeddings.weight": rng.standard_normal((VOCAB, HIDDEN)),
             "embeddings.position_embeddings.weight": rng.standard_normal((64, HIDDEN)) * 0.1,
             "embeddings.token_type_embeddings.weight": rng.standard_normal((1, HIDDEN)) * 0.1,
             "embeddings.LayerNorm.weight": 1 + 0.1 * rng.standard_normal(HIDDEN),
             "embeddings.LayerNorm.bias": 0.1 * rng.standard_normal(HIDDEN)}
        shapes = {"query": (HIDDEN, HIDDEN), "key": (HIDDEN, HIDDEN), "value": (HIDDEN, HIDDEN),
                  "attn_out": (HIDDEN, HIDDEN), "ffn_up": (FFN, HIDDEN),
                  "ffn_down": (HIDDEN, FFN)}
        for li in range(LAYERS):
            p = f"encoder.layer.{li}."
            for name, (n, k) in shapes.items():
                w[p + minilm.LINEARS[name] + ".weight"] = rng.standard_normal((n, k)) / k ** 0.5
                w[p + minilm.LINEARS[name] + ".bias"] = 0.1 * rng.standard_normal(n)
            for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
                w[p + ln + ".weight"] = 1 + 0.1 * rng.standard_normal(HIDDEN)
                w[p + ln + ".bias"] = 0.1 * rng.standard_normal(HIDDEN)
        self.w = w

    def tokenize(self, sentences):
        ids = [np.array([sum(map(ord, t)) % VOCAB for t in s.split()], np.int64)
               for s in sentences]
        return minilm.Batch(np.concatenate(ids), np.cumsum([0] + [len(i) for i in ids]))


def _sentences(rng, n, words=(3, 12)):
    return [" ".join(f"w{rng.integers(200)}" for _ in range(rng.integers(*words)))
            for _ in range(n)]


def _block64(model, layer=0):
    """An :class:`minilm._EncoderBlock` in float64 (for finite differences)."""
    params = {n: [a.copy() for a in model.linear_weights(layer, n)] for n in minilm.LINEARS}
    blk = minilm._EncoderBlock(model, layer, params)
    pre = f"encoder.layer.{layer}."
    blk.ln = [(model.w[pre + ln + ".weight"], model.w[pre + ln + ".bias"])
              for ln in ("attention.output.LayerNorm", "output.LayerNorm")]
    return blk, params


def test_block_forward_matches_encoder_layer(rng):
    model = TinyMiniLM(1)
    batch = model.tokenize(_sentences(rng, 5))
    x = model.embed(batch)
    blk, _ = _block64(model)
    sel = [3, 0, 4]  # any order of sentences
    rows, idx, valid = minilm._padded(batch.starts, sel)
    np.testing.assert_allclose(blk.forward(x[rows], idx, valid),
                               model.encoder_layer(0, x, batch)[rows], atol=1e-10)


def test_block_backward_matches_finite_differences(rng):
    """Every parameter tensor's gradient and the input gradient against central differences
    of ``sum(c * forward(x))`` (float64; a few random entries each)."""
    model = TinyMiniLM(2)
    batch = model.tokenize(_sentences(rng, 3))
    blk, params = _block64(model)
    rows, idx, valid = minilm._padded(batch.starts, [0, 1, 2])
    x = model.embed(batch)[rows].copy()
    c = rng.standard_normal((len(rows), HIDDEN))
    blk.forward(x, idx, valid)
    grads = blk.backward(c)
    dx = blk.dx.copy()

    def loss():
        return float((blk.forward(x, idx, valid) * c).sum())

    def numeric(a, j, eps=1e-6):
        f = a.reshape(-1)
        old = f[j]
        f[j] = old + eps
        up = loss()
        f[j] = old - eps
        down = loss()
        f[j] = old
        return (up - down) / (2 * eps)

    checked = 0
    for name in minilm.LINEARS:
        for pi in range(2):
            a = params[name][pi]
            for j in rng.choice(a.size, 4, replace=False):
                want = numeric(a, j)
                got = grads[name][pi].reshape(-1)[j]
                assert got == pytest.approx(want, rel=1e-4, abs=1e-6), (name, pi, j)
                checked += abs(want) > 1e-3
    for j in rng.choice(x.size, 8, replace=False):
        assert dx.reshape(-1)[j] == pytest.approx(numeric(x, j), rel=1e-4, abs=1e-6)
    assert checked >= 30  # the comparison is not between near-zeros only


def test_block_reconstruction_lowers_the_error_of_one_shot_pruning(rng):
    """``block`` (OBS, then reconstruction of each encoder layer) ends closer to the float
    model than ``obs`` alone, which beats ``magnitude``; all three bank-balanced."""
    model = TinyMiniLM(3)
    calib = _sentences(rng, 48)
    evals = _sentences(np.random.default_rng(rng.integers(1 << 30)), 16)
    ref = model.hidden_states(model.tokenize(evals))
    err = {}
    for method in ("magnitude", "obs", "block"):
        b = {}
        w = minilm.pruned_weights(model, 4, method=method, sentences=calib, biases=b,
                                  finetune={"block_epochs": 20, "block_lr": 3e-3, "batch": 8})
        for a in w.values():
            check_sparsity(np.where(a != 0, 1, 0).astype(np.int8), 4)
        h = model.hidden_states(model.tokenize(evals),
                                linear=lambda la, n, x, w=w, b=b: x @ w[(la, n)].T + b[(la, n)])
        err[method] = float(np.linalg.norm(h - ref) / np.linalg.norm(ref))
    print(err)
    assert err["obs"] < err["magnitude"]
    assert err["block"] < 0.9 * err["obs"]


def test_cache_key_and_reuse(tmp_path, monkeypatch, rng):
    """The cached result is reused for the same inputs and recomputed when anything it
    depends on changes (settings, calibration text, s, the model's weights)."""
    monkeypatch.setenv("S4_CACHE_DIR", str(tmp_path))
    model = TinyMiniLM(4)
    calib = _sentences(rng, 16)
    ft = {"block_epochs": 1}
    b1 = {}
    w1 = minilm.pruned_weights(model, 2, method="block", sentences=calib, finetune=ft,
                               biases=b1, cache=True)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1
    # a poisoned cache entry shows that the second call reads it instead of recomputing
    with np.load(files[0]) as z:
        data = dict(z)
    data["w0.query"] = data["w0.query"] * 2
    np.savez(files[0], **data)
    b2 = {}
    w2 = minilm.pruned_weights(model, 2, method="block", sentences=calib, finetune=ft,
                               biases=b2, cache=True)
    np.testing.assert_array_equal(w2[(0, "query")], 2 * w1[(0, "query")])
    np.testing.assert_array_equal(w2[(1, "ffn_down")], w1[(1, "ffn_down")])
    np.testing.assert_array_equal(b2[(0, "value")], b1[(0, "value")])
    assert not np.array_equal(b1[(0, "value")], model.linear_weights(0, "value")[1])
    # anything else: a new entry
    minilm.pruned_weights(model, 2, method="block", sentences=calib[:-1], finetune=ft,
                          cache=True)
    minilm.pruned_weights(model, 2, method="block", sentences=calib,
                          finetune={"block_epochs": 2}, cache=True)
    minilm.pruned_weights(model, 4, method="block", sentences=calib, finetune=ft, cache=True)
    other = TinyMiniLM(4)
    other.w["encoder.layer.1.output.LayerNorm.bias"][0] += 1e-9
    minilm.pruned_weights(other, 2, method="block", sentences=calib, finetune=ft, cache=True)
    assert len(list(tmp_path.iterdir())) == 5
    # no cache: never written
    minilm.pruned_weights(model, 2, method="block", sentences=calib[1:], finetune=ft)
    assert len(list(tmp_path.iterdir())) == 5


def test_augmented_copies_keep_the_original_first_and_the_text_vocabulary(rng):
    model = TinyMiniLM(5)
    batch = model.tokenize(_sentences(rng, 20))
    aug = minilm._augmented(batch, 2, seed=int(rng.integers(1 << 30)), replace=0.3)
    n = len(batch.starts) - 1
    assert len(aug.starts) - 1 == 3 * n
    np.testing.assert_array_equal(aug.ids[:batch.tokens], batch.ids)
    spans = list(aug.spans())
    changed = 0
    for c in (1, 2):
        for i in range(n):
            a, b = spans[c * n + i]
            o0, o1 = batch.starts[i], batch.starts[i + 1]
            assert aug.ids[a] == batch.ids[o0] and aug.ids[b - 1] == batch.ids[o1 - 1]
            assert 2 <= b - a <= o1 - o0
            changed += not np.array_equal(aug.ids[a:b], batch.ids[o0:o1])
    assert set(aug.ids.tolist()) <= set(batch.ids.tolist())
    assert changed > n  # most copies differ from their sentence
    assert minilm._augmented(batch, 0, seed=0) is batch


def _normalized(text):
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c == " ").split())


def test_calibration_text_is_apart_from_the_evaluation_sentences():
    """No evaluation sentence (:data:`minilm.SENTENCES`) is part of the calibration text,
    not even with other case or punctuation; the written text has no duplicates."""
    calib = minilm.prune_calib_sentences()
    evals = {_normalized(t) for t in minilm.SENTENCES}
    assert len(evals) == len(minilm.SENTENCES)
    seen = [_normalized(t) for t in calib]
    assert not set(seen) & evals, set(seen) & evals
    assert len(set(seen)) == len(seen)
    # every written list the calibration is built from is in it
    for part in (minilm.CALIB_SENTENCES, minilm.WRITTEN_SENTENCES, minilm.MORE_SENTENCES,
                 minilm.EXTRA_SENTENCES, minilm.FURTHER_SENTENCES):
        assert set(part) <= set(calib)
    # the data file (sim/workloads/data/minilm_calibration.txt): its four sections, each a
    # list of whole sentences (a line cut in two, or a stray header, would show here)
    text = minilm._CALIBRATION_TEXT
    assert set(text) == {"written", "more", "extra", "further"}
    assert all(t[0].isupper() and t[-1] in ".?!" for part in text.values() for t in part)
