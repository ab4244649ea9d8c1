"""The compiled-model file (``.s4``): a :class:`~.compiler.CompiledModel` and the configuration
it was compiled for.

Layout (little-endian)::

    magic    8 bytes   b"S4MODEL\\0"
    version  u32       FORMAT_VERSION
    crc32    u32       zlib.crc32 of everything after this field
    meta_len u32       length of the JSON metadata
    meta     JSON      format, configuration name and fields, the model's scales, host
                       operations, the input and output it came from, one entry per layer
    arrays   .npz      the layers' arrays (packed weights and indices, bias, requantization,
                       scales, pruned float weights), read with ``allow_pickle=False``

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
from ..base.sparse import PackedWeights
from .compiler import CompiledModel, QuantLayer
from .program import LayerParams

__all__ = ["MAGIC", "FORMAT_VERSION", "ModelFileError", "ModelFile", "save", "load",
           "check_config"]

MAGIC = b"S4MODEL\0"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<8sIII")

#: Configuration fields that do not change the compiled program (informational only).
_IGNORED_FIELDS = ("name", "clock_mhz")


class ModelFileError(ValueError):
    """A ``.s4`` file that cannot be loaded: unreadable, corrupted, another format version, or
    compiled for another configuration."""


class ModelFile:
    """A loaded ``.s4`` file: ``model`` (:class:`CompiledModel`), ``config``
    (:class:`Config` it was compiled for) and ``info`` (the free-form metadata given to
    :func:`save`, such as the input name and shape)."""

    def __init__(self, model: CompiledModel, config: Config, info: dict):
        self.model, self.config, self.info = model, config, info


def save(path, model: CompiledModel, config, info=None) -> None:
    """Write ``model``, compiled for ``config`` (a :class:`Config` or preset name), to
    ``path``; ``info`` is a JSON-serializable dict stored alongside."""
    config = load_config(config)
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
    meta = {"format": "s4 compiled model", "config": config.to_dict(),
            "in_scale": model.in_scale, "host_ops": list(model.host_ops), "layers": layers,
            "info": info or {}}
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
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path} is format version {version}; this s4 reads version "
                             f"{FORMAT_VERSION}: compile the model again")
    body = data[16:]
    if zlib.crc32(body) != crc:
        raise ModelFileError(f"{path} is corrupted (checksum mismatch: stored {crc:#010x}, "
                             f"computed {zlib.crc32(body):#010x})")
    try:
        meta = json.loads(data[_HEAD.size:_HEAD.size + meta_len])
        file_config = Config.from_dict(meta["config"])
        with np.load(io.BytesIO(data[_HEAD.size + meta_len:]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
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
    return ModelFile(model, file_config, meta.get("info", {}))


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
