"""Frames without DHT (the standard tables of T.81 Annex K.3) and Motion JPEG streams
(s4accel.base.mjpeg): split and decode frame after frame, equal to Pillow's decode of each
frame; garbage between frames skipped and counted; truncated or missing frames refused with an
error naming the frame."""

import io

import numpy as np
import pytest
from jpeg_images import check_pillow, encode, smooth_image
from PIL import Image

from s4accel.base.jpeg import STANDARD_AC, STANDARD_DC, HuffmanTable, JpegError, decode, parse
from s4accel.base.mjpeg import decode_frames, split_frames
from s4accel.sim.workloads.jpeg import scan_start, strip_dht


def pillow(data):
    img = Image.open(io.BytesIO(data))
    return np.asarray(img.convert("L" if img.mode == "L" else "RGB"))


def test_standard_tables_are_pillows_defaults():
    """Pillow (libjpeg-turbo) writes the Annex K.3 tables when not optimizing: the constants
    equal the DHT segments of such a file, slot for slot."""
    data = encode(smooth_image(np.random.default_rng(0), 8, 8), "4:2:0", quality=75)
    tables = parse(data)
    assert tables.dc_huffman == STANDARD_DC and tables.ac_huffman == STANDARD_AC
    assert not tables.standard_huffman


@pytest.mark.parametrize("mode", ["grey", "4:4:4", "4:2:2", "4:2:0"])
def test_frame_without_dht_equals_pillow(mode):
    rng = np.random.default_rng(7)
    data = encode(smooth_image(rng, 19, 29), mode, quality=80, restart_marker_blocks=2)
    bare = strip_dht(data)
    assert b"\xff\xc4" not in bare[:bare.index(b"\xff\xda")] and len(bare) < len(data)
    tables = parse(bare)
    want = {("DC", 0), ("AC", 0)} | (set() if mode == "grey" else {("DC", 1), ("AC", 1)})
    assert tables.standard_huffman == want
    assert tables.scan_huffman[0] == (
        {k: STANDARD_DC[k] for k in range(len(want) // 2)},
        {k: STANDARD_AC[k] for k in range(len(want) // 2)})
    assert np.array_equal(decode(bare), pillow(data))


def test_frame_without_dht_other_slot_is_refused():
    """Only slots 0 and 1 have standard tables: a scan naming DC slot 2 without a DHT fails."""
    data = strip_dht(encode(smooth_image(np.random.default_rng(1), 8, 8), "grey"))
    sos = data.index(b"\xff\xda")
    bad = bytearray(data)
    bad[sos + 6] = 0x20                  # component 1: DC table 2, AC table 0
    with pytest.raises(JpegError, match="missing DHT: scan uses DC table 2"):
        parse(bytes(bad))


def test_dht_overrides_standard_table():
    """A DHT for a slot is used, not the standard table (an optimized file's tables differ)."""
    data = encode(smooth_image(np.random.default_rng(2), 24, 24), "4:2:0", optimize=True)
    tables = parse(data)
    assert tables.ac_huffman[0] != STANDARD_AC[0] and not tables.standard_huffman
    assert np.array_equal(decode(data), pillow(data))


def stream_frames(rng):
    """Three frames of different sizes and sampling modes, the middle one without DHT."""
    a = encode(smooth_image(rng, 17, 23), "4:2:0", quality=75)
    b = encode(smooth_image(rng, 9, 40), "4:4:4", quality=90)
    c = encode(smooth_image(rng, 30, 12), "grey", quality=50, optimize=True)
    return [a, strip_dht(b), c], [pillow(a), pillow(b), pillow(c)]


def test_stream_split_and_decode(rng):
    check_pillow()
    frames, want = stream_frames(rng)
    split = split_frames(b"".join(frames))
    assert split.frames == tuple(frames) and split.skipped == 0
    assert split.offsets == (0, len(frames[0]), len(frames[0]) + len(frames[1]))
    got = list(decode_frames(b"".join(frames)))
    assert len(got) == 3
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert np.array_equal(g, w), f"frame {i}"


def test_stream_garbage_between_frames_is_skipped(rng):
    frames, want = stream_frames(rng)
    junk = [b"RIFF\x00\x01", b"\x00" * 7 + b"\xff\xd8" + b"00dc\x10\x00", b"\xff\xff\xd9", b"x"]
    stream = junk[0] + frames[0] + junk[1] + frames[1] + junk[2] + frames[2] + junk[3]
    split = split_frames(stream)
    assert split.frames == tuple(frames)
    assert split.skipped == sum(map(len, junk))
    assert split.offsets[1] == len(junk[0]) + len(frames[0]) + len(junk[1])
    for g, w in zip(decode_frames(split), want, strict=True):
        assert np.array_equal(g, w)


def test_stream_truncated_last_frame_names_it(rng):
    frames, _ = stream_frames(rng)
    stream = b"".join(frames)
    for cut in (len(stream) - 1, len(stream) - len(frames[2]) // 2,
                len(stream) - len(frames[2]) + 5):
        with pytest.raises(JpegError, match=r"^frame 2 \(offset \d+\): truncated"):
            split_frames(stream[:cut])


def test_stream_frame_cut_by_the_next_names_it(rng):
    frames, _ = stream_frames(rng)
    cut = frames[0][:scan_start(frames[0]) + 10]         # inside the entropy-coded data
    with pytest.raises(JpegError, match=r"^frame 0 \(offset 0\): SOI marker at offset"):
        split_frames(cut + frames[1])


def test_stream_without_frames():
    with pytest.raises(JpegError, match="no JPEG frame in the stream"):
        split_frames(b"RIFF" + bytes(100))


def test_stream_decode_error_names_the_frame(rng):
    frames, _ = stream_frames(rng)
    bad = bytearray(frames[1])
    bad[bad.index(b"\xff\xc0") + 4] = 12          # 12-bit samples
    with pytest.raises(JpegError, match=r"^frame 1 \(offset \d+\): 12-bit samples"):
        list(decode_frames(frames[0] + bytes(bad) + frames[2]))


def test_exif_thumbnail_is_not_a_frame(rng):
    """An embedded JPEG (an Exif thumbnail in APP1, with its own SOI and EOI) stays inside its
    frame: the end is found by walking the segments, not by searching for EOI."""
    thumb = encode(smooth_image(rng, 8, 8), "grey")
    main = encode(smooth_image(rng, 16, 16), "4:2:0")
    app1 = b"Exif\x00\x00" + thumb
    frame = main[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + main[2:]
    split = split_frames(frame + main)
    assert split.frames == (frame, main) and split.skipped == 0
    assert np.array_equal(next(decode_frames(split)), pillow(main))


def test_mutant_annex_k_value_fails(monkeypatch):
    """A seeded bug in one Annex K.3 value (as a mutant): the DHT-less frame no longer equals
    Pillow, so test_frame_without_dht_equals_pillow guards the constants."""
    import s4accel.base.jpeg as jpeg

    t = STANDARD_AC[0]
    symbols = bytearray(t.symbols)
    symbols[3], symbols[4] = symbols[4], symbols[3]         # 0x00 (EOB) <-> 0x04
    monkeypatch.setitem(jpeg.STANDARD_AC, 0, HuffmanTable(t.counts, bytes(symbols)))
    data = encode(smooth_image(np.random.default_rng(7), 19, 29), "grey", quality=80)
    try:
        got = decode(strip_dht(data))
    except JpegError:
        return
    assert not np.array_equal(got, pillow(data))
