"""Device memory layouts of GEMM operands (the formats the SPU scratchpads hold).

Everything is little-endian bytes; a LOAD copies these images into a scratchpad unchanged and a
STORE copies output words back, so the same functions serve the DRAM images the driver writes
and reads. ``R``, ``C`` are the tensor core's rows and columns.

- activations: ``[m_tile][bank][row r][32 bytes]`` (one ACT word per row tile and bank)
- weights:     ``[n_tile][bank][entry][channel c][value, index]`` (one WGT word per entry);
  in DRAM usually packed (``wgt_packed_image``, ``LoadFormat.PACKED`` / ``VALUES``): the same
  words as a bit stream of ``cols`` value bytes then ``cols`` 5-bit indices each (indices left
  out at s = 1), which the SPU's load path decodes into these words
- parameters:  ``[n_tile][channel c][bias:int32, mult:u16, shift:u8, 0]`` (one PAR word)
- outputs, raw:  ``[n_tile][m_tile][row r][channel c] int32`` (one OUT word per output row)
- outputs, int8: the activation layout, ``[m_tile][bank][row r][32 bytes]``: a layer's output
  channels are the next layer's K, so an int8 output image is the next layer's ``act_image``
  (channels past N, up to the bank's end, are undefined: the next layer's weights are zero
  there). A GEMM block writes this layout into the output scratchpad
  (``hw/spu/spu.py``), a STORE copies it out unchanged.
"""

from __future__ import annotations

import numpy as np

from ..base.config import BANK
from ..base.golden import MULT_BITS, SHIFT_MAX
from ..base.sparse import PackedWeights
from ..hw.cmd.descriptors import LoadFormat
from ..hw.spu.wgt_unpack import packed_word_bits

__all__ = ["act_image", "wgt_image", "wgt_packed_image", "wgt_format", "pack_wgt_words",
           "unpack_wgt_stream", "packed_word_bits", "par_image", "ln_par_image", "add_par_image",
           "lut_image",
           "decode_out", "tiles"]


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


def wgt_format(s: int) -> LoadFormat:
    """The packed LOAD format of weights at sparsity ``s``: ``VALUES`` at s = 1 (every index
    is its entry), else ``PACKED``."""
    return LoadFormat.VALUES if s == 1 else LoadFormat.PACKED


def pack_wgt_words(raw: bytes, cols: int, fmt, unit: int = 1) -> bytes:
    """WGT words (``wgt_image`` bytes, ``2 * cols`` a word) as the bit stream of a packed LOAD
    in format ``fmt``, zero-padded to a multiple of ``unit`` bytes (the DRAM bus width). With
    ``VALUES`` the indices are dropped (the load path generates them: the caller checks that
    each word's indices are its entry)."""
    w = np.frombuffer(raw, np.uint8).reshape(-1, cols, 2)
    bits = [np.unpackbits(w[:, :, 0], axis=1, bitorder="little")]
    if LoadFormat(fmt) == LoadFormat.PACKED:
        ib = np.unpackbits(w[:, :, 1:2], axis=2, bitorder="little")[:, :, :5]
        bits.append(ib.reshape(len(w), 5 * cols))
    elif LoadFormat(fmt) != LoadFormat.VALUES:
        raise ValueError(f"not a packed weight format: {fmt}")
    out = np.packbits(np.concatenate(bits, axis=1).reshape(-1), bitorder="little").tobytes()
    return out + bytes(-len(out) % unit)


def unpack_wgt_stream(data: bytes, cols: int, fmt) -> bytes:
    """The WGT words a packed LOAD writes from its bytes ``data`` (every whole word of the
    stream, ``len(data) * 8 // word_bits``), as ``2 * cols`` bytes each: the golden decoder
    (the device model's; ``hw/spu/wgt_unpack.py`` is the RTL)."""
    wb = packed_word_bits(fmt, cols)
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    nw = len(bits) // wb
    words = bits[:nw * wb].reshape(nw, wb)
    vals = np.packbits(words[:, :8 * cols].reshape(nw, cols, 8), axis=2, bitorder="little")
    if LoadFormat(fmt) == LoadFormat.PACKED:
        ib = words[:, 8 * cols:].reshape(nw, cols, 5)
        ib = np.concatenate([ib, np.zeros((nw, cols, 3), np.uint8)], axis=2)
        idxs = np.packbits(ib, axis=2, bitorder="little")
    else:
        idxs = np.broadcast_to((np.arange(nw) % BANK).astype(np.uint8)[:, None, None],
                               (nw, cols, 1))
    return np.concatenate([vals, idxs], axis=2).tobytes()


def wgt_packed_image(packed: PackedWeights, cols: int, unit: int, j0: int = 0,
                     j1: int | None = None) -> bytes:
    """Channel tiles ``j0 .. j1`` (default: all) of ``wgt_image`` as one packed LOAD stream in
    format ``wgt_format(packed.s)``, padded to ``unit`` bytes."""
    entries = packed.banks * packed.nnz
    tile = entries * cols * 2
    raw = wgt_image(packed, cols)
    nt = len(raw) // tile
    j1 = nt if j1 is None else j1
    part = raw[j0 * tile:min(j1, nt) * tile] + bytes(max(0, j1 - max(j0, nt)) * tile)
    return pack_wgt_words(part, cols, wgt_format(packed.s), unit)


#: What each per-channel parameter may hold: the PAR word's fields (bias int32, mult u16) and
#: the shifts the requantizer implements (``golden.SHIFT_MAX``; the RTL clamps larger ones).
PAR_RANGES = {"bias": (-(1 << 31), (1 << 31) - 1), "mult": (0, (1 << MULT_BITS) - 1),
              "shift": (0, SHIFT_MAX)}


def _par_field(name, value, default, n):
    """``value`` (None: ``default``) as ``n`` int64s, refused with a ``ValueError`` naming the
    field if it is not integers, not one value or ``n`` of them, or outside ``PAR_RANGES``."""
    a = np.asarray(default if value is None else value)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integers, not {a.dtype}")
    if a.ndim > 1 or (a.ndim == 1 and a.shape != (n,)):
        raise ValueError(f"{name} must be one value or {n}, not shape {a.shape}")
    lo, hi = PAR_RANGES[name]
    bad = np.flatnonzero((a < lo) | (a > hi)) if a.ndim else np.flatnonzero([a < lo or a > hi])
    if len(bad):
        where = f" (channel {int(bad[0])})" if a.ndim else ""
        raise ValueError(f"{name} must be in {lo}..{hi}, not {int(a.reshape(-1)[bad[0]])}"
                         f"{where}")
    return np.broadcast_to(a.astype(np.int64), (n,))


def par_image(bias, mult, shift, n: int, cols: int) -> bytes:
    """The PAR words of ``n`` channels: ``bias`` (default 0), ``mult`` (default 1) and
    ``shift`` (default 0), each one value or ``n``; a value the word cannot hold exactly
    (``PAR_RANGES``) is a ``ValueError`` naming the field, never truncated."""
    b = _par_field("bias", bias, 0, n)
    mu = _par_field("mult", mult, 1, n)
    sh = _par_field("shift", shift, 0, n)
    nt = -(-n // cols)
    rec = np.zeros((nt * cols, 8), np.uint8)
    b = np.concatenate([b, np.zeros(nt * cols - n, np.int64)])
    mu = np.concatenate([mu, np.zeros(nt * cols - n, np.int64)])
    sh = np.concatenate([sh, np.zeros(nt * cols - n, np.int64)])
    rec[:, 0:4] = (b.astype(np.uint64) & 0xFFFFFFFF).astype("<u4")[:, None].view(np.uint8)
    rec[:, 4:6] = mu.astype("<u2")[:, None].view(np.uint8)
    rec[:, 6] = sh.astype(np.uint8)
    return rec.tobytes()


def ln_par_image(mult, bias, shift, cols: int) -> bytes:
    """The PAR words of a LAYERNORM VOP's per-channel parameters (``VopBody``): ``n``
    channels padded to whole vectors of 32, channel ``c`` in bytes ``8c .. 8c+7``: the 40-bit
    signed ``bias`` in bytes 0..3 and 7, the signed 16-bit ``mult`` in bytes 4..5, ``shift``
    (0..47) in byte 6. A value out of range is a ``ValueError`` naming it."""
    mult, bias, shift = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (mult, bias, shift))
    n = mult.shape[0]
    if bias.shape != (n,) or shift.shape != (n,) or n == 0:
        raise ValueError(f"LayerNorm mult, bias and shift must have one length, not "
                         f"{mult.shape}, {bias.shape} and {shift.shape}")
    for name, v, lo, hi in (("mult", mult, -(1 << 15), (1 << 15) - 1),
                            ("bias", bias, -(1 << 39), (1 << 39) - 1), ("shift", shift, 0, 47)):
        if v.min() < lo or v.max() > hi:
            raise ValueError(f"LayerNorm {name} must be in {lo}..{hi} for the device's PAR "
                             f"words, got {int(v.min())}..{int(v.max())}")
    nv = -(-n // BANK) * BANK
    rec = np.zeros((nv, 8), np.uint8)
    b = bias.astype(np.uint64)
    rec[:n, 0:4] = (b & 0xFFFFFFFF).astype("<u4")[:, None].view(np.uint8)
    rec[:n, 7] = ((b >> np.uint64(32)) & np.uint64(0xFF)).astype(np.uint8)
    rec[:n, 4:6] = mult.astype("<i2")[:, None].view(np.uint8)
    rec[:n, 6] = shift.astype(np.uint8)
    return rec.tobytes()


def add_par_image(a_mult, b_mult, shift, cols: int) -> bytes:
    """The PAR words of an ADD VOP's per-channel parameters (``VopBody``'s ``chan``): ``n``
    channels padded to whole vectors of 32, channel ``c`` in bytes ``8c .. 8c+7``: the
    unsigned 16-bit ``a_mult`` in bytes 0..1 and ``b_mult`` in bytes 2..3, ``shift`` (0..47)
    in byte 6, the rest 0. A value out of range is a ``ValueError`` naming it."""
    a_mult, b_mult, shift = (np.asarray(v, dtype=np.int64).reshape(-1)
                             for v in (a_mult, b_mult, shift))
    n = a_mult.shape[0]
    if b_mult.shape != (n,) or shift.shape != (n,) or n == 0:
        raise ValueError(f"ADD a_mult, b_mult and shift must have one length, not "
                         f"{a_mult.shape}, {b_mult.shape} and {shift.shape}")
    for name, v, lo, hi in (("a_mult", a_mult, 0, (1 << 16) - 1),
                            ("b_mult", b_mult, 0, (1 << 16) - 1), ("shift", shift, 0, 47)):
        if v.min() < lo or v.max() > hi:
            raise ValueError(f"ADD {name} must be in {lo}..{hi} for the device's PAR "
                             f"words, got {int(v.min())}..{int(v.max())}")
    rec = np.zeros((-(-n // BANK) * BANK, 8), np.uint8)
    rec[:n, 0:2] = a_mult.astype("<u2")[:, None].view(np.uint8)
    rec[:n, 2:4] = b_mult.astype("<u2")[:, None].view(np.uint8)
    rec[:n, 6] = shift.astype(np.uint8)
    return rec.tobytes()


def lut_image(lut) -> bytes:
    lut = np.asarray(lut)
    if lut.shape != (256,) or lut.dtype != np.int8:
        raise ValueError(f"lut must be 256 int8 entries, not {lut.dtype} {lut.shape}")
    return lut.tobytes()


def decode_out(raw: bytes, m: int, n: int, rows: int, cols: int, mode: str, *,
               banks: int | None = None, row_tiles: int | None = None) -> np.ndarray:
    """Y[m, n] from an output image. int8: the activation layout with ``banks`` banks per row
    tile (default ``ceil(n / 32)``; more where the image is padded to whole channel groups).
    ``row_tiles``: the image's row tiles where it has more than ``m`` rows fill."""
    mt, nt = tiles(m, n, rows, cols)
    mt = row_tiles or mt
    if mode == "int8":
        nb = -(-n // BANK) if banks is None else banks
        a = np.frombuffer(raw, dtype=np.int8, count=mt * nb * rows * BANK)
        return a.reshape(mt, nb, rows, BANK).transpose(0, 2, 1, 3).reshape(
            mt * rows, nb * BANK)[:m, :n].copy()
    a = np.frombuffer(raw, dtype="<i4", count=nt * mt * rows * cols)
    a = a.reshape(nt, mt * rows, cols).transpose(1, 0, 2).reshape(mt * rows, nt * cols)[:m, :n]
    return a.astype(np.int8) if mode == "int8" else a.astype(np.int32)
