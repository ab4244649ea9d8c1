"""The image pipeline demo (issue 23 item 6, sim/workloads/image_demo.py): JPEG digits decoded
on the device into the CNN's input, classifications out, on the functional model and the RTL,
bit-exact against the golden decoder and QuantCnn.forward_int."""

import asyncio

import numpy as np
import pytest

from s4accel.base import codec
from s4accel.hw.cmd.descriptors import Opcode
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sim.tb.decode import tiny_jpeg
from s4accel.sim.workloads import cnn
from s4accel.sim.workloads import image_demo as idm
from s4accel.sim.workloads.digits import load_digits_split
from s4accel.sw.driver import Driver


@pytest.fixture(scope="module")
def net():
    """A width-32 CNN with random weights pruned to 4x, quantized on 64 training images."""
    x_tr, _, _, _ = cnn.load_split()
    p = cnn.init_params(32, seed=1)
    return p, x_tr[:64], cnn.quantize(p, x_tr[:64], 4)


def test_jpegs_decode_close_to_the_training_images():
    """The 32x32 JPEGs box-resized to 16x16 are the CNN's input pixels to within JPEG error
    (mean 2 of 127 at quality 90), and Pillow decodes them to the bilinear upscaling."""
    _, _, x8, _ = load_digits_split(0)
    _, _, x_te, _ = cnn.load_split()
    jp = idm.digit_jpegs(x8[:20], 32, 90)
    q = idm.golden_images(jp, codec.norm_from_float(0, 1, 1 / 127))
    ref = np.rint(x_te[:20] * 127)
    diff = np.abs(q.astype(int) - ref)
    assert q.shape == (20, 16, 16, 1) and diff.mean() < 4 and diff.max() < 40, diff.mean()
    assert (q >= 0).all() and q.max() >= 120


def test_band_crops_equal_the_whole_frame_rows():
    """A DECODE of a band of rows (a crop) gives the whole frame's resized rows: what a stem
    in bands would decode is the same image."""
    _, _, x8, _ = load_digits_split(0)
    data = idm.digit_jpegs(x8[:1], 32, 75)[0]
    tables, bits = codec.split_scan(data)
    block = codec.table_block(tables, codec.CENTRED)
    whole = codec.decode_job(block, bits, crop=(0, 0, 32, 32), out_h=16, out_w=16)
    for y0, h in ((0, 9), (7, 9), (3, 5)):
        band = codec.decode_job(block, bits, crop=(0, 2 * y0, 32, 2 * h), out_h=h, out_w=16)
        assert np.array_equal(band, whole[y0:y0 + h])


@pytest.mark.parametrize("n", [4, 3])
def test_jpeg_program_on_the_model(net, n):
    """The program with one DECODE an image gives forward_int of the golden decoder's
    images on the functional model, a partial chunk included (n = 3 on 2 rows: the chunk's
    empty row memory reads the zero images of a kept LOAD)."""
    _, _, q = net
    cfg = tiny_jpeg()
    _, _, x8, _ = load_digits_split(0)
    jp = idm.digit_jpegs(x8[:n], 32, 80)
    norm = idm.norm_of(q)

    async def go():
        dev = Driver(ModelBackend(cfg))
        info = await dev.open()
        prog = idm.jpeg_program(info, jp, idm.decode_ops(q), dev.alloc, norm)
        kinds = [d[0] & 15 for d in prog.descs]
        assert kinds.count(Opcode.DECODE.value) == n
        return (await dev.run_program(prog)).y[:n]
    got = asyncio.run(go())
    assert np.array_equal(got.astype(np.int64),
                          q.forward_int(idm.golden_images(jp, norm)).astype(np.int64))


def test_decode_ops_stem_is_the_host_windows_stem(net):
    """The on-chip 3x3 stem (s = 32 format, channel 0 of each tap) gives the same raw outputs
    as the host-windows stem of cnn.device_program on the same int8 images."""
    _, _, q = net
    _, _, x_te, _ = cnn.load_split()
    xq = q.quantize_input(x_te[:4])
    cfg = tiny_jpeg()

    async def go():
        dev = Driver(ModelBackend(cfg))
        info = await dev.open()
        a = (await dev.run_program(idm.pixels_program(info, xq, idm.decode_ops(q),
                                                      dev.alloc))).y
        b = (await dev.run_program(cnn.device_program(q, xq, info, dev.alloc))).y
        return a, b
    a, b = asyncio.run(go())
    assert np.array_equal(a, b) and np.array_equal(a[:4], q.forward_int(xq))


def test_mixed_sizes_and_colour_are_refused(net):
    _, _, q = net
    from PIL import Image

    from s4accel.sw.program import Allocator, DeviceInfo
    info = DeviceInfo.from_config(tiny_jpeg())
    _, _, x8, _ = load_digits_split(0)
    a = idm.digit_jpegs(x8[:1], 32)[0]
    b = idm.digit_jpegs(x8[:1], 64)[0]
    ops = idm.decode_ops(q)
    with pytest.raises(ValueError, match="different sizes"):
        idm.jpeg_program(info, [a, b], ops, Allocator(0x1000, 1 << 24), idm.norm_of(q))
    import io
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buf, "JPEG")
    with pytest.raises(ValueError, match="grey"):
        idm.jpeg_program(info, [buf.getvalue()], ops, Allocator(0x1000, 1 << 24),
                         idm.norm_of(q))


@pytest.mark.rtl
@pytest.mark.slow
def test_image_demo_on_rtl(net):
    """run_demo end to end on tiny_jpeg (Verilator): four JPEG digits decoded on the RTL
    into the CNN, bit-exact against the golden path, with and without the DECODEs; the
    functional model on eight; the performance model within 2 % of both RTL programs."""
    p, calib, _ = net
    res = idm.run_demo(tiny_jpeg(), sparsity=4, params={4: p}, calib=calib,
                       model_images=8, rtl_images=4)
    print(idm.format_table(res))
    assert res["bit_exact"] and res["rtl_images"] == 4
    assert res["model_equal"] and res["model_images"] == 8
    assert res["decodes_per_image"] == 1
    assert all(abs(e) <= 0.02 for e in res["model_error"].values()), res["model_error"]
    # the split between decoding and inference: the RTL's difference between the two programs
    # (DECODEs in place of the decoded pixels' LOAD) is the model's, within half a DECODE
    r, m = res["rtl_cycles_per_image"], res["model_cycles_per_image"]
    assert m["decode"] > 0
    assert abs((r["jpeg"] - r["pixels"]) - (m["jpeg"] - m["pixels"])) < m["decode"] / 2, (r, m)


def test_resident_input_is_race_free(net):
    """The static race check finds no unordered scratchpad accesses in a program of three
    chunks; without the SYNC before a chunk's DECODEs (a mutant) it reports the next
    chunk's images overwriting ACT words the stem's GEMMs of the chunk before still read."""
    from s4accel.sw.hazards import races
    from s4accel.sw.program import Allocator, DeviceInfo
    _, _, q = net
    info = DeviceInfo.from_config(tiny_jpeg())
    _, _, x8, _ = load_digits_split(0)
    jp = idm.digit_jpegs(x8[:6], 32, 80)
    prog = idm.jpeg_program(info, jp, idm.decode_ops(q), Allocator(0x1000, 1 << 26),
                            idm.norm_of(q))
    assert races(prog.descs, rows=info.rows, cols=info.cols) == []
    kinds = [d[0] & 15 for d in prog.descs]
    cut = [i for i in range(1, len(kinds)) if kinds[i] == Opcode.SYNC.value
           and Opcode.DECODE.value in kinds[i + 1:i + 3]]
    assert len(cut) == 2
    mutant = [d for i, d in enumerate(prog.descs) if i not in cut]
    assert races(mutant, rows=info.rows, cols=info.cols)
