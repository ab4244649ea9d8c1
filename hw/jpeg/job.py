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

Motion JPEG's overlap: once the scan has ended and the bitstream's last byte is taken
(``released``) the next job may ``start`` while this one's last MCU row still goes through the
IDCT, the colour stage and the post-processing (``back_busy``). The next block's Huffman
tables are written at once (the entropy decoder has finished), its quantizers once the IDCT
has taken the scan's last coefficient, and its verdict (the decoder's start, or ``error``)
waits until the lanes before are all out; the decoder's and the post-processing's
configuration, and the geometry, are latched when a scan starts (``go``).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..bus.slice import RegSlice, SkidSlice
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
    released : Out(1)
        The scan has ended and the bitstream's last byte was taken (until ``start``): the
        next job may start although this one's last pixels are still to come (``done``
        follows once they are out).
    back_busy : Out(1)
        Pixels or lanes of the scan started last are still to come (from ``go`` on).
    go : Out(1)
        Pulse: the decoder starts the scan (the geometry is read then and the lanes that
        follow are this job's).
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
    released: Out(1)
    back_busy: Out(1)
    go: Out(1)

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
        # a register slice between the colour stage and the post-processing: the pixel's
        # valid and payload reach the post-processing's take (which enables most of its
        # registers) from flip-flops of their own, not across the chip from the colour stage
        # (seeds 2 and 3 of q27: 9.1 to 9.6 ns of routing on that path); one cycle later
        m.submodules.px_slice = px_slice = RegSlice(dec.o_pixel.payload.shape())
        wiring.connect(m, producer=dec.o_pixel, consumer=px_slice.i)
        wiring.connect(m, producer=px_slice.o, consumer=post.i_pixel)
        wiring.connect(m, producer=post.o_lane, consumer=wiring.flipped(self.o_lane))
        g = self.geometry
        # the decoder's configuration changes only when it starts (the loader's registers
        # change while a block is read), and so does the post-processing's (the next job's
        # block and geometry arrive while this one's last pixels are still on their way)
        dec_cfg = Signal.like(tl.config)
        post_cfg = Signal.like(post.config)
        # a pulse from a flip-flop (it reaches most of the decoder's and the post-processing's
        # stages): they start at GO, and they are emptied a cycle after a corrupt stream's
        # error (their last cycle's lanes are the failed job's own)
        start = Signal()
        m.d.sync += start.eq(0)
        m.d.comb += [dec.config.eq(dec_cfg), dec.start.eq(start), post.start.eq(start),
                     px_slice.clear.eq(start),
                     tl.start.eq(self.start), post.config.eq(post_cfg)]
        latch = [dec_cfg.eq(tl.config),          # (in the cycle before GO)
                 post_cfg.crop_x.eq(g.crop_x), post_cfg.crop_y.eq(g.crop_y),
                 post_cfg.crop_w.eq(g.crop_w), post_cfg.crop_h.eq(g.crop_h),
                 post_cfg.out_w.eq(g.out_w), post_cfg.out_h.eq(g.out_h),
                 post_cfg.grey.eq(tl.grey), post_cfg.norm.eq(tl.norm)]

        # the back end: the started scan's pixels and lanes still to come (from GO until the
        # decoder and the post-processing are empty; the next job's tables may be loading)
        back_drained = (dec.done & ~post.busy & ~dec.o_pixel.valid & ~px_slice.o.valid
                        & px_slice.i.ready)
        with m.If(self.go):
            m.d.sync += self.back_busy.eq(1)
        with m.Elif(back_drained):
            m.d.sync += self.back_busy.eq(0)
        # the next job's quantizers wait until the IDCT has taken the last coefficient of the
        # scan before (its Huffman tables only for the scan's end: ``start`` comes after it)
        # A skid register between them: the loader's ready (and so the block's word unpacker)
        # does not wait on the entropy decoder's state through ``qt_free``; the same cycles
        # whenever the writes may go, one write more held when they may not.
        qt_free = ~self.back_busy | dec.scan_drained
        m.submodules.qt_skid = qt_skid = SkidSlice(tl.o_qt.payload.shape())
        wiring.connect(m, producer=tl.o_qt, consumer=qt_skid.i)
        m.d.comb += [dec.i_qt.valid.eq(qt_skid.o.valid & qt_free),
                     dec.i_qt.payload.eq(qt_skid.o.payload),
                     qt_skid.o.ready.eq(dec.i_qt.ready & qt_free),
                     qt_skid.clear.eq(self.start)]

        running = Signal()       # the decoder has been started
        m.d.comb += self.scanning.eq(running)
        drain = Signal()         # a corrupt stream, or the scan has ended: drop the rest
        bits_done = Signal()     # the bitstream's last byte was taken
        m.d.comb += [dec.i_data.payload.eq(self.i_bits.payload),
                     dec.i_data.valid.eq(self.i_bits.valid & running & ~drain & ~bits_done),
                     self.i_bits.ready.eq(running & ~bits_done & (drain | dec.i_data.ready))]
        with m.If(self.i_bits.valid & self.i_bits.ready & self.i_bits.payload.last):
            m.d.sync += bits_done.eq(1)
        # the crop outside the image: a register (the adders and compares are not on the
        # path into the latch's enables); the image's size is in the block's bytes 8 to 11
        # and the geometry is written before ``start``, so it holds long before the
        # block's last byte and the verdict
        outside = Signal()
        img = tl.config.image
        m.d.sync += outside.eq((g.crop_x + g.crop_w > img.width)
                               | (g.crop_y + g.crop_h > img.height))
        # done: released and the lanes all out (a register, as ``released`` is)
        m.d.sync += self.done.eq(self.released & ~self.back_busy & ~self.start)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.error.eq(0), running.eq(0),
                                 drain.eq(0), bits_done.eq(0), self.scanned.eq(0),
                                 self.released.eq(0)]
                    m.next = "TABLES"
            with m.State("TABLES"):
                m.d.comb += self.busy.eq(1)
                # the last table write leaves the loader the cycle after done rises; the
                # verdict waits for the job before to have written its last lane, so that
                # job ends first
                with m.If(tl.done & ~tl.o_table.valid & ~qt_skid.o.valid & ~self.back_busy):
                    with m.If(tl.error | outside):
                        m.d.sync += self.error.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [*latch, start.eq(1)]
                        m.next = "GO"
            with m.State("GO"):
                m.d.comb += [self.busy.eq(1), self.go.eq(1)]
                m.d.sync += [running.eq(1), self.scanned.eq(1)]
                m.next = "SCAN"
            with m.State("SCAN"):
                m.d.comb += self.busy.eq(1)
                with m.If(dec.error != EntropyError.NONE):
                    # blocks already decoded would still come out as pixels and lanes (into
                    # the next job): a start, the next cycle, empties every stage of both
                    m.d.sync += [start.eq(1), drain.eq(1), self.back_busy.eq(0)]
                    m.next = "DRAIN"
                with m.Elif(dec.scan_done):
                    m.d.sync += drain.eq(1)     # bytes after the scan's end marker: dropped
                    m.next = "TAIL"
            with m.State("TAIL"):
                m.d.comb += self.busy.eq(1)
                with m.If(bits_done | (self.i_bits.valid & self.i_bits.payload.last)):
                    m.d.sync += [self.released.eq(1), running.eq(0)]
                    m.next = "IDLE"
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                with m.If(bits_done | (self.i_bits.valid & self.i_bits.payload.last)):
                    m.d.sync += [self.error.eq(1), running.eq(0)]
                    m.next = "IDLE"
        return m
