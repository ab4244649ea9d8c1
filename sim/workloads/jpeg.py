"""JPEG inputs for the decoder's testbenches, benchmark and fuzzing: images Pillow encodes
(scikit-learn's two sample photographs and seeded synthetic ones), the scan data a driver
sends the decoder, and seeded mutations of a file (bit flips, truncation, inserted and deleted
bytes, in the headers or in the entropy-coded data).
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["SUBSAMPLING", "encode", "smooth_image", "sample_image", "scan_start", "scan_data",
           "strip_dht", "MUTATIONS", "mutate"]

#: Pillow's ``subsampling`` argument per sampling mode ("grey" saves a one-component file)
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def encode(img, mode: str, **kw) -> bytes:
    """``img`` (a PIL image) as a JPEG in ``mode`` ("grey" or a :data:`SUBSAMPLING` key);
    ``kw`` are Pillow's ``save`` options (quality, optimize, restart_marker_blocks...)."""
    buf = io.BytesIO()
    if mode == "grey":
        img.convert("L").save(buf, "JPEG", **kw)
    else:
        if mode not in SUBSAMPLING:
            raise ValueError(f"sampling must be grey or one of {', '.join(SUBSAMPLING)}, "
                             f"not {mode!r}")
        img.convert("RGB").save(buf, "JPEG", subsampling=SUBSAMPLING[mode], **kw)
    return buf.getvalue()


def smooth_image(rng: np.random.Generator, h: int, w: int):
    """A PIL RGB image of smooth areas plus texture, so every coefficient band, long zero runs
    and large values occur."""
    from PIL import Image

    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
    noisy = base + rng.integers(-24, 25, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def sample_image(name: str):
    """scikit-learn's ``china.jpg`` or ``flower.jpg`` (427 x 640) as a PIL RGB image."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image(name))


def header_segments(data: bytes):
    """``(pos, marker, length)`` of each marker segment after SOI, up to and including the
    first SOS (``length`` as the segment gives it: its bytes after the marker); raises
    ValueError when the headers end without an SOS."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no marker at offset {pos}")
        marker, length = data[pos + 1], (data[pos + 2] << 8) | data[pos + 3]
        yield pos, marker, length
        if marker == 0xDA:
            return
        pos += 2 + length
    raise ValueError("no SOS segment")


def scan_start(data: bytes) -> int:
    """Offset of the first byte after the first SOS segment (the entropy-coded data); raises
    ValueError when the headers end without one."""
    for pos, marker, length in header_segments(data):
        if marker == 0xDA:
            return pos + 2 + length
    raise AssertionError("unreachable: header_segments ends at an SOS or raises")


def strip_dht(data: bytes) -> bytes:
    """``data`` without its DHT segments before the first SOS: a Motion JPEG style frame, to
    be decoded with the standard tables of T.81 Annex K.3 (equal to the image only when Pillow
    encoded it with them, its default without ``optimize``)."""
    out = bytearray(data[:2])
    for pos, marker, length in header_segments(data):
        if marker != 0xC4:
            out += data[pos:pos + 2 + length]
    return bytes(out + data[scan_start(data):])


def with_dht_symbols(data: bytes, tc: int, th: int, sym: int) -> bytes:
    """``data`` with every symbol of the Huffman table of class ``tc`` (0 DC, 1 AC) and id
    ``th`` replaced by ``sym`` (codes and counts kept): a stream whose symbols fail the
    decoder's checks (a DC size over 11, an AC run past 63) while its headers parse."""
    out = bytearray(data)
    for pos, marker, length in header_segments(data):
        if marker != 0xC4:
            continue
        j = pos + 4
        while j < pos + 2 + length:
            n = sum(data[j + 1:j + 17])
            if data[j] == (tc << 4 | th):
                out[j + 17:j + 17 + n] = bytes([sym]) * n
            j += 17 + n
    return bytes(out)


def scan_data(data: bytes) -> bytes:
    """What the driver sends the decoder: the bytes after the SOS segment (entropy-coded data,
    then the end marker and anything after it)."""
    return data[scan_start(data):]


MUTATIONS = ("flip_header", "flip_data", "truncate", "insert_header", "insert_data",
             "delete_data", "marker_data")


def mutate(data: bytes, rng: np.random.Generator, kind: str | None = None,
           *, data_only: bool = False) -> tuple[bytes, str]:
    """One seeded mutation of the JPEG file ``data``: returns (mutated file, description).
    ``kind`` one of :data:`MUTATIONS` (default: drawn); ``data_only`` draws only mutations of
    the entropy-coded data (the headers stay valid)."""
    kinds = [k for k in MUTATIONS if not (data_only and "header" in k)]
    kind = kind or kinds[int(rng.integers(len(kinds)))]
    sos = scan_start(data)
    buf = bytearray(data)
    header = (2, sos)
    body = (sos, max(sos + 1, len(data) - 2))   # the entropy-coded data, not EOI

    def at(span):
        return int(rng.integers(span[0], span[1]))

    if kind.startswith("flip"):
        n = int(rng.integers(1, 4))
        where = [at(header if kind == "flip_header" else body) for _ in range(n)]
        for pos in where:
            buf[pos] ^= 1 << int(rng.integers(8))
        return bytes(buf), f"{kind} at {where}"
    if kind == "truncate":
        cut = at((sos + 1 if data_only else 2, len(data)))   # data_only: a byte to send
        return bytes(buf[:cut]), f"truncate at {cut} of {len(data)}"
    if kind.startswith("insert"):
        pos = at(header if kind == "insert_header" else body)
        junk = rng.integers(0, 256, int(rng.integers(1, 5)), dtype=np.uint8).tobytes()
        return bytes(buf[:pos] + junk + buf[pos:]), f"{kind} {junk.hex()} at {pos}"
    if kind == "delete_data":
        pos = at(body)
        n = int(rng.integers(1, 5))
        return bytes(buf[:pos] + buf[pos + n:]), f"delete {n} at {pos}"
    if kind == "marker_data":
        pos = at(body)
        marker = bytes([0xFF, int(rng.choice([0xD0, 0xD3, 0xD7, 0xD9, 0xC4, 0xDA, 0x01]))])
        return bytes(buf[:pos] + marker + buf[pos:]), f"marker {marker.hex()} at {pos}"
    raise ValueError(f"unknown mutation {kind!r} (known: {', '.join(MUTATIONS)})")
