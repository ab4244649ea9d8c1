"""From float weights to device programs: prune, quantize, pack, tile, schedule.

A model is a chain of linear layers ``y = act(x @ W.T + b)`` (:class:`FloatLinear`), as in an
MLP or the linear layers of a transformer. :func:`compile_model` turns it into a
:class:`CompiledModel`:

1. **Pruning**: each layer's float weights are pruned bank-balanced to its sparsity ``s``
   (:func:`s4accel.base.sparse.prune`, magnitude per bank of 32).
2. **Quantization** (symmetric int8, calibrated on sample inputs): the input of layer 0 gets a
   per-tensor scale ``s_x = max|x_calib| / 127``; weights get per-output-channel scales
   ``s_w[n] = max|W[n]| / 127``; the bias becomes int32 ``round(b / (s_x * s_w))``. A layer
   with int8 output (every layer but the last, by default) requantizes on the device with
   ``mult * 2**-shift ~= s_x * s_w[n] / s_y``, ``s_y`` from the calibrated output range, and
   applies ReLU on the device; its int8 output is the next layer's input with scale ``s_y``.
   A layer with a LUT activation (``act``, :data:`ACTIVATIONS`) requantizes to the calibrated
   range of its pre-activation instead, and its 256-entry table maps that int8 value to the
   activation's output in steps of ``1/127`` (the output scale).
   The last layer returns raw int32 (``acc + bias``), dequantized on the host (with its ReLU or
   activation, if it has one, applied there).
3. **Packing, tiling, scheduling**: :func:`s4accel.sw.program.layer_program` places each layer
   in the scratchpads and orders its descriptors so loads and stores overlap the GEMMs.

Operations the device lacks run on the host and are named in :meth:`CompiledModel.summary`
(input quantization, the final dequantization, and whatever the caller adds, for example
softmax, layer norm or argmax).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base import golden
from ..base import vector as V
from ..base.config import SPARSITY_LEVELS
from ..base.sparse import PackedWeights, pack, prune, unpack
from .program import LayerParams

__all__ = ["ACTIVATIONS", "FloatLinear", "QuantLayer", "CompiledModel", "compile_model",
           "requant_params"]

#: Activations a layer runs through the device's lookup table: name -> float function. Their
#: outputs lie in [-1, 1], so the table's output scale is 1/127.
ACTIVATIONS = {
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "tanh": np.tanh,
}


def _check_finite(a, what):
    """A ``ValueError`` naming ``what`` and the first NaN or infinity in float array ``a``."""
    bad = np.argwhere(~np.isfinite(a))
    if len(bad):
        at = ", ".join(str(int(i)) for i in bad[0])
        raise ValueError(f"{what} contains NaN or inf (at [{at}]): quantization needs finite "
                         "values")


@dataclass
class FloatLinear:
    """One float layer ``y = x @ weight.T + bias``, optionally followed by ReLU or by one of
    the LUT activations ``act`` (:data:`ACTIVATIONS`), not both."""
    weight: np.ndarray            # [N, K]
    bias: np.ndarray | None = None
    relu: bool = False
    name: str = ""
    act: str | None = None

    def __post_init__(self):
        self.weight = np.asarray(self.weight, dtype=np.float64)
        if self.weight.ndim != 2:
            raise ValueError(f"layer {self.name!r}: weight must be 2-D [N, K], not "
                             f"{self.weight.shape}")
        n = self.weight.shape[0]
        self.bias = (np.zeros(n) if self.bias is None
                     else np.asarray(self.bias, dtype=np.float64).reshape(-1))
        if self.bias.shape != (n,):
            raise ValueError(f"layer {self.name!r}: bias must have {n} entries, not "
                             f"{self.bias.shape}")
        _check_finite(self.weight, f"layer {self.name!r}: weight")
        _check_finite(self.bias, f"layer {self.name!r}: bias")
        if self.act is not None and self.act not in ACTIVATIONS:
            raise ValueError(f"layer {self.name!r}: act must be one of "
                             f"{', '.join(ACTIVATIONS)} or None, not {self.act!r}")
        if self.act is not None and self.relu:
            raise ValueError(f"layer {self.name!r}: ReLU and {self.act} together")

    def __call__(self, x):
        y = np.asarray(x, dtype=np.float64) @ self.weight.T + self.bias
        return _activate(y, self.relu, self.act)


def _activate(y, relu, act):
    if relu:
        return np.maximum(y, 0)
    return ACTIVATIONS[act](y) if act is not None else y


@dataclass
class QuantLayer:
    """A compiled layer: packed int8 weights and the output parameters the device uses."""
    name: str
    sparsity: int
    packed: PackedWeights
    params: LayerParams
    in_scale: float               # real value of one input LSB
    w_scale: np.ndarray           # [N] real value of one weight LSB per output channel
    out_scale: float | None       # real value of one output LSB (int8 layers)
    w_pruned: np.ndarray          # [N, K] float weights after pruning (for the float reference)
    bias: np.ndarray              # [N] float bias
    relu: bool = False
    act: str | None = None        # LUT activation (on the host for a raw last layer)

    @property
    def stored_weights(self) -> int:
        return self.packed.n * self.packed.banks * self.packed.nnz


@dataclass
class CompiledModel:
    layers: list = field(default_factory=list)
    in_scale: float = 1.0
    host_ops: list = field(default_factory=list)
    #: The host's transform of the input before its quantization (:func:`compile_model`'s
    #: ``in_div`` and ``zero_point``): ``x / in_div``, then the int8 codes ``round(x /
    #: in_scale) - in_zero``; the first layer's weights are the float ones times ``in_div``
    #: (per input channel) and its int32 bias absorbs the zero point.
    in_div: np.ndarray | None = None
    in_zero: int = 0

    def transform_input(self, x) -> np.ndarray:
        """``x / in_div - in_zero * in_scale``: the float value of the codes
        :meth:`quantize_input` gives (the identity without a transform)."""
        x = np.asarray(x, dtype=np.float64)
        if self.in_div is not None:
            x = x / self.in_div
        return x - self.in_zero * self.in_scale if self.in_zero else x

    def quantize_input(self, x) -> np.ndarray:
        """Host: float input -> int8 with the calibrated scale (NaN or inf: ``ValueError``),
        after :meth:`transform_input`."""
        x = np.asarray(x, dtype=np.float64)
        _check_finite(x, "input")
        if self.in_div is not None:
            x = x / self.in_div
        q = np.round(x / self.in_scale) - self.in_zero
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize_output(self, raw) -> np.ndarray:
        """Host: the last layer's int32 output -> float, then its ReLU or activation if it
        has one (listed in :attr:`host_ops`)."""
        last = self.layers[-1]
        y = np.asarray(raw, dtype=np.float64) * last.in_scale * last.w_scale
        return _activate(y, last.relu, last.act)

    def reference(self, x_q) -> np.ndarray:
        """The golden model of the whole chain on int8 input: what the device must return
        (int32 output of the last layer)."""
        h = np.asarray(x_q)
        for layer in self.layers:
            p = layer.params
            if p.mode == "raw":
                h = golden.gemm_raw(h, layer.packed, p.bias)
            else:
                h = golden.gemm_int8(h, layer.packed, p.bias, p.mult, p.shift, relu=p.relu,
                                     lut=p.lut)
        return h

    def float_pruned(self, x) -> np.ndarray:
        """The float model with the pruned weights (no quantization)."""
        h = self.transform_input(x)
        for i, layer in enumerate(self.layers):
            b = layer.bias
            if i == 0 and self.in_zero:         # (the shift's share, in float)
                b = b + layer.w_pruned.sum(axis=1) * self.in_zero * self.in_scale
            h = _activate(h @ layer.w_pruned.T + b, layer.relu, layer.act)
        return h

    @property
    def stored_weights(self) -> int:
        return sum(layer.stored_weights for layer in self.layers)

    def summary(self) -> str:
        lines = [f"{'layer':<12} {'K':>5} {'N':>5} {'s':>3} {'stored w':>9} {'output':<22}"]
        for layer in self.layers:
            p = layer.params
            out = "int32 (raw)" if p.mode == "raw" else "int8" + (" + ReLU" if p.relu else "")
            if p.mode != "raw" and p.lut is not None:
                out += f" + LUT {layer.act}"
            lines.append(f"{layer.name:<12} {layer.packed.k:>5} {layer.packed.n:>5} "
                         f"{layer.sparsity:>3} {layer.stored_weights:>9} {out:<22}")
        lines.append(f"stored weights: {self.stored_weights}")
        lines.append("on the host: " + ", ".join(self.host_ops))
        return "\n".join(lines)


def requant_params(scale) -> tuple[np.ndarray, np.ndarray]:
    """``(mult, shift)`` with ``mult * 2**-shift ~= scale`` per channel, ``mult`` < 2**16."""
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise ValueError(f"requantization scales must be positive and finite, got "
                         f"{scale[(scale <= 0) | ~np.isfinite(scale)][:3]}")
    mult = np.zeros(scale.shape, np.int64)
    shift = np.zeros(scale.shape, np.int64)
    for i, v in enumerate(scale):
        sh = golden.SHIFT_MAX
        while sh > 0 and round(v * 2.0 ** sh) >= 1 << golden.MULT_BITS:
            sh -= 1
        mult[i] = min(round(v * 2.0 ** sh), (1 << golden.MULT_BITS) - 1)
        shift[i] = sh
    return mult, shift


def _w_quant(w):
    peak = np.abs(w).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def compile_model(layers, calib_x, sparsity, *, last_raw=True, host_ops=(), in_div=None,
                  zero_point=False) -> CompiledModel:
    """Compile float ``layers`` (a list of :class:`FloatLinear`) for the device.

    ``calib_x`` is a float array of sample inputs ``[B, K0]`` used to choose the input and
    activation scales (at least one sample; every value, weight and bias finite: otherwise a
    ``ValueError`` names the problem, as it does for a layer with N or K = 0). ``sparsity`` is
    one ``s`` for every layer or a list with one per layer. Every layer but the last outputs
    int8 (ReLU, if the layer has it, on the device); the last outputs raw int32 unless
    ``last_raw`` is False.

    Two host-side input transforms, for inputs whose per-tensor int8 scale fits badly:

    - ``in_div`` (``[K0]``, positive): the host divides input channel ``k`` by ``in_div[k]``
      and the first layer's weights are multiplied by it (SmoothQuant's migration of
      activation outliers into the weights: exact in float; where a LayerNorm or a linear
      layer produces the input, the division folds into its parameters);
    - ``zero_point``: the input range ``[lo, hi]`` (after ``in_div``) gets an integer zero
      point ``z`` (:func:`s4accel.base.vector.zero_point`: codes ``round(x / scale) - z``),
      so a one-sided input (a GELU's output, ``>= -0.17``) uses all 256 codes instead of
      half; the first layer's int32 bias adds ``z`` times each row's sum of stored int8
      weights, exactly (folding ``W z`` with the float weights instead sums the weights'
      rounding error times ``z`` coherently over K). Where a LUT produces the input, the
      table emits the shifted codes.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("a model needs at least one layer")
    s_list = list(sparsity) if isinstance(sparsity, (list, tuple)) else [sparsity] * len(layers)
    if len(s_list) != len(layers):
        raise ValueError(f"{len(s_list)} sparsity levels for {len(layers)} layers")
    for i, s in enumerate(s_list):
        if s not in SPARSITY_LEVELS:
            raise ValueError(f"layer {i}: sparsity must be one of {SPARSITY_LEVELS}, not {s!r}")
    for i in range(1, len(layers)):
        if layers[i].weight.shape[1] != layers[i - 1].weight.shape[0]:
            raise ValueError(f"layer {i} takes K={layers[i].weight.shape[1]} inputs but layer "
                             f"{i - 1} gives N={layers[i - 1].weight.shape[0]}")
    for i, layer in enumerate(layers):
        if 0 in layer.weight.shape:
            raise ValueError(f"layer {layer.name or f'layer{i}'!r}: weight needs N > 0 and "
                             f"K > 0, not {layer.weight.shape}")
    calib = np.asarray(calib_x, dtype=np.float64)
    if calib.ndim != 2 or calib.shape[1] != layers[0].weight.shape[1]:
        raise ValueError(f"calibration inputs must be [B, {layers[0].weight.shape[1]}], not "
                         f"{calib.shape}")
    if calib.size == 0:
        raise ValueError(f"calibration inputs are empty (shape {calib.shape}): the scales "
                         "need at least one sample")
    _check_finite(calib, "calibration data")
    ops = []
    if in_div is not None:
        in_div = np.asarray(in_div, dtype=np.float64)
        if (in_div.shape != (calib.shape[1],) or not np.all(np.isfinite(in_div))
                or np.any(in_div <= 0)):
            raise ValueError(f"in_div must be {calib.shape[1]} positive finite factors, not "
                             f"shape {in_div.shape}")
        calib = calib / in_div
        layers = [FloatLinear(layers[0].weight * in_div[None, :], layers[0].bias,
                              relu=layers[0].relu, name=layers[0].name, act=layers[0].act),
                  *layers[1:]]
        ops.append("per-channel input division (SmoothQuant)")
    in_zero = 0
    if zero_point:
        in_scale, in_zero = V.zero_point(calib.min(), calib.max())
        ops.append("input zero point")
    else:
        peak = float(np.abs(calib).max())
        in_scale = peak / 127.0 if peak > 0 else 1.0
    model = CompiledModel(in_scale=in_scale, in_div=in_div, in_zero=in_zero,
                          host_ops=[*ops, "input quantization (float -> int8)", *host_ops])
    x_scale = in_scale
    h_q = np.clip(np.round(calib / in_scale) - in_zero, -128, 127).astype(np.int8)
    for i, (layer, s) in enumerate(zip(layers, s_list, strict=True)):
        name = layer.name or f"layer{i}"
        w_pruned = prune(layer.weight, s)
        w_q, w_scale = _w_quant(w_pruned)
        packed = pack(prune(w_q, s), s)
        acc_scale = x_scale * w_scale
        bias_q = np.round(layer.bias / acc_scale)
        if i == 0 and in_zero:       # W_q (code + z) = W_q code + z * (W_q's row sums)
            bias_q = bias_q + in_zero * unpack(packed).astype(np.int64).sum(axis=1)
        bias_q = np.clip(bias_q, -(1 << 31), (1 << 31) - 1).astype(np.int64)
        last = i == len(layers) - 1
        if last and last_raw:
            params = LayerParams("raw", bias=bias_q)
            out_scale = None
            if layer.relu or layer.act:
                model.host_ops.append(f"{'ReLU' if layer.relu else layer.act} of {name} "
                                      "(raw int32 output)")
        else:
            # calibrate the output range on the quantized chain itself
            acc = golden.gemm_raw(h_q, packed, bias_q).astype(np.float64) * acc_scale
            if layer.relu:
                acc = np.maximum(acc, 0)
            top = float(np.abs(acc).max())
            out_scale = top / 127.0 if top > 0 else 1.0
            mult, shift = requant_params(acc_scale / out_scale)
            lut = None
            if layer.act is not None:
                # the table maps the int8 pre-activation (scale out_scale) to the activation's
                # output in steps of 1/127
                pre = np.arange(-128, 128) * out_scale
                lut = np.clip(np.round(ACTIVATIONS[layer.act](pre) * 127), -128,
                              127).astype(np.int8)
                out_scale = 1 / 127
            params = LayerParams("int8", bias=bias_q, mult=mult, shift=shift, relu=layer.relu,
                                 lut=lut)
        q = QuantLayer(name=name, sparsity=s, packed=packed, params=params, in_scale=x_scale,
                       w_scale=w_scale, out_scale=out_scale, w_pruned=w_pruned,
                       bias=layer.bias, relu=layer.relu, act=layer.act)
        model.layers.append(q)
        if not last or not last_raw:
            h_q = golden.gemm_int8(h_q, packed, params.bias, params.mult, params.shift,
                                   relu=params.relu, lut=params.lut)
            x_scale = out_scale
    if last_raw:
        model.host_ops.append("output dequantization (int32 -> float)")
    return model


async def run_model(driver, model: CompiledModel, x_q, *, max_cycles=50_000_000,
                    on_chip=True):
    """Run a compiled model through a :class:`~s4accel.sw.driver.Driver`; returns ``(output,
    total device cycles, LayerResults)``.

    ``on_chip`` (default): the whole chain as one program whose activations stay on chip
    (:func:`~s4accel.sw.chain.chain_program`; one LayerResult); where the chain does not fit
    (:class:`~s4accel.sw.chain.NotOnChip`), or with ``on_chip=False``, layer by layer, the
    host moving each int8 output into the next layer's input (a LayerResult per layer)."""
    from .chain import NotOnChip, chain_layers
    h = np.asarray(x_q)
    if on_chip:
        try:
            res = await driver.run_chain(h, chain_layers(model), max_cycles=max_cycles)
            return res.y, res.cycles, [res]
        except NotOnChip:
            pass
    results = []
    for layer in model.layers:
        res = await driver.run_layer(h, layer.packed, layer.params, max_cycles=max_cycles)
        results.append(res)
        h = res.y
    return h, sum(r.cycles for r in results), results
