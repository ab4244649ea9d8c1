"""``s4 jpeg decode`` on the functional model and the RTL (single files and Motion JPEG streams),
its one-line errors for unsupported features, corrupt files and truncated streams, and
``s4 bench jpeg --json``."""

import io
import json

import numpy as np
import pytest
from jpeg_images import check_pillow
from PIL import Image

from s4accel.cli import main
from s4accel.sim.workloads.jpeg import encode, scan_start, smooth_image


@pytest.fixture
def good(rng):
    check_pillow()
    return encode(smooth_image(rng, 20, 30), "4:2:0", quality=75)


def _sof(data):
    return data.index(b"\xff\xc0")


def _variant(name, good):
    img = Image.open(io.BytesIO(good))
    buf = io.BytesIO()
    i = _sof(good)
    if name == "progressive":
        img.save(buf, "JPEG", progressive=True)
        return buf.getvalue(), "progressive DCT (SOF2) is not supported"
    if name == "cmyk":
        img.convert("CMYK").save(buf, "JPEG")
        return buf.getvalue(), "4 components are not supported"
    if name == "arithmetic":
        return good[:i + 1] + b"\xc9" + good[i + 2:], "arithmetic coding (SOF9)"
    if name == "12-bit":
        return good[:i + 4] + b"\x0c" + good[i + 5:], "12-bit samples are not supported"
    if name == "odd-sampling":
        return good[:i + 11] + b"\x31" + good[i + 12:], "unusual sampling factors 3x1"
    if name == "truncated":
        return good[:len(good) // 2], "truncated"
    if name == "not-jpeg":
        return b"GIF89a" + bytes(40), "not a JPEG file"
    raise ValueError(name)


BAD = ["progressive", "cmyk", "arithmetic", "12-bit", "odd-sampling", "truncated", "not-jpeg"]


@pytest.mark.parametrize("mode", ["grey", "4:2:2"])
def test_jpeg_decode_model_equals_pillow(tmp_path, rng, mode, capsys):
    check_pillow()
    data = encode(smooth_image(rng, 17, 23), mode, quality=60)
    (tmp_path / "in.jpg").write_bytes(data)
    assert main(["jpeg", "decode", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "o.png")]) == 0
    got = np.asarray(Image.open(tmp_path / "o.png"))
    ref = Image.open(io.BytesIO(data))
    assert np.array_equal(got, np.asarray(ref.convert("L" if mode == "grey" else "RGB")))
    assert "23x17" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["model", "rtl"])
@pytest.mark.parametrize("name", BAD)
def test_jpeg_decode_refuses(tmp_path, good, name, backend, capsys, monkeypatch):
    """One line naming the feature or defect, exit status 2, no traceback, no PNG; the rtl
    backend refuses before any simulation."""
    from s4accel.sim.tb import runner

    def refuse(*args, **kwargs):
        raise AssertionError("a simulation started for a file the driver refuses")
    monkeypatch.setattr(runner, "run_tests", refuse)
    data, message = _variant(name, good)
    (tmp_path / "in.jpg").write_bytes(data)
    rc = main(["jpeg", "decode", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "o.png"),
               "--backend", backend])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("s4: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_jpeg_decode_rtl_refuses_wider_than_config(tmp_path, good, capsys, monkeypatch):
    """--config with a narrower decoder (jpeg_max_width 16): the 30-wide image is refused on
    one line naming both widths, before any simulation."""
    from s4accel.sim.tb import runner

    def refuse(*args, **kwargs):
        raise AssertionError("a simulation started for a file the driver refuses")
    monkeypatch.setattr(runner, "run_tests", refuse)
    (tmp_path / "in.jpg").write_bytes(good)
    (tmp_path / "narrow.yaml").write_text("rows: 2\ncols: 4\njpeg_max_width: 16\n")
    rc = main(["jpeg", "decode", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "o.png"),
               "--backend", "rtl", "--config", str(tmp_path / "narrow.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "image width 30 is over the decoder's 16" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_jpeg_decode_missing_file(tmp_path, capsys):
    assert main(["jpeg", "decode", str(tmp_path / "no.jpg"), "-o", str(tmp_path / "o.png")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.rtl
def test_jpeg_decode_rtl(tmp_path, good, capsys):
    """The RTL backend writes the model's image; a file whose entropy-coded data is cut (its
    headers intact) ends with the decoder's error code, reported on one line."""
    (tmp_path / "in.jpg").write_bytes(good)
    assert main(["jpeg", "decode", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "r.png"),
                 "--backend", "rtl"]) == 0
    assert main(["jpeg", "decode", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "m.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "r.png")),
                          np.asarray(Image.open(tmp_path / "m.png")))
    capsys.readouterr()
    sos = scan_start(good)
    (tmp_path / "cut.jpg").write_bytes(good[:sos + 30] + b"\xff\xd9")
    assert main(["jpeg", "decode", str(tmp_path / "cut.jpg"), "-o", str(tmp_path / "c.png"),
                 "--backend", "rtl"]) == 2
    err = capsys.readouterr().err
    assert "error TRUNCATED" in err and "Traceback" not in err, err


@pytest.mark.rtl
@pytest.mark.slow
def test_bench_jpeg_small(capsys):
    """``s4 bench jpeg --json`` on cropped samples: exactly the documented keys, every image
    equal to Pillow, at most 1.5 cycles per pixel on the 4:2:0 q75 samples."""
    from s4accel.sim.bench.jpeg import JSON_KEYS

    assert main(["bench", "jpeg", "--max-side", "48", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in rows[:2]] == ["china.jpg", "flower.jpg"]
    for r in rows:
        assert tuple(r) == JSON_KEYS
        assert r["bit_exact_vs_pillow"] and r["max_abs_diff_vs_pillow"] == 0, r
    assert all(r["cycles_per_pixel"] <= 1.5 for r in rows[:2]), rows[:2]


def test_bench_jpeg_refuses_bad_max_side(capsys):
    assert main(["bench", "jpeg", "--max-side", "0"]) == 2
    assert "--max-side must be positive" in capsys.readouterr().err


def _stream(rng):
    """Three frames (4:2:0, 4:4:4 without DHT, grey) with bytes between them; the images
    Pillow decodes from the original files."""
    from s4accel.sim.workloads.jpeg import strip_dht

    frames = [encode(smooth_image(rng, 17, 23), "4:2:0", quality=75),
              encode(smooth_image(rng, 9, 16), "4:4:4", quality=90),
              encode(smooth_image(rng, 12, 7), "grey", quality=50)]
    want = [np.asarray(Image.open(io.BytesIO(f))) for f in frames]
    frames[1] = strip_dht(frames[1])
    return b"junk" + frames[0] + frames[1] + bytes(3) + frames[2], frames, want


def test_jpeg_decode_stream_model(tmp_path, rng, capsys):
    """A stream is detected (several frames): OUT_000.png... equal Pillow's decode of each
    frame (the middle one without DHT), the skipped bytes reported."""
    check_pillow()
    stream, _, want = _stream(rng)
    (tmp_path / "in.mjpeg").write_bytes(stream)
    assert main(["jpeg", "decode", str(tmp_path / "in.mjpeg"), "-o", str(tmp_path / "o.png")]) == 0
    for i, w in enumerate(want):
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"o_{i:03d}.png")), w), i
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o_003.png").exists()
    out = capsys.readouterr().out
    assert "3 frames, 7 bytes outside frames skipped" in out and "frame 1: 16x9 RGB" in out


def test_jpeg_decode_frames_flag_single_file(tmp_path, good, capsys):
    (tmp_path / "in.jpg").write_bytes(good)
    assert main(["jpeg", "decode", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "o.png"),
                 "--frames"]) == 0
    assert (tmp_path / "o_000.png").exists() and not (tmp_path / "o.png").exists()
    assert ": 1 frame ->" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["model", "rtl"])
def test_jpeg_decode_stream_truncated(tmp_path, rng, backend, capsys, monkeypatch):
    """A truncated last frame: one line naming frame 2, exit status 2, before any
    simulation on the rtl backend."""
    from s4accel.sim.tb import runner

    def refuse(*args, **kwargs):
        raise AssertionError("a simulation started for a stream the driver refuses")
    monkeypatch.setattr(runner, "run_tests", refuse)
    stream, _, _ = _stream(rng)
    (tmp_path / "in.mjpeg").write_bytes(stream[:-30])
    rc = main(["jpeg", "decode", str(tmp_path / "in.mjpeg"), "-o", str(tmp_path / "o.png"),
               "--backend", backend])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("s4: error: ") and err.count("\n") == 1, err
    assert "frame 2 (offset" in err and "truncated" in err, err
    assert not list(tmp_path.glob("o*.png"))


@pytest.mark.rtl
def test_jpeg_decode_stream_rtl(tmp_path, rng, capsys):
    """The frames of a stream decoded back to back in one RTL simulation (one without DHT:
    the Annex K.3 tables programmed) equal the model's; cycles reported per frame."""
    stream, frames, _ = _stream(rng)
    (tmp_path / "in.mjpeg").write_bytes(stream)
    assert main(["jpeg", "decode", str(tmp_path / "in.mjpeg"), "-o", str(tmp_path / "r.png"),
                 "--backend", "rtl"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert main(["jpeg", "decode", str(tmp_path / "in.mjpeg"), "-o", str(tmp_path / "m.png")]) == 0
    for i in range(3):
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"r_{i:03d}.png")),
                              np.asarray(Image.open(tmp_path / f"m_{i:03d}.png"))), i
        assert f"frame {i}: " in out
    assert out.count(" cycles, tables ") == 3


@pytest.mark.parametrize("args,match", [
    (["--quality", "0"], "--quality must be 1 to 100"),
    (["--rtl-images", "-1"], "must not be negative"),
    (["--config", "nosuch"], "no configuration preset named 'nosuch'")])
def test_jpeg_demo_refuses_bad_options(args, match, capsys):
    """`s4 jpeg demo` with a bad option: one line naming it, exit status 2, before any
    training or simulation."""
    assert main(["jpeg", "demo", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
