"""The compiled-model file (``.s4``): a compiled model and the configuration it was compiled
for. Three kinds: a chain of linear layers (:class:`~.compiler.CompiledModel`, ``kind``
``"linear"``), a convolutional network (:class:`~.convnet.QuantNet`, ``kind``
``"convnet"``, lowered to one device program by :meth:`~.convnet.QuantNet.device_program` for
each batch of inputs) and a stack of transformer encoder layers
(:class:`~.encoder.EncoderStack`, ``kind`` ``"encoder"``, one device program a sequence).

Layout (little-endian)::

    magic    8 bytes   b"S4MODEL\\0"
    version  u32       FORMAT_VERSION (4; version 1, linear chains only, version 2,
                       without host-fallback sub-graphs, and version 3, without encoders,
                       still load)
    crc32    u32       zlib.crc32 of everything after this field
    meta_len u32       length of the JSON metadata
    meta     JSON      format, kind, configuration name and fields, the model's scales, host
                       operations, the host-fallback split (``host``: which nodes run
                       where), the input and output it came from, one entry per layer
                       (a convolutional network: per operation, its type, inputs, geometry,
                       sparsity and scales; an encoder: per layer its heads, sparsity,
                       scales, attention and LayerNorm integers)
    arrays   .npz      the layers' arrays (packed weights and indices, bias, requantization,
                       scales, pruned float weights; a network's int8 weight matrices, packed
                       again on loading; an encoder's packed weights, requantization,
                       residual and LayerNorm arrays; the host-fallback ONNX sub-graphs as
                       bytes), read with ``allow_pickle=False``

No pickle anywhere: loading a file runs no code from it. :func:`load` refuses a file with a
wrong magic, version or checksum, and (given a configuration) one compiled for another
configuration, with a :class:`ModelFileError` that says which.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from ..base.config import Config, load_config
from ..base.sparse import PackedWeights, pack
from .compiler import CompiledModel, QuantLayer
from .convnet import ConvSpec, QAdd, QAvgPool, QConv, QGap, QMaxPool, QuantNet
from .encoder import EncoderStack
from .program import LayerParams

__all__ = ["MAGIC", "FORMAT_VERSION", "ModelFileError", "ModelFile", "save", "load",
           "check_config"]

MAGIC = b"S4MODEL\0"
FORMAT_VERSION = 4
#: Versions :func:`load` reads (1: linear chains, before convolutional networks; 2: before
#: host fallback; 3: before encoders).
READ_VERSIONS = (1, 2, 3, 4)
_HEAD = struct.Struct("<8sIII")

#: Configuration fields that do not change the compiled program (informational only).
_IGNORED_FIELDS = ("name", "clock_mhz")


class ModelFileError(ValueError):
    """A ``.s4`` file that cannot be loaded: unreadable, corrupted, another format version, or
    compiled for another configuration."""


class ModelFile:
    """A loaded ``.s4`` file: ``model`` (:class:`CompiledModel`, :class:`QuantNet` or
    :class:`EncoderStack`), ``kind`` (``"linear"``, ``"convnet"`` or ``"encoder"``),
    ``config`` (:class:`Config` it was compiled for) and ``info`` (the free-form metadata
    given to :func:`save`, such as the input name and shape)."""

    def __init__(self, model, config: Config, info: dict, host=None):
        self.model, self.config, self.info = model, config, info
        #: the host-fallback sub-graphs (:class:`~.host_fallback.HostParts`), or None
        self.host = host
        self.kind = ("convnet" if isinstance(model, QuantNet) else
                     "encoder" if isinstance(model, EncoderStack) else "linear")


def save(path, model, config, info=None, host=None) -> None:
    """Write ``model`` (:class:`CompiledModel`, :class:`QuantNet` or :class:`EncoderStack`),
    compiled for ``config``
    (a :class:`Config` or preset name), to ``path``; ``info`` is a JSON-serializable dict
    stored alongside, ``host`` the host-fallback sub-graphs
    (:class:`~.host_fallback.HostParts`) around the model."""
    config = load_config(config)
    host_meta, host_arrays = host.meta() if host is not None else (None, {})
    if isinstance(model, (QuantNet, EncoderStack)):
        enc = isinstance(model, EncoderStack)
        meta, arrays = _encoder_meta(model) if enc else _net_meta(model)
        meta = {"format": "s4 compiled model", "kind": "encoder" if enc else "convnet",
                "config": config.to_dict(), **meta, "host": host_meta, "info": info or {}}
        _write(path, meta, {**arrays, **host_arrays})
        return
    if model.in_div is not None or model.in_zero:
        raise ValueError("a compiled model with an input transform (compile_model's in_div or "
                         "zero_point) cannot be saved: the .s4 format has no field for it")
    arrays = {}
    layers = []
    for i, q in enumerate(model.layers):
        p = q.params
        layers.append({"name": q.name, "sparsity": q.sparsity, "n": q.packed.n, "k": q.packed.k,
                       "mode": p.mode, "relu": bool(p.relu), "layer_relu": bool(q.relu),
                       "act": q.act,
                       "lut": p.lut is not None, "in_scale": q.in_scale,
                       "out_scale": q.out_scale})
        named = {"values": q.packed.values, "indices": q.packed.indices, "bias_q": p.bias,
                 "mult": p.mult, "shift": p.shift, "lut": p.lut, "w_scale": q.w_scale,
                 "w_pruned": q.w_pruned, "bias": q.bias}
        for key, a in named.items():
            if a is not None:
                arrays[f"{i}.{key}"] = np.asarray(a)
    meta = {"format": "s4 compiled model", "kind": "linear", "config": config.to_dict(),
            "in_scale": model.in_scale, "host_ops": list(model.host_ops), "layers": layers,
            "host": host_meta, "info": info or {}}
    _write(path, meta, {**arrays, **host_arrays})


def _write(path, meta, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    meta_bytes = json.dumps(meta).encode()
    body = struct.pack("<I", len(meta_bytes)) + meta_bytes + buf.getvalue()
    head = MAGIC + struct.pack("<II", FORMAT_VERSION, zlib.crc32(body))
    Path(path).write_bytes(head + body)


def load(path, config=None) -> ModelFile:
    """Read a ``.s4`` file; with ``config`` (a :class:`Config` or preset name), also check
    that the file was compiled for it (:func:`check_config`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) < _HEAD.size or data[:8] != MAGIC:
        raise ModelFileError(f"{path} is not an s4 compiled model (no S4MODEL header)")
    _, version, crc, meta_len = _HEAD.unpack_from(data)
    if version not in READ_VERSIONS:
        raise ModelFileError(f"{path} is format version {version}; this s4 reads versions "
                             f"{', '.join(map(str, READ_VERSIONS))}: compile the model again")
    body = data[16:]
    if zlib.crc32(body) != crc:
        raise ModelFileError(f"{path} is corrupted (checksum mismatch: stored {crc:#010x}, "
                             f"computed {zlib.crc32(body):#010x})")
    try:
        meta = json.loads(data[_HEAD.size:_HEAD.size + meta_len])
        file_config = Config.from_dict(meta["config"])
        with np.load(io.BytesIO(data[_HEAD.size + meta_len:]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        kind = meta.get("kind", "linear")
        host = None
        if meta.get("host"):
            from .host_fallback import HostParts
            host = HostParts.from_meta(meta["host"], arrays)
        if kind in ("convnet", "encoder"):
            model = (_net_from if kind == "convnet" else _encoder_from)(meta, arrays)
            if config is not None:
                check_config(file_config, config, path)
            return ModelFile(model, file_config, meta.get("info", {}), host)
        if kind != "linear":
            raise ValueError(f"unknown model kind {kind!r}")
        model = CompiledModel(in_scale=float(meta["in_scale"]), host_ops=list(meta["host_ops"]))
        for i, m in enumerate(meta["layers"]):
            def get(key, i=i):
                return arrays.get(f"{i}.{key}")
            packed = PackedWeights(m["n"], m["k"], m["sparsity"], get("values"),
                                   get("indices"))
            params = LayerParams(m["mode"], bias=get("bias_q"), mult=get("mult"),
                                 shift=get("shift"), relu=m["relu"], lut=get("lut"))
            model.layers.append(QuantLayer(
                name=m["name"], sparsity=m["sparsity"], packed=packed, params=params,
                in_scale=m["in_scale"], w_scale=get("w_scale"), out_scale=m["out_scale"],
                w_pruned=get("w_pruned"), bias=get("bias"), relu=m["layer_relu"],
                act=m["act"]))
    except (ValueError, KeyError, TypeError, OSError) as e:
        # the checksum matched, so this is a file written by something else than save()
        reason = " ".join(str(e).split())
        raise ModelFileError(f"{path} is not a valid s4 compiled model: {reason}") from e
    if config is not None:
        check_config(file_config, config, path)
    return ModelFile(model, file_config, meta.get("info", {}), host)


def check_config(file_config: Config, config, path="the model") -> None:
    """Raise :class:`ModelFileError` unless ``config`` has the fields the program of
    ``file_config`` depends on (every field but the name and the clock)."""
    config = load_config(config)
    want, have = file_config.to_dict(), config.to_dict()
    diff = [f"{k} {want[k]} (device: {have[k]})" for k in want
            if k not in _IGNORED_FIELDS and want[k] != have.get(k)]
    if diff:
        raise ModelFileError(f"{path} was compiled for configuration {file_config.name!r}, "
                             f"not {config.name!r}: it needs {', '.join(diff)}; compile it "
                             "again with --config")


def _net_meta(q: QuantNet):
    """The JSON metadata and arrays of a :class:`QuantNet`."""
    arrays = {"out_scale": np.atleast_1d(np.asarray(q.out_scale, np.float64))}
    ops = []
    for i, (name, src, op) in enumerate(zip(q.names, q.srcs, q.ops, strict=True)):
        src = list(src) if isinstance(src, tuple) else src
        if isinstance(op, QConv):
            sp = op.spec
            ops.append({"type": "conv", "name": name, "src": src, "cin": sp.cin,
                        "cout": sp.cout, "k": sp.k, "stride": sp.stride, "pad": sp.pad,
                        "relu": sp.relu, "sparsity": op.sparsity, "raw": op.raw,
                        "in_scale": op.in_scale, "out_scale": op.out_scale})
            named = {"w_q": op.w_q, "bias": op.bias, "mult": op.mult, "shift": op.shift,
                     "w_scale": op.w_scale}
            arrays.update({f"{i}.{k}": np.asarray(a) for k, a in named.items()
                           if a is not None})
        elif isinstance(op, QAdd):
            ops.append({"type": "add", "name": name, "src": src, "w_a": op.w_a, "w_b": op.w_b,
                        "mult": op.mult, "shift": op.shift, "out_scale": op.out_scale,
                        "relu": op.relu})
        elif isinstance(op, QAvgPool):
            ops.append({"type": "avgpool", "name": name, "src": src, "k": op.k,
                        "stride": op.stride, "mult": op.mult, "shift": op.shift,
                        "out_scale": op.out_scale})
        elif isinstance(op, QMaxPool):
            ops.append({"type": "maxpool", "name": name, "src": src, "k": op.k,
                        "stride": op.stride, "pad": op.pad})
        else:
            ops.append({"type": "gap", "name": name, "src": src, "mult": op.mult,
                        "shift": op.shift, "out_scale": op.out_scale})
    meta = {"net": {"input_hwc": list(q.input_hwc), "in_scale": q.in_scale,
                    "host_windows": q.host_windows, "host_relu": q.host_relu, "ops": ops}}
    return meta, arrays


def _net_from(meta, arrays) -> QuantNet:
    """The :class:`QuantNet` of :func:`_net_meta`'s metadata and arrays."""
    m = meta["net"]
    q = QuantNet([], [], [], tuple(m["input_hwc"]), float(m["in_scale"]),
                 bool(m["host_windows"]), host_relu=bool(m["host_relu"]))
    out_scale = arrays["out_scale"]
    q.out_scale = float(out_scale[0]) if out_scale.size == 1 else out_scale
    for i, o in enumerate(m["ops"]):
        src = tuple(o["src"]) if isinstance(o["src"], list) else o["src"]
        if o["type"] == "conv":
            sp = ConvSpec(o["name"], o["cin"], o["cout"], o["k"], o["stride"], o["pad"],
                          o["relu"])
            w_q = arrays[f"{i}.w_q"]
            if w_q.dtype != np.int8:
                raise ValueError(f"layer {o['name']}: weights of type {w_q.dtype}, not int8")
            op = QConv(sp, o["sparsity"], pack(w_q, o["sparsity"]), w_q, arrays[f"{i}.bias"],
                       arrays.get(f"{i}.mult"), arrays.get(f"{i}.shift"), o["in_scale"],
                       arrays[f"{i}.w_scale"], o["out_scale"])
        elif o["type"] == "add":
            op = QAdd(o["w_a"], o["w_b"], o["mult"], o["shift"], o["out_scale"], o["relu"])
        elif o["type"] == "gap":
            op = QGap(o["mult"], o["shift"], o["out_scale"])
        elif o["type"] == "avgpool":
            op = QAvgPool(o["k"], o["stride"], o["mult"], o["shift"], o["out_scale"])
        elif o["type"] == "maxpool":
            op = QMaxPool(o["k"], o["stride"], o["pad"])
        else:
            raise ValueError(f"unknown operation type {o['type']!r}")
        q.names.append(o["name"])
        q.srcs.append(src)
        q.ops.append(op)
    return q


#: An encoder layer's linear layers (:class:`~.encoder.IntEncoderLayer` fields).
_ENC_LINEARS = ("q", "k", "v", "o", "up", "down")
_ATT_FIELDS = ("s_mult", "s_shift", "sm_mult", "sm_shift", "c_mult", "c_shift")


def _encoder_meta(m: EncoderStack):
    """The JSON metadata and arrays of an :class:`EncoderStack`."""
    arrays, layers = {}, []
    for i, q in enumerate(m.layers):
        lins = {}
        for name in _ENC_LINEARS:
            lin = getattr(q, name)
            p = lin.packed
            lins[name] = {"n": p.n, "k": p.k, "s": p.s}
            named = {"values": p.values, "indices": p.indices, "bias": lin.bias,
                     "mult": lin.mult, "shift": lin.shift, "lut": lin.lut}
            arrays.update({f"{i}.{name}.{k}": np.asarray(a) for k, a in named.items()
                           if a is not None})
        for name in ("add1", "add2"):
            for j, a in enumerate(getattr(q, name)):
                arrays[f"{i}.{name}.{j}"] = np.asarray(a)
        lns = {}
        for name in ("ln1", "ln2"):
            p = getattr(q, name)
            lns[name] = {"in_shift": int(p.in_shift), "eps": int(p.eps)}
            for k in ("mult", "bias", "shift"):
                arrays[f"{i}.{name}.{k}"] = np.asarray(getattr(p, k))
        att = [[int(getattr(a, f)) for f in _ATT_FIELDS] for a in q.att]
        layers.append({"heads": q.heads, "sparsity": q.sparsity, "scales": q.scales,
                       "linears": lins, "att": att, **lns})
    return {"encoder": {"seq": m.seq, "layers": layers}}, arrays


def _encoder_from(meta, arrays) -> EncoderStack:
    """The :class:`EncoderStack` of :func:`_encoder_meta`'s metadata and arrays."""
    from ..base import vector as V
    from .encoder import IntEncoderLayer, _Linear
    m = meta["encoder"]
    layers = []
    for i, o in enumerate(m["layers"]):
        lins = {}
        for name in _ENC_LINEARS:
            d = o["linears"][name]

            def get(k, i=i, name=name):
                return arrays.get(f"{i}.{name}.{k}")
            lins[name] = _Linear(PackedWeights(d["n"], d["k"], d["s"], get("values"),
                                               get("indices")),
                                 get("bias"), get("mult"), get("shift"), get("lut"))
        adds = [tuple(arrays[f"{i}.{name}.{j}"] for j in range(3)) for name in ("add1", "add2")]
        lns = [V.LayerNormParams(o[name]["in_shift"], o[name]["eps"],
                                 *(arrays[f"{i}.{name}.{k}"] for k in ("mult", "bias", "shift")))
               for name in ("ln1", "ln2")]
        att = [V.AttentionParams(*a) for a in o["att"]]
        scales = {k: (list(v) if isinstance(v, list) else float(v))
                  for k, v in o["scales"].items()}
        layers.append(IntEncoderLayer(o["heads"], o["sparsity"], scales, lins["q"], lins["k"],
                                      lins["v"], lins["o"], lins["up"], lins["down"], att,
                                      adds[0], lns[0], adds[1], lns[1]))
    if not layers:
        raise ValueError("an encoder without layers")
    return EncoderStack(layers, int(m["seq"]))
