"""Output stage: bias, per-channel requantization, ReLU and a 256-entry lookup table."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ...base.golden import MULT_BITS, SHIFT_MAX
from .bram import RegisteredRam
from .dsp import registered_product
from .lutmux import shift_units

__all__ = ["OutMode", "Requantizer", "requant_in_layout", "result_layout", "lut_write_layout"]


class OutMode(enum.Enum, shape=1):
    """Output mode of a tile."""
    RAW = 0   #: int32 accumulators plus bias
    INT8 = 1  #: requantized int8 (sign-extended to 32 bits on the result stream)


def requant_in_layout(cols):
    """One row of accumulators with the per-channel parameters that finish it."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(32), cols),
        "bias": data.ArrayLayout(signed(32), cols),
        "mult": data.ArrayLayout(unsigned(MULT_BITS), cols),
        "shift": data.ArrayLayout(unsigned(6), cols),
        "mode": OutMode,
        "relu": 1,
        "lut": 1,
        "last": 1,
    })


def result_layout(cols):
    """One output row: ``cols`` channels; ``last`` marks the final row of a tile."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(32), cols),
        "last": 1,
    })


lut_write_layout = data.StructLayout({"addr": 8, "data": signed(8)})

#: Pipeline depth of the requantizer in cycles.
REQUANT_LATENCY = 9


def _at_most(x, k):
    """``x <= k`` for a constant ``k`` as AND / OR terms (LUTs, not a carry chain)."""
    if k < 0:
        return Const(0)
    if k >= (1 << len(x)) - 1:
        return Const(1)
    top = x[-1]
    rest = _at_most(x[:-1], k & ((1 << (len(x) - 1)) - 1)) if len(x) > 1 else Const(1)
    return (~top | rest) if (k >> (len(x) - 1)) & 1 else (~top & rest)


class Requantizer(wiring.Component):
    """Bias, requantization, ReLU and LUT for one row of ``cols`` channels per cycle.

    Implements :func:`s4accel.base.golden.requantize` bit for bit, in nine pipeline stages
    that stall together when the output is not taken: bias add; two 16 x 16 partial products;
    their sum; the rounding shift; the rounding add; saturation and ReLU; LUT address; LUT
    data; output select. One operation per stage keeps every path short enough for 100 MHz on
    an ECP5 (the LUT's block RAM has a register on its address and one on its data).

    Members
    -------
    i_row : In(stream.Signature(requant_in_layout(cols)))
    o_res : Out(stream.Signature(result_layout(cols)))
    i_lut : In(stream.Signature(lut_write_layout))
        Always ready. Writes one LUT entry per transfer (a cycle later); entry ``addr`` maps
        the int8 value ``addr - 128``.
    """

    def __init__(self, cols):
        if not isinstance(cols, int) or cols <= 0:
            raise ValueError(f"cols must be a positive integer, not {cols!r}")
        self._cols = cols
        super().__init__({
            "i_row": In(stream.Signature(requant_in_layout(cols))),
            "o_res": Out(stream.Signature(result_layout(cols))),
            "i_lut": In(stream.Signature(lut_write_layout)),
        })

    @property
    def cols(self):
        return self._cols

    def elaborate(self, platform):
        m = Module()
        cols = self._cols
        run = Signal()
        m.d.comb += [run.eq(~self.o_res.valid | self.o_res.ready), self.i_row.ready.eq(run),
                     self.i_lut.ready.eq(1)]

        row = self.i_row.payload
        # valid, mode, relu, lut, last travel together: f[k] belongs to the row in stage k + 1
        depth = REQUANT_LATENCY - 2
        f = [Signal(5, name=f"f{k + 1}") for k in range(depth)]
        flags_in = Cat(self.i_row.valid, row.mode, row.relu, row.lut, row.last)
        valid_o, last_o = Signal(), Signal()     # the row in the output-select stage
        with m.If(run):
            m.d.sync += [f[0].eq(flags_in), *(f[k].eq(f[k - 1]) for k in range(1, depth)),
                         valid_o.eq(f[-1][0]), last_o.eq(f[-1][4]),
                         self.o_res.valid.eq(valid_o), self.o_res.payload.last.eq(last_o)]
        mode_o, lut_o = Signal(), Signal()
        data_o = Signal(data.ArrayLayout(signed(32), cols), reset_less=True)
        m.d.comb += self.o_res.payload.data.eq(data_o)
        with m.If(run):
            m.d.sync += [mode_o.eq(f[-1][1]), lut_o.eq(f[-1][3])]

        # LUT entries are written a cycle after their transfer, from registers (the write
        # enable reaches a block RAM per column)
        lw_en = Signal()
        lw_addr = Signal(8, reset_less=True)
        lw_data = Signal(8, reset_less=True)
        m.d.sync += [lw_en.eq(self.i_lut.valid), lw_addr.eq(self.i_lut.payload.addr),
                     lw_data.eq(self.i_lut.payload.data)]
        for c in range(cols):
            # the raw value travels alongside for RAW mode
            v = [Signal(signed(32), name=f"v{k + 1}_{c}", reset_less=True)
                 for k in range(REQUANT_LATENCY - 1)]
            sh = [Signal(6, name=f"sh{k + 1}_{c}", reset_less=True) for k in range(3)]
            # 32 x 16 product as two 16 x 16 partial products (one DSP each, with its input and
            # output registers: the sum and the multiplier are registered inside the DSP
            # alongside v1, the products a cycle later), then their sum
            sum0 = Signal(signed(32), name=f"sum0_{c}")
            m.d.comb += sum0.eq(row.data[c] + row.bias[c])
            mult0 = Cat(row.mult[c], Const(0, 1)).as_signed()
            pl2 = registered_product(m, Cat(sum0[:16], Const(0, 1)).as_signed(), mult0,
                                     width=33, platform=platform, name=f"pl2_{c}",
                                     en_in=run, en_out=run)[:32]
            ph2 = registered_product(m, sum0[16:].as_signed(), mult0, width=33,
                                     platform=platform, name=f"ph2_{c}", en_in=run, en_out=run)
            t3 = Signal(signed(32 + MULT_BITS), name=f"t3_{c}", reset_less=True)
            # round half up = h + b with h = floor(t / 2^sh) and b = bit (sh-1) of t, then
            # saturate. Only 9 bits of (t << 1) >> sh are shifted out (b, then h's low 8 bits):
            # whether h fits in int8 is told by t's bits from sh + 7 up, which must all equal
            # its sign (a thermometer of sh picks them), so no 49-bit shifter, adder or compare
            # is built. A fitting h rounds past 127 only from 127; h = -129 rounds to -128, the
            # value saturation gives it too
            tb = 32 + MULT_BITS
            u4 = Signal(9, name=f"u4_{c}", reset_less=True)           # b, then h[7:0]
            fit4 = Signal(name=f"fit4_{c}", reset_less=True)          # -128 <= h <= 127
            neg4 = Signal(name=f"neg4_{c}", reset_less=True)          # t < 0
            over = Signal(name=f"over_{c}")
            m.d.comb += over.eq(Cat(*((t3[i] ^ t3[tb - 1]) & _at_most(sh[2], i - 7)
                                      for i in range(7, tb - 1))).any())
            # (t << 1) >> sh, sign-extended far enough for every shift, low 9 bits
            u4_next = shift_units(m, Cat(Const(0, 1), t3, t3[tb - 1].replicate(8)), sh[2], 1, 9,
                                  platform=platform, name=f"u4_sh_{c}")
            r5 = Signal(8, name=f"r5_{c}", reset_less=True)
            sat = Signal(signed(8), name=f"sat_{c}")
            # r5 > 127 / r5 < -128, decided from u4 alongside the add, so no compare sits in
            # front of the LUT's address
            hi5 = Signal(name=f"hi5_{c}")
            lo5 = Signal(name=f"lo5_{c}")
            y6 = Signal(signed(8), name=f"y6_{c}", reset_less=True)
            y7 = Signal(signed(8), name=f"y7_{c}", reset_less=True)
            y8 = Signal(signed(8), name=f"y8_{c}", reset_less=True)
            t8 = Signal(signed(8), name=f"t8_{c}")     # the LUT's entry (a RAM register)
            y6_next = Signal(signed(8), name=f"y6_next_{c}")
            m.d.comb += [sat.eq(Mux(hi5, 127, Mux(lo5, -128, r5.as_signed()))),
                         y6_next.eq(Mux(f[4][2] & sat[7], 0, sat))]
            with m.If(run):
                m.d.sync += [
                    v[0].eq(sum0),
                    *(v[k].eq(v[k - 1]) for k in range(1, REQUANT_LATENCY - 1)),
                    sh[0].eq(Mux(row.shift[c] > SHIFT_MAX, SHIFT_MAX, row.shift[c])),
                    sh[1].eq(sh[0]),
                    sh[2].eq(sh[1]),
                    t3.eq((ph2 << 16) + pl2),
                    u4.eq(u4_next),
                    fit4.eq(~over),
                    neg4.eq(t3[tb - 1]),
                    r5.eq(u4[1:] + u4[0]),
                    hi5.eq(~neg4 & (~fit4 | ((u4[1:] == 0x7F) & u4[0]))),
                    lo5.eq(neg4 & ~fit4),
                    y6.eq(y6_next),
                ]

            # the LUT: addressed by its own register (loaded with y6, so its only loads are
            # the RAM's address pins), read in the cycle that registers y7; its entry lands
            # in the RAM's output register (t8, see RegisteredRam) alongside y8
            m.submodules[f"lut_{c}"] = lut = RegisteredRam(width=8, depth=256)
            a6 = Signal(8, name=f"a6_{c}", reset_less=True)
            with m.If(run):
                m.d.sync += a6.eq(y6_next.as_unsigned() ^ 0x80)
            m.d.comb += [
                lut.w_en.eq(lw_en), lut.w_addr.eq(lw_addr), lut.w_data.eq(lw_data),
                lut.r_en.eq(run), lut.r_oce.eq(run), lut.r_addr.eq(a6),
                t8.eq(lut.r_data.as_signed()),
            ]
            with m.If(run):
                m.d.sync += [
                    y7.eq(y6),
                    y8.eq(y7),
                    data_o[c].eq(Mux(mode_o == OutMode.RAW.value, v[-1],
                                     Mux(lut_o, t8, y8))),
                ]
        return m
