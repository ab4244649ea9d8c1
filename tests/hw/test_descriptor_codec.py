"""The plain-Python descriptor codec (``decode_descriptor``, ``encode_descriptor``: what the
functional model, the hazard checker and the compiler use) against Amaranth's own view of
the layout (``Descriptor.from_bits``, ``Descriptor.const``), field by field."""

import os
import random

import pytest
from amaranth.lib import data

from s4accel.hw.cmd.descriptors import (Descriptor, Target, VopOp, decode_descriptor,
                                        encode_descriptor)

SEED = int(os.environ.get("S4_SEED", "2412"))


def _leaves(layout, prefix=()):
    """``[(path, width, enum or None)]`` of every leaf field of a layout."""
    out = []
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, type) and issubclass(shape, data.Struct | data.Union):
            out += _leaves(data.Layout.cast(shape), prefix + (name,))
        else:
            out.append((prefix + (name,), field.width,
                        shape if shape in (Target, VopOp) else None))
    return out


LEAVES = _leaves(data.Layout.cast(Descriptor))


def _get(obj, path):
    for name in path:
        obj = getattr(obj, name)
    return obj


def test_the_codec_sees_every_field():
    """Every leaf of the layout, the enum-shaped ones included, 256 bits in all per member."""
    assert len(LEAVES) > 60
    assert {p[-1] for p, _, e in LEAVES if e} == {"target", "op"}
    for member in ("dma", "gemm", "vop", "decode"):
        assert sum(w for p, w, _ in LEAVES if p[:2] == ("body", member)) == 224


def test_decode_matches_amaranth_on_random_descriptors():
    rng = random.Random(SEED)
    print(f"seed {SEED} (S4_SEED replays it)")
    for _ in range(1500):
        raw = rng.getrandbits(256)
        ref, got = Descriptor.from_bits(raw), decode_descriptor(raw)
        for path, _, _ in LEAVES:
            want = _get(ref, path)
            want = int(getattr(want, "value", want))
            assert _get(got, path) == want, (hex(raw), path)
            assert type(_get(got, path)) is int


def test_encode_matches_amaranth_on_random_fields():
    """Random subsets of one body member's fields and of the header, values up to two bits
    wider than their field (Amaranth truncates them; so must the plain encoder), enum fields
    as members."""
    rng = random.Random(SEED + 1)
    print(f"seed {SEED} (S4_SEED replays it)")
    members = ("dma", "gemm", "vop", "decode")
    for t in range(1500):
        member = members[t % 4]
        fields = {"header": {}, "body": {member: {}}}
        for path, width, enum_ in LEAVES:
            if path[0] == "body" and path[1] != member or rng.random() < 0.3:
                continue
            v = rng.getrandbits(width + rng.choice((0, 0, 2)))
            if enum_ is not None:
                v = rng.choice(list(enum_))
            d = fields[path[0]] if path[0] == "header" else fields["body"][member]
            d[path[-1]] = v
        assert encode_descriptor(fields) == int(Descriptor.const(fields).as_bits()), fields


@pytest.mark.parametrize("fields", [
    {"header": {"bogus": 1}},
    {"body": {"dma": {"rows": 1}, "gemm": {"banks": 1}}},
    {"header": {"opcode": 1.5}},
])
def test_encode_refuses_what_amaranth_refuses(fields):
    with pytest.raises((ValueError, TypeError)) as ref:
        Descriptor.const(fields)
    with pytest.raises(type(ref.value)):
        encode_descriptor(fields)


def test_decoded_descriptors_are_shared_and_read_only():
    a = decode_descriptor(12345)
    assert decode_descriptor(12345) is a
    with pytest.raises(AttributeError):
        a.header.opcode = 3
