"""The digits workload: scikit-learn's 8x8 handwritten digits, MLPs trained in numpy.

The paper's claim in miniature: with the same number of *stored* weights, a wider MLP pruned
bank-balanced to 8x or 16x is compared with a small dense one, on accuracy and on device cycles.

- ``dense``: 64 -> 32 -> 10, dense (2,368 weights);
- ``sparse8``: 64 -> 256 -> 10 at s = 8 (2,048 + 320 = 2,368 stored weights);
- ``sparse16``: 64 -> 512 -> 10 at s = 16 (2,048 + 320 = 2,368 stored weights).

Training is plain numpy (Adam, softmax cross-entropy, full batch), deterministic for a seed:
dense training, then bank-balanced magnitude pruning and fine-tuning with the mask fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...base.sparse import prune
from ...sw.compiler import FloatLinear, compile_model
from .. import report
from ..report import Column
from .execute import run_on_model, run_on_rtl

__all__ = ["ARCHS", "load_digits_split", "train_mlp", "build_models", "accuracy"]

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


def train_mlp(x, y, hidden, s, *, seed=0, epochs=60, finetune=40, lr=3e-3,
              keep_dense=False):
    """Train 64 -> hidden -> 10; with ``s > 1``, prune both layers bank-balanced to ``s``
    after dense training and fine-tune with the mask fixed. With ``keep_dense``, returns
    ``(pruned, dense)``: the dense network before pruning is the same model at ``s = 1``."""
    rng = np.random.default_rng(seed)
    k = x.shape[1]
    p = {"w1": rng.normal(0, np.sqrt(2 / k), (hidden, k)), "b1": np.zeros(hidden),
         "w2": rng.normal(0, np.sqrt(2 / hidden), (10, hidden)), "b2": np.zeros(10)}
    p = _adam_train(p, {}, x, y, epochs, lr, rng)
    dense = Mlp(p["w1"].copy(), p["b1"].copy(), p["w2"].copy(), p["b2"].copy())
    if s > 1:
        masks = {w: (prune(p[w], s) != 0).astype(np.float64) for w in ("w1", "w2")}
        for w in masks:
            p[w] *= masks[w]
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
