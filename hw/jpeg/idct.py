"""Dequantization, de-zig-zag and libjpeg's accurate integer 2-D IDCT (jidctint.c "islow").

Bit for bit :func:`s4accel.base.jpeg.idct_islow`: dequantize, then the first 1-D pass down each
column (CONST_BITS 13, PASS1_BITS 2, descale by 11), the second along each row (descale by 18),
+128 and clamp to 0..255. Every intermediate keeps its full width (Amaranth widens sums and
products), so the result is exact for any 16-bit coefficient and 16-bit quantizer, not only for
valid 8-bit data.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...base.jpeg import ZIGZAG
from .entropy import coef_layout

__all__ = ["Idct", "idct_1d", "qt_write_layout", "qtable_image", "row_layout"]

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


def idct_1d(d, shift):
    """jidctint.c's 1-D pass on 8 signed values: 12 constant multiplications; returns the 8
    outputs descaled (rounded) by ``shift`` bits, as Amaranth expressions of full width."""
    d0, d1, d2, d3, d4, d5, d6, d7 = d
    # even part
    z1 = (d2 + d6) * F0_541196100
    tmp2 = z1 + d6 * -F1_847759065
    tmp3 = z1 + d2 * F0_765366865
    tmp0 = (d0 + d4) << _CONST_BITS
    tmp1 = (d0 - d4) << _CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    # odd part
    t0, t1, t2, t3 = d7, d5, d3, d1
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * F1_175875602
    t0 = t0 * F0_298631336
    t1 = t1 * F2_053119869
    t2 = t2 * F3_072711026
    t3 = t3 * F1_501321110
    z1 = z1 * -F0_899976223
    z2 = z2 * -F2_562915447
    z3 = z3 * -F1_961570560 + z5
    z4 = z4 * -F0_390180644 + z5
    t0 = t0 + z1 + z3
    t1 = t1 + z2 + z4
    t2 = t2 + z2 + z3
    t3 = t3 + z1 + z4
    outs = (tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0,
            tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3)
    return [(x + (1 << (shift - 1))) >> shift for x in outs]


class Idct(wiring.Component):
    """Coefficient items in (one block after another, as :class:`.entropy.EntropyDecoder`
    emits them), 8x8 blocks of samples out, a row of 8 per transfer.

    A block's items (any order, any subset of the 64 zig-zag indices, the last one marked
    ``last``; a missing index is 0) are dequantized by component ``comp``'s table as they
    arrive (one per cycle) into one of two block buffers; the other buffer meanwhile goes
    through the IDCT: 8 cycles for the column pass (a column of 8 per cycle), then 8 cycles for
    the row pass, each row an ``o_row`` transfer carrying the block's ``comp`` and ``slot``.
    So a block takes 16 cycles once its last item is in, overlapped with the next block's
    items. The two passes never run at once, so they share one 1-D unit (12 multiplications,
    at the row pass's width), and the block buffers are eight small memories (a row of both
    buffers each, LUT RAM on an FPGA) with a bit per entry for "written": on ulx3s this is
    37 MULT18 instead of 61 for two units and buffers of registers, 6.1k LUT4 instead of
    10.3k and 3.7k flip-flops instead of 6.9k (yosys, the IDCT alone). ``i_qt`` is always ready; write tables only while no block of that component is
    inside. ``clear`` (a pulse) drops every block inside, a partly received one included, and
    the pending output row (a scan that ended with an error leaves such blocks behind).

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
        # written since the buffer's last release (a missing index reads 0), so a release
        # clears 64 bits, not 64 words.
        rows_mem = [Memory(shape=signed(32), depth=16, init=[]) for _ in range(8)]
        for i, mem in enumerate(rows_mem):
            m.submodules[f"bank_row{i}"] = mem
        written = [Signal(64, name=f"written{b}") for b in range(2)]
        full = [Signal(name=f"full{b}") for b in range(2)]
        tag = [Signal(6, name=f"tag{b}") for b in range(2)]   # Cat(comp, slot)
        wb = Signal()   # bank being filled
        rb = Signal()   # bank next read by the IDCT
        v1 = Signal()
        c1 = Signal(coef_layout)
        target = wb ^ (v1 & c1.last)
        take = self.i_coef.valid & ~Mux(target, full[1], full[0])
        m.d.comb += [self.i_coef.ready.eq(take), q_rd.addr.eq(Cat(self.i_coef.payload.k,
                                                                  self.i_coef.payload.comp)),
                     q_rd.en.eq(take)]
        m.d.sync += v1.eq(take)
        with m.If(take):
            m.d.sync += c1.eq(self.i_coef.payload)
        natural = Signal(6)
        m.d.comb += natural.eq(Array(Const(int(n), 6) for n in ZIGZAG)[c1.k])
        product = Signal(signed(32))
        m.d.comb += product.eq(c1.value * q_rd.data)
        release = Signal()
        col = Signal(3)
        row = Signal(3)
        pass2 = Signal()
        rd_col = []         # the column ``col`` of buffer ``rb``, row by row
        for i, mem in enumerate(rows_mem):
            wr = mem.write_port()
            rd = mem.read_port(domain="comb")
            m.d.comb += [wr.addr.eq(Cat(natural[:3], wb)), wr.data.eq(product),
                         wr.en.eq(v1 & (natural[3:] == i)), rd.addr.eq(Cat(col, rb))]
            bit = Mux(rb, written[1], written[0]).bit_select(Cat(col, Const(i, 3)), 1)
            rd_col.append(Mux(bit, rd.data, 0))
        for b in range(2):
            with m.If(v1 & (wb == b)):
                m.d.sync += written[b].eq(written[b] | (Const(1, 64) << natural))
                with m.If(c1.last):
                    m.d.sync += [full[b].eq(1), tag[b].eq(Cat(c1.comp, c1.slot))]
            with m.If(release & (rb == b)):
                m.d.sync += [full[b].eq(0), written[b].eq(0)]
        with m.If(v1 & c1.last):
            m.d.sync += wb.eq(~wb)

        # ---- IDCT: one 1-D unit, the column pass (8 cycles, a column of the buffer into the
        # workspace per cycle), then the row pass (8 cycles, a row of the workspace out per
        # cycle); the passes never overlap, so they share the unit's 12 multiplications
        out_tag = Signal(6)
        ws_shape = signed(max(x.shape().width
                              for x in idct_1d([Signal(signed(32))] * 8,
                                               _CONST_BITS - _PASS1_BITS)))
        ws = [[Signal(ws_shape, name=f"ws{i}_{j}") for j in range(8)] for i in range(8)]
        ws_row = [Array(ws[i][j] for i in range(8))[row] for j in range(8)]
        unit_in = [Signal(ws_shape, name=f"unit_in{i}") for i in range(8)]
        for i in range(8):
            m.d.comb += unit_in[i].eq(Mux(pass2, ws_row[i], rd_col[i]))
        p1 = idct_1d(unit_in, _CONST_BITS - _PASS1_BITS)
        p2 = idct_1d(unit_in, _CONST_BITS + _PASS1_BITS + 3)
        with m.If(~pass2 & Mux(rb, full[1], full[0])):
            for i in range(8):
                for j in range(8):
                    with m.If(col == j):
                        m.d.sync += ws[i][j].eq(p1[i])
            m.d.sync += col.eq(col + 1)
            with m.If(col == 7):
                m.d.comb += release.eq(1)
                m.d.sync += [pass2.eq(1), rb.eq(~rb), out_tag.eq(Mux(rb, tag[1], tag[0]))]

        with m.If(self.o_row.ready):
            m.d.sync += self.o_row.valid.eq(0)
        with m.If(pass2 & (~self.o_row.valid | self.o_row.ready)):
            o = self.o_row.payload
            m.d.sync += [self.o_row.valid.eq(1), o.comp.eq(out_tag[:2]), o.slot.eq(out_tag[2:]),
                         o.row.eq(row), o.last.eq(row == 7), row.eq(row + 1)]
            for j in range(8):
                s = p2[j] + 128
                m.d.sync += o.pixels[j].eq(Mux(s < 0, 0, Mux(s > 255, 255, s[:8])))
            with m.If(row == 7):
                m.d.sync += pass2.eq(0)
        with m.If(self.clear):
            m.d.sync += [v1.eq(0), wb.eq(0), rb.eq(0), col.eq(0), row.eq(0), pass2.eq(0),
                         self.o_row.valid.eq(0), *(f.eq(0) for f in full),
                         *(w.eq(0) for w in written)]
        return m
