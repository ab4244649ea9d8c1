"""Dequantization, de-zig-zag and libjpeg's accurate integer 2-D IDCT (jidctint.c "islow").

Bit for bit :func:`s4accel.base.jpeg.idct_islow`: dequantize, then the first 1-D pass down each
column (CONST_BITS 13, PASS1_BITS 2, descale by 11), the second along each row (descale by 18),
+128 and clamp to 0..255. Every intermediate is held at the width its bound needs (each is a
linear form of the inputs: ``_bounds``), so the result is exact for any 16-bit coefficient and
16-bit quantizer, not only for valid 8-bit data.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...base.jpeg import ZIGZAG
from ..core.dsp import registered_product
from ..core.lutmux import word_select
from .entropy import coef_layout

__all__ = ["UNIT_LATENCY", "Idct", "qt_write_layout", "qtable_image", "row_layout"]

#: A quantizer write: entry ``k`` (zig-zag order, as DQT lists them) of component ``comp``'s
#: table.
qt_write_layout = data.StructLayout({"comp": 2, "k": 6, "data": 16})

#: One row of an output block: 8 samples, left to right; ``last`` on row 7.
row_layout = data.StructLayout({
    "comp": 2, "slot": 4, "row": 3, "last": 1, "pixels": data.ArrayLayout(unsigned(8), 8),
})


def qtable_image(qtable, comp: int) -> list[tuple[int, int, int]]:
    """The ``(comp, k, data)`` writes that program `qtable` (64 values in natural order, as
    :class:`s4accel.base.jpeg.JpegTables` keeps them) as component `comp`'s quantizer."""
    if not 0 <= comp < 4:
        raise ValueError(f"comp must be 0..3, not {comp}")
    return [(comp, k, int(qtable[int(ZIGZAG[k])])) for k in range(64)]


_CONST_BITS, _PASS1_BITS = 13, 2


# jidctint.c's FIX_* constants: round(x * 2**13)
F0_298631336, F0_390180644, F0_541196100, F0_765366865 = 2446, 3196, 4433, 6270
F0_899976223, F1_175875602, F1_501321110, F1_847759065 = 7373, 9633, 12299, 15137
F1_961570560, F2_053119869, F2_562915447, F3_072711026 = 16069, 16819, 20995, 25172


class Idct(wiring.Component):
    """Coefficient items in (one block after another, as :class:`.entropy.EntropyDecoder`
    emits them), 8x8 blocks of samples out, a row of 8 per transfer.

    A block's items (any order, any subset of the 64 zig-zag indices, the last one marked
    ``last``; a missing index is 0) are dequantized by component ``comp``'s table as they
    arrive (one per cycle; the quantizer's block RAM read, then the product, each registered)
    into one of two block buffers, full three cycles after the block's last item; the other
    buffer meanwhile goes through the IDCT. The two 1-D passes never run at once, so they
    share one 1-D unit (12 multiplications), pipelined for the FPGA clock: a vector goes in
    each cycle and comes out :data:`UNIT_LATENCY` cycles later (operand registers, the first
    sums, the products' 17-bit pieces, the products, three levels of sums), every value at the
    width its bound needs (:func:`_bounds`). The column pass puts a column of the buffer in
    per cycle (8 cycles; the buffer is then free), waits for the last column's result in the
    workspace, then the row pass puts a row of the workspace in per cycle (8 cycles), each
    result a row of samples into an 8-row output queue (``o_row``, carrying the block's
    ``comp`` and ``slot``): a block every ``16 + UNIT_LATENCY`` cycles once its last item is
    in, overlapped with the next block's items. The row pass issues a row only while the
    queue has room for it, so the unit never stalls (:func:`s4accel.sim.model.perf_model
    .decode_scan_cycles` places these cycles). The block buffers are eight small memories (a
    row of both buffers each, LUT RAM on an FPGA) with a bit per entry for "written", so a
    release clears 64 bits, not 64 words. ``i_qt`` is always ready; write tables only while no
    block of that component is inside. ``clear`` (a pulse) drops every block inside, a partly
    received one, the unit's pipeline and the output queue included (a scan that ended with
    an error leaves such blocks behind).

    Members
    -------
    i_coef : In(stream.Signature(coef_layout))
    i_qt : In(stream.Signature(qt_write_layout))
    o_row : Out(stream.Signature(row_layout))
    clear : In(1)
    """

    i_coef: In(stream.Signature(coef_layout))
    i_qt: In(stream.Signature(qt_write_layout))
    o_row: Out(stream.Signature(row_layout))
    clear: In(1)

    def elaborate(self, platform):
        m = Module()

        # ---- quantizers, read at the item's transfer
        m.submodules.qt = qt = Memory(shape=16, depth=4 * 64, init=[])
        q_rd = qt.read_port()
        q_wr = qt.write_port()
        w = self.i_qt.payload
        m.d.comb += [self.i_qt.ready.eq(1), q_wr.addr.eq(Cat(w.k, w.comp)), q_wr.data.eq(w.data),
                     q_wr.en.eq(self.i_qt.valid)]

        # ---- block buffers: natural order, dequantized. Row ``i`` of both buffers is one
        # small memory (LUT RAM on an FPGA), word ``8 * buffer + column``, read a column at a
        # time (all 8 rows at once, asynchronously); a bit per entry says whether it was
        # written since the buffer's last release (a missing index reads 0).
        # An item: taken (``i_coef``, the quantizer read: a block RAM, its output registered
        # next, ``v2``), its product registered (``v3``), then written.
        rows_mem = [Memory(shape=signed(32), depth=16, init=[]) for _ in range(8)]
        for i, mem in enumerate(rows_mem):
            m.submodules[f"bank_row{i}"] = mem
        written = [Signal(64, name=f"written{b}") for b in range(2)]
        full = [Signal(name=f"full{b}") for b in range(2)]
        tag = [Signal(6, name=f"tag{b}") for b in range(2)]   # Cat(comp, slot)
        wb = Signal()   # bank being filled
        rb = Signal()   # bank next read by the IDCT
        v1, v2, v3 = Signal(), Signal(), Signal()
        c1, c2, c3 = Signal(coef_layout), Signal(coef_layout), Signal(coef_layout)
        # the bank an item taken now goes to: the items in flight may end the current block;
        # with two blocks' last items in flight that is the bank the first of them fills
        ends = [v1 & c1.last, v2 & c2.last, v3 & c3.last]
        target = wb ^ ends[0] ^ ends[1] ^ ends[2]
        two_ends = (ends[0] & ends[1]) | (ends[0] & ends[2]) | (ends[1] & ends[2])
        take = self.i_coef.valid & ~Mux(target, full[1], full[0]) & ~two_ends
        m.d.comb += [self.i_coef.ready.eq(take), q_rd.addr.eq(Cat(self.i_coef.payload.k,
                                                                  self.i_coef.payload.comp)),
                     q_rd.en.eq(take)]
        m.d.sync += [v1.eq(take), v2.eq(v1), v3.eq(v2)]
        with m.If(take):
            m.d.sync += c1.eq(self.i_coef.payload)
        quant = Signal(16)
        with m.If(v1):
            m.d.sync += [c2.eq(c1), quant.eq(q_rd.data)]
        natural = Signal(6)
        m.d.comb += natural.eq(Array(Const(int(n), 6) for n in ZIGZAG)[c3.k])
        product = Signal(signed(32))
        with m.If(v2):
            m.d.sync += [c3.eq(c2), product.eq(c2.value * quant)]
        release = Signal()
        col = Signal(3)
        # copies of ``col`` and ``rb`` for the "written" bits' select (the originals address
        # the 64 LUT RAM cells; one flip-flop for both would be far from the select)
        # (kept inverted, so that synthesis cannot merge them with the originals: yosys
        # merges flip-flops with the same inputs, a "keep" on the wire notwithstanding)
        col_wn = Signal(3, init=7)
        rb_wn = Signal(init=1)
        col_w, rb_w = Signal(3), Signal()
        m.d.comb += [col_w.eq(~col_wn), rb_w.eq(~rb_wn)]
        rd_col = []         # the column ``col`` of buffer ``rb``, row by row
        rd_bits = []        # and whether each of its entries was written (else it reads 0)
        for i, mem in enumerate(rows_mem):
            wr = mem.write_port()
            rd = mem.read_port(domain="comb")
            m.d.comb += [wr.addr.eq(Cat(natural[:3], wb)), wr.data.eq(product),
                         wr.en.eq(v3 & (natural[3:] == i)), rd.addr.eq(Cat(col, rb))]
            rd_col.append(rd.data)
            rd_bits.append(Mux(rb_w, written[1], written[0]).bit_select(Cat(col_w, Const(i, 3)),
                                                                         1))
        for b in range(2):
            with m.If(v3 & (wb == b)):
                m.d.sync += written[b].eq(written[b] | (Const(1, 64) << natural))
                with m.If(c3.last):
                    m.d.sync += [full[b].eq(1), tag[b].eq(Cat(c3.comp, c3.slot))]
            with m.If(release & (rb == b)):
                m.d.sync += [full[b].eq(0), written[b].eq(0)]
        with m.If(v3 & c3.last):
            m.d.sync += wb.eq(~wb)

        # ---- the 1-D unit: a vector in per cycle (``issue``), its 8 results UNIT_LATENCY
        # cycles later; ``meta`` travels beside it (pass, index, the block's tag)
        ws_shape = _width(_ROW_IN_BOUND)
        meta_layout = data.StructLayout({"valid": 1, "pass2": 1, "idx": 3, "tag": 6})
        issue = Signal(meta_layout)             # this cycle's input (valid: something goes in)
        # the column pass's column (``rd_col``, with its "written" bits) and the row pass's
        # row of the workspace, each registered every cycle as the unit's operands; the pass
        # and the bits pick after the registers (timing: the LUT RAM read and the bits'
        # select end at registers)
        row_vec = [Signal(ws_shape, name=f"row_vec{i}") for i in range(8)]
        results, meta_out = _unit(m, rd_col, rd_bits, row_vec, issue, meta_layout, self.clear,
                                  platform)

        # workspace: the column pass's results, read a row at a time by the row pass
        ws = [[Signal(ws_shape, name=f"ws{i}_{j}") for j in range(8)] for i in range(8)]
        with m.If(meta_out.valid & ~meta_out.pass2):
            for i in range(8):
                for j in range(8):
                    with m.If(meta_out.idx == j):
                        m.d.sync += ws[i][j].eq(results[i] >> (_CONST_BITS - _PASS1_BITS))

        # output queue: a row of samples (clamped; the +128 is in the rounding constant)
        m.submodules.queue = queue = ResetInserter(self.clear)(
            SyncFIFOBuffered(width=row_layout.size, depth=8))
        qrow = Signal(row_layout)
        m.d.comb += [qrow.comp.eq(meta_out.tag[:2]), qrow.slot.eq(meta_out.tag[2:]),
                     qrow.row.eq(meta_out.idx), qrow.last.eq(meta_out.idx == 7)]
        for j in range(8):
            s = results[j] >> (_CONST_BITS + _PASS1_BITS + 3)
            m.d.comb += qrow.pixels[j].eq(Mux(s < 0, 0, Mux(s > 255, 255, s[:8])))
        m.d.comb += [queue.w_data.eq(qrow), queue.w_en.eq(meta_out.valid & meta_out.pass2),
                     self.o_row.payload.eq(queue.r_data), self.o_row.valid.eq(queue.r_rdy),
                     queue.r_en.eq(self.o_row.ready)]
        pending = Signal(range(9))              # rows issued and not yet taken
        taken = self.o_row.valid & self.o_row.ready
        m.d.sync += pending.eq(pending + (issue.valid & issue.pass2) - taken)

        # ---- the schedule: column pass, wait for its last result, row pass
        row = Signal(3)
        wait = Signal(range(UNIT_LATENCY + 1))
        out_tag = Signal(6)
        m.d.comb += [row_vec[j].eq(word_select(m, Cat(*(ws[i][j] for i in range(8))), row,
                                               len(ws[0][j]), platform=platform,
                                               name=f"row_sel{j}"))
                     for j in range(8)]
        with m.FSM(name="idct_pass") as fsm:
            with m.State("COL"):
                with m.If(Mux(rb, full[1], full[0])):
                    m.d.comb += [issue.valid.eq(1), issue.idx.eq(col)]
                    m.d.sync += [col.eq(col + 1), col_wn.eq(~(col + 1))]
                    with m.If(col == 7):
                        m.d.comb += release.eq(1)
                        m.d.sync += [rb.eq(~rb), rb_wn.eq(rb), out_tag.eq(Mux(rb, tag[1], tag[0])),
                                     wait.eq(UNIT_LATENCY - 1)]
                        m.next = "WAIT"
            with m.State("WAIT"):
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 0):
                    m.next = "ROW"
            with m.State("ROW"):
                with m.If(pending < 8):
                    m.d.comb += [issue.valid.eq(1), issue.pass2.eq(1), issue.idx.eq(row),
                                 issue.tag.eq(out_tag)]
                    m.d.sync += row.eq(row + 1)
                    with m.If(row == 7):
                        m.next = "COL"
        with m.If(self.clear):
            m.d.sync += [v1.eq(0), v2.eq(0), v3.eq(0), wb.eq(0), rb.eq(0), col.eq(0), rb_wn.eq(1),
                         col_wn.eq(7), row.eq(0),
                         pending.eq(0), *(f.eq(0) for f in full), *(w.eq(0) for w in written)]
            m.d.sync += fsm.state.eq(0)
        return m


#: Cycles from a vector going into the IDCT's 1-D unit to its results: operands, first sums,
#: the products' pieces, the products, three levels of sums.
UNIT_LATENCY = 7

_P1_SHIFT, _P2_SHIFT = _CONST_BITS - _PASS1_BITS, _CONST_BITS + _PASS1_BITS + 3
#: each pass's rounding constant: the column pass's, the row pass's with the +128 after
#: the descale shifted up
_RND = (1 << (_P1_SHIFT - 1), (1 << (_P2_SHIFT - 1)) + (128 << _P2_SHIFT))


def _stage2(s):
    t0, t1, t2, t3 = s["d7"], s["d5"], s["d3"], s["d1"]
    return {"e26": s["d2"] + s["d6"], "e04p": s["d0"] + s["d4"], "e04m": s["d0"] - s["d4"],
            "d2": s["d2"], "d6": s["d6"], "z1s": t0 + t3, "z2s": t1 + t2, "z3s": t0 + t2,
            "z4s": t1 + t3, "t0": t0, "t1": t1, "t2": t2,
            "t3": t3, "rnd": s["rnd"]}


#: the unit's products: name -> (operand, constant). The constants are all positive
#: (jidctint.c's negative ones are subtracted in the next sums): a product by a negative
#: constant costs a negation after the multiplier. jidctint.c's
#: ``z5 = (z3 + z4) * FIX(1.175875602)``, ``z3 = z5 - z3 * FIX(1.961570560)`` and
#: ``z4 = z5 - z4 * FIX(0.390180644)`` are taken apart, exactly (integers):
#: ``z3 = z4s * c5 - z3s * (c3 - c5)``, ``z4 = z3s * c5 + z4s * (c5 - c4)``, so no sum of
#: two sums (``z3s + z4s``) waits before a multiplier (one product more).
_PRODUCTS = {
    "z1": ("e26", F0_541196100), "p_d6": ("d6", F1_847759065), "m_d2": ("d2", F0_765366865),
    "m_t0": ("t0", F0_298631336), "m_t1": ("t1", F2_053119869),
    "m_t2": ("t2", F3_072711026), "m_t3": ("t3", F1_501321110),
    "p_z1": ("z1s", F0_899976223), "p_z2": ("z2s", F2_562915447),
    "z3a": ("z4s", F1_175875602), "z3b": ("z3s", F1_961570560 - F1_175875602),
    "z4a": ("z3s", F1_175875602), "z4b": ("z4s", F1_175875602 - F0_390180644),
}


def _stage3(s):
    return ({n: s[a] * c for n, (a, c) in _PRODUCTS.items()}
            | {"tmp0": (s["e04p"] << _CONST_BITS) + s["rnd"],
               "tmp1": (s["e04m"] << _CONST_BITS) + s["rnd"]})


def _stage4(s):
    return {"tmp2": s["z1"] - s["p_d6"], "tmp3": s["z1"] + s["m_d2"], "tmp0": s["tmp0"],
            "tmp1": s["tmp1"], "z3": s["z3a"] - s["z3b"], "z4": s["z4a"] + s["z4b"],
            "u0": s["m_t0"] - s["p_z1"], "u1": s["m_t1"] - s["p_z2"],
            "u2": s["m_t2"] - s["p_z2"], "u3": s["m_t3"] - s["p_z1"]}


def _stage5(s):
    return {"tmp10": s["tmp0"] + s["tmp3"], "tmp13": s["tmp0"] - s["tmp3"],
            "tmp11": s["tmp1"] + s["tmp2"], "tmp12": s["tmp1"] - s["tmp2"],
            "o0": s["u0"] + s["z3"], "o1": s["u1"] + s["z4"], "o2": s["u2"] + s["z3"],
            "o3": s["u3"] + s["z4"]}


def _stage6(s):
    a = (s["tmp10"] + s["o3"], s["tmp11"] + s["o2"], s["tmp12"] + s["o1"],
         s["tmp13"] + s["o0"], s["tmp13"] - s["o0"], s["tmp12"] - s["o1"],
         s["tmp11"] - s["o2"], s["tmp10"] - s["o3"])
    return {f"out{i}": x for i, x in enumerate(a)}


#: the unit's register stages after its operands (``d0``..``d7`` and ``rnd``): jidctint.c's
#: 1-D pass, each pass's rounding constant added to the even part's first term
_STAGES = (_stage2, _stage3, _stage4, _stage5, _stage6)


def _bounds():
    """The largest magnitude of every value of the unit, for either pass: each is a linear
    form of the 8 inputs and the rounding constant, so its bound is the sum of its
    coefficients' magnitudes times the inputs' bound. The column pass's inputs are products
    of a 16-bit signed coefficient and a 16-bit quantizer (magnitude below ``2**31``), the
    row pass's the column pass's descaled results. Returns ({name: bound} per stage, the row
    pass's input bound)."""
    def run(d, rnd):
        s = {f"d{i}": d[i] for i in range(8)} | {"rnd": rnd}
        out = [s]
        for f in _STAGES:
            out.append(f(out[-1]))
        return out
    basis = [run([int(i == k) for i in range(8)], 0) for k in range(8)]
    const = run([0] * 8, 1)

    def bound(b_in, rnd):
        return [{n: sum(abs(b[k][n]) for b in basis) * b_in + abs(c[n]) * rnd for n in c}
                for k, c in enumerate(const)]
    b_col = bound((1 << 31) - 1, _RND[0])
    b_row_in = max((v >> _P1_SHIFT) + 1 for v in b_col[-1].values())
    b_row = bound(b_row_in, _RND[1])
    return [{n: max(a[n], b[n]) for n in a} for a, b in zip(b_col, b_row, strict=True)], b_row_in


_UNIT_BOUNDS, _ROW_IN_BOUND = _bounds()


def _width(bound: int):
    """The signed shape that holds -bound .. bound."""
    return signed(bound.bit_length() + 1)


#: the widest operand piece whose product by a constant comes from a table of constants
#: (``2**SMALL_PIECE`` entries: at most 4 inputs a product bit, one LUT4 each)
SMALL_PIECE = 4


def _table_product(m, piece, c: int, *, width: int, name: str):
    """``piece * c`` (``piece`` signed, at most :data:`SMALL_PIECE` bits; ``c`` a constant),
    registered, from a table of the ``2**len(piece)`` products: no multiplier."""
    p = Signal(signed(width), name=name, reset_less=True)
    w = len(piece)
    with m.Switch(piece.as_unsigned()):
        for u in range(1 << w):
            v = u - (1 << w) if u >> (w - 1) else u       # the piece's signed value
            with m.Case(u):
                m.d.sync += p.eq(v * c)
    return p


def _unit(m, col_vec, col_bits, row_vec, meta, meta_layout, clear, platform=None):
    """jidctint.c's 1-D pass as a pipeline of UNIT_LATENCY register stages on `meta` and 8
    signed values: `row_vec` if ``meta.pass2``, else `col_vec` where its bit in `col_bits` is
    set and 0 where it is not (all three are registered every cycle, and the pass and the
    bits pick after the registers: one LUT4 a bit, as the pass's 2:1 alone, and no "written"
    select into the operand registers' resets). Returns the 8 sums before descaling
    (the pass's rounding constant, and for the row pass the +128 shifted up, already added)
    and the meta of that vector. Every value is held at the width its bound needs
    (:func:`_bounds`), so the result is exact for every input the buffers can hold."""
    metas = [meta]
    for k in range(UNIT_LATENCY):
        nm = Signal(meta_layout, name=f"unit_meta{k + 1}")
        m.d.sync += nm.eq(metas[-1])
        with m.If(clear):
            m.d.sync += nm.valid.eq(0)
        metas.append(nm)

    def regs(values, k):
        out = {}
        for n, v in values.items():
            out[n] = Signal(_width(_UNIT_BOUNDS[k][n]), name=f"unit{k + 1}_{n}")
            m.d.sync += out[n].eq(v)
        return out
    cols = regs({f"d{i}": x for i, x in enumerate(col_vec)}, 0)
    rows = regs({f"d{i}": x for i, x in enumerate(row_vec)}, 0)
    bits = Signal(8, name="unit1_written")
    m.d.sync += bits.eq(Cat(*col_bits))
    s = {f"d{i}": Mux(metas[1].pass2, rows[f"d{i}"], Mux(bits[i], cols[f"d{i}"], 0))
         for i in range(8)}
    s["rnd"] = Mux(metas[1].pass2, *_RND[::-1])
    s = regs(_stage2(s), 1)
    # the products: each operand cut into 17-bit pieces (the top one signed, at most 18
    # bits), so that each piece's product is one 18x18 multiplier; the pieces' products are
    # registered (:func:`registered_product` without input registers: on the ECP5 the DSP
    # block's own output register, so no path runs fabric -> multiplier -> fabric in one
    # cycle), then summed in the next stage. A top piece of at most SMALL_PIECE bits (the
    # operands are 37 or 38 bits: pieces of 17, 17 and 3 or 4) takes its product from a
    # table of constants instead (one LUT4 a product bit, into a register): 13 of the
    # unit's 39 multiplier blocks, on an ECP5 whose 156 the ``fpga`` build with the
    # decoder had filled to 92 %
    parts = {n: [] for n in _PRODUCTS}      # (the piece's offset, its registered product)
    for n, (a, c) in _PRODUCTS.items():
        x, lo = s[a], 0
        pieces = []
        while len(x) - lo > 18:
            pieces.append((lo, Cat(x[lo:lo + 17], Const(0, 1)).as_signed()))  # 18 x 16 bits
            lo += 17
        pieces.append((lo, x[lo:].as_signed()))
        for lo, piece in pieces:
            k = Const(c, signed(c.bit_length() + 1))
            name = f"unit3_{n}_p{lo}"
            if len(piece) <= SMALL_PIECE:
                parts[n].append((lo, _table_product(m, piece, c, width=len(piece) + len(k),
                                                    name=name)))
            else:
                parts[n].append((lo, registered_product(
                    m, piece, k, width=len(piece) + len(k), platform=platform, name=name,
                    in_regs=False)))
    even = regs({t: v for t, v in _stage3(s).items() if t in ("tmp0", "tmp1")}, 2)
    summed = {n: sum(p << lo for lo, p in pieces) for n, pieces in parts.items()}
    s = regs(summed | even, 2)
    for k, f in enumerate(_STAGES[2:]):
        s = regs(f(s), k + 3)
    return [s[f"out{i}"] for i in range(8)], metas[-1]
