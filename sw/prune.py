"""Pruning that keeps accuracy: bank-balanced pruning with an optimal-brain-surgeon weight update.

:func:`s4accel.base.sparse.prune` keeps the ``32 // s`` largest-magnitude weights of every bank
and leaves the rest of the row alone. For a layer ``y = x @ W.T`` the quantity to preserve is
the output on real inputs, not the weights: :func:`obs_prune` chooses, per bank, the weights to
keep and updates the not-yet-processed weights of the row to compensate for the removed ones,
layer by layer, from calibration inputs (SparseGPT, Frantar & Alistarh 2023, restricted to the
bank-balanced pattern the device stores):

- ``H = X.T @ X / n + damp * mean(diag) * I`` from calibration inputs ``X [n, K]``;
- ``U``: the upper Cholesky factor of ``H^-1`` (``H^-1 = U.T @ U``);
- columns are processed one bank (32 columns) at a time for all rows together. At the start of
  a bank each row keeps the ``32 // s`` entries with the largest ``w_j**2 / U_jj**2`` (the OBS
  saliency under the current, already updated weights; ties towards the lower index), then
  for each column ``j`` of the bank the removed value's error ``(w_j - q_j) / U_jj`` is spread
  over the row's later columns with ``U[j, j+1:]``. Updates to columns beyond the current
  block of banks are applied lazily, one matrix product per block.

The result has exactly the bank-balanced pattern :func:`s4accel.base.sparse.pack` accepts at
``s`` (at most ``32 // s`` non-zeros per bank, zeros elsewhere) and is deterministic.

:func:`bank_mask` gives a bank-balanced mask for any number of kept entries per bank (1..32),
the intermediate steps of gradual pruning during training. :func:`layer_report` and
:func:`format_report` compare magnitude pruning and OBS per layer on calibration data.
"""

from __future__ import annotations

import numpy as np

from ..base.config import BANK
from ..base.sparse import nnz_per_bank, prune

__all__ = ["METHODS", "DAMP", "ASYM_DAMP", "hessian", "obs_prune", "prune_layer",
           "asymmetric_target", "MaskedAdam", "bank_mask", "gradual_keep", "layer_report",
           "format_report"]

#: Pruning methods: ``"magnitude"`` (:func:`s4accel.base.sparse.prune`) and ``"obs"``.
METHODS = ("magnitude", "obs")

#: Default dampening, relative to the mean of the Hessian's diagonal (SparseGPT uses 1 %).
DAMP = 0.01


def hessian(x) -> np.ndarray:
    """``X.T @ X / n`` of calibration inputs ``x [n, K]`` (float64, undamped)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"calibration inputs must be a non-empty 2-D array [n, K], not "
                         f"shape {x.shape}")
    return x.T @ x / x.shape[0]


def _inverse_cholesky(h, damp):
    k = h.shape[0]
    h = h.copy()
    diag = np.diag(h).copy()
    dead = diag <= 0
    h[dead, :] = 0
    h[:, dead] = 0
    h[dead, dead] = 1.0
    mean = float(diag[~dead].mean()) if (~dead).any() else 1.0
    h[np.diag_indices(k)] += damp * mean
    hinv = np.linalg.inv(h)
    hinv = (hinv + hinv.T) / 2
    # upper factor U with H^-1 = U.T @ U
    return np.linalg.cholesky(hinv).T, dead


def obs_prune(w, s, x=None, *, h=None, damp=DAMP, block=4 * BANK, update=True) -> np.ndarray:
    """Prune ``w [N, K]`` bank-balanced to sparsity ``s`` with the OBS weight update.

    Give the calibration inputs ``x [n, K]`` or their Hessian ``h`` (:func:`hessian`), not
    both. ``damp`` is added to the Hessian's diagonal relative to its mean; ``block`` is the
    number of columns updated eagerly (a multiple of 32). ``update=False`` chooses the kept
    weights by OBS saliency but skips the weight update (for comparisons). Returns a float64
    array of the shape of ``w`` with at most ``32 // s`` non-zeros per bank of every row;
    inputs that are zero on all calibration samples get zero weights."""
    nnz = nnz_per_bank(s)
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"weights must be a non-empty 2-D array [N, K], not shape {w.shape}")
    if (x is None) == (h is None):
        raise ValueError("give the calibration inputs x or their Hessian h, exactly one")
    if block <= 0 or block % BANK:
        raise ValueError(f"block must be a positive multiple of {BANK}, not {block}")
    if not damp > 0:
        raise ValueError(f"damp must be positive, not {damp}")
    h = hessian(x) if h is None else np.asarray(h, dtype=np.float64)
    n, k = w.shape
    if h.shape != (k, k):
        raise ValueError(f"the Hessian must be [{k}, {k}] for weights [{n}, {k}], not "
                         f"{h.shape}")
    if s == 1:
        return w.copy()
    kp = -(-k // BANK) * BANK
    wp = np.zeros((n, kp))
    wp[:, :k] = w
    hp = np.zeros((kp, kp))
    hp[:k, :k] = h
    u, dead = _inverse_cholesky(hp, damp)
    wp[:, dead] = 0
    for b0 in range(0, kp, block):
        b1 = min(b0 + block, kp)
        w1 = wp[:, b0:b1].copy()
        q1 = np.zeros_like(w1)
        err1 = np.zeros_like(w1)
        u1 = u[b0:b1, b0:b1]
        d = np.diag(u1)
        for c0 in range(0, b1 - b0, BANK):
            score = w1[:, c0:c0 + BANK] ** 2 / d[c0:c0 + BANK] ** 2
            order = np.argsort(-score, axis=1, kind="stable")[:, :nnz]
            keep = np.zeros((n, BANK), dtype=bool)
            np.put_along_axis(keep, order, True, axis=1)
            for j in range(c0, c0 + BANK):
                col = w1[:, j]
                q = np.where(keep[:, j - c0], col, 0.0)
                q1[:, j] = q
                e = (col - q) / d[j]
                err1[:, j] = e
                if update:
                    w1[:, j:] -= np.outer(e, u1[j, j:])
        wp[:, b0:b1] = q1
        if update and b1 < kp:
            wp[:, b1:] -= err1 @ u[b0:b1, b1:]
    return wp[:, :k]


def prune_layer(w, s, x=None, *, method="obs", h=None, damp=DAMP) -> np.ndarray:
    """Prune one layer's float weights with ``method`` (:data:`METHODS`); ``"magnitude"``
    ignores the calibration data."""
    if method == "magnitude":
        return prune(np.asarray(w, dtype=np.float64), s)
    if method == "obs":
        return obs_prune(w, s, x, h=h, damp=damp)
    raise ValueError(f"pruning method must be one of {METHODS}, not {method!r}")


#: Ridge of :func:`asymmetric_target`, relative to the mean of the Hessian's diagonal: it
#: pulls the fit towards the layer's own weights where calibration data say little
#: (MiniLM, OBS at s = 2: mean cosine 0.914 undamped-to-zero, 0.937 at 0.3 towards ``w``).
ASYM_DAMP = 0.3


def asymmetric_target(w, x_dense, x_pruned, *, damp=ASYM_DAMP) -> np.ndarray:
    """The dense weights that best reproduce the dense layer's output from the pruned model's
    input: ``argmin_V ||x_dense @ w.T - x_pruned @ V.T||^2 + lam ||V - w||^2`` with ``lam =
    damp * mean(diag(H))``, i.e. ``V = w (G + lam I) (H + lam I)^-1``, ``G = x_dense.T @
    x_pruned / n``, ``H = x_pruned.T @ x_pruned / n``. The ridge pulls ``V`` towards ``w``
    (not towards zero), so equal inputs give ``V = w`` for any ``damp``. Pruning ``V`` with
    :func:`obs_prune` on ``x_pruned`` then minimizes the error against the *dense* output, not
    against ``w`` applied to the already perturbed input ("asymmetric" calibration)."""
    w = np.asarray(w, dtype=np.float64)
    xd = np.asarray(x_dense, dtype=np.float64)
    xp = np.asarray(x_pruned, dtype=np.float64)
    if xd.shape != xp.shape or xd.ndim != 2 or xd.shape[1] != w.shape[1]:
        raise ValueError(f"dense and pruned inputs must both be [n, {w.shape[1]}], not "
                         f"{xd.shape} and {xp.shape}")
    if not damp >= 0:
        raise ValueError(f"damp must be non-negative, not {damp}")
    h = hessian(xp)
    g = xd.T @ xp / xp.shape[0]
    lam = damp * max(float(np.diag(h).mean()), 1e-12)
    h[np.diag_indices(len(h))] += lam
    g[np.diag_indices(len(g))] += lam
    return np.linalg.solve(h, (w @ g).T).T


class MaskedAdam:
    """Adam (Kingma & Ba 2015) over a list of float arrays, updated in place, for fine-tuning
    pruned weights: ``masks[i]`` (or ``None``) is multiplied into the gradient of
    ``params[i]``, so a pruned (zero) entry stays exactly zero and the bank-balanced pattern
    is kept."""

    def __init__(self, params, masks=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.masks = list(masks) if masks is not None else [None] * len(self.params)
        if len(self.masks) != len(self.params):
            raise ValueError("give one mask (or None) per parameter")
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]

    def step(self, grads):
        """One update from ``grads`` (one per parameter, same shapes)."""
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, g, mask, m, v in zip(self.params, grads, self.masks, self.m, self.v,
                                    strict=True):
            if mask is not None:
                g = g * mask
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def bank_mask(w, keep) -> np.ndarray:
    """Boolean mask keeping the ``keep`` largest-magnitude entries of every bank of 32 of
    ``w [N, K]`` (ties towards the lower index; ``keep`` in 1..32). With ``keep = 32 // s``
    it is the pattern of :func:`s4accel.base.sparse.prune` at ``s``."""
    w = np.asarray(w, dtype=np.float64)
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or not 1 <= keep <= BANK:
        raise ValueError(f"keep must be an integer in 1..{BANK}, not {keep!r}")
    if w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"weights must be a non-empty 2-D array [N, K], not shape {w.shape}")
    n, k = w.shape
    kp = -(-k // BANK) * BANK
    mag = np.full((n, kp), -1.0)  # padding is never kept before a real entry
    mag[:, :k] = np.abs(w)
    mag = mag.reshape(n, kp // BANK, BANK)
    order = np.argsort(-mag, axis=2, kind="stable")[:, :, :int(keep)]
    mask = np.zeros(mag.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=2)
    return mask.reshape(n, kp)[:, :k]


def gradual_keep(s, steps) -> list[int]:
    """Kept entries per bank at each of ``steps`` pruning steps towards sparsity ``s``: the
    cubic schedule of Zhu & Gupta (2017), ``keep_t = f + (32 - f) * (1 - t / steps)**3`` for
    ``t = 1 .. steps`` with ``f = 32 // s``, rounded, never increasing; the last is ``f``."""
    final = nnz_per_bank(s)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    out, prev = [], BANK
    for t in range(1, int(steps) + 1):
        v = int(round(final + (BANK - final) * (1 - t / steps) ** 3))
        prev = max(final, min(prev, v))
        out.append(prev)
    return out


def _rel(a, b) -> float:
    nb = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / nb if nb > 0 else 0.0


def layer_report(name, w, x, s, *, damp=DAMP, pruned=None) -> dict:
    """Magnitude pruning against OBS for one layer ``w [N, K]`` on calibration inputs
    ``x [n, K]`` at sparsity ``s``. ``pruned`` maps a method to an already pruned weight
    (computed here when absent). Returns a dict with, for ``m`` in ``mag`` and ``obs``:

    - ``{m}_weight_err``: ``||W - W'|| / ||W||`` (Frobenius);
    - ``{m}_kept_err``: the same over the kept positions only (``W'`` non-zero): how far the
      update moved the kept weights (0 for magnitude pruning);
    - ``{m}_out_err``: ``||X W.T - X W'.T|| / ||X W.T||`` on the calibration inputs."""
    w = np.asarray(w, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    pruned = dict(pruned or {})
    if "magnitude" not in pruned:
        pruned["magnitude"] = prune_layer(w, s, method="magnitude")
    if "obs" not in pruned:
        pruned["obs"] = prune_layer(w, s, x, method="obs", damp=damp)
    y = x @ w.T
    row = {"layer": name, "n": w.shape[0], "k": w.shape[1], "sparsity": s,
           "tokens": x.shape[0]}
    for key, m in (("mag", "magnitude"), ("obs", "obs")):
        wq = pruned[m]
        kept = wq != 0
        row[f"{key}_weight_err"] = _rel(wq, w)
        row[f"{key}_kept_err"] = _rel(wq[kept], w[kept])
        row[f"{key}_out_err"] = _rel(x @ wq.T, y)
    return row


def format_report(rows) -> str:
    """The rows of :func:`layer_report` as a table."""
    head = (f"{'layer':<16} {'N':>5} {'K':>5} {'s':>3} {'tokens':>6} | {'weight err':>10} "
            f"{'out err':>8} | {'weight err':>10} {'kept err':>9} {'out err':>8}")
    top = f"{'':<40} | {'magnitude':^19} | {'OBS (weight update)':^30}"
    lines = [top, head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['layer']:<16} {r['n']:>5} {r['k']:>5} {r['sparsity']:>3} "
                     f"{r['tokens']:>6} | {r['mag_weight_err']:>10.4f} {r['mag_out_err']:>8.4f} "
                     f"| {r['obs_weight_err']:>10.4f} {r['obs_kept_err']:>9.4f} "
                     f"{r['obs_out_err']:>8.4f}")
    return "\n".join(lines)
