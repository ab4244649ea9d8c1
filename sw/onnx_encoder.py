"""ONNX import of transformer encoders: a graph that is a stack of post-LN (BERT, MiniLM)
encoder layers on one input ``[batch, seq, hidden]`` read into
:class:`~.encoder.FloatEncoderLayer` s (:func:`import_encoder`, reached through
:func:`~.onnx_import.import_onnx`), compiled by :func:`~.encoder.compile_stack`.

A layer is matched by following the data from its input ``x``, as PyTorch and Hugging Face
exports spell it:

- three ``MatMul`` s of ``x`` by constant ``[D, D]`` weights (each with an optional ``Add``
  of a constant bias): Q, K and V, told apart by where they go;
- each ``Reshape`` d to ``[batch, seq, heads, head_dim]`` and ``Transpose`` d (one or more
  ``Transpose`` s) to ``[batch, heads, seq, head_dim]`` (K to ``[batch, heads, head_dim,
  seq]``), optionally scaled by a scalar ``Mul`` / ``Div``;
- ``MatMul`` of Q and K^T, optionally scaled by a scalar ``Div`` or ``Mul`` (any factor: it
  is folded into Q's weights), an optional ``Add`` of an all-zero constant mask, ``Softmax``
  over the last axis, ``MatMul`` with V, ``Transpose`` back and ``Reshape`` to ``[batch,
  seq, D]``;
- the attention output ``MatMul`` (+ bias), the residual ``Add`` of ``x``, a LayerNorm;
- FFN up (+ bias), GELU, FFN down (+ bias), the residual ``Add`` of the first LayerNorm's
  output and the second LayerNorm: the layer's output, the next layer's input or the graph's
  output.

A LayerNorm is ``LayerNormalization`` over the last axis (opset 17+) or its decomposition
(``ReduceMean``, ``Sub``, ``Pow``, ``ReduceMean``, ``Add`` of epsilon, ``Sqrt``, ``Div``,
``Mul`` by gamma, ``Add`` of beta); a GELU is ``Gelu`` (opset 20, ``approximate = none``) or
``x * 0.5 * (1 + Erf(x / sqrt(2)))`` in any order of its operands. Both are recognized as the
nodes (of those operator types) between their input and output and checked by evaluating
them: what does not compute the exact function is refused. ``Identity`` and ``Dropout``
(inference) pass through; ``Shape`` nodes (of dynamic-shape exports) are ignored, a
``Reshape``'s computed target shape comes from ONNX shape inference.

Anything else is an :class:`~.onnx_import.OnnxImportError` naming the first node that breaks
the pattern and its op type. The sequence length is fixed by the graph or ``input_shape``; the
batch dimension is 1 or dynamic (each sequence is one device program).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .encoder import FloatEncoderLayer
from .onnx_import import ImportedLayers, OnnxImportError

__all__ = ["ImportedEncoder", "import_encoder", "is_encoder_graph"]

#: Operators a LayerNorm or GELU region may be made of.
_REGION_OPS = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "ReduceMean",
               "LayerNormalization", "Gelu"}
#: Operators whose outputs carry shapes, not data: ignored where they read a tensor.
_SHAPE_OPS = {"Shape", "Size"}


def is_encoder_graph(g, rank) -> bool:
    """A 3-D input, a ``Softmax`` and a LayerNorm (``LayerNormalization`` or a
    ``ReduceMean``): the graph is read as an encoder."""
    ops = {n.op_type for n in g.node}
    return rank == 3 and "Softmax" in ops and bool(ops & {"LayerNormalization", "ReduceMean"})


@dataclass
class ImportedEncoder(ImportedLayers):
    """Encoder layers (``layers``: :class:`~.encoder.FloatEncoderLayer`) read from an ONNX
    graph (:class:`~.onnx_import.ImportedLayers`; ``input_shape`` is ``(1, seq, hidden)``)."""

    @property
    def seq(self) -> int:
        return self.input_shape[1]

    def host_input(self, x) -> np.ndarray:
        """``[B, seq, hidden]`` (or one ``[seq, hidden]``) -> float64 ``[B, seq, hidden]``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or tuple(x.shape[1:]) != tuple(self.input_shape[1:]):
            raise ValueError(f"input {self.input_name!r} must have shape [B, "
                             f"{', '.join(map(str, self.input_shape[1:]))}], not "
                             f"{list(x.shape)}")
        return x


def _err(*a, **k):
    return OnnxImportError(*a, **k)


class _Graph:
    """The graph's nodes with their producers and consumers; ``Identity`` and ``Dropout``
    resolved away, ``Constant`` s folded into ``consts``."""

    def __init__(self, g, consts, inferred):
        from .onnx_import import _attr, _constant
        self.consts = dict(consts)
        self.inferred = inferred
        self.alias = {}
        self.nodes = []            # (index, node, inputs resolved)
        for idx, node in enumerate(g.node):
            if node.domain not in ("", "ai.onnx"):
                raise self.refuse(idx, node, f"operator domain {node.domain!r} is not "
                                  "supported")
            if node.op_type == "Constant":
                self.consts[node.output[0]] = _constant(node, idx)
                continue
            if node.op_type in ("Identity", "Dropout"):
                attrs = {a.name: _attr(a) for a in node.attribute}
                if node.op_type == "Dropout" and (
                        attrs.get("training_mode") or (len(node.input) > 2 and node.input[2]
                                                       and self.consts.get(node.input[2],
                                                                           0) != 0)
                        or (len(node.output) > 1 and node.output[1])):
                    raise self.refuse(idx, node, "only inference Dropout (no training mode, "
                                      "no mask output) is supported")
                self.alias[node.output[0]] = self.name(node.input[0])
                continue
        self.users = {}
        self.producer = {}
        for idx, node in enumerate(g.node):
            if node.op_type in ("Constant", "Identity", "Dropout"):
                continue
            ins = [self.name(a) if a else "" for a in node.input]
            self.nodes.append((idx, node, ins))
            for o in node.output:
                self.producer[o] = (idx, node, ins)
            if node.op_type in _SHAPE_OPS:
                continue
            for a in ins:
                if a and a not in self.consts:
                    self.users.setdefault(a, []).append((idx, node, ins))
        self.output = self.name(g.output[0].name)

    def name(self, t):
        while t in self.alias:
            t = self.alias[t]
        return t

    @staticmethod
    def refuse(idx, node, why):
        from .onnx_import import _refuse
        return _refuse(node, idx, why)

    def users_of(self, t):
        return self.users.get(t, [])

    def acts(self, ins):
        return [a for a in ins if a and a not in self.consts]

    def single_user(self, t, expect):
        """The one node reading ``t`` (``expect``: what the pattern wants there)."""
        users = self.users_of(t)
        if t == self.output:
            raise _err(f"the graph's output {t!r} comes where the pattern expects {expect}")
        if not users:
            raise _err(f"tensor {t!r} is not read where the pattern expects {expect}")
        if len(users) > 1:
            idx, node, _ = users[1]
            raise self.refuse(idx, node, f"reads {t!r}, which only {expect} should read")
        return users[0]

    def scalar(self, a):
        c = self.consts.get(a)
        return None if c is None or c.size != 1 else float(c.reshape(-1)[0])


def _attrs(node):
    from .onnx_import import _attr
    return {a.name: _attr(a) for a in node.attribute}


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


# ---------------------------------------------------------------------------- the pattern

def _linear(G, user, k, what):
    """``user``: a ``MatMul`` of an activation by a constant ``[k, n]``, and its optional
    bias ``Add``: ``(W [n, k], b [n], output tensor)``."""
    from .onnx_import import _bias, _check_finite
    idx, node, ins = user
    if node.op_type != "MatMul":
        raise G.refuse(idx, node, f"expected the MatMul of {what}")
    w = G.consts.get(ins[1]) if len(ins) > 1 else None
    if w is None or w.ndim != 2 or w.shape[0] != k or G.acts(ins) != [ins[0]]:
        raise G.refuse(idx, node, f"{what}: the weight must be the constant second operand "
                       f"of shape [{k}, N]")
    n = w.shape[1]
    out = node.output[0]
    b = np.zeros(n)
    nxt = G.users_of(out)
    if len(nxt) == 1 and nxt[0][1].op_type == "Add" and len(G.acts(nxt[0][2])) == 1 \
            and out != G.output:
        bidx, bnode, bins = nxt[0]
        c = [a for a in bins if a in G.consts][0]
        b = _bias(bnode, bidx, G.consts[c], n)
        out = bnode.output[0]
    _check_finite(node, idx, w, b)
    return w.T.copy(), b, out


def _target_shape(G, user, shape):
    """A ``Reshape`` 's output shape for input ``shape``."""
    from .onnx_import import _reshaped
    idx, node, ins = user
    if ins[1] in G.consts:
        return _reshaped(node, idx, "Reshape", _attrs(node), ins, G.consts, list(shape))
    got = G.inferred.get(node.output[0])
    if got is None:
        raise G.refuse(idx, node, "its target shape is computed and ONNX shape inference "
                       "cannot tell it: export with static shapes")
    return list(got)


def _scale(G, user, t):
    """A ``Mul`` / ``Div`` of ``t`` by a scalar constant: its factor, else None."""
    idx, node, ins = user
    if node.op_type not in ("Mul", "Div") or G.acts(ins) != [t]:
        return None
    c = [a for a in ins if a != t]
    v = G.scalar(c[0]) if c else None
    if v is None or (node.op_type == "Div" and ins[0] != t) or v == 0 or not math.isfinite(v):
        return None
    return v if node.op_type == "Mul" else 1.0 / v


def _heads(G, t, shape):
    """Q, K or V from its projection ``t`` ``[B, L, D]``: ``Reshape`` into heads,
    ``Transpose`` s and scalar factors up to the node that joins it with another tensor.
    Returns ``(heads, perm, factor, tensor, joining node)``."""
    B, L, D = shape
    user = G.single_user(t, "a Reshape into heads")
    idx, node, ins = user
    if node.op_type != "Reshape":
        raise G.refuse(idx, node, "expected a Reshape into heads [batch, seq, heads, "
                       "head_dim]")
    new = _target_shape(G, user, shape)
    if len(new) != 4 or new[:2] != [B, L] or new[2] * new[3] != D:
        raise G.refuse(idx, node, f"reshapes {list(shape)} to {new}, not into heads "
                       f"[{B}, {L}, heads, head_dim]")
    heads = new[2]
    t = node.output[0]
    perm, factor = [0, 1, 2, 3], 1.0
    while True:
        user = G.single_user(t, "the attention")
        idx, node, ins = user
        if node.op_type == "Transpose":
            p = list(_attrs(node).get("perm", [3, 2, 1, 0]))
            perm = [perm[i] for i in p]
            t = node.output[0]
            continue
        f = _scale(G, user, t)
        if f is None:
            break
        factor *= f
        t = node.output[0]
    if perm not in ([0, 2, 1, 3], [0, 2, 3, 1]):
        raise G.refuse(idx, node, f"its input is the heads permuted {perm}, not [0, 2, 1, 3] "
                       "or (K transposed) [0, 2, 3, 1]")
    return heads, perm, factor, t, user


def _region(G, t, what):
    """The nodes of :data:`_REGION_OPS` computing from ``t`` alone up to one output tensor
    (a LayerNorm or a GELU): ``(nodes, output)``."""
    have, nodes, seen = {t}, [], set()
    grew = True
    while grew:
        grew = False
        for a in list(have):
            for user in G.users_of(a):
                idx, node, ins = user
                if idx in seen or node.op_type not in _REGION_OPS:
                    continue
                if all(x in have for x in G.acts(ins)):
                    seen.add(idx)
                    nodes.append(user)
                    have.update(o for o in node.output if o)
                    grew = True
    if not nodes:
        idx, node, _ = G.single_user(t, what)
        raise G.refuse(idx, node, f"expected {what}")
    outside = []
    for a in sorted(have, key=lambda a: G.producer.get(a, (-1,))[0]):
        for user in G.users_of(a):
            if user[0] not in seen:
                outside.append((a, user))
    outs = sorted({a for a, _ in outside} | ({G.output} & have))
    if t in outs or len(outs) != 1:
        bad = sorted((u for _, u in outside), key=lambda u: (u[1].op_type in _REGION_OPS,
                                                             u[0]))
        if bad:
            idx, node, _ = bad[0]
            raise G.refuse(idx, node, f"breaks {what} (it reads one of its intermediate "
                           "tensors)")
        raise _err(f"{what} after {t!r} has no single output")
    return nodes, outs[0]


def _eval_region(G, nodes, t, z):
    from math import erf
    vals = {t: z}

    def get(a):
        return vals[a] if a in vals else G.consts[a]
    for idx, node, ins in nodes:
        op = node.op_type
        a = _attrs(node)
        xs = [get(x) for x in ins if x]
        if op in ("Add", "Sub", "Mul", "Div", "Pow"):
            y = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
                 "Pow": np.power}[op](xs[0], xs[1])
        elif op == "Sqrt":
            y = np.sqrt(xs[0])
        elif op == "Erf":
            y = np.vectorize(erf)(xs[0])
        elif op == "ReduceMean":
            axes = a.get("axes")
            if axes is None and len(xs) > 1:
                axes = [int(v) for v in np.asarray(xs[1]).reshape(-1)]
            axes = tuple(axes) if axes is not None else None
            y = np.mean(xs[0], axis=axes, keepdims=bool(a.get("keepdims", 1)))
        elif op == "LayerNormalization":
            axis = a.get("axis", -1)
            if axis not in (-1, xs[0].ndim - 1):
                raise G.refuse(idx, node, f"axis {axis}: only the last axis is supported")
            if any(o for o in node.output[1:] if G.users_of(o) or o == G.output):
                raise G.refuse(idx, node, "the Mean and InvStdDev outputs are not supported")
            x = xs[0]
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            y = (x - mu) / np.sqrt(var + a.get("epsilon", 1e-5)) * xs[1]
            if len(xs) > 2:
                y = y + xs[2]
        else:   # Gelu
            if _text(a.get("approximate", "none")) == "tanh":
                y = 0.5 * xs[0] * (1 + np.tanh(math.sqrt(2 / math.pi)
                                               * (xs[0] + 0.044715 * xs[0] ** 3)))
            else:
                y = 0.5 * xs[0] * (1 + np.vectorize(erf)(xs[0] / math.sqrt(2)))
        vals[node.output[0]] = np.asarray(y, np.float64)
    return vals


def _layernorm(G, t, shape):
    """The LayerNorm after the residual sum ``t``: ``(gamma, beta, eps, output, last node)``."""
    from .encoder import _ln
    D = shape[-1]
    nodes, out = _region(G, t, "a LayerNorm (LayerNormalization, or its decomposition)")
    last = G.producer[out]
    ln = [n for n in nodes if n[1].op_type == "LayerNormalization"]
    if len(nodes) == 1 and ln:
        idx, node, ins = ln[0]
        g = G.consts.get(ins[1])
        b = G.consts.get(ins[2]) if len(ins) > 2 and ins[2] else np.zeros(D)
        if g is None or b is None or g.size != D or b.size != D:
            raise G.refuse(idx, node, f"scale and B must be constants of {D} values")
        gamma, beta = g.reshape(D), b.reshape(D)
        eps = float(_attrs(node).get("epsilon", 1e-5))
    else:
        gamma, beta, eps = np.ones(D), np.zeros(D), None
        for _, node, ins in nodes:
            cs = [G.consts[a] for a in ins if a in G.consts]
            if node.op_type == "Mul" and cs and cs[0].size == D:
                gamma = cs[0].reshape(D)
            elif node.op_type == "Add" and cs and cs[0].size == D:
                beta = cs[0].reshape(D)
            elif node.op_type == "Add" and cs and cs[0].size == 1 and any(
                    G.producer.get(a, (0, None))[1] is not None
                    and G.producer[a][1].op_type == "ReduceMean" for a in G.acts(ins)):
                eps = float(cs[0].reshape(-1)[0])
        if eps is None:
            raise G.refuse(last[0], last[1], "a LayerNorm without an epsilon Add after the "
                           "variance's ReduceMean")
    z = np.random.default_rng(0).normal(0.5, 3.0, (1, 8, D))
    got = _eval_region(G, nodes, t, z)[out]
    want = _ln(z, gamma, beta, eps)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=1e-6):
        raise G.refuse(last[0], last[1], "these nodes do not compute a LayerNorm over the "
                       "last axis")
    return gamma, beta, eps, out, last


def _gelu(G, t):
    """The GELU of ``t``: its output tensor."""
    from .encoder import _gelu as exact
    nodes, out = _region(G, t, "a GELU (Gelu, or x * 0.5 * (1 + Erf(x / sqrt(2))))")
    z = np.linspace(-8, 8, 257).reshape(1, 1, -1)
    got = _eval_region(G, nodes, t, z)[out]
    if got.shape != z.shape or not np.allclose(got, exact(z), rtol=1e-6, atol=1e-6):
        idx, node, _ = G.producer[out]
        raise G.refuse(idx, node, "these nodes do not compute the exact (erf) GELU")
    return out


def _layer(G, x, shape):
    """One encoder layer from its input ``x``: ``(FloatEncoderLayer, output tensor)``."""
    B, L, D = shape
    users = G.users_of(x)
    if x == G.output:
        raise _err(f"tensor {x!r} is the graph's output where an encoder layer should begin")
    for idx, node, _ in users:
        if node.op_type not in ("MatMul", "Add"):
            raise G.refuse(idx, node, "expected the layer's Q, K, V MatMuls and its "
                           "residual Add")
    mms = [u for u in users if u[1].op_type == "MatMul"]
    if len(mms) != 3 or len(users) != 4:
        raise _err(f"tensor {x!r} is read by {len(mms)} MatMuls and {len(users) - len(mms)} "
                   "Adds; an encoder layer's input by three (Q, K, V) and one (the residual)")
    branches = []
    for u in mms:
        w, b, t = _linear(G, u, D, "Q, K or V")
        if w.shape[0] != D:
            raise G.refuse(u[0], u[1], f"a projection to {w.shape[0]} channels, not {D}")
        branches.append((w, b, u) + _heads(G, t, shape))
    for br in branches:
        idx, node, ins = br[-1]
        if node.op_type != "MatMul":
            raise G.refuse(idx, node, "expected an attention MatMul (Q K^T or P V)")
    score_idx = {br[-1][0] for br in branches if br[4] == [0, 2, 3, 1]}
    if len(score_idx) != 1:
        idx, node, _ = branches[0][-1]
        raise G.refuse(idx, node, "expected one MatMul of Q by K transposed")
    s_idx = score_idx.pop()
    on_s = [br for br in branches if br[-1][0] == s_idx]
    if len(on_s) != 2:
        idx, node, _ = on_s[0][-1]
        raise G.refuse(idx, node, "the scores MatMul must multiply Q by K^T")
    _, snode, sins = on_s[0][-1]
    q = next((br for br in on_s if sins[0] == br[6] and br[4] == [0, 2, 1, 3]), None)
    k = next((br for br in on_s if sins[1] == br[6] and br[4] == [0, 2, 3, 1]), None)
    if q is None or k is None:
        raise G.refuse(s_idx, snode, "expected Q [batch, heads, seq, head_dim] times K^T "
                       "[batch, heads, head_dim, seq]")
    v = next(br for br in branches if all(br is not o for o in on_s))
    heads = q[3]
    if not (k[3] == v[3] == heads):
        raise G.refuse(s_idx, snode, "Q, K and V are split into different numbers of heads")
    d = D // heads
    # scores: scalar factors, an all-zero mask, Softmax, P V
    t, factor = snode.output[0], q[5] * k[5]
    while True:
        user = G.single_user(t, "the Softmax")
        idx, node, ins = user
        f = _scale(G, user, t)
        if f is not None:
            factor *= f
            t = node.output[0]
            continue
        if node.op_type == "Add" and len(G.acts(ins)) == 1:
            mask = G.consts[[a for a in ins if a != t][0]]
            if np.any(mask != 0):
                raise G.refuse(idx, node, "a non-zero attention mask is not supported (the "
                               "device attends to every token)")
            t = node.output[0]
            continue
        break
    if node.op_type != "Softmax":
        raise G.refuse(idx, node, "expected the attention's Softmax")
    if _attrs(node).get("axis", -1) not in (-1, 3):
        raise G.refuse(idx, node, f"axis {_attrs(node)['axis']}: the Softmax must be over "
                       "the keys (the last axis)")
    cidx, cnode, cins = G.single_user(node.output[0], "the MatMul of P and V")
    if cnode.op_type != "MatMul" or cins[0] != node.output[0]:
        raise G.refuse(cidx, cnode, "expected the MatMul of the attention weights and V")
    if v[-1][0] != cidx or cins[1] != v[6] or v[4] != [0, 2, 1, 3]:
        raise G.refuse(cidx, cnode, "expected attention weights times V [batch, heads, seq, "
                       "head_dim]")
    # the context back to [B, L, D]
    t, perm = cnode.output[0], [0, 1, 2, 3]
    while True:
        user = G.single_user(t, "the context's Transpose and Reshape")
        idx, node, ins = user
        if node.op_type != "Transpose":
            break
        p = list(_attrs(node).get("perm", [3, 2, 1, 0]))
        perm = [perm[i] for i in p]
        t = node.output[0]
    if node.op_type != "Reshape" or perm != [0, 2, 1, 3]:
        raise G.refuse(idx, node, "expected the context transposed to [batch, seq, heads, "
                       "head_dim] and reshaped to [batch, seq, hidden]")
    if _target_shape(G, user, [B, L, heads, d]) != [B, L, D]:
        raise G.refuse(idx, node, f"expected a Reshape to [{B}, {L}, {D}]")
    wo, bo, a = _linear(G, G.single_user(node.output[0], "the attention output MatMul"), D,
                        "the attention output")
    r1 = _residual(G, a, x, D, "attention")
    g1, be1, eps1, h1, _ = _layernorm(G, r1, shape)
    hu = G.users_of(h1)
    up = [u for u in hu if u[1].op_type == "MatMul"]
    if len(hu) != 2 or len(up) != 1 or h1 == G.output:
        bad = [u for u in hu if u[1].op_type not in ("MatMul", "Add")]
        if bad:
            raise G.refuse(bad[0][0], bad[0][1], "expected the FFN's MatMul and the residual "
                           "Add")
        raise _err(f"tensor {h1!r} (the first LayerNorm's output) must be read by the FFN's "
                   "MatMul and the second residual Add")
    w1, b1, u = _linear(G, up[0], D, "the FFN up")
    gl = _gelu(G, u)
    w2, b2, f = _linear(G, G.single_user(gl, "the FFN down MatMul"), w1.shape[0],
                        "the FFN down")
    if w2.shape[0] != D:
        raise G.refuse(*G.producer[f][:2], f"the FFN down gives {w2.shape[0]} channels, not "
                       f"{D}")
    r2 = _residual(G, f, h1, D, "FFN")
    g2, be2, eps2, y, (lidx, lnode, _) = _layernorm(G, r2, shape)
    if not math.isclose(eps1, eps2, rel_tol=1e-3):
        raise G.refuse(lidx, lnode, f"epsilon {eps2:g}, the layer's first LayerNorm "
                       f"{eps1:g}: both must be the same")
    # fold the scores' factor into Q (the layer divides by sqrt(head_dim)), V's into V
    alpha = factor * math.sqrt(d)
    layer = FloatEncoderLayer(heads, q[0] * alpha, q[1] * alpha, k[0], k[1], v[0] * v[5],
                              v[1] * v[5], wo, bo, g1, be1, w1, b1, w2, b2, g2, be2,
                              eps=eps1)
    return layer, y


def _residual(G, t, skip, D, what):
    idx, node, ins = G.single_user(t, f"the {what} residual Add")
    if node.op_type != "Add" or sorted(G.acts(ins)) != sorted([t, skip]) or t == skip:
        raise G.refuse(idx, node, f"expected the {what} residual Add of {t!r} and {skip!r}")
    return node.output[0]


def _inferred_shapes(model, input_name, shape):
    """Static shapes ONNX shape inference gives (with data propagation) once the input is
    ``shape``: ``{tensor: tuple}`` (those fully known)."""
    import onnx
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i in m.graph.input:
        if i.name == input_name:
            for d, v in zip(i.type.tensor_type.shape.dim, shape, strict=True):
                d.Clear()
                d.dim_value = v
    try:
        m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # noqa: BLE001  (then only constant shapes are known)
        return {}
    out = {}
    for vi in list(m.graph.value_info) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            out[vi.name] = tuple(d.dim_value for d in dims)
    return out


def import_encoder(model, g, consts, inp, declared, input_shape, opset) -> ImportedEncoder:
    """The encoder path of :func:`~.onnx_import.import_onnx` (module docstring):
    ``declared`` the input's declared dimensions (None where dynamic), ``input_shape`` the
    caller's or None."""
    from .onnx_import import _dims_text
    dims = inp.type.tensor_type.shape.dim
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or any(d <= 0 for d in shape) or any(
                want is not None and want != got
                for want, got in zip(declared, shape, strict=True)):
            raise _err(f"input {inp.name!r}: input shape {list(shape)} does not fit the "
                       f"declared {_dims_text(dims)}")
    else:
        if declared[1] is None or declared[2] is None:
            raise _err(f"input {inp.name!r} has dynamic shape {_dims_text(dims)}: fix the "
                       "sequence length with an input shape (--input-shape 1x16x64)")
        shape = (declared[0] or 1, declared[1], declared[2])
    if shape[0] != 1:
        raise _err(f"input {inp.name!r}: batch {shape[0]}; an encoder graph takes one "
                   "sequence (batch 1 or dynamic)")
    G = _Graph(g, consts, _inferred_shapes(model, inp.name, shape))
    out = ImportedEncoder(input_name=inp.name, output_name=g.output[0].name,
                          input_shape=shape, opset=opset)
    x = inp.name
    while x != G.output:
        layer, x = _layer(G, x, shape)
        out.layers.append(layer)
    return out
