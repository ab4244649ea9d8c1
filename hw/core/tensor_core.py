"""The sparse tensor core: an output-stationary ``rows x cols`` array of lanes."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...base.config import BANK, Config
from ...base.golden import MULT_BITS
from .lane import Lane
from .requant import REQUANT_LATENCY, OutMode, Requantizer, lut_write_layout, result_layout

__all__ = ["TensorCore", "ISSUE_TO_DRAIN", "tile_cmd_layout", "window_layout", "weight_layout",
           "COUNTER_BITS"]

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


#: Cycles from a tile's last beat leaving the issue stage to its row 0 entering the drain
#: register: stage-0 register, row-0 register, the lane's four stages, the drain register.
#: (One more register, for the row and its parameters, sits between it and the requantizer.)
ISSUE_TO_DRAIN = 7


class TensorCore(wiring.Component):
    """Sparse tensor core of ``rows x cols`` lanes.

    A tile computes ``Y[rows, cols] = X[rows, K] @ W[cols, K].T`` for one group of rows and
    output channels. For each of its ``banks`` banks the core takes one activation window (32
    int8 per row) from ``i_act`` and then ``nnz = 32 >> log2s`` weight beats (one stored weight
    per channel) from ``i_wgt``, one per cycle: a tile takes ``banks * nnz = K / s`` cycles at
    every sparsity.

    The array is systolic in the row direction and never stalls. Row ``r`` sees the beats of
    row 0 ``r`` cycles later (each row re-registers the weights, indices and flags of the row
    above, and its window comes through an ``r``-stage delay line or, with ``act_skew``, from
    an input that already lags ``r`` cycles), so no signal fans out to the
    whole array. A tile's rows therefore finish one per cycle, row 0 first, which is exactly the
    order in which the requantizer takes them: each finished accumulator row goes through one
    drain register into the requantizer while the next tile already accumulates (the drain is
    hidden). Flow control happens only at the issue stage: a tile's last beat waits until the
    previous tile's last beat is ``rows`` cycles old, so at most one row finishes per cycle.
    Commands wait in a one-entry intake register (its ``ready`` is a register), and their
    output parameters stay in a small queue of slots until the tile's last row has drained.

    Members
    -------
    i_cmd : In(stream.Signature(tile_cmd_layout(cols)))
    i_act : In(stream.Signature(window_layout(rows)))
        With ``act_skew``, row ``r`` of the payload is the window of the beat taken ``r``
        cycles earlier (the SPU's activation scratchpad is one block RAM column per row, row
        ``r`` read ``r`` cycles after row 0), and the rows' delay lines are left out. The
        handshake is row 0's. With ``act_delay = d``, every row's window comes ``d`` cycles
        later still (the SPU registers its block RAM outputs unconditionally), and the core
        delays the weights and flags by ``d`` registers to match.
    i_wgt : In(stream.Signature(weight_layout(cols)))
    i_lut : In(stream.Signature(lut_write_layout))
    o_res : Out(valid + payload ``result_layout(cols)``)
        Result rows. There is no ``ready``: the consumer must take a row in the cycle it is
        valid (the SPU writes every row into its output scratchpad).
    busy_cycles : Out(48)
        Cycles with a tile in flight anywhere in the core.
    mac_cycles : Out(48)
        Cycles in which every lane accumulated a product; MACs issued = ``mac_cycles * lanes``.
    stall_input_cycles : Out(48)
        Cycles a tile was waiting for ``i_act`` / ``i_wgt`` data.
    stall_output_cycles : Out(48)
        Cycles a tile's last beat waited for the drain of the tile before it.
    tiles_done : Out(32)
        Tiles whose last row reached the drain register.
    """

    def __init__(self, config: Config, *, act_skew=False, act_delay=0):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if not isinstance(act_delay, int) or act_delay < 0:
            raise ValueError(f"act_delay must be a non-negative int, not {act_delay!r}")
        self._config = config
        self._act_skew = bool(act_skew)
        self._act_delay = act_delay
        rows, cols = config.rows, config.cols
        super().__init__({
            "i_cmd": In(stream.Signature(tile_cmd_layout(cols))),
            "i_act": In(stream.Signature(window_layout(rows))),
            "i_wgt": In(stream.Signature(weight_layout(cols))),
            "i_lut": In(stream.Signature(lut_write_layout)),
            "o_res": Out(wiring.Signature({"valid": Out(1),
                                           "payload": Out(result_layout(cols))})),
            "busy_cycles": Out(COUNTER_BITS),
            "mac_cycles": Out(COUNTER_BITS),
            "stall_input_cycles": Out(COUNTER_BITS),
            "stall_output_cycles": Out(COUNTER_BITS),
            "tiles_done": Out(32),
        })

    @property
    def config(self):
        return self._config

    @property
    def act_skew(self):
        return self._act_skew

    @property
    def act_delay(self):
        return self._act_delay

    @property
    def issue_to_drain(self):
        """Cycles from a tile's last beat leaving the issue stage to its row 0 entering the
        drain register (:data:`ISSUE_TO_DRAIN` plus ``act_delay``)."""
        return ISSUE_TO_DRAIN + self._act_delay

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._config.rows, self._config.cols
        cmd_layout = tile_cmd_layout(cols)
        par_layout = data.StructLayout({k: cmd_layout[k].shape for k in
                                        ("mode", "relu", "lut", "bias", "mult", "shift")})
        # Output parameters live in a queue of `n_par` slots from the moment a command enters
        # the core until its tile's last row leaves the drain register (the command waits in
        # `nxt`, runs in `cur`, then its rows finish). Sized so the limit never binds when tile
        # ends are `rows` cycles apart. The queue shifts towards slot 0 when a tile's last row
        # leaves, so the oldest tile's parameters are always in slot 0: no read mux (the slot
        # select of a ring fanned out to ~440 bits and was the worst path left on the ECP5).
        n_par = -(-(self.issue_to_drain + 3 * rows) // rows) + 1
        slots = [Signal(par_layout, name=f"par_slot{i}", reset_less=True) for i in range(n_par)]
        n_held = Signal(range(n_par + 1))
        ring_free = Signal(init=1)  # register: n_held < n_par
        pop = Signal()              # the drain register holds a tile's last row

        # -- command intake: `nxt` (one command, its loop fields) ------------------------------
        # The command stream's ready is a register (`nxt` empty and a slot free), and the
        # parameters go from the stream straight into their slot.
        loop_layout = data.StructLayout({"log2s": 3, "banks": 16})
        nxt = Signal(loop_layout, reset_less=True)
        nxt_valid = Signal()
        fill = Signal()
        m.d.comb += [self.i_cmd.ready.eq(~nxt_valid & ring_free),
                     fill.eq(self.i_cmd.valid & self.i_cmd.ready)]
        new = self.i_cmd.payload
        with m.If(fill):
            # a command with zero banks is a no-op tile of one bank: refuse it by clamping
            m.d.sync += [nxt.log2s.eq(new.log2s), nxt.banks.eq(Mux(new.banks == 0, 1, new.banks)),
                         nxt_valid.eq(1)]
        new_par = Cat(*(getattr(new, k) for k in par_layout.members))
        # Every free slot takes the command stream's payload in every cycle, valid or not
        # (a free slot's contents do not matter), so a slot's enable and select depend only
        # on registers: `pop` and the occupancy flags `occ[i]` (n_held > i). The command's
        # valid reaches the counters alone (it enabled ~440 bits per slot before: the worst
        # path on the ECP5 at two seeds).
        occ = [Signal(name=f"par_occ{i}") for i in range(n_par)]
        for i in range(n_par):
            with m.If(pop | ~occ[i]):
                m.d.sync += slots[i].eq(Mux(pop & occ[i + 1], slots[i + 1], new_par)
                                        if i + 1 < n_par else new_par)
        held_next = Signal.like(n_held)
        m.d.comb += held_next.eq(n_held + fill - pop)
        m.d.sync += [n_held.eq(held_next), ring_free.eq(held_next < n_par)]
        m.d.sync += [occ[i].eq(held_next > i) for i in range(n_par)]
        dpar = slots[0]

        # -- issue stage: walk banks and entries of the current tile ----------------------
        # Every flag the handshake needs is a register: `go` is "a tile is loaded and its next
        # beat may go" (not its last beat while the previous tile's end is under `rows`
        # cycles old), so issue = go & operands valid, one LUT.
        cur = Signal(loop_layout, reset_less=True)
        cur_valid = Signal()
        bank = Signal(16)
        entry = Signal(5)
        nnz_m1 = Signal(5)
        m.d.comb += nnz_m1.eq((BANK >> cur.log2s) - 1)
        first_entry, last_entry, last_bank = Signal(), Signal(), Signal()
        banks_m1 = Signal(16)
        # register: bank + 1 == banks_m1 (the next bank is the last), kept alongside bank so
        # that no adder and compare follow the issue on the way to `go`
        bank_pen = Signal()
        go = Signal()
        have_data = self.i_wgt.valid & (~first_entry | self.i_act.valid)
        ends = Signal()
        issue = Signal()
        issue_last = Signal()
        load = Signal()             # cur takes the command in nxt
        m.d.comb += [
            ends.eq(last_entry & last_bank),
            issue.eq(go & have_data),
            issue_last.eq(issue & ends),
            load.eq(nxt_valid & (~cur_valid | issue_last)),
            # each ready leaves out its own stream's valid (a transfer still needs both), so a
            # reader's "advance = ~valid | ready" is one LUT of registers
            self.i_wgt.ready.eq(go & (~first_entry | self.i_act.valid)),
            self.i_act.ready.eq(go & first_entry & self.i_wgt.valid),
        ]
        # next-state values of the flags (so that `go` can be computed one cycle ahead)
        cv_n, fe_n, le_n, lb_n = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [cv_n.eq(cur_valid & ~issue_last), fe_n.eq(first_entry),
                     le_n.eq(last_entry), lb_n.eq(last_bank)]
        with m.If(issue):
            with m.If(last_entry):
                m.d.sync += entry.eq(0)
                m.d.comb += [fe_n.eq(1), le_n.eq(nnz_m1 == 0)]
                with m.If(last_bank):
                    m.d.sync += bank.eq(0)
                    m.d.comb += lb_n.eq(banks_m1 == 0)
                with m.Else():
                    m.d.sync += [bank.eq(bank + 1), bank_pen.eq(bank + 2 == banks_m1)]
                    m.d.comb += lb_n.eq(bank_pen)
            with m.Else():
                m.d.sync += entry.eq(entry + 1)
                m.d.comb += [fe_n.eq(0), le_n.eq(entry + 1 == nnz_m1)]
        with m.If(load):
            m.d.sync += [cur.eq(nxt), bank.eq(0), entry.eq(0), banks_m1.eq(nxt.banks - 1),
                         bank_pen.eq(nxt.banks == 2),
                         nxt_valid.eq(0)]     # (never filled in this cycle: nxt was full)
            m.d.comb += [cv_n.eq(1), fe_n.eq(1), le_n.eq(nxt.log2s == 5),
                         lb_n.eq(nxt.banks == 1)]
        m.d.sync += [cur_valid.eq(cv_n), first_entry.eq(fe_n), last_entry.eq(le_n),
                     last_bank.eq(lb_n)]

        # -- output flow control: tile ends `rows` cycles apart --------------------------------
        gap = Signal(range(max(rows, 2)))
        gap_next = Signal.like(gap)
        m.d.comb += gap_next.eq(Mux(issue_last, rows - 1, Mux(gap == 0, 0, gap - 1)))
        m.d.sync += [gap.eq(gap_next), go.eq(cv_n & (~(le_n & lb_n) | (gap_next == 0)))]


        # -- stage 0: every input registered unconditionally (no enable fans out from issue) -----
        act0 = Signal(window_layout(rows), reset_less=True)
        wgt_layout = data.ArrayLayout(data.StructLayout({"value": signed(8), "index": 5}), cols)
        ctl_layout = data.StructLayout({"valid": 1, "first": 1, "last": 1, "window": 1})
        # (the weight scratchpad's block RAM output goes straight into wgt0: no logic after its
        # long clock-to-out; the implicit dense index is chosen one stage later)
        wgt0 = Signal(wgt_layout, reset_less=True)
        ctl0 = Signal(ctl_layout)
        dense0 = Signal(reset_less=True)
        entry0 = Signal(5, reset_less=True)
        m.d.sync += [
            act0.eq(self.i_act.payload),
            wgt0.eq(self.i_wgt.payload),
            dense0.eq(cur.log2s == 0),
            entry0.eq(entry),
            ctl0.valid.eq(issue),
            ctl0.first.eq(issue & first_entry & (bank == 0)),
            ctl0.last.eq(issue_last),
            ctl0.window.eq(issue & first_entry),
        ]
        wgt0_idx = Signal(wgt_layout)
        for c in range(cols):
            m.d.comb += [wgt0_idx[c].value.eq(wgt0[c].value),
                         wgt0_idx[c].index.eq(Mux(dense0, entry0, wgt0[c].index))]

        # the activation words come act_delay cycles after their handshake: the weights and
        # flags wait for them in as many more registers
        for k in range(self._act_delay):
            wgt_d = Signal(wgt_layout, name=f"wgt_delay{k}", reset_less=True)
            ctl_d = Signal(ctl_layout, name=f"ctl_delay{k}")
            m.d.sync += [wgt_d.eq(wgt0_idx), ctl_d.eq(ctl0)]
            wgt0_idx, ctl0 = wgt_d, ctl_d

        # -- the systolic lane array ------------------------------------------------------------
        # row r: its weights and flags are those of row r-1 one cycle later; its window loads
        # from an r-stage delay line (with act_skew: straight from act0) when the window flag
        # of the row above passes by
        lanes = [[Lane() for _ in range(cols)] for _ in range(rows)]
        done = []
        prev_wgt, prev_ctl = wgt0_idx, ctl0
        for r in range(rows):
            wgt_r = Signal(wgt_layout, name=f"wgt_row{r}", reset_less=True)
            ctl_r = Signal(ctl_layout, name=f"ctl_row{r}")
            m.d.sync += [wgt_r.eq(prev_wgt), ctl_r.eq(prev_ctl)]
            delayed = act0[r].as_value()
            for k in range(0 if self._act_skew else r):
                d = Signal(8 * BANK, name=f"act_delay{r}_{k}", reset_less=True)
                m.d.sync += d.eq(delayed)
                delayed = d
            window = Signal(8 * BANK, name=f"window{r}", reset_less=True)
            with m.If(prev_ctl.window):
                m.d.sync += window.eq(delayed)
            for c in range(cols):
                lane = lanes[r][c]
                m.submodules[f"lane_{r}_{c}"] = lane
                m.d.comb += [
                    lane.window.eq(window),
                    lane.index.eq(wgt_r[c].index),
                    lane.weight.eq(wgt_r[c].value),
                    lane.valid.eq(ctl_r.valid),
                    lane.first.eq(ctl_r.first),
                    lane.last.eq(ctl_r.last),
                ]
            done.append(lanes[r][0].o_done)
            prev_wgt, prev_ctl = wgt_r, ctl_r
        probe = lanes[0][0]

        # -- drain register and requantizer --------------------------------------------------
        # tile ends are `rows` cycles apart, so at most one row is done in any cycle: an AND-OR
        # picks it into the drain register
        m.submodules.requant = requant = Requantizer(cols)
        wiring.connect(m, wiring.flipped(self.i_lut), requant.i_lut)
        drain = Signal(data.ArrayLayout(signed(32), cols), reset_less=True)
        drain_valid, drain_last = Signal(), Signal()
        picked = []
        for c in range(cols):
            terms = [Mux(done[r], lanes[r][c].o_acc.as_unsigned(), 0) for r in range(rows)]
            acc_or = terms[0]
            for t in terms[1:]:
                acc_or = acc_or | t
            picked.append(acc_or)
        m.d.sync += [drain.eq(Cat(*picked)), drain_valid.eq(Cat(*done).any()),
                     drain_last.eq(done[-1])]
        m.d.comb += pop.eq(drain_valid & drain_last)
        # the row and its tile's parameters (queue slot 0) are registered together
        # once more before the requantizer, so the slot select stays off its bias adders
        row_r = Signal(data.ArrayLayout(signed(32), cols), reset_less=True)
        par_r = Signal(par_layout, reset_less=True)
        row_valid, row_last = Signal(), Signal()
        m.d.sync += [row_r.eq(drain), par_r.eq(dpar), row_valid.eq(drain_valid),
                     row_last.eq(drain_last)]
        feed = requant.i_row
        m.d.comb += [
            feed.valid.eq(row_valid),
            feed.payload.data.eq(row_r),
            feed.payload.bias.eq(par_r.bias),
            feed.payload.mult.eq(par_r.mult),
            feed.payload.shift.eq(par_r.shift),
            feed.payload.mode.eq(par_r.mode),
            feed.payload.relu.eq(par_r.relu),
            feed.payload.lut.eq(par_r.lut),
            feed.payload.last.eq(row_last),
            requant.o_res.ready.eq(1),
            self.o_res.valid.eq(requant.o_res.valid),
            self.o_res.payload.eq(requant.o_res.payload),
        ]

        # -- performance counters -----------------------------------------------------------------
        in_requant = Signal(range(REQUANT_LATENCY + 3))
        m.d.sync += in_requant.eq(in_requant + drain_valid - requant.o_res.valid)
        busy = Signal()
        m.d.comb += busy.eq(cur_valid | (n_held != 0) | (in_requant != 0))
        with m.If(busy):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.If(probe.o_pending):
            m.d.sync += self.mac_cycles.eq(self.mac_cycles + 1)
        with m.If(cur_valid & ~have_data):
            m.d.sync += self.stall_input_cycles.eq(self.stall_input_cycles + 1)
        with m.If(cur_valid & have_data & ends & ~go):
            m.d.sync += self.stall_output_cycles.eq(self.stall_output_cycles + 1)
        with m.If(pop):
            m.d.sync += self.tiles_done.eq(self.tiles_done + 1)
        return m
