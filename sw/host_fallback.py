"""Host fallback (``s4 compile --host-fallback``): the ONNX nodes the device cannot run, at the
head or the tail of a graph, run on the host.

:func:`split_graph` cuts a graph in three: the *head* (every node up to the last unsupported
node before the first device layer, such as an input normalization), the *device part* (from
there to the last device layer and the supported nodes after it) and the *tail* (from the first
unsupported node after the last device layer, such as a final ``Softmax``, to the end). Head
and tail are extracted as ONNX sub-graphs (``onnx.utils.Extractor``) and run by onnxruntime on
the host (:class:`HostParts`, stored in the ``.s4`` file); the device part is imported and
compiled as any graph (:mod:`.onnx_import`). Each cut must be one tensor: a head whose results
reach the device part through two tensors, or a device part that also reads the graph input
past the head, is refused. An unsupported node between two device layers is refused: host
fallback handles head and tail nodes only (one device segment).

A node is *unsupported* when its operator type is not one the importer lowers
(:data:`DEVICE_OPS`) or its domain is not the default one; a supported operator in a place the
importer refuses (a ``Relu`` before any layer, say) is still refused by the importer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .onnx_import import OPSETS, OnnxImportError, _dims_text, _load, _node_name

__all__ = ["DEVICE_OPS", "HostParts", "split_graph", "with_batch", "run_onnx"]

#: Operator types :func:`~.onnx_import.import_onnx` lowers (in some places) onto the device.
DEVICE_OPS = frozenset({
    "Gemm", "MatMul", "Add", "Relu", "Sigmoid", "Tanh", "Flatten", "Reshape", "Identity",
    "Dropout", "Constant", "Conv", "BatchNormalization", "GlobalAveragePool", "AveragePool",
    "MaxPool"})
#: The device layers: the device part runs from the first to the last of them.
_LAYER_OPS = ("Gemm", "MatMul", "Conv")


def _unsupported(node) -> bool:
    return node.domain not in ("", "ai.onnx") or node.op_type not in DEVICE_OPS


@dataclass
class HostParts:
    """The host's sub-graphs of a split model and where they meet the device part.

    Members
    -------
    head, tail : bytes or None
        Serialized ONNX models run on the host before and after the device (None: none).
    head_nodes, device_nodes, tail_nodes : list of [name, op type]
        The original graph's nodes, by where they run.
    device_input, device_output : str
        The tensors at the cuts (the graph's input / output where there is no head / tail).
    input_shape : tuple of int
        The graph input's static shape (batch 1; not stored in the ``.s4`` metadata of the
        parts: the file's ``info`` has it).
    """
    head: bytes | None = None
    tail: bytes | None = None
    head_nodes: list = field(default_factory=list)
    device_nodes: list = field(default_factory=list)
    tail_nodes: list = field(default_factory=list)
    device_input: str = ""
    device_output: str = ""
    input_shape: tuple = ()

    def run_head(self, x) -> np.ndarray:
        """The graph input ``x`` -> the device part's input (float64)."""
        return np.asarray(x, np.float64) if self.head is None else run_onnx(self.head, x)

    def run_tail(self, y) -> np.ndarray:
        """The device part's (float) output -> the graph output."""
        return np.asarray(y) if self.tail is None else run_onnx(self.tail, y)

    def describe(self) -> list:
        """One line per place: which nodes run on the host, which on the device."""
        def names(nodes):
            return ", ".join(f"{n} ({op})" for n, op in nodes)
        lines = []
        if self.head_nodes:
            lines.append(f"host fallback, before the device ({self.device_input!r} in): "
                         + names(self.head_nodes))
        lines.append(f"on the device: {len(self.device_nodes)} nodes, "
                     f"{self.device_nodes[0][0]} to {self.device_nodes[-1][0]}"
                     if self.device_nodes else "on the device: nothing")
        if self.tail_nodes:
            lines.append(f"host fallback, after the device ({self.device_output!r} out): "
                         + names(self.tail_nodes))
        return lines

    def meta(self) -> tuple:
        """``(JSON metadata, arrays)`` for the ``.s4`` file."""
        meta = {"head_nodes": self.head_nodes, "device_nodes": self.device_nodes,
                "tail_nodes": self.tail_nodes, "device_input": self.device_input,
                "device_output": self.device_output}
        arrays = {f"host.{k}": np.frombuffer(v, np.uint8)
                  for k, v in (("head", self.head), ("tail", self.tail)) if v is not None}
        return meta, arrays

    @classmethod
    def from_meta(cls, meta, arrays) -> HostParts:
        def blob(k):
            a = arrays.get(f"host.{k}")
            return None if a is None else a.astype(np.uint8).tobytes()
        return cls(blob("head"), blob("tail"), [list(n) for n in meta["head_nodes"]],
                   [list(n) for n in meta["device_nodes"]],
                   [list(n) for n in meta["tail_nodes"]], meta["device_input"],
                   meta["device_output"])


def run_onnx(model, x) -> np.ndarray:
    """``model`` (serialized ONNX or a ModelProto) of one float input run by onnxruntime on
    ``x``; its first output as float64."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ValueError(f"the host-fallback nodes run on onnxruntime ({e}); pip install "
                         "onnxruntime") from e
    if not isinstance(model, bytes):
        model = model.SerializeToString()
    try:
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.asarray(sess.run(None, {name: np.asarray(x, np.float32)})[0], np.float64)
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own kinds)
        raise ValueError(f"onnxruntime: {' '.join(str(e).split())}") from e


def with_batch(model, input_shape=None):
    """A copy of ``model`` (path or ModelProto) whose input has the static shape past the batch
    dimension (``input_shape`` or the declared one; a dynamic dimension without
    ``input_shape`` is refused naming the input, as :func:`~.onnx_import.import_onnx` does)
    and a symbolic batch dimension, as has its output: what onnxruntime runs on any batch."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(_load(model))
    g = m.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise OnnxImportError(f"the graph must have one input, not {len(inputs)} "
                              f"({', '.join(i.name for i in inputs)})")
    dims = inputs[0].type.tensor_type.shape.dim
    declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in dims]
    if input_shape is not None:
        if len(input_shape) != len(declared) or any(
                want is not None and i > 0 and want != got
                for i, (want, got) in enumerate(zip(declared, input_shape, strict=True))):
            raise OnnxImportError(f"input {inputs[0].name!r}: input shape {list(input_shape)} "
                                  f"does not fit the declared {_dims_text(dims)}")
        shape = list(input_shape)
    elif any(d is None for d in declared[1:]) or not declared:
        raise OnnxImportError(f"input {inputs[0].name!r} has dynamic shape {_dims_text(dims)}: "
                              "fix it with an input shape (--input-shape)")
    else:
        shape = declared
    for i, d in enumerate(dims):
        if i == 0:
            d.dim_param = "batch"
        else:
            d.dim_value = int(shape[i])
    for out in g.output:
        od = out.type.tensor_type.shape.dim
        if len(od):
            od[0].dim_param = "batch"
    return m


def split_graph(model, *, input_shape=None):
    """``(HostParts, device ModelProto)`` of ``model`` (path or ModelProto), or ``(None,
    model)`` where every node's operator is one the device lowers. Raises
    :class:`~.onnx_import.OnnxImportError` (one line) where the split is not possible."""
    import onnx
    from onnx import helper, utils

    m = _load(model)
    nodes = list(m.graph.node)
    bad = [i for i, n in enumerate(nodes) if _unsupported(n)]
    if not bad:
        return None, m
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset not in OPSETS:
        raise OnnxImportError(f"default-domain opset {opset} is not supported (supported: "
                              f"{OPSETS.start} to {OPSETS.stop - 1})")
    m = with_batch(m, input_shape)
    g = m.graph
    layers = [i for i, n in enumerate(nodes) if n.op_type in _LAYER_OPS and not _unsupported(n)]
    if not layers:
        n = nodes[bad[0]]
        raise OnnxImportError(f"node {_node_name(n, bad[0])!r} ({n.op_type}): operator not "
                              "supported on the device, and host fallback finds no Gemm, MatMul "
                              "or Conv layer to run on the device")
    first, last = layers[0], layers[-1]
    for i in bad:
        if first < i < last:
            n = nodes[i]
            raise OnnxImportError(
                f"node {_node_name(n, i)!r} ({n.op_type}): operator not supported on the "
                f"device, between device layers {_node_name(nodes[first], first)!r} and "
                f"{_node_name(nodes[last], last)!r}; host fallback only handles nodes before "
                "the first and after the last device layer")
    head_end = max((i for i in bad if i < first), default=-1) + 1
    tail_start = min((i for i in bad if i > last), default=len(nodes))
    inits = {t.name for t in g.initializer}
    consts = {o for n in nodes if n.op_type == "Constant" for o in n.output} | inits
    graph_in = next(i.name for i in g.input if i.name not in inits)
    in_dims = next(i for i in g.input if i.name not in inits).type.tensor_type.shape.dim
    graph_out = g.output[0].name
    if len(g.output) != 1:
        raise OnnxImportError(f"the graph must have one output, not {len(g.output)}")

    def produced(ns):
        return {o for n in ns for o in n.output if o}

    def consumed(ns):
        return {a for n in ns for a in n.input if a}

    def cut(before, after, what):
        avail = produced(before) | {graph_in}
        needed = consumed(after) | ({graph_out} if graph_out in avail else set())
        crossing = sorted((needed & avail) - consts)
        if len(crossing) != 1:
            raise OnnxImportError(f"host fallback: {what} must meet in one tensor, not "
                                  f"{len(crossing)} ({', '.join(crossing) or 'none'})")
        return crossing[0]

    dev_in = graph_in if head_end == 0 else cut(nodes[:head_end], nodes[head_end:],
                                                "the host head and the device part")
    if dev_in == graph_in and head_end:
        raise OnnxImportError(f"host fallback: the device part reads the graph input "
                              f"{graph_in!r} past the host head")
    dev_out = graph_out if tail_start == len(nodes) else cut(
        nodes[:tail_start], nodes[tail_start:], "the device part and the host tail")
    if dev_out == graph_in:
        raise OnnxImportError(f"host fallback: the host tail reads the graph input {graph_in!r}")
    if tail_start < len(nodes) and graph_out not in produced(nodes[tail_start:]):
        raise OnnxImportError(f"host fallback: the graph output {graph_out!r} is not computed "
                              "by the host tail")

    m = onnx.shape_inference.infer_shapes(m)
    known = {v.name for v in list(m.graph.value_info) + list(m.graph.input)
             + list(m.graph.output)}
    for t in (dev_in, dev_out):
        if t not in known:
            m.graph.value_info.append(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT,
                                                                    None))
    ex = utils.Extractor(m)
    try:
        head = ex.extract_model([graph_in], [dev_in]) if head_end else None
        device = ex.extract_model([dev_in], [dev_out])
        tail = ex.extract_model([dev_out], [graph_out]) if tail_start < len(nodes) else None
    except Exception as e:  # noqa: BLE001  (onnx raises several kinds for a graph it cannot cut)
        raise OnnxImportError(f"host fallback: cannot extract the sub-graphs: "
                              f"{' '.join(str(e).split())}") from e

    def listed(ns, off):
        return [[_node_name(n, off + i), n.op_type] for i, n in enumerate(ns)
                if n.op_type != "Constant"]

    parts = HostParts(head.SerializeToString() if head else None,
                      tail.SerializeToString() if tail else None,
                      listed(nodes[:head_end], 0), listed(nodes[head_end:tail_start], head_end),
                      listed(nodes[tail_start:], tail_start), dev_in, dev_out,
                      (1, *(d.dim_value for d in in_dims[1:])))
    return parts, device
