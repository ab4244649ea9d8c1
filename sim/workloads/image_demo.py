"""The image pipeline demo (issue 23, item 6): JPEG images in, classifications out, one device
program.

The images are the digits test split (8x8) upscaled bilinearly to ``size x size``
(default 32), as 8-bit grey JPEGs that Pillow encodes at ``quality``. The device decodes them
(``DECODE``: the table block and the bitstream from DRAM, a box resize to the network's 16x16
and the input quantization of the CNN, ``round(v / 255 / in_scale)``, all in the codec
wrapper) straight into the activation scratchpad, where the CNN of :mod:`.cnn` reads them:
its stem is a 3x3 convolution over the decoded pixels on chip (one channel a pixel, the
weights in the s = 32 format, which holds one tap a bank exactly) instead of the host's 3x3
windows that :func:`.cnn.device_program` hands over. The rest of the network is
:func:`.cnn.device_ops` unchanged, pruned to ``s``.

The stem reads a chunk's whole input from the activation scratchpad (``resident`` in
:func:`s4accel.sw.conv.emit_conv`: 256 words of fpga's 511), so each image is decoded once, by
one DECODE into its row memory (``lane``: the images of a chunk are the array's rows). The
next chunk's DECODEs wait for the stem's last band of the chunk before (a SYNC).

:func:`jpeg_program` builds the program; :func:`golden_images` gives the int8 images the
DECODEs write (the golden decoder); the network's raw outputs on them are
:meth:`~.cnn.QuantCnn.forward_int`'s. :func:`run_demo` measures accuracy (the float network on
the original pixels, the int8 network on the original pixels, the device path on the JPEGs),
runs programs on the functional model and on the RTL bit-exact against that, and splits the
cycles into decoding and inference.
"""

from __future__ import annotations

import asyncio
import io
import time

import numpy as np

from ...base import codec
from ...base.config import BANK
from ...base.sparse import pack
from ...hw.cmd.descriptors import Descriptor, Opcode, Target
from ...sw.codec import decode_descriptor
from ...sw.conv import ConvOp, conv_weights, network_program

__all__ = ["digit_jpegs", "norm_of", "decode_ops", "golden_images", "jpeg_program",
           "pixels_program", "jpeg_job", "pixels_job", "run_demo", "format_table"]

H = W = 16          # the CNN's input


def digit_jpegs(x8, size: int = 32, quality: int = 90) -> list[bytes]:
    """8x8 digits ``[N, 64]`` or ``[N, 8, 8]`` in [0, 1] (:func:`.digits.load_digits_split`)
    as ``size x size`` grey JPEGs: bilinear 2x upscaling (:func:`.cnn.upscale2x`, as the
    CNN's training images) to ``size``, pixels ``round(255 x)``, then Pillow at ``quality``."""
    from PIL import Image

    from .cnn import upscale2x

    if size < 16 or size & (size - 1):
        raise ValueError(f"size must be a power of two of at least 16, not {size}")
    x = np.asarray(x8, np.float64).reshape(-1, 8, 8)
    while x.shape[-1] < size:
        x = upscale2x(x)
    out = []
    for img in np.clip(np.rint(x * 255), 0, 255).astype(np.uint8):
        buf = io.BytesIO()
        Image.fromarray(img, "L").save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def norm_of(q) -> codec.Norm:
    """The DECODE normalisation that is the CNN's input quantization: ``q = round(v / 255 /
    in_scale)`` for a pixel ``v`` (the training images are in [0, 1])."""
    return codec.norm_from_float(0.0, 1.0, q.in_scale)


def decode_ops(q) -> list:
    """:func:`.cnn.device_ops` with the stem as a 3x3 convolution (pad 1) over the decoded
    one-channel image on chip: its ``[Cout, 9]`` weights as K = 9 banks of 32 channels, channel
    0 of each tap non-zero, packed in the s = 32 format (exact: one non-zero a bank)."""
    from .cnn import device_ops

    ops = device_ops(q)
    stem = q.convs["stem"]
    sp = stem.spec
    if (sp.k, sp.stride, sp.cin) != (3, 1, 1):
        raise ValueError(f"the stem must be a 3x3 stride-1 conv of one channel, not {sp}")
    w = conv_weights(stem.w_q.reshape(sp.cout, 3, 3, 1))
    ops[0] = ConvOp("stem", "x", pack(w, 32), ops[0].params, 3, 1, sp.pad)
    return ops


def golden_images(jpegs, norm: codec.Norm, out: int = H) -> np.ndarray:
    """The int8 images ``[N, out, out, 1]`` the DECODEs of :func:`jpeg_program` write (the
    whole frame box-resized to ``out x out``; a band's crop gives the same rows)."""
    imgs = []
    for data in jpegs:
        tables, bits = codec.split_scan(data)
        imgs.append(codec.decode_job(codec.table_block(tables, norm), bits,
                                     crop=(0, 0, tables.width, tables.height),
                                     out_h=out, out_w=out))
    return np.stack(imgs)


def _decoded(desc):
    return Descriptor.from_bits(int.from_bytes(desc, "little"))


def pixels_program(info, x, ops, alloc):
    """The network on int8 images ``x [N, 16, 16, 1]`` loaded from DRAM (what
    :func:`jpeg_program` decodes instead): inference alone."""
    return network_program(info, x, ops, alloc, resident={"stem"})


def jpeg_program(info, jpegs, ops, alloc, norm: codec.Norm):
    """One device program: ``jpegs`` (grey JPEG files, all the same square size, a multiple
    of 16) decoded on chip into the stem's input and the network ``ops`` (:func:`decode_ops`)
    on them; the output as :func:`pixels_program` 's on :func:`golden_images`. The stem's
    input LOADs (which carry no tokens) become one DECODE per image (module docstring), in
    their place on the LOAD stage; a chunk with fewer
    images than rows keeps its LOAD of zero images first, so its empty row memories read
    zeros."""
    R, bb = info.rows, info.bus_bytes
    n = len(jpegs)
    if not n:
        raise ValueError("no images")
    scans = [codec.split_scan(d) for d in jpegs]
    sizes = {(t.width, t.height) for t, _ in scans}
    if len(sizes) != 1:
        raise ValueError(f"the images have different sizes: {sorted(sizes)}")
    (sw_, sh), = sizes
    if sw_ != sh or sw_ % H:
        raise ValueError(f"images must be square and a multiple of {H} pixels a side, not "
                         f"{sw_}x{sh}")
    if any(len(t.components) != 1 for t, _ in scans):
        raise ValueError("the network takes grey (one-component) JPEGs")
    f = sw_ // H
    prog = pixels_program(info, np.zeros((n, H, W, 1), np.int8), ops, alloc)
    x_at, x_img = prog.images[0]
    act_word = R * BANK
    blocks, bits_at = {}, []
    for t, bits in scans:
        block = codec.table_block(t, norm)
        if block not in blocks:
            blocks[block] = prog.image(block, alloc, bb)
        bits_at.append((blocks[block], prog.image(bits, alloc, bb), len(bits)))
    descs, keep_x, decodes, read = [], False, 0, 0
    for d in prog.descs:
        dec = _decoded(d) if d[0] & 15 == Opcode.LOAD.value else None
        dma = dec.body.dma if dec is not None else None
        if (dma is None or dma.target != Target.ACT
                or not x_at <= dma.dram_addr < x_at + len(x_img)):
            descs.append(d)
            continue
        pix = (dma.dram_addr - x_at) // act_word
        nbytes = int(dma.row_bytes) * int(dma.rows)
        if (dma.dram_addr - x_at) % act_word or nbytes % (W * act_word) or pix % W:
            raise AssertionError("the stem's input LOAD is not whole input rows")
        c, iy0, ih = pix // (H * W), pix % (H * W) // W, nbytes // (W * act_word)
        h = dec.header
        if h.wait_prev or h.wait_next or h.sig_prev or h.sig_next:
            # (emit_conv orders a band's LOAD through the WGT and PAR loads around it)
            raise AssertionError("the stem's input LOAD carries tokens")
        lanes = [i for i in range(R) if c * R + i < n]
        group = []
        if len(lanes) < R:                 # zero images in the chunk's other row memories
            group.append(d)
            keep_x = True
        else:
            prog.dram_bytes -= nbytes
        for lane in lanes:
            table_at, at, nb = bits_at[c * R + lane]
            group.append(decode_descriptor(
                table_addr=table_at, bits_addr=at, bits_len=nb, act_addr=int(dma.sram_addr),
                lane=lane, crop=(0, iy0 * f, sw_, ih * f), out_h=ih, out_w=W))
            read += codec.TABLE_BLOCK_BYTES + nb
            decodes += 1
        descs.extend(group)
    if not decodes:
        raise AssertionError("no input LOAD of the stem found")
    prog.descs = descs
    if not keep_x:
        prog.images.pop(0)
    prog.dram_bytes += read
    prog.placement[0] = (f"x ({n} JPEG files, {decodes} DECODEs into ACT)", "DRAM",
                         sum(len(d) for d in jpegs) + codec.TABLE_BLOCK_BYTES * len(blocks))
    return prog


def jpeg_job(info, inputs, alloc):
    """A :class:`~s4accel.sim.bench.model.Job` program: ``inputs`` ``(jpegs, ops, norm)``."""
    jpegs, ops, norm = inputs
    return jpeg_program(info, jpegs, ops, alloc, norm)


def pixels_job(info, inputs, alloc):
    """A :class:`~s4accel.sim.bench.model.Job` program: ``inputs`` ``(x, ops)``."""
    x, ops = inputs
    return pixels_program(info, x, ops, alloc)


def _padded(x, rows):
    pad = np.zeros((-(-len(x) // rows) * rows,) + x.shape[1:], x.dtype)
    pad[:len(x)] = x
    return pad


def run_demo(config="fpga", *, sparsity=16, size=32, quality=90, model_images=64,
             rtl_images=16, seed=0, sim="verilator", fast=True, params=None, calib=None,
             out=None) -> dict:
    """The demo's numbers (keys below). ``params``/``calib`` replace the trained network
    (``{s: float params}``) and its calibration images (tests); ``rtl_images`` 0 skips the
    RTL. Runs: the golden path on the whole test split (449 images); the functional device
    model on the first ``model_images`` (the same raw outputs, asserted); the RTL on the first
    ``rtl_images`` (one program with the DECODEs and one reading the decoded pixels from DRAM,
    each bit-exact against the golden outputs), with the performance model's cycles for the
    same programs (built with their DRAM images, which the DECODE timing reads) and for the
    DECODEs alone; ``model_error`` is the model's against the RTL's."""
    from ...base.config import load_config
    from ...sw.driver import Driver
    from ...sw.program import Allocator, DeviceInfo, LayerProgram, descriptor
    from ..model.device_model import ModelBackend
    from ..model.perf_model import predict_program
    from . import cnn
    from .digits import load_digits_split

    say = (lambda *a: print(*a, file=out, flush=True)) if out else (lambda *a: None)
    cfg = load_config(config) if isinstance(config, str) else config
    if not cfg.jpeg_decoders:
        cfg = cfg.replace(jpeg_decoders=1, name=f"{cfg.name}_jpeg")
    t0 = time.monotonic()
    _, _, x8, y = load_digits_split(0)
    x_tr, _, x_te, y_te = cnn.load_split()
    assert np.array_equal(y, y_te)
    if params is None:
        say("training the CNN (cached after the first run) ...")
        params = cnn.train_cached(seed=seed)
    p = params[sparsity]
    q = cnn.quantize(p, x_tr[:256] if calib is None else calib, sparsity)
    norm = norm_of(q)
    jpegs = digit_jpegs(x8, size, quality)
    say(f"{len(jpegs)} test digits as {size}x{size} JPEGs (quality {quality}): "
        f"{np.mean([len(d) for d in jpegs]):.0f} bytes each on average")
    x_dec = golden_images(jpegs, norm)
    x_orig = q.quantize_input(x_te)
    y_float = cnn.logits_batched(p, x_te).argmax(1)
    y_int = q.forward_int(x_orig).argmax(1)
    raw_dec = q.forward_int(x_dec)
    y_dec = raw_dec.argmax(1)
    res = {
        "config": cfg.name, "sparsity": sparsity, "size": size, "quality": quality,
        "test_images": len(y_te),
        "jpeg_bytes_mean": float(np.mean([len(d) for d in jpegs])),
        "accuracy_float_original": float((y_float == y_te).mean()),
        "accuracy_int8_original": float((y_int == y_te).mean()),
        "accuracy_device_jpeg": float((y_dec == y_te).mean()),
        "agreement_device_jpeg_vs_float": float((y_dec == y_float).mean()),
        "pixel_mean_abs_diff": float(np.abs(x_dec.astype(int) - x_orig.astype(int)).mean()),
    }
    ops = decode_ops(q)
    info = DeviceInfo.from_config(cfg)

    n_model = min(model_images, len(jpegs))
    if n_model:
        async def on_model():
            dev = Driver(ModelBackend(cfg))
            await dev.open()
            ys = []
            for i in range(0, n_model, 8 * info.rows):
                part = jpegs[i:min(n_model, i + 8 * info.rows)]
                r = await dev.run_program(jpeg_program(info, part, ops, dev.alloc, norm))
                ys.append(r.y[:len(part)])
            return np.concatenate(ys)
        got = asyncio.run(on_model())
        res["model_images"] = n_model
        res["model_equal"] = bool(np.array_equal(got.astype(np.int64),
                                                 raw_dec[:n_model].astype(np.int64)))
        say(f"functional model: {n_model} images, raw outputs "
            f"{'equal to' if res['model_equal'] else 'DIFFERENT from'} the golden path")
    n_rtl = min(-(-rtl_images // cfg.rows) * cfg.rows, len(jpegs))
    batch = n_rtl or 8 * cfg.rows
    jp = jpeg_program(info, jpegs[:batch], ops, Allocator(0x1000, 64 << 20), norm)
    px = pixels_program(info, _padded(x_dec[:batch], cfg.rows), ops,
                        Allocator(0x1000, 64 << 20))
    dec_prog = LayerProgram(rows=jp.rows, cols=jp.cols)
    dec_prog.descs = [d for d in jp.descs if d[0] & 15 == Opcode.DECODE.value]
    dec_prog.descs.append(descriptor(Opcode.COMPLETE))
    dec_prog.images = jp.images
    pred = {k: predict_program(cfg, prog)["cycles"]
            for k, prog in (("jpeg", jp), ("pixels", px), ("decode", dec_prog))}
    res.update(batch=batch, decodes_per_image=(len(dec_prog.descs) - 1) / batch,
               model_cycles_per_image={k: v / batch for k, v in pred.items()},
               dram_bytes_per_image={"jpeg": jp.dram_bytes / batch,
                                     "pixels": px.dram_bytes / batch})
    if n_rtl:
        from ..bench.model import Job, run_jobs
        exp = q.forward_int(_padded(x_dec[:n_rtl], cfg.rows))
        jobs = [Job("jpeg", sparsity, (jpegs[:n_rtl], ops, norm), exp, program=jpeg_job,
                    rows=n_rtl),
                Job("pixels", sparsity, (_padded(x_dec[:n_rtl], cfg.rows), ops), exp,
                    program=pixels_job, rows=n_rtl)]
        say(f"RTL ({sim}, {cfg.name}): {n_rtl} images, with the DECODEs and from DRAM ...")
        raw, _ = run_jobs(cfg, jobs, sim=sim, fast=fast, progress=say)
        rtl = {r["network"]: r for r in raw}
        res.update(rtl_images=n_rtl, bit_exact=all(r["bit_exact"] for r in raw),
                   rtl_cycles_per_image={k: r["cycles"] / n_rtl for k, r in rtl.items()},
                   model_error={k: pred[k] / r["cycles"] - 1 for k, r in rtl.items()})
    res["wall_s"] = time.monotonic() - t0
    return res


def format_table(res: dict) -> str:
    """The demo's report as text."""
    lines = [
        f"accuracy on {res['test_images']} test digits (s = {res['sparsity']}):",
        f"  float network, original pixels      {res['accuracy_float_original']:.4f}",
        f"  int8 network, original pixels       {res['accuracy_int8_original']:.4f}",
        f"  device, {res['size']}x{res['size']} JPEG q{res['quality']} decoded on chip "
        f"{res['accuracy_device_jpeg']:.4f} (top-1 agreement with the float network "
        f"{res['agreement_device_jpeg_vs_float']:.4f})",
    ]
    m = res["model_cycles_per_image"]
    lines.append(f"cycles per image (performance model, jobs of {res['batch']} images, "
                 f"{res['decodes_per_image']:.0f} DECODEs an image): DECODEs alone "
                 f"{m['decode']:.0f}, inference from DRAM pixels {m['pixels']:.0f}, "
                 f"JPEG to classification {m['jpeg']:.0f}")
    if "rtl_cycles_per_image" in res:
        r = res["rtl_cycles_per_image"]
        lines.append(f"cycles per image on the RTL ({res['rtl_images']} images, "
                     f"{'bit-exact' if res['bit_exact'] else 'NOT bit-exact'}): inference "
                     f"from DRAM pixels {r['pixels']:.0f}, JPEG to classification "
                     f"{r['jpeg']:.0f} (decoding instead of loading the pixels: "
                     f"{r['jpeg'] - r['pixels']:+.0f}); "
                     "performance model "
                     + ", ".join(f"{k} {100 * v:+.2f} %" for k, v in res["model_error"].items()))
    return "\n".join(lines)
