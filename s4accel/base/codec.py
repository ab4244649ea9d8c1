"""The codec wrapper's golden model (issue 23, item 2): a ``DECODE`` job, JPEG in, the first
layer's int8 input in the activation scratchpad out.

A ``DECODE`` descriptor (:class:`~s4accel.hw.cmd.descriptors.DecodeBody`) names a **table
block** in DRAM and the entropy-coded bitstream of one baseline scan. The block carries what a
hardware codec is programmed with from the headers (the driver parses them with
:func:`s4accel.base.jpeg.parse`; :func:`table_block` builds it), so Motion JPEG frames need no
register writes. Its layout (:data:`TABLE_BLOCK_BYTES` bytes, little-endian)::

    offset  bytes  field
    0       4      magic b"S4JT"
    4       1      format version, 1
    5       1      sampling: 0 grey (1 component), 1 4:4:4, 2 4:2:2, 3 4:2:0 (3 components)
    6       1      flags: bit 0 ycc (YCbCr -> RGB; 0: the three components are R, G, B)
    7       1      0
    8       2      width  (1 .. MAX_WIDTH)
    10      2      height (1 .. 65535)
    12      2      restart interval in MCUs (0: none)
    14      2      0
    16      24     normalisation of channel c at 16 + 8c: offset (int16), mult (int16),
                   shift (uint8, 0..31), 3 bytes 0
    40      24     0
    64 + 672c      component c (0..2; grey uses 0 only, the others are not read):
        +0    128    quantizer, 64 uint16 in natural (row-major) order
        +128  16+256 DC Huffman table: the 16 code counts of a DHT table, then 256 symbol
                     bytes in code order (the first sum(counts) used)
        +400  16+256 AC Huffman table, the same

A frame without DHT (common in AVI MJPEG) gets the standard tables of T.81 Annex K.3 from
:func:`s4accel.base.jpeg.parse`, which :func:`table_block` then writes into the block, so the
device never needs to know the difference. The bitstream is the bytes after the SOS segment up
to (and best including) the marker that ends the scan; its last byte counts as the end of the
scan if no marker came before (:func:`scan_segments`).

A block the decoder cannot use (magic, version, sampling, size, a Huffman table whose code
lengths overflow or that has more than 256 symbols, a shift over 31) is :class:`BlockError`,
and a corrupt bitstream :class:`~s4accel.base.jpeg.JpegError`: the device answers both with
``DECODE_ERROR``.

**Output.** The decoded image (``H x W`` grey or RGB) is cropped to ``crop_w x crop_h`` pixels
from ``(crop_x, crop_y)``, resized by box averaging to ``out_w x out_h`` (never up:
``out_w <= crop_w``, ``out_h <= crop_h``), normalised and quantised per channel
(:func:`normalise`), and written into the activation scratchpad as the first conv layer's
NHWC input (:mod:`s4accel.sw.conv`): output pixel ``(y, x)`` is ACT word ``act_addr + y *
out_w + x``, and in it the 32 bytes of row memory ``lane`` (image ``lane`` of the chunk) are
the ``C`` channels (1 grey, 3 RGB) then ``32 - C`` zero bytes; the other row memories' bytes
are not written.

**Box resize** (:func:`box_resize`; Pillow's ``Image.resize(..., Image.BOX)`` keeps a
pixel whose centre is in the output pixel's area with weight one): along x, output column
``i`` averages the crop's columns ``x`` with ``2*i*crop_w < (2x+1)*out_w <= 2*(i+1)*crop_w``
(the same along y); the value is ``(2*s + n) // (2*n)`` for the window's sum ``s`` of ``n``
pixels (round half up, one rounding; Pillow rounds after each axis, so the two differ by at
most 1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .jpeg import (Component, HuffmanTable, JpegError, JpegTables, Scan, _entropy_segments,
                   check_hardware_scan, decode_tables, parse, stored_as_rgb)

__all__ = ["TABLE_BLOCK_BYTES", "MAX_WIDTH", "MAX_OUT_W", "SAMPLING", "BlockError", "Norm", "Block",
           "table_block", "parse_block", "scan_segments", "decode_block", "box_windows",
           "box_resize", "normalise", "norm_from_float", "decode_job", "act_lane_image",
           "split_scan", "check_geometry", "CENTRED"]

MAGIC = b"S4JT"
VERSION = 1
#: Size of a table block in bytes (a multiple of every DRAM bus width).
TABLE_BLOCK_BYTES = 2112
COMP_BYTES = 672
COMP0 = 64
#: Widest image the decoder takes (its line buffers, ``hw/jpeg/color.py``'s default).
MAX_WIDTH = 2048
#: Widest output (the resize's line buffer, ``hw/jpeg/post.py``); a wider ``out_w`` is
#: ``BAD_FIELD``.
MAX_OUT_W = 1024
#: Sampling codes of the block, in the order of its ``sampling`` byte.
SAMPLING = ("grey", "4:4:4", "4:2:2", "4:2:0")
#: Luma sampling factors (h, v) of each code; chroma is 1x1.
_LUMA = {0: (1, 1), 1: (1, 1), 2: (2, 1), 3: (2, 2)}


class BlockError(ValueError):
    """A table block the decoder cannot use (the device's ``DECODE_ERROR``)."""


@dataclass(frozen=True)
class Norm:
    """Per-channel normalisation: ``q = clamp((((v << 4) - offset) * mult + r) >> shift,
    -128, 127)`` with ``r = 1 << (shift - 1)`` (0 when ``shift`` is 0), for the box-resized
    pixel value ``v`` (0..255). ``offset`` is in 1/16 of a pixel value."""
    offset: int = 0
    mult: int = 1
    shift: int = 4

    def __post_init__(self):
        if not (-32768 <= self.offset < 32768 and -32768 <= self.mult < 32768
                and 0 <= self.shift <= 31):
            raise ValueError(f"normalisation {self} out of range (offset and mult int16, "
                             f"shift 0..31)")


#: The identity's nearest int8 image: ``v - 128`` (the offset is 128 * 16).
CENTRED = Norm(offset=128 * 16, mult=1, shift=4)


def norm_from_float(mean: float, std: float, scale: float, *, bits: int = 14) -> Norm:
    """The :class:`Norm` of ``q = round(((v / 255) - mean) / std / scale)`` (torchvision's
    normalisation of 0..1 pixels, then int8 quantisation with step ``scale``), to within the
    fixed point's precision: ``mult / 2**shift = 1 / (16 * 255 * std * scale)``."""
    if std <= 0 or scale <= 0:
        raise ValueError("std and scale must be positive")
    gain = 1.0 / (16 * 255 * std * scale)
    shift = 0
    while shift < 31 and abs(round(gain * (1 << (shift + 1)))) < (1 << bits):
        shift += 1
    mult = int(round(gain * (1 << shift)))
    offset = int(round(16 * 255 * mean))
    return Norm(offset=max(-32768, min(32767, offset)), mult=mult, shift=shift)


@dataclass
class Block:
    """A parsed table block: the tables as :mod:`s4accel.base.jpeg` knows them."""
    tables: JpegTables
    norms: tuple[Norm, ...]
    channels: int


def table_block(tables: JpegTables, norms=(CENTRED,) * 3, *, max_width=MAX_WIDTH) -> bytes:
    """The table block of the (only) scan of parsed `tables` with per-channel `norms` (one
    :class:`Norm`, or one per channel). Raises :class:`~s4accel.base.jpeg.JpegError` for what
    the hardware decoder does not take (several scans, a scan not in frame order, a width
    over `max_width`: the device's ``Config.jpeg_max_width``, at most :data:`MAX_WIDTH`)."""
    check_hardware_scan(tables, min(max_width, MAX_WIDTH))
    scan = tables.scans[0]
    if isinstance(norms, Norm):
        norms = (norms,) * 3
    norms = tuple(norms) + (CENTRED,) * (3 - len(norms))
    rgb = stored_as_rgb(tables)
    sampling = SAMPLING.index(tables.sampling)
    out = bytearray(TABLE_BLOCK_BYTES)
    out[0:16] = struct.pack("<4sBBBBHHHH", MAGIC, VERSION, sampling,
                            int(len(tables.components) == 3 and not rgb), 0, tables.width,
                            tables.height,
                            scan.restart_interval, 0)
    for c, n in enumerate(norms[:3]):
        out[16 + 8 * c:24 + 8 * c] = struct.pack("<hhB3x", n.offset, n.mult, n.shift)
    dc_h, ac_h = tables.scan_huffman[0]
    for c, comp in enumerate(tables.components):
        at = COMP0 + COMP_BYTES * c
        q = np.asarray(tables.scan_qtables[0][comp.tq], dtype="<u2")
        out[at:at + 128] = q.tobytes()
        for k, table in enumerate((dc_h[scan.dc_tables[c]], ac_h[scan.ac_tables[c]])):
            t = at + 128 + 272 * k
            out[t:t + 16] = bytes(table.counts)
            out[t + 16:t + 16 + len(table.symbols)] = table.symbols
    return bytes(out)


def _huffman(raw: bytes) -> HuffmanTable:
    counts = tuple(raw[:16])
    total = sum(counts)
    if total > 256:
        raise BlockError(f"Huffman table with {total} symbols (at most 256)")
    code = 0
    for bits, n in enumerate(counts, start=1):
        code += n
        if n and code >= (1 << bits):
            raise BlockError("Huffman table whose code lengths overflow (all-ones code)")
        code <<= 1
    return HuffmanTable(counts, bytes(raw[16:16 + total]))


def parse_block(raw: bytes, *, max_width=MAX_WIDTH) -> Block:
    """Check and read a table block (raises :class:`BlockError`) for a decoder that takes
    images up to `max_width` wide (``Config.jpeg_max_width``; the format's own limit is
    :data:`MAX_WIDTH`)."""
    raw = bytes(raw)
    if len(raw) < TABLE_BLOCK_BYTES:
        raise BlockError("table block too short")
    magic, version, sampling, flags, _, width, height, restart, _ = struct.unpack_from(
        "<4sBBBBHHHH", raw, 0)
    if magic != MAGIC or version != VERSION:
        raise BlockError("not a table block (magic or version)")
    if sampling > 3:
        raise BlockError(f"sampling code {sampling}")
    if not (1 <= width <= MAX_WIDTH) or height == 0:
        raise BlockError(f"image size {width}x{height}")
    if width > max_width:
        raise BlockError(f"image width {width} is over the decoder's {max_width}")
    norms = []
    for c in range(3):
        offset, mult, shift = struct.unpack_from("<hhB", raw, 16 + 8 * c)
        if shift > 31:
            raise BlockError(f"normalisation shift {shift}")
        norms.append(Norm(offset, mult, shift))
    ncomp = 1 if sampling == 0 else 3
    t = JpegTables(width=width, height=height, restart_interval=restart)
    h, v = _LUMA[sampling]
    t.components = [Component(1 + c, h if c == 0 else 1, v if c == 0 else 1, c)
                    for c in range(ncomp)]
    dc, ac, q = {}, {}, {}
    for c in range(ncomp):
        at = COMP0 + COMP_BYTES * c
        q[c] = np.frombuffer(raw[at:at + 128], dtype="<u2").astype(np.int64)
        dc[c] = _huffman(raw[at + 128:at + 400])
        ac[c] = _huffman(raw[at + 400:at + 672])
    t.qtables = q
    t.dc_huffman, t.ac_huffman = dc, ac
    if ncomp == 3 and flags & 1:
        t.jfif = True
    elif ncomp == 3:
        t.adobe_transform = 0
    return Block(t, tuple(norms[:ncomp]), ncomp)


def scan_segments(bits: bytes) -> tuple[bytes, ...]:
    """The bitstream split at its restart markers; the scan ends at the first other marker,
    or at the last byte (raises :class:`~s4accel.base.jpeg.JpegError` for RSTn out of
    sequence)."""
    segments, _ = _entropy_segments(bytes(bits) + b"\xff\xd9", 0)
    return tuple(segments)


def decode_block(block: Block, bits: bytes) -> np.ndarray:
    """Decode the bitstream with the block's tables: uint8 (H, W, C)."""
    t = block.tables
    t.scans = [Scan(tuple(range(block.channels)), tuple(range(block.channels)),
                    tuple(range(block.channels)), t.restart_interval, scan_segments(bits))]
    t.scan_qtables = [dict(t.qtables)]
    t.scan_huffman = [(dict(t.dc_huffman), dict(t.ac_huffman))]
    img = decode_tables(t)
    return img.reshape(t.height, t.width, block.channels)


def box_windows(n_in: int, n_out: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` of the input samples each of ``n_out`` outputs averages (``n_out <=
    n_in``): sample ``x`` is in window ``i`` when ``2*i*n_in < (2x+1)*n_out <= 2*(i+1)*n_in``.
    """
    if not 1 <= n_out <= n_in:
        raise ValueError(f"box resize from {n_in} to {n_out} samples (only down or equal)")
    lo = [n_in] * n_out
    hi = [0] * n_out
    for x in range(n_in):       # x's window: the i with 2*i*n_in < (2x+1)*n_out <= 2*(i+1)*n_in
        i = -(-(2 * x + 1) * n_out // (2 * n_in)) - 1
        lo[i], hi[i] = min(lo[i], x), x + 1
    return list(zip(lo, hi, strict=True))


def box_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Box (area) average of uint8 ``img (H, W[, C])`` to ``(out_h, out_w[, C])`` (see the
    module docstring): ``(2*s + n) // (2*n)`` per window."""
    a = np.asarray(img).astype(np.int64)
    ys, xs = box_windows(a.shape[0], out_h), box_windows(a.shape[1], out_w)
    # sums over the windows by cumulative sums (exact integers)
    cy = np.concatenate([np.zeros((1,) + a.shape[1:], np.int64), a.cumsum(axis=0)])
    rows = np.stack([cy[hi] - cy[lo] for lo, hi in ys])
    cx = np.concatenate([np.zeros((rows.shape[0], 1) + a.shape[2:], np.int64),
                         rows.cumsum(axis=1)], axis=1)
    s = np.stack([cx[:, hi] - cx[:, lo] for lo, hi in xs], axis=1)
    ny = np.array([hi - lo for lo, hi in ys]).reshape((-1, 1) + (1,) * (a.ndim - 2))
    nx = np.array([hi - lo for lo, hi in xs]).reshape((1, -1) + (1,) * (a.ndim - 2))
    n = ny * nx
    return ((2 * s + n) // (2 * n)).astype(np.uint8)


def normalise(img: np.ndarray, norms) -> np.ndarray:
    """``img (H, W, C)`` uint8 -> int8 with channel c's :class:`Norm` (see there)."""
    a = np.asarray(img).astype(np.int64)
    out = np.empty(a.shape, np.int8)
    for c in range(a.shape[-1]):
        n = norms[c]
        r = (1 << (n.shift - 1)) if n.shift else 0
        v = (((a[..., c] << 4) - n.offset) * n.mult + r) >> n.shift
        out[..., c] = np.clip(v, -128, 127)
    return out


def decode_job(block_raw: bytes, bits: bytes, *, crop, out_h: int, out_w: int,
               max_width=MAX_WIDTH) -> np.ndarray:
    """A DECODE job's result: int8 ``(out_h, out_w, C)`` (C = 1 grey, 3 RGB). ``crop`` is
    ``(x, y, w, h)``; `max_width` the decoder's (``Config.jpeg_max_width``). Raises
    :class:`BlockError` or :class:`~s4accel.base.jpeg.JpegError` (``DECODE_ERROR``) and
    :class:`ValueError` for a crop or size that does not fit the image (``BAD_FIELD``;
    :func:`check_geometry`)."""
    block = parse_block(block_raw, max_width=max_width)
    check_geometry(block.tables.width, block.tables.height, crop, out_h, out_w)
    img = decode_block(block, bits)
    x, y, w, h = crop
    return normalise(box_resize(img[y:y + h, x:x + w], out_h, out_w), block.norms)


def check_geometry(width, height, crop, out_h, out_w):
    """Raise ValueError unless the crop lies inside the image and the output size is 1 ..
    the crop's along each axis."""
    x, y, w, h = crop
    if not (w and h and x + w <= width and y + h <= height):
        raise ValueError(f"crop {w}x{h} at ({x}, {y}) is not inside the {width}x{height} image")
    if not (1 <= out_w <= w and 1 <= out_h <= h):
        raise ValueError(f"output {out_w}x{out_h} is not 1x1 .. the crop's {w}x{h}")


def act_lane_image(q: np.ndarray) -> bytes:
    """The 32 bytes per output pixel a DECODE writes into its lane: ``q (out_h, out_w, C)``
    int8 as ``out_h * out_w`` runs of C channel bytes and ``32 - C`` zeros."""
    q = np.asarray(q, np.int8)
    lanes = np.zeros(q.shape[:2] + (32,), np.int8)
    lanes[..., :q.shape[2]] = q
    return lanes.tobytes()


def split_scan(data: bytes) -> tuple[JpegTables, bytes]:
    """``(tables, bitstream)`` of a single-scan JPEG file: the parsed headers and the bytes
    from the end of the SOS segment to the end of the file (the scan's end marker, EOI, is
    in them)."""
    data = bytes(data)
    tables = parse(data)
    pos = 2
    while True:             # parse() checked the structure: walk to the first SOS
        while data[pos] == 0xFF:
            pos += 1
        marker = data[pos]
        length = (data[pos + 1] << 8) | data[pos + 2]
        pos += 1 + length
        if marker == 0xDA:
            return tables, data[pos:]
