"""DECODE's pixel post-processing: crop, box resize, normalisation, quantisation (issue 23).

The codec wrapper's stage between the JPEG decoder's pixel stream (:class:`.color.
ColorConverter`, raster order) and the activation scratchpad: it computes exactly
:func:`s4accel.base.codec.box_resize` then :func:`s4accel.base.codec.normalise` of the crop
and emits one activation *lane* a pixel: the 32 bytes of one row memory of an ACT word, the
``C`` int8 channels then zeros, with the output pixel's index ``y * out_w + x`` (in raster
order, so the index is a counter).

Datapath, one input pixel a cycle, no stall of its own:

- column and row windows by two DDAs (the golden rule ``2*i*crop_w < (2x+1)*out_w <=
  2*(i+1)*crop_w``): the next sample starts window ``i + 1`` when ``(2x+3)*out_w >
  2*(i+1)*crop_w``, kept as the gap ``2*(i+1)*crop_w - (2x+1)*out_w``: one add and one compare
  a sample (``out_w <= crop_w``, so a window is never empty); the crop's bounds and the steps
  are registered from the configuration;
- the running sum of the current column window (3 channels) and, per output column, the sum of
  the row window's earlier rows in a line buffer (``max_out_w`` entries of 3 x 32 bits,
  synchronous read, addressed one sample ahead and transparent to its write, so a window of one
  sample needs no stall);
- at the last row of a row window, each closing column window's total ``s`` and count ``n =
  nx * ny`` are registered (the line buffer's read data comes late in the cycle on an FPGA),
  then go through an 8-stage restoring divider per channel computing ``(2s + n) // (2n)``
  (the quotient is an average, below 256);
- then ``clamp((((v << 4) - offset) * mult + r) >> shift, -128, 127)`` per channel (a product
  and a shift stage).

The whole pipeline moves when the output is taken or empty (one enable), and the input is
ready then; pixels outside the crop are taken and dropped.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...base import codec
from .color import pixel_layout

__all__ = ["PostProcessor", "post_config_layout", "lane_layout", "norm_layout", "MAX_OUT_W"]

#: Widest output the line buffer holds.
MAX_OUT_W = codec.MAX_OUT_W

norm_layout = data.StructLayout({"offset": signed(16), "mult": signed(16), "shift": 5})

#: Stable from ``start`` until the last lane is out. ``grey``: one channel (byte 0), else 3.
post_config_layout = data.StructLayout({
    "crop_x": 16, "crop_y": 16, "crop_w": 16, "crop_h": 16, "out_w": 12, "out_h": 12,
    "grey": 1, "norm": data.ArrayLayout(norm_layout, 3),
})

#: One output lane: output pixel ``index`` (``y * out_w + x``), its 32 bytes.
lane_layout = data.StructLayout({"index": 24, "data": 256})

_DIV_STAGES = 8
#: Window sums: at most 255 * 2048 * 65535 (a MAX_WIDTH-wide, 65535-high image into one pixel)
_SUM_BITS = 36


class PostProcessor(wiring.Component):
    """Crop, box resize, normalise and quantise a raster pixel stream (module docstring).

    Members
    -------
    i_pixel : In(stream.Signature(pixel_layout))
    o_lane : Out(stream.Signature(lane_layout))
    config : In(post_config_layout)
    start : In(1)
        Pulse (not while pixels flow): empties the pipeline and starts a new image.
    busy : Out(1)
        A lane is in the pipeline or waiting.
    """

    i_pixel: In(stream.Signature(pixel_layout))
    o_lane: Out(stream.Signature(lane_layout))
    config: In(post_config_layout)
    start: In(1)
    busy: Out(1)

    def __init__(self, *, max_out_w: int = MAX_OUT_W):
        self.max_out_w = max_out_w
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        adv = Signal()          # the pipeline moves this cycle
        m.d.comb += adv.eq(self.o_lane.ready | ~self.o_lane.valid)
        m.d.comb += self.i_pixel.ready.eq(adv)
        take = self.i_pixel.valid & adv
        px = self.i_pixel.payload

        # -- input position and crop -----------------------------------------------------------
        # the crop's bounds and the DDAs' steps, registered from the configuration (stable
        # from ``start``; the first pixel comes later)
        x_end, y_end = Signal(17), Signal(17)
        x_last, y_last = Signal(17), Signal(17)
        two_ow, two_oh = Signal(13), Signal(13)
        two_cw, two_ch = Signal(17), Signal(17)
        m.d.sync += [x_end.eq(cfg.crop_x + cfg.crop_w), y_end.eq(cfg.crop_y + cfg.crop_h),
                     x_last.eq(cfg.crop_x + cfg.crop_w - 1),
                     y_last.eq(cfg.crop_y + cfg.crop_h - 1),
                     two_ow.eq(2 * cfg.out_w), two_oh.eq(2 * cfg.out_h),
                     two_cw.eq(2 * cfg.crop_w), two_ch.eq(2 * cfg.crop_h)]
        x = Signal(16)
        y = Signal(16)
        in_cx = (x >= cfg.crop_x) & (x < x_end)
        in_cy = (y >= cfg.crop_y) & (y < y_end)
        inside = in_cx & in_cy
        with m.If(take):
            m.d.sync += x.eq(Mux(px.row_last, 0, x + 1))
            with m.If(px.row_last):
                m.d.sync += y.eq(y + 1)

        # -- column DDA (reset at each row's start) ----------------------------------------------
        # num = (2x' + 1) * out_w of the next in-crop sample, thr = 2 * (i + 1) * crop_w; the
        # window ends when num + 2 * out_w > thr, kept as gap = thr - num < 2 * out_w
        ci = Signal(12)
        cgap = Signal(signed(34))
        nx = Signal(16)                  # samples so far in the column window
        col_end = Signal()
        m.d.comb += col_end.eq((x == x_last) | (cgap < two_ow))
        # -- row DDA (advanced at each crop row's end) ---------------------------------------
        rj = Signal(12)
        rgap = Signal(signed(34))
        ny = Signal(16)                  # rows of the row window so far, this one included
        row_first = Signal()             # the current row opens its row window
        row_last = Signal()
        m.d.comb += row_last.eq((y == y_last) | (rgap < two_oh))

        # -- sums -------------------------------------------------------------------------------
        acc = [Signal(_SUM_BITS, name=f"acc{c}") for c in range(3)]       # current column window
        chans = [px.r, px.g, px.b]
        m.submodules.line = line = Memory(shape=3 * _SUM_BITS, depth=self.max_out_w, init=[])
        wp = line.write_port()
        rp = line.read_port(transparent_for=(wp,))
        ci_next = Signal(12)
        m.d.comb += ci_next.eq(ci)
        m.d.comb += rp.addr.eq(ci_next)
        prev = [Mux(row_first, 0, rp.data[_SUM_BITS * c:_SUM_BITS * (c + 1)]) for c in range(3)]
        tot = [Signal(_SUM_BITS, name=f"tot{c}") for c in range(3)]
        first_col = Signal()             # the sample opens its column window
        m.d.comb += first_col.eq(nx == 0)
        for c in range(3):
            m.d.comb += tot[c].eq(Mux(first_col, 0, acc[c]) + chans[c] + prev[c])

        # divider input (stage 0): valid, numerators 2s + n, denominator 2n, the lane's index
        d_valid = [Signal(name=f"d_valid{k}") for k in range(_DIV_STAGES + 1)]
        d_num = [[Signal(_SUM_BITS + 2, name=f"d_num{k}_{c}") for c in range(3)]
                 for k in range(_DIV_STAGES + 1)]
        d_den = [Signal(_SUM_BITS + 2, name=f"d_den{k}") for k in range(_DIV_STAGES + 1)]
        d_q = [[Signal(8, name=f"d_q{k}_{c}") for c in range(3)] for k in range(_DIV_STAGES + 1)]
        n_win = Signal(32)
        m.d.comb += n_win.eq((nx + 1) * ny)
        emit = Signal()

        with m.If(take & inside):
            with m.If(col_end):
                m.d.sync += [nx.eq(0), ci.eq(ci + 1)]
                m.d.comb += ci_next.eq(ci + 1)
                with m.If(row_last):
                    m.d.comb += emit.eq(1)
                with m.Else():
                    m.d.comb += [wp.addr.eq(ci), wp.data.eq(Cat(*tot)), wp.en.eq(1)]
            with m.Else():
                m.d.sync += nx.eq(nx + 1)
                for c in range(3):
                    m.d.sync += acc[c].eq(Mux(first_col, 0, acc[c]) + chans[c])
            with m.If(col_end):
                for c in range(3):
                    m.d.sync += acc[c].eq(0)
                m.d.sync += cgap.eq(cgap - two_ow + two_cw)
            with m.Else():
                m.d.sync += cgap.eq(cgap - two_ow)
        # a crop row's end: the column DDA restarts, the row DDA moves on
        crop_row_end = take & in_cy & px.row_last
        with m.If(take & px.row_last):
            m.d.sync += [ci.eq(0), cgap.eq(two_cw - cfg.out_w), nx.eq(0)]
            m.d.comb += ci_next.eq(0)
        with m.If(crop_row_end):
            with m.If(row_last):
                m.d.sync += [rj.eq(rj + 1), rgap.eq(rgap - two_oh + two_ch), ny.eq(1),
                             row_first.eq(1)]
            with m.Else():
                m.d.sync += [rgap.eq(rgap - two_oh), ny.eq(ny + 1), row_first.eq(0)]

        # a closing window's sums and count, registered (the line buffer's data out comes
        # 5.8 ns after the clock on an ECP5), then the divider's input
        e_valid = Signal()
        e_tot = [Signal(_SUM_BITS, name=f"e_tot{c}") for c in range(3)]
        e_n = Signal(32)
        with m.If(adv):
            m.d.sync += [e_valid.eq(emit), e_n.eq(n_win)]
            for c in range(3):
                m.d.sync += e_tot[c].eq(tot[c])
            m.d.sync += d_valid[0].eq(e_valid)
            with m.If(e_valid):
                m.d.sync += d_den[0].eq(2 * e_n)
                for c in range(3):
                    m.d.sync += [d_num[0][c].eq(2 * e_tot[c] + e_n), d_q[0][c].eq(0)]
            # restoring division, quotient bit 7 first
            for k in range(_DIV_STAGES):
                b = _DIV_STAGES - 1 - k
                m.d.sync += [d_valid[k + 1].eq(d_valid[k]), d_den[k + 1].eq(d_den[k])]
                for c in range(3):
                    sub = d_den[k] << b
                    ge = d_num[k][c] >= sub
                    m.d.sync += [d_num[k + 1][c].eq(Mux(ge, d_num[k][c] - sub, d_num[k][c])),
                                 d_q[k + 1][c].eq(d_q[k][c] | (ge << b))]

        # -- normalisation: a product stage, then shift, round and clamp -----------------------
        p_valid = Signal()
        prod = [Signal(signed(40), name=f"prod{c}") for c in range(3)]
        q_valid = Signal()
        q_out = [Signal(signed(8), name=f"q{c}") for c in range(3)]
        idx = Signal(24)
        last_div = _DIV_STAGES
        with m.If(adv):
            m.d.sync += p_valid.eq(d_valid[last_div])
            for c in range(3):
                n = cfg.norm[c]
                t = Cat(Const(0, 4), d_q[last_div][c], Const(0, 1)).as_signed() - n.offset
                m.d.sync += prod[c].eq(t * n.mult)
            m.d.sync += q_valid.eq(p_valid)
            for c in range(3):
                sh = cfg.norm[c].shift
                rnd = (Const(1, 33) << sh) >> 1          # 2**(shift - 1), 0 for shift 0
                v = Signal(signed(42), name=f"v{c}")
                m.d.comb += v.eq((prod[c] + rnd) >> sh)
                m.d.sync += q_out[c].eq(Mux(v > 127, 127, Mux(v < -128, -128, v[:8])))
        m.d.comb += [self.o_lane.valid.eq(q_valid), self.o_lane.payload.index.eq(idx)]
        m.d.comb += self.o_lane.payload.data.eq(
            Mux(cfg.grey, Cat(q_out[0], Const(0, 248)), Cat(*q_out, Const(0, 232))))
        with m.If(self.o_lane.valid & self.o_lane.ready):
            m.d.sync += idx.eq(idx + 1)

        m.d.comb += self.busy.eq(Cat(e_valid, *d_valid, p_valid, q_valid).any())

        with m.If(self.start):
            m.d.sync += [x.eq(0), y.eq(0), ci.eq(0), cgap.eq(2 * cfg.crop_w - cfg.out_w),
                         nx.eq(0), rj.eq(0), rgap.eq(2 * cfg.crop_h - cfg.out_h), ny.eq(1),
                         row_first.eq(1), idx.eq(0), e_valid.eq(0), p_valid.eq(0),
                         q_valid.eq(0)]
            m.d.sync += [v.eq(0) for v in d_valid]
        return m
