"""The vector unit's datapath (issue 22): element-wise and row operations on vectors of
``lanes`` elements, bit-exact with :mod:`s4accel.base.vector`."""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...base.config import BANK
from ...base.vector import EXP_C1, EXP_C2, EXP_FRAC, GELU_FRAC, GELU_QA, GELU_QB, LN_FRAC, \
    LN_RECIP_SHIFT

__all__ = ["VecOp", "vec_cmd_layout", "vec_in_layout", "vec_chan_layout", "vec_out_layout",
           "VectorUnit", "MAR_WIDTHS", "N_MAR", "MAX_ROW_LIMIT"]

#: Operand widths (signed a x signed b + signed c) of each lane's multiply-add-round units,
#: the widest any operation gives each: 34 x 18 (the softmax score difference times its
#: multiplier), 34 x 26 (LayerNorm's ``n * recip``, softmax's ``e * recip``), 32 x 18
#: (LayerNorm's per-channel multiplier, plus its 48-bit bias), then two 33 x 18 (i-GELU).
MAR_WIDTHS = ((34, 18, 34), (34, 26, 34), (32, 18, 49), (33, 18, 2), (33, 18, 2))
#: Multiply-add-round units per lane (the most any operation chains: i-GELU).
N_MAR = len(MAR_WIDTHS)
#: The largest row buffer the unit accepts (LayerNorm's limit in the golden model).
MAX_ROW_LIMIT = 1 << 15

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
#: LayerNorm's sd (``isqrt(V << 2*j)``, ``V << 2*j`` at least ``2**59``) is above this power.
_LN_SD_LOG2 = 29


class VecOp(enum.Enum, shape=3):
    """Operation of one command (its parameters: :data:`vec_cmd_layout`)."""
    ADD = 0        #: :func:`~s4accel.base.vector.residual_add` of ``i_a`` and ``i_b``
    MUL = 1        #: :func:`~s4accel.base.vector.elementwise_mul` of ``i_a`` and ``i_b``
    GELU = 2       #: :func:`~s4accel.base.vector.gelu` of ``i_a``
    ROW_MAX = 3    #: :func:`~s4accel.base.vector.row_max` of one row of ``i_a``
    ROW_SUM = 4    #: :func:`~s4accel.base.vector.row_sum` of one row of ``i_a``
    SOFTMAX = 5    #: :func:`~s4accel.base.vector.softmax` of one row of ``i_a``
    LAYERNORM = 6  #: :func:`~s4accel.base.vector.layernorm` of one row, channels on ``i_chan``


#: One command. ``n``: elements (element-wise ops) or the row length (row ops, 1..max_row;
#: LayerNorm 2..max_row). ``mult``/``shift``: the requantization (ADD: ``a_mult``; MUL, GELU:
#: the output's; SOFTMAX: the score scaling). ``mult_b``: ADD's ``b_mult``. ``relu``: ADD,
#: MUL; SOFTMAX's 7-bit probabilities (0..127; ``wide`` takes precedence). ``wide``: ADD's
#: int16 output, SOFTMAX's 16-bit probabilities. ``u_mult``/``u_shift``:
#: GELU's input scaling. ``in_shift``/``eps``: LayerNorm's. ``chan``: ADD takes ``a_mult``,
#: ``b_mult`` and ``shift`` per lane from ``i_chan`` (:func:`vec_chan_layout`) instead of
#: ``mult``, ``mult_b`` and ``shift``; other operations ignore it.
vec_cmd_layout = data.StructLayout({
    "op": VecOp,
    "n": unsigned(16),
    "mult": unsigned(16),
    "mult_b": unsigned(16),
    "shift": unsigned(6),
    "relu": 1,
    "wide": 1,
    "u_mult": unsigned(16),
    "u_shift": unsigned(6),
    "in_shift": unsigned(5),
    "eps": unsigned(41),
    "chan": 1,
})


def vec_in_layout(lanes):
    """One input vector: int32 lanes (int8 operands sign-extended) and the valid-position mask
    (softmax, row max, row sum; bit ``l`` for lane ``l``)."""
    return data.StructLayout({"data": data.ArrayLayout(signed(32), lanes),
                              "mask": unsigned(lanes)})


def vec_chan_layout(lanes):
    """LayerNorm's per-channel parameters for the ``lanes`` channels of one vector; a
    per-channel ADD (``chan``) takes ``a_mult`` from ``bias[0:16]``, ``b_mult`` from
    ``bias[16:32]`` (both unsigned) and its ``shift`` from ``shift``."""
    return data.ArrayLayout(data.StructLayout({
        "mult": signed(16), "bias": signed(48), "shift": unsigned(6)}), lanes)


def vec_out_layout(lanes):
    """One output vector (int8, int16, uint8, uint16 or int32 results sign- or zero-extended;
    lanes past the row's or the tensor's end are 0); ``last`` ends the command."""
    return data.StructLayout({"data": data.ArrayLayout(signed(32), lanes), "last": 1})


class _Mode(enum.Enum, shape=3):
    NONE = 0
    ADD = 1
    MUL = 2
    GELU = 3
    SM_EXP = 4
    SM_NORM = 5
    LN_SUMS = 6
    LN_NORM = 7


def _rshift_round(t, s):
    """``(t + 2**(s-1)) >> s`` (``t`` when ``s`` is 0), arithmetic."""
    w = t.shape().width
    rnd = (Const(1, w + 1) << s)[1:w + 1]
    return (t + rnd) >> s


def _clamp(v, lo, hi):
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


def _tree(values, op):
    values = list(values)
    while len(values) > 1:
        nxt = [op(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


class VectorUnit(wiring.Component):
    """Element-wise and row operations of :mod:`s4accel.base.vector`, bit for bit.

    A command on ``i_cmd`` names the operation and its parameters. Element-wise operations
    (ADD, MUL, GELU) take ``ceil(n / lanes)`` vectors from ``i_a`` (and ``i_b``) and give as
    many on ``o_data``, one per cycle. Row operations take one row of ``n`` elements
    (``1 <= n <= max_row``, LayerNorm ``n >= 2``): ROW_MAX and ROW_SUM give one vector with
    the result in lane 0 (others 0); SOFTMAX keeps the row in an internal buffer, computes the
    exponentials and their sum in a second pass, one reciprocal by a bit-serial division, then
    streams the probabilities; LAYERNORM buffers the row while summing, takes the square root
    and the reciprocal bit-serially, then streams the normalized row while taking one vector
    of per-channel parameters per output vector from ``i_chan``. An ADD with ``chan`` takes a
    vector of per-channel parameters from ``i_chan`` with each ``i_a``, ``i_b`` pair. The last
    output vector of a command has ``last`` set. Commands run one after another.

    Cycles from a command's acceptance to its last output vector, for B vectors and no gaps
    or stalls: element-wise B + 2; ROW_MAX, ROW_SUM B + 3; SOFTMAX 3B + 22 (8-bit), 3B + 21
    (7-bit) or 3B + 30 (16-bit); LAYERNORM 2B + 60 (a 32-step square root and a 22-step division).
    Multipliers: :data:`N_MAR` multiply-add-round units per lane (:data:`MAR_WIDTHS`) that
    all operations share, plus LayerNorm's two per-row products (16 x 48 and 32 x 32). The
    per-vector path is one register stage deep (combinational from input to output
    register), which suits simulation; a clocked FPGA build needs it pipelined.

    Members
    -------
    i_cmd : In(stream.Signature(vec_cmd_layout))
    i_a : In(stream.Signature(vec_in_layout(lanes)))
    i_b : In(stream.Signature(data.ArrayLayout(signed(8), lanes)))
        ADD's and MUL's second operand, taken with ``i_a``.
    i_chan : In(stream.Signature(vec_chan_layout(lanes)))
    o_data : Out(stream.Signature(vec_out_layout(lanes)))
    busy : Out(1)
        A command is in progress.
    error : Out(1)
        The last command taken was rejected (``n`` 0, a row longer than ``max_row``, a
        LayerNorm row shorter than 2, an unknown operation): it took no input and gave no
        output. Cleared by the next command.
    """

    def __init__(self, lanes=BANK, max_row=128):
        if not isinstance(lanes, int) or lanes < 1 or lanes & (lanes - 1):
            raise ValueError(f"lanes must be a positive power of two, not {lanes!r}")
        if (not isinstance(max_row, int) or max_row < lanes or max_row % lanes
                or max_row > MAX_ROW_LIMIT):
            raise ValueError(f"max_row must be a multiple of lanes ({lanes}) in {lanes}.."
                             f"{MAX_ROW_LIMIT}, not {max_row!r}")
        self._lanes = lanes
        self._max_row = max_row
        super().__init__({
            "i_cmd": In(stream.Signature(vec_cmd_layout)),
            "i_a": In(stream.Signature(vec_in_layout(lanes))),
            "i_b": In(stream.Signature(data.ArrayLayout(signed(8), lanes))),
            "i_chan": In(stream.Signature(vec_chan_layout(lanes))),
            "o_data": Out(stream.Signature(vec_out_layout(lanes))),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def max_row(self):
        return self._max_row

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        lg = lanes.bit_length() - 1
        depth = self._max_row // lanes

        buf = Memory(shape=data.StructLayout({"x": data.ArrayLayout(signed(32), lanes),
                                              "valid": unsigned(lanes)}),
                     depth=depth, init=[])
        m.submodules.buf = buf
        rd = buf.read_port()
        wr = buf.write_port()

        cmd = Signal(vec_cmd_layout)
        nb = Signal(range((1 << 16) // lanes + 2))    # vectors in the command
        beat = Signal(16)                              # input vectors taken
        ra = Signal(range(depth + 1))                  # buffer reads issued
        rv = Signal()                                  # rd.data holds vector rbeat
        rbeat = Signal(range(depth))

        a_max = Signal(signed(32), init=INT32_MIN)
        a_sum = Signal(signed(32))
        e_sum = Signal(unsigned(33))
        s_sum = Signal(signed(32))
        q_sum = Signal(unsigned(48))
        var = Signal(unsigned(62))
        j = Signal(range(31))
        sq_v = Signal(unsigned(64))
        sq_res = Signal(unsigned(64))
        sq_bit = Signal(unsigned(64))
        div_d = Signal(unsigned(33))
        div_i = Signal(range(LN_RECIP_SHIFT + 1))
        div_rem = Signal(unsigned(36))
        div_q = Signal(unsigned(LN_RECIP_SHIFT + 2))
        recip = Signal(unsigned(25))

        o = self.o_data
        out_ok = ~o.valid | o.ready
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)

        # the per-vector datapath: stage input, N_MAR multiply-add-round units per lane
        mode = Signal(_Mode)
        from_buf = Signal()
        vbeat = Mux(from_buf, rbeat, beat)
        # Every lane takes its operands from the wide input buses through a signal of its
        # own: an event-driven simulator (Icarus) otherwise hands the whole bus to each of
        # the thousands of bit selects (sign extensions) that read it, on every change.
        x_in = [Signal(signed(32), name=f"x{i}") for i in range(lanes)]
        inrow = [((vbeat << lg) + i) < cmd.n for i in range(lanes)]
        xv = [Signal(name=f"xv{i}") for i in range(lanes)]
        for i in range(lanes):
            m.d.comb += [x_in[i].eq(Mux(from_buf, rd.data.x[i], self.i_a.payload.data[i])),
                         xv[i].eq(Mux(from_buf, rd.data.valid[i],
                                      self.i_a.payload.mask[i] & inrow[i]))]
        y = [Signal(signed(32), name=f"y{i}") for i in range(lanes)]
        e_vals, v_vals, sq_vals = [], [], []
        for i in range(lanes):
            A = [Signal(signed(w[0]), name=f"a{i}_{k}") for k, w in enumerate(MAR_WIDTHS)]
            B = [Signal(signed(w[1]), name=f"b{i}_{k}") for k, w in enumerate(MAR_WIDTHS)]
            C = [Signal(signed(w[2]), name=f"c{i}_{k}") for k, w in enumerate(MAR_WIDTHS)]
            S = [Signal(unsigned(6), name=f"s{i}_{k}") for k in range(N_MAR)]
            P = [Signal(signed(max(wa + wb, wc) + 2), name=f"p{i}_{k}")
                 for k, (wa, wb, wc) in enumerate(MAR_WIDTHS)]
            for k in range(N_MAR):
                m.d.comb += P[k].eq(_rshift_round(A[k] * B[k] + C[k], S[k]))
            x = x_in[i]
            bq = Signal(signed(8), name=f"bq{i}")
            ch = Signal(vec_chan_layout(1).elem_shape, name=f"ch{i}")
            # (a real cell between bus and lane: valid gates them, they are read only then)
            m.d.comb += [bq.eq(Mux(self.i_b.valid, self.i_b.payload[i], 0)),
                         ch.eq(Mux(self.i_chan.valid, self.i_chan.payload[i], 0))]
            e = Signal(unsigned(17), name=f"e{i}")
            v = Signal(signed(16), name=f"v{i}")
            e_vals.append(e)
            v_vals.append(Mux(inrow[i], v, 0))
            sq_vals.append(Mux(inrow[i], P[1][:32], 0))
            with m.Switch(mode):
                with m.Case(_Mode.ADD):
                    m.d.comb += [A[0].eq(x), B[0].eq(Mux(cmd.chan, ch.bias[0:16], cmd.mult)),
                                 A[1].eq(bq),
                                 B[1].eq(Mux(cmd.chan, ch.bias[16:32], cmd.mult_b)),
                                 C[1].eq(P[0]), S[1].eq(Mux(cmd.chan, ch.shift, cmd.shift))]
                    t = Mux(cmd.wide, _clamp(P[1], -32768, 32767), _clamp(P[1], -128, 127))
                    m.d.comb += y[i].eq(Mux(cmd.relu & (t < 0), 0, t))
                with m.Case(_Mode.MUL):
                    m.d.comb += [A[0].eq(x), B[0].eq(bq),
                                 A[1].eq(P[0]), B[1].eq(cmd.mult), S[1].eq(cmd.shift)]
                    t = _clamp(P[1], -128, 127)
                    m.d.comb += y[i].eq(Mux(cmd.relu & (t < 0), 0, t))
                with m.Case(_Mode.GELU):
                    u = _clamp(P[0], INT32_MIN, INT32_MAX)
                    au = Mux(u < 0, -u, u)
                    w = Mux(au > GELU_QB, GELU_QB, au) - GELU_QB
                    lv = (1 << GELU_FRAC) + P[2]
                    erf = Mux(u > 0, lv, Mux(u < 0, -lv, 0))
                    m.d.comb += [A[0].eq(x), B[0].eq(cmd.u_mult), S[0].eq(cmd.u_shift),
                                 A[1].eq(w), B[1].eq(w), S[1].eq(GELU_FRAC),
                                 A[2].eq(P[1]), B[2].eq(GELU_QA), S[2].eq(GELU_FRAC),
                                 A[3].eq(x), B[3].eq((1 << GELU_FRAC) + erf),
                                 S[3].eq(GELU_FRAC + 1),
                                 A[4].eq(P[3]), B[4].eq(cmd.mult), S[4].eq(cmd.shift)]
                    m.d.comb += y[i].eq(_clamp(P[4], -128, 127))
                with m.Case(_Mode.SM_EXP):
                    t = P[0]
                    z = Mux(t >= (32 << EXP_FRAC), 31, (t >> EXP_FRAC)[:5])
                    r = t[:EXP_FRAC]
                    m.d.comb += [A[0].eq(Mux(xv[i], a_max - x, 0)), B[0].eq(cmd.mult),
                                 S[0].eq(cmd.shift),
                                 A[1].eq(r), B[1].eq(EXP_C2), C[1].eq(EXP_C1 << EXP_FRAC),
                                 A[2].eq(P[1]), B[2].eq(r),
                                 C[2].eq(1 << (3 * EXP_FRAC)), S[2].eq(2 * EXP_FRAC),
                                 A[3].eq(P[2]), B[3].eq(1), S[3].eq(z)]
                    m.d.comb += [e.eq(Mux(xv[i], P[3], 0)), y[i].eq(e)]
                with m.Case(_Mode.SM_NORM):
                    m.d.comb += [A[1].eq(x), B[1].eq(recip), S[1].eq(EXP_FRAC + 8)]
                    m.d.comb += y[i].eq(Mux(cmd.wide, _clamp(P[1], 0, 65535),
                                            Mux(cmd.relu, _clamp(P[1], 0, 127),
                                                _clamp(P[1], 0, 255))))
                with m.Case(_Mode.LN_SUMS):
                    m.d.comb += [A[0].eq(x), B[0].eq(1), S[0].eq(cmd.in_shift),
                                 v.eq(_clamp(P[0], -32768, 32767)),
                                 A[1].eq(v), B[1].eq(v), y[i].eq(v)]
                with m.Case(_Mode.LN_NORM):
                    m.d.comb += [A[0].eq(x), B[0].eq(cmd.n), C[0].eq(-s_sum),
                                 A[1].eq(P[0]), B[1].eq(recip),
                                 S[1].eq(LN_RECIP_SHIFT - LN_FRAC - j),
                                 A[2].eq(P[1]), B[2].eq(ch.mult), C[2].eq(ch.bias),
                                 S[2].eq(ch.shift)]
                    m.d.comb += y[i].eq(_clamp(P[2], -128, 127))
        y_out = [Mux(inrow[i], y[i], 0) for i in range(lanes)]
        vmax = _tree([Mux(xv[i], x_in[i], INT32_MIN) for i in range(lanes)],
                     lambda p, q: Mux(p > q, p, q))
        vsum = _tree([Mux(xv[i], x_in[i], 0) for i in range(lanes)], lambda p, q: p + q)
        esum_v = _tree(e_vals, lambda p, q: p + q)
        ssum_v = _tree(v_vals, lambda p, q: p + q)
        qsum_v = _tree(sq_vals, lambda p, q: p + q)

        def emit(values, last):
            m.d.sync += [o.valid.eq(1), o.payload.last.eq(last)]
            m.d.sync += [o.payload.data[i].eq(values[i]) for i in range(lanes)]

        def read_pass(adv):
            """Issue buffer reads in order while ``adv``; rd.data then holds vector rbeat."""
            m.d.comb += [from_buf.eq(1), rd.addr.eq(ra), rd.en.eq(adv)]
            with m.If(adv):
                m.d.sync += [rv.eq(ra < nb), rbeat.eq(ra)]
                with m.If(ra < nb):
                    m.d.sync += ra.eq(ra + 1)

        def start_div(d, k, lo):
            # The divisor is above 2**(lo-1) (softmax's sum: at least 2**15, LayerNorm's sd:
            # above 2**29), so the first lo quotient bits of 2**k / d are 0: skip them.
            # (a divisor of 0, LayerNorm's all-equal row without eps, divides too and gives
            # 0: the cycles never depend on the data)
            m.d.sync += [div_d.eq(d), div_i.eq(k - lo),
                         div_rem.eq(1 << (lo - 1)), div_q.eq(0), recip.eq(0)]
            m.next = "DIV"

        last_in = beat == nb - 1
        a_fire = self.i_a.valid & self.i_a.ready
        m.d.comb += self.busy.eq(1)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.busy.eq(0), self.i_cmd.ready.eq(1)]
                c = self.i_cmd.payload
                row_op = (c.op == VecOp.ROW_MAX) | (c.op == VecOp.ROW_SUM) | \
                    (c.op == VecOp.SOFTMAX) | (c.op == VecOp.LAYERNORM)
                bad = ((c.n == 0) | (row_op & (c.n > self._max_row)) | (c.op.as_value() > 6)
                       | ((c.op == VecOp.LAYERNORM) & (c.n < 2)))
                with m.If(self.i_cmd.valid):
                    m.d.sync += self.error.eq(bad)
                with m.If(self.i_cmd.valid & ~bad):
                    m.d.sync += [cmd.eq(c), nb.eq((c.n + lanes - 1) >> lg), beat.eq(0),
                                 ra.eq(0), rv.eq(0), a_max.eq(INT32_MIN), a_sum.eq(0),
                                 e_sum.eq(0), s_sum.eq(0), q_sum.eq(0)]
                    with m.Switch(c.op):
                        with m.Case(VecOp.ADD, VecOp.MUL, VecOp.GELU):
                            m.next = "ELEMENTWISE"
                        with m.Case(VecOp.ROW_MAX, VecOp.ROW_SUM):
                            m.next = "REDUCE"
                        with m.Case(VecOp.SOFTMAX):
                            m.next = "SM_MAX"
                        with m.Case(VecOp.LAYERNORM):
                            m.next = "LN_SUMS"

            with m.State("ELEMENTWISE"):
                need_b = cmd.op != VecOp.GELU
                # a per-channel ADD also waits for its lanes' parameters
                chan_ok = ~(cmd.chan & (cmd.op == VecOp.ADD)) | self.i_chan.valid
                with m.Switch(cmd.op):
                    with m.Case(VecOp.ADD):
                        m.d.comb += mode.eq(_Mode.ADD)
                    with m.Case(VecOp.MUL):
                        m.d.comb += mode.eq(_Mode.MUL)
                    with m.Default():
                        m.d.comb += mode.eq(_Mode.GELU)
                m.d.comb += [self.i_a.ready.eq(out_ok & (~need_b | self.i_b.valid) & chan_ok),
                             self.i_b.ready.eq(out_ok & need_b & self.i_a.valid & chan_ok),
                             self.i_chan.ready.eq(cmd.chan & (cmd.op == VecOp.ADD)
                                                  & out_ok & self.i_a.valid & self.i_b.valid)]
                with m.If(a_fire):
                    emit(y_out, last_in)
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(last_in):
                        m.next = "IDLE"

            with m.State("REDUCE"):
                m.d.comb += self.i_a.ready.eq(1)
                with m.If(a_fire):
                    m.d.sync += [a_max.eq(Mux(vmax > a_max, vmax, a_max)),
                                 a_sum.eq(a_sum + vsum), beat.eq(beat + 1)]
                    with m.If(last_in):
                        m.next = "REDUCE_OUT"

            with m.State("REDUCE_OUT"):
                with m.If(out_ok):
                    res = Mux(cmd.op == VecOp.ROW_MAX, a_max, a_sum)
                    emit([res] + [0] * (lanes - 1), 1)
                    m.next = "IDLE"

            with m.State("SM_MAX"):
                m.d.comb += [self.i_a.ready.eq(1), wr.addr.eq(beat), wr.en.eq(a_fire)]
                for i in range(lanes):
                    m.d.comb += [wr.data.x[i].eq(self.i_a.payload.data[i]),
                                 wr.data.valid[i].eq(xv[i])]
                with m.If(a_fire):
                    m.d.sync += [a_max.eq(Mux(vmax > a_max, vmax, a_max)), beat.eq(beat + 1)]
                    with m.If(last_in):
                        m.next = "SM_EXP"

            with m.State("SM_EXP"):
                read_pass(1)
                m.d.comb += [mode.eq(_Mode.SM_EXP), wr.addr.eq(rbeat), wr.en.eq(rv)]
                for i in range(lanes):
                    m.d.comb += [wr.data.x[i].eq(y[i]), wr.data.valid[i].eq(xv[i])]
                with m.If(rv):
                    m.d.sync += e_sum.eq(e_sum + esum_v)
                    with m.If(rbeat == nb - 1):
                        m.next = "SM_RECIP"

            with m.State("SM_RECIP"):
                m.d.sync += [ra.eq(0), rv.eq(0)]
                start_div(e_sum, Mux(cmd.wide, EXP_FRAC + 24,
                                     Mux(cmd.relu, EXP_FRAC + 15, EXP_FRAC + 16)), EXP_FRAC)

            with m.State("SM_NORM"):
                read_pass(out_ok)
                m.d.comb += mode.eq(_Mode.SM_NORM)
                with m.If(rv & out_ok):
                    emit(y_out, rbeat == nb - 1)
                    with m.If(rbeat == nb - 1):
                        m.next = "IDLE"

            with m.State("LN_SUMS"):
                m.d.comb += [self.i_a.ready.eq(1), wr.addr.eq(beat), wr.en.eq(a_fire),
                             mode.eq(_Mode.LN_SUMS)]
                for i in range(lanes):
                    m.d.comb += [wr.data.x[i].eq(y[i]), wr.data.valid[i].eq(inrow[i])]
                with m.If(a_fire):
                    m.d.sync += [s_sum.eq(s_sum + ssum_v), q_sum.eq(q_sum + qsum_v),
                                 beat.eq(beat + 1)]
                    with m.If(last_in):
                        m.next = "LN_VAR"

            with m.State("LN_VAR"):
                m.d.sync += var.eq(cmd.n * q_sum - s_sum * s_sum + cmd.eps)
                m.next = "LN_ROOT"

            with m.State("LN_ROOT"):
                bl = Signal(range(62))
                for b in range(61):
                    with m.If(var[b]):
                        m.d.comb += bl.eq(b + 1)
                jj = Signal(range(31))
                m.d.comb += jj.eq((61 - bl) >> 1)
                m.d.sync += [j.eq(jj), sq_v.eq(var << (jj << 1)), sq_res.eq(0),
                             sq_bit.eq(1 << 62)]
                m.next = "LN_SQRT"

            with m.State("LN_SQRT"):
                take = sq_v >= sq_res + sq_bit
                with m.If(take):
                    m.d.sync += [sq_v.eq(sq_v - (sq_res + sq_bit)),
                                 sq_res.eq((sq_res >> 1) + sq_bit)]
                with m.Else():
                    m.d.sync += sq_res.eq(sq_res >> 1)
                m.d.sync += sq_bit.eq(sq_bit >> 2)
                with m.If(sq_bit == 1):
                    m.next = "LN_RECIP"

            with m.State("LN_RECIP"):
                m.d.sync += [ra.eq(0), rv.eq(0)]
                start_div(sq_res, LN_RECIP_SHIFT, _LN_SD_LOG2)

            with m.State("DIV"):
                # floor(2**k / div_d), one quotient bit per cycle, most significant first
                rem2 = div_rem << 1
                ge = rem2 >= div_d
                m.d.sync += [div_rem.eq(Mux(ge, rem2 - div_d, rem2)),
                             div_q.eq((div_q << 1) | ge), div_i.eq(div_i - 1)]
                with m.If(div_i == 0):
                    m.d.sync += recip.eq(Mux(div_d == 0, 0, (div_q << 1) | ge))
                    with m.If(cmd.op == VecOp.SOFTMAX):
                        m.next = "SM_NORM"
                    with m.Else():
                        m.next = "LN_NORM"

            with m.State("LN_NORM"):
                adv = out_ok & (~rv | self.i_chan.valid)
                read_pass(adv)
                m.d.comb += [mode.eq(_Mode.LN_NORM), self.i_chan.ready.eq(rv & out_ok)]
                with m.If(rv & out_ok & self.i_chan.valid):
                    emit(y_out, rbeat == nb - 1)
                    with m.If(rbeat == nb - 1):
                        m.next = "IDLE"
        return m
