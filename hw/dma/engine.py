"""The DMA engine: an AXI4 manager reading and writing 2-D strided regions of DRAM.

A job is a :data:`dma_cmd_layout` region of ``rows`` rows of ``row_bytes`` bytes, row ``i``
starting at ``addr + i * stride``. Every job is checked against the DRAM windows the driver
programs before anything reaches the bus (docs/architecture.md, "DMA and DRAM windows"); a
refused job, a bus error and an abort all end in one :data:`dma_status_layout` status.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ...base.config import Config
from ..bus.axi import AXI4, BURST_INCR, Resp
from ..core.dsp import registered_uproduct

__all__ = ["DmaEngine", "BurstWalker", "DmaError", "dma_cmd_layout", "dma_status_layout",
           "dram_window_layout", "windows_layout", "walk_job_layout", "rd_data_layout",
           "wr_data_layout", "N_WINDOWS", "MAX_BURST", "MAX_OUTSTANDING", "COUNTER_BITS",
           "ID_WIDTH", "AXCACHE"]

#: DRAM windows checked for every job.
N_WINDOWS = 4
#: Longest burst issued, in beats.
MAX_BURST = 16
#: Bursts in flight per direction (address issued, last R beat / B response not yet back).
MAX_OUTSTANDING = 4
#: Width of the byte counters.
COUNTER_BITS = 48
#: AXI ID width of the manager port; every burst uses ID 0, so responses come back in order.
ID_WIDTH = 4
#: ARCACHE / AWCACHE: normal non-cacheable bufferable.
AXCACHE = 0b0011
#: Width of a count of beats in one row (``ceil(row_bytes / bus bytes)`` for any bus width).
_BEAT_BITS = 21

dma_cmd_layout = data.StructLayout({
    "addr": 32,       #: first byte of row 0
    "rows": 16,       #: number of rows (> 0)
    "row_bytes": 20,  #: bytes per row (> 0)
    "stride": 32,     #: bytes from the start of one row to the next
})


class DmaError(enum.Enum, shape=4):
    """Outcome of a DMA job."""
    OK = 0
    BAD_FIELD = 1       #: unaligned addr / row_bytes / stride, or rows / row_bytes zero
    OUT_OF_WINDOW = 2   #: the extent is not inside one enabled window with the permission
    SLVERR = 3          #: a burst got RRESP / BRESP SLVERR
    DECERR = 4          #: a burst got RRESP / BRESP DECERR
    ABORTED = 5         #: ``abort`` was raised while the job was in progress


dma_status_layout = data.StructLayout({"code": DmaError, "addr": 32})

dram_window_layout = data.StructLayout({
    "base": 32,    #: first byte of the window
    "limit": 32,   #: first byte past the window (so the last byte of the space is unreachable)
    "enable": 1,
    "read": 1,     #: reads allowed
    "write": 1,    #: writes allowed
})

windows_layout = data.ArrayLayout(dram_window_layout, N_WINDOWS)

walk_job_layout = data.StructLayout({
    "addr": 32, "rows": 16, "row_beats": _BEAT_BITS, "stride": 32, "discard": 1,
})


def rd_data_layout(bus_bits):
    """One word read: ``last`` marks the final word of a job."""
    return data.StructLayout({"data": bus_bits, "last": 1})


def wr_data_layout(bus_bits):
    """One word to write."""
    return data.StructLayout({"data": bus_bits})


def _log2(value):
    return value.bit_length() - 1


class BurstWalker(wiring.Component):
    """Splits a 2-D region into bursts of at most 16 beats that never cross 4 KiB.

    ``start`` loads ``job`` (``row_beats`` beats per row); the walker is ``busy`` while bursts
    remain. The current burst is ``addr`` / ``beats``; ``step`` takes it and moves to the next.
    Once ``discard`` is seen (or the job has ``discard`` set), the remaining region is cut into
    discard chunks of at most 16 beats (``is_discard``), without the 4 KiB rule, so that an
    unaligned region is walked too. ``kill`` ends the walk.

    Members
    -------
    start, kill, step, discard : In(1)
    job : In(walk_job_layout)
    busy, is_discard : Out(1)
    ready : Out(1)
        ``addr`` / ``beats`` hold the next burst: ``step`` only then. The burst length is
        registered (one cycle after each step), so the 4 KiB and row-end arithmetic is never
        in the same cycle as the bus handshake: at most one burst every two cycles.
    addr : Out(32)
    beats : Out(range(MAX_BURST + 1))
        Beats of the current burst, 1 to 16 while ``busy``.
    """

    start: In(1)
    job: In(walk_job_layout)
    discard: In(1)
    kill: In(1)
    step: In(1)
    busy: Out(1)
    ready: Out(1)
    addr: Out(32)
    beats: Out(range(MAX_BURST + 1))
    is_discard: Out(1)

    def __init__(self, bus_bytes):
        if bus_bytes not in (4, 8, 16, 32, 64):
            raise ValueError(f"bus_bytes must be 4, 8, 16, 32 or 64, not {bus_bytes!r}")
        self._bus_bytes = bus_bytes
        super().__init__()

    @property
    def bus_bytes(self):
        return self._bus_bytes

    def elaborate(self, platform):
        m = Module()
        lb = _log2(self._bus_bytes)

        row = Signal(32)
        rows_left = Signal(16)
        left = Signal(_BEAT_BITS)
        row_beats = Signal(_BEAT_BITS)
        stride = Signal(32)
        disc = Signal()

        m.d.comb += self.is_discard.eq(disc | self.discard)
        # beats to the next 4 KiB boundary, capped at MAX_BURST (16): fewer than 16 only when
        # the beat offset in the page has all its upper bits set, and then it is 16 minus the
        # low four bits, so the cut needs 5-bit arithmetic, not a 13-bit subtract and compares
        assert MAX_BURST == 16
        off = self.addr[lb:12]
        near_end = Signal()
        m.d.comb += near_end.eq(off[4:].all() & ~self.is_discard)
        limit = Signal(range(MAX_BURST + 1))
        m.d.comb += limit.eq(Mux(near_end, 16 - off[:4], 16))
        fresh = Signal()
        beats_r = Signal(range(MAX_BURST + 1))
        row_end = Signal()      # registered with beats_r: this burst ends the row
        last_row = Signal()     # registered: rows_left == 1
        # the state after this burst is computed alongside its length, so a step only muxes
        # registers (no adder behind the step enable, which comes from the bus handshake)
        addr_n = Signal(32)         # addr + this burst
        left_n = Signal(_BEAT_BITS)
        row_n = Signal(32)          # row + stride: the next row's first burst
        rows_left_n = Signal(16)
        beats_n = Signal(range(MAX_BURST + 1))
        # (the rest of the row fits: the burst is the rest; else it is the limit. Both sums
        # and both differences are formed beside the compare and picked by it, so no adder
        # waits for the compare)
        rest_fits = Signal()
        m.d.comb += [self.beats.eq(beats_r), self.ready.eq(self.busy & fresh),
                     rest_fits.eq((left[5:] == 0) & (left[:5] < limit)),
                     beats_n.eq(Mux(rest_fits, left, limit))]
        with m.If(self.busy & ~fresh):
            m.d.sync += [beats_r.eq(beats_n),
                         row_end.eq((left[5:] == 0) & (left[:5] <= limit)),
                         last_row.eq(rows_left == 1),
                         addr_n.eq(Mux(rest_fits, self.addr + (left[:5] << lb),
                                       self.addr + (limit << lb))),
                         left_n.eq(Mux(rest_fits, 0, left - limit)),
                         row_n.eq(row + stride),
                         rows_left_n.eq(rows_left - 1),
                         fresh.eq(1)]

        # re-cut the rest into discard chunks, once: ``discard`` is a level (the write path
        # holds it from the bus error on), and clearing ``fresh`` every cycle it is high kept
        # the walker from ever being ready again (a store of three or more bursts whose first
        # response was an error hung; found by s4 fuzz, seed 2026120303)
        with m.If(self.discard & ~disc):
            m.d.sync += [disc.eq(1), fresh.eq(0)]
        with m.If(self.start):
            m.d.sync += [
                self.addr.eq(self.job.addr), row.eq(self.job.addr), rows_left.eq(self.job.rows),
                left.eq(self.job.row_beats), row_beats.eq(self.job.row_beats),
                stride.eq(self.job.stride), disc.eq(self.job.discard), fresh.eq(0),
                self.busy.eq((self.job.rows != 0) & (self.job.row_beats != 0)),
            ]
        with m.Elif(self.kill):
            m.d.sync += self.busy.eq(0)
        with m.Elif(self.step & self.ready):
            m.d.sync += [
                fresh.eq(0),
                self.addr.eq(addr_n),
                left.eq(left_n),
            ]
            with m.If(row_end):
                m.d.sync += [
                    rows_left.eq(rows_left_n),
                    row.eq(row_n),
                    self.addr.eq(row_n),
                    left.eq(row_beats),
                ]
                with m.If(last_row):
                    m.d.sync += self.busy.eq(0)
        return m


class _State(enum.Enum, shape=4):
    IDLE = 0
    CHECK0 = 8   # extent operands (from the job register) into the multipliers
    CHECK1 = 1   # field checks, extent partial products, addr + row_bytes
    CHECK2 = 2   # extent = (rows - 1) * stride
    CHECK3 = 3   # end of the extent
    CHECK4 = 4   # window compare
    DECIDE = 5   # refuse or start
    RUN = 6
    DONE = 7     # status presented


class DmaEngine(wiring.Component):
    """AXI4 DMA engine with independent read and write paths.

    Each path takes one job at a time from its command stream. A job is refused without any
    bus access when a field is malformed (``BAD_FIELD``: ``addr``, ``row_bytes`` or ``stride``
    not a multiple of the bus width in bytes, ``rows`` or ``row_bytes`` zero) or when its
    extent ``[addr, addr + (rows - 1) * stride + row_bytes)`` is not inside one enabled window
    ``[base, limit)`` with the needed permission (``OUT_OF_WINDOW``, overflow past 2**32
    included). The status address is then ``addr``.

    Accepted jobs become INCR bursts of the full bus width, at most 16 beats, never crossing
    4 KiB, up to four outstanding per direction, all with ID 0. An RRESP / BRESP SLVERR or
    DECERR stops the job issuing bursts (from the cycle after the response; a burst may still
    go out in its cycle); the bursts already issued complete, and the status
    carries the first error (in burst order) and that burst's address. On the read path the
    words of the issued bursts are still delivered and ``last`` marks the final one; on the
    write path the rest of the job's words are consumed and dropped.

    A refused write job, and the part of a write job left after a bus error, still consume
    exactly ``rows * ceil(row_bytes / bus_bytes)`` words from ``i_wr_data`` in total, so the
    producer never deadlocks and the next job's data stays aligned.

    ``abort`` (a level, for soft reset) stops both paths issuing bursts from the cycle after it
    rises (a burst may still go out in its first cycle). Issued read bursts are
    drained and their data dropped; issued write bursts get their remaining beats with
    ``wstrb = 0`` and their responses are awaited. Jobs in progress end with ``ABORTED``
    (address ``addr``). While ``abort`` is high, commands are not accepted and every word
    offered on ``i_wr_data`` is taken and dropped (the queue flush of a soft reset). A word
    already presented on ``o_rd_data`` and the statuses stay until taken (stream rules), so the
    parent keeps taking ``o_rd_data``, ``o_rd_done`` and ``o_wr_done`` until ``o_idle``.

    Members
    -------
    bus : Out(AXI4.Signature(addr_width=32, data_width=dram_bus_bits, id_width=4))
    windows : In(windows_layout)
        The DRAM windows; change them only while ``o_idle``.
    i_rd : In(stream.Signature(dma_cmd_layout))
        Read jobs.
    o_rd_data : Out(stream.Signature(rd_data_layout(dram_bus_bits)))
        The words read, row after row; ``last`` on the final word of a job.
    o_rd_done : Out(stream.Signature(dma_status_layout))
        One status per read job, after its last word; a refused job has no words.
    i_wr : In(stream.Signature(dma_cmd_layout))
        Write jobs.
    i_wr_data : In(stream.Signature(wr_data_layout(dram_bus_bits)))
        The words to write, in order.
    o_wr_done : Out(stream.Signature(dma_status_layout))
        One status per write job, after every write response of the job.
    abort : In(1)
    o_idle : Out(1)
        No job in progress and no status waiting on either path (so nothing on the bus).
    rd_bytes, wr_bytes : Out(48)
        Bytes received on R, and bytes written on W with strobes set (each counted the cycle
        after its beat).
    """

    def __init__(self, config: Config):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        self._config = config
        bits = config.dram_bus_bits
        super().__init__({
            "bus": Out(AXI4.Signature(addr_width=32, data_width=bits, id_width=ID_WIDTH)),
            "windows": In(windows_layout),
            "i_rd": In(stream.Signature(dma_cmd_layout)),
            "o_rd_data": Out(stream.Signature(rd_data_layout(bits))),
            "o_rd_done": Out(stream.Signature(dma_status_layout)),
            "i_wr": In(stream.Signature(dma_cmd_layout)),
            "i_wr_data": In(stream.Signature(wr_data_layout(bits))),
            "o_wr_done": Out(stream.Signature(dma_status_layout)),
            "abort": In(1),
            "o_idle": Out(1),
            "rd_bytes": Out(COUNTER_BITS),
            "wr_bytes": Out(COUNTER_BITS),
        })

    @property
    def config(self):
        return self._config

    @property
    def bus_bytes(self):
        return self._config.dram_bus_bits // 8

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        nbytes = self.bus_bytes
        lb = _log2(nbytes)

        m.d.comb += [
            bus.arid.eq(0), bus.arsize.eq(lb), bus.arburst.eq(BURST_INCR),
            bus.arcache.eq(AXCACHE), bus.arprot.eq(0),
            bus.awid.eq(0), bus.awsize.eq(lb), bus.awburst.eq(BURST_INCR),
            bus.awcache.eq(AXCACHE), bus.awprot.eq(0),
            bus.bready.eq(1),
        ]

        # == read path ==============================================================
        out = self.o_rd_data
        # a skid register behind o_rd_data: rready is a register (skid empty), so the AXI R
        # handshake does not wait on the consumer's ready in the same cycle
        skid = Signal.like(out.payload, reset_less=True)
        skid_valid = Signal()
        r_hs = bus.rvalid & bus.rready
        r_last = r_hs & bus.rlast
        rd = _JobPath(self, m, platform, "rd", i_cmd=self.i_rd, o_done=self.o_rd_done,
                      resp_hs=r_hs, retire=r_last, beat=r_hs, discard_rest=False,
                      done_hold=skid_valid)
        m.d.comb += bus.rready.eq(rd.drop | ~skid_valid)
        rd_stop = rd.drop | rd.err | rd.err_now
        # what stops issuing: registers only. The abort input acts through rd.aborted and an
        # error response through rd.err, each a cycle later, so neither the abort net nor the
        # R channel (whose handshake comes from a register slice placed across the chip:
        # 10.05 ns into the walker's enables on ulx3s / fpga) reaches the issue logic. A burst
        # may go out in the cycle an error arrives; it is an issued burst like the others
        # (its words are delivered, its response awaited).
        rd_halt = rd.aborted | rd.err
        # a burst goes out only while AR is empty (not in the cycle it is taken): the walker
        # needs a cycle between bursts anyway, and the subordinate's arready stays off this path
        m.d.comb += [
            rd.issue.eq(rd.run & rd.walk.ready & ~rd_halt & ~bus.arvalid
                        & (rd.pend < MAX_OUTSTANDING)),
            rd.step.eq(rd.issue),
        ]
        rd_final = r_last & (rd.pend == 1) & ~rd.issue & (~rd.walk.busy | rd_stop)

        out_free = ~out.valid | out.ready
        with m.If(out_free):
            m.d.sync += [out.valid.eq(skid_valid), out.payload.eq(skid), skid_valid.eq(0)]
        with m.If(r_hs & ~rd.drop):
            with m.If(out_free & ~skid_valid):
                m.d.sync += [out.valid.eq(1), out.payload.data.eq(bus.rdata),
                             out.payload.last.eq(rd_final)]
            with m.Else():
                m.d.sync += [skid_valid.eq(1), skid.data.eq(bus.rdata), skid.last.eq(rd_final)]
        # the status follows the job's last word out of the skid register and o_rd_data
        m.d.comb += rd.quiet.eq(~out.valid)

        # == write path =============================================================
        b_hs = bus.bvalid & bus.bready
        wr = _JobPath(self, m, platform, "wr", i_cmd=self.i_wr, o_done=self.o_wr_done,
                      resp_hs=b_hs, retire=b_hs,
                      beat=bus.wvalid & bus.wready & bus.wstrb[0], discard_rest=True)
        # one entry per burst or discard chunk, in order: beats - 1, discard
        m.submodules.wr_len_q = wr_len_q = fifo.SyncFIFO(width=5, depth=MAX_OUTSTANDING)

        # A burst (or discard chunk) is decided in one cycle and taken in the next (wr_go, a
        # register): the decision gathers registers from all over the DMA and the bus, and
        # the step loads ~150 flip-flops (walker, AW, queues), which no longer share a cycle
        # (10.8 ns on ulx3s / fpga). What the decision saw still holds a cycle later: AW
        # stays empty, wr.pend and the length queue only grow with a step, and nothing steps
        # in the deciding cycle; the walker's ready and the abort are looked at again, and a
        # walker re-cut into discard chunks in between makes this one a discard chunk (which
        # needs less). At most one burst every three cycles.
        wr_go = Signal()
        m.d.sync += wr_go.eq(wr.run & wr.walk.ready & ~wr_go & ~wr.aborted & wr_len_q.w_rdy &
                             (wr.walk.is_discard | (~bus.awvalid &
                                                    (wr.pend < MAX_OUTSTANDING))))
        m.d.comb += [
            # (the abort input only through wr.aborted, as on the read path)
            wr.step.eq(wr_go & wr.run & wr.walk.ready & ~wr.aborted),
            wr.issue.eq(wr.step & ~wr.walk.is_discard),
            wr_len_q.w_data.eq(Cat((wr.walk.beats - 1)[:4], wr.walk.is_discard)),
            wr_len_q.w_en.eq(wr.step),
        ]

        # W feeder: walks the queued bursts / discard chunks beat by beat
        head_ok = wr_len_q.r_rdy
        head_len = wr_len_q.r_data[:4]
        head_disc = wr_len_q.r_data[4]
        wbeat = Signal(4)
        head_last = wbeat == head_len
        w_free = ~bus.wvalid | bus.wready
        src = self.i_wr_data
        m.d.comb += src.ready.eq((head_ok & ~wr.drop & (head_disc | w_free)) | self.abort)
        load_real = head_ok & ~head_disc & ~wr.drop & w_free & src.valid
        load_fill = head_ok & ~head_disc & wr.drop & w_free
        disc_take = head_ok & head_disc & ~wr.drop & src.valid
        disc_drop = head_ok & head_disc & wr.drop
        with m.If(load_real | load_fill | disc_take):
            m.d.sync += wbeat.eq(Mux(head_last, 0, wbeat + 1))
            m.d.comb += wr_len_q.r_en.eq(head_last)
        with m.If(disc_drop):
            m.d.sync += wbeat.eq(0)
            m.d.comb += wr_len_q.r_en.eq(1)

        with m.If(bus.wready):
            m.d.sync += bus.wvalid.eq(0)
        with m.If(load_real | load_fill):
            m.d.sync += [
                bus.wvalid.eq(1),
                bus.wdata.eq(Mux(load_real, src.payload.data, 0)),
                bus.wstrb.eq(Mux(load_real, (1 << nbytes) - 1, 0)),
                bus.wlast.eq(head_last),
            ]
        # the status waits for every queued beat to have gone out on W
        m.d.comb += wr.quiet.eq(~head_ok & ~bus.wvalid)

        m.d.comb += self.o_idle.eq((rd.state == _State.IDLE) & (wr.state == _State.IDLE))
        return m


class _JobPath:
    """The job control of one direction of :class:`DmaEngine`, built into the engine's module:
    one implementation for the read path (``"rd"``) and the write path (``"wr"``).

    It holds the command register and the window checks, the job state machine, the abort
    latch, the capture of the first bus error into the status, the burst bookkeeping (walker,
    queue of issued burst addresses, count of bursts in flight, the AR / AW channel) and the
    byte counter (``rd_bytes`` / ``wr_bytes``). The direction drives the signals below and
    moves the data.

    ``discard_rest`` is the write path's rule: a refused job, and the rest of a job after a bus
    error, are still walked, as discard chunks, so that their words are consumed. Without it a
    refused job ends at once and a bus error stops the walk.

    Members
    -------
    resp_hs, retire, beat : (arguments) expressions
        A response beat on R / B (an error if its RRESP / BRESP is SLVERR or DECERR), the
        response that completes an issued burst, and a data beat to count.
    step, issue : Signal, driven by the direction
        The walker takes its burst; that burst goes out on the address channel (only a discard
        chunk steps without being issued).
    quiet : Signal, driven by the direction
        Nothing of the job is left between the bus and the data stream: a job in ``RUN`` ends
        once the walk is over, no burst is in flight and ``quiet``.
    done_hold : (argument) a signal or None
        Holds the status back while high.
    job, run, aborted, err, err_now, drop, pend, walk, state : read by the direction
        ``run`` is a register (``state`` is ``RUN``), so no state decode is in the issue path;
        ``aborted``: the abort was seen during this job (sticky); ``err``: a bus error is
        recorded in the status; ``err_now``: an error response in this cycle; ``drop``: the
        abort input or ``aborted``.
    """

    def __init__(self, engine, m, platform, name, *, i_cmd, o_done, resp_hs, retire, beat,
                 discard_rest, done_hold=None):
        bus = engine.bus
        nbytes = engine.bus_bytes
        lb = _log2(nbytes)
        ax, resp, counter, perm = {"rd": ("ar", bus.rresp, engine.rd_bytes, "read"),
                                   "wr": ("aw", bus.bresp, engine.wr_bytes, "write")}[name]
        self.state = state = Signal(_State, name=f"{name}_state")
        job, bad, inside = self._checks(engine, m, platform, name, i_cmd, state, perm)
        self.job = job
        status = Signal(dma_status_layout, name=f"{name}_status")
        self.aborted = aborted = Signal(name=f"{name}_aborted")
        self.err = err = Signal(name=f"{name}_err")
        self.pend = pend = Signal(range(MAX_OUTSTANDING + 1), name=f"{name}_pend")
        self.run = run = Signal(name=f"{name}_run")
        self.drop = drop = engine.abort | aborted
        self.err_now = err_now = resp_hs & resp[1]  # SLVERR or DECERR
        self.step = Signal(name=f"{name}_step")
        self.issue = issue = Signal(name=f"{name}_issue")
        self.quiet = Signal(name=f"{name}_quiet")

        m.submodules[f"{name}_walk"] = self.walk = walk = BurstWalker(nbytes)
        m.submodules[f"{name}_addr_q"] = addr_q = fifo.SyncFIFO(width=32,
                                                                depth=MAX_OUTSTANDING)
        m.d.comb += [
            walk.job.addr.eq(job.addr),
            walk.job.rows.eq(job.rows),
            walk.job.stride.eq(job.stride),
            walk.step.eq(self.step),
            addr_q.w_data.eq(walk.addr),
            addr_q.w_en.eq(issue),
            addr_q.r_en.eq(retire),
        ]
        if discard_rest:
            # a refused job's row_bytes may be unaligned: its words are ceil(row_bytes / bus)
            m.d.comb += [
                walk.job.row_beats.eq((job.row_bytes + (nbytes - 1)) >> lb),
                walk.discard.eq(run & (err | err_now)),
                walk.kill.eq(run & aborted),
            ]
        else:
            m.d.comb += [
                walk.job.row_beats.eq(job.row_bytes >> lb),
                walk.kill.eq(run & (aborted | err)),
            ]
        m.d.sync += pend.eq(pend + issue - retire)

        axvalid, axready = getattr(bus, f"{ax}valid"), getattr(bus, f"{ax}ready")
        with m.If(axready):
            m.d.sync += axvalid.eq(0)
        with m.If(issue):
            m.d.sync += [
                axvalid.eq(1),
                getattr(bus, f"{ax}addr").eq(walk.addr),
                getattr(bus, f"{ax}len").eq(walk.beats - 1),
            ]

        # the byte counters count a cycle after the handshake (a register enables the 48-bit
        # adder, not the far slice's valid)
        beat_q = Signal(name=f"{name}_beat_q")
        m.d.sync += beat_q.eq(beat)
        with m.If(beat_q):
            m.d.sync += counter.eq(counter + nbytes)
        with m.If(err_now & ~err & ~drop):
            m.d.sync += [
                err.eq(1),
                status.code.eq(Mux(resp == Resp.SLVERR, DmaError.SLVERR, DmaError.DECERR)),
                status.addr.eq(addr_q.r_data),
            ]

        with m.If(engine.abort & (state != _State.IDLE) & (state != _State.DONE)):
            m.d.sync += aborted.eq(1)
        m.d.comb += [
            i_cmd.ready.eq((state == _State.IDLE) & ~engine.abort),
            o_done.valid.eq((state == _State.DONE) if done_hold is None
                            else (state == _State.DONE) & ~done_hold),
            o_done.payload.eq(status),
        ]

        def start():
            m.d.sync += [state.eq(_State.RUN), run.eq(1)]
            m.d.comb += walk.start.eq(1)

        def refuse(code):
            m.d.sync += status.code.eq(code)
            if discard_rest:
                start()
                m.d.comb += walk.job.discard.eq(1)
            else:
                m.d.sync += state.eq(_State.DONE)

        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(i_cmd.valid & i_cmd.ready):
                    m.d.sync += [state.eq(_State.CHECK0), aborted.eq(0), err.eq(0)]
            for a, b in ((_State.CHECK0, _State.CHECK1), (_State.CHECK1, _State.CHECK2),
                         (_State.CHECK2, _State.CHECK3), (_State.CHECK3, _State.CHECK4),
                         (_State.CHECK4, _State.DECIDE)):
                with m.Case(a):
                    m.d.sync += state.eq(b)
            with m.Case(_State.DECIDE):
                m.d.sync += status.addr.eq(job.addr)
                # (an abort raised in this very cycle is seen in RUN, a cycle later, through
                # aborted: the walker then stops before its first burst)
                with m.If(aborted):
                    m.d.sync += [status.code.eq(DmaError.ABORTED), state.eq(_State.DONE)]
                with m.Elif(bad):
                    refuse(DmaError.BAD_FIELD)
                with m.Elif(~inside):
                    refuse(DmaError.OUT_OF_WINDOW)
                with m.Else():
                    m.d.sync += status.code.eq(DmaError.OK)
                    start()
            with m.Case(_State.RUN):
                with m.If(~walk.busy & (pend == 0) & self.quiet):
                    m.d.sync += [state.eq(_State.DONE), run.eq(0)]
                    with m.If(drop):
                        m.d.sync += [status.code.eq(DmaError.ABORTED), status.addr.eq(job.addr)]
            with m.Case(_State.DONE):
                with m.If(o_done.valid & o_done.ready):
                    m.d.sync += state.eq(_State.IDLE)

    @staticmethod
    def _checks(engine, m, platform, name, i_cmd, state, perm):
        """Command register and the check stages; returns (job, bad, inside).

        The job is registered as the command is taken; then one operation per stage so that no
        check sits on a long combinational path: the extent ``(rows - 1) * stride`` as two
        16 x 16 partial products (one DSP each, operands and products registered), their sum,
        the end address, then the window compares (all registered)."""
        lb = _log2(engine.bus_bytes)
        job = Signal(dma_cmd_layout, name=f"{name}_job")
        span_lo = Signal(32, name=f"{name}_span_lo")
        span_hi = Signal(32, name=f"{name}_span_hi")
        span = Signal(48, name=f"{name}_span")
        end0 = Signal(33, name=f"{name}_end0")
        end = Signal(50, name=f"{name}_end")
        bad = Signal(name=f"{name}_bad")
        inside = Signal(name=f"{name}_inside")
        # taken whenever the engine is idle, valid or not: the command's valid (the end of the
        # command processor's logic) then enables only the state register, not these ~100 bits
        with m.If(i_cmd.ready):
            m.d.sync += job.eq(i_cmd.payload)
        # the partial products' operands are registered (inside the DSP on the ECP5) from the
        # job register in CHECK0, the products in CHECK1. (Loading them from the command itself,
        # as the job register is, put the command processor's payload mux, a 16-bit subtract
        # and the long route to a DSP column in one cycle: 10.8 ns on the ECP5.)
        for half, span_part in ((job.stride[:16], span_lo), (job.stride[16:], span_hi)):
            m.d.comb += span_part.eq(registered_uproduct(
                m, (job.rows - 1)[:16], half, width=32, platform=platform,
                name=f"{span_part.name}_p", en_in=state == _State.CHECK0,
                en_out=state == _State.CHECK1))
        with m.If(state == _State.CHECK1):
            m.d.sync += [
                end0.eq(job.addr + job.row_bytes),
                bad.eq((job.addr[:lb] != 0) | (job.row_bytes[:lb] != 0) |
                       (job.stride[:lb] != 0) | (job.rows == 0) | (job.row_bytes == 0)),
            ]
        with m.If(state == _State.CHECK2):
            m.d.sync += span.eq(span_lo + (span_hi << 16))
        with m.If(state == _State.CHECK3):
            m.d.sync += end.eq(end0 + span)
        # the start compare is registered in CHECK2 (the job's address is there from CHECK0),
        # so CHECK4 has one 32-bit compare per window before the OR (the two compares, the
        # permission and the OR in one cycle were 10.0 ns on the ECP5)
        hits = []
        for i in range(N_WINDOWS):
            win = engine.windows[i]
            above = Signal(name=f"{name}_above_base{i}")
            with m.If(state == _State.CHECK2):
                m.d.sync += above.eq(job.addr >= win.base)
            hits.append(win.enable & getattr(win, perm) & above & (end <= win.limit))
        with m.If(state == _State.CHECK4):
            m.d.sync += inside.eq(Cat(*hits).any())
        return job, bad, inside
