"""Driver side of the codec wrapper: a ``DECODE`` program from a JPEG file (issue 23, item 2).

:func:`decode_program` parses the file's headers (:func:`s4accel.base.codec.split_scan`),
refuses what the decoder does not take with a :class:`~s4accel.base.jpeg.JpegError` naming it,
builds the table block (:func:`s4accel.base.codec.table_block`; a frame without DHT gets the
Annex K.3 tables there) and places it and the bitstream in DRAM, and encodes one ``DECODE``
descriptor (:class:`~s4accel.hw.cmd.descriptors.DecodeBody`) that writes the int8 image into
ACT words ``act_addr ..`` of row memory ``lane``: the NHWC input of a first conv layer
(:mod:`.conv`; one pixel a word, ``cbanks = 1``).
"""

from __future__ import annotations

from ..base import codec
from ..base.jpeg import JpegError
from ..hw.cmd.descriptors import Opcode
from .program import Allocator, DeviceInfo, LayerProgram, descriptor

__all__ = ["decode_program", "decode_descriptor"]


def decode_descriptor(*, table_addr, bits_addr, bits_len, act_addr, lane, crop, out_h, out_w,
                      spu_mask=0, **flags) -> bytes:
    """One DECODE descriptor; ``crop`` is ``(x, y, w, h)``; ``flags`` the header's token
    flags (a LOAD's: ``wait_next``, ``sig_next``)."""
    x, y, w, h = crop
    return descriptor(Opcode.DECODE, spu_mask=spu_mask, decode={
        "table_addr": table_addr, "bits_addr": bits_addr, "bits_len": bits_len,
        "act_addr": act_addr, "lane": lane, "out_w": out_w, "out_h": out_h,
        "crop_x": x, "crop_y": y, "crop_w": w, "crop_h": h}, **flags)


def decode_program(info: DeviceInfo, alloc: Allocator, data: bytes, *, out_h=None, out_w=None,
                   crop=None, norms=codec.CENTRED, act_addr: int = 0, lane: int = 0,
                   spu_mask: int = 0, complete: bool = True, **flags) -> LayerProgram:
    """A program that decodes JPEG file ``data`` into the ACT scratchpad (see the module
    docstring); ``crop`` ``(x, y, w, h)`` defaults to the whole frame and ``out_h x out_w``
    to the crop's size; ``norms`` one :class:`~s4accel.base.codec.Norm` or one per channel.
    Raises :class:`~s4accel.base.jpeg.JpegError` for a file the decoder does not take (an
    image wider than the device's ``jpeg_max_width`` too) and
    ValueError for a device without a decoder or a geometry that does not fit."""
    if not info.jpeg_decoders:
        raise ValueError("the device has no JPEG decoder (CAP_CODEC.jpeg_decoders = 0)")
    tables, bits = codec.split_scan(data)
    block = codec.table_block(tables, norms, max_width=info.jpeg_max_width)
    crop = crop or (0, 0, tables.width, tables.height)
    out_h = out_h or crop[3]
    out_w = out_w or crop[2]
    codec.check_geometry(tables.width, tables.height, crop, out_h, out_w)
    if not 0 <= lane < info.rows:
        raise ValueError(f"lane {lane} is not a row memory of the {info.rows}-row device")
    if act_addr + out_h * out_w > info.act_depth:
        raise ValueError(f"{out_h}x{out_w} pixels from ACT word {act_addr} do not fit the "
                         f"{info.act_depth}-word activation scratchpad")
    if out_w >= 1 << 12 or out_h >= 1 << 12 or len(bits) >= 1 << 24:
        raise JpegError("image or bitstream too large for a DECODE descriptor")
    prog = LayerProgram(rows=info.rows, cols=info.cols)
    bb = info.bus_bytes
    table_addr = prog.image(block, alloc, bb)
    bits_addr = prog.image(bits, alloc, bb)
    prog.descs.append(decode_descriptor(
        table_addr=table_addr, bits_addr=bits_addr, bits_len=len(bits), act_addr=act_addr,
        lane=lane, crop=crop, out_h=out_h, out_w=out_w, spu_mask=spu_mask, **flags))
    if complete:
        prog.descs.append(descriptor(Opcode.COMPLETE))
    return prog
