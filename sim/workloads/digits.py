"""The digits workload: scikit-learn's 8x8 handwritten digits, MLPs trained in numpy.

The paper's claim in miniature: with the same number of *stored* weights, a wider MLP pruned
bank-balanced to 8x or 16x is compared with a small dense one, on accuracy and on device cycles.

- ``dense``: 64 -> 32 -> 10, dense (2,368 weights);
- ``sparse8``: 64 -> 256 -> 10 at s = 8 (2,048 + 320 = 2,368 stored weights);
- ``sparse16``: 64 -> 512 -> 10 at s = 16 (2,048 + 320 = 2,368 stored weights).

Training is plain numpy (Adam, softmax cross-entropy, mini-batches), deterministic for a seed:
dense training, then gradual bank-balanced magnitude pruning (8 steps towards ``s``, the masks
kept during the fine-tuning epochs; :func:`train_mlp`), then fine-tuning at ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...base.sparse import prune
from ...sw.compiler import FloatLinear, compile_model
from ...sw.prune import bank_mask, gradual_keep
from .. import report
from ..report import Column
from .execute import run_on_model, run_on_rtl

__all__ = ["ARCHS", "PRUNE_SCHEDULES", "load_digits_split", "train_mlp", "build_models",
           "accuracy", "pruning_table", "format_pruning_table"]

#: name -> (hidden width, sparsity)
ARCHS = {"dense": (32, 1), "sparse8": (256, 8), "sparse16": (512, 16)}


def load_digits_split(seed=0, test_fraction=0.25):
    """Digits as float features in [0, 1], split into train and test (stratified by a seeded
    permutation). Returns ``(x_train, y_train, x_test, y_test)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data.astype(np.float64) / 16.0
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


@dataclass
class Mlp:
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def logits(self, x):
        return np.maximum(x @ self.w1.T + self.b1, 0) @ self.w2.T + self.b2

    def layers(self):
        return [FloatLinear(self.w1, self.b1, relu=True, name="hidden"),
                FloatLinear(self.w2, self.b2, relu=False, name="out")]


def _adam_train(p, masks, x, y, epochs, lr, rng, wd=1e-4):
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(val) for k, val in p.items()}
    onehot = np.eye(10)[y]
    b1, b2, eps = 0.9, 0.999, 1e-8
    batch = 128
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            xb, tb = x[idx], onehot[idx]
            h_pre = xb @ p["w1"].T + p["b1"]
            h = np.maximum(h_pre, 0)
            z = h @ p["w2"].T + p["b2"]
            z = z - z.max(axis=1, keepdims=True)
            prob = np.exp(z)
            prob /= prob.sum(axis=1, keepdims=True)
            dz = (prob - tb) / len(idx)
            g = {"w2": dz.T @ h + wd * p["w2"], "b2": dz.sum(0)}
            dh = (dz @ p["w2"]) * (h_pre > 0)
            g["w1"] = dh.T @ xb + wd * p["w1"]
            g["b1"] = dh.sum(0)
            t += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                p[k] -= lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)
                if k in masks:
                    p[k] *= masks[k]
    return p


#: How the wider MLPs are pruned during training (:func:`train_mlp`).
PRUNE_SCHEDULES = ("oneshot", "gradual")


def train_mlp(x, y, hidden, s, *, seed=0, epochs=60, finetune=None, lr=3e-3,
              keep_dense=False, schedule="gradual", steps=8, step_epochs=10):
    """Train 64 -> hidden -> 10; with ``s > 1``, prune both layers bank-balanced to ``s``
    after dense training, then fine-tune with the mask fixed (pruned weights stay zero).

    ``schedule="oneshot"``: prune to ``s`` at once (:func:`s4accel.base.sparse.prune`), then
    ``finetune`` epochs (default 40). ``schedule="gradual"``: ``steps`` pruning steps with the cubic
    schedule :func:`s4accel.sw.prune.gradual_keep` (kept entries per bank 32 -> ``32 // s``,
    each step by magnitude inside the previous mask, :func:`s4accel.sw.prune.bank_mask`),
    ``step_epochs`` epochs of fine-tuning after each, then ``finetune`` more at ``s`` (default
    80). Gradual keeps the 64-512-10 MLP within 1 point of its dense accuracy at 8x and 16x
    where one-shot loses up to 3 (:func:`pruning_table`).
    With ``keep_dense``, returns ``(pruned, dense)``: the dense network before pruning is the
    same model at ``s = 1``."""
    if schedule not in PRUNE_SCHEDULES:
        raise ValueError(f"schedule must be one of {PRUNE_SCHEDULES}, not {schedule!r}")
    if finetune is None:
        finetune = 40 if schedule == "oneshot" else 80
    rng = np.random.default_rng(seed)
    k = x.shape[1]
    p = {"w1": rng.normal(0, np.sqrt(2 / k), (hidden, k)), "b1": np.zeros(hidden),
         "w2": rng.normal(0, np.sqrt(2 / hidden), (10, hidden)), "b2": np.zeros(10)}
    p = _adam_train(p, {}, x, y, epochs, lr, rng)
    dense = Mlp(p["w1"].copy(), p["b1"].copy(), p["w2"].copy(), p["b2"].copy())
    if s > 1:
        if schedule == "oneshot":
            masks = {w: (prune(p[w], s) != 0).astype(np.float64) for w in ("w1", "w2")}
            for w in masks:
                p[w] *= masks[w]
        else:
            masks = {w: np.ones_like(p[w]) for w in ("w1", "w2")}
            for keep in gradual_keep(s, steps):
                for w in masks:
                    # pruned entries are exactly zero, so the new mask lies inside the old one
                    masks[w] = (bank_mask(p[w] * masks[w], keep) & (masks[w] != 0)).astype(
                        np.float64)
                    p[w] *= masks[w]
                p = _adam_train(p, masks, x, y, step_epochs, lr / 3, rng)
        p = _adam_train(p, masks, x, y, finetune, lr / 3, rng)
    pruned = Mlp(p["w1"], p["b1"], p["w2"], p["b2"])
    return (pruned, dense) if keep_dense else pruned


def accuracy(logits, y) -> float:
    return float((np.argmax(logits, axis=1) == y).mean())


def build_models(seed=0, archs=None):
    """Train and compile every architecture. Returns ``{name: (Mlp, CompiledModel)}`` and the
    data split."""
    x_tr, y_tr, x_te, y_te = load_digits_split(seed)
    out = {}
    for name in archs or ARCHS:
        hidden, s = ARCHS[name]
        mlp = train_mlp(x_tr, y_tr, hidden, s, seed=seed)
        compiled = compile_model(mlp.layers(), x_tr, s, host_ops=["argmax"])
        out[name] = (mlp, compiled)
    return out, (x_tr, y_tr, x_te, y_te)


def experiment(config="fpga", *, images=64, batch=32, seed=0, sim="verilator", rtl=True,
               fast=True):
    """The table of the three architectures: stored weights, accuracy (float, and int8 on the
    functional device model over the whole test split), device cycles per image (RTL on a
    sample of ``images`` test images, bit-exact against the functional model) and the
    simulator's speed on that model's jobs (``sim_cycles_per_s``). ``fast``: the RTL with the
    DRAM model inside the design (else cocotbext-axi's RAM)."""
    models, (x_tr, y_tr, x_te, y_te) = build_models(seed)
    rows, fm = [], {}
    x_q = None
    for name, (mlp, cm) in models.items():
        xin = cm.quantize_input(x_te)
        if x_q is None:
            x_q = xin
        elif not np.array_equal(xin, x_q):
            raise AssertionError("the models were calibrated to different input scales")
        y, _ = run_on_model(config, cm, xin)
        if not np.array_equal(y, cm.reference(xin)):
            raise AssertionError(f"{name}: the functional model differs from the golden model")
        fm[name] = y
        hidden, s = ARCHS[name]
        rows.append({"model": name, "hidden": hidden, "sparsity": s,
                     "stored_weights": cm.stored_weights,
                     "accuracy_float": accuracy(mlp.logits(x_te), y_te),
                     "accuracy_int8": accuracy(cm.dequantize_output(y), y_te),
                     "test_images": len(y_te)})
    info = {}
    if rtl:
        n = min(images, len(y_te))
        out, info = run_on_rtl(config, {k: v[1] for k, v in models.items()}, x_q[:n],
                               batch=batch, sim=sim, fast=fast)
        for r in rows:
            got = out[r["model"]]
            if not np.array_equal(got["y"], fm[r["model"]][:n]):
                raise AssertionError(f"{r['model']}: RTL outputs differ from the functional "
                                     "model")
            r["cycles_per_image"] = sum(got["cycles"]) / n
            r["sim_cycles_per_s"] = sum(got["cycles"]) / sum(got["wall_s"])
            r["rtl_images"] = n
            r["bit_exact"] = True
    return rows, info


#: The table of :func:`experiment`'s rows (cycles ``-`` for a model not run on the RTL).
COLUMNS = [Column("model", "model", "<9"), Column("MLP", lambda r: f"64-{r['hidden']}-10", ">14"),
           Column("s", "sparsity", ">3"), Column("stored w", "stored_weights", ">9"),
           Column("acc float", "accuracy_float", ">9.4f"),
           Column("acc int8", "accuracy_int8", ">9.4f"),
           Column("cycles/img", "cycles_per_image", ">10.1f")]


def format_table(rows) -> str:
    return report.format_table(rows, COLUMNS)


def pruning_table(config="fpga", *, seeds=(0, 1, 2), sparsities=(8, 16), hidden=512,
                  schedules=PRUNE_SCHEDULES, out=None):
    """Accuracy of the 64-``hidden``-10 MLP with every layer at each ``s`` of ``sparsities``,
    pruned during training with each of ``schedules``, against the same network dense (the
    weights before pruning, ``s = 1``): int8 on the functional device model of ``config``
    through the driver, the whole test split, one row per seed and a ``mean`` row. Row keys:
    ``seed``, ``dense``, and ``"{schedule} {s}x"`` for each schedule and ``s``."""
    say = (lambda *a: print(*a, file=out, flush=True)) if out else (lambda *a: None)

    def device_accuracy(mlp, s, x_tr, x_te, y_te):
        cm = compile_model(mlp.layers(), x_tr, s, host_ops=["argmax"])
        xin = cm.quantize_input(x_te)
        y, _ = run_on_model(config, cm, xin)
        if not np.array_equal(y, cm.reference(xin)):
            raise AssertionError("the functional model differs from the golden model")
        return accuracy(cm.dequantize_output(y), y_te)

    rows = []
    for seed in seeds:
        x_tr, y_tr, x_te, y_te = load_digits_split(seed)
        row = {"seed": seed, "test_images": len(y_te)}
        for sched in schedules:
            for s in sparsities:
                pruned, dense = train_mlp(x_tr, y_tr, hidden, s, seed=seed, keep_dense=True,
                                          schedule=sched)
                if "dense" not in row:
                    row["dense"] = device_accuracy(dense, 1, x_tr, x_te, y_te)
                row[f"{sched} {s}x"] = device_accuracy(pruned, s, x_tr, x_te, y_te)
        rows.append(row)
        say("  seed " + str(seed) + ": " + ", ".join(
            f"{k} {v:.4f}" for k, v in row.items() if k not in ("seed", "test_images")))
    keys = [k for k in rows[0] if k not in ("seed", "test_images")]
    rows.append({"seed": "mean", "test_images": rows[0]["test_images"],
                 **{k: float(np.mean([r[k] for r in rows])) for k in keys}})
    return rows


def format_pruning_table(rows) -> str:
    """:func:`pruning_table`'s rows as a table, with each pruned model's difference to dense
    on the mean row."""
    keys = [k for k in rows[0] if k not in ("seed", "test_images")]
    cols = [Column("seed", "seed", ">5")] + [Column(k, k, ">12.4f") for k in keys]
    mean = rows[-1]
    diff = {"seed": "diff", **{k: (mean[k] - mean["dense"]) * 100 for k in keys}}
    return (report.format_table(rows, cols) + "\n" + "diff to dense, points: " + ", ".join(
        f"{k} {diff[k]:+.2f}" for k in keys if k != "dense"))
