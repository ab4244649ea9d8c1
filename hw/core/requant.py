"""Output stage: bias, per-channel requantization, ReLU and a 256-entry lookup table."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...sim.golden import MULT_BITS, SHIFT_MAX

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
REQUANT_LATENCY = 4


class Requantizer(wiring.Component):
    """Bias, requantization, ReLU and LUT for one row of ``cols`` channels per cycle.

    Implements :func:`s4accel.sim.golden.requantize` bit for bit, in four pipeline stages
    (bias add, multiply, round/shift/saturate/ReLU, LUT read) that stall together when the
    output is not taken.

    Members
    -------
    i_row : In(stream.Signature(requant_in_layout(cols)))
    o_res : Out(stream.Signature(result_layout(cols)))
    i_lut : In(stream.Signature(lut_write_layout))
        Always ready. Writes one LUT entry per transfer; entry ``addr`` maps the int8 value ``addr - 128``.
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
        # valid, mode, relu, lut, last travel together
        f1, f2, f3 = Signal(5), Signal(5), Signal(5)
        flags_in = Cat(self.i_row.valid, row.mode, row.relu, row.lut, row.last)
        with m.If(run):
            m.d.sync += [f1.eq(flags_in), f2.eq(f1), f3.eq(f2), self.o_res.valid.eq(f3[0]),
                         self.o_res.payload.last.eq(f3[4])]
        mode4, lut4 = Signal(), Signal()
        with m.If(run):
            m.d.sync += [mode4.eq(f3[1]), lut4.eq(f3[3])]

        for c in range(cols):
            v1 = Signal(signed(32), name=f"v1_{c}")
            mult1 = Signal(MULT_BITS, name=f"mult1_{c}")
            sh1, sh2 = Signal(6, name=f"sh1_{c}"), Signal(6, name=f"sh2_{c}")
            v2, v3, v4 = (Signal(signed(32), name=f"v{i}_{c}") for i in (2, 3, 4))
            t2 = Signal(signed(32 + MULT_BITS), name=f"t2_{c}")
            y3, y4 = Signal(signed(8), name=f"y3_{c}"), Signal(signed(8), name=f"y4_{c}")

            # stage 3 arithmetic: round half up = floor(t / 2^sh) + bit (sh-1) of t
            u = Signal(signed(33 + MULT_BITS), name=f"u_{c}")
            r = Signal(signed(34 + MULT_BITS), name=f"r_{c}")
            sat = Signal(signed(8), name=f"sat_{c}")
            m.d.comb += [
                u.eq((t2 << 1) >> sh2),
                r.eq((u >> 1) + u[0]),
                sat.eq(Mux(r > 127, 127, Mux(r < -128, -128, r))),
            ]
            with m.If(run):
                m.d.sync += [
                    v1.eq(row.data[c] + row.bias[c]),
                    mult1.eq(row.mult[c]),
                    sh1.eq(Mux(row.shift[c] > SHIFT_MAX, SHIFT_MAX, row.shift[c])),
                    v2.eq(v1),
                    t2.eq(v1 * mult1),
                    sh2.eq(sh1),
                    v3.eq(v2),
                    y3.eq(Mux(f2[2] & sat[7], 0, sat)),
                    v4.eq(v3),
                    y4.eq(y3),
                ]

            m.submodules[f"lut_{c}"] = lut = memory.Memory(shape=8, depth=256, init=[])
            wr = lut.write_port()
            rd = lut.read_port(domain="sync")
            m.d.comb += [
                wr.en.eq(self.i_lut.valid),
                wr.addr.eq(self.i_lut.payload.addr),
                wr.data.eq(self.i_lut.payload.data),
                rd.en.eq(run),
                rd.addr.eq(y3.as_unsigned() ^ 0x80),
                self.o_res.payload.data[c].eq(
                    Mux(mode4 == OutMode.RAW.value, v4, Mux(lut4, rd.data.as_signed(), y4))),
            ]
        return m
