"""A ResNet-style CNN on the digits upscaled to 16x16, trained and pruned in numpy, and its
bit-exact int8 inference (the network ``s4 bench model`` and the image demo will run).

Data: scikit-learn's digits with the split of :func:`.digits.load_digits_split` (seed 0: 1,348
training and 449 test images), pixels ``/ 16`` in [0, 1], upscaled 8x8 -> 16x16 bilinearly
with half-pixel centres (:func:`upscale2x`: ``align_corners=False`` in PyTorch, ONNX
``Resize`` linear with ``half_pixel``; edges clamped), as NHWC ``[N, 16, 16, 1]``.

Network (``c`` = :data:`DEFAULT_WIDTH` channels by default; :data:`LAYERS`), NHWC, every
convolution with bias, no BatchNorm:

- ``stem``: 3x3 conv 1 -> c, pad 1, ReLU (16x16; stays dense);
- residual block on 16x16: ``b1a`` 3x3 c -> c + ReLU, ``b1b`` 3x3 c -> c, add the block's
  input, ReLU;
- stride-2 stage on 8x8: ``s2a`` 3x3 stride 2 c -> 2c + ReLU, ``s2b`` 3x3 2c -> 2c, plus the
  projection shortcut ``s2p`` 1x1 stride 2 c -> 2c, add, ReLU;
- global average pool and the classifier ``fc`` 2c -> 10 (stays dense).

A convolution's weight is ``[Cout, kh, kw, Cin]``; as a GEMM matrix ``[Cout, K]`` its K runs in
``(kh, kw, cin)`` order (:func:`s4accel.base.golden.im2col_nhwc`), so with ``Cin`` a multiple of
32 a bank of 32 is 32 input channels of one kernel tap. :data:`PRUNED` convolutions run at the
sparsity ``s``; ``stem`` and ``fc`` stay dense in every run.

Training (:func:`train`): softmax cross-entropy, Adam, mini-batches of 32, float32,
deterministic for a seed; then gradual bank-balanced pruning through ``s = 2, 4, 8, 16, 32``
in turn, each level reached in ``steps`` mask-tightening steps (kept entries per bank
interpolated cubically from the previous level, each step by magnitude inside the previous
mask, :func:`s4accel.sw.prune.bank_mask`) with fine-tuning after each step and at the level
(:class:`s4accel.sw.prune.MaskedAdam`; :data:`FINETUNE` epochs). A snapshot per level.
Trained weights are cached as ``.npz`` under ``$S4_CACHE_DIR`` (default ``~/.cache/s4accel``).

Quantized inference (:func:`quantize`, :class:`QuantCnn`), bit-exact by definition, built from
the generic pieces of :mod:`s4accel.sw.convnet` (which the ONNX importer uses too):

- input: ``round(x * 127)`` int8 (scale 1/127);
- each convolution: :func:`s4accel.base.golden.conv_nhwc_int8` (GEMM over the NHWC im2col),
  per-output-channel int8 weights ``max|W[n]| / 127``, int32 bias ``round(b / (s_x * s_w))``,
  requantized to the output scale ``max|y| / 127`` calibrated on training images through the
  quantized chain itself (as :func:`s4accel.sw.compiler.compile_model` does); ReLU on the
  requantizer where the layer has one;
- each residual addition: the two int8 branches with their own scales, as the device adds
  them (:class:`QAdd`: a 1x1 GEMM over both side by side, weights ``w_a``, ``w_b`` on the
  diagonals, one requantization; :func:`s4accel.base.golden.add_int8` with ``mult_a = w_a *
  mult``), ReLU, output scale calibrated the same way;
- global average pooling (:class:`QGap`): the sum over the 64 pixels (int32, exact)
  requantized to int8 at a calibrated scale, then the classifier ``fc`` (dense int8 weights,
  int32 raw output, dequantized on the host by ``s_pool * s_w[n]``). An earlier version folded
  the pooling into the classifier (one GEMM over the flattened map, its weights tiled 64
  times): exact, but on the device that GEMM's dense weights (10 x 8,192 per image, 128 KiB a
  job) fill the whole weight scratchpad of ``fpga`` and cost 37k cycles a job against 5k for
  the pooling GEMM (one non-zero per bank, s = 32 format) and a 128 -> 10 classifier.

``python -m s4accel.sim.workloads.cnn`` prints :func:`accuracy_table`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...base import golden
from ...base.sparse import PackedWeights, nnz_per_bank, pack
from ...sw.convnet import (ConvSpec, QAdd, QConv, QGap, gemm_raw_exact, quant_add, quant_conv,
                           quant_gap, quant_weights)
from ...sw.convnet import _im2col_f
from ...sw.prune import MaskedAdam, bank_mask
from .digits import load_digits_split

__all__ = ["DEFAULT_WIDTH", "SPARSITIES", "PRUNED", "FINETUNE", "LAYERS", "upscale2x", "load_split",
           "init_params", "forward", "train", "train_cached", "quantize", "QuantCnn",
           "macs_per_image", "export_onnx", "accuracy_table", "format_accuracy_table",
           "ConvSpec", "QConv", "QAdd", "QGap"]

DEFAULT_WIDTH = 64
#: Sparsity levels of the pruned convolutions (32 needs ``K`` of whole banks to mean 1 of 32).
SPARSITIES = (1, 2, 4, 8, 16, 32)
#: The convolutions that run at ``s``; ``stem`` and ``fc`` stay dense.
PRUNED = ("b1a", "b1b", "s2a", "s2p", "s2b")
#: Fine-tuning epochs at each sparsity level after its pruning steps (:func:`train`): at 16x,
#: 8 epochs there left the int8 network 2.2 points below dense (seed 0), 20 within 1.
FINETUNE = {2: 4, 4: 4, 8: 8, 16: 16, 32: 16}
#: Bump when training changes what it computes: it is part of the cache key.
CACHE_VERSION = 3


def LAYERS(width=DEFAULT_WIDTH) -> tuple[ConvSpec, ...]:
    """The convolutions of the network with ``width`` channels in the first stage."""
    c, c2 = width, 2 * width
    return (ConvSpec("stem", 1, c, 3, 1, 1, True),
            ConvSpec("b1a", c, c, 3, 1, 1, True),
            ConvSpec("b1b", c, c, 3, 1, 1, False),
            ConvSpec("s2a", c, c2, 3, 2, 1, True),
            ConvSpec("s2b", c2, c2, 3, 1, 1, False),
            ConvSpec("s2p", c, c2, 1, 2, 0, False))


def _specs(width):
    return {sp.name: sp for sp in LAYERS(width)}


# ---------------------------------------------------------------------------------------- data

def upscale2x(img) -> np.ndarray:
    """Bilinear 2x upscaling of ``[..., H, W]`` with half-pixel centres and clamped edges:
    output pixel ``2i`` is ``0.75 x[i] + 0.25 x[i - 1]`` and ``2i + 1`` is
    ``0.75 x[i] + 0.25 x[i + 1]`` along each axis (an index outside the image is clamped to
    the edge)."""
    x = np.asarray(img, dtype=np.float64)
    for axis in (-2, -1):
        n = x.shape[axis]
        prev = np.take(x, np.clip(np.arange(n) - 1, 0, n - 1), axis=axis)
        nxt = np.take(x, np.clip(np.arange(n) + 1, 0, n - 1), axis=axis)
        even, odd = 0.75 * x + 0.25 * prev, 0.75 * x + 0.25 * nxt
        x = np.stack([even, odd], axis=axis).reshape(
            x.shape[:axis % x.ndim] + (2 * n,) + x.shape[axis % x.ndim + 1:])
    return x


def load_split():
    """``(x_train, y_train, x_test, y_test)``: the digits split of
    :func:`.digits.load_digits_split` (seed 0; 449 test images), upscaled to NHWC
    ``[N, 16, 16, 1]`` float32 in [0, 1]."""
    x_tr, y_tr, x_te, y_te = load_digits_split(0)

    def up(x):
        return upscale2x(x.reshape(-1, 8, 8))[..., None].astype(np.float32)

    return up(x_tr), y_tr, up(x_te), y_te


# ------------------------------------------------------------------------------ float network

def _im2col(x, k, stride, pad):
    cols = _im2col_f(x, k, stride, pad)              # [n, ho, wo, k*k*c]
    n, ho, wo, kk = cols.shape
    return cols.reshape(n * ho * wo, kk), (n, ho, wo)


def _col2im(dcols, xshape, k, stride, pad):
    n, h, w, c = xshape
    ho, wo = golden.conv_out_size(h, k, stride, pad), golden.conv_out_size(w, k, stride, pad)
    d = dcols.reshape(n, ho, wo, k, k, c)
    dxp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride] += \
                d[:, :, :, i, j]
    return dxp[:, pad:pad + h, pad:pad + w]


def init_params(width=DEFAULT_WIDTH, seed=0) -> dict:
    """He-initialized float32 parameters: ``{name: weight}`` with conv weights ``[Cout, kh,
    kw, Cin]``, ``{name}.b`` biases, ``fc`` ``[10, 2 * width]``."""
    rng = np.random.default_rng(seed)
    p = {}
    for sp in LAYERS(width):
        fan = sp.k * sp.k * sp.cin
        p[sp.name] = rng.normal(0, np.sqrt(2 / fan), (sp.cout, sp.k, sp.k, sp.cin))
        p[sp.name + ".b"] = np.zeros(sp.cout)
    p["fc"] = rng.normal(0, np.sqrt(1 / (2 * width)), (10, 2 * width))
    p["fc.b"] = np.zeros(10)
    return {k: v.astype(np.float32) for k, v in p.items()}


def _width(p):
    return p["stem"].shape[0]


def _conv(p, sp, x, cache):
    cols, (n, ho, wo) = _im2col(x, sp.k, sp.stride, sp.pad)
    y = cols @ p[sp.name].reshape(sp.cout, -1).T + p[sp.name + ".b"]
    if cache is not None:
        cache[sp.name] = (cols, x.shape)
    return y.reshape(n, ho, wo, sp.cout)


def forward(p, x, cache=None) -> np.ndarray:
    """Float logits ``[N, 10]`` of NHWC images ``x``; with a dict ``cache``, keeps what the
    backward pass needs."""
    sp = _specs(_width(p))
    h0 = np.maximum(_conv(p, sp["stem"], x, cache), 0)
    a = np.maximum(_conv(p, sp["b1a"], h0, cache), 0)
    h1 = np.maximum(_conv(p, sp["b1b"], a, cache) + h0, 0)
    d = np.maximum(_conv(p, sp["s2a"], h1, cache), 0)
    h2 = np.maximum(_conv(p, sp["s2b"], d, cache) + _conv(p, sp["s2p"], h1, cache), 0)
    g = h2.mean(axis=(1, 2))
    if cache is not None:
        cache.update(h0=h0, a=a, h1=h1, d=d, h2=h2, g=g)
    return g @ p["fc"].T + p["fc.b"]


def _backward(p, cache, dz):
    sp = _specs(_width(p))
    g = {}

    def conv_back(name, dy):
        s = sp[name]
        cols, xshape = cache[name]
        dy2 = dy.reshape(-1, s.cout)
        g[name] = (dy2.T @ cols).reshape(p[name].shape)
        g[name + ".b"] = dy2.sum(0)
        return _col2im(dy2 @ p[name].reshape(s.cout, -1), xshape, s.k, s.stride, s.pad)

    g["fc"] = dz.T @ cache["g"]
    g["fc.b"] = dz.sum(0)
    h2 = cache["h2"]
    dh2 = np.broadcast_to((dz @ p["fc"])[:, None, None, :] / (h2.shape[1] * h2.shape[2]),
                          h2.shape) * (h2 > 0)
    dd = conv_back("s2b", dh2) * (cache["d"] > 0)
    dh1 = conv_back("s2a", dd) + conv_back("s2p", dh2)
    dh1 = dh1 * (cache["h1"] > 0)
    da = conv_back("b1b", dh1) * (cache["a"] > 0)
    dh0 = (conv_back("b1a", da) + dh1) * (cache["h0"] > 0)
    conv_back("stem", dh0)
    return g


def _loss_grad(z, y):
    z = z - z.max(axis=1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(axis=1, keepdims=True)
    prob[np.arange(len(y)), y] -= 1
    return (prob / len(y)).astype(np.float32)


def _cosine(hi, lo, n):
    """``n`` learning rates falling from ``hi`` towards ``lo`` on a half cosine."""
    return [lo + (hi - lo) * (1 + np.cos(np.pi * e / n)) / 2 for e in range(n)]


def _epochs(p, opt, names, x, y, epochs, rng, batch, lrs=None):
    for e in range(epochs):
        if lrs is not None:
            opt.lr = lrs[e]
        order = rng.permutation(len(y))
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            cache = {}
            z = forward(p, x[idx], cache)
            g = _backward(p, cache, _loss_grad(z, y[idx]))
            opt.step([g[k] for k in names])


def _matrix(w):
    return w.reshape(w.shape[0], -1)


def logits_batched(p, x, batch=128) -> np.ndarray:
    return np.concatenate([forward(p, x[i:i + batch]) for i in range(0, len(x), batch)])


def train(x, y, *, width=DEFAULT_WIDTH, seed=0, epochs=15, lr=1e-3, batch=32,
          sparsities=SPARSITIES, steps=2, step_epochs=2, finetune=None, out=None) -> dict:
    """Train the float network on NHWC ``x`` and labels ``y``, then prune it gradually
    (module docstring). Dense training: ``epochs`` epochs, the learning rate decaying from
    ``lr`` to ``lr / 20`` on a cosine; at each sparsity level the same from ``lr / 2`` over
    its ``steps * step_epochs + finetune`` epochs; ``finetune`` is one number of epochs or
    ``{s: epochs}`` (default :data:`FINETUNE`: the sparser levels need longer).
    Returns ``{s: params}`` for each ``s`` of ``sparsities`` (1: the dense
    network after ``epochs`` epochs; every other level continues from the previous one; the
    :data:`PRUNED` weights of level ``s`` have at most ``32 // s`` non-zeros per bank of their
    ``[Cout, K]`` matrix)."""
    say = (lambda *a: print(*a, file=out, flush=True)) if out else (lambda *a: None)
    sparsities = sorted(sparsities)
    if sparsities[0] != 1 or any(s not in SPARSITIES for s in sparsities):
        raise ValueError(f"sparsities must start at 1 and be among {SPARSITIES}, not "
                         f"{sparsities}")
    finetune = dict(FINETUNE) if finetune is None else finetune
    rng = np.random.default_rng(seed)
    p = init_params(width, seed)
    names = list(p)
    t0 = time.perf_counter()
    _epochs(p, MaskedAdam([p[k] for k in names], lr=lr), names, x, y, epochs, rng, batch,
            _cosine(lr, lr / 20, epochs))
    say(f"  dense: {epochs} epochs, {time.perf_counter() - t0:.0f} s")
    out_p = {1: {k: v.copy() for k, v in p.items()}}
    masks = {k: np.ones_like(p[k]) for k in PRUNED}
    keep_prev = 32
    for s in sparsities[1:]:
        final = nnz_per_bank(s)
        ft = finetune.get(s, 0) if isinstance(finetune, dict) else finetune
        lrs = _cosine(lr / 2, lr / 20, steps * step_epochs + ft)
        for t in range(1, steps + 1):
            keep = max(final, int(round(final + (keep_prev - final) * (1 - t / steps) ** 3)))
            for k in PRUNED:
                m = bank_mask(_matrix(p[k] * masks[k]), keep).reshape(p[k].shape)
                masks[k] = (m & (masks[k] != 0)).astype(np.float32)
                p[k] *= masks[k]
            # a fresh optimizer: stale moments would move the newly pruned weights
            opt = MaskedAdam([p[k] for k in names], [masks.get(k) for k in names])
            _epochs(p, opt, names, x, y, step_epochs, rng, batch, lrs[:step_epochs])
            lrs = lrs[step_epochs:]
        _epochs(p, opt, names, x, y, ft, rng, batch, lrs)
        keep_prev = final
        out_p[s] = {k: v.copy() for k, v in p.items()}
        say(f"  s = {s}: {time.perf_counter() - t0:.0f} s")
    return out_p


def _cache_root() -> Path:
    return Path(os.environ.get("S4_CACHE_DIR") or Path.home() / ".cache" / "s4accel")


def train_cached(*, width=DEFAULT_WIDTH, seed=0, cache=True, out=None, **kw) -> dict:
    """:func:`train` on :func:`load_split`'s training images, the result kept under
    ``$S4_CACHE_DIR`` (default ``~/.cache/s4accel``) keyed by every argument.

    ``sparsities`` a prefix of :data:`SPARSITIES` (``(1, 2, 4)``: training stops after 4x)
    also takes those levels from a cached run that went further (the gradual schedule trains
    the levels in order, so its first levels are the prefix's)."""
    def path_of(args):
        key = {"v": CACHE_VERSION, "width": width, "seed": seed, **args}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return _cache_root() / f"cnn-w{width}-seed{seed}-{digest}.npz"

    def load(p, levels=None):
        with np.load(p) as f:
            res = {}
            for name in f.files:
                s, k = name.split("/", 1)
                if levels is None or int(s) in levels:
                    res.setdefault(int(s), {})[k] = f[name]
            return res

    path = path_of(kw)
    if cache and path.exists():
        return load(path)
    levels = tuple(sorted(kw.get("sparsities", SPARSITIES)))
    if cache and levels == SPARSITIES[:len(levels)]:
        rest = {k: v for k, v in kw.items() if k != "sparsities"}
        longer = [rest] + [{**rest, "sparsities": SPARSITIES[:n]}
                           for n in range(len(levels) + 1, len(SPARSITIES) + 1)]
        for found in map(path_of, longer):
            if found.exists():
                return load(found, set(levels))
    x_tr, y_tr, _, _ = load_split()
    res = train(x_tr, y_tr, width=width, seed=seed, out=out, **kw)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"{s}/{k}": v for s, p in res.items() for k, v in p.items()})
        tmp.replace(path)
    return res


# ---------------------------------------------------------------------------- int8 network

_gemm_raw_exact = gemm_raw_exact


@dataclass
class QuantCnn:
    """The int8 network at one sparsity; :meth:`forward_int` is the bit-exact definition."""
    width: int
    sparsity: int
    in_scale: float
    convs: dict
    adds: dict
    gap: QGap
    fc_w: np.ndarray      # int8 [10, C]: the classifier on the pooled features
    fc_packed: PackedWeights
    fc_bias: np.ndarray
    fc_scale: np.ndarray  # float [10]: raw -> logits
    stats: dict = field(default_factory=dict)

    def quantize_input(self, x) -> np.ndarray:
        """float NHWC in [0, 1] -> int8 ``round(x / in_scale)`` (round half to even)."""
        return np.clip(np.rint(np.asarray(x, np.float64) / self.in_scale), -128,
                       127).astype(np.int8)

    def forward_int(self, x_q, *, exact=True, batch=64) -> np.ndarray:
        """int32 raw classifier outputs ``[N, 10]`` of int8 NHWC images. ``exact=False`` runs
        every GEMM through :func:`s4accel.base.golden.gemm_int8` on the packed weights (slow);
        the default computes the same integers with float64 BLAS (:func:`_gemm_raw_exact`)."""
        outs = []
        for i in range(0, len(x_q), batch):
            outs.append(self._forward(x_q[i:i + batch], exact))
        return np.concatenate(outs)

    def _forward(self, x, exact, taps=None):
        c = self.convs
        h0 = c["stem"](x, exact)
        a = c["b1a"](h0, exact)
        h1 = self.adds["b1"](c["b1b"](a, exact), h0)
        d = c["s2a"](h1, exact)
        h2 = self.adds["s2"](c["s2b"](d, exact), c["s2p"](h1, exact))
        pooled = self.gap(h2)
        if taps is not None:
            taps.update(stem=h0, b1a=a, b1=h1, s2a=d, s2=h2, gap=pooled)
        if exact:
            return _gemm_raw_exact(pooled, self.fc_w, self.fc_bias)
        return golden.gemm_raw(pooled, self.fc_packed, self.fc_bias)

    def summary(self, hw=16) -> list[dict]:
        """One dict per operation in execution order: ``name``, ``op`` (``conv``, ``add``,
        ``gemm``), ``inputs``, output ``shape`` (per image, HWC), and for GEMMs ``m`` (rows
        per image), ``k``, ``n``, ``sparsity``."""
        rows, shape = [], {"x": (hw, hw, 1)}
        order = [("stem", "x"), ("b1a", "stem"), ("b1b", "b1a"), ("b1", ("b1b", "stem")),
                 ("s2a", "b1"), ("s2b", "s2a"), ("s2p", "b1"), ("s2", ("s2b", "s2p"))]
        for name, src in order:
            if name in self.adds:
                shape[name] = shape[src[0]]
                rows.append({"name": name, "op": "add", "inputs": list(src),
                             "shape": shape[name], "relu": self.adds[name].relu})
                continue
            c = self.convs[name]
            sp = c.spec
            h = golden.conv_out_size(shape[src][0], sp.k, sp.stride, sp.pad)
            shape[name] = (h, h, sp.cout)
            rows.append({"name": name, "op": "conv", "inputs": [src], "shape": shape[name],
                         "kernel": sp.k, "stride": sp.stride, "pad": sp.pad, "relu": sp.relu,
                         "m": h * h, "k": c.packed.k, "n": c.packed.n, "sparsity": c.sparsity})
        h, w, ch = shape["s2"]
        rows.append({"name": "gap", "op": "pool", "inputs": ["s2"], "shape": (ch,),
                     "pixels": h * w})
        rows.append({"name": "fc", "op": "gemm", "inputs": ["gap"], "shape": (10,), "m": 1,
                     "k": self.fc_packed.k, "n": 10, "sparsity": 1, "relu": False})
        return rows

    def logits(self, x_q, **kw) -> np.ndarray:
        """Dequantized logits of int8 images."""
        return self.forward_int(x_q, **kw).astype(np.float64) * self.fc_scale


def quantize(p, calib_x, s, *, in_scale=1 / 127) -> QuantCnn:
    """The int8 network of float parameters ``p`` (pruned to ``s`` already, or pruned here by
    magnitude) with activation scales calibrated on float NHWC images ``calib_x`` (module
    docstring)."""
    width = _width(p)
    specs = _specs(width)
    x = np.clip(np.rint(np.asarray(calib_x, np.float64) / in_scale), -128, 127).astype(np.int8)
    convs, adds, scale = {}, {}, {}

    def conv(name, h, h_scale):
        sp = specs[name]
        q, y, out_scale = quant_conv(sp, _matrix(p[name]), p[name + ".b"],
                                     s if name in PRUNED else 1, h, h_scale)
        convs[name] = q
        return y, out_scale

    def add(name, a, sa, b, sb):
        adds[name], y, sy = quant_add(a, sa, b, sb, relu=True)
        return y, sy

    h0, scale["stem"] = conv("stem", x, in_scale)
    a, sa = conv("b1a", h0, scale["stem"])
    bb, sbb = conv("b1b", a, sa)
    h1, s1 = add("b1", bb, sbb, h0, scale["stem"])
    d, sd = conv("s2a", h1, s1)
    e, se = conv("s2b", d, sd)
    pr, sp_ = conv("s2p", h1, s1)
    h2, s2 = add("s2", e, se, pr, sp_)
    gap, _, s_pool = quant_gap(h2, s2)
    fq, fc_packed, fc_bias, fc_scale = quant_weights(p["fc"], p["fc.b"], 1, s_pool)
    return QuantCnn(width, s, in_scale, convs, adds, gap, fq, fc_packed, fc_bias, fc_scale)


# ---------------------------------------------------------------------------- on the device

#: The stem's K (3 x 3 taps of one channel) is 9 of a bank's 32: its weights hold at most 9
#: non-zeros per bank, so the s = 2 format (16 a bank) stores them exactly, at half the
#: dense cycles; the stem stays mathematically dense.
STEM_FORMAT_S = 2


def device_input(q: QuantCnn, x_q) -> np.ndarray:
    """The program's input: the stem's im2col windows of the int8 images (``[N, H, W, 9]``,
    one bank a pixel). The stem's single channel makes a 3x3 window 9 values: the host hands
    them over (9 bytes a pixel) instead of a 1-channel tensor the device would pad to 32
    channels a tap (9 banks, 3.5x the stem's work)."""
    sp = q.convs["stem"].spec
    n, h, w, _ = x_q.shape
    ho = golden.conv_out_size(h, sp.k, sp.stride, sp.pad)
    wo = golden.conv_out_size(w, sp.k, sp.stride, sp.pad)
    return golden.im2col_nhwc(x_q, sp.k, sp.k, sp.stride, sp.pad).reshape(n, ho, wo, -1)


def device_ops(q: QuantCnn) -> list:
    """The network as :class:`s4accel.sw.conv.ConvOp` layers: convolutions on the device's
    on-chip windows, the residual additions as 1x1 GEMMs over both branches side by side
    (:class:`QAdd`), global average pooling as an 8x8 "convolution" over the final feature map
    (:class:`QGap`; K in NHWC order is the window's tap order) and the classifier as a 1x1
    one on the pooled features."""
    from ...sw.conv import ConvOp
    from ...sw.program import LayerParams

    def conv(name, src, packed=None, ksize=None, stride=None, pad=None):
        c = q.convs[name]
        sp = c.spec
        return ConvOp(name, src, packed or c.packed,
                      LayerParams("int8", bias=c.bias, mult=c.mult, shift=c.shift,
                                  relu=sp.relu),
                      ksize or sp.k, stride or sp.stride, sp.pad if pad is None else pad)

    def add(name, src, c):
        a = q.adds[name]
        return ConvOp(name, src, a.packed(c),
                      LayerParams("int8", bias=np.zeros(c, np.int64), mult=np.full(c, a.mult),
                                  shift=np.full(c, a.shift), relu=a.relu))
    w = q.width
    stem = q.convs["stem"]
    final = golden.conv_out_size(golden.conv_out_size(16, 3, 1, 1), 3, 2, 1)
    return [
        conv("stem", "x", pack(stem.w_q, STEM_FORMAT_S), ksize=1, stride=1, pad=0),
        conv("b1a", "stem"), conv("b1b", "b1a"), add("b1", ("b1b", "stem"), w),
        conv("s2a", "b1"), conv("s2b", "s2a"), conv("s2p", "b1"),
        add("s2", ("s2b", "s2p"), 2 * w),
        ConvOp("gap", "s2", QGap.packed(final * final, 2 * w),
               LayerParams("int8", bias=np.zeros(2 * w, np.int64),
                           mult=np.full(2 * w, q.gap.mult), shift=np.full(2 * w, q.gap.shift)),
               final, 1, 0),
        ConvOp("fc", "gap", q.fc_packed, LayerParams("raw", bias=q.fc_bias), 1, 1, 0),
    ]


def device_program(q: QuantCnn, x_q, info, alloc, *, encode=None):
    """The whole network on int8 images ``x_q [N, 16, 16, 1]`` as one device program
    (:func:`s4accel.sw.conv.network_program`); its output decodes (with
    :func:`device_logits`) to :meth:`QuantCnn.forward_int`'s raw classifier outputs."""
    from ...sw.conv import network_program
    return network_program(info, device_input(q, x_q), device_ops(q), alloc, encode=encode)


def device_logits(y2, n, rows) -> np.ndarray:
    """The program's decoded output -> raw classifier outputs ``[n, 10]`` (int32)."""
    from ...sw.conv import rows_nhwc
    return rows_nhwc(y2, n, 1, 1, rows).reshape(n, -1)


def export_onnx(p, *, opset=17, input_name="x", output_name="logits", batch="batch"):
    """The float network ``p`` as an ONNX model (``onnx.ModelProto``): input NCHW
    ``[batch, 1, 16, 16]`` (ONNX's ``Conv`` layout: transpose :func:`load_split`'s NHWC images
    with ``x.transpose(0, 3, 1, 2)``), output logits ``[batch, 10]``; ``Conv`` (weights
    ``[Cout, Cin, kh, kw]``), ``Relu``, ``Add``, ``GlobalAveragePool``, ``Flatten``, ``Gemm``."""
    from onnx import TensorProto, helper, numpy_helper

    width = _width(p)
    specs = _specs(width)
    nodes, inits = [], []

    def conv(name, src):
        sp = specs[name]
        w = np.ascontiguousarray(p[name].transpose(0, 3, 1, 2), dtype=np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}.weight"))
        inits.append(numpy_helper.from_array(p[name + ".b"].astype(np.float32), f"{name}.bias"))
        nodes.append(helper.make_node("Conv", [src, f"{name}.weight", f"{name}.bias"], [name],
                                      name=name, kernel_shape=[sp.k, sp.k],
                                      strides=[sp.stride] * 2, pads=[sp.pad] * 4))
        if sp.relu:
            nodes.append(helper.make_node("Relu", [name], [name + ".relu"], name=name + ".relu"))
            return name + ".relu"
        return name

    def add_relu(name, a, b):
        nodes.append(helper.make_node("Add", [a, b], [name + ".add"], name=name + ".add"))
        nodes.append(helper.make_node("Relu", [name + ".add"], [name], name=name + ".relu"))
        return name

    h0 = conv("stem", input_name)
    h1 = add_relu("b1", conv("b1b", conv("b1a", h0)), h0)
    h2 = add_relu("s2", conv("s2b", conv("s2a", h1)), conv("s2p", h1))
    nodes.append(helper.make_node("GlobalAveragePool", [h2], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1))
    inits.append(numpy_helper.from_array(p["fc"].astype(np.float32), "fc.weight"))
    inits.append(numpy_helper.from_array(p["fc.b"].astype(np.float32), "fc.bias"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], [output_name],
                                  name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "s4_digits_cnn",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 1, 16, 16])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="s4accel")
    model.ir_version = 8     # what onnxruntime releases since 1.10 read
    return model


def macs_per_image(q: QuantCnn, hw=16) -> dict:
    """Dense MACs per image of ``q`` and the sparse ones (each convolution's dense MACs over its
    sparsity; the classifier as its folded GEMM, dense)."""
    dense = sparse = 0
    size = {"stem": hw, "b1a": hw, "b1b": hw, "s2a": hw, "s2b": hw // 2, "s2p": hw}
    for name, c in q.convs.items():
        sp = c.spec
        o = golden.conv_out_size(size[name], sp.k, sp.stride, sp.pad) ** 2
        dense += o * c.w_q.size
        sparse += o * c.w_q.size // c.sparsity
    fc = q.fc_w.size
    return {"dense_macs": dense + fc, "sparse_macs": sparse + fc}   # (pooling: additions)


def accuracy(logits, y) -> float:
    return float((np.argmax(logits, axis=1) == y).mean())


def accuracy_table(*, width=DEFAULT_WIDTH, seeds=(0, 1, 2), calib=256, out=None, **kw):
    """Float and int8 accuracy on the 449 test images at every sparsity, per seed and their
    mean, with MACs per image. Rows: ``seed``, ``sparsity``, ``acc_float``, ``acc_int8``,
    ``dense_macs``, ``sparse_macs``, ``agree`` (int8 and float top-1 agree)."""
    say = (lambda *a: print(*a, file=out, flush=True)) if out else (lambda *a: None)
    x_tr, _, x_te, y_te = load_split()
    rows = []
    for seed in seeds:
        say(f"seed {seed} (width {width})")
        res = train_cached(width=width, seed=seed, out=out, **kw)
        for s, p in sorted(res.items()):
            q = quantize(p, x_tr[:calib], s)
            zf = logits_batched(p, x_te)
            zq = q.logits(q.quantize_input(x_te))
            row = {"seed": seed, "sparsity": s, "acc_float": accuracy(zf, y_te),
                   "acc_int8": accuracy(zq, y_te),
                   "agree": float((zf.argmax(1) == zq.argmax(1)).mean()), **macs_per_image(q)}
            rows.append(row)
            say(f"  s = {s:>2}: float {row['acc_float']:.4f}  int8 {row['acc_int8']:.4f}  "
                f"agree {row['agree']:.4f}")
    return rows


def format_accuracy_table(rows) -> str:
    """Mean over seeds per sparsity, with the difference to dense in points."""
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"CNN on digits 16x16, 449 test images, mean of {len(seeds)} seed(s) "
             f"{seeds}; stem and classifier dense",
             f"{'s':>3} {'float':>8} {'int8':>8} {'d int8':>7} {'agree':>7} "
             f"{'dense MACs':>11} {'sparse MACs':>12} {'ratio':>6}"]
    dense = None
    for s in sorted({r["sparsity"] for r in rows}):
        rs = [r for r in rows if r["sparsity"] == s]
        f = np.mean([r["acc_float"] for r in rs])
        i = np.mean([r["acc_int8"] for r in rs])
        a = np.mean([r["agree"] for r in rs])
        dense = i if dense is None else dense
        lines.append(f"{s:>3} {f:>8.4f} {i:>8.4f} {(i - dense) * 100:>+7.2f} {a:>7.4f} "
                     f"{rs[0]['dense_macs']:>11,} {rs[0]['sparse_macs']:>12,} "
                     f"{rs[0]['dense_macs'] / rs[0]['sparse_macs']:>6.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(format_accuracy_table(accuracy_table(out=sys.stdout)))
