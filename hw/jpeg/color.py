"""JPEG colour stage: IDCT rows in, RGB pixels out in raster order.

Bit for bit :func:`s4accel.base.jpeg.upsample_fancy` followed by
:func:`s4accel.base.jpeg.ycc_to_rgb` (libjpeg-turbo's jdsample.c "fancy" triangle filters and
jdcolor.c's fixed-point tables), for grey, 4:4:4, 4:2:2 and 4:2:0 images of any size.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..bus.slice import SkidSlice
from ..core.dsp import registered_product
from .idct import row_layout

__all__ = ["ColorConverter", "Sampling", "color_config_layout", "pixel_layout", "sampling_of"]


class Sampling(enum.Enum, shape=2):
    """The image's component layout (luma blocks per MCU; chroma is 1x1 in every mode)."""
    GREY = 0  #: one component, 8x8 MCU
    S444 = 1  #: Y, Cb, Cr 1x1 each, 8x8 MCU
    S422 = 2  #: Y 2x1, 16x8 MCU
    S420 = 3  #: Y 2x2, 16x16 MCU


def sampling_of(tables) -> Sampling:
    """The :class:`Sampling` of parsed :class:`s4accel.base.jpeg.JpegTables`."""
    return {"grey": Sampling.GREY, "4:4:4": Sampling.S444, "4:2:2": Sampling.S422,
            "4:2:0": Sampling.S420}[tables.sampling]


#: Image configuration, stable from ``start`` until ``done``. ``ycc`` 1: convert YCbCr to RGB
#: (JFIF); 0: the three planes are R, G, B already (an Adobe transform-0 or "RGB"-id file)
#: and pass through upsampled but unconverted. Grey images ignore it.
color_config_layout = data.StructLayout({
    "sampling": Sampling, "width": 16, "height": 16, "ycc": 1,
})

#: One output pixel; grey images give ``r == g == b``. ``row_last`` on the last pixel of each
#: row, ``last`` on the image's last pixel.
pixel_layout = data.StructLayout({"r": 8, "g": 8, "b": 8, "row_last": 1, "last": 1})

# line ring sizes: two MCU rows plus two lines (see ColorConverter)
_NY_V1, _NY_V2, _NC = 18, 34, 18


# jdcolor.c's constants: round(x * 2**16)
_CR_R, _CB_B, _CR_G, _CB_G = (int(x * 65536 + 0.5) for x in (1.40200, 1.77200, 0.71414,
                                                              0.34414))

_col_layout = data.StructLayout({
    "cb": 10, "cr": 10, "first": 1, "last": 1, "solo": 1,
})
_luma_layout = data.StructLayout({"y": 8, "row_last": 1, "last": 1})
_chroma_layout = data.StructLayout({"cb": 8, "cr": 8})


class ColorConverter(wiring.Component):
    """Upsampling and YCbCr -> RGB of one image: the IDCT's rows of 8 samples in, one RGB
    pixel per transfer out, in raster order.

    Input contract: ``i_row`` carries the :class:`.idct.Idct` output of one interleaved scan
    (or the single component of a grey image), block after block in scan order: MCU after MCU
    left to right, MCU row after MCU row, inside an MCU the luma blocks row by row, then Cb,
    then Cr, each block as its 8 rows in order (``row``, ``last`` on row 7); ``comp`` 0 is
    luma, 1 Cb, 2 Cr, ``slot`` the block's index in the MCU. Padding blocks right of and below
    the image are written like any other and never read. ``config`` is stable from ``start``
    (a pulse, which also empties the stage) until ``done``; ``width`` at most ``max_width``.

    Output contract: ``width * height`` pixels, row after row, left to right; grey images give
    ``r == g == b == Y``. Chroma is upsampled as libjpeg-turbo does by default: nothing in
    4:4:4; in 4:2:2 the h2v1 triangle filter ``(3 * near + far + 1 or 2) >> 2``; in 4:2:0 the
    h2v2 filter on vertical sums ``3 * near + far`` with biases 8 and 7; the image's (not the
    padded plane's) first and last chroma rows and columns are replicated for the missing
    neighbour; a chroma plane at most 2 samples wide is replicated (box), not filtered, both
    ways. ``done`` rises after the ``last`` pixel's transfer and stays until ``start``.

    Buffering: each component's rows go to a ring of lines in on-chip memory (8 samples a
    word, a word per input transfer): luma 34 lines for 4:2:0, else 18; chroma 18 lines, Cb
    and Cr side by side in one word, even and odd lines in two banks. Reading an output row
    needs its luma line and, in 4:2:0, the chroma line below it, so output row ``y`` starts
    once the MCU rows holding line ``y + 1`` (4:2:0) or ``y`` are complete (or all are; the
    readers see it a cycle later: registered compares); an MCU row's input is accepted once
    the rows it overwrites have been read. Two MCU rows plus two lines let the input run a
    whole MCU row ahead of the output without either waiting on the other. Memory: 34 x
    ``max_width`` bytes luma, 36 x ``max_width`` chroma. The luma ring is split into banks of
    whole lines, at most 1024 words each, whose read data is registered before the banks'
    multiplexer (no block RAM multiplexer after the block RAMs' slow data out); the luma
    reader reads up to 4 words ahead into a queue, the chroma reader registers its words
    before the vertical sums.

    Throughput: one pixel per cycle, from the end of the first MCU row's input to the last
    pixel, as long as rows arrive in time (rows follow each other without a bubble, at any
    width); an input row is taken per cycle whenever its MCU row may be written. (Images a
    few pixels wide are bound by the input instead: an MCU row carries up to 48 input rows
    per 16 pixels of a 1-wide 4:2:0 image.) ``width`` and ``height`` are at least 1.

    Members
    -------
    i_row : In(stream.Signature(row_layout))
    o_pixel : Out(stream.Signature(pixel_layout))
    config : In(color_config_layout)
    start : In(1)
    busy, done : Out(1)
    """

    i_row: In(stream.Signature(row_layout))
    o_pixel: Out(stream.Signature(pixel_layout))
    config: In(color_config_layout)
    start: In(1)
    busy: Out(1)
    done: Out(1)

    def __init__(self, *, max_width: int = 2048):
        if not (isinstance(max_width, int) and 16 <= max_width <= 65536
                and max_width & (max_width - 1) == 0):
            raise ValueError("max_width must be a power of two from 16 to 65536, not "
                             f"{max_width!r}")
        self._max_width = max_width
        super().__init__()

    @property
    def max_width(self) -> int:
        return self._max_width

    def elaborate(self, platform):
        m = Module()
        wpl = self._max_width // 8        # words per line
        wb = wpl.bit_length() - 1         # word column bits
        cfg = self.config
        # ---- derived image geometry, registered: the configuration is stable from ``start``
        # and these are used from the cycle after it (``start`` itself takes the line counts
        # from the configuration)
        grey_c = cfg.sampling == Sampling.GREY
        h2_c = (cfg.sampling == Sampling.S422) | (cfg.sampling == Sampling.S420)
        v2_c = cfg.sampling == Sampling.S420
        ly_c = Mux(v2_c, 16, 8)
        ny_c = Mux(v2_c, _NY_V2, _NY_V1)
        mcus_x_c = Mux(h2_c, (cfg.width + 15) >> 4, (cfg.width + 7) >> 3)
        cw_c = Mux(h2_c, (cfg.width + 1) >> 1, cfg.width)
        blocks_c = Signal(4)
        with m.Switch(cfg.sampling):
            with m.Case(Sampling.GREY):
                m.d.comb += blocks_c.eq(1)
            with m.Case(Sampling.S444):
                m.d.comb += blocks_c.eq(3)
            with m.Case(Sampling.S422):
                m.d.comb += blocks_c.eq(4)
            with m.Case(Sampling.S420):
                m.d.comb += blocks_c.eq(6)
        W = Signal(16)
        H = Signal(16)
        h_1 = Signal(signed(17))     # H - 1
        grey, h2, v2 = Signal(), Signal(), Signal()
        cw = Signal(17)     # the chroma plane's width (the downsampled image, not padded)
        ch_1 = Signal(17)   # its height - 1
        mcus_x = Signal(16)
        mcus_y = Signal(16)
        blocks_1 = Signal(4)   # blocks per MCU - 1 (the MCU's last block's slot)
        ly = Signal(5)    # luma lines per MCU row
        ny = Signal(6)    # luma ring lines
        # a luma line's last word, its last sample; a chroma line's
        wl_y, wl_c = Signal(13), Signal(13)
        wl_y1, wl_c1 = Signal(13), Signal(13)     # and those less one
        nl_y, nl_c = Signal(3), Signal(3)
        # libjpeg-turbo filters only planes wider than 2 samples (jdsample.c jinit_upsampler)
        fancy_h = Signal()
        fancy_v = Signal()
        conv = Signal()   # convert YCbCr (grey takes the converting path: Cb = Cr = 128)
        m.d.sync += [
            W.eq(cfg.width), H.eq(cfg.height), h_1.eq(cfg.height - 1),
            grey.eq(grey_c), h2.eq(h2_c), v2.eq(v2_c),
            cw.eq(cw_c), ch_1.eq(Mux(v2_c, (cfg.height + 1) >> 1, cfg.height) - 1),
            mcus_x.eq(mcus_x_c),
            mcus_y.eq(Mux(v2_c, (cfg.height + 15) >> 4, (cfg.height + 7) >> 3)),
            blocks_1.eq(blocks_c - 1), ly.eq(ly_c), ny.eq(ny_c),
            wl_y.eq((cfg.width - 1) >> 3), wl_c.eq((cw_c - 1) >> 3),
            wl_y1.eq(((cfg.width - 1) >> 3) - 1), wl_c1.eq(((cw_c - 1) >> 3) - 1),
            nl_y.eq(cfg.width - 1), nl_c.eq(cw_c - 1),
            fancy_h.eq(h2_c & (cw_c > 2)), fancy_v.eq(v2_c & (cw_c > 2)),
            conv.eq(cfg.ycc | grey_c),
        ]

        running = Signal()
        done = Signal()
        m.d.comb += [self.busy.eq(running & ~done), self.done.eq(done)]

        # ---- line rings
        # luma: banks of at most 1024 words (a group of lines each), each bank's data out
        # registered before the banks' multiplexer (a DP16KD's data out comes 5.8 ns after the
        # clock on an ECP5; a deeper memory puts a multiplexer of its block RAMs there)
        lb = max(0, 10 - wb)                 # log2 of the lines of a bank
        n_lbanks = -(-_NY_V2 // (1 << lb))
        lbanks = []
        for k in range(n_lbanks):
            lines = min(1 << lb, _NY_V2 - (k << lb))
            mem = Memory(shape=64, depth=lines * wpl, init=[])
            m.submodules[f"luma{k}"] = mem
            lbanks.append(mem)
        # chroma: even / odd lines apart, so 4:2:0's two lines come in one cycle
        banks = []
        for b in range(2):
            mem = Memory(shape=128, depth=_NC // 2 * wpl, init=[])
            m.submodules[f"chroma{b}"] = mem
            banks.append(mem)
        ly_wr = [b.write_port() for b in lbanks]
        ly_rd = [b.read_port() for b in lbanks]
        c_wr = [b.write_port(granularity=64) for b in banks]
        c_rd = [b.read_port() for b in banks]

        # ---- writer: IDCT rows into the rings
        all_written = Signal()
        mcu_x = Signal(16)
        mcu_row = Signal(16)
        wy_base = Signal(range(_NY_V2))  # ring line of the MCU row's first luma line
        wc_base = Signal(range(_NC))     # ... and first chroma line (always even)
        # the luma lines of the complete MCU rows (``written``) as the readers compare them:
        # written - v2 and written - v2 - 1
        lw_v0 = Signal(signed(19))
        lw_v1 = Signal(signed(19))
        # The MCU row may overwrite lines read by the released output rows only: its lines
        # written + ly (``lw_need``) at most the output rows whose lines have all been read
        # (both readers' rows, ``min(fy, gy)``, one cycle before) plus the ring's lines:
        # ``lw_need - ny <= fy`` and ``<= gy``. A register (``room``), from the compares of
        # ``lw_need - ny`` and of its value after this MCU row with the readers' rows (no
        # adder behind the compares; the writer's handshake starts from a flip-flop)
        lw_room = Signal(signed(19))        # lw_need - ny
        lw_room_ly = Signal(signed(19))     # lw_need + ly - ny
        room = Signal()
        r = self.i_row.payload
        write_ok = running & ~all_written & room
        m.d.comb += self.i_row.ready.eq(write_ok)
        fire = self.i_row.valid & write_ok
        bx = Mux(h2, r.slot[0], 0)
        by = Mux(v2, r.slot[1], 0)
        yline = Signal(range(2 * _NY_V2))
        m.d.comb += yline.eq(wy_base + Cat(r.row, by))
        yslot = Mux(yline >= ny, yline - ny, yline)
        ycol = Mux(h2, Cat(bx, mcu_x), mcu_x)
        for k, wr in enumerate(ly_wr):
            m.d.comb += [wr.addr.eq(Cat(ycol[:wb], yslot[:lb])), wr.data.eq(r.pixels),
                         wr.en.eq(fire & (r.comp == 0) & ((yslot >> lb) == k))]
        cline = Signal(range(2 * _NC))
        m.d.comb += cline.eq(wc_base + r.row)
        cslot = Signal(range(_NC))
        m.d.comb += cslot.eq(Mux(cline >= _NC, cline - _NC, cline))
        for b in range(2):
            m.d.comb += [c_wr[b].addr.eq(Cat(mcu_x[:wb], cslot[1:])),
                         c_wr[b].data.eq(Cat(r.pixels, r.pixels))]
            with m.If(fire & (cslot[0] == b)):
                with m.If(r.comp == 1):
                    m.d.comb += c_wr[b].en.eq(0b01)
                with m.Elif(r.comp == 2):
                    m.d.comb += c_wr[b].en.eq(0b10)
        # the MCU's last block's last row: the MCU row's last MCU (``mcu_last``: ``mcu_x + 1 ==
        # mcus_x``, a register kept with mcu_x) moves the writer to the next MCU row
        mcu_last = Signal()
        row_adv = Signal()
        m.d.comb += row_adv.eq(fire & r.last & (r.slot == blocks_1) & mcu_last)
        with m.If(fire & r.last & (r.slot == blocks_1)):
            with m.If(mcu_last):
                ynext = wy_base + ly
                cnext = wc_base + 8
                m.d.sync += [mcu_x.eq(0), mcu_last.eq(mcus_x == 1), mcu_row.eq(mcu_row + 1),
                             lw_room.eq(lw_room_ly), lw_room_ly.eq(lw_room_ly + ly),
                             lw_v0.eq(lw_v0 + ly),
                             lw_v1.eq(lw_v1 + ly),
                             wy_base.eq(Mux(ynext >= ny, ynext - ny, ynext)),
                             wc_base.eq(Mux(cnext >= _NC, cnext - _NC, cnext))]
                with m.If(mcu_row + 1 == mcus_y):
                    m.d.sync += all_written.eq(1)
            with m.Else():
                m.d.sync += [mcu_x.eq(mcu_x + 1), mcu_last.eq(mcu_x + 2 == mcus_x)]

        def row_ready(y, moved, name):
            """Output row `y` (a reader's row register) may be read: it is in the image and its
            lines are written (luma line y and, in 4:2:0, chroma line (y + 1) / 2). A register
            (no compare on the reader's paths): computed for y and y + 1 from the previous
            cycle's state, picked by `moved` (a register: y moved on at that cycle's end), so
            a row's lines count as written a cycle after they are."""
            now, nxt = Signal(name=f"{name}_ok0"), Signal(name=f"{name}_ok1")
            m.d.sync += [now.eq((y < H) & (all_written | (lw_v0 > y))),
                         nxt.eq((y < h_1) & (all_written | (lw_v1 > y)))]
            with m.If(self.start):
                m.d.sync += [now.eq(0), nxt.eq(0)]
            return Mux(moved, nxt, now)

        # ---- luma reader: words of 8 samples, read ahead into a queue of 4 words
        luma_s = stream.Signature(_luma_layout).create(path=("luma",))
        fy = Signal(17)
        fj = Signal(16)
        fslot = Signal(range(_NY_V2))
        cur = Signal(64)
        cur_v = Signal()
        cur_p = Signal(3)
        cur_n = Signal(3)
        cur_eol = Signal()
        cur_eoi = Signal()
        adv = ~luma_s.valid | luma_s.ready
        at_end = cur_p == cur_n
        # a read word's place: valid, last sample, end of line, end of image; in the read port
        # (``l1``), then with the word registered (``l2``, always: a DP16KD's data out comes
        # 5.8 ns after the clock on an ECP5 and goes through the banks' multiplexer), then in
        # the queue (LUT RAM), whence it moves to `cur` as `cur`'s last sample goes out. A word
        # is read while fewer than 4 are between the read and `cur` (a counter), so the queue
        # never overflows and a new word is read every cycle if need be (one-sample words of
        # a 1-wide image)
        lword = data.StructLayout({"v": 1, "n": 3, "eol": 1, "eoi": 1,
                                   "bank": max(1, (n_lbanks - 1).bit_length())})
        l1 = Signal(lword)
        l2 = Signal(lword)
        l2_data = Signal(64)
        m.submodules.luma_q = lq = Memory(shape=64 + 5, depth=4, init=[])
        lq_w = lq.write_port()
        lq_r = lq.read_port(domain="comb")
        lq_wp = Signal(3)
        lq_rp = Signal(3)
        l_inflight = Signal(range(5))       # words read and not yet moved to `cur`
        consume = (lq_wp != lq_rp) & (~cur_v | (adv & at_end))
        fy_moved = Signal()
        fetch = running & row_ready(fy, fy_moved, "fy") & ~l_inflight[2]
        # the line's last word (``fj == wl_y``): a register kept with ``fj``, so the fetch's
        # enables (row, slot, column) start from flip-flops instead of a 16-bit compare
        eol = Signal()
        m.d.sync += fy_moved.eq(fetch & eol)
        for rd in ly_rd:
            m.d.comb += [rd.addr.eq(Cat(fj[:wb], fslot[:lb])), rd.en.eq(fetch)]
        m.d.sync += l_inflight.eq(l_inflight + fetch - consume)
        l2_bank = [Signal(64, name=f"l2_data{k}") for k in range(n_lbanks)]
        m.d.sync += [l1.v.eq(fetch), l1.bank.eq(fslot >> lb), l2.eq(l1),
                     *(d.eq(rd.data) for d, rd in zip(l2_bank, ly_rd, strict=True))]
        m.d.comb += l2_data.eq(Array(l2_bank)[l2.bank])
        with m.If(fetch):
            m.d.sync += [l1.n.eq(Mux(eol, nl_y, 7)), l1.eol.eq(eol),
                         l1.eoi.eq(eol & (fy == h_1))]
            with m.If(eol):
                m.d.sync += [fj.eq(0), eol.eq(wl_y == 0), fy.eq(fy + 1),
                             fslot.eq(Mux(fslot + 1 == ny, 0, fslot + 1))]
            with m.Else():
                m.d.sync += [fj.eq(fj + 1), eol.eq(fj == wl_y1)]
        m.d.comb += [lq_w.addr.eq(lq_wp[:2]), lq_w.en.eq(l2.v),
                     lq_w.data.eq(Cat(l2_data, l2.n, l2.eol, l2.eoi)), lq_r.addr.eq(lq_rp[:2])]
        with m.If(l2.v):
            m.d.sync += lq_wp.eq(lq_wp + 1)
        with m.If(adv):
            m.d.sync += luma_s.valid.eq(cur_v)
            with m.If(cur_v):
                m.d.sync += [luma_s.payload.y.eq(cur.word_select(cur_p, 8)),
                             luma_s.payload.row_last.eq(cur_eol & at_end),
                             luma_s.payload.last.eq(cur_eoi & at_end), cur_p.eq(cur_p + 1)]
                with m.If(at_end):
                    m.d.sync += cur_v.eq(0)
        with m.If(consume):
            m.d.sync += [cur.eq(lq_r.data[:64]), cur_v.eq(1), cur_p.eq(0),
                         cur_n.eq(lq_r.data[64:67]), cur_eol.eq(lq_r.data[67]),
                         cur_eoi.eq(lq_r.data[68]), lq_rp.eq(lq_rp + 1)]

        # ---- chroma reader: vertical sums of 8 columns of Cb and Cr from the near and far
        # lines of the output row, then one column per transfer
        col_s = stream.Signature(_col_layout).create(path=("col",))
        gy = Signal(17)             # output row
        gj = Signal(16)
        near = Signal(range(_NC))   # ring line of the near chroma line (gy >> v2)
        cidx = Signal(17)           # its index in the plane
        odd_row = gy[0]
        # the far line: above for even output rows of 4:2:0, below for odd ones; the plane's
        # first and last lines stand in for the missing ones (jdsample.c's context rows)
        far_is_near = ~fancy_v | Mux(odd_row, cidx >= ch_1, cidx == 0)
        far = Mux(odd_row, Mux(near == _NC - 1, 0, near + 1), Mux(near == 0, _NC - 1, near - 1))
        # a fetched word's place: valid, last column, end of line, first word, far line is
        # the near one, parity of the near line; in the read port (``cn``), then with the
        # words registered (``cm``)
        cword = data.StructLayout({"v": 1, "n": 3, "eol": 1, "first": 1, "fin": 1, "par": 1})
        cn = Signal(cword)
        cc = [Signal(10, name=f"cs{i}") for i in range(16)]  # Cb 0..7, Cr 8..15
        cc_v = Signal()
        cc_p = Signal(3)
        cc_n = Signal(3)
        cc_eol = Signal()
        cc_first = Signal()
        cadv = ~col_s.valid | col_s.ready
        c_end = cc_p == cc_n
        # the block RAM words are registered (``cm``) before the sums: a DP16KD's data out
        # comes 5.8 ns after the clock on an ECP5
        cm = Signal(cword)
        cm_data = [Signal(len(c_rd[b].data), name=f"cm_data{b}") for b in range(2)]
        cconsume = cm.v & (~cc_v | (cadv & c_end))
        cmove = cn.v & (~cm.v | cconsume)
        gy_moved = Signal()
        # (a fetch needs the read port or the word register empty now, not whether a word
        # moves on this cycle: the upsampler's and the conversion's handshakes do not reach
        # the fetch: with both full it refills the port a cycle after a word moves on)
        cfetch = running & ~grey & row_ready(gy, gy_moved, "gy") & (~cn.v | ~cm.v)
        ceol = Signal()          # ``gj == wl_c``, a register kept with ``gj`` (as ``eol``)
        m.d.sync += gy_moved.eq(cfetch & ceol)
        par = near[0]
        for b in range(2):
            sel = Mux(par == b, near, far)
            m.d.comb += [c_rd[b].addr.eq(Cat(gj[:wb], sel[1:])), c_rd[b].en.eq(cfetch)]
        with m.If(cfetch):
            m.d.sync += [cn.v.eq(1), cn.n.eq(Mux(ceol, nl_c, 7)), cn.eol.eq(ceol),
                         cn.first.eq(gj == 0), cn.fin.eq(far_is_near), cn.par.eq(par)]
            with m.If(ceol):
                m.d.sync += [gj.eq(0), ceol.eq(wl_c == 0), gy.eq(gy + 1)]
                # 4:2:0 moves to the next chroma line after odd output rows only
                with m.If(~v2 | odd_row):
                    m.d.sync += [cidx.eq(cidx + 1), near.eq(Mux(near == _NC - 1, 0, near + 1))]
            with m.Else():
                m.d.sync += [gj.eq(gj + 1), ceol.eq(gj == wl_c1)]
        with m.Elif(cmove):
            m.d.sync += cn.v.eq(0)
        with m.If(cmove):
            m.d.sync += [cm.eq(cn), *(cm_data[b].eq(c_rd[b].data) for b in range(2))]
        with m.Elif(cconsume):
            m.d.sync += cm.v.eq(0)
        near_w = Mux(cm.par, cm_data[1], cm_data[0])
        far_w = Mux(cm.fin, near_w, Mux(cm.par, cm_data[0], cm_data[1]))
        with m.If(cadv):
            m.d.sync += col_s.valid.eq(cc_v)
            with m.If(cc_v):
                p = col_s.payload
                m.d.sync += [p.cb.eq(Array(cc[:8])[cc_p]), p.cr.eq(Array(cc[8:])[cc_p]),
                             p.first.eq(cc_first & (cc_p == 0)), p.last.eq(cc_eol & c_end),
                             # the last column of an odd-width 4:2:x row makes one pixel
                             p.solo.eq(cc_eol & c_end & h2 & W[0]), cc_p.eq(cc_p + 1)]
                with m.If(c_end):
                    m.d.sync += cc_v.eq(0)
        with m.If(cconsume):
            m.d.sync += [cc_v.eq(1), cc_p.eq(0), cc_n.eq(cm.n), cc_eol.eq(cm.eol),
                         cc_first.eq(cm.first)]
            for i in range(16):
                n = near_w.word_select(i, 8)
                f = far_w.word_select(i, 8)
                # 3 * n as a shift and an add: yosys would map a product by a constant to a
                # DSP multiplier (18 of them in this stage on an ECP5)
                m.d.sync += cc[i].eq(Mux(fancy_v, (n << 1) + n + f, n << 2))

        # ---- horizontal filter: out = (3 * A + B + bias) >> 4 on column sums, so that one
        # adder serves every mode (h2v1 and the unfiltered modes use sums of 4 * sample)
        # (the columns through a skid register: the chroma reader's ready is a flip-flop, so
        # the filter's take does not run back into the reader's fetch)
        m.submodules.col_skid = c_sk = SkidSlice(_col_layout)
        wiring.connect(m, col_s, c_sk.i)
        m.d.comb += c_sk.clear.eq(self.start)
        col = c_sk.o
        up_s = stream.Signature(_chroma_layout).create(path=("up",))
        odd = Signal()               # next pixel is the right one of its chroma column
        r1 = Signal(20)              # the last column taken: Cat(cb, cr)
        r1_last = Signal()
        uadv = ~up_s.valid | up_s.ready
        head = Cat(col.payload.cb, col.payload.cr)
        take = Signal()
        emit = Signal()
        a = Signal(20)
        bsel = Signal(20)
        with m.If(~h2 | ~odd):
            # 4:4:4, or the left pixel of a column: takes the column
            m.d.comb += [take.eq(uadv & col.valid), emit.eq(take), a.eq(head),
                         bsel.eq(Mux(fancy_h & ~col.payload.first, r1, head))]
        with m.Elif(fancy_h & ~r1_last):
            # the right pixel needs the next column, looked at but not taken
            m.d.comb += [emit.eq(uadv & col.valid), a.eq(r1), bsel.eq(head)]
        with m.Else():
            m.d.comb += [emit.eq(uadv), a.eq(r1), bsel.eq(r1)]
        m.d.comb += col.ready.eq(take)
        with m.If(take):
            m.d.sync += [r1.eq(head), r1_last.eq(col.payload.last),
                         odd.eq(h2 & ~col.payload.solo)]
        with m.Elif(emit):
            m.d.sync += odd.eq(0)
        bias = Mux(fancy_v, Mux(odd, 7, 8), Mux(odd, 8, 4))
        with m.If(uadv):
            m.d.sync += up_s.valid.eq(emit)
        with m.If(emit):
            for k, name in enumerate(("cb", "cr")):
                ak = a[10 * k:10 * k + 10]
                s = (ak << 1) + ak + bsel[10 * k:10 * k + 10] + bias
                m.d.sync += getattr(up_s.payload, name).eq(s[4:12])

        # ---- colour conversion: jdcolor.c ycc_rgb_convert, products in registered multipliers
        # The stage moves while its skid register is empty (``en``, a register's value: the
        # output's ready does not reach back into the stage); a pixel the output cannot take
        # when it leaves the stage waits in the skid register, and the stage stops until it
        # has gone out.
        # Both inputs come through skid registers (``SkidSlice``: no latency, the readers'
        # ``ready`` a flip-flop), so the stage's take decision does not run back into the
        # luma reader's word handling or through the upsampler into the chroma reader
        o = self.o_pixel
        m.submodules.luma_skid = l_sk = SkidSlice(_luma_layout)
        m.submodules.up_skid = u_sk = SkidSlice(_chroma_layout)
        wiring.connect(m, luma_s, l_sk.i)
        wiring.connect(m, up_s, u_sk.i)
        m.d.comb += [l_sk.clear.eq(self.start), u_sk.clear.eq(self.start)]
        lum, up = l_sk.o, u_sk.o
        skid_v = Signal()
        skid = Signal.like(o.payload)
        en = ~skid_v
        in_v = lum.valid & (grey | up.valid)
        tk = en & in_v
        m.d.comb += [lum.ready.eq(tk), up.ready.eq(tk & ~grey)]
        cb0 = Mux(grey, 128, up.payload.cb)
        cr0 = Mux(grey, 128, up.payload.cr)
        dcb = Signal(signed(9))
        dcr = Signal(signed(9))
        m.d.comb += [dcb.eq(cb0 - 128), dcr.eq(cr0 - 128)]

        def product(x, c, name):
            return registered_product(m, x, Const(c, signed(18)), width=27, platform=platform,
                                      name=name, en_in=en, en_out=en)
        p_r = product(dcr, _CR_R, "p_cr_r")
        p_b = product(dcb, _CB_B, "p_cb_b")
        p_gr = product(dcr, -_CR_G, "p_cr_g")
        p_gb = product(dcb, -_CB_G, "p_cb_g")
        # the luma, flags and (for unconverted planes) the chroma, beside the products; the
        # products' rounded sums are registered before the luma is added and the result
        # clamped
        side = [Signal(26, name=f"side{i}") for i in range(3)]
        v = [Signal(name=f"v{i}") for i in range(3)]
        half = 1 << 15
        s_r, s_g, s_b = (Signal(signed(12), name=f"sum_{c}") for c in "rgb")
        with m.If(en):
            m.d.sync += [v[0].eq(tk), v[1].eq(v[0]), v[2].eq(v[1]),
                         side[0].eq(Cat(lum.payload.y, cb0, cr0, lum.payload.row_last,
                                        lum.payload.last)),
                         side[1].eq(side[0]), side[2].eq(side[1]),
                         s_r.eq((p_r + half) >> 16), s_g.eq((p_gr + p_gb + half) >> 16),
                         s_b.eq((p_b + half) >> 16)]
        y2, cb2, cr2 = side[2][:8], side[2][8:16], side[2][16:24]

        def clamp(x):
            return Mux(x < 0, 0, Mux(x > 255, 255, x[:8]))
        rr, gg, bb = y2 + s_r, y2 + s_g, y2 + s_b
        new = Signal.like(o.payload)            # the pixel leaving the stage (with ``v[2]``)
        m.d.comb += [new.r.eq(Mux(conv, clamp(rr), y2)), new.g.eq(Mux(conv, clamp(gg), cb2)),
                     new.b.eq(Mux(conv, clamp(bb), cr2)), new.row_last.eq(side[2][24]),
                     new.last.eq(side[2][25])]
        out_free = ~o.valid | o.ready
        with m.If(skid_v):
            with m.If(out_free):
                m.d.sync += [o.valid.eq(1), o.payload.eq(skid), skid_v.eq(0)]
        with m.Elif(out_free):
            m.d.sync += [o.valid.eq(v[2]), o.payload.eq(new)]
        with m.Elif(v[2]):
            m.d.sync += [skid.eq(new), skid_v.eq(1)]
        with m.If(o.valid & o.ready & o.payload.last):
            m.d.sync += done.eq(1)

        # an output row is released once both readers have issued all its reads (the read
        # ports keep their data, so the lines may then be overwritten)
        def fits(a):
            return (a <= fy) & (grey | (a <= gy))
        m.d.sync += room.eq(Mux(row_adv, fits(lw_room_ly), fits(lw_room)))
        # ``mcu_last`` (one MCU a row) from the registered MCU count, the cycle after the
        # start (the configuration arrives with the start, and the count is a register a
        # cycle later): not from the configuration's adders (q28 seed 2: 10.4 ns, config ->
        # width adders -> mcu_last); the writer needs it at the first MCU's end, much later
        start_d = Signal()
        m.d.sync += start_d.eq(self.start)
        with m.If(start_d):
            m.d.sync += mcu_last.eq(mcus_x == 1)
        with m.If(self.start):
            m.d.sync += [running.eq(1), done.eq(0),
                         lw_room.eq(Mux(v2_c, 16 - _NY_V2, 8 - _NY_V1)),
                         lw_room_ly.eq(Mux(v2_c, 32 - _NY_V2, 16 - _NY_V1)),
                         room.eq(ly_c <= ny_c),
                         lw_v0.eq(-v2_c), lw_v1.eq(-1 - v2_c),
                         all_written.eq(0), mcu_x.eq(0),
                         mcu_row.eq(0),
                         wy_base.eq(0), wc_base.eq(0),
                         fy.eq(0), fj.eq(0), eol.eq(((cfg.width - 1) >> 3)[:13] == 0), fslot.eq(0), l1.v.eq(0), l2.v.eq(0), lq_wp.eq(0),
                         lq_rp.eq(0), l_inflight.eq(0), cur_v.eq(0), fy_moved.eq(0), gy_moved.eq(0),
                         luma_s.valid.eq(0),
                         gy.eq(0), gj.eq(0), ceol.eq(((cw_c - 1) >> 3)[:13] == 0), near.eq(0), cidx.eq(0), cn.v.eq(0), cm.v.eq(0),
                         cc_v.eq(0), col_s.valid.eq(0), odd.eq(0), up_s.valid.eq(0),
                         v[0].eq(0), v[1].eq(0), v[2].eq(0), o.valid.eq(0), skid_v.eq(0)]
        return m
