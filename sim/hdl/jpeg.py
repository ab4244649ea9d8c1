"""The simulation top level ``jpeg_decoder``: :class:`~s4accel.hw.jpeg.decoder.JpegDecoder` with
its ports at the top (the cocotb testbench :mod:`s4accel.sim.tb.jpeg` drives them), ``config``
renamed ``dec_config`` (``config`` is a Verilog keyword, which Verilog writes as an escaped
identifier that the simulators' VPI names differently).

The decoder takes one parameter from the configuration, ``jpeg_max_width`` (its colour stage's
line buffers), so every configuration with the default 2048 builds the same design.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...base.config import Config
from ...hw.jpeg.color import pixel_layout
from ...hw.jpeg.decoder import JpegDecoder, decoder_config_layout
from ...hw.jpeg.entropy import EntropyError, byte_layout, table_write_layout
from ...hw.jpeg.idct import qt_write_layout

__all__ = ["JpegSimTop", "jpeg_decoder"]


class JpegSimTop(wiring.Component):
    """:class:`JpegDecoder`'s members, ``config`` as ``dec_config``.

    Members
    -------
    i_data, i_table, i_qt, o_pixel, start, busy, done, error : as JpegDecoder's
    dec_config : In(decoder_config_layout)
    """

    i_data: In(stream.Signature(byte_layout))
    i_table: In(stream.Signature(table_write_layout))
    i_qt: In(stream.Signature(qt_write_layout))
    o_pixel: Out(stream.Signature(pixel_layout))
    dec_config: In(decoder_config_layout)
    start: In(1)
    busy: Out(1)
    done: Out(1)
    error: Out(EntropyError)

    def __init__(self, *, max_width: int = 2048):
        self._max_width = max_width
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dec = dec = JpegDecoder(max_width=self._max_width)
        for name in ("i_data", "i_table", "i_qt"):
            wiring.connect(m, producer=wiring.flipped(getattr(self, name)),
                           consumer=getattr(dec, name))
        wiring.connect(m, producer=dec.o_pixel, consumer=wiring.flipped(self.o_pixel))
        m.d.comb += [dec.config.eq(self.dec_config), dec.start.eq(self.start),
                     self.busy.eq(dec.busy), self.done.eq(dec.done), self.error.eq(dec.error)]
        return m


def jpeg_decoder(config: Config) -> JpegSimTop:
    """The decoder built for ``config``: its ``jpeg_max_width``."""
    return JpegSimTop(max_width=config.jpeg_max_width)
