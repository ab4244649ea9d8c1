"""Baseline JPEG decoder of one scan: entropy-coded bytes in, RGB pixels out.

Chains :class:`.entropy.EntropyDecoder`, :class:`.idct.Idct` and
:class:`.color.ColorConverter`; the result equals :func:`s4accel.base.jpeg.decode` (and so
Pillow). Headers are parsed by the driver (:func:`s4accel.base.jpeg.parse`), which writes the
tables through the ports and sets ``config`` (:func:`decoder_config` builds it).
"""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...base.jpeg import JpegTables, check_hardware_scan, stored_as_rgb
from .color import ColorConverter, color_config_layout, pixel_layout, sampling_of
from .entropy import (
    EntropyDecoder,
    EntropyError,
    byte_layout,
    huffman_table_image,
    scan_config,
    scan_config_layout,
    table_write_layout,
)
from .idct import Idct, qt_write_layout, qtable_image

__all__ = ["JpegDecoder", "decoder_config", "decoder_config_layout", "table_image"]

#: The scan (entropy decoder) and image (colour stage) configuration.
decoder_config_layout = data.StructLayout({
    "scan": scan_config_layout, "image": color_config_layout,
})


def decoder_config(tables: JpegTables, *, max_width: int = 2048) -> dict:
    """The ``config`` value of the (only) scan of `tables`; raises `JpegError` for what the
    decoder does not do: more than one scan, a scan listing its components in another order
    than the frame, an image wider than `max_width`."""
    check_hardware_scan(tables, max_width)
    rgb = stored_as_rgb(tables)
    return {"scan": scan_config(tables),
            "image": {"sampling": sampling_of(tables), "width": tables.width,
                      "height": tables.height, "ycc": len(tables.components) == 3 and not rgb}}


def table_image(tables: JpegTables) -> tuple[list, list]:
    """The ``i_table`` writes (Huffman tables) and ``i_qt`` writes (each component's
    quantizer) of the (only) scan of `tables`, as ``(table, addr, data)`` and
    ``(comp, k, data)`` tuples."""
    dc, ac = tables.scan_huffman[0]
    huff = []
    for slot, t in dc.items():
        huff += huffman_table_image(t, slot)
    for slot, t in ac.items():
        huff += huffman_table_image(t, 4 + slot)
    qt = []
    for ci, c in enumerate(tables.components):
        qt += qtable_image(tables.scan_qtables[0][c.tq], ci)
    return huff, qt


class JpegDecoder(wiring.Component):
    """One scan's entropy-coded bytes in, the image's pixels out (raster order, see
    :class:`.color.ColorConverter`).

    Program the tables (``i_table``, ``i_qt``, both always ready) and ``config`` while not
    busy, pulse ``start``, then (from the next cycle on) send the bytes after the SOS segment
    up to and including the marker that ends the scan (or mark the input's last byte
    ``last``). ``start`` also empties every stage, so a new image may begin after an error.
    ``done`` rises once the last pixel has been taken and the scan's end marker read
    (``scan_done`` once the marker has been read, ``scan_drained`` once the scan's last
    coefficient is in the IDCT as well: from then on new Huffman tables, and quantizers, may
    be written while the last pixels are still to come);
    ``error`` (sticky until ``start``) when the data is corrupt
    (:class:`.entropy.EntropyError`): the pixel stream then stops short, within a number of
    cycles bounded by the input length. ``busy`` from ``start`` to ``done`` or ``error``.

    Throughput: the slowest of the colour stage (a pixel a cycle), the entropy decoder (three
    cycles a symbol) and the IDCT (23 cycles or one per coefficient item a block) paces the
    decoder: the colour stage on smooth photographs at ordinary qualities (a third of a
    symbol a pixel or less), the entropy decoder on detailed or high-quality images; before
    the first pixel an MCU row is decoded (see :class:`.color.ColorConverter` for the
    buffering).

    Members
    -------
    i_data : In(stream.Signature(byte_layout))
    i_table : In(stream.Signature(table_write_layout))
    i_qt : In(stream.Signature(qt_write_layout))
    o_pixel : Out(stream.Signature(pixel_layout))
    config : In(decoder_config_layout)
    start : In(1)
    busy, done, scan_done, scan_drained : Out(1)
    error : Out(EntropyError)
    """

    i_data: In(stream.Signature(byte_layout))
    i_table: In(stream.Signature(table_write_layout))
    i_qt: In(stream.Signature(qt_write_layout))
    o_pixel: Out(stream.Signature(pixel_layout))
    config: In(decoder_config_layout)
    start: In(1)
    busy: Out(1)
    done: Out(1)
    scan_done: Out(1)
    scan_drained: Out(1)
    error: Out(EntropyError)

    def __init__(self, *, max_width: int = 2048):
        self._color = ColorConverter(max_width=max_width)   # validates max_width
        self._entropy = EntropyDecoder()
        self._idct = Idct()
        super().__init__()

    @property
    def max_width(self) -> int:
        return self._color.max_width

    def elaborate(self, platform):
        m = Module()
        m.submodules.entropy = ent = self._entropy
        m.submodules.idct = idct = self._idct
        m.submodules.color = color = self._color
        wiring.connect(m, producer=wiring.flipped(self.i_data), consumer=ent.i_data)
        wiring.connect(m, producer=wiring.flipped(self.i_table), consumer=ent.i_table)
        wiring.connect(m, producer=wiring.flipped(self.i_qt), consumer=idct.i_qt)
        wiring.connect(m, producer=ent.o_coef, consumer=idct.i_coef)
        wiring.connect(m, producer=idct.o_row, consumer=color.i_row)
        wiring.connect(m, producer=color.o_pixel, consumer=wiring.flipped(self.o_pixel))
        failed = ent.error != EntropyError.NONE
        m.d.comb += [
            ent.config.eq(self.config.scan), color.config.eq(self.config.image),
            ent.start.eq(self.start), idct.clear.eq(self.start), color.start.eq(self.start),
            self.done.eq(color.done & ent.done), self.error.eq(ent.error),
            self.scan_done.eq(ent.done), self.scan_drained.eq(ent.drained),
            self.busy.eq((color.busy | ent.busy) & ~failed),
        ]
        return m
