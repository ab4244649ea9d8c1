"""Convolutional networks: float graphs of convolutions, residual additions and pooling,
their int8 quantization (bit-exact by definition) and their lowering to one device program.

A network (:class:`ConvNet`) is a list of operations in execution order over NHWC tensors
named by the operation that produces them (the input is ``"x"``):

- :class:`Conv`: a ``k`` x ``k`` convolution (stride 1 or 2, symmetric zero padding, weights
  ``[Cout, k, k, Cin]``, bias), ReLU optionally; a fully connected layer on a 1x1 map (after
  global pooling) is a 1x1 convolution;
- :class:`Add`: the sum of two tensors of the same shape (a residual addition), ReLU
  optionally;
- :class:`Gap`: global average pooling of a square map to 1x1;
- :class:`AvgPool`: average pooling over ``k`` x ``k`` windows (stride 1 or 2, no padding).

Quantization (:func:`quantize_net`; the project's digits CNN, :mod:`s4accel.sim.workloads.cnn`,
is built from the same pieces):

- input: per-tensor scale ``max|x_calib| / 127`` (or given), ``round(x / scale)`` int8;
- each convolution (:func:`quant_weights`, :func:`quant_conv`): its float GEMM matrix pruned
  bank-balanced to its sparsity ``s``, per-output-channel int8 weights ``max|W[n]| / 127``,
  int32 bias ``round(b / (s_x * s_w))``, requantized to the output scale ``max|y| / 127``
  calibrated through the quantized network itself (as :func:`.compiler.compile_model` does);
  ReLU on the requantizer where the layer has one; the last operation's GEMM returns raw
  int32, dequantized (and its ReLU applied) on the host;
- each addition (:class:`QAdd`, :func:`quant_add`): a 1x1 GEMM over both int8 branches side by
  side, the weights ``w_a``, ``w_b`` (the larger 127) on its diagonals, one requantization;
- global average pooling (:class:`QGap`, :func:`quant_gap`): the int32 sum over the pixels
  requantized to a calibrated int8 scale; average pooling over windows without padding
  (:class:`QAvgPool`, :func:`quant_avgpool`) the same per window;
- max pooling (:class:`QMaxPool`): :func:`s4accel.base.golden.maxpool_nhwc`, exact, the
  output at the input's scale; on the device ``GemmBody.pool`` (:class:`.conv.PoolOp`).

The GEMM matrix of a convolution runs its K in ``(kh, kw, cin)`` order; where ``Cin`` is not a
multiple of 32 the device pads every tap's channels to whole banks (:func:`.conv.conv_weights`)
and the matrix is pruned and quantized in that padded order. A first convolution on a few
input channels (fewer than 32, ``k > 1``) reads its windows from the host instead
(:meth:`QuantNet.device_input`: ``k * k * Cin`` values a pixel, one 1x1 GEMM on the device).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base import golden
from ..base.config import BANK, SPARSITY_LEVELS
from ..base.sparse import PackedWeights, pack, prune
from .compiler import requant_params
from .progress import track

__all__ = ["ConvSpec", "Conv", "Add", "Gap", "AvgPool", "MaxPool", "ConvNet", "gemm_raw_exact",
           "quant_weights", "QConv", "QAdd", "QGap", "QAvgPool", "QMaxPool", "quant_conv",
           "quant_add", "quant_gap", "quant_avgpool", "QuantNet", "quantize_net"]


def _banks(c):
    return -(-c // BANK)


# --------------------------------------------------------------------------- float network

@dataclass(frozen=True)
class ConvSpec:
    """The geometry of one convolution."""
    name: str
    cin: int
    cout: int
    k: int
    stride: int
    pad: int
    relu: bool


@dataclass
class Conv:
    """A float convolution ``src -> name``: ``weight [Cout, k, k, Cin]``, ``bias [Cout]``."""
    name: str
    src: str
    weight: np.ndarray
    bias: np.ndarray
    stride: int = 1
    pad: int = 0
    relu: bool = False

    @property
    def spec(self) -> ConvSpec:
        cout, k, _, cin = self.weight.shape
        return ConvSpec(self.name, cin, cout, k, self.stride, self.pad, self.relu)


@dataclass
class Add:
    """``name = relu?(a + b)`` for ``src = (a, b)``."""
    name: str
    src: tuple
    relu: bool = False


@dataclass
class Gap:
    """Global average pooling ``src [N, H, W, C] -> name [N, 1, 1, C]``."""
    name: str
    src: str


@dataclass
class AvgPool:
    """Average pooling over ``k`` x ``k`` windows at ``stride``, no padding."""
    name: str
    src: str
    k: int
    stride: int


@dataclass
class MaxPool:
    """Max pooling over ``k`` x ``k`` windows at ``stride``, ``pad`` pixels on each side that
    never win (ONNX ``MaxPool``: padding is minus infinity)."""
    name: str
    src: str
    k: int
    stride: int
    pad: int = 0


def _im2col_f(x, k, stride, pad):
    n, h, w, c = x.shape
    ho, wo = golden.conv_out_size(h, k, stride, pad), golden.conv_out_size(w, k, stride, pad)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x
    cols = np.empty((n, ho, wo, k, k, c), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, i, j] = xp[:, i:i + stride * (ho - 1) + 1:stride,
                                     j:j + stride * (wo - 1) + 1:stride]
    return cols.reshape(n, ho, wo, k * k * c)


@dataclass
class ConvNet:
    """A float network (module docstring): ``ops`` in execution order, input NHWC
    ``[N, *input_hwc]``; the last operation's tensor is the output."""
    ops: list
    input_hwc: tuple

    def shapes(self) -> dict:
        """``{tensor: (H, W, C)}`` for the input ``"x"`` and every operation."""
        shape = {"x": tuple(self.input_hwc)}
        for op in self.ops:
            if isinstance(op, Conv):
                h, w, _ = shape[op.src]
                sp = op.spec
                shape[op.name] = (golden.conv_out_size(h, sp.k, sp.stride, sp.pad),
                                  golden.conv_out_size(w, sp.k, sp.stride, sp.pad), sp.cout)
            elif isinstance(op, Add):
                shape[op.name] = shape[op.src[0]]
            elif isinstance(op, (AvgPool, MaxPool)):
                h, w, c = shape[op.src]
                pad = getattr(op, "pad", 0)
                shape[op.name] = (golden.conv_out_size(h, op.k, op.stride, pad),
                                  golden.conv_out_size(w, op.k, op.stride, pad), c)
            else:
                shape[op.name] = (1, 1, shape[op.src][2])
        return shape

    def forward(self, x) -> np.ndarray:
        """Float output (NHWC) of float NHWC ``x``."""
        t = {"x": np.asarray(x, np.float64)}
        for op in self.ops:
            if isinstance(op, Conv):
                sp = op.spec
                y = _im2col_f(t[op.src], sp.k, sp.stride, sp.pad) @ \
                    op.weight.reshape(sp.cout, -1).T + op.bias
            elif isinstance(op, Add):
                y = t[op.src[0]] + t[op.src[1]]
            elif isinstance(op, AvgPool):
                src = t[op.src]
                cols = _im2col_f(src, op.k, op.stride, 0)
                y = cols.reshape(cols.shape[:3] + (op.k * op.k, src.shape[3])).mean(axis=3)
            elif isinstance(op, MaxPool):
                src = t[op.src]
                p = op.pad
                src = np.pad(src, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=-np.inf)
                cols = _im2col_f(src, op.k, op.stride, 0)
                y = cols.reshape(cols.shape[:3] + (op.k * op.k, src.shape[3])).max(axis=3)
            else:
                y = t[op.src].mean(axis=(1, 2), keepdims=True)
            if getattr(op, "relu", False):
                y = np.maximum(y, 0)
            t[op.name] = y
        return t[self.ops[-1].name]


# ------------------------------------------------------------------------ quantized pieces

def gemm_raw_exact(x, w_q, bias):
    """``golden.gemm_raw`` for ``x [M, K]`` and dense int8 ``w_q [N, K]`` through float64 BLAS:
    every product and partial sum is an integer below 2**53 in magnitude (``K < 2**38``), so
    the result is exact; wrapped to int32 as the golden model does."""
    acc = np.rint(x.astype(np.float64) @ w_q.T.astype(np.float64)).astype(np.int64)
    return golden.wrap32(acc + np.asarray(bias, np.int64))


def quant_weights(w, b, s, x_scale):
    """A float GEMM matrix ``w [N, K]`` and bias ``b`` for int8 inputs of scale ``x_scale``:
    pruned bank-balanced to ``s``, per-row int8 weights ``max|W[n]| / 127``, int32 bias
    ``round(b / (x_scale * w_scale))``. Returns ``(w_q, packed, bias_q, acc_scale)``
    (``acc_scale = x_scale * w_scale``, the real value of one accumulator LSB per row)."""
    w = prune(np.asarray(w, np.float64), s)
    peak = np.abs(w).max(axis=1)
    w_scale = np.where(peak > 0, peak / 127.0, 1.0)
    w_q = prune(np.clip(np.rint(w / w_scale[:, None]), -127, 127).astype(np.int8), s)
    acc_scale = x_scale * w_scale
    bias = np.clip(np.rint(np.asarray(b, np.float64) / acc_scale), -(1 << 31), (1 << 31) - 1)
    return w_q, pack(w_q, s), bias.astype(np.int64), acc_scale


def _cols(x, sp: ConvSpec, kdim):
    """The im2col rows of int8 NHWC ``x`` for a matrix of ``kdim`` columns: ``k*k*Cin``
    (unpadded) or ``k*k*cbanks*32`` (the device's channel-padded order)."""
    if kdim == sp.k * sp.k * x.shape[3]:
        return golden.im2col_nhwc(x, sp.k, sp.k, sp.stride, sp.pad)
    from .conv import conv_cols
    return conv_cols(x, sp.k, sp.stride, sp.pad)


@dataclass
class QConv:
    """One quantized convolution; ``w_q [Cout, K]`` in ``(kh, kw, cin)`` order, unpadded
    (``K = k*k*Cin``) or channel-padded (``K = k*k*cbanks*32``). ``mult`` is ``None`` for a
    raw output (int32 ``acc + bias``)."""
    spec: ConvSpec
    sparsity: int
    packed: PackedWeights
    w_q: np.ndarray       # int8 [Cout, K], the pruned matrix the packed form holds
    bias: np.ndarray      # int32-range int64 [Cout]
    mult: np.ndarray | None
    shift: np.ndarray | None
    in_scale: float
    w_scale: np.ndarray
    out_scale: float | None

    @property
    def raw(self) -> bool:
        return self.mult is None

    def __call__(self, x, exact=True):
        sp = self.spec
        n, h, w, _ = x.shape
        ho = golden.conv_out_size(h, sp.k, sp.stride, sp.pad)
        wo = golden.conv_out_size(w, sp.k, sp.stride, sp.pad)
        cols = _cols(x, sp, self.w_q.shape[1])
        if exact:
            raw = gemm_raw_exact(cols, self.w_q, self.bias)
            y = raw if self.raw else golden.requantize(raw, self.mult, self.shift,
                                                       relu=sp.relu)
        elif self.raw:
            y = golden.gemm_raw(cols, self.packed, self.bias)
        else:
            y = golden.gemm_int8(cols, self.packed, self.bias, self.mult, self.shift,
                                 relu=sp.relu)
        return y.reshape(n, ho, wo, sp.cout)


def quant_conv(sp: ConvSpec, w, b, s, h, h_scale, *, raw=False):
    """Quantize the convolution ``sp`` (float GEMM matrix ``w [Cout, K]``, K unpadded or
    channel-padded, bias ``b``) at sparsity ``s`` for int8 input ``h`` of scale ``h_scale``,
    calibrating its output scale on ``h``. Returns ``(QConv, output on h, output scale)``;
    with ``raw`` the output is int32 and its scale per channel (the accumulator's)."""
    w_q, packed, bias, acc_scale = quant_weights(w, b, s, h_scale)
    if raw:
        q = QConv(sp, s, packed, w_q, bias, None, None, h_scale, w_scale=acc_scale / h_scale,
                  out_scale=None)
        return q, q(h), acc_scale
    n, hh, ww, _ = h.shape
    acc = gemm_raw_exact(_cols(h, sp, w_q.shape[1]), w_q, bias) * acc_scale
    if sp.relu:
        acc = np.maximum(acc, 0)
    top = float(np.abs(acc).max())
    out_scale = top / 127.0 if top > 0 else 1.0
    mult, shift = requant_params(acc_scale / out_scale)
    q = QConv(sp, s, packed, w_q, bias, mult, shift, h_scale, w_scale=acc_scale / h_scale,
              out_scale=out_scale)
    return q, q(h), out_scale


@dataclass
class QAdd:
    """One residual addition as the device runs it: a 1x1 GEMM over the two int8 tensors side
    by side (``[a | b]`` per pixel) with weights ``w_a * I | w_b * I`` (int8, the larger 127),
    requantized with ``mult``, ``shift``: ``y = requant(w_a * a + w_b * b)``, which is
    :func:`s4accel.base.golden.add_int8` with ``mult_a = w_a * mult``, ``mult_b = w_b *
    mult`` (the scale ratio kept to 7 bits)."""
    w_a: int
    w_b: int
    mult: int
    shift: int
    out_scale: float
    relu: bool = True

    def __call__(self, a, b):
        acc = a.astype(np.int32) * self.w_a + b.astype(np.int32) * self.w_b
        shape = acc.shape
        y = golden.requantize(acc.reshape(-1, shape[-1]), np.full(shape[-1], self.mult),
                              np.full(shape[-1], self.shift), relu=self.relu)
        return y.reshape(shape)

    def matrix(self, c):
        """The GEMM's int8 weights ``[c, 2 * cp]`` (``cp``: ``c`` padded to whole banks, as
        each tensor is in device DRAM; one non-zero per bank: every sparsity holds them)."""
        cp = _banks(c) * BANK
        w = np.zeros((c, 2 * cp), np.int8)
        w[np.arange(c), np.arange(c)] = self.w_a
        w[np.arange(c), cp + np.arange(c)] = self.w_b
        return w

    def packed(self, c):
        """:meth:`matrix` packed at s = 32, the cheapest."""
        return pack(self.matrix(c), 32)


def quant_add(a, sa, b, sb, *, relu=True):
    """Quantize ``relu?(a * sa + b * sb)`` of int8 tensors ``a``, ``b`` (scales ``sa``,
    ``sb``), the output scale calibrated on them. Returns ``(QAdd, output, output scale)``."""
    f = a * sa + b.astype(np.float64) * sb
    if relu:
        f = np.maximum(f, 0)
    top = float(np.abs(f).max())
    sy = top / 127.0 if top > 0 else 1.0
    big = max(sa, sb)
    mult, shift = requant_params(big / sy / 127.0)
    q = QAdd(int(round(127 * sa / big)), int(round(127 * sb / big)), int(mult[0]),
             int(shift[0]), sy, relu)
    return q, q(a, b), sy


@dataclass
class QGap:
    """Global average pooling as the device runs it: the sum over the ``H*W`` pixels (int32,
    exact) requantized to int8 with ``mult``, ``shift`` (``mult * 2**-shift ~= s_h / (H*W *
    out_scale)``). On the device an ``H x W`` "convolution" over the final map whose output
    channel ``c`` has weight 1 on channel ``c`` of every pixel (one non-zero per bank)."""
    mult: int
    shift: int
    out_scale: float

    def __call__(self, h):
        acc = h.astype(np.int32).sum(axis=(1, 2), dtype=np.int32)
        c = acc.shape[-1]
        return golden.requantize(acc, np.full(c, self.mult), np.full(c, self.shift))

    @staticmethod
    def matrix(pixels, c):
        """The weights ``[c, pixels * cp]`` (NHWC order, channels padded to whole banks; one
        non-zero per bank)."""
        cp = _banks(c) * BANK
        w = np.zeros((c, pixels, cp), np.int8)
        w[np.arange(c), :, np.arange(c)] = 1
        return w.reshape(c, pixels * cp)

    @staticmethod
    def packed(pixels, c):
        """:meth:`matrix` packed at s = 32."""
        return pack(QGap.matrix(pixels, c), 32)


@dataclass
class QAvgPool:
    """Average pooling over ``k`` x ``k`` windows at ``stride`` (no padding) as the device
    runs it: the int32 sum over each window requantized to int8 with ``mult``, ``shift``
    (``~= s_h / (k*k * out_scale)``); on the device a ``k`` x ``k`` convolution whose output
    channel ``c`` has weight 1 on channel ``c`` of every tap (:meth:`QGap.packed`)."""
    k: int
    stride: int
    mult: int
    shift: int
    out_scale: float

    def window_sums(self, h):
        n, hh, ww, c = h.shape
        cols = golden.im2col_nhwc(h, self.k, self.k, self.stride, 0).astype(np.int32)
        ho = golden.conv_out_size(hh, self.k, self.stride, 0)
        wo = golden.conv_out_size(ww, self.k, self.stride, 0)
        return cols.reshape(n, ho, wo, self.k * self.k, c).sum(axis=3, dtype=np.int32)

    def __call__(self, h):
        acc = self.window_sums(h)
        shape = acc.shape
        c = shape[-1]
        return golden.requantize(acc.reshape(-1, c), np.full(c, self.mult),
                                 np.full(c, self.shift)).reshape(shape)


def quant_avgpool(h, s, k, stride):
    """Quantize ``k`` x ``k`` average pooling at ``stride`` of int8 ``h`` (scale ``s``), the
    output scale calibrated on ``h``. Returns ``(QAvgPool, output, output scale)``."""
    q = QAvgPool(k, stride, 1, 0, 1.0)
    top = float(np.abs(q.window_sums(h)).max()) * s / (k * k)
    q.out_scale = top / 127.0 if top > 0 else 1.0
    gm, gs = requant_params(s / (k * k * q.out_scale))
    q.mult, q.shift = int(gm[0]), int(gs[0])
    return q, q(h), q.out_scale


@dataclass
class QMaxPool:
    """Max pooling of int8 activations (:func:`s4accel.base.golden.maxpool_nhwc`): exact, the
    output keeps the input's scale (the maximum commutes with the monotonic quantization). On
    the device a ``GemmBody.pool`` walk (:class:`s4accel.sw.conv.PoolOp`)."""
    k: int
    stride: int
    pad: int

    def __call__(self, h):
        return golden.maxpool_nhwc(h, self.k, self.stride, self.pad)


def quant_gap(h, s):
    """Quantize global average pooling of int8 ``h [N, H, W, C]`` (scale ``s``), the output
    scale calibrated on ``h``. Returns ``(QGap, output [N, C], output scale)``."""
    hw = h.shape[1] * h.shape[2]
    top = float(np.abs(h.astype(np.float64).mean(axis=(1, 2))).max()) * s
    s_pool = top / 127.0 if top > 0 else 1.0
    gm, gs = requant_params(s / (hw * s_pool))
    q = QGap(int(gm[0]), int(gs[0]), s_pool)
    return q, q(h), s_pool


# ------------------------------------------------------------------------ quantized network

def _host_windows(net: ConvNet) -> bool:
    """Whether the first convolution reads its windows from the host (module docstring)."""
    first = net.ops[0]
    if not isinstance(first, Conv) or first.src != "x":
        return False
    if any((op.src if isinstance(op.src, tuple) else (op.src,)).count("x")
           for op in net.ops[1:]):
        return False
    sp = first.spec
    return sp.k > 1 and sp.cin % BANK != 0 and _banks(sp.k * sp.k * sp.cin) < \
        sp.k * sp.k * _banks(sp.cin)


@dataclass
class QuantNet:
    """The int8 network: ``ops`` (:class:`QConv`, :class:`QAdd`, :class:`QGap`) with the
    float network's ``srcs`` and names; :meth:`forward_int` is the bit-exact definition of
    what the device computes (:meth:`device_ops`)."""
    names: list
    srcs: list
    ops: list
    input_hwc: tuple
    in_scale: float
    host_windows: bool
    out_scale: np.ndarray | float = 1.0     # the output's real value per LSB (per channel)
    host_relu: bool = False                  # a raw last convolution's ReLU, on the host
    stats: dict = field(default_factory=dict)

    def quantize_input(self, x) -> np.ndarray:
        """float NHWC -> int8 ``round(x / in_scale)`` (round half to even)."""
        x = np.asarray(x, np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("the input contains NaN or inf")
        return np.clip(np.rint(x / self.in_scale), -128, 127).astype(np.int8)

    def forward_int(self, x_q, *, exact=True, batch=64) -> np.ndarray:
        """The last operation's integer output (NHWC; int32 for a raw convolution) of int8
        NHWC images ``x_q``. ``exact=False`` runs every GEMM through the golden model on the
        packed weights (slow); the default computes the same integers with float64 BLAS."""
        return np.concatenate([self._forward(x_q[i:i + batch], exact)
                               for i in range(0, len(x_q), batch)])

    def _forward(self, x, exact):
        t = {"x": x}
        for name, src, q in zip(self.names, self.srcs, self.ops, strict=True):
            if isinstance(q, QConv):
                t[name] = q(t[src], exact)
            elif isinstance(q, QAdd):
                t[name] = q(t[src[0]], t[src[1]])
            elif isinstance(q, (QAvgPool, QMaxPool)):
                t[name] = q(t[src])
            else:
                t[name] = q(t[src])[:, None, None, :]
        return t[self.names[-1]]

    def dequantize(self, y) -> np.ndarray:
        """The last operation's integer output -> float (the host's ReLU where a raw last
        convolution has one)."""
        y = np.asarray(y, np.float64) * self.out_scale
        return np.maximum(y, 0) if self.host_relu else y

    def device_input(self, x_q) -> np.ndarray:
        """The device program's input: ``x_q`` itself, or the first convolution's windows
        (``[N, Ho, Wo, k*k*Cin]``) where it reads them from the host."""
        if not self.host_windows:
            return np.asarray(x_q)
        sp = self.ops[0].spec
        n, h, w, _ = x_q.shape
        ho = golden.conv_out_size(h, sp.k, sp.stride, sp.pad)
        wo = golden.conv_out_size(w, sp.k, sp.stride, sp.pad)
        return golden.im2col_nhwc(x_q, sp.k, sp.k, sp.stride, sp.pad).reshape(n, ho, wo, -1)

    def shapes(self) -> dict:
        """``{tensor: (H, W, C)}`` of the int8 network."""
        shape = {"x": tuple(self.input_hwc)}
        for name, src, q in zip(self.names, self.srcs, self.ops, strict=True):
            if isinstance(q, QConv):
                sp = q.spec
                h, w, _ = shape[src]
                shape[name] = (golden.conv_out_size(h, sp.k, sp.stride, sp.pad),
                               golden.conv_out_size(w, sp.k, sp.stride, sp.pad), sp.cout)
            elif isinstance(q, QAdd):
                shape[name] = shape[src[0]]
            elif isinstance(q, (QAvgPool, QMaxPool)):
                h, w, c = shape[src]
                pad = getattr(q, "pad", 0)
                shape[name] = (golden.conv_out_size(h, q.k, q.stride, pad),
                               golden.conv_out_size(w, q.k, q.stride, pad), c)
            else:
                shape[name] = (1, 1, shape[src][2])
        return shape

    def layer_rows(self) -> list[dict]:
        """One dict per operation: ``name``, ``op`` (``conv``, ``add``, ``pool``), ``src``,
        output ``shape`` (HWC), and for convolutions ``kernel``, ``stride``, ``pad``, ``k``
        (GEMM K, unpadded), ``n``, ``m`` (output pixels per image), ``sparsity``, ``output``
        (``int8``, ``int8 ReLU`` or ``int32``)."""
        shape = self.shapes()
        rows = []
        for name, src, q in zip(self.names, self.srcs, self.ops, strict=True):
            row = {"name": name, "src": src, "shape": shape[name]}
            if isinstance(q, QConv):
                sp = q.spec
                row.update(op="conv", kernel=sp.k, stride=sp.stride, pad=sp.pad,
                           k=sp.k * sp.k * sp.cin, n=sp.cout, sparsity=q.sparsity,
                           m=shape[name][0] * shape[name][1],
                           output="int32" if q.raw else "int8" + (" ReLU" if sp.relu else ""))
            else:
                row.update(op="add" if isinstance(q, QAdd) else "pool",
                           output="int8" + (" ReLU" if getattr(q, "relu", False) else ""))
                if isinstance(q, QAvgPool):
                    row.update(kernel=q.k, stride=q.stride, pad=0)
                elif isinstance(q, QMaxPool):
                    row.update(op="maxpool", kernel=q.k, stride=q.stride, pad=q.pad)
            rows.append(row)
        return rows

    def summary(self) -> str:
        """A table of the operations (:meth:`layer_rows`)."""
        lines = [f"{'layer':<14} {'op':<5} {'input':<16} {'kernel':<10} {'output HWC':<12} "
                 f"{'K':>5} {'N':>5} {'s':>3} {'output':<10}"]
        for r in self.layer_rows():
            src = "+".join(r["src"]) if isinstance(r["src"], tuple) else r["src"]
            out = "x".join(map(str, r["shape"]))
            if r["op"] == "conv":
                ker = f"{r['kernel']}x{r['kernel']}/{r['stride']} p{r['pad']}"
                lines.append(f"{r['name']:<14} {'conv':<5} {src:<16} {ker:<10} {out:<12} "
                             f"{r['k']:>5} {r['n']:>5} {r['sparsity']:>3} {r['output']:<10}")
            else:
                ker = f"{r['kernel']}x{r['kernel']}/{r['stride']}" if "kernel" in r else ""
                lines.append(f"{r['name']:<14} {r['op']:<5} {src:<16} {ker:<10} {out:<12} "
                             f"{'':>5} {'':>5} {'':>3} {r['output']:<10}")
        host = ["input quantization (float -> int8)"]
        if self.host_windows:
            host.append(f"{self.names[0]}'s windows (im2col)")
        if self.host_relu:
            host.append(f"ReLU of {self.names[-1]} (raw int32 output)")
        host.append("output dequantization")
        lines.append("on the host: " + ", ".join(host))
        return "\n".join(lines)

    def device_ops(self, sparsities=None) -> list:
        """The network as :class:`s4accel.sw.conv.ConvOp` layers for
        :func:`~.conv.network_program`: convolutions (weights in the device's channel-padded
        K order; each packed in the cheapest of ``sparsities`` that holds it, default its
        own), additions as 1x1 GEMMs over both branches side by side, pooling as a
        convolution over its window (the whole map for global pooling)."""
        from .conv import ConvOp, PoolOp, conv_weights
        from .program import LayerParams

        shape = self.shapes()
        ops = []
        for i, (name, src, q) in enumerate(zip(self.names, self.srcs, self.ops, strict=True)):
            if isinstance(q, QConv):
                sp = q.spec
                k, stride, pad = sp.k, sp.stride, sp.pad
                w = q.w_q
                if i == 0 and self.host_windows:
                    k, stride, pad = 1, 1, 0
                elif w.shape[1] != sp.k * sp.k * _banks(sp.cin) * BANK:
                    w = conv_weights(w.reshape(sp.cout, sp.k, sp.k, sp.cin))
                packed = _cheapest(w, q.sparsity, sparsities)
                params = (LayerParams("raw", bias=q.bias) if q.raw else
                          LayerParams("int8", bias=q.bias, mult=q.mult, shift=q.shift,
                                      relu=sp.relu))
                ops.append(ConvOp(name, src, packed, params, k, stride, pad))
            elif isinstance(q, QMaxPool):
                ops.append(PoolOp(name, src, q.k, q.stride, q.pad))
            else:
                c = shape[name][2]
                if isinstance(q, QAdd):
                    w, geo, relu = q.matrix(c), (1, 1, 0), q.relu
                elif isinstance(q, QAvgPool):
                    w, geo, relu = QGap.matrix(q.k * q.k, c), (q.k, q.stride, 0), False
                else:
                    h, w_, _ = shape[src]
                    w, geo, relu = QGap.matrix(h * w_, c), (h, 1, 0), False
                # one non-zero per bank: the sparsest format there is
                packed = _cheapest(w, 1, sparsities or SPARSITY_LEVELS)
                ops.append(ConvOp(name, src, packed, LayerParams(
                    "int8", bias=np.zeros(c, np.int64), mult=np.full(c, q.mult),
                    shift=np.full(c, q.shift), relu=relu), *geo))
        return ops

    def device_program(self, x_q, info, alloc, *, encode=None):
        """The whole network on int8 NHWC ``x_q`` as one device program."""
        from .conv import network_program
        return network_program(info, self.device_input(x_q), self.device_ops(info.sparsities),
                               alloc, encode=encode)

    def device_output(self, y2, n, rows) -> np.ndarray:
        """The program's decoded output -> :meth:`forward_int`'s ``[n, Ho, Wo, C]``."""
        from .conv import rows_nhwc
        h, w, c = self.shapes()[self.names[-1]]
        return rows_nhwc(y2, n, h, w, rows)[..., :c]


def _cheapest(w, s, sparsities):
    """``w`` packed at the largest of ``sparsities`` (default ``(s,)``; those at least ``s``)
    whose banks hold its non-zeros (a dense 3x3 window of one channel, 9 of a bank's 32, fits
    s = 2; an addition's or a pooling's one non-zero per bank fits any)."""
    kp = _banks(w.shape[1]) * BANK
    wp = np.zeros((w.shape[0], kp), np.int8)
    wp[:, :w.shape[1]] = w
    most = int((wp.reshape(w.shape[0], -1, BANK) != 0).sum(axis=2).max())
    fmt = max((f for f in (sparsities or (s,)) if f >= s and BANK // f >= most), default=s)
    return pack(w, fmt)


def quantize_net(net: ConvNet, calib_x, sparsity, *, in_scale=None,
                 progress=None) -> QuantNet:
    """The int8 network of ``net`` with its scales calibrated on float NHWC ``calib_x``
    (module docstring). ``sparsity``: one ``s`` for every convolution, or ``{name: s}``
    (missing names: 1). ``in_scale`` fixes the input scale (default ``max|calib| / 127``).
    ``progress``: a stream for a progress report (:mod:`.progress`), a step a layer."""
    calib = np.asarray(calib_x, np.float64)
    if calib.ndim != 4 or tuple(calib.shape[1:]) != tuple(net.input_hwc) or not len(calib):
        hwc = ", ".join(map(str, net.input_hwc))
        raise ValueError(f"calibration inputs must be NHWC [B, {hwc}] with B >= 1, not "
                         f"{list(calib.shape)}")
    if not np.all(np.isfinite(calib)):
        raise ValueError("calibration data contains NaN or inf: quantization needs finite "
                         "values")
    if in_scale is None:
        peak = float(np.abs(calib).max())
        in_scale = peak / 127.0 if peak > 0 else 1.0
    host = _host_windows(net)
    q = QuantNet([], [], [], tuple(net.input_hwc), in_scale, host)
    t = {"x": q.quantize_input(calib)}
    scale = {"x": in_scale}
    last = len(net.ops) - 1
    for i, op in track(list(enumerate(net.ops)), "calibrating and quantizing layers",
                       progress):
        if isinstance(op, Conv):
            sp = op.spec
            s = sparsity.get(op.name, 1) if isinstance(sparsity, dict) else sparsity
            w = op.weight
            if not (i == 0 and host) and sp.cin % BANK:
                from .conv import conv_weights
                w = conv_weights(w)
            qop, y, sy = quant_conv(sp, w.reshape(sp.cout, -1), op.bias, s, t[op.src],
                                    scale[op.src], raw=i == last)
            if i == last:
                q.host_relu = sp.relu
        elif isinstance(op, Add):
            a, b = op.src
            qop, y, sy = quant_add(t[a], scale[a], t[b], scale[b], relu=op.relu)
        elif isinstance(op, Gap):
            qop, y, sy = quant_gap(t[op.src], scale[op.src])
            y = y[:, None, None, :]
        elif isinstance(op, AvgPool):
            qop, y, sy = quant_avgpool(t[op.src], scale[op.src], op.k, op.stride)
        elif isinstance(op, MaxPool):
            if i == 0 and host:
                raise ValueError(f"{op.name}: max pooling of the host's windows")
            qop = QMaxPool(op.k, op.stride, op.pad)
            y, sy = qop(t[op.src]), scale[op.src]
        else:
            raise TypeError(f"not a network operation: {op!r}")
        q.names.append(op.name)
        q.srcs.append(op.src)
        q.ops.append(qop)
        t[op.name], scale[op.name] = y, sy
    q.out_scale = scale[net.ops[-1].name]
    return q
