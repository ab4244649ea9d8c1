"""cocotb tests of DECODE (the codec wrapper, issue 23) on the simulation top ``s4_sim`` with a
decoder (``jpeg_decoders = 1``): a first conv layer fed by a DECODE, bit-exact against the
functional model, and mutated bitstreams (``DECODE_ERROR`` or the model's image, the same on
both, and the device decoding the next image correctly after each).

The activation scratchpad has no backdoor on this design, so the decoded image is observed
through the conv layer it feeds: its outputs are a function of every pixel the DECODE wrote and
of the zero word at ``pad_addr``."""

from __future__ import annotations

import cocotb
import numpy as np

from ...base import codec
from ...base.config import BANK
from ...base.jpeg import JpegError
from ...hw.cmd.descriptors import Descriptor, Opcode, Target
from ...sw import scenarios
from ...sw.codec import decode_program
from ...sw.conv import conv_program
from ...sw.driver import DeviceError, Driver
from ..workloads.jpeg import encode, mutate, scan_start, smooth_image
from .base import cases_from_env, config_from_env, rng_from_env
from .fast_backend import device_and_model, started

CROP, OH, OW = (2, 1, 20, 17), 5, 7


def tiny_jpeg():
    """The configuration of the DECODE tests (``tests/tb/test_decode_rtl.py``) and of the
    image demo's RTL test (``tests/workloads/test_image_demo.py``), one simulator build for
    both: ``tiny`` with one decoder and room for the demo's CNN (a whole 16x16 input in ACT,
    32 KiB; a group of eight int8 channel tiles in WGT, 16 KiB, and OUT, 16 KiB), without the
    vector unit (no VOP runs there); its decoder takes images up to 64 pixels wide
    (``jpeg_max_width``: its line buffers a 32nd of the default's)."""
    from ...base.config import load_config
    return load_config("tiny").replace(jpeg_decoders=1, act_sram_kib=32, wgt_sram_kib=16,
                                       out_sram_kib=16, vec_max_row=0, jpeg_max_width=64,
                                       name="tiny_jpeg")

#: the performance model's largest relative error on a program with a DECODE
#: (:func:`~s4accel.sim.model.perf_model.decode_scan_cycles`: within 2 cycles of the RTL on
#: 460 probe decodes and 40 conv programs, a fraction of a percent)
MODEL_ERROR = 0.02


def _field(desc, name):
    d = Descriptor.from_bits(int.from_bytes(desc, "little"))
    v = getattr(d.body.dma, name)
    return v.value if isinstance(v, Target) else int(v)


async def _run(drv, prog):
    try:
        return (await drv.run_program(prog)), None
    except DeviceError as e:
        return None, e


@cocotb.test()
async def decode_feeds_conv(dut):
    """A 4:2:0 image (crop, box resize, normalisation) DECODEd into ACT, then a 3x3 conv on
    it: the same outputs as the functional model running the same program, and as the program
    that loads the golden decoder's image from DRAM; then mutated bitstreams
    (``S4_CASES``, default 20): the RTL ends each with the functional model's outcome (the
    same error code and descriptor, or the same outputs), and decodes the clean image
    correctly after every one."""
    cfg, rng, be, dev, model = await device_and_model(dut, "decode_feeds_conv")
    info = dev.info
    data = encode(smooth_image(rng, 19, 23), "4:2:0", quality=int(rng.integers(30, 95)))
    norm = codec.norm_from_float(0.45, 0.25, 4 / 127)
    _, packed, params, _ = scenarios.random_conv(
        np.random.default_rng(7), info, ksize=3, stride=1, pad=1,
        n_img=1, h=OH, w=OW, c=3, cout=5, mode="int8")

    golden = _golden([data], norm)

    def build(drv, file):      # (the conv's input the clean file's golden image)
        return _stream_program(info, drv.alloc, [file], packed, params, norm, golden=golden)

    # the reference: the golden image loaded from DRAM, on the functional model
    ref = (await model.run_program(_conv(info, model.alloc, golden, packed, params))).y
    assert ref.any()
    good = []
    for drv in (dev, model):
        res, err = await _run(drv, build(drv, data))
        assert err is None, err
        good.append(res)
    assert np.array_equal(good[0].y, ref) and np.array_equal(good[1].y, ref)
    # the performance model (the program's DRAM images give it the DECODE's table block and
    # bitstream): within MODEL_ERROR of the whole program, and of the DECODE alone
    from ..model.perf_model import predict_program
    pred = predict_program(cfg, build(model, data))["cycles"]
    err = (pred - good[0].cycles) / good[0].cycles
    dut._log.info("conv program with DECODE: %d cycles on the RTL, %d predicted (%+.2f %%)",
                  good[0].cycles, pred, 100 * err)
    assert abs(err) <= MODEL_ERROR, f"conv program: model {100 * err:+.2f} %"
    # the DECODE alone (and COMPLETE): its duration on the LOAD stage
    alone = decode_program(info, dev.alloc, data, crop=CROP, out_h=OH, out_w=OW, norms=norm)
    res = await dev.run_program(alone)
    tables, bits = codec.split_scan(data)
    pred = predict_program(cfg, alone)["cycles"]
    err = (pred - res.cycles) / res.cycles
    dut._log.info("DECODE alone: %d cycles (%d bitstream bytes, %dx%d frame, %d pixels out), "
                  "%d predicted (%+.2f %%)", res.cycles, len(bits), tables.width,
                  tables.height, OH * OW, pred, 100 * err)
    assert abs(err) <= MODEL_ERROR, f"DECODE alone: model {100 * err:+.2f} %"

    n = cases_from_env(20)
    outcomes = {"ok": 0, "DECODE_ERROR": 0}
    k = 0
    while k < n:
        if k % 2:         # (most single mutations of a small scan still decode)
            bad, what = mutate(data, rng, data_only=True)
        else:             # the scan cut in its first 60 %, or an early EOI: DECODE_ERROR
            sos = scan_start(data)
            at = int(rng.integers(sos + 1, sos + (len(data) - sos) * 3 // 5))
            junk = rng.integers(0, 256, int(rng.integers(0, 8)), dtype=np.uint8).tobytes()
            bad, what = data[:at] + junk + b"\xff\xd9", f"cut at {at}, {junk.hex()} EOI"
        try:
            codec.split_scan(bad)
        except (JpegError, ValueError):
            continue          # the driver refuses it: nothing for the device
        k += 1
        results = []
        for drv in (dev, model):
            results.append(await _run(drv, build(drv, bad)))
        (r_dev, e_dev), (r_mod, e_mod) = results
        if e_mod is not None:
            assert e_dev is not None, f"{what}: the model ends with {e_mod.code!r}, the RTL " \
                                      f"completes"
            assert e_dev.code == e_mod.code, f"{what}: RTL {e_dev.code!r}, model {e_mod.code!r}"
            for drv, e in ((dev, e_dev), (model, e_mod)):     # blamed on the DECODE
                head = await drv.backend.mem_read(e.desc_addr, 1)
                assert head[0] & 15 == Opcode.DECODE.value, f"{what}: {e.desc_addr:#x}"
            outcomes[e_mod.code.name] = outcomes.get(e_mod.code.name, 0) + 1
        else:
            assert e_dev is None, f"{what}: the RTL ends with {e_dev.code!r}, the model completes"
            assert np.array_equal(r_dev.y, r_mod.y), f"{what}: outputs differ"
            outcomes["ok"] += 1
        # the device decodes the clean image after it (the decoder idle and reusable, nothing
        # of the mutant left in it)
        res, err = await _run(dev, build(dev, data))
        assert err is None, f"after {what}: {err}"
        assert np.array_equal(res.y, ref), \
            f"after {what}: outputs differ ({res.cycles} cycles, {res.counters}; mutant " \
            f"{r_dev.cycles if r_dev else e_dev}): {np.argwhere(res.y != ref)[:8].tolist()}"
        dut._log.info("%s: %s", what, "ok" if e_mod is None else e_mod.code.name)
    dut._log.info("outcomes: %s", outcomes)
    # (a quick run of a few mutants, Icarus's, may draw no decodable one)
    assert outcomes["DECODE_ERROR"] >= n // 4 and (n < 10 or outcomes["ok"] > 0)
    assert not be.violations, be.violations


#: (sampling, quality, restart interval) of :func:`decode_stream`'s frames
STREAM_FRAMES = [("4:2:0", 75, 0), ("4:4:4", 50, 0), ("4:2:2", 90, 1), ("4:2:0", 30, 2)]


def _golden(files, norm, crops=None):
    out = []
    for f, crop in zip(files, crops or [CROP] * len(files), strict=True):
        tables, bits = codec.split_scan(f)
        out.append(codec.decode_job(codec.table_block(tables, norm), bits, crop=crop,
                                    out_h=OH, out_w=OW))
    return np.stack(out)


def _conv(info, alloc, images, packed, params):
    """The 3x3 conv program of these tests over ``images`` (its input loaded from DRAM)."""
    return conv_program(info, images, packed, params, alloc, ksize=3, pad=1, max_band=OH)


def _stream_program(info, alloc, files, packed, params, norm, skip=(), crops=None,
                    golden=None):
    """The conv program over ``len(files)`` images with each chunk's input LOAD replaced by
    one DECODE an image (image ``i`` of the chunk into row memory ``i``), back to back on the
    LOAD stage: the first takes the LOAD's wait, the last its signal. The DECODEs of the
    images in ``skip`` are left out (their row memories keep what ACT holds); ``crops``: each
    image's (default :data:`CROP`); ``golden``: the images the replaced LOADs would have
    loaded (default the files' golden decodes; a mutated file's DECODE may end otherwise)."""
    crops = crops or [CROP] * len(files)
    prog = _conv(info, alloc, _golden(files, norm, crops) if golden is None else golden,
                 packed, params)
    word = info.rows * BANK
    loads = [k for k, d in enumerate(prog.descs)
             if d[0] & 15 == Opcode.LOAD.value and _field(d, "target") == Target.ACT.value
             and _field(d, "row_bytes") * _field(d, "rows") == OH * OW * word]
    assert len(loads) == -(-len(files) // info.rows)
    for c, i in reversed(list(enumerate(loads))):
        flags = {k: (prog.descs[i][0] >> b) & 1 for k, b in (("wait_next", 5), ("sig_next", 7))}
        chunk = [j for j in range(c * info.rows, min(len(files), (c + 1) * info.rows))
                 if j not in skip]
        decs = []
        for k, j in enumerate(chunk):
            fl = {"wait_next": flags["wait_next"] if k == 0 else 0,
                  "sig_next": flags["sig_next"] if k == len(chunk) - 1 else 0}
            d = decode_program(info, alloc, files[j], crop=crops[j], out_h=OH, out_w=OW,
                               norms=norm, act_addr=_field(prog.descs[i], "sram_addr"),
                               lane=j % info.rows, complete=False, **fl)
            decs += d.descs
            prog.images += d.images
        prog.descs[i:i + 1] = decs
    return prog


@cocotb.test()
async def decode_stream(dut):
    """Motion JPEG on the LOAD stage: DECODEs back to back (four images, each into its row
    memory of a conv chunk, then the conv): the RTL equals the functional model, its cycles
    the performance model's within :data:`MODEL_ERROR`, and four DECODEs in a row take fewer
    cycles than the model gives them without the overlap (each releases the LOAD stage once
    its bitstream is read; the next one's table block loads while its last MCU row goes
    out). Then the overlap's edges: a refused block, or a bus fault on the table block's
    read, found while the DECODE before still writes its last MCU row, ends with
    ``DECODE_ERROR`` (``BUS_SLVERR``) blamed on it, the DECODE before complete (its image
    read by a conv that leaves out that DECODE), as on the model.
    (The conv chunk's second LOAD stage entry after its DECODEs is a LOAD, which waits for the
    last DECODE's lanes.)"""
    import dataclasses

    from ...hw.cmd.descriptors import ErrorCode
    from ...sw.codec import decode_descriptor
    from ...sw.program import descriptor
    from ..model.perf_model import TIMING, predict_program
    cfg, rng, be, dev, model = await device_and_model(dut, "decode_stream")
    info = dev.info
    n = len(STREAM_FRAMES)
    files = []
    for mode, quality, restart in STREAM_FRAMES:
        kw = {"restart_marker_blocks": restart} if restart else {}
        files.append(encode(smooth_image(rng, 19, 23), mode, quality=quality, **kw))
    norm = codec.norm_from_float(0.45, 0.25, 4 / 127)
    _, packed, params, _ = scenarios.random_conv(
        np.random.default_rng(7), info, ksize=3, stride=1, pad=1,
        n_img=n, h=OH, w=OW, c=3, cout=5, mode="int8")
    ref = (await model.run_program(_conv(info, model.alloc, _golden(files, norm), packed,
                                         params))).y
    outs = []
    for drv in (dev, model):
        prog = _stream_program(info, drv.alloc, files, packed, params, norm)
        outs.append(await drv.run_program(prog))
    assert np.array_equal(outs[0].y, ref) and np.array_equal(outs[1].y, ref)
    pred = predict_program(cfg, prog)["cycles"]
    err = (pred - outs[0].cycles) / outs[0].cycles
    # the DECODEs alone, back to back; against the model without the overlap
    stream = decode_program(info, dev.alloc, files[0], crop=CROP, out_h=OH, out_w=OW,
                            norms=norm, complete=False)
    for j, f in enumerate(files[1:], 1):
        one = decode_program(info, dev.alloc, f, crop=CROP, out_h=OH, out_w=OW, norms=norm,
                             lane=j % info.rows, act_addr=OH * OW * (j // info.rows),
                             complete=j == n - 1)
        stream.descs += one.descs
        stream.images += one.images
    both = (await dev.run_program(stream)).cycles
    s_pred = predict_program(cfg, stream)["cycles"]
    s_err = (s_pred - both) / both
    serial = predict_program(cfg, stream, timing=dataclasses.replace(
        TIMING, decode_release=1 << 30))["cycles"]
    dut._log.info("decode_stream: the conv program %d cycles on the RTL, %d predicted "
                  "(%+.2f %%); %d DECODEs back to back %d cycles (%d predicted, %+.2f %%; "
                  "without the overlap %d predicted)", outs[0].cycles, pred, 100 * err, n,
                  both, s_pred, 100 * s_err, serial)
    assert abs(err) <= MODEL_ERROR, f"stream conv program: model {100 * err:+.2f} %"
    assert abs(s_err) <= MODEL_ERROR, f"DECODE stream: model {100 * s_err:+.2f} %"
    assert both < serial, (both, serial)

    # a refused block, then a bus fault on a grey table block's read, right after a good
    # DECODE of a 64-pixel-wide 4:2:0 frame cropped at its bottom right corner (image 1 into
    # row memory 1): its last MCU row (16 x 64 pixels, the crop's last lanes) takes longer
    # than the next block's read, so both are found while its lanes still go out
    edge = [files[0], encode(smooth_image(rng, 48, 64), "4:2:0", quality=80)]
    crops = [CROP, (64 - CROP[2], 48 - CROP[3], CROP[2], CROP[3])]
    refused = bytearray(codec.table_block(codec.split_scan(files[1])[0], norm))
    refused[5] = 7                                              # no such sampling code
    grey = codec.table_block(codec.split_scan(encode(smooth_image(rng, 8, 8), "grey"))[0])
    ref2 = (await model.run_program(_conv(info, model.alloc, _golden(edge, norm, crops),
                                          packed, params))).y
    for what, code, bad in (("refused block", ErrorCode.DECODE_ERROR, refused),
                            ("bus fault", ErrorCode.BUS_SLVERR, grey)):
        ys, ends = [], []
        for drv in (dev, model):
            prog = _stream_program(info, drv.alloc, edge, packed, params, norm, crops=crops)
            dec1 = [d for d in prog.descs if d[0] & 15 == Opcode.DECODE.value][1]
            for a, d in prog.images:
                await drv.backend.mem_write(a, d)
            bad_at = drv.alloc.alloc(len(bad) + 64)
            await drv.backend.mem_write(bad_at, bytes(bad))
            if code == ErrorCode.BUS_SLVERR:
                drv.backend.inject_bus_error(bad_at + 64, bad_at + 72, "slverr")
            ok = dict(table_addr=_decode_field(dec1, "table_addr"),
                      bits_addr=_decode_field(dec1, "bits_addr"),
                      bits_len=_decode_field(dec1, "bits_len"),
                      act_addr=_decode_field(dec1, "act_addr"), lane=1, crop=crops[1],
                      out_h=OH, out_w=OW)
            done0 = (await drv.counters())["perf_desc"]
            first = await drv.submit([decode_descriptor(**ok),
                                      decode_descriptor(**dict(ok, table_addr=bad_at, lane=0)),
                                      descriptor(Opcode.COMPLETE)])
            try:
                await drv.wait()
                raise AssertionError(f"{what} after a DECODE: no error")
            except DeviceError as e:
                # (the code, the descriptor blamed, the descriptors completed: the first)
                ends.append((e.code, e.desc_addr - first,
                             (await drv.counters())["perf_desc"] - done0))
            drv.backend.clear_bus_errors()
            # the conv over image 0 (decoded again) and image 1 as the good DECODE left it
            ys.append((await drv.run_program(_stream_program(
                info, drv.alloc, edge, packed, params, norm, skip=(1,), crops=crops))).y)
        assert ends[0] == ends[1] == (code, 32, 1), (what, ends)
        assert np.array_equal(ys[0], ref2) and np.array_equal(ys[1], ref2), what
        dut._log.info("decode_stream: %s after a DECODE: %s on both, its image complete",
                      what, code.name)
    assert not be.violations, be.violations


def _decode_field(desc, name):
    d = Descriptor.from_bits(int.from_bytes(desc, "little"))
    return int(getattr(d.body.decode, name))


#: (sampling, height, width, quality, restart interval in MCUs) of :func:`decode_timing`'s
#: images
TIMING_IMAGES = [("grey", 8, 8, 75, 0), ("grey", 24, 40, 50, 0), ("4:4:4", 16, 16, 90, 0),
                 ("4:4:4", 21, 30, 40, 0), ("4:2:2", 17, 33, 75, 0), ("4:2:0", 19, 23, 60, 0),
                 ("4:2:0", 32, 48, 95, 0), ("4:2:0", 40, 24, 20, 0), ("grey", 30, 29, 92, 1),
                 ("4:2:2", 26, 41, 85, 2), ("4:4:4", 35, 22, 97, 3)]


@cocotb.test()
async def decode_timing(dut):
    """Each of :data:`TIMING_IMAGES` alone (DECODE, COMPLETE), the whole frame and a random
    crop of it: the RTL's cycles against the performance model's prediction (logged as
    ``TIMING`` lines), within :data:`MODEL_ERROR`. The model places the scan stage by stage
    from the table block and the bitstream (:func:`~s4accel.sim.model.perf_model.
    decode_scan_cycles`, three constants fitted on other images)."""
    import json

    from ..model.perf_model import predict_program
    cfg = config_from_env()
    rng = rng_from_env(dut, "decode_timing")
    be = await started(dut)
    dev = Driver(be)
    info = await dev.open()
    worst = 0.0
    for mode, h, w, quality, restart in TIMING_IMAGES:
        kw = {"restart_marker_blocks": restart} if restart else {}
        data = encode(smooth_image(rng, h, w), mode, quality=quality, **kw)
        tables, bits = codec.split_scan(data)
        cw, ch = int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))
        crop = (int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch)
        for x, y, cw, ch in ((0, 0, w, h), crop):
            oh, ow = min(ch, 8), min(cw, 12)
            prog = decode_program(info, dev.alloc, data, crop=(x, y, cw, ch), out_h=oh,
                                  out_w=ow)
            res = await dev.run_program(prog)
            pred = predict_program(cfg, prog)["cycles"]
            err = (pred - res.cycles) / res.cycles
            worst = max(worst, abs(err))
            dut._log.info("TIMING %s", json.dumps({
                "mode": mode, "h": h, "w": w, "quality": quality, "restart": restart,
                "bits": len(bits), "crop": [x, y, cw, ch], "out": oh * ow,
                "cycles": res.cycles, "predicted": pred, "error": round(err, 4)}))
    dut._log.info("decode_timing: worst model error %.2f %%", 100 * worst)
    assert worst <= MODEL_ERROR, f"model error {100 * worst:.2f} %"


@cocotb.test()
async def decode_errors(dut):
    """Every error a DECODE can end with (the functional model's cases in
    tests/model/test_codec_model.py, sized for this device): the code, the DECODE's address
    in ERR_ADDR; the device then decodes the next image."""
    from ...hw.cmd.descriptors import ErrorCode
    from ...sw.codec import decode_descriptor
    from ...sw.program import descriptor
    rng = rng_from_env(dut, "decode_errors")
    be = await started(dut)
    dev = Driver(be)
    info = await dev.open()
    cfg = config_from_env()
    assert info.jpeg_max_width == cfg.jpeg_max_width, info     # CAP_CODEC.max_width_log2
    data = encode(smooth_image(rng, 8, 8), "4:4:4", quality=80)
    prog = decode_program(info, dev.alloc, data)
    for a, d in prog.images:
        await be.mem_write(a, d)
    (table_addr, _), (good, bits) = prog.images
    bad = bytearray(bits)
    for i in range(len(bad) // 3, len(bad) - 2):
        bad[i] = 0xFF if bad[i] != 0xFF else 0xFE
    bad_addr = dev.alloc.alloc(len(bad) + 64)
    await be.mem_write(bad_addr, bytes(bad))
    # an image one pixel wider than the decoder takes, its block built for the format's limit
    # (the driver's decode_program refuses it)
    wide_w = info.jpeg_max_width + 1
    wide_tables, wide_bits = codec.split_scan(encode(smooth_image(rng, 8, wide_w), "grey",
                                                     quality=80))
    wide_addr = dev.alloc.alloc(codec.TABLE_BLOCK_BYTES)
    await be.mem_write(wide_addr, codec.table_block(wide_tables))
    wide_bits_addr = dev.alloc.alloc(len(wide_bits) + 64)
    await be.mem_write(wide_bits_addr, wide_bits)
    n = 64
    ok = dict(table_addr=table_addr, bits_addr=good, bits_len=len(bits), act_addr=0, lane=0,
              crop=(0, 0, 8, 8), out_h=8, out_w=8)
    bb = info.bus_bytes
    cases = [
        ("bits_len 0", ErrorCode.BAD_FIELD, dict(ok, bits_len=0)),
        ("out_w > crop_w", ErrorCode.BAD_FIELD, dict(ok, crop=(0, 0, 4, 8))),
        ("crop_h 0", ErrorCode.BAD_FIELD, dict(ok, crop=(0, 0, 8, 0))),
        ("lane >= rows", ErrorCode.BAD_FIELD, dict(ok, lane=info.rows)),
        ("out_w > MAX_OUT_W", ErrorCode.BAD_FIELD,
         dict(ok, crop=(0, 0, 1100, 1), out_w=codec.MAX_OUT_W + 1, out_h=1)),
        ("absent SPU", ErrorCode.BAD_FIELD, dict(ok, spu_mask=0b100)),
        ("ACT span", ErrorCode.SCRATCHPAD_OVERFLOW, dict(ok, act_addr=info.act_depth - n + 1)),
        ("overflow before alignment", ErrorCode.SCRATCHPAD_OVERFLOW,
         dict(ok, act_addr=info.act_depth, table_addr=table_addr + 1)),
        ("unaligned block", ErrorCode.BAD_FIELD, dict(ok, table_addr=table_addr + bb // 2)),
        ("unaligned bits", ErrorCode.BAD_FIELD, dict(ok, bits_addr=good + bb // 2)),
        ("block outside windows", ErrorCode.OUT_OF_WINDOW, dict(ok, table_addr=0x10)),
        ("bits outside windows", ErrorCode.OUT_OF_WINDOW, dict(ok, bits_addr=1 << 31 & ~63)),
        ("wait without token", ErrorCode.TOKEN, dict(ok, wait_next=1)),
        ("crop outside the frame", ErrorCode.DECODE_ERROR, dict(ok, crop=(1, 0, 8, 8))),
        ("not a block", ErrorCode.DECODE_ERROR, dict(ok, table_addr=good)),
        ("wider than the decoder", ErrorCode.DECODE_ERROR,
         dict(ok, table_addr=wide_addr, bits_addr=wide_bits_addr, bits_len=len(wide_bits))),
        ("corrupt stream", ErrorCode.DECODE_ERROR, dict(ok, bits_addr=bad_addr)),
        ("truncated stream", ErrorCode.DECODE_ERROR, dict(ok, bits_len=len(bits) // 4)),
    ]
    for name, code, fields in cases:
        first = await dev.submit([descriptor(Opcode.NOP), decode_descriptor(**fields),
                                  descriptor(Opcode.COMPLETE)])
        try:
            await dev.wait()
            raise AssertionError(f"{name}: no error")
        except DeviceError as e:
            assert e.code == code, f"{name}: {e.code!r}, not {code!r}"
            assert e.desc_addr == first + 32, f"{name}: ERR_ADDR {e.desc_addr:#x}"
        await dev.submit(prog.descs)       # the next job runs
        await dev.wait()
        dut._log.info("%s: %s", name, code.name)
    # the span exactly at the end of the scratchpad is fine
    await dev.submit([decode_descriptor(**dict(ok, act_addr=info.act_depth - n)),
                      descriptor(Opcode.COMPLETE)])
    await dev.wait()
