"""Device memory layouts of GEMM operands (the formats the SPU scratchpads hold).

Everything is little-endian bytes; a LOAD copies these images into a scratchpad unchanged and a
STORE copies output words back, so the same functions serve the DRAM images the driver writes
and reads. ``R``, ``C`` are the tensor core's rows and columns.

- activations: ``[m_tile][bank][row r][32 bytes]`` (one ACT word per row tile and bank)
- weights:     ``[n_tile][bank][entry][channel c][value, index]`` (one WGT word per entry)
- parameters:  ``[n_tile][channel c][bias:int32, mult:u16, shift:u8, 0]`` (one PAR word)
- outputs:     ``[n_tile][m_tile][row r][channel c] int32`` (one OUT word per output row)
"""

from __future__ import annotations

import numpy as np

from ..base.config import BANK
from ..base.sparse import PackedWeights

__all__ = ["act_image", "wgt_image", "par_image", "lut_image", "decode_out", "tiles"]


def tiles(m, n, rows, cols):
    """Row tiles and channel tiles of an M x N output."""
    return -(-m // rows), -(-n // cols)


def act_image(x: np.ndarray, rows: int) -> bytes:
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != 2:
        raise ValueError(f"activations must be a 2-D int8 array, not {x.dtype} {x.shape}")
    m, k = x.shape
    mt, nb = -(-m // rows), -(-k // BANK)
    xp = np.zeros((mt * rows, nb * BANK), np.int8)
    xp[:m, :k] = x
    return xp.reshape(mt, rows, nb, BANK).transpose(0, 2, 1, 3).tobytes()


def wgt_image(packed: PackedWeights, cols: int) -> bytes:
    n, nb, nnz = packed.n, packed.banks, packed.nnz
    nt = -(-n // cols)
    vals = np.zeros((nt * cols, nb, nnz), np.int8)
    idxs = np.zeros((nt * cols, nb, nnz), np.uint8)
    vals[:n], idxs[:n] = packed.values, packed.indices
    idxs[n:] = np.arange(nnz, dtype=np.uint8)
    pair = np.stack([vals.view(np.uint8), idxs], axis=-1)           # [N, nb, nnz, 2]
    return pair.reshape(nt, cols, nb, nnz, 2).transpose(0, 2, 3, 1, 4).tobytes()


def par_image(bias, mult, shift, n: int, cols: int) -> bytes:
    nt = -(-n // cols)
    rec = np.zeros((nt * cols, 8), np.uint8)
    b = np.zeros(nt * cols, np.int64)
    mu = np.zeros(nt * cols, np.int64)
    sh = np.zeros(nt * cols, np.int64)
    b[:n] = np.broadcast_to(np.asarray(0 if bias is None else bias, np.int64), (n,))
    mu[:n] = np.broadcast_to(np.asarray(1 if mult is None else mult, np.int64), (n,))
    sh[:n] = np.broadcast_to(np.asarray(0 if shift is None else shift, np.int64), (n,))
    rec[:, 0:4] = (b.astype(np.uint64) & 0xFFFFFFFF).astype("<u4")[:, None].view(np.uint8)
    rec[:, 4:6] = mu.astype("<u2")[:, None].view(np.uint8)
    rec[:, 6] = sh.astype(np.uint8)
    return rec.tobytes()


def lut_image(lut) -> bytes:
    lut = np.asarray(lut)
    if lut.shape != (256,) or lut.dtype != np.int8:
        raise ValueError(f"lut must be 256 int8 entries, not {lut.dtype} {lut.shape}")
    return lut.tobytes()


def decode_out(raw: bytes, m: int, n: int, rows: int, cols: int, mode: str) -> np.ndarray:
    mt, nt = tiles(m, n, rows, cols)
    a = np.frombuffer(raw, dtype="<i4", count=nt * mt * rows * cols)
    a = a.reshape(nt, mt * rows, cols).transpose(1, 0, 2).reshape(mt * rows, nt * cols)[:m, :n]
    return a.astype(np.int8) if mode == "int8" else a.astype(np.int32)
