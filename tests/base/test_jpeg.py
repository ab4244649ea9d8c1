"""Golden JPEG decoder (s4accel.base.jpeg) against Pillow (libjpeg-turbo's default path).

Every image is encoded by Pillow and decoded both by Pillow and by the golden decoder; the
results must be equal value for value in all four sampling modes (the decoder implements
libjpeg-turbo's fancy upsampler, so 4:2:2 and 4:2:0 are exact too, not merely within 1).
Unsupported and corrupt streams must raise JpegError; a seeded fuzz run checks that mutated
files raise nothing else and that the work stays bounded.
"""

import io
import os
import struct
import time

import numpy as np
import pytest
import sklearn
from jpeg_images import SUBSAMPLING, check_pillow, encode, smooth_image
from PIL import Image

from s4accel.base.jpeg import JpegError, decode, idct_islow, parse

MODES = ["grey", *SUBSAMPLING]
SIZES = [(1, 1), (1, 37), (37, 1), (7, 9), (17, 23), (33, 50), (64, 48)]
QUALITIES = [5, 20, 50, 75, 90, 100]
SKLEARN_IMAGES = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images")


def diff_vs_pillow(data):
    """Decode with both; returns |golden - Pillow| as int array (shapes must agree)."""
    check_pillow()
    ref_img = Image.open(io.BytesIO(data))
    ref = np.asarray(ref_img.convert("L" if ref_img.mode == "L" else "RGB"))
    got = decode(data)
    assert got.dtype == np.uint8 and got.shape == ref.shape
    return np.abs(got.astype(np.int16) - ref.astype(np.int16))


def test_pillow_major_is_pinned():
    check_pillow()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_exact_vs_pillow(mode, size):
    rng = np.random.default_rng(1000 * size[0] + size[1])
    img = smooth_image(rng, *size)
    for q in QUALITIES:
        data = encode(img, mode, quality=q)
        tables = parse(data)
        assert (tables.height, tables.width) == size
        assert tables.sampling == mode or size == (1, 1) and mode != "grey"
        d = diff_vs_pillow(data)
        assert d.max() == 0, f"quality {q}: {np.count_nonzero(d)} values differ, max {d.max()}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("options", [
    {"optimize": True},
    {"restart_marker_blocks": 1},
    {"restart_marker_blocks": 5},
    {"restart_marker_rows": 1},
    {"optimize": True, "restart_marker_blocks": 3, "quality": 95},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_exact_huffman_and_restart_options(mode, options):
    img = smooth_image(np.random.default_rng(7), 45, 70)
    data = encode(img, mode, **options)
    tables = parse(data)
    if "restart_marker_blocks" in options or "restart_marker_rows" in options:
        assert tables.restart_interval > 0
        assert len(tables.scans[0].segments) > 1
    assert diff_vs_pillow(data).max() == 0


@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
def test_sklearn_images(name):
    with open(os.path.join(SKLEARN_IMAGES, name), "rb") as f:
        original = f.read()
    assert diff_vs_pillow(original).max() == 0
    # the throughput images of issue 23: re-encoded by Pillow at 4:2:0, quality 75
    img = Image.open(io.BytesIO(original))
    data = encode(img, "4:2:0", quality=75)
    assert parse(data).sampling == "4:2:0"
    assert diff_vs_pillow(data).max() == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
@pytest.mark.parametrize("mode", MODES)
def test_sklearn_images_all_modes(name, mode):
    img = Image.open(os.path.join(SKLEARN_IMAGES, name))
    for q in (5, 50, 100):
        assert diff_vs_pillow(encode(img, mode, quality=q, optimize=q == 50)).max() == 0


def test_idct_dc_only_and_clamp():
    q = np.ones(64, dtype=np.int64)
    coef = np.zeros((3, 64), dtype=np.int64)
    coef[:, 0] = [0, 8 * 100, -8 * 1000]  # DC 8*v gives a flat block of v (+128)
    out = idct_islow(coef, q)
    assert (out[0] == 128).all() and (out[1] == 228).all() and (out[2] == 0).all()


# --------------------------------------------------------------------------- refusals


def small_jpeg(mode="4:2:0", **kw):
    return encode(smooth_image(np.random.default_rng(3), 24, 40), mode, **kw)


def find_marker(data, marker):
    pos = 2
    while True:
        assert data[pos] == 0xFF
        if data[pos + 1] == marker:
            return pos
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]


def test_refuses_progressive():
    with pytest.raises(JpegError, match="progressive"):
        decode(small_jpeg(progressive=True))


def test_refuses_arithmetic():
    data = bytearray(small_jpeg())
    data[find_marker(data, 0xC0) + 1] = 0xC9
    with pytest.raises(JpegError, match="arithmetic"):
        decode(bytes(data))


def test_refuses_12_bit():
    data = bytearray(small_jpeg())
    data[find_marker(data, 0xC0) + 4] = 12
    with pytest.raises(JpegError, match="12-bit"):
        decode(bytes(data))


def test_refuses_four_components():
    buf = io.BytesIO()
    smooth_image(np.random.default_rng(4), 16, 16).convert("CMYK").save(buf, "JPEG")
    with pytest.raises(JpegError, match="4 components"):
        decode(buf.getvalue())


def test_refuses_unusual_sampling():
    data = bytearray(small_jpeg("4:4:4"))
    data[find_marker(data, 0xC0) + 11] = 0x12  # luma 1x2 (4:4:0)
    with pytest.raises(JpegError, match="sampling factors"):
        decode(bytes(data))


@pytest.mark.parametrize("keep", [0, 1, 2, 3, 20, 200, -300, -40, -3, -2, -1])
def test_refuses_truncated(keep):
    data = small_jpeg()
    with pytest.raises(JpegError):
        decode(data[:keep] if keep >= 0 else data[:len(data) + keep])


def test_refuses_missing_sos():
    data = small_jpeg()
    sos = find_marker(data, 0xDA)
    with pytest.raises(JpegError, match="SOS"):
        decode(data[:sos] + b"\xff\xd9")


def test_refuses_missing_restart_marker():
    data = small_jpeg(restart_marker_blocks=2)
    rst = data.index(b"\xff\xd0")
    with pytest.raises(JpegError, match="restart"):
        decode(data[:rst] + data[rst + 2:])


def test_corrupt_entropy_byte_errors_or_decodes():
    data = small_jpeg()
    start = find_marker(data, 0xDA)
    start += 2 + struct.unpack(">H", data[start + 2:start + 4])[0]
    outcomes = set()
    for pos in range(start, len(data) - 2, 13):
        for value in (0x00, 0x55, 0xFF):
            bad = bytearray(data)
            bad[pos] = value
            t = time.perf_counter()
            try:
                assert decode(bytes(bad)).shape == (24, 40, 3)
                outcomes.add("decoded")
            except JpegError:
                outcomes.add("error")
            assert time.perf_counter() - t < 2.0
    assert outcomes == {"decoded", "error"}


# --------------------------------------------------------------------------- fuzz


def fuzz(seed, count):
    """Mutate small JPEGs (byte overwrites, bit flips, truncations, segment-length edits);
    every result is a decode of the header's shape or a JpegError, each in bounded time."""
    rng = np.random.default_rng(seed)
    img = smooth_image(rng, 13, 21)
    bases = [encode(img, "grey"), encode(img, "4:4:4", optimize=True),
             encode(img, "4:2:2", restart_marker_blocks=2), encode(img, "4:2:0", quality=30)]
    outcomes = {"decoded": 0, "error": 0}
    worst = 0.0
    for i in range(count):
        data = bytearray(bases[i % len(bases)])
        kind = int(rng.integers(0, 4))
        if kind == 0:
            for _ in range(int(rng.integers(1, 5))):
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        elif kind == 1:
            data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2:
            del data[int(rng.integers(0, len(data))):]
        else:
            pos = int(rng.integers(2, len(data) - 1))
            data[pos:pos + 2] = rng.integers(0, 256, 2, dtype=np.uint8).tobytes()
        t = time.perf_counter()
        try:
            out = decode(bytes(data))
        except JpegError:
            outcomes["error"] += 1
        else:
            tables = parse(bytes(data))
            shape = (tables.height, tables.width) + ((3,) if len(tables.components) == 3 else ())
            assert out.shape == shape and out.dtype == np.uint8, f"mutant {i} (seed {seed})"
            outcomes["decoded"] += 1
        worst = max(worst, time.perf_counter() - t)
        assert worst < 2.0, f"mutant {i} (seed {seed}) took {worst:.2f} s"
    print(f"fuzz seed {seed}: {count} mutants, {outcomes}, slowest {worst * 1e3:.1f} ms")
    assert outcomes["decoded"] and outcomes["error"]


def test_fuzz_1000(seed):
    # about 8 s on the 2-core machine, so it stays in the fast tier
    fuzz(seed, 1000)


def test_fill_bytes_are_skipped_as_libjpeg_does(rng):
    """Fill bytes (``FF``) in the entropy-coded data: before a stuffed zero, a restart marker
    and the EOI, libjpeg drops them (T.81 B.1.1.2), so the golden decoder must too (an RTL
    co-simulation found it reading ``FF FF 00`` as two data bytes)."""
    for _ in range(50):         # an image with a stuffed zero in its data
        data = encode(smooth_image(rng, 24, 32), "4:2:0", quality=95, restart_marker_blocks=1)
        sos = data.index(b"\xff\xda")
        if data.find(b"\xff\x00", sos) > 0:
            break
    stuffed = data.index(b"\xff\x00", sos)
    rst = data.index(b"\xff\xd1", sos)
    filled = bytearray(data)
    # (from the back, so the earlier offsets stay)
    for at, n in sorted(((len(data) - 2, 2), (rst, 1), (stuffed, 3)), reverse=True):
        filled[at:at] = b"\xff" * n
    filled = bytes(filled)
    want = np.asarray(Image.open(io.BytesIO(filled)).convert("RGB"))
    assert np.array_equal(want, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    assert np.array_equal(decode(filled), want)
