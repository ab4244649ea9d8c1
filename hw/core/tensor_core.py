"""The sparse tensor core: an output-stationary ``rows x cols`` array of lanes."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...config import BANK, Config
from ...sim.golden import MULT_BITS
from .lane import Lane
from .requant import OutMode, Requantizer, lut_write_layout, result_layout

__all__ = ["TensorCore", "tile_cmd_layout", "window_layout", "weight_layout", "COUNTER_BITS"]

COUNTER_BITS = 48


def tile_cmd_layout(cols):
    """One tile: its sparsity, length in banks, and how its outputs are finished.

    ``log2s`` is log2 of the sparsity (0 = dense .. 5 = 32x); ``banks`` is ``K / 32``.
    """
    return data.StructLayout({
        "log2s": 3,
        "banks": 16,
        "mode": OutMode,
        "relu": 1,
        "lut": 1,
        "bias": data.ArrayLayout(signed(32), cols),
        "mult": data.ArrayLayout(unsigned(MULT_BITS), cols),
        "shift": data.ArrayLayout(unsigned(6), cols),
    })


def window_layout(rows):
    """One bank of activations for every row: row ``r`` element ``i`` at byte ``32*r + i``."""
    return data.ArrayLayout(data.ArrayLayout(signed(8), BANK), rows)


def weight_layout(cols):
    """One stored weight per output channel. ``index`` is ignored for dense (s = 1) tiles."""
    return data.ArrayLayout(data.StructLayout({"value": signed(8), "index": 5}), cols)


class TensorCore(wiring.Component):
    """Sparse tensor core of ``rows x cols`` lanes with double-buffered accumulators.

    A tile computes ``Y[rows, cols] = X[rows, K] @ W[cols, K].T`` for one group of rows and
    output channels. For each of its ``banks`` banks the core takes one activation window (32
    int8 per row) from ``i_act`` and then ``nnz = 32 >> log2s`` weight beats (one stored weight
    per channel) from ``i_wgt``, one per cycle: a tile takes ``banks * nnz = K / s`` cycles at
    every sparsity. The finished accumulators move to a drain buffer in one cycle and leave
    through the requantizer as ``rows`` result beats (row 0 first) while the next tile computes.

    Members
    -------
    i_cmd : In(stream.Signature(tile_cmd_layout(cols)))
    i_act : In(stream.Signature(window_layout(rows)))
    i_wgt : In(stream.Signature(weight_layout(cols)))
    i_lut : In(stream.Signature(lut_write_layout))
    o_res : Out(stream.Signature(result_layout(cols)))
    busy_cycles : Out(48)
        Cycles with a tile in flight anywhere in the core.
    mac_cycles : Out(48)
        Cycles in which every lane accumulated a product; MACs issued = ``mac_cycles * lanes``.
    stall_input_cycles : Out(48)
        Cycles a tile was waiting for ``i_act`` / ``i_wgt`` data.
    stall_output_cycles : Out(48)
        Cycles the array was stopped because the drain buffer was still full.
    tiles_done : Out(32)
        Tiles whose accumulators reached the drain buffer.
    """

    def __init__(self, config: Config):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        self._config = config
        rows, cols = config.rows, config.cols
        super().__init__({
            "i_cmd": In(stream.Signature(tile_cmd_layout(cols))),
            "i_act": In(stream.Signature(window_layout(rows))),
            "i_wgt": In(stream.Signature(weight_layout(cols))),
            "i_lut": In(stream.Signature(lut_write_layout)),
            "o_res": Out(stream.Signature(result_layout(cols))),
            "busy_cycles": Out(COUNTER_BITS),
            "mac_cycles": Out(COUNTER_BITS),
            "stall_input_cycles": Out(COUNTER_BITS),
            "stall_output_cycles": Out(COUNTER_BITS),
            "tiles_done": Out(32),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._config.rows, self._config.cols
        cmd_layout = tile_cmd_layout(cols)

        en = Signal()  # the array advances

        # -- issue stage: walk banks and entries of the current tile ----------------------
        cur = Signal(cmd_layout)
        cur_valid = Signal()
        bank = Signal(16)
        entry = Signal(5)
        nnz_m1 = Signal(5)
        m.d.comb += nnz_m1.eq((BANK >> cur.log2s) - 1)
        # "first entry", "last entry", "last bank" are registers updated with the counters, so
        # the handshake with the operand readers (issue -> ready) has no compare in it
        first_entry, last_entry, last_bank = Signal(), Signal(), Signal()
        banks_m1 = Signal(16)
        have_data = self.i_wgt.valid & (~first_entry | self.i_act.valid)
        issue = Signal()
        issue_last = Signal()
        m.d.comb += [
            issue.eq(en & cur_valid & have_data),
            issue_last.eq(issue & last_entry & last_bank),
            self.i_wgt.ready.eq(issue),
            self.i_act.ready.eq(issue & first_entry),
            self.i_cmd.ready.eq(en & (~cur_valid | issue_last)),
        ]
        with m.If(issue):
            with m.If(last_entry):
                m.d.sync += [entry.eq(0), first_entry.eq(1), last_entry.eq(nnz_m1 == 0)]
                with m.If(last_bank):
                    m.d.sync += [bank.eq(0), last_bank.eq(banks_m1 == 0)]
                with m.Else():
                    m.d.sync += [bank.eq(bank + 1), last_bank.eq(bank + 1 == banks_m1)]
            with m.Else():
                m.d.sync += [entry.eq(entry + 1), first_entry.eq(0),
                             last_entry.eq(entry + 1 == nnz_m1)]
            with m.If(issue_last):
                m.d.sync += cur_valid.eq(0)
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            # a command with zero banks is a no-op tile of one bank: refuse it by clamping
            new = self.i_cmd.payload
            m.d.sync += [cur.eq(new), cur_valid.eq(1), bank.eq(0), entry.eq(0),
                         first_entry.eq(1), last_entry.eq(new.log2s == 5),
                         banks_m1.eq(Mux(new.banks == 0, 0, new.banks - 1)),
                         last_bank.eq(new.banks <= 1)]
            with m.If(new.banks == 0):
                m.d.sync += cur.banks.eq(1)

        # stage 0 registers: the window (held for the whole bank) and this cycle's weights
        window = Signal(window_layout(rows))
        wgt0 = Signal(weight_layout(cols))
        dense0 = Signal()
        v0 = Signal(3)  # valid, first, last
        with m.If(en):
            m.d.sync += [
                wgt0.eq(self.i_wgt.payload),
                dense0.eq(cur.log2s == 0),
                v0.eq(Cat(issue, issue & first_entry & (bank == 0), issue_last)),
            ]
            with m.If(issue & first_entry):
                m.d.sync += window.eq(self.i_act.payload)

        # per-tile output parameters follow the last beat down the pipeline
        par_layout = data.StructLayout({k: cmd_layout[k].shape for k in
                                        ("mode", "relu", "lut", "bias", "mult", "shift")})
        par = [Signal(par_layout, name=f"par{i}") for i in range(4)]
        with m.If(en & issue_last):
            m.d.sync += [getattr(par[0], k).eq(getattr(cur, k)) for k in par_layout.members]
        with m.If(en):
            m.d.sync += [par[i + 1].eq(par[i]) for i in range(2)]

        # -- the lane array ------------------------------------------------------------------
        entry0 = Signal(5)  # entry number of the beat in stage 0, the implicit dense index
        with m.If(en):
            m.d.sync += entry0.eq(entry)
        lanes = [[Lane() for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                lane = lanes[r][c]
                m.submodules[f"lane_{r}_{c}"] = lane
                m.d.comb += [
                    lane.en.eq(en),
                    lane.window.eq(window[r].as_value()),
                    lane.index.eq(Mux(dense0, entry0, wgt0[c].index)),
                    lane.weight.eq(wgt0[c].value),
                    lane.valid.eq(v0[0]),
                    lane.first.eq(v0[1]),
                    lane.last.eq(v0[2]),
                ]
        probe = lanes[0][0]

        # -- drain buffer and requantizer ------------------------------------------------------
        m.submodules.requant = requant = Requantizer(cols)
        wiring.connect(m, wiring.flipped(self.i_lut), requant.i_lut)
        wiring.connect(m, requant.o_res, wiring.flipped(self.o_res))

        drain = [[Signal(signed(32), name=f"drain_{r}_{c}") for c in range(cols)]
                 for r in range(rows)]
        dpar = Signal(par_layout)
        draining = Signal()
        drow = Signal(range(rows))
        feed = requant.i_row
        row_sel = Signal(data.ArrayLayout(signed(32), cols))
        with m.Switch(drow):
            for r in range(rows):
                with m.Case(r):
                    m.d.comb += row_sel.eq(Cat(*drain[r]))
        m.d.comb += [
            feed.valid.eq(draining),
            feed.payload.data.eq(row_sel),
            feed.payload.bias.eq(dpar.bias),
            feed.payload.mult.eq(dpar.mult),
            feed.payload.shift.eq(dpar.shift),
            feed.payload.mode.eq(dpar.mode),
            feed.payload.relu.eq(dpar.relu),
            feed.payload.lut.eq(dpar.lut),
            feed.payload.last.eq(drow == rows - 1),
        ]
        drain_free = ~draining | (feed.ready & (drow == rows - 1))
        with m.If(feed.valid & feed.ready):
            m.d.sync += drow.eq(Mux(drow == rows - 1, 0, drow + 1))
            with m.If(drow == rows - 1):
                m.d.sync += draining.eq(0)
        swap = Signal()
        m.d.comb += [
            en.eq(~(probe.o_done & ~drain_free)),
            swap.eq(en & probe.o_done),
        ]
        with m.If(swap):
            m.d.sync += [draining.eq(1), drow.eq(0), dpar.eq(par[2])]
            for r in range(rows):
                for c in range(cols):
                    m.d.sync += drain[r][c].eq(lanes[r][c].o_sum)

        # -- performance counters -----------------------------------------------------------------
        pipe_busy = Signal()
        m.d.comb += pipe_busy.eq(v0[0] | probe.o_pending | draining | cur_valid)
        with m.If(pipe_busy | requant.o_res.valid):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.If(en & probe.o_pending):
            m.d.sync += self.mac_cycles.eq(self.mac_cycles + 1)
        with m.If(en & cur_valid & ~have_data):
            m.d.sync += self.stall_input_cycles.eq(self.stall_input_cycles + 1)
        with m.If(~en):
            m.d.sync += self.stall_output_cycles.eq(self.stall_output_cycles + 1)
        with m.If(swap):
            m.d.sync += self.tiles_done.eq(self.tiles_done + 1)
        return m
