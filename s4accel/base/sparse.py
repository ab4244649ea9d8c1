"""Bank-balanced sparse weight format: pruner, packer, unpacker (docs/architecture.md,
"Sparse format").

A weight matrix ``W[N, K]`` is cut into banks of ``B = 32`` consecutive elements along K (K is
zero-padded to a multiple of 32). At sparsity ``s`` every bank of every row stores exactly
``nnz = 32 // s`` entries, each an int8 value and a 5-bit index into the bank, indices strictly
increasing inside the bank. Banks with fewer true non-zeros are padded with zero-valued entries
(at the lowest free indices). ``s = 1`` is dense: indices are implicit (0..31) and not stored.

Compact layout (the payload of :meth:`PackedWeights.to_bytes`), little-endian, everything
row-major::

    offset 0            values   N * nb * nnz bytes, int8, order [row][bank][entry]
    offset align64(V)   indices  per row: nb * nnz 5-bit fields packed LSB-first into bytes,
                                 row padded to a multiple of 8 bytes; absent when s = 1

where ``nb = ceil(K / 32)``. A row's values are contiguous so a DMA burst fetches whole banks;
index rows are 8-byte aligned so they start on a bus word. Storage per stored weight is
1 + 5/8 = 1.625 bytes (plus row padding), meeting the 1.7-byte target.

Container (:meth:`PackedWeights.to_bytes` / :meth:`~PackedWeights.from_bytes`, a host-side
file format; the device reads the image of ``s4accel.sw.layout.wgt_image`` instead)::

    offset 0     magic b"S4PW", u16 version (CONTAINER_VERSION), u16 s, u32 n, u32 k,
                 u32 payload bytes                                       (20 bytes)
    offset 20    the compact layout
    end - 4      u32 CRC32 (zlib) of everything before it

so corrupted or truncated bytes are refused rather than read as different weights.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .config import BANK, SPARSITY_LEVELS

__all__ = ["PackedWeights", "prune", "pack", "unpack", "check_sparsity", "nnz_per_bank",
           "dropped_magnitude", "CONTAINER_VERSION"]

#: Version of the :meth:`PackedWeights.to_bytes` container (its header and checksum).
CONTAINER_VERSION = 1
_MAGIC = b"S4PW"
_HEADER = struct.Struct("<4sHHIII")
_CRC_BYTES = 4


def _check_dim(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _check_s(s) -> int:
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or int(s) not in SPARSITY_LEVELS:
        raise ValueError(f"sparsity must be one of {SPARSITY_LEVELS}, not {s!r}")
    return int(s)


def nnz_per_bank(s) -> int:
    """Stored entries per bank at sparsity ``s``."""
    return BANK // _check_s(s)


def _banks(k: int) -> int:
    return -(-k // BANK)


def _as_2d(w, name="weights") -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, K], not shape {w.shape}")
    if w.shape[1] == 0 or w.shape[0] == 0:
        raise ValueError(f"{name} must not be empty, got shape {w.shape}")
    return w


def _pad_banks(w: np.ndarray) -> np.ndarray:
    n, k = w.shape
    kp = _banks(k) * BANK
    if kp != k:
        w = np.concatenate([w, np.zeros((n, kp - k), dtype=w.dtype)], axis=1)
    return w.reshape(n, kp // BANK, BANK)


def prune(w, s) -> np.ndarray:
    """Bank-balanced magnitude pruning: keep the ``32 // s`` largest-magnitude entries per bank.

    Ties are broken towards the lower index. Returns an array of the same shape and dtype with
    the pruned entries set to zero. Works on any numeric dtype (float weights or int8).
    """
    s = _check_s(s)
    w = _as_2d(w)
    if not (np.issubdtype(w.dtype, np.number) and not np.issubdtype(w.dtype, np.complexfloating)):
        raise ValueError(f"weights must be a real numeric array, not dtype {w.dtype}")
    n, k = w.shape
    nnz = BANK // s
    banks = _pad_banks(w)
    mag = np.abs(banks.astype(np.float64))
    # stable sort on -magnitude keeps the lower index first among equal magnitudes
    order = np.argsort(-mag, axis=2, kind="stable")[:, :, :nnz]
    keep = np.zeros(banks.shape, dtype=bool)
    np.put_along_axis(keep, order, True, axis=2)
    out = np.where(keep, banks, 0).reshape(n, -1)[:, :k]
    return out.astype(w.dtype, copy=False)


def dropped_magnitude(w, w_pruned) -> float:
    """Fraction of total absolute weight magnitude removed by pruning (0.0 .. 1.0)."""
    total = float(np.abs(np.asarray(w, dtype=np.float64)).sum())
    kept = float(np.abs(np.asarray(w_pruned, dtype=np.float64)).sum())
    return 0.0 if total == 0.0 else (total - kept) / total


def check_sparsity(w, s) -> None:
    """Raise ``ValueError`` naming the first row and bank with more non-zeros than ``s`` allows."""
    s = _check_s(s)
    w = _as_2d(w)
    counts = np.count_nonzero(_pad_banks(w), axis=2)
    bad = np.argwhere(counts > BANK // s)
    if len(bad):
        row, bank = (int(v) for v in bad[0])
        raise ValueError(
            f"weights are not bank-balanced at sparsity {s}: row {row}, bank {bank} "
            f"(columns {bank * BANK}..{min(bank * BANK + BANK, w.shape[1]) - 1}) has "
            f"{int(counts[row, bank])} non-zeros, at most {BANK // s} allowed")


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """A weight matrix in the packed bank-balanced form.

    Members
    -------
    n, k : int
        Logical shape of ``W`` (before K padding).
    s : int
        Sparsity level.
    values : int8 array [n, nb, nnz]
        Stored weight values.
    indices : uint8 array [n, nb, nnz]
        Index of each value inside its bank (0..31), strictly increasing along the last axis.
        For ``s = 1`` it is ``0..31`` in every bank.
    """

    n: int
    k: int
    s: int
    values: np.ndarray
    indices: np.ndarray

    def __post_init__(self):
        s = _check_s(self.s)
        object.__setattr__(self, "n", _check_dim("n", self.n))
        object.__setattr__(self, "k", _check_dim("k", self.k))
        nb, nnz = _banks(self.k), BANK // s
        values = np.asarray(self.values)
        indices = np.asarray(self.indices)
        if values.dtype != np.int8:
            raise ValueError(f"values must be int8, not {values.dtype}")
        shape = (self.n, nb, nnz)
        if values.shape != shape:
            raise ValueError(f"values must have shape {shape} for n={self.n}, k={self.k}, s={s}, "
                             f"not {values.shape}")
        if indices.shape != shape:
            raise ValueError(f"indices must have shape {shape}, not {indices.shape}")
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be integers, not {indices.dtype}")
        if indices.size and (indices.min() < 0 or indices.max() >= BANK):
            bad = np.argwhere((indices < 0) | (indices >= BANK))[0]
            raise ValueError(f"index {int(indices[tuple(bad)])} out of range 0..{BANK - 1} at "
                             f"row {bad[0]}, bank {bad[1]}, entry {bad[2]}")
        if nnz > 1:
            steps = np.diff(indices.astype(np.int16), axis=2)
            if (steps <= 0).any():
                row, bank, entry = (int(v) for v in np.argwhere(steps <= 0)[0])
                raise ValueError(f"indices must be strictly increasing inside a bank: row {row}, "
                                 f"bank {bank} has {indices[row, bank].tolist()}")
        tail = self.k % BANK
        if tail:
            beyond = (indices[:, -1, :] >= tail) & (values[:, -1, :] != 0)
            if beyond.any():
                row = int(np.argwhere(beyond)[0][0])
                raise ValueError(f"row {row} stores a non-zero beyond k={self.k}")
        object.__setattr__(self, "s", s)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "indices", indices.astype(np.uint8))

    @property
    def banks(self) -> int:
        return _banks(self.k)

    @property
    def nnz(self) -> int:
        return BANK // self.s

    def dense(self) -> np.ndarray:
        """The pruned dense matrix ``W[n, k]`` (int8)."""
        return unpack(self)

    # -- byte layout ----------------------------------------------------------------------
    def _index_row_bytes(self) -> int:
        return -(-(self.banks * self.nnz * 5) // 64) * 8

    def _values_bytes(self) -> int:
        return self.n * self.banks * self.nnz

    def byte_size(self) -> int:
        """Size of :meth:`to_bytes` in bytes (container header and checksum included)."""
        return _HEADER.size + self._layout_size(self.n, self.k, self.s) + _CRC_BYTES

    def to_bytes(self) -> bytes:
        """Serialize in the container (module docstring): header, compact layout, CRC32."""
        out = bytearray(self.values.tobytes())
        if self.s != 1:
            out.extend(b"\0" * (-len(out) % 64))
            bits = ((self.indices.reshape(self.n, -1)[:, :, None] >> np.arange(5)) & 1)
            bits = bits.astype(np.uint8).reshape(self.n, -1)
            row_bits = self._index_row_bytes() * 8
            bits = np.concatenate([bits, np.zeros((self.n, row_bits - bits.shape[1]), np.uint8)],
                                  1)
            out.extend(np.packbits(bits, axis=1, bitorder="little").tobytes())
        blob = _HEADER.pack(_MAGIC, CONTAINER_VERSION, self.s, self.n, self.k, len(out)) + out
        return bytes(blob) + struct.pack("<I", zlib.crc32(blob))

    @classmethod
    def from_bytes(cls, data: bytes, n: int | None = None, k: int | None = None,
                   s: int | None = None) -> PackedWeights:
        """Parse :meth:`to_bytes` output. ``n``, ``k`` and ``s`` are read from the container;
        when given they must match it. Bytes that are not a container of this version, are
        truncated, fail the checksum or hold different dimensions are a ``ValueError``."""
        for name, value in (("n", n), ("k", k)):
            if value is not None:
                _check_dim(name, value)
        if s is not None:
            _check_s(s)
        data = bytes(data)
        if len(data) < _HEADER.size + _CRC_BYTES:
            raise ValueError(f"packed weights are truncated: {len(data)} bytes, not even a "
                             f"{_HEADER.size + _CRC_BYTES}-byte header and checksum")
        magic, version, hs, hn, hk, size = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError(f"not packed weights: the bytes start with {magic!r}, not "
                             f"{_MAGIC!r}")
        if version != CONTAINER_VERSION:
            raise ValueError(f"packed weights of container version {version}; this version "
                             f"reads {CONTAINER_VERSION}")
        end = _HEADER.size + size
        if len(data) != end + _CRC_BYTES:
            raise ValueError(f"packed weights are truncated or extended: the header announces "
                             f"{end + _CRC_BYTES} bytes, got {len(data)}")
        (crc,) = struct.unpack_from("<I", data, end)
        actual = zlib.crc32(data[:end])
        if actual != crc:
            raise ValueError(f"packed weights are corrupted: checksum {actual:#010x}, stored "
                             f"{crc:#010x}")
        want = (hn if n is None else n, hk if k is None else k, hs if s is None else s)
        if (hn, hk, hs) != want:
            raise ValueError(f"packed weights hold n={hn}, k={hk}, s={hs}, not "
                             f"n={want[0]}, k={want[1]}, s={want[2]}")
        n, k, s = _check_dim("n", hn), _check_dim("k", hk), _check_s(hs)
        nb, nnz = _banks(k), BANK // s
        nvals = n * nb * nnz
        if size != cls._layout_size(n, k, s):
            raise ValueError(f"packed weights for n={n}, k={k}, s={s} are "
                             f"{cls._layout_size(n, k, s)} bytes, the container holds {size}")
        payload = data[_HEADER.size:end]
        values = np.frombuffer(payload, dtype=np.int8, count=nvals).reshape(n, nb, nnz).copy()
        if s == 1:
            indices = np.broadcast_to(np.arange(BANK, dtype=np.uint8), (n, nb, nnz)).copy()
        else:
            start = -(-nvals // 64) * 64
            row_bytes = -(-(nb * nnz * 5) // 64) * 8
            raw = np.frombuffer(payload, dtype=np.uint8, offset=start).reshape(n, row_bytes)
            bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :nb * nnz * 5]
            bits = bits.reshape(n, nb * nnz, 5).astype(np.uint8)
            indices = (bits << np.arange(5, dtype=np.uint8)).sum(axis=2).astype(np.uint8)
            indices = indices.reshape(n, nb, nnz)
        return cls(n=n, k=k, s=s, values=values, indices=indices)

    @staticmethod
    def _layout_size(n, k, s) -> int:
        """Bytes of the compact layout (the container's payload)."""
        nb, nnz = _banks(k), BANK // s
        size = n * nb * nnz
        if s != 1:
            size = -(-size // 64) * 64 + n * (-(-(nb * nnz * 5) // 64) * 8)
        return size


def pack(w, s, *, prune_first: bool = False) -> PackedWeights:
    """Pack an int8 weight matrix ``W[N, K]`` at sparsity ``s``.

    Without ``prune_first`` the matrix must already be bank-balanced: a bank with more
    non-zeros than ``32 // s`` raises ``ValueError`` naming the row and bank.
    """
    s = _check_s(s)
    w = _as_2d(w)
    if w.dtype != np.int8:
        raise ValueError(f"weights must be int8 to pack, not dtype {w.dtype} "
                         "(quantize first; the compiler does this)")
    if prune_first:
        w = prune(w, s)
    check_sparsity(w, s)
    n, k = w.shape
    nnz = BANK // s
    banks = _pad_banks(w)
    if s == 1:
        indices = np.broadcast_to(np.arange(BANK, dtype=np.uint8), banks.shape).copy()
        return PackedWeights(n=n, k=k, s=s, values=banks.copy(), indices=indices)
    # non-zeros first (in index order), then the lowest zero positions as padding, then sort
    nz = banks != 0
    key = np.where(nz, 0, 1) * BANK + np.arange(BANK)
    chosen = np.sort(np.argsort(key, axis=2, kind="stable")[:, :, :nnz], axis=2)
    values = np.take_along_axis(banks, chosen, axis=2)
    return PackedWeights(n=n, k=k, s=s, values=values, indices=chosen.astype(np.uint8))


def unpack(packed: PackedWeights) -> np.ndarray:
    """The dense int8 matrix ``W[n, k]`` a :class:`PackedWeights` represents."""
    n, nb = packed.n, packed.banks
    banks = np.zeros((n, nb, BANK), dtype=np.int8)
    np.put_along_axis(banks, packed.indices.astype(np.intp), packed.values, axis=2)
    return banks.reshape(n, nb * BANK)[:, :packed.k]
