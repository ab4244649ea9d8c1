import numpy as np
import pytest

from s4accel.base.sparse import (
    PackedWeights,
    check_sparsity,
    dropped_magnitude,
    pack,
    prune,
    unpack,
)

LEVELS = (1, 2, 4, 8, 16, 32)


@pytest.mark.parametrize("s", LEVELS)
def test_prune_is_bank_balanced_and_keeps_largest(rng, s):
    w = rng.standard_normal((7, 100))
    p = prune(w, s)
    assert p.shape == w.shape and p.dtype == w.dtype
    check_sparsity(p, s)
    padded = np.concatenate([w, np.zeros((7, 28))], 1).reshape(7, 4, 32)
    kept = np.concatenate([p, np.zeros((7, 28))], 1).reshape(7, 4, 32)
    for r in range(7):
        for b in range(4):
            nnz = 32 // s
            mags = np.sort(np.abs(padded[r, b]))[::-1]
            assert np.isclose(np.abs(kept[r, b]).sum(), mags[:nnz].sum())
    assert 0.0 <= dropped_magnitude(w, p) <= 1.0
    assert (dropped_magnitude(w, p) == 0.0) == (s == 1)


@pytest.mark.parametrize("s", LEVELS)
@pytest.mark.parametrize("k", [32, 45, 96, 1])
def test_pack_roundtrip(rng, s, k):
    w = prune(rng.integers(-128, 128, (5, k), dtype=np.int8), s)
    packed = pack(w, s)
    assert np.array_equal(unpack(packed), w)
    blob = packed.to_bytes()
    assert len(blob) == packed.byte_size()
    again = PackedWeights.from_bytes(blob, 5, k, s)
    assert np.array_equal(again.values, packed.values)
    assert np.array_equal(again.indices, packed.indices)
    assert np.array_equal(unpack(again), w)


@pytest.mark.parametrize("s", [2, 4, 8, 16, 32])
def test_bytes_per_stored_weight(s):
    n, k = 256, 768
    packed = pack(np.zeros((n, k), np.int8), s)
    per_nz = packed.byte_size() / (n * k // s)
    assert per_nz <= 1.7, per_nz


def test_pack_errors_name_the_problem(rng):
    w = rng.integers(-128, 128, (4, 64), dtype=np.int8)
    with pytest.raises(ValueError, match="must be int8"):
        pack(w.astype(np.int16), 4)
    with pytest.raises(ValueError, match="sparsity must be one of .* not 3"):
        pack(w, 3)
    with pytest.raises(ValueError, match="sparsity must be one of"):
        prune(w, 64)
    dense_bank = prune(w, 4)
    dense_bank[2, 40] = 0
    dense_bank[2, 32:40] = 5  # row 2, bank 1 now has more than 8 non-zeros
    with pytest.raises(ValueError, match="row 2, bank 1 .* at most 8 allowed"):
        pack(dense_bank, 4)
    # prune_first makes any int8 matrix packable
    assert pack(w, 4, prune_first=True).s == 4


def test_packed_validation(rng):
    packed = pack(prune(rng.integers(-128, 128, (2, 64), dtype=np.int8), 8), 8)
    idx = packed.indices.copy()
    idx[1, 0, [0, 1]] = idx[1, 0, [1, 0]]
    with pytest.raises(ValueError, match="strictly increasing inside a bank: row 1, bank 0"):
        PackedWeights(n=2, k=64, s=8, values=packed.values, indices=idx)
    idx = packed.indices.copy()
    idx[0, 1, -1] = 40
    with pytest.raises(ValueError, match="index 40 out of range"):
        PackedWeights(n=2, k=64, s=8, values=packed.values, indices=idx)
    with pytest.raises(ValueError, match="values must have shape"):
        PackedWeights(n=2, k=64, s=4, values=packed.values, indices=packed.indices)
    with pytest.raises(ValueError, match="are .* bytes, got"):
        PackedWeights.from_bytes(packed.to_bytes()[:-1], 2, 64, 8)


@pytest.mark.parametrize("s", [1, 8])
def test_from_bytes_refuses_every_single_bit_flip(rng, s):
    """Issue 20 item 10: 96 of 240 single-bit flips in the index area and every value-byte flip
    used to parse as different weights. The container's CRC32 (or its header check) refuses
    every one."""
    packed = pack(prune(rng.integers(-128, 128, (3, 80), dtype=np.int8), s), s)
    blob = packed.to_bytes()
    for bit in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[bit // 8] ^= 1 << bit % 8
        with pytest.raises(ValueError, match="packed weights"):
            PackedWeights.from_bytes(bytes(bad), 3, 80, s)
    again = PackedWeights.from_bytes(blob, 3, 80, s)
    assert np.array_equal(unpack(again), unpack(packed))


def test_from_bytes_names_the_problem(rng):
    packed = pack(prune(rng.integers(-128, 128, (2, 64), dtype=np.int8), 8), 8)
    blob = packed.to_bytes()
    with pytest.raises(ValueError, match="k must be a positive integer, not -5"):
        PackedWeights.from_bytes(blob, 2, -5, 8)
    with pytest.raises(ValueError, match="n must be a positive integer, not 0"):
        PackedWeights.from_bytes(blob, 0, 64, 8)
    with pytest.raises(ValueError, match="not packed weights"):
        PackedWeights.from_bytes(b"PK\x03\x04" + blob[4:], 2, 64, 8)
    with pytest.raises(ValueError, match="packed weights are truncated"):
        PackedWeights.from_bytes(blob[:10], 2, 64, 8)
    with pytest.raises(ValueError, match="checksum"):
        PackedWeights.from_bytes(blob[:-5] + bytes([blob[-5] ^ 0x40]) + blob[-4:], 2, 64, 8)
    with pytest.raises(ValueError, match=r"packed weights hold n=2, k=64, s=8, not n=2, k=64, "
                                         r"s=4"):
        PackedWeights.from_bytes(blob, 2, 64, 4)
    # n, k and s travel in the container: the arguments are optional
    again = PackedWeights.from_bytes(blob)
    assert (again.n, again.k, again.s) == (2, 64, 8)
    with pytest.raises(ValueError, match="k must be a positive integer, not -3"):
        PackedWeights(n=2, k=-3, s=8, values=packed.values, indices=packed.indices)
