"""The codec wrapper's golden model (s4accel.base.codec): table block, decode, crop, box resize
against Pillow's BOX filter, normalisation and quantisation."""

import io

import numpy as np
import pytest
from jpeg_images import check_pillow, encode, smooth_image
from PIL import Image

from s4accel.base import codec
from s4accel.base.jpeg import JpegError, decode
from s4accel.sim.workloads.jpeg import strip_dht

MODES = ["grey", "4:4:4", "4:2:2", "4:2:0"]


def _pillow_windows(n_in, n_out):
    """Which outputs each input sample reaches in Pillow's BOX resize (one-hot probes)."""
    out = []
    for x in range(n_in):
        a = np.zeros((1, n_in), np.float32)
        a[0, x] = 1000
        r = np.asarray(Image.fromarray(a, "F").resize((n_out, 1), Image.BOX))[0]
        out.append(tuple(int(i) for i in np.nonzero(r)[0]))
    return out


def _tie(n_in, n_out):
    """A sample centre exactly on a window boundary (2*i*n_in / n_out an odd integer)."""
    return any((2 * i * n_in) % n_out == 0 and (2 * i * n_in // n_out) % 2
               for i in range(1, n_out))


def test_box_windows_equal_pillows_without_ties():
    """Away from exact ties the windows are Pillow's; at a tie Pillow's floating-point test
    puts the sample in either window, both or neither, ours always in the lower one."""
    check_pillow()
    checked = 0
    for n_in in range(1, 33):
        for n_out in range(1, n_in + 1):
            mine = codec.box_windows(n_in, n_out)
            assert [hi - lo for lo, hi in mine] and all(hi > lo for lo, hi in mine)
            assert mine[0][0] == 0 and mine[-1][1] == n_in
            assert all(a[1] == b[0] for a, b in zip(mine, mine[1:]))
            if _tie(n_in, n_out):
                continue
            reach = [tuple(i for i, (lo, hi) in enumerate(mine) if lo <= x < hi)
                     for x in range(n_in)]
            assert reach == _pillow_windows(n_in, n_out), (n_in, n_out)
            checked += 1
    assert checked > 300


def test_box_resize_within_one_of_pillow():
    check_pillow()
    seed = 2301
    rng = np.random.default_rng(seed)
    cases = 0
    while cases < 60:
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        oh, ow = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        if _tie(h, oh) or _tie(w, ow):
            continue
        cases += 1
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)      # noise: the worst case
        ref = np.asarray(Image.fromarray(a).resize((ow, oh), Image.BOX)).astype(int)
        got = codec.box_resize(a, oh, ow)
        assert got.shape == (oh, ow, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - ref).max() <= 1, (seed, h, w, oh, ow)


def test_box_resize_exact_cases():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(codec.box_resize(a, 3, 4), a)            # same size: unchanged
    assert codec.box_resize(a, 1, 1)[0, 0] == 6                    # (2*66 + 12) // 24
    assert np.array_equal(codec.box_resize(np.array([[1, 2]], np.uint8), 1, 1), [[2]])  # half up
    with pytest.raises(ValueError):
        codec.box_windows(3, 4)                                    # no upscaling


def test_normalise():
    v = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    assert np.array_equal(codec.normalise(v, [codec.CENTRED]).ravel(),
                          np.arange(256) - 128)
    n = codec.Norm(offset=100 * 16, mult=3, shift=5)
    exp = np.clip(((np.arange(256) * 16 - 1600) * 3 + 16) >> 5, -128, 127)
    assert np.array_equal(codec.normalise(v, [n]).ravel(), exp)
    f = codec.norm_from_float(0.485, 0.229, 2.0 / 127)
    x = np.arange(256)
    ref = np.clip(np.round((x / 255 - 0.485) / 0.229 / (2.0 / 127)), -128, 127)
    assert np.abs(codec.normalise(x.astype(np.uint8).reshape(-1, 1, 1), [f]).ravel()
                  - ref).max() <= 1
    with pytest.raises(ValueError):
        codec.Norm(shift=32)


@pytest.mark.parametrize("mode", MODES)
def test_decode_job_equals_pillow(mode):
    """Full image, identity resize, centred: exactly Pillow's pixels - 128."""
    rng = np.random.default_rng(7)
    data = encode(smooth_image(rng, 21, 35), mode, quality=80)
    tables, bits = codec.split_scan(data)
    block = codec.table_block(tables)
    assert len(block) == codec.TABLE_BLOCK_BYTES
    q = codec.decode_job(block, bits, crop=(0, 0, 35, 21), out_h=21, out_w=35)
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("L" if mode == "grey" else "RGB"))
    assert np.array_equal(q.reshape(ref.shape).astype(int) + 128, ref)


def test_decode_job_crop_resize_restart_and_standard_tables():
    rng = np.random.default_rng(8)
    data = encode(smooth_image(rng, 40, 48), "4:2:0", quality=60, restart_marker_blocks=3)
    data = strip_dht(data)           # no DHT: the Annex K.3 tables go into the block
    tables, bits = codec.split_scan(data)
    assert tables.standard_huffman
    norm = codec.Norm(offset=120 * 16, mult=5, shift=6)
    q = codec.decode_job(codec.table_block(tables, norm), bits, crop=(5, 3, 37, 30),
                         out_h=16, out_w=16)
    ref = decode(data)[3:33, 5:42]
    exp = codec.normalise(codec.box_resize(ref, 16, 16), [norm] * 3)
    assert q.shape == (16, 16, 3) and np.array_equal(q, exp)
    pil = np.asarray(Image.fromarray(ref).resize((16, 16), Image.BOX)).astype(int)
    assert np.abs(codec.box_resize(ref, 16, 16).astype(int) - pil).max() <= 1


def test_bad_blocks_and_streams():
    rng = np.random.default_rng(9)
    data = encode(smooth_image(rng, 16, 16), "4:4:4", quality=75)
    tables, bits = codec.split_scan(data)
    good = codec.table_block(tables)
    crop = dict(crop=(0, 0, 16, 16), out_h=16, out_w=16)
    for at, value in ((0, 0), (4, 2), (5, 4), (8, 0), (9, 0x80)):     # magic .. width
        bad = bytearray(good)
        bad[at] = value
        if at == 8:
            bad[9] = 0
        with pytest.raises(codec.BlockError):
            codec.decode_job(bytes(bad), bits, **crop)
    bad = bytearray(good)
    bad[64 + 128:64 + 144] = bytes([0, 4]) + bytes(14)                 # 4 codes of length 2
    with pytest.raises(codec.BlockError, match="overflow"):
        codec.decode_job(bytes(bad), bits, **crop)
    with pytest.raises(JpegError):
        codec.decode_job(good, bits[:len(bits) // 3], **crop)          # truncated
    with pytest.raises(ValueError):
        codec.decode_job(good, bits, crop=(1, 0, 16, 16), out_h=16, out_w=16)
    with pytest.raises(ValueError):
        codec.decode_job(good, bits, crop=(0, 0, 8, 8), out_h=9, out_w=8)
    progressive = io.BytesIO()
    Image.open(io.BytesIO(data)).save(progressive, "JPEG", progressive=True)
    with pytest.raises(JpegError, match="progressive"):
        codec.table_block(codec.split_scan(progressive.getvalue())[0])


def test_decoder_max_width():
    """A decoder built for narrower images (``Config.jpeg_max_width``) refuses a wider block
    (BlockError: DECODE_ERROR) and takes one exactly as wide; the driver's block builder
    refuses it up front (JpegError naming both widths)."""
    rng = np.random.default_rng(4)
    data = encode(smooth_image(rng, 8, 17), "grey", quality=80)
    tables, bits = codec.split_scan(data)
    block = codec.table_block(tables)
    crop = dict(crop=(0, 0, 17, 8), out_h=8, out_w=17)
    with pytest.raises(codec.BlockError, match="width 17 is over the decoder's 16"):
        codec.decode_job(block, bits, max_width=16, **crop)
    with pytest.raises(JpegError, match="width 17 is over the decoder's 16"):
        codec.table_block(tables, max_width=16)
    assert np.array_equal(codec.decode_job(block, bits, max_width=32, **crop),
                          codec.decode_job(block, bits, **crop))
    assert codec.parse_block(block, max_width=17).tables.width == 17
