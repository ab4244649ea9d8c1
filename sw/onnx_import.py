"""ONNX import: a float ONNX graph lowered to the compiler's chain of linear layers.

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

Anything else is refused with an :class:`OnnxImportError` naming the node and its op type, as
is a graph that is not one chain. Shapes are static: a dynamic or unknown input dimension is
refused naming the input unless ``input_shape`` fixes it. The batch dimension (the first) does
not enter the compiled layers: any number of rows runs.

``onnx`` is imported inside the functions, so the rest of the package works without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .compiler import CompiledModel, FloatLinear, compile_model

__all__ = ["OPSETS", "OnnxImportError", "ImportedGraph", "import_onnx", "compile_onnx",
           "export_onnx"]

#: Default-domain opset versions the importer accepts.
OPSETS = range(13, 21)


class OnnxImportError(ValueError):
    """An ONNX graph the importer cannot lower; the message names the node or input."""


@dataclass
class ImportedGraph:
    """A chain of float linear layers read from an ONNX graph.

    Members
    -------
    layers : list of FloatLinear
        The chain, in order.
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
    if len(g.output) != 1:
        raise OnnxImportError(f"the graph must have one output, not {len(g.output)}")

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
            w = consts[args[1]]
            if w.ndim != 2:
                raise _refuse(node, idx, f"the weight must be 2-D, not {list(w.shape)}")
            if op == "Gemm":
                if attrs.get("transA", 0):
                    raise _refuse(node, idx, "transA = 1 is not supported")
                w = (w if attrs.get("transB", 0) else w.T) * attrs.get("alpha", 1.0)
                bias = np.zeros(w.shape[0])
                if len(args) > 2:
                    bias = bias + attrs.get("beta", 1.0) * _bias(node, idx, consts[args[2]],
                                                                 w.shape[0])
            else:
                w = w.T
                bias = np.zeros(w.shape[0])
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
    """Import ``model`` (:func:`import_onnx`) and compile it (:func:`compile_model`) with
    calibration inputs ``calib_x`` shaped as the graph's input (any batch size). Returns
    ``(ImportedGraph, CompiledModel)``."""
    graph = import_onnx(model, input_shape=input_shape)
    calib = graph.host_input(calib_x)
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
