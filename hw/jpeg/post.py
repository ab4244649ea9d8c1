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
- the sample, its window flags and its window's index are registered; then the running sum of
  the current column window (3 channels) and, registered beside it, the line buffer's word for
  that window: per output column, the sum of the row window's earlier rows (``max_out_w``
  entries of 3 x 36 bits, block RAM, read at the window's index as the sample is taken, the
  data registered: it comes late in the cycle on an FPGA); the next stage adds the two and
  writes the total back (or, at the row window's last row, passes it on). The read can miss the
  two writes of the two cycles before (a row of one or two samples): those are kept in
  registers and forwarded, by address matches computed a stage earlier;
- each closing window's total ``s`` and count ``n = nx * ny`` (a product registered a stage
  after its factors) are registered, then go through an 8-stage restoring divider per channel
  computing ``(2s + n) // (2n)`` (the quotient is an average, below 256);
- then ``clamp((((v << 4) - offset) * mult + r) >> shift, -128, 127)`` per channel: the
  operand, the product, then the rounding add beside the clamp's two compares (the product
  against thresholds registered from the configuration), then the shift;
- the result goes into a 32-entry output queue (LUT RAM), then an output register.

Only the input stage can wait: it is ready (a register) when fewer than 31 lanes were inside
the cycle before (from their emission at the input to their transfer at the output), so the
stages behind it never stall and the queue never overflows. A lane is out 17 cycles after its
last pixel is taken (when the output is ready): fewer lanes than the queue holds are in
flight then, so a pixel a cycle flows without the input waiting. Pixels outside the crop are
taken and dropped.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...base import codec
from ..core.dsp import registered_product
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
#: Lanes in flight at most (input stage to output register): the output queue's depth; more
#: than the pipeline's latency, so a lane a cycle flows without the input waiting
_QUEUE = 32
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
        # lanes emitted by the input stage and not yet taken at the output (in the pipeline,
        # the output queue or the output register): ``pending`` counts them from the input
        # stage's next register (``u_emit``), so the lanes are ``pending + u_emit``, one more
        # at most a cycle later; the input is ready (a register) while fewer than _QUEUE - 1
        # are, so at most _QUEUE lanes are ever inside: the pipeline behind the input stage
        # never stalls and the queue never overflows
        pending = Signal(range(_QUEUE + 1))
        u_emit = Signal()
        ready = Signal(init=1)
        m.d.sync += ready.eq(pending < _QUEUE - 1 - u_emit)
        m.d.comb += self.i_pixel.ready.eq(ready)
        take = self.i_pixel.valid & self.i_pixel.ready
        px = self.i_pixel.payload

        # -- input position and crop -----------------------------------------------------------
        # the crop's bounds and the DDAs' steps, registered from the configuration (stable
        # from ``start``; the first pixel comes later)
        x_last, y_last = Signal(17), Signal(17)
        two_ow, two_oh = Signal(13), Signal(13)
        c_init = Signal(signed(18))                             # a row's first column gap
        c_step, r_step = Signal(signed(18)), Signal(signed(18)) # a window's end: + 2c - 2o
        m.d.sync += [x_last.eq(cfg.crop_x + cfg.crop_w - 1),
                     y_last.eq(cfg.crop_y + cfg.crop_h - 1),
                     two_ow.eq(2 * cfg.out_w), two_oh.eq(2 * cfg.out_h),
                     c_init.eq(2 * cfg.crop_w - cfg.out_w),
                     c_step.eq(2 * cfg.crop_w - 2 * cfg.out_w),
                     r_step.eq(2 * cfg.crop_h - 2 * cfg.out_h)]
        x = Signal(16)
        y = Signal(16)
        # the crop tests on ``x`` and ``y`` are registers kept with them (``x`` moves by one
        # or back to 0, ``y`` by one): "inside the crop" turns on at ``crop - 1`` and off
        # at the crop's last position, and "at the last position" is ``pos == last - 1``
        # before the step, so nothing but equality tests of registers runs into them (the
        # compares had been on the path into the emit register)
        x_first1, y_first1 = Signal(17), Signal(17)         # crop_x - 1, crop_y - 1
        x_last1, y_last1 = Signal(17), Signal(17)           # the last position - 1
        # the tests at position 0 (from the configuration: also the values at ``start``)
        in0_x = (cfg.crop_x == 0) & (cfg.crop_w != 0)
        in0_y = (cfg.crop_y == 0) & (cfg.crop_h != 0)
        last0_x, last0_y = cfg.crop_x + cfg.crop_w == 1, cfg.crop_y + cfg.crop_h == 1
        x0_in, x0_last = Signal(), Signal()                 # registered, for a row's start
        m.d.sync += [x_first1.eq(cfg.crop_x - 1), y_first1.eq(cfg.crop_y - 1),
                     x_last1.eq(cfg.crop_x + cfg.crop_w - 2),
                     y_last1.eq(cfg.crop_y + cfg.crop_h - 2),
                     x0_in.eq(in0_x), x0_last.eq(last0_x)]
        in_cx, in_cy = Signal(), Signal()           # x, y inside the crop
        at_x_last, at_y_last = Signal(), Signal()   # x == x_last, y == y_last
        inside = in_cx & in_cy
        with m.If(take):
            m.d.sync += x.eq(Mux(px.row_last, 0, x + 1))
            with m.If(px.row_last):
                m.d.sync += [y.eq(y + 1), in_cx.eq(x0_in), at_x_last.eq(x0_last),
                             in_cy.eq(Mux(y == y_last, 0, Mux(y == y_first1, 1, in_cy))),
                             at_y_last.eq(y == y_last1)]
            with m.Else():
                m.d.sync += [in_cx.eq(Mux(x == x_last, 0, Mux(x == x_first1, 1, in_cx))),
                             at_x_last.eq(x == x_last1)]

        # -- column DDA (reset at each row's start) ----------------------------------------------
        # num = (2x' + 1) * out_w of the next in-crop sample, thr = 2 * (i + 1) * crop_w; the
        # window ends when num + 2 * out_w > thr, kept as gap = thr - num < 2 * out_w
        ci = Signal(12)
        cgap = Signal(signed(34))
        nx = Signal(16)                  # samples so far in the column window
        col_end = Signal()
        # ``cgap < two_ow`` a register too, kept with ``cgap``: the step's compare moved
        # before it (``cgap + c_step < two_ow`` is ``cgap < two_ow - c_step``)
        c_lt = Signal()
        c_k1, c_k2 = Signal(signed(20)), Signal(signed(20))     # two_ow - c_step, 2 two_ow
        c_init_lt = Signal()
        lt0_c = 2 * cfg.crop_w - cfg.out_w < 2 * cfg.out_w       # at a row's start
        lt0_r = 2 * cfg.crop_h - cfg.out_h < 2 * cfg.out_h       # at the image's start
        m.d.sync += [c_k1.eq(4 * cfg.out_w - 2 * cfg.crop_w), c_k2.eq(4 * cfg.out_w),
                     c_init_lt.eq(lt0_c)]
        m.d.comb += col_end.eq(at_x_last | c_lt)
        # -- row DDA (advanced at each crop row's end) ---------------------------------------
        rj = Signal(12)
        rgap = Signal(signed(34))
        ny = Signal(16)                  # rows of the row window so far, this one included
        row_first = Signal()             # the current row opens its row window
        row_last = Signal()
        r_lt = Signal()                  # rgap < two_oh, kept with rgap as c_lt with cgap
        r_k1, r_k2 = Signal(signed(20)), Signal(signed(20))
        m.d.sync += [r_k1.eq(4 * cfg.out_h - 2 * cfg.crop_h), r_k2.eq(4 * cfg.out_h)]
        m.d.comb += row_last.eq(at_y_last | r_lt)

        emit = Signal()
        with m.If(take & inside):
            with m.If(col_end):
                m.d.sync += [nx.eq(0), ci.eq(ci + 1), cgap.eq(cgap + c_step),
                             c_lt.eq(cgap < c_k1)]
                m.d.comb += emit.eq(row_last)
            with m.Else():
                m.d.sync += [nx.eq(nx + 1), cgap.eq(cgap - two_ow), c_lt.eq(cgap < c_k2)]
        # a crop row's end: the column DDA restarts, the row DDA moves on
        crop_row_end = take & in_cy & px.row_last
        with m.If(take & px.row_last):
            m.d.sync += [ci.eq(0), cgap.eq(c_init), nx.eq(0), c_lt.eq(c_init_lt)]
        with m.If(crop_row_end):
            with m.If(row_last):
                m.d.sync += [rj.eq(rj + 1), rgap.eq(rgap + r_step), ny.eq(1),
                             row_first.eq(1), r_lt.eq(rgap < r_k1)]
            with m.Else():
                m.d.sync += [rgap.eq(rgap - two_oh), ny.eq(ny + 1), row_first.eq(0),
                             r_lt.eq(rgap < r_k2)]

        # -- sums -------------------------------------------------------------------------------
        # the line buffer: per output column, the sum of the row window's earlier rows; read
        # at the sample's column window (``ci``, a register) as the sample is taken, its data
        # registered (the block RAM's data out comes late in the cycle on an FPGA), added and
        # written back two cycles later; the two writes the read can miss are forwarded
        m.submodules.line = line = Memory(shape=3 * _SUM_BITS, depth=self.max_out_w, init=[])
        wp = line.write_port()
        rp = line.read_port()
        m.d.comb += rp.addr.eq(ci)

        # stage u: the sample, its window flags and the window's sample count factors
        u_valid, u_first, u_end, u_row_first = (
            Signal(name=f"u_{n}") for n in ("valid", "first", "end", "row_first"))
        u_chan = [Signal(8, name=f"u_chan{c}") for c in range(3)]
        u_ci = Signal(12)
        u_nx, u_ny = Signal(16), Signal(16)
        m.d.sync += [u_valid.eq(take & inside), u_first.eq(nx == 0), u_end.eq(col_end),
                     u_emit.eq(emit), u_row_first.eq(row_first), u_ci.eq(ci),
                     u_nx.eq(nx + 1), u_ny.eq(ny),
                     *(u_chan[c].eq(ch) for c, ch in enumerate([px.r, px.g, px.b]))]

        # stage v: the column window's running sum (acc: the window so far, this sample
        # included), the line buffer's data, which of the last two writes to forward
        acc = [Signal(_SUM_BITS, name=f"acc{c}") for c in range(3)]
        v_valid, v_emit, v_row_first, v_f1, v_f2 = (
            Signal(name=f"v_{n}") for n in ("valid", "emit", "row_first", "f1", "f2"))
        v_sum = [Signal(_SUM_BITS, name=f"v_sum{c}") for c in range(3)]
        v_prev = Signal(3 * _SUM_BITS)
        v_ci = Signal(12)
        v_n = Signal(32)
        w1_en, w2_en = Signal(), Signal()            # the writes one and two cycles ago
        w1_addr = Signal(12)
        w1_data, w2_data = Signal(3 * _SUM_BITS), Signal(3 * _SUM_BITS)
        v_write = v_valid & ~v_emit
        for c in range(3):
            s = Signal(_SUM_BITS, name=f"sum{c}")
            m.d.comb += s.eq(Mux(u_first, 0, acc[c]) + u_chan[c])
            with m.If(u_valid):
                m.d.sync += acc[c].eq(s)
            m.d.sync += v_sum[c].eq(s)
        m.d.sync += [v_valid.eq(u_valid & u_end), v_emit.eq(u_emit),
                     v_row_first.eq(u_row_first), v_ci.eq(u_ci), v_n.eq(u_nx * u_ny),
                     v_prev.eq(rp.data),
                     v_f1.eq(v_write & (v_ci == u_ci)), v_f2.eq(w1_en & (w1_addr == u_ci))]

        # stage w: the window's total (the earlier rows' sum from the line buffer, or
        # forwarded from a write it missed); written back, or to the divider at the row
        # window's last row
        prev = Mux(v_row_first, 0, Mux(v_f1, w1_data, Mux(v_f2, w2_data, v_prev)))
        tot = [Signal(_SUM_BITS, name=f"tot{c}") for c in range(3)]
        for c in range(3):
            m.d.comb += tot[c].eq(v_sum[c] + prev[_SUM_BITS * c:_SUM_BITS * (c + 1)])
        m.d.comb += [wp.addr.eq(v_ci), wp.data.eq(Cat(*tot)), wp.en.eq(v_write)]
        m.d.sync += [w1_en.eq(v_write), w1_addr.eq(v_ci), w1_data.eq(Cat(*tot)),
                     w2_en.eq(w1_en), w2_data.eq(w1_data)]

        # a closing window's sums and count, registered, then the divider's input
        d_valid = [Signal(name=f"d_valid{k}") for k in range(_DIV_STAGES + 1)]
        d_num = [[Signal(_SUM_BITS + 2, name=f"d_num{k}_{c}") for c in range(3)]
                 for k in range(_DIV_STAGES + 1)]
        d_den = [Signal(_SUM_BITS + 2, name=f"d_den{k}") for k in range(_DIV_STAGES + 1)]
        d_q = [[Signal(8, name=f"d_q{k}_{c}") for c in range(3)] for k in range(_DIV_STAGES + 1)]
        e_valid = Signal()
        e_tot = [Signal(_SUM_BITS, name=f"e_tot{c}") for c in range(3)]
        e_n = Signal(32)
        m.d.sync += [e_valid.eq(v_valid & v_emit), e_n.eq(v_n)]
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

        # -- normalisation: the operand, the product, then the rounding add beside the clamp's
        # compares (against thresholds from the configuration), then the shift ---------------
        # v = (prod + rnd) >> shift > 127  <=>  prod >= (128 << shift) - rnd, and
        # v < -128  <=>  prod < (-128 << shift) - rnd
        n_valid, p_valid, r_valid = Signal(), Signal(), Signal()
        opnd = [Signal(signed(18), name=f"opnd{c}") for c in range(3)]
        rsum = [Signal(signed(41), name=f"rsum{c}") for c in range(3)]
        r_hi = [Signal(name=f"r_hi{c}") for c in range(3)]
        r_lo = [Signal(name=f"r_lo{c}") for c in range(3)]
        q_out = [Signal(signed(8), name=f"q{c}") for c in range(3)]
        last_div = _DIV_STAGES
        m.d.sync += [n_valid.eq(d_valid[last_div]), p_valid.eq(n_valid), r_valid.eq(p_valid)]
        for c in range(3):
            n = cfg.norm[c]
            sh = n.shift
            half = (Const(1, 33) << sh) >> 1             # 2**(shift - 1), 0 for shift 0
            rnd = Signal(32, name=f"rnd{c}")
            th_hi = Signal(signed(42), name=f"th_hi{c}")
            th_lo = Signal(signed(42), name=f"th_lo{c}")
            m.d.sync += [rnd.eq(half), th_hi.eq((Const(128, signed(42)) << sh) - half),
                         th_lo.eq((Const(-128, signed(42)) << sh) - half)]
            # the product: 18 x 16 bits signed, in the multiplier block's own output register
            # on the ECP5 (the fpga build with the decoder placed the blocks up to 47 columns
            # from a fabric register)
            prod = registered_product(m, opnd[c], n.mult, width=34, platform=platform,
                                      name=f"prod{c}", in_regs=False)
            m.d.sync += [opnd[c].eq(Cat(Const(0, 4), d_q[last_div][c], Const(0, 1)).as_signed()
                                    - n.offset),
                         rsum[c].eq(prod + rnd),
                         r_hi[c].eq(prod >= th_hi), r_lo[c].eq(prod < th_lo)]
            v = Signal(signed(41), name=f"v{c}")
            m.d.comb += v.eq(rsum[c] >> sh)
            m.d.comb += q_out[c].eq(Mux(r_hi[c], 127, Mux(r_lo[c], -128, v[:8])))

        # -- output queue (LUT RAM) and output register ----------------------------------------
        m.submodules.queue = queue = Memory(shape=24, depth=_QUEUE, init=[])
        qw = queue.write_port()
        qr = queue.read_port(domain="comb")
        q_wp, q_rp = Signal(range(2 * _QUEUE)), Signal(range(2 * _QUEUE))
        m.d.comb += [qw.addr.eq(q_wp[:-1]), qw.data.eq(Cat(*q_out)), qw.en.eq(r_valid),
                     qr.addr.eq(q_rp[:-1])]
        with m.If(r_valid):
            m.d.sync += q_wp.eq(q_wp + 1)
        o_valid = Signal()
        o_data = Signal(24)
        idx = Signal(24)
        taken = o_valid & self.o_lane.ready
        with m.If((q_wp != q_rp) & (~o_valid | self.o_lane.ready)):
            m.d.sync += [o_valid.eq(1), o_data.eq(qr.data), q_rp.eq(q_rp + 1)]
        with m.Elif(taken):
            m.d.sync += o_valid.eq(0)
        with m.If(taken):
            m.d.sync += idx.eq(idx + 1)
        m.d.sync += pending.eq(pending + u_emit - taken)
        m.d.comb += [self.o_lane.valid.eq(o_valid), self.o_lane.payload.index.eq(idx)]
        m.d.comb += self.o_lane.payload.data.eq(
            Mux(cfg.grey, Cat(o_data[:8], Const(0, 248)), Cat(o_data, Const(0, 232))))

        m.d.comb += self.busy.eq((pending != 0) | u_emit)

        with m.If(self.start):
            m.d.sync += [x.eq(0), y.eq(0), ci.eq(0), cgap.eq(2 * cfg.crop_w - cfg.out_w),
                         nx.eq(0), rj.eq(0), rgap.eq(2 * cfg.crop_h - cfg.out_h), ny.eq(1),
                         in_cx.eq(in0_x), in_cy.eq(in0_y), at_x_last.eq(last0_x),
                         at_y_last.eq(last0_y), c_lt.eq(lt0_c), r_lt.eq(lt0_r),
                         row_first.eq(1), idx.eq(0), pending.eq(0), u_valid.eq(0),
                         u_emit.eq(0), v_valid.eq(0), w1_en.eq(0), w2_en.eq(0), e_valid.eq(0),
                         n_valid.eq(0), p_valid.eq(0), r_valid.eq(0), q_wp.eq(0), q_rp.eq(0),
                         o_valid.eq(0), ready.eq(1)]
            m.d.sync += [v.eq(0) for v in d_valid]
        return m
