"""ONNX import: a float ONNX graph lowered to the compiler's chain of linear layers, to a
convolutional network (:mod:`.convnet`) or to transformer encoder layers (:mod:`.encoder`).

What the device runs today is a chain ``y = act(x @ W.T + b)``
(:class:`~.compiler.FloatLinear`, ``act`` ReLU, a LUT activation or nothing).
:func:`import_onnx` reads an ONNX graph of default-domain opsets :data:`OPSETS` that is such a
chain and returns its layers (:class:`ImportedGraph`); :func:`compile_onnx` compiles them with
:func:`~.compiler.compile_model`.

Lowered operators:

- ``Gemm`` (``transA = 0``, constant ``B`` and ``C``; ``alpha``, ``beta``, ``transB`` folded
  into the weights) and ``MatMul`` with a constant right operand, followed optionally by an
  ``Add`` of a constant bias (``[N]`` or ``[1, N]``): one layer;
- ``Relu`` right after a layer: the layer's ReLU (on the device for int8 layers);
- ``Sigmoid`` and ``Tanh`` right after a layer: the layer's LUT activation (the device's
  lookup table for int8 layers, the host for the last, raw layer);
- ``Flatten`` and ``Reshape`` that keep ``[batch, features]`` (on the graph input they
  flatten it on the host, row-major, as ONNX does), ``Identity``, ``Dropout`` (inference),
  ``Constant``.

A graph with a 4-D (NCHW) input and a ``Conv``, ``BatchNormalization``, ``AveragePool``,
``GlobalAveragePool`` or ``MaxPool`` node is a CNN (:class:`ImportedNet`, a
:class:`~.convnet.ConvNet` quantized by :func:`~.convnet.quantize_net`):

- ``Conv`` with constant weights (and bias), ``group = 1``, a square kernel, equal strides of
  1 or 2, symmetric ``pads`` (or ``auto_pad`` ``VALID``) below the kernel size and 8, no
  dilation;
- ``BatchNormalization`` (inference) right after a ``Conv`` that nothing else reads: folded
  into its weights and bias;
- ``Relu`` right after a ``Conv``, ``Gemm`` or ``Add`` that nothing else reads;
- ``Add`` of two activations of the same shape (a residual addition; each tensor added once,
  not the graph input), or of a constant bias after a ``Gemm``;
- ``AveragePool`` without padding (square kernel, stride 1 or 2), ``GlobalAveragePool`` of a
  square map up to 15x15;
- ``Flatten`` / ``Reshape`` of a 1x1 map to ``[batch, channels]``, then ``Gemm`` / ``MatMul``
  (a 1x1 convolution on the device); ``Identity``, ``Dropout``, ``Constant``.

- ``MaxPool`` (square kernel, stride 1 or 2, equal ``pads`` on every side below the kernel,
  no ``ceil_mode``, no ``Indices`` output): the device's max pooling (``GemmBody.pool``).

``AveragePool`` with padding, grouped or dilated convolutions and asymmetric padding are
refused (for now).

Anything else is refused with an :class:`OnnxImportError` naming the node and its op type, as
is a graph that is not one chain (a CNN: whose output is not its last layer's); unsupported
nodes before the first or after the last layer can run on the host instead
(:mod:`.host_fallback`, ``s4 compile --host-fallback``). Shapes are
static: a dynamic or unknown input dimension is refused naming the input unless
``input_shape`` fixes it. The batch dimension (the first) does not enter the compiled layers:
any number of rows (images) runs.

A graph with a 3-D input (``[batch, seq, hidden]``, batch 1 or dynamic), a ``Softmax`` and a
LayerNorm (``LayerNormalization`` or ``ReduceMean``) is a stack of post-LN transformer encoder
layers (:class:`~.onnx_encoder.ImportedEncoder`, one :class:`~.encoder.FloatEncoderLayer` a
layer, compiled by :func:`~.encoder.compile_stack` to an :class:`~.encoder.EncoderStack`):
Q, K, V, attention, output, residuals, LayerNorms and
the GELU FFN matched by following the data from the input (:mod:`.onnx_encoder` lists the
operators and spellings); the sequence length is fixed by the graph or ``input_shape``.

``onnx`` is imported inside the functions, so the rest of the package works without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .compiler import CompiledModel, FloatLinear, compile_model
from .convnet import Add, AvgPool, Conv, ConvNet, Gap, MaxPool, quantize_net

__all__ = ["OPSETS", "OnnxImportError", "ImportedLayers", "ImportedGraph", "ImportedNet",
           "import_onnx", "compile_onnx", "export_onnx", "nchw_input", "graph_output"]

#: Default-domain opset versions the importer accepts.
OPSETS = range(13, 21)


class OnnxImportError(ValueError):
    """An ONNX graph the importer cannot lower; the message names the node or input."""


@dataclass
class ImportedLayers:
    """Layers read from an ONNX graph (the fields :class:`ImportedGraph` and
    :class:`~.onnx_encoder.ImportedEncoder` share).

    Members
    -------
    layers : list
        The layers, in order.
    input_name, output_name : str
        The graph's input and output tensors.
    input_shape : tuple of int
        The input's static shape (``input_shape`` given to :func:`import_onnx` or the graph's).
    opset : int
        The graph's default-domain opset.
    """
    layers: list = field(default_factory=list)
    input_name: str = ""
    output_name: str = ""
    input_shape: tuple = ()
    opset: int = 0


@dataclass
class ImportedGraph(ImportedLayers):
    """A chain of float linear layers (``layers``: :class:`~.compiler.FloatLinear`) read from
    an ONNX graph (:class:`ImportedLayers`)."""

    @property
    def features(self) -> int:
        """Inputs of the first layer: the input flattened past the batch dimension."""
        return math.prod(self.input_shape[1:])

    def host_input(self, x) -> np.ndarray:
        """``x`` shaped as the graph's input, with any batch size -> float ``[B, features]``
        (``ValueError`` if the shape past the batch dimension differs)."""
        x = np.asarray(x, dtype=np.float64)
        want = tuple(self.input_shape[1:])
        if x.ndim < 1 or tuple(x.shape[1:]) != want:
            raise ValueError(f"input {self.input_name!r} must have shape [B, "
                             f"{', '.join(map(str, want))}], not {list(x.shape)}")
        return x.reshape(len(x), -1)


def _load(model):
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    try:
        return onnx.load(str(model))
    except FileNotFoundError as e:
        raise OnnxImportError(f"{model}: no such file") from e
    except Exception as e:   # onnx raises DecodeError, OSError, ... for a file it cannot parse
        reason = " ".join(str(e).split()) or type(e).__name__
        raise OnnxImportError(f"{model}: not a readable ONNX model: {reason}") from e


def _node_name(node, index):
    return node.name or f"#{index}"


def _refuse(node, index, why):
    return OnnxImportError(f"node {_node_name(node, index)!r} ({node.op_type}): {why}")


def import_onnx(model, *, input_shape=None) -> ImportedGraph:
    """Read ``model`` (a path or an ``onnx.ModelProto``) into an :class:`ImportedGraph`.

    ``input_shape`` (a sequence of ints) replaces the graph input's declared shape; it must
    have the same rank. Raises :class:`OnnxImportError` for anything the device cannot run.
    """
    from onnx import numpy_helper

    m = _load(model)
    g = m.graph
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset not in OPSETS:
        raise OnnxImportError(f"default-domain opset {opset} is not supported (supported: "
                              f"{OPSETS.start} to {OPSETS.stop - 1})")
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise OnnxImportError(f"the graph must have one input, not {len(inputs)} "
                              f"({', '.join(i.name for i in inputs)})")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in dims]
    if len(g.output) != 1:
        raise OnnxImportError(f"the graph must have one output, not {len(g.output)}")
    from .onnx_encoder import import_encoder, is_encoder_graph
    if is_encoder_graph(g, len(declared)):
        return import_encoder(m, g, consts, inp, declared, input_shape, opset)
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != len(declared) or any(d <= 0 for d in shape) or any(
                want is not None and i > 0 and want != got
                for i, (want, got) in enumerate(zip(declared, shape, strict=True))):
            raise OnnxImportError(f"input {inp.name!r}: input shape {list(shape)} does not fit "
                                  f"the declared {_dims_text(dims)}")
    else:
        if any(d is None for d in declared):
            raise OnnxImportError(f"input {inp.name!r} has dynamic shape {_dims_text(dims)}: "
                                  "fix it with an input shape (--input-shape)")
        shape = tuple(declared)
    if len(shape) < 2:
        raise OnnxImportError(f"input {inp.name!r}: shape {list(shape)} needs a batch and a "
                              "feature dimension")

    if len(shape) == 4 and any(n.op_type in _CNN_OPS for n in g.node):
        return _import_cnn(g, consts, inp.name, shape, opset)
    out = ImportedGraph(input_name=inp.name, output_name=g.output[0].name, input_shape=shape,
                        opset=opset)
    cur = inp.name          # the one activation tensor of the chain
    cur_shape = list(shape)
    state = "input"         # "input", "linear" (bias may follow), "act" (after ReLU)
    for idx, node in enumerate(g.node):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise _refuse(node, idx, f"operator domain {node.domain!r} is not supported")
        if op == "Constant":
            consts[node.output[0]] = _constant(node, idx)
            continue
        args = [a for a in node.input if a]
        acts = [a for a in args if a not in consts]
        if acts != [cur] or args[0] != cur:
            raise _refuse(node, idx, "the importer lowers one chain of layers; this node "
                          f"takes {acts or 'only constants'} where the chain is at {cur!r}")
        attrs = {a.name: _attr(a) for a in node.attribute}
        if op in ("Gemm", "MatMul"):
            if len(cur_shape) != 2:
                raise _refuse(node, idx, f"the input is {len(cur_shape)}-D {cur_shape}; "
                              "flatten it to [batch, features] first")
            w, bias = _gemm_weight(node, idx, op, attrs, args, consts)
            if w.shape[1] != cur_shape[1]:
                raise _refuse(node, idx, f"the weight takes K={w.shape[1]} inputs but the "
                              f"input has {cur_shape[1]} features")
            _check_finite(node, idx, w, bias)
            out.layers.append(FloatLinear(w, bias, name=_node_name(node, idx)))
            cur_shape = [cur_shape[0], w.shape[0]]
            state = "linear"
        elif op == "Add":
            if state != "linear":
                raise _refuse(node, idx, "an Add of a constant folds only into the bias of "
                              "the linear layer right before it")
            layer = out.layers[-1]
            extra = _bias(node, idx, consts[args[1]], layer.weight.shape[0])
            _check_finite(node, idx, extra)
            layer.bias = layer.bias + extra
        elif op == "Relu":
            if state != "linear":
                raise _refuse(node, idx, "a Relu runs on the device only right after a "
                              "linear layer")
            out.layers[-1].relu = True
            state = "act"
        elif op in ("Flatten", "Reshape"):
            new = _reshaped(node, idx, op, attrs, args, consts, cur_shape)
            if len(new) != 2 or new[0] != cur_shape[0]:
                raise _refuse(node, idx, f"reshapes {cur_shape} to {new}: only reshapes to "
                              "[batch, features] fold away")
            if state != "input" and new != cur_shape:
                raise _refuse(node, idx, f"reshapes {cur_shape} to {new} between layers")
            cur_shape = new
        elif op in ("Identity", "Dropout"):
            if op == "Dropout" and len(args) > 2 and consts[args[2]].item():
                raise _refuse(node, idx, "training_mode = true is not supported")
            if op == "Dropout" and len(node.output) > 1 and node.output[1]:
                raise _refuse(node, idx, "the mask output is not supported")
        elif op in ("Sigmoid", "Tanh"):
            if state != "linear":
                raise _refuse(node, idx, f"a {op} runs on the device (its lookup table) only "
                              "right after a linear layer")
            out.layers[-1].act = op.lower()
            state = "act"
        else:
            raise _refuse(node, idx, "operator not supported on the device")
        cur = node.output[0]
    if not out.layers:
        raise OnnxImportError("the graph has no Gemm or MatMul layer")
    if cur != out.output_name:
        raise OnnxImportError(f"the graph's output {out.output_name!r} is not the end of the "
                              f"chain ({cur!r})")
    return out


def compile_onnx(model, calib_x, sparsity, *, input_shape=None):
    """Import ``model`` (:func:`import_onnx`) and compile it with calibration inputs
    ``calib_x`` shaped as the graph's input (any batch size). Returns ``(ImportedGraph,
    CompiledModel)`` (:func:`compile_model`) for a chain of linear layers, ``(ImportedNet,
    QuantNet)`` (:func:`~.convnet.quantize_net`) for a CNN, ``(ImportedEncoder,
    EncoderStack)`` (:func:`~.encoder.compile_stack`) for an encoder; ``sparsity`` is one ``s``
    or one per layer (:attr:`ImportedNet.layers` for a CNN, encoder layers)."""
    from .onnx_encoder import ImportedEncoder

    graph = import_onnx(model, input_shape=input_shape)
    calib = graph.host_input(calib_x)
    if isinstance(graph, ImportedEncoder):
        from .encoder import compile_stack
        return graph, compile_stack(graph.layers, list(calib), sparsity)
    if isinstance(graph, ImportedNet):
        return graph, quantize_net(graph.net, calib, graph.sparsity_map(sparsity))
    compiled: CompiledModel = compile_model(graph.layers, calib, sparsity)
    return graph, compiled


def _dims_text(dims):
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0
                           else (d.dim_param or "?") for d in dims) + "]"


def _attr(a):
    from onnx import helper
    return helper.get_attribute_value(a)


def _constant(node, idx):
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t).astype(np.float64)
        if a.name in ("value_float", "value_int"):
            return np.asarray(_attr(a), dtype=np.float64)
        if a.name in ("value_floats", "value_ints"):
            return np.asarray(list(_attr(a)), dtype=np.float64)
    raise _refuse(node, idx, "only tensor, float and int constants are supported")


def _bias(node, idx, c, n):
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        return np.full(n, float(c.reshape(-1)[0]))
    if c.shape in ((n,), (1, n)):
        return c.reshape(n)
    raise _refuse(node, idx, f"the bias must have shape [{n}] or [1, {n}], not {list(c.shape)}")


def _gemm_weight(node, idx, op, attrs, args, consts):
    """A ``Gemm`` / ``MatMul``'s constant weight as ``[N, K]`` (``alpha``, ``transB`` folded)
    and its bias ``[N]`` (``beta * C``, or zeros)."""
    w = consts[args[1]]
    if w.ndim != 2:
        raise _refuse(node, idx, f"the weight must be 2-D, not {list(w.shape)}")
    if op != "Gemm":
        return w.T, np.zeros(w.shape[1])
    if attrs.get("transA", 0):
        raise _refuse(node, idx, "transA = 1 is not supported")
    w = (w if attrs.get("transB", 0) else w.T) * attrs.get("alpha", 1.0)
    bias = np.zeros(w.shape[0])
    if len(args) > 2:
        bias = bias + attrs.get("beta", 1.0) * _bias(node, idx, consts[args[2]], w.shape[0])
    return w, bias


def _pool_window(node, idx, attrs):
    """A ``MaxPool`` / ``AveragePool``'s ``(kernel, stride, pads)``: a square kernel, equal
    strides, no ``ceil_mode``, no dilation, ``auto_pad`` ``NOTSET`` or ``VALID``."""
    ks = list(attrs.get("kernel_shape", []))
    strides = list(attrs.get("strides", [1, 1]))
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        raise _refuse(node, idx, f"auto_pad {auto} is not supported (give pads)")
    if attrs.get("ceil_mode", 0):
        raise _refuse(node, idx, "ceil_mode = 1 is not supported")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise _refuse(node, idx, f"dilations {list(attrs['dilations'])}: only 1 is supported")
    if len(ks) != 2 or ks[0] != ks[1] or strides[0] != strides[1]:
        raise _refuse(node, idx, f"kernel {ks}, strides {strides}: only square kernels and "
                      "equal strides are supported")
    return ks[0], strides[0], list(attrs.get("pads", [0, 0, 0, 0]))


def _check_finite(node, idx, *arrays):
    for a in arrays:
        if not np.all(np.isfinite(a)):
            raise _refuse(node, idx, "the constants contain NaN or inf")


def _reshaped(node, idx, op, attrs, args, consts, shape):
    if op == "Flatten":
        axis = attrs.get("axis", 1)
        axis = axis + len(shape) if axis < 0 else axis
        return [math.prod(shape[:axis]), math.prod(shape[axis:])]
    if attrs.get("allowzero", 0):
        raise _refuse(node, idx, "allowzero = 1 is not supported")
    spec = [int(v) for v in consts[args[1]].reshape(-1)]
    new = [shape[i] if v == 0 else v for i, v in enumerate(spec)]
    if new.count(-1) > 1:
        raise _refuse(node, idx, f"the shape {spec} has more than one -1")
    if -1 in new:
        known = math.prod(v for v in new if v != -1)
        new[new.index(-1)] = math.prod(shape) // known if known else 0
    if math.prod(new) != math.prod(shape):
        raise _refuse(node, idx, f"cannot reshape {shape} to {spec}")
    return new


def export_onnx(layers, *, opset=17, input_name="x", output_name="y", batch="batch"):
    """A float ONNX model (``onnx.ModelProto``) of a chain of :class:`FloatLinear` layers:
    one ``Gemm`` (``transB = 1``) per layer, a ``Relu``, ``Sigmoid`` or ``Tanh`` after those
    that have one; the input
    ``[batch, K]`` with a symbolic batch dimension named ``batch``. For exporting the models
    the project trains itself (the digits MLPs)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    cur = input_name
    for i, layer in enumerate(layers):
        name = layer.name or f"layer{i}"
        w, b = f"{name}.weight", f"{name}.bias"
        inits += [numpy_helper.from_array(layer.weight.astype(np.float32), w),
                  numpy_helper.from_array(layer.bias.astype(np.float32), b)]
        last = i == len(layers) - 1
        out = output_name if last and not (layer.relu or layer.act) else f"{name}.out"
        nodes.append(helper.make_node("Gemm", [cur, w, b], [out], name=name, transB=1))
        cur = out
        act = "Relu" if layer.relu else {"sigmoid": "Sigmoid", "tanh": "Tanh"}.get(layer.act)
        if act:
            out = output_name if last else f"{name}.{act.lower()}"
            nodes.append(helper.make_node(act, [cur], [out], name=f"{name}.{act.lower()}"))
            cur = out
    k, n = layers[0].weight.shape[1], layers[-1].weight.shape[0]
    graph = helper.make_graph(
        nodes, "s4_mlp",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, k])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="s4accel")
    model.ir_version = 8     # what onnxruntime releases since 1.10 read
    return model


# ------------------------------------------------------------------------------------ CNNs

#: Operators that make a graph with a 4-D input a CNN (read by :func:`_import_cnn`).
_CNN_OPS = ("Conv", "BatchNormalization", "GlobalAveragePool", "AveragePool", "MaxPool")


@dataclass
class ImportedNet:
    """A CNN read from an ONNX graph: a float :class:`~.convnet.ConvNet` (NHWC) and how the
    graph's NCHW tensors map onto it.

    Members
    -------
    net : ConvNet
        The network; its input is the graph input transposed to NHWC.
    input_name, output_name : str
        The graph's input and output tensors.
    input_shape : tuple of int
        The input's static NCHW shape.
    opset : int
        The graph's default-domain opset.
    flat_output : bool
        The output is ``[batch, C]`` (after ``Flatten`` and ``Gemm``), else NCHW.
    """
    net: ConvNet
    input_name: str = ""
    output_name: str = ""
    input_shape: tuple = ()
    opset: int = 0
    flat_output: bool = True

    @property
    def layers(self) -> list:
        """Names of the convolutions (``Gemm`` layers included), in order: what a per-layer
        sparsity list counts."""
        return [op.name for op in self.net.ops if isinstance(op, Conv)]

    def sparsity_map(self, sparsity) -> dict:
        """``sparsity`` (one ``s`` or one per :attr:`layers`) as ``{layer: s}``."""
        names = self.layers
        if isinstance(sparsity, (list, tuple)):
            if len(sparsity) != len(names):
                raise ValueError(f"{len(sparsity)} sparsity levels for {len(names)} layers "
                                 f"({', '.join(names)})")
            return dict(zip(names, sparsity, strict=True))
        return dict.fromkeys(names, sparsity)

    def host_input(self, x) -> np.ndarray:
        """NCHW ``x`` with any batch size -> float NHWC (``ValueError`` if the shape past the
        batch dimension differs)."""
        return nchw_input(x, self.input_shape, self.input_name)

    def host_output(self, y) -> np.ndarray:
        """The network's NHWC output -> the graph's layout."""
        return graph_output(y, self.flat_output)


def nchw_input(x, input_shape, name="x") -> np.ndarray:
    """NCHW ``x`` shaped as ``input_shape`` past the batch dimension -> float NHWC."""
    x = np.asarray(x, dtype=np.float64)
    want = tuple(input_shape[1:])
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise ValueError(f"input {name!r} must have shape [B, {', '.join(map(str, want))}], "
                         f"not {list(x.shape)}")
    return x.transpose(0, 2, 3, 1)


def graph_output(y, flat) -> np.ndarray:
    """NHWC ``y`` -> ``[N, C]`` (``flat``; a 1x1 map) or NCHW."""
    y = np.asarray(y)
    return y.reshape(len(y), -1) if flat else y.transpose(0, 3, 1, 2)


@dataclass
class _Value:
    """What an ONNX tensor of the CNN is: the output of network operation ``op`` (``"x"``:
    the input), HWC ``shape``; ``fresh`` while a Relu or BatchNormalization may still fold
    into that operation; ``flat`` after a Flatten."""
    op: str
    shape: tuple
    fresh: bool = False
    flat: bool = False


def _import_cnn(g, consts, input_name, shape, opset) -> ImportedNet:
    """The CNN path of :func:`import_onnx` (module docstring)."""
    from .conv import _check_geometry

    uses = {}
    for node in g.node:
        for a in node.input:
            uses[a] = uses.get(a, 0) + 1
    out_name = g.output[0].name
    uses[out_name] = uses.get(out_name, 0) + 1
    _, c, h, w = shape
    vals = {input_name: _Value("x", (h, w, c))}
    ops, by_name, paired = [], {}, {}

    def new_name(node, idx):
        base = node.name or f"{node.op_type}{idx}"
        name, i = base, 1
        while name in by_name or name == "x":
            name, i = f"{base}_{i}", i + 1
        return name

    def add_op(op, out, shape_, **kw):
        ops.append(op)
        by_name[op.name] = op
        vals[out] = _Value(op.name, shape_, **kw)

    def single_use(t):
        return uses.get(t, 0) == 1 and t != out_name

    for idx, node in enumerate(g.node):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise _refuse(node, idx, f"operator domain {node.domain!r} is not supported")
        if op == "Constant":
            consts[node.output[0]] = _constant(node, idx)
            continue
        args = [a for a in node.input if a]
        acts = [a for a in args if a not in consts]
        for a in acts:
            if a not in vals:
                raise _refuse(node, idx, f"its input {a!r} is not computed before it")
        attrs = {a.name: _attr(a) for a in node.attribute}
        out = node.output[0]
        if op == "Add" and len(acts) == 1:
            v = vals[acts[0]]
            layer = by_name.get(v.op)
            if not (v.fresh and isinstance(layer, Conv) and v.shape[:2] == (1, 1)
                    and single_use(acts[0])):
                raise _refuse(node, idx, "an Add of a constant folds only into the bias of "
                              "the Gemm right before it")
            extra = _bias(node, idx, consts[[a for a in args if a in consts][0]],
                          layer.bias.size)
            _check_finite(node, idx, extra)
            layer.bias = layer.bias + extra
            vals[out] = v
            continue
        if len(acts) != 1 and op != "Add":
            raise _refuse(node, idx, f"takes {len(acts)} activation inputs; the importer "
                          "lowers operators of one activation (and Add of two)")
        v = vals[acts[0]]
        if op == "Conv":
            if v.flat:
                raise _refuse(node, idx, "a Conv of a flattened tensor")
            if args[0] != acts[0]:
                raise _refuse(node, idx, "the weights must be a constant")
            wt = consts.get(args[1]) if len(args) > 1 else None
            if wt is None or wt.ndim != 4:
                raise _refuse(node, idx, "the weights must be a 4-D constant [Cout, Cin, kh, kw]")
            cout, cin, kh, kw = wt.shape
            if attrs.get("group", 1) != 1:
                raise _refuse(node, idx, f"group = {attrs['group']}: only group = 1 (no "
                              "grouped or depthwise convolution) is supported")
            if any(d != 1 for d in attrs.get("dilations", [1, 1])):
                raise _refuse(node, idx, f"dilations {list(attrs['dilations'])}: only 1 is "
                              "supported")
            auto = attrs.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else auto
            if auto not in ("NOTSET", "VALID"):
                raise _refuse(node, idx, f"auto_pad {auto} is not supported; give pads")
            if kh != kw or list(attrs.get("kernel_shape", [kh, kw])) != [kh, kw]:
                raise _refuse(node, idx, f"a {kh}x{kw} kernel: only square kernels are "
                              "supported")
            strides = list(attrs.get("strides", [1, 1]))
            if strides[0] != strides[1]:
                raise _refuse(node, idx, f"strides {strides}: only equal strides are supported")
            pads = [0] * 4 if auto == "VALID" else list(attrs.get("pads", [0, 0, 0, 0]))
            if len(set(pads)) != 1:
                raise _refuse(node, idx, f"pads {pads}: only symmetric padding (all four "
                              "equal) is supported")
            if cin != v.shape[2]:
                raise _refuse(node, idx, f"the weights take {cin} input channels, the input "
                              f"has {v.shape[2]}")
            try:
                ho, wo = _check_geometry(kh, strides[0], pads[0], v.shape[0], v.shape[1])
            except ValueError as e:
                raise _refuse(node, idx, str(e)) from None
            bias = consts[args[2]] if len(args) > 2 else np.zeros(cout)
            if bias.shape != (cout,):
                raise _refuse(node, idx, f"the bias must have shape [{cout}], not "
                              f"{list(bias.shape)}")
            weight = wt.transpose(0, 2, 3, 1)
            _check_finite(node, idx, weight, bias)
            add_op(Conv(new_name(node, idx), v.op, weight, bias.astype(np.float64),
                        strides[0], pads[0]), out, (ho, wo, cout), fresh=True)
        elif op in ("Gemm", "MatMul"):
            if v.shape[:2] != (1, 1):
                raise _refuse(node, idx, f"the input is a {v.shape[0]}x{v.shape[1]} map; a "
                              "Gemm runs after global pooling and Flatten")
            if args[0] != acts[0]:
                raise _refuse(node, idx, "the weight must be the constant second operand")
            wt, bias = _gemm_weight(node, idx, op, attrs, args, consts)
            if wt.shape[1] != v.shape[2]:
                raise _refuse(node, idx, f"the weight takes K={wt.shape[1]} inputs but the "
                              f"input has {v.shape[2]} features")
            _check_finite(node, idx, wt, bias)
            add_op(Conv(new_name(node, idx), v.op, wt[:, None, None, :], bias), out,
                   (1, 1, wt.shape[0]), fresh=True, flat=True)
        elif op == "BatchNormalization":
            layer = by_name.get(v.op)
            if not (v.fresh and isinstance(layer, Conv) and not layer.relu
                    and single_use(acts[0])):
                raise _refuse(node, idx, "a BatchNormalization folds only into the Conv right "
                              "before it (nothing else reading that Conv's output)")
            if attrs.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
                raise _refuse(node, idx, "training mode is not supported")
            try:
                gamma, beta, mean, var = (consts[a] for a in args[1:5])
            except (KeyError, ValueError):
                raise _refuse(node, idx, "scale, B, mean and var must be constants") from None
            n = layer.bias.size
            if any(t.shape != (n,) for t in (gamma, beta, mean, var)):
                raise _refuse(node, idx, f"scale, B, mean and var must have shape [{n}]")
            k = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            _check_finite(node, idx, k)
            layer.weight = layer.weight * k[:, None, None, None]
            layer.bias = (layer.bias - mean) * k + beta
            vals[out] = v
        elif op == "Relu":
            layer = by_name.get(v.op)
            if not (v.fresh and isinstance(layer, (Conv, Add)) and single_use(acts[0])):
                raise _refuse(node, idx, "a Relu folds only into the Conv, Gemm or Add right "
                              "before it (nothing else reading that node's output)")
            layer.relu = True
            vals[out] = _Value(v.op, v.shape, fresh=False, flat=v.flat)
        elif op == "Add":
            if len(acts) != 2 or acts[0] == acts[1]:
                raise _refuse(node, idx, "an Add of two different activations (a residual "
                              "addition) is supported")
            a, b = vals[acts[0]], vals[acts[1]]
            if a.shape != b.shape:
                raise _refuse(node, idx, f"adds shapes {list(a.shape)} and {list(b.shape)} "
                              "(HWC): no broadcasting")
            for t in (a, b):
                if t.op == "x":
                    raise _refuse(node, idx, "a residual Add of the graph input is not "
                                  "supported (add after a Conv)")
                if t.op in paired:
                    raise _refuse(node, idx, f"{t.op!r} is already an operand of Add "
                                  f"{paired[t.op]!r}: each tensor may be added once")
            name = new_name(node, idx)
            paired[a.op] = paired[b.op] = name
            add_op(Add(name, (a.op, b.op)), out, a.shape, fresh=True, flat=a.flat and b.flat)
        elif op == "GlobalAveragePool":
            if v.flat:
                raise _refuse(node, idx, "a pooling of a flattened tensor")
            hh, ww, cc = v.shape
            if hh != ww or hh > 15:
                raise _refuse(node, idx, f"pools a {hh}x{ww} map; the device pools square "
                              "maps of at most 15x15")
            add_op(Gap(new_name(node, idx), v.op), out, (1, 1, cc))
        elif op in ("Flatten", "Reshape"):
            nchw = [shape[0], v.shape[2], v.shape[0], v.shape[1]]
            new = _reshaped(node, idx, op, attrs, args, consts, nchw if not v.flat
                            else [shape[0], v.shape[2]])
            if len(new) != 2 or new[0] != shape[0] or (v.shape[:2] != (1, 1)):
                raise _refuse(node, idx, f"reshapes {nchw if not v.flat else nchw[:2]} to "
                              f"{new}: only a 1x1 map (after global pooling) flattens to "
                              "[batch, channels]")
            vals[out] = _Value(v.op, v.shape, v.fresh, flat=True)
        elif op in ("Identity", "Dropout"):
            if op == "Dropout" and len(args) > 2 and consts[args[2]].item():
                raise _refuse(node, idx, "training_mode = true is not supported")
            if op == "Dropout" and len(node.output) > 1 and node.output[1]:
                raise _refuse(node, idx, "the mask output is not supported")
            vals[out] = v
        elif op == "MaxPool":
            if v.flat:
                raise _refuse(node, idx, "a pooling of a flattened tensor")
            if len([o for o in node.output if o]) > 1:
                raise _refuse(node, idx, "the Indices output is not supported")
            k, st, pads = _pool_window(node, idx, attrs)
            if len(pads) != 4 or len(set(pads)) != 1:
                raise _refuse(node, idx, f"pads {pads}: only equal padding on every side is "
                              "supported")
            try:
                ho, wo = _check_geometry(k, st, pads[0], v.shape[0], v.shape[1])
            except ValueError as e:
                raise _refuse(node, idx, str(e)) from None
            add_op(MaxPool(new_name(node, idx), v.op, k, st, pads[0]), out,
                   (ho, wo, v.shape[2]))
        elif op == "AveragePool":
            if v.flat:
                raise _refuse(node, idx, "a pooling of a flattened tensor")
            auto = attrs.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else auto
            if auto not in ("NOTSET", "VALID") or any(attrs.get("pads", [0])):
                raise _refuse(node, idx, "padding is not supported (pads "
                              f"{list(attrs.get('pads', []))}, auto_pad {auto})")
            k, st, _ = _pool_window(node, idx, attrs)
            try:
                ho, wo = _check_geometry(k, st, 0, v.shape[0], v.shape[1])
            except ValueError as e:
                raise _refuse(node, idx, str(e)) from None
            add_op(AvgPool(new_name(node, idx), v.op, k, st), out, (ho, wo, v.shape[2]))
        else:
            raise _refuse(node, idx, "operator not supported on the device")
    if not ops:
        raise OnnxImportError("the graph has no Conv, Gemm or MatMul layer")
    if out_name not in vals or vals[out_name].op != ops[-1].name:
        raise OnnxImportError(f"the graph's output {out_name!r} must be its last layer's "
                              f"({ops[-1].name!r}) output")
    last = vals[out_name]
    return ImportedNet(ConvNet(ops, (h, w, c)), input_name, out_name, shape, opset,
                       flat_output=last.flat)
