"""Whole transformer encoder layers on the device (issue 22): the integer definition of a
post-LN (BERT) encoder layer, its compiler (scales from calibration, weights quantized and
packed, every nonlinear operation folded into device parameters) and its device program.

A layer on int8 ``x [L, D]`` (scale ``s_x``; ``H`` heads of ``d = D / H``), every step an
operation of the device and its golden function (:meth:`IntEncoderLayer.reference`):

1. ``q, k, v = gemm_int8(x, W)``: three GEMMs, per output channel requantized to int8 at one
   scale per head (the tensor core's requantizer);
2. per head ``h``: :func:`~s4accel.base.vector.attention` (Q K^T on the tensor core after a
   TO_WGT of K, the 7-bit integer SOFTMAX, P V after a TO_WGT of V), the context int8 at a
   scale per head;
3. ``a = gemm_int8(ctx, Wo')``: the attention output (the heads' context scales folded into
   ``Wo``'s input columns before it is quantized);
4. ``r1 = residual_add(x, a, out_bits=16)`` (ADD VOP, a 16-bit residual sum);
5. ``h1 = layernorm(r1)`` (LAYERNORM VOP: gamma, beta and the output scale folded into its
   per-channel parameters);
6. ``g = gemm_int8(h1, W1, lut=gelu_lut)``: FFN up with GELU through the requantizer's
   256-entry table;
7. ``f = gemm_int8(g, W2)``: FFN down;
8. ``r2 = residual_add(h1, f, out_bits=16)``, ``y = layernorm(r2)``: the layer's int8 output,
   the next layer's input.

Every scale is per tensor (per head for Q, K, V and the context) and comes from the float
model's activations over calibration inputs (:func:`calibrate`: the largest magnitude of each
tensor, or a high percentile where noted in :data:`CLIP`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base import golden
from ..base import vector as V
from ..base.config import BANK
from ..base.sparse import PackedWeights, pack, prune
from .compiler import _w_quant, requant_params

__all__ = ["FloatEncoderLayer", "float_layer", "calibrate", "IntEncoderLayer",
           "compile_layer", "CLIP"]


@dataclass
class FloatEncoderLayer:
    """The float weights of one post-LN encoder layer (``W [N, K]`` as ``y = x W^T + b``)."""
    heads: int
    wq: np.ndarray
    bq: np.ndarray
    wk: np.ndarray
    bk: np.ndarray
    wv: np.ndarray
    bv: np.ndarray
    wo: np.ndarray
    bo: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray
    eps: float = 1e-12

    @property
    def hidden(self) -> int:
        return self.wq.shape[1]


def _ln(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x):
    from math import erf, sqrt
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


def float_layer(w: FloatEncoderLayer, x, observe=None) -> np.ndarray:
    """The float encoder layer on one sequence ``x [L, D]`` (float64); ``observe(name, t)``
    sees every intermediate tensor (names as :data:`TENSORS`; per head ``q``, ``k``, ``v``,
    ``ctx`` are ``[H, L, d]`` and ``scores`` ``[H, L, L]``)."""
    obs = observe or (lambda name, t: None)
    x = np.asarray(x, dtype=np.float64)
    L, D = x.shape
    H = w.heads
    d = D // H
    obs("x", x)
    heads = []
    for name, wt, b in (("q", w.wq, w.bq), ("k", w.wk, w.bk), ("v", w.wv, w.bv)):
        t = (x @ wt.T + b).reshape(L, H, d).transpose(1, 0, 2)
        obs(name, t)
        heads.append(t)
    q, k, v = heads
    sc = q @ k.transpose(0, 2, 1) / np.sqrt(d)
    obs("scores", sc)
    e = np.exp(sc - sc.max(-1, keepdims=True))
    ctx = (e / e.sum(-1, keepdims=True)) @ v
    obs("ctx", ctx)
    a = ctx.transpose(1, 0, 2).reshape(L, D) @ w.wo.T + w.bo
    obs("attn", a)
    r1 = x + a
    obs("r1", r1)
    h1 = _ln(r1, w.ln1_g, w.ln1_b, w.eps)
    obs("h1", h1)
    u = h1 @ w.w1.T + w.b1
    obs("up", u)
    g = _gelu(u)
    obs("gelu", g)
    f = g @ w.w2.T + w.b2
    obs("down", f)
    r2 = h1 + f
    obs("r2", r2)
    y = _ln(r2, w.ln2_g, w.ln2_b, w.eps)
    obs("y", y)
    return y


#: The tensors :func:`calibrate` measures; per head: ``q``, ``k``, ``v``, ``scores``, ``ctx``.
TENSORS = ("x", "q", "k", "v", "scores", "ctx", "attn", "r1", "h1", "up", "gelu", "down",
           "r2", "y")
PER_HEAD = ("q", "k", "v", "scores", "ctx")
#: Percentile of ``|t|`` a tensor's scale covers (100: the largest value); the rest saturate.
CLIP = {"up": 100.0}
#: The tensors with a scale per channel (the others: one per tensor, per head for Q, K, V).
PER_CHANNEL = set()


def calibrate(w: FloatEncoderLayer, xs) -> dict:
    """Ranges of the float layer over calibration sequences ``xs`` (a list of ``[L, D]``):
    ``{name: float}`` (``{name: [H]}`` for the per-head tensors), the largest magnitude (or
    :data:`CLIP`'s percentile) over all of them."""
    seen = {}

    def observe(name, t):
        a = np.abs(t)
        if name in PER_HEAD:
            v = a.reshape(a.shape[0], -1)
        elif name in PER_CHANNEL:
            v = a.reshape(-1, a.shape[-1]).T
        else:
            v = a.reshape(1, -1)
        seen.setdefault(name, []).append(v)

    for x in xs:
        float_layer(w, x, observe)
    out = {}
    for name, vs in seen.items():
        v = np.concatenate(vs, axis=1)
        r = np.percentile(v, CLIP.get(name, 100.0), axis=1)
        r = np.maximum(r, 1e-6)
        out[name] = r if name in PER_HEAD or name in PER_CHANNEL else float(r[0])
    return out


@dataclass
class _Linear:
    packed: PackedWeights
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    lut: np.ndarray | None = None

    def __call__(self, x):
        return golden.gemm_int8(x, self.packed, self.bias, self.mult, self.shift, lut=self.lut)


@dataclass
class IntEncoderLayer:
    """A compiled encoder layer (:func:`compile_layer`): packed int8 weights and every
    integer parameter; :meth:`reference` is its definition."""
    heads: int
    sparsity: int
    scales: dict
    q: _Linear
    k: _Linear
    v: _Linear
    o: _Linear
    up: _Linear
    down: _Linear
    att: list
    add1: tuple
    ln1: V.LayerNormParams
    add2: tuple
    ln2: V.LayerNormParams
    extra: dict = field(default_factory=dict)

    @property
    def hidden(self) -> int:
        return self.q.packed.k

    @property
    def in_scale(self) -> float:
        return self.scales["x"]

    @property
    def out_scale(self) -> float:
        return self.scales["y"]

    def reference(self, x, mask_n=0, keep=None) -> np.ndarray:
        """The layer on int8 ``x [L, D]`` (module docstring): int8 ``[L, D]`` at
        :attr:`out_scale`. ``mask_n`` (0: all): only the first ``mask_n`` tokens are keys
        (a padded sequence). ``keep`` (a dict) receives every intermediate int tensor."""
        x = np.asarray(x)
        if x.dtype != np.int8 or x.ndim != 2 or x.shape[1] != self.hidden:
            raise ValueError(f"x must be int8 [L, {self.hidden}], not {x.dtype} {x.shape}")
        kp = keep if keep is not None else {}
        L, D = x.shape
        H = self.heads
        d = D // H
        q, k, v = (f(x).reshape(L, H, d).transpose(1, 0, 2) for f in (self.q, self.k, self.v))
        ctx = np.concatenate([V.attention(q[h], k[h], v[h], self.att[h], mask_n)
                              for h in range(H)], axis=1)
        a = self.o(ctx)
        r1 = V.residual_add(x, a, *self.add1, out_bits=16)
        h1 = V.layernorm(r1, self.ln1)
        g = self.up(h1)
        f = self.down(g)
        r2 = V.residual_add(h1, f, *self.add2, out_bits=16)
        y = V.layernorm(r2, self.ln2)
        kp.update(q=q, k=k, v=v, ctx=ctx, attn=a, r1=r1, h1=h1, gelu=g, down=f, r2=r2, y=y)
        return y


def _linear(wf, b, in_scale, out_scale, s, lut=None, col_scale=None) -> _Linear:
    """Quantize float ``wf [N, K]`` per output channel and prune it bank-balanced to ``s``.
    ``in_scale``: the int8 input's scale, one or one an input channel (then folded into the
    weights' columns, as ``col_scale`` is); ``out_scale``: one or one an output channel."""
    wf = np.asarray(wf, dtype=np.float64)
    if np.ndim(in_scale):
        col_scale = np.asarray(in_scale) * (1.0 if col_scale is None else col_scale)
        in_scale = 1.0
    if col_scale is not None:
        wf = wf * np.asarray(col_scale)[None, :]
    w_q, w_scale = _w_quant(prune(wf, s))
    packed = pack(prune(w_q, s), s)
    acc_scale = in_scale * w_scale
    bias = np.clip(np.round(np.asarray(b) / acc_scale), -(1 << 31), (1 << 31) - 1).astype(
        np.int64)
    mult, shift = requant_params(acc_scale / np.broadcast_to(out_scale, acc_scale.shape))
    return _Linear(packed, bias, mult, shift, lut)


def residual_params(a_scale, b_scale, out_scale, n):
    """:func:`~s4accel.base.vector.residual_params` per channel (``a_scale``, ``b_scale``
    one or one a channel): ``(a_mult [n], b_mult [n], shift [n])``."""
    a = np.broadcast_to(np.asarray(a_scale, dtype=np.float64), (n,))
    b = np.broadcast_to(np.asarray(b_scale, dtype=np.float64), (n,))
    ps = [V.residual_params(x, y, out_scale) for x, y in zip(a, b)]
    return tuple(np.array([p[i] for p in ps], dtype=np.int64) for i in range(3))


def compile_layer(w: FloatEncoderLayer, ranges: dict, sparsity: int = 1, *,
                  in_scale=None) -> IntEncoderLayer:
    """Compile the float layer ``w`` at ``sparsity`` (its weights pruned bank-balanced by
    magnitude unless already) with the scales of :func:`calibrate`'s ``ranges``;
    ``in_scale`` (default ``ranges["x"] / 127``) is the int8 input's (the previous layer's
    output scale)."""
    D, H = w.hidden, w.heads
    if D % H:
        raise ValueError(f"{H} heads do not divide the hidden size {D}")
    d = D // H
    sc = {n: np.asarray(r) / 127.0 for n, r in ranges.items()}
    if in_scale is not None:
        sc["x"] = in_scale
    for n in ("r1", "r2"):
        sc[n] = float(ranges[n]) / 32767.0
    per_ch = {n: np.repeat(sc[n], d) for n in ("q", "k", "v", "ctx")}
    q = _linear(w.wq, w.bq, sc["x"], per_ch["q"], sparsity)
    k = _linear(w.wk, w.bk, sc["x"], per_ch["k"], sparsity)
    v = _linear(w.wv, w.bv, sc["x"], per_ch["v"], sparsity)
    att = [V.attention_params(sc["q"][h], sc["k"][h], sc["v"][h], sc["scores"][h],
                              sc["ctx"][h], d) for h in range(H)]
    o = _linear(w.wo, w.bo, 1.0, sc["attn"], sparsity, col_scale=per_ch["ctx"])
    add1 = residual_params(sc["x"], sc["attn"], sc["r1"], D)
    ln1 = V.layernorm_params(sc["r1"], w.ln1_g, w.ln1_b, sc["h1"], eps=w.eps, bias_bits=40)
    lut = V.gelu_lut(sc["up"], sc["gelu"])
    up = _linear(w.w1, w.b1, sc["h1"], sc["up"], sparsity, lut=lut)
    down = _linear(w.w2, w.b2, sc["gelu"], sc["down"], sparsity)
    add2 = residual_params(sc["h1"], sc["down"], sc["r2"], D)
    ln2 = V.layernorm_params(sc["r2"], w.ln2_g, w.ln2_b, sc["y"], eps=w.eps, bias_bits=40)
    scales = {n: (np.asarray(v).tolist() if np.ndim(v) else float(v)) for n, v in sc.items()}
    return IntEncoderLayer(H, sparsity, scales, q, k, v, o, up, down, att, add1, ln1, add2,
                           ln2)
