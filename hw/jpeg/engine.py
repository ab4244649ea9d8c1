"""DECODE's engine: the command processor's side of the codec wrapper, minus the processor.

:class:`DecodeEngine` wraps :class:`.job.DecodeJob` in what a LOAD-stage engine sees: the
descriptor's fields (:class:`~s4accel.hw.cmd.descriptors.DecodeBody`), the DMA read data of
two transfers as bus words, and ACT writes out. The command processor (``_decode_engine`` in
``hw/cmd/processor.py``) issues the table block's transfer (``TABLE_BLOCK_BYTES`` bytes from
``table_addr``), then, once ``block_ok`` rises, the bitstream's (``bits_len`` bytes from
``bits_addr`` rounded up to whole bus words); ``error`` without ``block_ok`` means the block
(or the crop) was refused and the bitstream's transfer must not be issued.

- ``i_block``, ``i_bits``: the transfers' words; the bytes of a word go out lowest first
  (a block word's rest is dropped at once when the table loader raises ``skip``: bytes it
  does not use, :class:`.tables.TableLoader`), the
  bitstream's bytes past ``bits_len`` are dropped, and ``last`` marks its byte ``bits_len - 1``
  for the decoder. Every word of a transfer is taken (a corrupt stream is drained), so the
  DMA's job completes.
- ``o_act``: one ACT write per output pixel, word ``act_addr + index`` (mod 2**16) of row
  memory ``lane``, its 32 bytes.
- ``done`` / ``error`` (``DECODE_ERROR``) as :class:`.job.DecodeJob`'s, once the bitstream's
  last word is taken; ``released`` (the next DECODE may start, Motion JPEG's overlap) and
  ``back_busy`` likewise.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...base import codec
from .job import DecodeJob, geometry_layout

__all__ = ["DecodeEngine", "engine_config_layout", "act_write_layout"]

engine_config_layout = data.StructLayout({
    "geometry": geometry_layout, "act_addr": 16, "lane": 4, "bits_len": 24,
})

act_write_layout = data.StructLayout({"addr": 16, "row": 4, "data": 256})


class DecodeEngine(wiring.Component):
    """Members
    -------
    config : In(engine_config_layout)
        Stable from ``start`` until ``done`` or ``error``.
    start : In(1)
    i_block, i_bits : In(stream.Signature({"data": bus_bits, "last": 1}))
    o_act : Out(stream.Signature(act_write_layout))
    block_ok, busy, done, error : Out(1)
    released, back_busy : Out(1)
        :class:`.job.DecodeJob`'s: once ``released`` rises (the bitstream's last word taken,
        the scan ended) the next job may ``start`` while this one's last lanes still go out
        (``back_busy``); its table block is read meanwhile, and its verdict (``block_ok`` or
        ``error``) comes once they are all out. ``o_act``'s address and row are the
        configuration's at the scan's start.
    """

    def __init__(self, *, bus_bits: int, max_width: int = codec.MAX_WIDTH,
                 max_out_w: int = codec.MAX_OUT_W):
        if bus_bits % 8 or codec.TABLE_BLOCK_BYTES % (bus_bits // 8):
            raise ValueError(f"a {bus_bits}-bit bus does not divide the table block")
        self._bus_bits, self._max_width, self._max_out_w = bus_bits, max_width, max_out_w
        word = data.StructLayout({"data": bus_bits, "last": 1})
        super().__init__({
            "config": In(engine_config_layout), "start": In(1),
            "i_block": In(stream.Signature(word)), "i_bits": In(stream.Signature(word)),
            "o_act": Out(stream.Signature(act_write_layout)),
            "block_ok": Out(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "released": Out(1), "back_busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        nb = self._bus_bits // 8
        cfg = self.config
        m.submodules.job = job = DecodeJob(max_width=self._max_width,
                                           max_out_w=self._max_out_w, word_bytes=nb)
        m.d.comb += [job.geometry.eq(cfg.geometry), job.start.eq(self.start)]

        # -- the block: words -> bytes ---------------------------------------------------------
        bw = Signal(self._bus_bits)
        bk = Signal(range(nb + 1))          # bytes of ``bw`` still to send
        # the loader's skip: the rest of the word is bytes it does not use, dropped at once
        drop = (bk != 0) & job.block_skip
        m.d.comb += [job.i_block.payload.eq(bw[:8]), job.i_block.valid.eq(bk != 0),
                     self.i_block.ready.eq((bk == 0) | ((bk == 1) & job.i_block.ready) | drop)]
        with m.If(job.i_block.valid & job.i_block.ready):
            m.d.sync += [bw.eq(bw >> 8), bk.eq(bk - 1)]
        with m.If(drop):
            m.d.sync += bk.eq(0)
        with m.If(self.i_block.valid & self.i_block.ready):
            m.d.sync += [bw.eq(self.i_block.payload.data), bk.eq(nb)]

        # -- the bitstream: words -> bytes, cut at bits_len ----------------------------------------
        sw = Signal(self._bus_bits)
        sk = Signal(range(nb + 1))
        sent = Signal(24)                   # bitstream bytes sent so far
        # padding past bits_len (``sent >= bits_len``, a register kept with ``sent``: the
        # unpacker's handshake starts from flip-flops, not a 24-bit compare)
        drop = Signal()
        # the byte at ``sent`` is the last one (``sent == bits_len - 1``): a register kept
        # with ``sent`` as ``drop`` is, compared before the step with ``bits_len - 2`` (a
        # register), so the job's ``last`` handshake starts from a flip-flop, not an adder
        # and a 24-bit equality
        is_last = Signal()
        bl_m2 = Signal(signed(len(cfg.bits_len) + 2))
        m.d.sync += bl_m2.eq(cfg.bits_len - 2)
        m.d.comb += [job.i_bits.payload.data.eq(sw[:8]),
                     job.i_bits.payload.last.eq(is_last),
                     job.i_bits.valid.eq((sk != 0) & ~drop)]
        step = (sk != 0) & (drop | job.i_bits.ready)
        m.d.comb += self.i_bits.ready.eq((sk == 0) | ((sk == 1) & step))
        with m.If(step):
            m.d.sync += [sw.eq(sw >> 8), sk.eq(sk - 1), sent.eq(sent + 1),
                         drop.eq(sent + 1 >= cfg.bits_len), is_last.eq(sent == bl_m2)]
        with m.If(self.i_bits.valid & self.i_bits.ready):
            m.d.sync += [sw.eq(self.i_bits.payload.data), sk.eq(nb)]
        bits_end = Signal()                 # the bitstream transfer's last word was taken
        with m.If(self.i_bits.valid & self.i_bits.ready & self.i_bits.payload.last):
            m.d.sync += bits_end.eq(1)

        # -- ACT writes (the started scan's address and row memory: the next job's
        # configuration arrives while its last lanes go out) ----------------------------------
        act_addr = Signal.like(cfg.act_addr)
        lane = Signal.like(cfg.lane)
        with m.If(job.go):
            m.d.sync += [act_addr.eq(cfg.act_addr), lane.eq(cfg.lane)]
        m.d.comb += [self.o_act.valid.eq(job.o_lane.valid),
                     self.o_act.payload.addr.eq(act_addr + job.o_lane.payload.index),
                     self.o_act.payload.row.eq(lane),
                     self.o_act.payload.data.eq(job.o_lane.payload.data),
                     job.o_lane.ready.eq(self.o_act.ready)]

        # -- status ----------------------------------------------------------------------------
        m.d.comb += self.block_ok.eq(job.scanned)
        end = (bits_end | ~self.block_ok) & (sk == 0)
        m.d.comb += [self.done.eq(job.done & end), self.error.eq(job.error & end),
                     self.released.eq(job.released & end), self.back_busy.eq(job.back_busy)]
        active = Signal()
        m.d.comb += self.busy.eq(active & ~self.done & ~self.error)
        with m.If(self.start):
            m.d.sync += [bk.eq(0), sk.eq(0), sent.eq(0), drop.eq(cfg.bits_len == 0),
                         is_last.eq(cfg.bits_len == 1),
                         bits_end.eq(0), active.eq(1)]
        with m.Elif(self.done | self.error):
            m.d.sync += active.eq(0)
        return m
