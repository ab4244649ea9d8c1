"""DECODE (the codec wrapper) on the functional model: the driver's program from a JPEG file,
the image in ACT equal to the golden job (and so to Pillow), multicast, lanes, tokens, every
error code a DECODE can end with, and the refusal on a device without a decoder."""

import asyncio

import numpy as np
import pytest
from jpeg_images import encode, smooth_image

from s4accel.base import codec
from s4accel.base.config import BANK, load_config
from s4accel.hw.cmd.descriptors import ErrorCode, Opcode, Target
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sim.workloads.jpeg import strip_dht
from s4accel.sw.codec import decode_descriptor, decode_program
from s4accel.sw.driver import DeviceError, Driver
from s4accel.sw.program import descriptor


def _device(name="tiny", **changes):
    cfg = load_config(name).replace(jpeg_decoders=1, act_sram_kib=64, **changes)
    backend = ModelBackend(cfg)
    return Driver(backend), backend.model


def _act(model, spu=0):
    R = model.config.rows
    return np.frombuffer(model.spu_mem[spu][0][Target.ACT], np.int8).reshape(-1, R, BANK)


def _image(rng, mode, h, w, **kw):
    return encode(smooth_image(rng, h, w), mode, quality=int(rng.integers(20, 95)), **kw)


@pytest.mark.parametrize("mode", ["grey", "4:4:4", "4:2:2", "4:2:0"])
def test_decode_into_act(mode, rng):
    async def main():
        dev, model = _device("tiny", spus=2)
        info = await dev.open()
        assert info.jpeg_decoders == 1
        h, w = int(rng.integers(8, 33)), int(rng.integers(8, 33))
        data = _image(rng, mode, h, w)
        cx, cy = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        crop = (cx, cy, w - cx, h - cy)
        oh, ow = int(rng.integers(1, h - cy + 1)), int(rng.integers(1, w - cx + 1))
        norm = codec.Norm(offset=int(rng.integers(0, 4096)), mult=int(rng.integers(1, 40)),
                          shift=int(rng.integers(4, 10)))
        act_addr, lane = 3, info.rows - 1
        before = [_act(model, s).copy() for s in range(2)]
        prog = decode_program(info, dev.alloc, data, crop=crop, out_h=oh, out_w=ow, norms=norm,
                              act_addr=act_addr, lane=lane, spu_mask=0b10)
        await dev.run_program(prog)
        tables, bits = codec.split_scan(data)
        exp = codec.decode_job(codec.table_block(tables, norm), bits, crop=crop, out_h=oh,
                               out_w=ow)
        lanes = np.frombuffer(codec.act_lane_image(exp), np.int8).reshape(-1, BANK)
        after = _act(model, 1)
        span = slice(act_addr, act_addr + oh * ow)
        assert np.array_equal(after[span, lane], lanes)
        # nothing else written: other lanes, words outside the span, the unselected SPU
        mask = np.ones(after.shape, bool)
        mask[span, lane] = False
        assert np.array_equal(after[mask], before[1][mask])
        assert np.array_equal(_act(model, 0), before[0])
        # the channels are the golden decoder's (Pillow's) pixels through crop/resize/norm
        c = 1 if mode == "grey" else 3
        assert exp.shape == (oh, ow, c) and not lanes[:, c:].any()
    asyncio.run(main())


def test_standard_tables_restart_and_tokens(rng):
    """A frame without DHT (Annex K.3 tables from the block) with restart markers; DECODE is
    on the LOAD stage: its sig_next token is what a GEMM's wait_prev takes."""
    async def main():
        dev, model = _device("tiny")
        info = await dev.open()
        data = strip_dht(encode(smooth_image(rng, 24, 40), "4:2:0", quality=75,
                                restart_marker_blocks=2))
        prog = decode_program(info, dev.alloc, data, complete=False, sig_next=1)
        assert model.tokens["ld2ex"] == 0
        for a, d in prog.images:
            await dev.backend.mem_write(a, d)
        await dev.submit(prog.descs)
        assert model.tokens["ld2ex"] == 1
        tables, bits = codec.split_scan(data)
        exp = codec.decode_job(codec.table_block(tables), bits, crop=(0, 0, 40, 24),
                               out_h=24, out_w=40)
        assert np.array_equal(_act(model)[:24 * 40, 0, :3], exp.reshape(-1, 3))
    asyncio.run(main())


def test_no_decoder_is_unknown_opcode(rng):
    async def main():
        backend = ModelBackend("tiny")
        dev = Driver(backend)
        info = await dev.open()
        assert info.jpeg_decoders == 0
        data = _image(rng, "grey", 8, 8)
        with pytest.raises(ValueError, match="no JPEG decoder"):
            decode_program(info, dev.alloc, data)
        desc = decode_descriptor(table_addr=0, bits_addr=0, bits_len=1, act_addr=0, lane=0,
                                 crop=(0, 0, 8, 8), out_h=8, out_w=8)
        await dev.submit([desc, descriptor(Opcode.COMPLETE)])
        with pytest.raises(DeviceError) as e:
            await dev.wait()
        assert e.value.code == ErrorCode.UNKNOWN_OPCODE
    asyncio.run(main())


def _error_cases(info, table_addr, bits_addr, bits_len, good_bits_addr):
    ok = dict(table_addr=table_addr, bits_addr=good_bits_addr, bits_len=bits_len, act_addr=0,
              lane=0, crop=(0, 0, 16, 16), out_h=16, out_w=16)
    bb = info.bus_bytes
    return [
        ("bits_len 0", ErrorCode.BAD_FIELD, dict(ok, bits_len=0)),
        ("out_w > crop_w", ErrorCode.BAD_FIELD, dict(ok, crop=(0, 0, 8, 16))),
        ("crop_h 0", ErrorCode.BAD_FIELD, dict(ok, crop=(0, 0, 16, 0))),
        ("lane >= rows", ErrorCode.BAD_FIELD, dict(ok, lane=info.rows)),
        ("out_w > MAX_OUT_W", ErrorCode.BAD_FIELD,
         dict(ok, crop=(0, 0, 1100, 1), out_w=codec.MAX_OUT_W + 1, out_h=1)),
        ("absent SPU", ErrorCode.BAD_FIELD, dict(ok, spu_mask=0b100)),
        ("ACT span", ErrorCode.SCRATCHPAD_OVERFLOW, dict(ok, act_addr=info.act_depth - 255)),
        ("overflow before alignment", ErrorCode.SCRATCHPAD_OVERFLOW,
         dict(ok, act_addr=info.act_depth, table_addr=table_addr + 1)),
        ("unaligned block", ErrorCode.BAD_FIELD, dict(ok, table_addr=table_addr + bb // 2)),
        ("unaligned bits", ErrorCode.BAD_FIELD, dict(ok, bits_addr=good_bits_addr + bb // 2)),
        ("block outside windows", ErrorCode.OUT_OF_WINDOW, dict(ok, table_addr=0x10)),
        ("bits outside windows", ErrorCode.OUT_OF_WINDOW, dict(ok, bits_addr=1 << 31 & ~63)),
        ("wait without token", ErrorCode.TOKEN, dict(ok, wait_next=1)),
        ("crop outside the frame", ErrorCode.DECODE_ERROR, dict(ok, crop=(1, 0, 16, 16))),
        ("not a block", ErrorCode.DECODE_ERROR, dict(ok, table_addr=good_bits_addr)),
        ("corrupt stream", ErrorCode.DECODE_ERROR, dict(ok, bits_addr=bits_addr)),
        ("truncated stream", ErrorCode.DECODE_ERROR, dict(ok, bits_len=bits_len // 4)),
    ]


def test_decode_errors(rng):
    """Every error a DECODE can end with, precise (the ring stops at it, ERR_ADDR is its
    slot), nothing written to ACT; the device then runs the next DECODE."""
    async def main():
        dev, model = _device("tiny")
        info = await dev.open()
        data = _image(rng, "4:4:4", 16, 16)
        prog = decode_program(info, dev.alloc, data)
        for a, d in prog.images:
            await dev.backend.mem_write(a, d)
        (table_addr, block), (good_bits_addr, bits) = prog.images
        tables, raw_bits = codec.split_scan(data)
        bad = bytearray(raw_bits)
        for i in range(len(bad) // 3, len(bad) - 2):
            bad[i] = 0xFF if bad[i] != 0xFF else 0xFE     # bad Huffman codes / markers
        bad_addr = dev.alloc.alloc(len(bad) + 64)
        await dev.backend.mem_write(bad_addr, bytes(bad))
        cases = _error_cases(info, table_addr, bad_addr, len(raw_bits), good_bits_addr)
        codes = set()
        for name, code, fields in cases:
            act0 = _act(model).copy()
            desc = decode_descriptor(**fields)
            first = await dev.submit([descriptor(Opcode.NOP), desc, descriptor(Opcode.COMPLETE)])
            with pytest.raises(DeviceError) as e:
                await dev.wait()
            assert e.value.code == code, name
            assert e.value.desc_addr == first + 32, name
            assert np.array_equal(_act(model), act0), name
            codes.add(code)
            await dev.submit(prog.descs)                 # the next job runs
            await dev.wait()
        assert ErrorCode.DECODE_ERROR in codes and len(codes) == 5
        # the span exactly at the end of the scratchpad, and the whole bitstream's last word
        # at the window's end, are fine
        await dev.submit([decode_descriptor(
            table_addr=table_addr, bits_addr=good_bits_addr, bits_len=len(raw_bits),
            act_addr=info.act_depth - 256, lane=1, crop=(0, 0, 16, 16), out_h=16, out_w=16),
            descriptor(Opcode.COMPLETE)])
        await dev.wait()
        exp = codec.decode_job(block, raw_bits, crop=(0, 0, 16, 16), out_h=16, out_w=16)
        assert np.array_equal(_act(model)[-256:, 1, :3], exp.reshape(-1, 3))
    asyncio.run(main())


def test_decode_feeds_a_first_conv_layer(rng):
    """The layout claim: a conv program whose input LOAD is replaced by a DECODE of a JPEG
    (same ACT words, same token bits) gives the same result as the program loading the
    decoded, resized, normalised image from DRAM."""
    from s4accel.sw import scenarios
    from s4accel.sw.conv import conv_program

    async def main():
        data = _image(rng, "4:2:0", 19, 23)
        tables, bits = codec.split_scan(data)
        norm = codec.norm_from_float(0.45, 0.25, 4 / 127)
        crop, oh, ow = (2, 1, 20, 17), 8, 10
        q = codec.decode_job(codec.table_block(tables, norm), bits, crop=crop, out_h=oh,
                             out_w=ow)
        outs = []
        for use_decode in (False, True):
            dev, model = _device("tiny", out_sram_kib=16)     # one band of outputs fits
            info = await dev.open()
            _, packed, params, _ = scenarios.random_conv(
                np.random.default_rng(7), info, ksize=3, stride=1, pad=1, n_img=1, h=oh,
                w=ow, c=3, cout=5, mode="int8")
            prog = conv_program(info, q[None], packed, params, dev.alloc, ksize=3, pad=1,
                                max_band=oh)        # one band: the whole image
            if use_decode:
                word = info.rows * BANK
                loads = [i for i, d in enumerate(prog.descs)
                         if d[0] & 15 == Opcode.LOAD.value
                         and _field(d, "target") == Target.ACT.value
                         and _field(d, "row_bytes") * _field(d, "rows") == oh * ow * word]
                assert len(loads) == 1        # the whole image in one band
                i = loads[0]
                flags = {k: (prog.descs[i][0] >> b) & 1 for k, b in
                         (("wait_next", 5), ("sig_next", 7))}
                dprog = decode_program(info, dev.alloc, data, crop=crop, out_h=oh, out_w=ow,
                                       norms=norm, act_addr=_field(prog.descs[i], "sram_addr"),
                                       complete=False, **flags)
                prog.descs[i:i + 1] = dprog.descs
                prog.images += dprog.images
            outs.append((await dev.run_program(prog)).y)
        assert np.array_equal(outs[0], outs[1]) and outs[0].any()
    asyncio.run(main())


def _field(desc, name):
    """A DmaBody field of an encoded descriptor."""
    from s4accel.hw.cmd.descriptors import Descriptor
    d = Descriptor.from_bits(int.from_bytes(desc, "little"))
    v = getattr(d.body.dma, name)
    return v.value if isinstance(v, Target) else int(v)


def test_narrow_decoder_refuses_wider_images(rng):
    """``jpeg_max_width``: the driver reads it from CAP_CODEC and refuses a wider image with a
    JpegError naming both widths; a DECODE of such an image built by hand (a block for the
    full-width decoder) ends with DECODE_ERROR, nothing written, and an image exactly as wide
    decodes."""
    from s4accel.base.jpeg import JpegError

    async def main():
        dev, model = _device("tiny", jpeg_max_width=32)
        info = await dev.open()
        assert info.jpeg_max_width == 32
        wide = _image(rng, "grey", 8, 33)
        with pytest.raises(JpegError, match="width 33 is over the decoder's 32"):
            decode_program(info, dev.alloc, wide)
        tables, bits = codec.split_scan(wide)
        block = codec.table_block(tables)                 # the format's limit, 2048
        bb = info.bus_bytes
        table_addr = dev.alloc.alloc(len(block))
        bits_addr = dev.alloc.alloc(len(bits) + bb)
        await dev.backend.mem_write(table_addr, block)
        await dev.backend.mem_write(bits_addr, bits)
        act0 = _act(model).copy()
        first = await dev.submit([descriptor(Opcode.NOP), decode_descriptor(
            table_addr=table_addr, bits_addr=bits_addr, bits_len=len(bits), act_addr=0,
            lane=0, crop=(0, 0, 33, 8), out_h=8, out_w=33), descriptor(Opcode.COMPLETE)])
        with pytest.raises(DeviceError) as e:
            await dev.wait()
        assert e.value.code == ErrorCode.DECODE_ERROR and e.value.desc_addr == first + 32
        assert np.array_equal(_act(model), act0)
        fits = _image(rng, "4:2:0", 9, 32)
        prog = decode_program(info, dev.alloc, fits)
        for a, d in prog.images:
            await dev.backend.mem_write(a, d)
        await dev.submit(prog.descs)
        await dev.wait()
        t, b = codec.split_scan(fits)
        exp = codec.decode_job(codec.table_block(t), b, crop=(0, 0, 32, 9), out_h=9, out_w=32)
        assert np.array_equal(_act(model)[:9 * 32, 0, :3], exp.reshape(-1, 3))
    asyncio.run(main())
