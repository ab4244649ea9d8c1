"""DECODE's datapath: table block and bitstream bytes in, activation lanes out (issue 23).

:class:`DecodeJob` chains :class:`.tables.TableLoader` (the table block programs the
decoder), :class:`.decoder.JpegDecoder` (the scan) and :class:`.post.PostProcessor` (crop, box
resize, normalisation, quantisation): the result equals :func:`s4accel.base.codec.decode_job`.
Sequence: ``start`` (with ``crop`` and ``out`` stable until ``done``), then the block's bytes
on ``i_block``, then the bitstream's on ``i_bits`` (``last`` on its final byte; the decoder
takes them only once the tables are in). ``done`` when the last lane has been taken and the
scan's end read; ``error`` (``DECODE_ERROR``) instead when the block is unusable (then no byte
of ``i_bits`` is taken: the caller drains or aborts its transfer) or the stream is corrupt
(lanes may have been emitted before the error, none after it: the decoder and the
post-processing are emptied; the bytes after the error are taken and dropped up to ``last``,
so the transfer completes), or the crop is not inside the frame the block describes. Bytes
after the scan's end marker are taken and dropped too. Either ends the job within a number of
cycles bounded by the input lengths.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .decoder import JpegDecoder
from .entropy import EntropyError, byte_layout
from .post import PostProcessor, lane_layout
from .tables import TableLoader

__all__ = ["DecodeJob", "geometry_layout"]

#: The descriptor's crop and output size.
geometry_layout = data.StructLayout({
    "crop_x": 16, "crop_y": 16, "crop_w": 16, "crop_h": 16, "out_w": 12, "out_h": 12,
})


class DecodeJob(wiring.Component):
    """Members
    -------
    i_block : In(stream.Signature(8))
    i_bits : In(stream.Signature(byte_layout))
    o_lane : Out(stream.Signature(lane_layout))
    geometry : In(geometry_layout)
    start : In(1)
    busy, done, error : Out(1)
    scanning : Out(1)
        The tables were good and the decoder runs (it takes bitstream bytes), until the end.
    scanned : Out(1)
        With ``error``: the decoder had run (a corrupt stream, not a refused block).
    block_skip : Out(1)
        :class:`.tables.TableLoader`'s ``skip`` (with ``word_bytes`` > 1): drop the head byte
        of ``i_block`` and the rest of its word.
    """

    i_block: In(stream.Signature(8))
    i_bits: In(stream.Signature(byte_layout))
    o_lane: Out(stream.Signature(lane_layout))
    geometry: In(geometry_layout)
    start: In(1)
    busy: Out(1)
    done: Out(1)
    error: Out(1)
    scanning: Out(1)
    scanned: Out(1)
    block_skip: Out(1)

    def __init__(self, *, max_width: int = 2048, max_out_w: int = 1024, word_bytes: int = 1):
        self._max_width, self._max_out_w = max_width, max_out_w
        self._word_bytes = word_bytes
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.tables = tl = TableLoader(max_width=self._max_width,
                                               word_bytes=self._word_bytes)
        m.d.comb += self.block_skip.eq(tl.skip)
        m.submodules.decoder = dec = JpegDecoder(max_width=self._max_width)
        m.submodules.post = post = PostProcessor(max_out_w=self._max_out_w)
        wiring.connect(m, producer=wiring.flipped(self.i_block), consumer=tl.i_byte)
        wiring.connect(m, producer=tl.o_table, consumer=dec.i_table)
        wiring.connect(m, producer=tl.o_qt, consumer=dec.i_qt)
        wiring.connect(m, producer=dec.o_pixel, consumer=post.i_pixel)
        wiring.connect(m, producer=post.o_lane, consumer=wiring.flipped(self.o_lane))
        g = self.geometry
        # the decoder's configuration changes only when it starts (the loader's registers
        # change while a block is read)
        dec_cfg = Signal.like(tl.config)
        flush = Signal()         # a corrupt stream: empty the decoder and the post-processing
        m.d.comb += [dec.config.eq(dec_cfg), post.start.eq(self.start | flush),
                     tl.start.eq(self.start),
                     post.config.crop_x.eq(g.crop_x), post.config.crop_y.eq(g.crop_y),
                     post.config.crop_w.eq(g.crop_w), post.config.crop_h.eq(g.crop_h),
                     post.config.out_w.eq(g.out_w), post.config.out_h.eq(g.out_h),
                     post.config.grey.eq(tl.grey), post.config.norm.eq(tl.norm)]

        running = Signal()       # the decoder has been started
        m.d.comb += self.scanning.eq(running)
        drain = Signal()         # a corrupt stream: drop the rest of the bytes
        bits_done = Signal()     # the bitstream's last byte was taken
        m.d.comb += [dec.i_data.payload.eq(self.i_bits.payload),
                     dec.i_data.valid.eq(self.i_bits.valid & running & ~drain & ~bits_done),
                     self.i_bits.ready.eq(running & ~bits_done & (drain | dec.i_data.ready))]
        with m.If(self.i_bits.valid & self.i_bits.ready & self.i_bits.payload.last):
            m.d.sync += bits_done.eq(1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.done.eq(0), self.error.eq(0), running.eq(0),
                                 drain.eq(0), bits_done.eq(0), self.scanned.eq(0)]
                    m.next = "TABLES"
            with m.State("TABLES"):
                m.d.comb += self.busy.eq(1)
                # the last table write leaves the loader the cycle after done rises
                with m.If(tl.done & ~tl.o_table.valid & ~tl.o_qt.valid):
                    img = tl.config.image
                    outside = ((g.crop_x + g.crop_w > img.width)
                               | (g.crop_y + g.crop_h > img.height))
                    with m.If(tl.error | outside):
                        m.d.sync += self.error.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += dec_cfg.eq(tl.config)
                        m.next = "GO"
            with m.State("GO"):
                m.d.comb += [self.busy.eq(1), dec.start.eq(1)]
                m.d.sync += [running.eq(1), self.scanned.eq(1)]
                m.next = "SCAN"
            with m.State("SCAN"):
                m.d.comb += self.busy.eq(1)
                with m.If(dec.error != EntropyError.NONE):
                    # blocks already decoded would still come out as pixels and lanes (into
                    # the next job): a start empties every stage of both
                    m.d.comb += [dec.start.eq(1), flush.eq(1)]
                    m.d.sync += drain.eq(1)
                    m.next = "DRAIN"
                with m.Elif(dec.done & ~post.busy & ~post.i_pixel.valid):
                    m.d.sync += drain.eq(1)     # bytes after the scan's end marker: dropped
                    m.next = "TAIL"
            with m.State("TAIL"):
                m.d.comb += self.busy.eq(1)
                with m.If(bits_done | (self.i_bits.valid & self.i_bits.payload.last)):
                    m.d.sync += [self.done.eq(1), running.eq(0)]
                    m.next = "IDLE"
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                with m.If(bits_done | (self.i_bits.valid & self.i_bits.payload.last)):
                    m.d.sync += [self.error.eq(1), running.eq(0)]
                    m.next = "IDLE"
        return m
