"""Golden baseline JPEG decoder: the bit-exact reference for the hardware decoder (issue 23).

Contract: `decode(data)` takes a JPEG file (ITU-T T.81 sequential DCT, Huffman coded, 8-bit
samples, 1 or 3 components) and returns a uint8 array, (H, W) for grey and (H, W, 3) RGB for
colour.  The arithmetic is libjpeg-turbo's default decompression path, which is what Pillow
uses, so the result equals `np.asarray(Image.open(f).convert(mode))`:

- dequantization and the accurate integer IDCT of jidctint.c ("islow": CONST_BITS 13,
  PASS1_BITS 2, its constants and descaling), output clamped to 0..255;
- chroma upsampling of jdsample.c: "fancy" triangle filters for 2:1 horizontal (h2v1) and
  2:1 both ways (h2v2) with their alternating rounding biases, box replication when the
  subsampled plane is at most 2 samples wide, edge rows and columns replicated;
- YCbCr -> RGB with the fixed-point tables of jdcolor.c (SCALEBITS 16).

`parse(data)` returns the header tables (`JpegTables`) a driver would program into the hardware
and the entropy-coded segments; `decode_tables(tables)` decodes them.  Everything the decoder
does not support, and every malformed stream, raises `JpegError` naming the feature or the
defect; work is bounded by the size of the input (a scan may not claim more blocks than it has
bits), so no input hangs it.

A scan that uses a Huffman table slot 0 or 1 (DC or AC) that no DHT segment before it defined
gets the standard table of T.81 Annex K.3 for that slot (`STANDARD_DC` / `STANDARD_AC`: slot 0
luminance, slot 1 chrominance), as libjpeg does (jstdhuff.c) and as Motion JPEG frames, which
usually carry no DHT (AVI MJPEG), rely on.  The tables filled in are listed in
`JpegTables.standard_huffman` and are, like the others, in the scan's `scan_huffman`, so a
driver programs them into the hardware too.  An undefined slot 2 or 3 stays an error.
Streams of concatenated frames (Motion JPEG): `s4accel.base.mjpeg`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "stored_as_rgb",
    "check_hardware_scan",
    "STANDARD_AC",
    "STANDARD_DC",
    "ZIGZAG",
    "Component",
    "HuffmanTable",
    "JpegError",
    "JpegTables",
    "Scan",
    "decode",
    "decode_tables",
    "idct_islow",
    "parse",
    "scan_blocks",
    "upsample_fancy",
    "ycc_to_rgb",
]


class JpegError(ValueError):
    """A JPEG stream the decoder refuses: an unsupported feature or a corrupt stream."""


# natural (row-major) index of the k-th coefficient in zig-zag order (T.81 figure A.6)
ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
], dtype=np.int64)

_SOF_UNSUPPORTED = {
    0xC2: "progressive DCT (SOF2)",
    0xC3: "lossless (SOF3)",
    0xC5: "differential sequential DCT (SOF5, hierarchical)",
    0xC6: "differential progressive DCT (SOF6, hierarchical)",
    0xC7: "differential lossless (SOF7, hierarchical)",
    0xC9: "arithmetic coding (SOF9)",
    0xCA: "arithmetic coding, progressive (SOF10)",
    0xCB: "arithmetic coding, lossless (SOF11)",
    0xCD: "arithmetic coding, differential (SOF13)",
    0xCE: "arithmetic coding, differential progressive (SOF14)",
    0xCF: "arithmetic coding, differential lossless (SOF15)",
    0xCC: "arithmetic coding conditioning (DAC)",
    0xDC: "DNL marker (number of lines defined after the first scan)",
    0xDE: "hierarchical mode (DHP)",
    0xDF: "hierarchical mode (EXP)",
}


@dataclass(frozen=True)
class HuffmanTable:
    """One DHT table: `counts[i]` codes of length i + 1, `symbols` in code order."""

    counts: tuple[int, ...]
    symbols: bytes

    def lookup(self) -> tuple[list[int], list[int]]:
        """Tables indexed by the next 16 bits: (code length or 0 for no code, symbol)."""
        return _lookup(self.counts, self.symbols)


@functools.lru_cache(maxsize=64)
def _lookup(counts: tuple[int, ...], symbols: bytes) -> tuple[list[int], list[int]]:
    # cached: a Motion JPEG stream or a test run uses the same few tables again and again
    length = np.zeros(1 << 16, dtype=np.int64)
    symbol = np.zeros(1 << 16, dtype=np.int64)
    code = 0
    k = 0
    for bits, n in enumerate(counts, start=1):
        for _ in range(n):
            lo, hi = code << (16 - bits), (code + 1) << (16 - bits)
            length[lo:hi] = bits
            symbol[lo:hi] = symbols[k]
            code += 1
            k += 1
        code <<= 1
    return length.tolist(), symbol.tolist()


# T.81 Annex K.3 (tables K.3 to K.6; libjpeg's jstdhuff.c): the Huffman tables a scan gets for
# slot 0 (luminance) and 1 (chrominance) when no DHT defined them
STANDARD_DC = {
    0: HuffmanTable((0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0), bytes(range(12))),
    1: HuffmanTable((0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0), bytes(range(12))),
}
STANDARD_AC = {
    0: HuffmanTable((0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D), bytes.fromhex(
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a434445464748494a"
        "535455565758595a636465666768696a737475767778797a838485868788898a"
        "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
        "c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa")),
    1: HuffmanTable((0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77), bytes.fromhex(
        "000102031104052131061241510761711322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a262728292a35363738393a434445464748"
        "494a535455565758595a636465666768696a737475767778797a828384858687"
        "88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa")),
}


@dataclass(frozen=True)
class Component:
    """One frame component: identifier, sampling factors and quantization table slot."""

    ident: int
    h: int
    v: int
    tq: int


@dataclass(frozen=True)
class Scan:
    """One scan: frame component indices with their DC/AC table slots, the restart interval in
    force, and the entropy-coded data split at its restart markers (byte stuffing kept)."""

    components: tuple[int, ...]
    dc_tables: tuple[int, ...]
    ac_tables: tuple[int, ...]
    restart_interval: int
    segments: tuple[bytes, ...]


@dataclass
class JpegTables:
    """What the header says: frame size, components, the tables in force at each scan."""

    width: int = 0
    height: int = 0
    components: list[Component] = field(default_factory=list)
    qtables: dict[int, np.ndarray] = field(default_factory=dict)  # slot -> 64 natural order
    dc_huffman: dict[int, HuffmanTable] = field(default_factory=dict)
    ac_huffman: dict[int, HuffmanTable] = field(default_factory=dict)
    restart_interval: int = 0
    scans: list[Scan] = field(default_factory=list)
    scan_qtables: list[dict[int, np.ndarray]] = field(default_factory=list)
    scan_huffman: list[tuple[dict, dict]] = field(default_factory=list)
    adobe_transform: int | None = None
    jfif: bool = False
    #: ("DC" or "AC", slot) of the Huffman tables no DHT defined: the Annex K.3 ones are used
    standard_huffman: set[tuple[str, int]] = field(default_factory=set)

    @property
    def hmax(self) -> int:
        return max(c.h for c in self.components)

    @property
    def vmax(self) -> int:
        return max(c.v for c in self.components)

    @property
    def sampling(self) -> str:
        """'grey', '4:4:4', '4:2:2' or '4:2:0'."""
        if len(self.components) == 1:
            return "grey"
        y, cb, cr = self.components
        rel = (y.h // cb.h, y.v // cb.v)
        return {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0"}[rel]


# ----------------------------------------------------------------------------- header parsing


def _u16(data: bytes, pos: int) -> int:
    if pos + 2 > len(data):
        raise JpegError("truncated file: marker segment runs past the end of the data")
    return (data[pos] << 8) | data[pos + 1]


def _parse_dqt(seg: bytes, tables: JpegTables) -> None:
    pos = 0
    while pos < len(seg):
        pq, tq = seg[pos] >> 4, seg[pos] & 15
        pos += 1
        if pq > 1 or tq > 3:
            raise JpegError(f"bad DQT: precision {pq}, slot {tq}")
        n = 64 * (pq + 1)
        if pos + n > len(seg):
            raise JpegError("bad DQT: table runs past the segment")
        raw = np.frombuffer(seg[pos:pos + n], dtype=">u2" if pq else np.uint8).astype(np.int64)
        q = np.zeros(64, dtype=np.int64)
        q[ZIGZAG] = raw
        tables.qtables[tq] = q
        pos += n


def _parse_dht(seg: bytes, tables: JpegTables) -> None:
    pos = 0
    while pos < len(seg):
        if pos + 17 > len(seg):
            raise JpegError("bad DHT: table runs past the segment")
        tc, th = seg[pos] >> 4, seg[pos] & 15
        if tc > 1 or th > 3:
            raise JpegError(f"bad DHT: class {tc}, slot {th}")
        counts = tuple(seg[pos + 1:pos + 17])
        total = sum(counts)
        pos += 17
        if total > 256 or pos + total > len(seg):
            raise JpegError("bad DHT: symbol count runs past the segment")
        # codes are assigned in canonical order (T.81 C.2); like libjpeg, refuse a table whose
        # codes overflow their length or use an all-ones code
        code = 0
        for bits, n in enumerate(counts, start=1):
            code += n
            if code >= (1 << bits) and n:
                raise JpegError("bad DHT: Huffman code lengths overflow (all-ones code)")
            code <<= 1
        table = HuffmanTable(counts, bytes(seg[pos:pos + total]))
        (tables.ac_huffman if tc else tables.dc_huffman)[th] = table
        pos += total


def _parse_sof(seg: bytes, tables: JpegTables) -> None:
    if tables.components:
        raise JpegError("more than one SOF marker")
    if len(seg) < 6:
        raise JpegError("bad SOF: segment too short")
    precision = seg[0]
    if precision != 8:
        raise JpegError(f"{precision}-bit samples are not supported (only 8-bit)")
    tables.height = (seg[1] << 8) | seg[2]
    tables.width = (seg[3] << 8) | seg[4]
    n = seg[5]
    if tables.height == 0:
        raise JpegError("image height 0 (DNL-defined height) is not supported")
    if tables.width == 0:
        raise JpegError("bad SOF: image width 0")
    if n not in (1, 3):
        raise JpegError(f"{n} components are not supported (only 1 or 3)")
    if len(seg) != 6 + 3 * n:
        raise JpegError("bad SOF: segment length does not match the component count")
    comps = []
    for i in range(n):
        ident, hv, tq = seg[6 + 3 * i:9 + 3 * i]
        h, v = hv >> 4, hv & 15
        if not (1 <= h <= 4 and 1 <= v <= 4) or tq > 3:
            raise JpegError(f"bad SOF: component {ident} sampling {h}x{v}, table {tq}")
        if any(c.ident == ident for c in comps):
            raise JpegError(f"bad SOF: component id {ident} repeated")
        comps.append(Component(ident, h, v, tq))
    if n == 3:
        y, cb, cr = comps
        ok = (cb.h == cr.h == 1 and cb.v == cr.v == 1
              and (y.h, y.v) in ((1, 1), (2, 1), (2, 2)))
        if not ok:
            factors = ",".join(f"{c.h}x{c.v}" for c in comps)
            raise JpegError(f"unusual sampling factors {factors} are not supported "
                            "(only 4:4:4, 4:2:2, 4:2:0)")
    else:
        # one component: its sampling factor does not matter (its own scan is non-interleaved)
        comps = [Component(comps[0].ident, 1, 1, comps[0].tq)]
    tables.components = comps


def _parse_sos(seg: bytes, tables: JpegTables) -> tuple[tuple[int, ...], ...]:
    if not tables.components:
        raise JpegError("SOS before SOF (missing SOF marker)")
    if not seg:
        raise JpegError("bad SOS: empty segment")
    n = seg[0]
    if not 1 <= n <= len(tables.components) or len(seg) != 4 + 2 * n:
        raise JpegError("bad SOS: component count or segment length")
    idents = [c.ident for c in tables.components]
    comps, dcs, acs = [], [], []
    for i in range(n):
        cs, t = seg[1 + 2 * i], seg[2 + 2 * i]
        if cs not in idents:
            raise JpegError(f"bad SOS: component id {cs} not in the frame")
        ci = idents.index(cs)
        if ci in comps:
            raise JpegError(f"bad SOS: component id {cs} repeated")
        comps.append(ci)
        dcs.append(t >> 4)
        acs.append(t & 15)
    ss, se, ahal = seg[1 + 2 * n], seg[2 + 2 * n], seg[3 + 2 * n]
    if (ss, se, ahal) != (0, 63, 0):
        raise JpegError(f"bad SOS: spectral selection {ss}..{se} / approximation {ahal:#x} "
                        "(only a sequential scan 0..63 is supported)")
    if n > 1:
        blocks = sum(tables.components[c].h * tables.components[c].v for c in comps)
        if blocks > 10:
            raise JpegError("bad SOS: more than 10 blocks per MCU")
    for c, d, a in zip(comps, dcs, acs, strict=True):
        # Annex K.3 defaults for slots 0 and 1, as libjpeg's std_huff_tables fills them
        if d not in tables.dc_huffman and d in STANDARD_DC:
            tables.dc_huffman[d] = STANDARD_DC[d]
            tables.standard_huffman.add(("DC", d))
        if a not in tables.ac_huffman and a in STANDARD_AC:
            tables.ac_huffman[a] = STANDARD_AC[a]
            tables.standard_huffman.add(("AC", a))
        if d not in tables.dc_huffman or a not in tables.ac_huffman:
            raise JpegError(f"missing DHT: scan uses DC table {d} / AC table {a} not defined")
        if tables.components[c].tq not in tables.qtables:
            raise JpegError(f"missing DQT: quantization table {tables.components[c].tq}")
    return tuple(comps), tuple(dcs), tuple(acs)


def _entropy_segments(data: bytes, pos: int) -> tuple[list[bytes], int]:
    """Split the entropy-coded data starting at `pos` at its RSTn markers, checking their
    sequence; returns the segments and the position of the marker that ends the scan."""
    segments = []
    start = pos
    expected = 0
    n = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= n:
            raise JpegError("truncated file: entropy-coded data ends without a marker")
        nxt = data[pos + 1]
        if nxt == 0x00:
            pos += 2
            continue
        if nxt == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if 0xD0 <= nxt <= 0xD7:
            if nxt - 0xD0 != expected:
                raise JpegError(f"restart marker RST{nxt - 0xD0} out of sequence "
                                f"(expected RST{expected})")
            expected = (expected + 1) & 7
            segments.append(data[start:pos])
            pos += 2
            start = pos
            continue
        segments.append(data[start:pos])
        return segments, pos


def parse(data: bytes) -> JpegTables:
    """Parse the markers of a baseline JPEG file into `JpegTables` (see the module docstring)."""
    data = bytes(data)
    if len(data) < 2 or data[0] != 0xFF or data[1] != 0xD8:
        raise JpegError("not a JPEG file: missing SOI marker")
    tables = JpegTables()
    pos = 2
    while True:
        if pos >= len(data):
            if not tables.scans:
                raise JpegError("truncated file: no SOS marker (no image data)")
            raise JpegError("truncated file: missing EOI marker")
        if data[pos] != 0xFF:
            raise JpegError(f"bad marker: byte {data[pos]:#04x} at offset {pos} where a marker "
                            "was expected")
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos >= len(data):
            raise JpegError("truncated file: ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            if not tables.scans:
                raise JpegError("missing SOS marker: EOI before any scan")
            return tables
        if marker == 0xD8:
            raise JpegError("unexpected SOI marker inside the image")
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0x00):
            raise JpegError(f"unexpected marker {marker:#04x} outside entropy-coded data")
        length = _u16(data, pos)
        if length < 2 or pos + length > len(data):
            raise JpegError("truncated file: marker segment runs past the end of the data")
        seg = data[pos + 2:pos + length]
        pos += length
        if marker in _SOF_UNSUPPORTED:
            raise JpegError(f"{_SOF_UNSUPPORTED[marker]} is not supported")
        if marker in (0xC0, 0xC1):
            _parse_sof(seg, tables)
        elif marker == 0xC4:
            _parse_dht(seg, tables)
        elif marker == 0xDB:
            _parse_dqt(seg, tables)
        elif marker == 0xDD:
            if len(seg) != 2:
                raise JpegError("bad DRI: segment length")
            tables.restart_interval = (seg[0] << 8) | seg[1]
        elif marker == 0xDA:
            comps, dcs, acs = _parse_sos(seg, tables)
            segments, pos = _entropy_segments(data, pos)
            tables.scans.append(Scan(comps, dcs, acs, tables.restart_interval, tuple(segments)))
            tables.scan_qtables.append(dict(tables.qtables))
            tables.scan_huffman.append((dict(tables.dc_huffman), dict(tables.ac_huffman)))
        elif marker == 0xE0 and seg[:5] == b"JFIF\x00":
            tables.jfif = True
        elif marker == 0xEE and seg[:5] == b"Adobe" and len(seg) >= 12:
            tables.adobe_transform = seg[11]
        # other APPn, COM and unknown markers with a length are skipped, as libjpeg does


# ----------------------------------------------------------------------------- entropy decoding


def _unstuff(seg: bytes) -> bytes:
    """The data bytes of an entropy-coded segment (between markers): ``FF 00`` is a data
    ``FF``, and fill bytes are dropped as libjpeg's ``fill_bit_buffer`` drops them (T.81
    B.1.1.2): any ``FF``s before a stuffed zero, and those at the segment's end (before the
    marker that ends it)."""
    return re.sub(b"\xff+\x00", b"\xff", seg.rstrip(b"\xff"))


def _decode_scan(tables: JpegTables, si: int, coefs: dict[int, np.ndarray]) -> None:
    """Huffman-decode scan `si` into the quantized coefficient arrays (natural order),
    `coefs[ci]` of shape (block rows, block cols, 64)."""
    scan = tables.scans[si]
    dc_h, ac_h = tables.scan_huffman[si]
    comps = [tables.components[c] for c in scan.components]
    hmax, vmax = tables.hmax, tables.vmax
    mcux, mcuy = 8 * hmax, 8 * vmax
    if len(comps) == 1:
        c = comps[0]
        cw = -(-tables.width * c.h // hmax)
        ch = -(-tables.height * c.v // vmax)
        mcus_x, mcus_y = -(-cw // 8), -(-ch // 8)
        layout = [(0, 0, 0)]  # (component slot, block row, block col) inside one MCU
        blocks_per_mcu = 1
    else:
        mcus_x, mcus_y = -(-tables.width // mcux), -(-tables.height // mcuy)
        layout = [(k, by, bx) for k, c in enumerate(comps) for by in range(c.v)
                  for bx in range(c.h)]
        blocks_per_mcu = len(layout)
    total_mcus = mcus_x * mcus_y
    nbytes = sum(len(s) for s in scan.segments)
    # every block costs at least two bits (a DC code and an AC code), so a scan that claims
    # more blocks than its data can hold is corrupt; this also bounds the work
    if total_mcus * blocks_per_mcu > 4 * nbytes + 4 * len(scan.segments):
        raise JpegError("truncated entropy-coded data: fewer bits than the frame has blocks")
    ri = scan.restart_interval
    if ri:
        need = -(-total_mcus // ri)
        if len(scan.segments) < need:
            raise JpegError(f"missing restart marker: {len(scan.segments)} restart intervals "
                            f"for {need}")
    elif len(scan.segments) > 1:
        raise JpegError("restart marker without a DRI restart interval")
    for ci in scan.components:
        if ci not in coefs:
            c = tables.components[ci]
            if len(comps) == 1:
                shape = (mcus_y, mcus_x)
            else:
                shape = (mcus_y * c.v, mcus_x * c.h)
            # padding blocks of the largest component may exist in both layouts
            bh = -(-tables.height // mcuy) * c.v
            bw = -(-tables.width // mcux) * c.h
            coefs[ci] = np.zeros((max(shape[0], bh), max(shape[1], bw), 64), dtype=np.int32)
    luts = [(dc_h[d].lookup(), ac_h[a].lookup())
            for d, a in zip(scan.dc_tables, scan.ac_tables, strict=True)]
    outs = [coefs[ci] for ci in scan.components]
    zz = ZIGZAG.tolist()
    mcu = 0
    for seg in scan.segments:
        if mcu >= total_mcus:
            break
        data = _unstuff(seg) + b"\x00\x00\x00\x00"
        nbits = 8 * (len(data) - 4)
        pos = 0
        pred = [0] * len(comps)
        end = total_mcus if not ri else min(total_mcus, mcu + ri)
        while mcu < end:
            my, mx = divmod(mcu, mcus_x)
            for k, by, bx in layout:
                (dcl, dcs), (acl, acs) = luts[k]
                blk = [0] * 64
                # DC
                p = pos >> 3
                peek = (int.from_bytes(data[p:p + 3], "big") >> (8 - (pos & 7))) & 0xFFFF
                n = dcl[peek]
                if not n:
                    raise JpegError("bad Huffman code in DC coefficient")
                s = dcs[peek]
                pos += n
                if s:
                    if s > 11:
                        raise JpegError(f"bad DC difference category {s}")
                    p = pos >> 3
                    v = (int.from_bytes(data[p:p + 3], "big") >> (24 - (pos & 7) - s)) & (
                        (1 << s) - 1)
                    pos += s
                    if v < (1 << (s - 1)):
                        v -= (1 << s) - 1
                    pred[k] += v
                blk[0] = pred[k]
                # AC
                i = 1
                while i < 64:
                    p = pos >> 3
                    peek = (int.from_bytes(data[p:p + 3], "big") >> (8 - (pos & 7))) & 0xFFFF
                    n = acl[peek]
                    if not n:
                        raise JpegError("bad Huffman code in AC coefficient")
                    rs = acs[peek]
                    pos += n
                    r, s = rs >> 4, rs & 15
                    if s == 0:
                        if r != 15:
                            break
                        i += 16
                        continue
                    i += r
                    if i > 63:
                        raise JpegError("bad AC run: coefficient index past 63")
                    p = pos >> 3
                    v = (int.from_bytes(data[p:p + 3], "big") >> (24 - (pos & 7) - s)) & (
                        (1 << s) - 1)
                    pos += s
                    if v < (1 << (s - 1)):
                        v -= (1 << s) - 1
                    blk[zz[i]] = v
                    i += 1
                if i > 64:
                    raise JpegError("bad AC run: ZRL past coefficient 63")
                if pos > nbits:
                    raise JpegError("truncated entropy-coded data")
                if len(comps) == 1:
                    outs[k][my, mx] = blk
                else:
                    c = comps[k]
                    outs[k][my * c.v + by, mx * c.h + bx] = blk
            mcu += 1
    if mcu < total_mcus:
        raise JpegError("truncated entropy-coded data")


def scan_blocks(tables: JpegTables, si: int = 0) -> list[tuple[int, np.ndarray]]:
    """The quantized blocks of scan `si` in the order the scan codes them (MCU after MCU, in
    each the blocks of each component row by row): ``(frame component index, 64 coefficients
    in natural order)``.  For checking a hardware entropy decoder; raises `JpegError` as
    `decode` does."""
    coefs: dict[int, np.ndarray] = {}
    _decode_scan(tables, si, coefs)
    scan = tables.scans[si]
    comps = [tables.components[c] for c in scan.components]
    out = []
    if len(comps) == 1:
        c = comps[0]
        cw = -(-tables.width * c.h // tables.hmax)
        ch = -(-tables.height * c.v // tables.vmax)
        a = coefs[scan.components[0]]
        for by in range(-(-ch // 8)):
            for bx in range(-(-cw // 8)):
                out.append((scan.components[0], a[by, bx].copy()))
        return out
    mcus_x = -(-tables.width // (8 * tables.hmax))
    mcus_y = -(-tables.height // (8 * tables.vmax))
    for my in range(mcus_y):
        for mx in range(mcus_x):
            for ci, c in zip(scan.components, comps, strict=True):
                for by in range(c.v):
                    for bx in range(c.h):
                        out.append((ci, coefs[ci][my * c.v + by, mx * c.h + bx].copy()))
    return out


# ----------------------------------------------------------------------------- IDCT

_CONST_BITS, _PASS1_BITS = 13, 2


def _fix(x: float) -> int:
    return int(x * (1 << _CONST_BITS) + 0.5)


_F0_298631336 = _fix(0.298631336)
_F0_390180644 = _fix(0.390180644)
_F0_541196100 = _fix(0.541196100)
_F0_765366865 = _fix(0.765366865)
_F0_899976223 = _fix(0.899976223)
_F1_175875602 = _fix(1.175875602)
_F1_501321110 = _fix(1.501321110)
_F1_847759065 = _fix(1.847759065)
_F1_961570560 = _fix(1.961570560)
_F2_053119869 = _fix(2.053119869)
_F2_562915447 = _fix(2.562915447)
_F3_072711026 = _fix(3.072711026)


def _descale(x: np.ndarray, n: int) -> np.ndarray:
    return (x + (1 << (n - 1))) >> n


def _idct_1d(d0, d1, d2, d3, d4, d5, d6, d7, shift):
    """One jidctint.c pass over equal-shaped int64 arrays; returns the 8 descaled outputs."""
    z1 = (d2 + d6) * _F0_541196100
    tmp2 = z1 + d6 * -_F1_847759065
    tmp3 = z1 + d2 * _F0_765366865
    tmp0 = (d0 + d4) << _CONST_BITS
    tmp1 = (d0 - d4) << _CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2

    t0, t1, t2, t3 = d7, d5, d3, d1
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * _F1_175875602
    t0 = t0 * _F0_298631336
    t1 = t1 * _F2_053119869
    t2 = t2 * _F3_072711026
    t3 = t3 * _F1_501321110
    z1 = z1 * -_F0_899976223
    z2 = z2 * -_F2_562915447
    z3 = z3 * -_F1_961570560 + z5
    z4 = z4 * -_F0_390180644 + z5
    t0 = t0 + z1 + z3
    t1 = t1 + z2 + z4
    t2 = t2 + z2 + z3
    t3 = t3 + z1 + z4
    return [_descale(x, shift) for x in (tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0,
                                         tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3)]


def idct_islow(coef: np.ndarray, qtable: np.ndarray) -> np.ndarray:
    """libjpeg's accurate integer IDCT (jidctint.c jpeg_idct_islow) of quantized blocks.

    `coef` (..., 64) quantized coefficients in natural order, `qtable` (64,) natural order;
    returns (..., 8, 8) uint8 samples.  The all-zero-AC shortcuts of the C code give the same
    result as the full computation, so they are not needed here.  Values are clamped to 0..255
    as libjpeg-turbo's SIMD code does (the C table lookup would wrap values beyond +-512, which
    valid 8-bit data never reaches).
    """
    d = (np.asarray(coef, dtype=np.int64) * np.asarray(qtable, dtype=np.int64))
    d = d.reshape(d.shape[:-1] + (8, 8))
    # pass 1: columns (index [..., row=vertical frequency, col])
    ws = _idct_1d(*[d[..., k, :] for k in range(8)], _CONST_BITS - _PASS1_BITS)
    ws = np.stack(ws, axis=-2)
    # pass 2: rows
    out = _idct_1d(*[ws[..., :, k] for k in range(8)], _CONST_BITS + _PASS1_BITS + 3)
    out = np.stack(out, axis=-1)
    return np.clip(out + 128, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- upsampling


def upsample_fancy(plane: np.ndarray, h: int, v: int) -> np.ndarray:
    """Upsample a (rows, cols) uint8 chroma plane by (h, v) in {(1,1), (2,1), (2,2)} the way
    libjpeg-turbo's jdsample.c does by default; `plane` is exactly the component's downsampled
    size (its edges are replicated).  Returns (v*rows, h*cols) uint8."""
    x = plane.astype(np.int32)
    rows, cols = x.shape
    if (h, v) == (1, 1):
        return plane
    if cols <= 2:  # libjpeg-turbo falls back to box replication for narrow planes
        return np.repeat(np.repeat(plane, v, axis=0), h, axis=1)
    if (h, v) == (2, 1):
        left = np.concatenate([x[:, :1], x[:, :-1]], axis=1)
        right = np.concatenate([x[:, 1:], x[:, -1:]], axis=1)
        out = np.empty((rows, 2 * cols), dtype=np.int32)
        out[:, 0::2] = (3 * x + left + 1) >> 2
        out[:, 1::2] = (3 * x + right + 2) >> 2
        # the first and last columns are copied, not filtered (equal anyway but for rounding)
        out[:, 0] = x[:, 0]
        out[:, -1] = x[:, -1]
        return out.astype(np.uint8)
    if (h, v) == (2, 2):
        up = np.concatenate([x[:1], x[:-1]], axis=0)
        down = np.concatenate([x[1:], x[-1:]], axis=0)
        out = np.empty((2 * rows, 2 * cols), dtype=np.int32)
        for vv, other in ((0, up), (1, down)):
            cs = 3 * x + other  # column sums
            last = np.concatenate([cs[:, :1], cs[:, :-1]], axis=1)
            nxt = np.concatenate([cs[:, 1:], cs[:, -1:]], axis=1)
            even = (3 * cs + last + 8) >> 4
            odd = (3 * cs + nxt + 7) >> 4
            even[:, 0] = (cs[:, 0] * 4 + 8) >> 4
            odd[:, -1] = (cs[:, -1] * 4 + 7) >> 4
            out[vv::2, 0::2] = even
            out[vv::2, 1::2] = odd
        return out.astype(np.uint8)
    raise JpegError(f"upsampling by {h}x{v} is not supported")


# ----------------------------------------------------------------------------- colour

_SCALEBITS = 16
_ONE_HALF = 1 << (_SCALEBITS - 1)


def _cfix(x: float) -> int:
    return int(x * (1 << _SCALEBITS) + 0.5)


_X = np.arange(256, dtype=np.int64) - 128
CR_R = (_cfix(1.40200) * _X + _ONE_HALF) >> _SCALEBITS
CB_B = (_cfix(1.77200) * _X + _ONE_HALF) >> _SCALEBITS
CR_G = -_cfix(0.71414) * _X
CB_G = -_cfix(0.34414) * _X + _ONE_HALF


def ycc_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """jdcolor.c ycc_rgb_convert on uint8 planes of one shape; returns (..., 3) uint8."""
    y = y.astype(np.int64)
    r = y + CR_R[cr]
    g = y + ((CB_G[cb] + CR_G[cr]) >> _SCALEBITS)
    b = y + CB_B[cb]
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- top level


def decode_tables(tables: JpegTables) -> np.ndarray:
    """Decode parsed tables; see `decode`."""
    coefs: dict[int, np.ndarray] = {}
    qt_of: dict[int, np.ndarray] = {}
    for si, scan in enumerate(tables.scans):
        _decode_scan(tables, si, coefs)
        for ci in scan.components:
            # libjpeg latches each component's quantization table at its first scan
            qt_of.setdefault(ci, tables.scan_qtables[si][tables.components[ci].tq])
    hmax, vmax = tables.hmax, tables.vmax
    planes = []
    for ci, c in enumerate(tables.components):
        if ci not in coefs:
            raise JpegError(f"component {c.ident} has no scan (missing SOS)")
        by, bx = coefs[ci].shape[:2]
        plane = np.empty((by * 8, bx * 8), dtype=np.uint8)
        step = max(1, 4096 // bx)  # block rows per IDCT batch, bounding the temporaries
        for r in range(0, by, step):
            blocks = idct_islow(coefs[ci][r:r + step], qt_of[ci])  # (rows, bx, 8, 8)
            n = blocks.shape[0]
            plane[r * 8:(r + n) * 8] = blocks.transpose(0, 2, 1, 3).reshape(n * 8, bx * 8)
        ch = -(-tables.height * c.v // vmax)
        cw = -(-tables.width * c.h // hmax)
        plane = upsample_fancy(plane[:ch, :cw], hmax // c.h, vmax // c.v)
        planes.append(plane[:tables.height, :tables.width])
    if len(planes) == 1:
        return np.ascontiguousarray(planes[0])
    if stored_as_rgb(tables):
        return np.stack(planes, axis=-1)
    return ycc_to_rgb(*planes)


def stored_as_rgb(tables: JpegTables) -> bool:
    """libjpeg's colour-space guess (jdapimin.c default_decompress_parms): JFIF means YCbCr,
    an Adobe marker says so itself, else component ids 'R','G','B' mean RGB."""
    if tables.jfif:
        return False
    if tables.adobe_transform is not None:
        return tables.adobe_transform == 0
    return tuple(c.ident for c in tables.components) == (ord("R"), ord("G"), ord("B"))


def check_hardware_scan(tables: JpegTables, max_width: int) -> None:
    """Raise :class:`JpegError` for what the hardware decoder does not take: more than one
    scan (a non-interleaved or progressive image), a scan listing its components in another
    order than the frame, an image wider than ``max_width``."""
    if len(tables.scans) != 1:
        raise JpegError(f"{len(tables.scans)} scans (a non-interleaved or progressive image) "
                        "are not supported by the hardware decoder (only one interleaved scan)")
    if list(tables.scans[0].components) != list(range(len(tables.components))):
        raise JpegError("a scan whose components are not all in the frame's order is not "
                        "supported by the hardware decoder")
    if tables.width > max_width:
        raise JpegError(f"image width {tables.width} is over the decoder's {max_width}")


def decode(data: bytes) -> np.ndarray:
    """Decode a baseline JPEG file to uint8 (H, W) grey or (H, W, 3) RGB, bit-exact with
    libjpeg-turbo's default path; raises `JpegError` for unsupported or corrupt streams."""
    return decode_tables(parse(data))
