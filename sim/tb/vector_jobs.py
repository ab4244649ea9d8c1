"""Commands for the vector unit (:mod:`s4accel.hw.vector.unit`) with their input vectors and
the output vectors :mod:`s4accel.base.vector` defines, shared by the Amaranth-simulator tests
and the cocotb testbench :mod:`s4accel.sim.tb.vector`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...base import vector as V
from ...hw.vector.vop import softmax_bits

__all__ = ["VecJob", "OPS", "job", "random_job"]

#: Operation names as :class:`s4accel.hw.vector.unit.VecOp` numbers them.
OPS = {"add": 0, "mul": 1, "gelu": 2, "row_max": 3, "row_sum": 4, "softmax": 5,
       "layernorm": 6}

_CMD_KEYS = ("n", "mult", "mult_b", "shift", "relu", "wide", "u_mult", "u_shift", "in_shift",
             "eps", "chan")


@dataclass
class VecJob:
    """One command: ``cmd`` (the fields of ``vec_cmd_layout``, ``op`` as a number), the
    vectors for ``i_a`` (``(lanes values, mask)``), ``i_b`` and ``i_chan``, and the expected
    output vectors (lane values; the last has ``last`` set)."""

    name: str
    cmd: dict
    a: list
    b: list = field(default_factory=list)
    chan: list = field(default_factory=list)
    out: list = field(default_factory=list)


def _vecs(values, lanes):
    v = np.asarray(values, dtype=np.int64).ravel()
    pad = -len(v) % lanes
    return np.concatenate([v, np.zeros(pad, np.int64)]).reshape(-1, lanes)


def _masks(mask, n, lanes):
    bits = _vecs(np.ones(n, np.int64) if mask is None else np.asarray(mask, np.int64), lanes)
    return [int(sum(int(b) << i for i, b in enumerate(row))) for row in bits]


def job(op, x, lanes=32, *, b=None, mask=None, name=None, **p) -> VecJob:
    """The command ``op`` (an :data:`OPS` name) on the one row / tensor ``x`` (1-d), with
    ``b`` (ADD, MUL), ``mask`` (SOFTMAX, ROW_MAX, ROW_SUM) and the golden model's parameters
    ``p`` under the command's field names (LayerNorm: ``ln`` a LayerNormParams; an ADD with
    ``chan`` 1: ``mult``, ``mult_b``, ``shift`` arrays of ``n``, sent on ``i_chan``, the
    command's fields then hold other values the unit must ignore)."""
    x = np.asarray(x, dtype=np.int64).ravel()
    n = len(x)
    cmd = {k: 0 for k in _CMD_KEYS}
    cmd.update(op=OPS[op], n=n)
    per_chan = op == "add" and p.get("chan")
    for k in _CMD_KEYS:
        if k in p and not (per_chan and k in ("mult", "mult_b", "shift")):
            cmd[k] = int(p[k])
    chan = []
    if per_chan:
        cmd.update(mult=0x5A5A, mult_b=0xA5A5, shift=21)
        am, bm, sh = (_vecs(np.broadcast_to(p[k], (n,)), lanes)
                      for k in ("mult", "mult_b", "shift"))
        chan = [[{"mult": 0, "bias": int(am[r, i]) | int(bm[r, i]) << 16,
                  "shift": int(sh[r, i])} for i in range(lanes)] for r in range(len(am))]
    if op == "add":
        want = V.residual_add(x, b, p["mult"], p["mult_b"], p["shift"],
                              out_bits=16 if p.get("wide") else 8, relu=bool(p.get("relu")))
    elif op == "mul":
        want = V.elementwise_mul(x, b, p["mult"], p["shift"], relu=bool(p.get("relu")))
    elif op == "gelu":
        want = V.gelu(x, V.GeluParams(p["u_mult"], p["u_shift"], p["mult"], p["shift"]))
    elif op == "row_max":
        want = np.array([V.row_max(x, mask)])
    elif op == "row_sum":
        want = np.array([V.row_sum(x, mask)])
    elif op == "softmax":
        want = V.softmax(x, p["mult"], p["shift"], mask,
                         out_bits=softmax_bits(p.get("wide"), p.get("relu")))
    elif op == "layernorm":
        ln = p["ln"]
        cmd.update(in_shift=ln.in_shift, eps=ln.eps)
        want = V.layernorm(x, ln)
        mu, bi, sh = (_vecs(t, lanes) for t in (ln.mult, ln.bias, ln.shift))
        chan = [[{"mult": int(mu[r, i]), "bias": int(bi[r, i]), "shift": int(sh[r, i])}
                 for i in range(lanes)] for r in range(len(mu))]
    else:
        raise ValueError(f"unknown vector operation {op!r}")
    use_mask = op in ("softmax", "row_max", "row_sum")
    a = [([int(t) for t in row], mk) for row, mk in
         zip(_vecs(x, lanes), _masks(mask if use_mask else None, n, lanes), strict=True)]
    bv = [[int(t) for t in row] for row in _vecs(b, lanes)] if b is not None else []
    out = [[int(t) for t in row] for row in _vecs(np.asarray(want, np.int64), lanes)]
    return VecJob(name or op, cmd, a, bv, chan, out)


def random_job(rng, op, n, lanes=32, *, extreme=False) -> VecJob:
    """A random command ``op`` on ``n`` elements; ``extreme`` picks the edge cases (saturating
    sums, all-equal rows, one large value, fully masked rows, extreme int32 values)."""
    i8 = lambda: rng.integers(-128, 128, n)             # noqa: E731
    if op == "add":
        a, b = i8(), i8()
        if extreme:
            a, b = np.full(n, rng.choice([-128, 127])), np.full(n, rng.choice([-128, 127]))
        wide = int(rng.integers(2))
        out = 2.0 ** (rng.uniform(-1, 2) - (8 if wide else 0))
        ma, mb, sh = V.residual_params(rng.uniform(0.2, 2), rng.uniform(0.2, 2), out)
        if extreme:
            ma, mb, sh = rng.integers(1 << 15, 1 << 16, 2).tolist() + [int(rng.integers(0, 9))]
        chan = int(rng.integers(2))     # per channel: each channel's own scales
        if chan:
            ma, mb = (rng.integers(0, 1 << 16, n) if extreme else
                      np.minimum(np.round(m * 2.0 ** rng.uniform(-2, 1, n)), 65535).astype(int)
                      for m in (ma, mb))
            sh = (rng.integers(0, 48, n) if extreme
                  else np.clip(sh + rng.integers(-1, 2, n), 0, 47))
        return job(op, a, lanes, b=b, mult=ma, mult_b=mb, shift=sh, wide=wide,
                   relu=rng.integers(2), chan=chan)
    if op == "mul":
        a, b = i8(), i8()
        if extreme:
            a, b = np.full(n, -128), np.full(n, -128)
        mult, shift = V.mul_params(1.0, 1.0, 2.0 ** rng.uniform(5, 9))
        if extreme:
            mult, shift = 65535, int(rng.integers(0, 20))
        return job(op, a, lanes, b=b, mult=mult, shift=shift, relu=rng.integers(2))
    if op == "gelu":
        span = 1 << int(rng.integers(8, 32))
        x = rng.integers(-span, span, n)
        if extreme:
            x = rng.choice([V.INT32_MIN, V.INT32_MAX, 0, -1, 1], n)
        pp = V.gelu_params(4.0 / span * (0.5 + rng.random()), 6.0 / 127)
        return job(op, x, lanes, u_mult=pp.u_mult, u_shift=pp.u_shift, mult=pp.mult,
                   shift=pp.shift)
    if op in ("row_max", "row_sum", "softmax"):
        x = rng.integers(-(1 << 20), 1 << 20, n)
        mask = rng.random(n) >= 0.1
        if extreme:
            kind = rng.integers(4)
            if kind == 0:
                mask[:] = False
            elif kind == 1:
                x = np.full(n, rng.choice([V.INT32_MIN, V.INT32_MAX]))
            elif kind == 2:
                x = rng.choice([V.INT32_MIN, V.INT32_MAX], n)
            else:
                x[:] = 0
                x[rng.integers(n)] = 1 << 20
        if op != "softmax":
            return job(op, x, lanes, mask=mask)
        mult, shift = V.softmax_params(24.0 / (1 << 20) * (0.05 + rng.random()))
        if extreme and rng.integers(2):
            mult, shift = 65535, 0
        bits = int(rng.choice([7, 8, 16]))     # 7: relu, 16: wide
        return job(op, x, lanes, mask=mask, mult=mult, shift=shift, wide=int(bits == 16),
                   relu=int(bits == 7))
    if op == "layernorm":
        in_shift = int(rng.integers(0, 8))
        x = rng.integers(-(1 << (15 + in_shift)), 1 << (15 + in_shift), n)
        if extreme:
            kind = rng.integers(3)
            x = (np.full(n, rng.integers(-1000, 1000)) if kind == 0 else
                 rng.choice([V.INT32_MIN, V.INT32_MAX], n) if kind == 1 else
                 np.where(np.arange(n) == rng.integers(n), 1 << 30, 0))
        gamma = rng.normal(1, 0.3, n)
        beta = rng.normal(0, 0.5, n)
        ln = V.layernorm_params(2.0 ** -15, gamma, beta, 4.0 / 127, in_shift=in_shift,
                                eps=float(rng.choice([0.0, 1e-5, 0.02])))
        return job(op, x, lanes, ln=ln)
    raise ValueError(f"unknown vector operation {op!r}")
