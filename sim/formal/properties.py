"""The formal properties of the accelerator's blocks, one wrapper per property.

Each wrapper instantiates the block under test, makes every input of it a free input of the
top (the solver picks any value in any cycle, the clock domain's reset included), states what
the block's neighbours promise with ``Assume`` and what the block promises with ``Assert``.
Properties are stated on the blocks' ports (the command processor's only on its ports, so
that they survive changes to its internals); where a neighbour inside a block is the subject
(the SPU's streams into its tensor core), the neighbour's ports are observed, never driven.

Mutants: every property names a mutant, a one-line textual edit of the block's source module
(applied to a private copy of the module, never to the file), which the property must reject.
:func:`build` takes ``mutant=True`` to build the property on it; ``tests/formal`` shows each
property holding on the RTL and failing on its mutant.
"""

import importlib
import inspect
import sys
import types
from dataclasses import dataclass, field

from amaranth.hdl import (
    Assert,
    Assume,
    Cat,
    ClockDomain,
    Const,
    Elaboratable,
    Fragment,
    Module,
    Mux,
    Signal,
)
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...base.config import Config, load_config
from .checks import (
    Past,
    axi4_manager,
    axi4lite_manager,
    axi4lite_subordinate,
    stream_consumer_env,
    stream_producer,
)

__all__ = ["Property", "Mutant", "PROPERTIES", "build", "get", "formal_config"]

_HW = "s4accel.hw"


def formal_config() -> Config:
    """The configuration of the proofs of the SPU: ``tiny`` with the smallest scratchpads
    (1 KiB each), so that the solver's memories are small; the datapath is tiny's (2 x 4
    lanes, 32-bit DRAM bus), without the vector unit (``vec_max_row = 0``: its datapath, 32
    lanes of wide multipliers, is for simulation against the golden model, not the solver).
    The other blocks are proven on ``tiny`` itself."""
    return load_config("tiny").replace(name="formal", act_sram_kib=1, wgt_sram_kib=1,
                                       out_sram_kib=1, vec_max_row=0)


@dataclass(frozen=True)
class Mutant:
    """``old`` replaced by ``new`` (each must occur exactly once) in module ``module``."""
    module: str
    old: str
    new: str
    note: str


@dataclass(frozen=True)
class Property:
    name: str
    block: str
    mode: str          # "prove" (k-induction, unbounded) or "bmc" (bounded)
    depth: int         # bmc: cycles from reset; prove: the induction length
    summary: str
    builder: object = field(repr=False)
    mutant: Mutant = field(repr=False, default=None)
    memory_map: bool = True     # memories as flip-flops for the solver (small ones only)


# -- module copies ---------------------------------------------------------------------------

def _module_copy(name, mutant=None, overrides=None):
    """A fresh copy of module ``name`` (optionally with ``mutant`` applied and globals
    replaced by ``overrides``); the real module is untouched."""
    real = importlib.import_module(name)
    source = inspect.getsource(real)
    if mutant is not None and mutant.module == name:
        if source.count(mutant.old) != 1:
            raise ValueError(f"mutant text occurs {source.count(mutant.old)} times in {name}, "
                             f"not once: {mutant.old!r}")
        source = source.replace(mutant.old, mutant.new)
    copy = types.ModuleType(name)
    copy.__file__ = real.__file__
    copy.__package__ = real.__package__
    # dataclasses and enums look their module up in sys.modules while the class is made
    saved = sys.modules.get(name)
    sys.modules[name] = copy
    try:
        exec(compile(source, real.__file__, "exec", dont_inherit=True), copy.__dict__)
    finally:
        sys.modules[name] = saved
    for key, value in (overrides or {}).items():
        setattr(copy, key, value)
    return copy


class _Mods:
    def __init__(self, mutant):
        self._mutant = mutant

    def __call__(self, short, **overrides):
        return _module_copy(f"{_HW}.{short}", self._mutant, overrides)


def _inputs(component, exclude=()):
    """The signals of ``component`` 's ports that flow into it, as free inputs of the top."""
    out = []
    for path, member, value in component.signature.flatten(component):
        if member.flow == In and path[0] not in exclude:
            value = value.as_value() if hasattr(value, "as_value") else value
            if len(value):      # (a zero-width payload is no port)
                out.append(value)
    return out


def _elaborated(component):
    """``(fragment, signals)``: ``component`` elaborated now, and its own signals by name (the
    ones its statements assign), for invariants that link a checker's counts to a block's
    state. Add the fragment, not the component, to the top."""
    frag = Fragment.get(component, None)
    signals = {}
    for stmts in frag.statements.values():
        for stmt in stmts:
            for sig in stmt._lhs_signals():
                signals.setdefault(sig.name, sig)
    return frag, signals


class _Top(Elaboratable):
    """The formal top: a ``sync`` domain with free clock and reset, the block, the checks."""

    def __init__(self, body):
        self._body = body
        self.cd = ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.cd
        past = Past(m)
        self._body(m, past)
        return m


# == DMA engine ==============================================================================

#: the largest job (in rows) of ``dma_burst_in_job``
_IN_JOB_ROWS = 4


def _rows_times(rows, stride, rows_max):
    """``(rows - 1) * stride`` for ``1 <= rows <= rows_max`` as a chain of muxes over constant
    multiples (shifts and adds, no multiplier for the solver); 0 for any other ``rows``."""
    ext = Const(0, 1)
    for k in range(1, rows_max):
        ext = Mux(rows - 1 == k, stride * k, ext)
    return ext


def _walk_region(job, bus_bytes, rows_max):
    """The bytes a walker job covers: ``[job.addr, job.addr + (rows - 1) * stride +
    row_beats * bus_bytes)``, in wide arithmetic (no 32-bit wrap), for jobs of at most
    ``rows_max`` rows."""
    lb = (bus_bytes - 1).bit_length()
    return job.addr + _rows_times(job.rows, job.stride, rows_max) + (job.row_beats << lb)


class _WalkerGhost:
    """What a walker job promises, captured when the walker is started: its region (see
    :func:`_walk_region`) and whether it is a discard job. ``ok``: a job was started since
    reset."""

    def __init__(self, m, start, discard, job, bus_bytes, rows_max, prefix):
        self.ok = Signal(name=f"{prefix}_ok")
        self.lo = Signal(32, name=f"{prefix}_lo")
        self.end = Signal(52, name=f"{prefix}_end")
        self.disc = Signal(name=f"{prefix}_disc")
        #: discard chunks since the start: a discard job, or ``discard`` seen since
        self.dseen = Signal(name=f"{prefix}_dseen")
        with m.If(discard):
            m.d.sync += self.dseen.eq(1)
        with m.If(start):
            m.d.sync += [self.ok.eq(1), self.lo.eq(job.addr),
                         self.end.eq(_walk_region(job, bus_bytes, rows_max)),
                         self.disc.eq(job.discard), self.dseen.eq(job.discard)]

    def contract(self, walker, bus_bytes):
        """The walker's promise: it offers bursts only while busy, and busy only after a
        start; a burst it offers that is not a discard chunk lies in the
        region of the job it was last started with, and that job is no discard job; it cuts
        discard chunks exactly for a discard job or once ``discard`` was raised since."""
        lb = (bus_bytes - 1).bit_length()
        b_end = walker.addr + (walker.beats << lb)
        in_region = (self.ok & ~self.disc & (walker.beats >= 1) & (walker.beats <= 16)
                     & (walker.addr >= self.lo) & (b_end <= self.end))
        return ((walker.is_discard == (self.dseen | walker.discard))
                & (~walker.ready | walker.busy) & (~walker.busy | self.ok)
                & (~(walker.ready & ~walker.is_discard) | in_region))


def _start_assumptions(m, walker_start, job, bus_bytes, rows_max, what):
    """The jobs the walker properties cover: at most ``rows_max`` rows, an extent that ends
    inside the 32-bit space (the window check guarantees both a real one: windows lie in it)."""
    region = _walk_region(job, bus_bytes, rows_max)
    m.d.comb += Assume(~walker_start | job.discard | (job.rows <= rows_max),
                       f"{what}: at most {rows_max} rows")
    m.d.comb += Assume(~walker_start | job.discard | (job.rows == 0) | (job.row_beats == 0)
                       | (region <= (1 << 32)), f"{what}: extent inside the 32-bit space")


#: the largest job (in rows) of ``dma_walk_in_job``
_WALK_ROWS = 4


def _walker(mods):
    """The burst walker alone: every burst it offers that is not a discard chunk lies in its
    job's region, by k-induction (unbounded) over jobs of at most ``_WALK_ROWS`` rows. The
    inductive invariant (asserted too, so each step may assume it) ties the walker's
    registers to the region: within a row, the current burst and what is left of the row end
    at the row's end; the rows left end at the region's end; the values precomputed for the
    next step (``fresh``) are those of the current burst."""
    eng = mods("dma.engine")
    bb = load_config("tiny").dram_bus_bits // 8
    lb = (bb - 1).bit_length()
    dut = eng.BurstWalker(bb)
    frag, sig = _elaborated(dut)

    def body(m, past):
        m.submodules.dut = frag
        _start_assumptions(m, dut.start, dut.job, bb, _WALK_ROWS, "walker job")
        g = _WalkerGhost(m, dut.start, dut.discard, dut.job, bb, _WALK_ROWS, "g")
        row, rows_left, left = sig["row"], sig["rows_left"], sig["left"]
        row_beats, stride, disc, fresh = sig["row_beats"], sig["stride"], sig["disc"], sig["fresh"]
        beats_r = sig["beats_r"]
        live = dut.busy & ~disc
        rows_end = row + _rows_times(rows_left, stride, _WALK_ROWS) + (row_beats << lb)
        m.d.comb += [
            # (a walker cutting discard chunks, disc, stays so until the next start, and
            # offers no burst the property covers: its registers are left free)
            Assert(~dut.busy | g.ok, "walker busy without a started job"),
            Assert(disc == g.dseen, "discard state not the job's"),
            Assert(~live | ((rows_left >= 1) & (rows_left <= _WALK_ROWS) & (row_beats >= 1)
                            & (rows_end == g.end) & (row >= g.lo) & (g.end <= (1 << 32))),
                   "rows left do not end at the region's end"),
            Assert(~live | (dut.addr >= row)
                   & (dut.addr + (left << lb) == row + (row_beats << lb))
                   & (left >= 1) & (left <= row_beats), "burst not inside its row"),
            Assert(~(live & fresh) | ((beats_r >= 1) & (beats_r <= left) & (beats_r <= 16)
                                      & (sig["addr_n"] == (dut.addr + (beats_r << lb))[:32])
                                      & (sig["left_n"] == (left - beats_r)[:len(left)])
                                      & (sig["row_end"] == (beats_r == left))
                                      & (sig["row_n"] == (row + stride)[:32])
                                      & (sig["rows_left_n"] == (rows_left - 1)[:16])
                                      & (sig["last_row"] == (rows_left == 1))),
                   "precomputed next step not the current burst's"),
            Assert(g.contract(dut, bb), "burst outside its job's region"),
        ]

    top = _Top(body)
    return top, [top.cd.clk, top.cd.rst, *_inputs(dut)]


def _abstract_walker(free, rows_max, walkers):
    """A stand-in for :class:`BurstWalker` in the engine's proof (assume-guarantee): its
    outputs are free inputs of the top, constrained only by the walker's contract, which
    ``dma_walk_in_job`` proves on the real walker; so the engine's proof does not unroll the
    walker's arithmetic. Its free outputs are appended to ``free`` as it is elaborated; each
    instance to ``walkers`` as it is made (the read path's first), its ghost in ``.ghost``."""
    from ...hw.dma.engine import BurstWalker

    class AbstractWalker(BurstWalker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            walkers.append(self)

        def elaborate(self, platform):
            m = Module()
            n = len(free)
            for name in ("busy", "ready", "addr", "beats"):
                port = getattr(self, name)
                f = Signal(len(port), name=f"walker{n}_{name}_free")
                free.append(f)
                m.d.comb += port.eq(f)
            self.ghost = g = _WalkerGhost(m, self.start, self.discard, self.job,
                                          self.bus_bytes, rows_max, f"walker{n}_g")
            m.d.comb += [self.is_discard.eq(g.dseen | self.discard),
                         Assume(g.contract(self, self.bus_bytes), "walker contract")]
            return m

    return AbstractWalker


def _dma(mods, check):
    free = []
    overrides = {}
    walkers = []
    if check == "in_job":
        overrides["BurstWalker"] = _abstract_walker(free, _IN_JOB_ROWS, walkers)
    if check in ("job_window", "in_job"):
        # these halves are stated over the registered end address, so the extent's partial
        # products are cut: each is a free input (any value in any cycle), an
        # over-approximation of the DSPs that keeps their 16 x 16 multipliers out of the
        # solver. (That end is the extent's true end is ``dma_end`` 's part.)
        def free_uproduct(m, a, b, *, width, platform, name, en_in=1, en_out=1):
            p = Signal(width, name=f"{name}_free")
            free.append(p)
            return p
        overrides["registered_uproduct"] = free_uproduct
    eng_mod = mods("dma.engine", **overrides)
    dut = eng_mod.DmaEngine(load_config("tiny"))
    bus = dut.bus
    lb = (dut.bus_bytes - 1).bit_length()
    # the job parts need the engine's own registers: its job and end address per direction
    frag, sig = (_elaborated(dut) if check in ("in_job", "job_window", "end")
                 else (dut, None))

    def end_of(name):
        return sig[f"{name}_end"]

    def extent_end(name):
        """The job's true end, ``addr + (rows - 1) * stride + row_bytes``, for jobs of at most
        ``_IN_JOB_ROWS`` rows (so without a multiplier), and the assumption on them."""
        job = sig[f"{name}_job"]
        addr, rows, row_bytes, stride = job[:32], job[32:48], job[48:68], job[68:100]
        ext = 0
        for k in range(1, _IN_JOB_ROWS):
            ext = Mux(rows - 1 == k, stride * k, ext)
        cmd = getattr(dut, f"i_{name}")
        # (rows = 0 is refused, but a refused write job still runs, as discard chunks)
        return (Mux(rows == 0, end_of(name), addr + ext + row_bytes),
                Assume(~cmd.valid | (cmd.payload.rows <= _IN_JOB_ROWS),
                       f"{name} job of at most {_IN_JOB_ROWS} rows"))

    def in_job(m, kind, name, walk, outstanding):
        """``dma_burst_in_job`` for one direction, by k-induction. Assumed, each another
        part's claim: the walker's contract (``dma_walk_in_job``); jobs of at most
        ``_IN_JOB_ROWS`` rows, whose registered end is the job's true end in DECIDE and while
        the job runs (``dma_end``, which keeps the multiplier out of here). Asserted: the
        walker is started only on the jobs its proof covers (a real job's extent ends inside
        the 32-bit space because it passed the window compare against a 32-bit limit); a
        burst issued lies in the running job's ``[job.addr, end)``, and so does the burst
        presented on AR / AW; with the invariants that make it inductive (the job does not
        change while it runs, the walker's region is the job's extent, the bursts in flight
        are the engine's ``pend``, so a presented burst's job is still running)."""
        g = walk.ghost
        job, end, run = sig[f"{name}_job"], sig[f"{name}_end"], sig[f"{name}_run"]
        state, issue, pend = sig[f"{name}_state"], sig[f"{name}_issue"], sig[f"{name}_pend"]
        st = eng_mod._State
        true_end, small = extent_end(name)
        m.d.comb += [small, Assume(~((state == st.DECIDE) | run) | (end == true_end),
                                   f"{name} end is the extent's end")]
        region = _walk_region(walk.job, dut.bus_bytes, _IN_JOB_ROWS)
        w_end = walk.addr + (walk.beats << lb)
        valid = getattr(bus, f"{kind}valid")
        addr = getattr(bus, f"{kind}addr")
        b_end = Signal(34, name=f"{kind}_b_end")
        m.d.comb += b_end.eq(addr + ((getattr(bus, f"{kind}len") + 1) << lb))
        m.d.comb += [
            Assert((state == st.IDLE) | (job[32:48] <= _IN_JOB_ROWS),
                   f"{name} job of more than {_IN_JOB_ROWS} rows taken"),
            Assert(~(walk.start & ~walk.job.discard)
                   | ((walk.job.rows <= _IN_JOB_ROWS) & (region <= (1 << 32))),
                   f"{name} walker started on a job its proof does not cover"),
            Assert(~run | ((state == st.RUN) & g.ok), f"{name} runs without a started walker"),
            Assert(~(run & ~g.dseen) | ((g.lo == job[:32]) & (g.end == true_end) & ~g.disc),
                   f"{name} walker's region is not the job's extent"),
            Assert(pend == outstanding + valid, f"{name} bursts in flight are not pend"),
            Assert(~valid | run, f"{kind.upper()} burst presented after its job"),
            Assert(~issue | ((walk.addr >= job[:32]) & (w_end <= end)),
                   f"{kind.upper()} burst issued outside its job's extent"),
            Assert(~valid | ((addr >= job[:32]) & (b_end <= end)),
                   f"{kind.upper()} burst outside its job's extent"),
        ]

    def body(m, past):
        m.submodules.dut = frag
        stream_consumer_env(m, past, dut.i_rd, "i_rd")
        stream_consumer_env(m, past, dut.i_wr, "i_wr")
        stream_consumer_env(m, past, dut.i_wr_data, "i_wr_data")
        # windows are changed only while the engine is idle (they are checked during a job)
        busy = ~dut.o_idle & past(~dut.o_idle)
        m.d.comb += Assume(~(past.valid & busy) | (dut.windows.as_value() ==
                                                     past(dut.windows.as_value())),
                           "windows stable during a job")
        counts = axi4_manager(m, past, bus, max_outstanding=eng_mod.MAX_OUTSTANDING,
                              checks=check if check in ("read", "write") else (), name="dram")
        if check in ("in_job", "job_window"):
            for kind, name, perm in (("ar", "rd", "read"), ("aw", "wr", "write")):
                valid = getattr(bus, f"{kind}valid")
                job = sig[f"{name}_job"]           # dma_cmd_layout: addr is bits 0..31
                job_addr = job[:32]
                end = sig[f"{name}_end"]           # addr + (rows - 1) * stride + row_bytes
                if check == "in_job":
                    in_job(m, kind, name, walkers[0 if name == "rd" else 1],
                           counts[0 if name == "rd" else 1])
                else:
                    # the check's part: while a burst of the job is presented, the job's
                    # extent [job.addr, end) is inside one enabled window with the permission
                    inside = []
                    for i in range(eng_mod.N_WINDOWS):
                        w = dut.windows[i]
                        inside.append(w.enable & getattr(w, perm) & (job_addr >= w.base)
                                      & (end <= w.limit))
                    m.d.comb += Assert(~valid | Cat(*inside).any(),
                                       f"{kind.upper()} burst of a job outside every "
                                       f"enabled {perm} window")
        if check == "end":
            # the arithmetic's part: in DECIDE (and so while the job runs), the registered end
            # is addr + (rows - 1) * stride + row_bytes, through the DSPs
            for name in ("rd", "wr"):
                true_end, small = extent_end(name)
                decide = sig[f"{name}_state"] == eng_mod._State.DECIDE
                m.d.comb += [small, Assert(~decide | (sig[f"{name}_end"] == true_end),
                                           f"{name} end is not the extent's end")]
        if check == "burst":
            for kind in ("ar", "aw"):
                valid = getattr(bus, f"{kind}valid")
                addr = getattr(bus, f"{kind}addr")
                length = getattr(bus, f"{kind}len")
                page_end = Signal(14, name=f"{kind}_page_end")
                m.d.comb += page_end.eq(addr[:12] + ((length + 1) << lb))
                m.d.comb += [
                    Assert(~valid | (page_end <= 4096), f"{kind.upper()} crosses 4 KiB"),
                    # at most 256 beats is AXI4's limit (AxLEN's width); the engine promises 16
                    Assert(~valid | (length < eng_mod.MAX_BURST), f"{kind.upper()} too long"),
                    Assert(~valid | (addr[:lb] == 0), f"{kind.upper()} address unaligned"),
                    Assert(~valid | (getattr(bus, f"{kind}size") == lb),
                           f"{kind.upper()} size not the bus width"),
                    Assert(~valid | (getattr(bus, f"{kind}burst") == 1),
                           f"{kind.upper()} burst not INCR"),
                ]

    top = _Top(body)
    return top, [top.cd.clk, top.cd.rst, *_inputs(dut), *free]


# == CSR block ===============================================================================

def _csr(mods):
    dut = mods("csr.block").CsrBlock(load_config("tiny"))
    frag, sig = _elaborated(dut)

    def body(m, past):
        m.submodules.dut = frag
        aw_out, w_out, ar_out = axi4lite_subordinate(m, past, dut.bus, name="csr")
        # the handshake registers against the checker's counts: the inductive invariant that
        # lets k-induction close (an internal fact of this block, not part of the contract)
        aw_full, w_full, b_valid = sig["aw_full"], sig["w_full"], sig["b_valid"]
        a_valid, r_valid = sig["a_valid"], sig["r_valid"]
        m.d.comb += [
            Assert(aw_out == (aw_full | b_valid)), Assert(w_out == (w_full | b_valid)),
            Assert(ar_out == (a_valid | r_valid)), Assert(~(a_valid & r_valid)),
            Assert(~(b_valid & (aw_full | w_full))),
        ]

    top = _Top(body)
    return top, [top.cd.clk, top.cd.rst, *_inputs(dut)]


# == SPU and its tensor core =================================================================

def _spu(mods):
    cores = []
    tc_mod = importlib.import_module(f"{_HW}.core.tensor_core")

    class _SeenCore(tc_mod.TensorCore):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            cores.append(self)

    spu_mod = mods("spu.spu", TensorCore=_SeenCore)
    dut = spu_mod.Spu(formal_config())
    inner = dut.elaborate(None)      # elaborated here, so that its tensor core can be observed
    (core,) = cores

    def body(m, past):
        m.submodules.dut = inner
        stream_consumer_env(m, past, dut.i_gemm, "i_gemm")
        # GEMM fields as the command processor lets them through (its dispatch checks); the
        # scratchpad bounds are not assumed (an address past the end wraps in the RAMs)
        g = dut.i_gemm.payload
        sparsities = Cat(Const(s in formal_config().sparsities) for s in (1, 2, 4, 8, 16, 32))
        m.d.comb += Assume(~dut.i_gemm.valid | ((g.banks != 0) & (g.m_tiles != 0)
                                                 & (g.n_tiles != 0) & (g.log2s <= 5)
                                                 & sparsities.bit_select(g.log2s, 1)),
                           "GEMM fields checked by the command processor")
        stream_consumer_env(m, past, dut.i_load, "i_load")
        stream_producer(m, past, dut.o_store, "o_store")
        stream_producer(m, past, core.i_cmd, "core i_cmd")
        stream_producer(m, past, core.i_lut, "core i_lut")
        # the activation and weight words come act_delay = 1 cycle after their handshake (the
        # core's documented contract), so only their valid is held until ready
        for s, what in ((core.i_act, "core i_act"), (core.i_wgt, "core i_wgt")):
            was = past(s.valid & ~s.ready)
            m.d.comb += Assert(~(past.ok & was) | s.valid, f"{what}: valid dropped before ready")
        # the core's results (no ready): none without a command taken
        cmds = Signal(8)
        rows_out = Signal(8)
        m.d.sync += [cmds.eq(cmds + (core.i_cmd.valid & core.i_cmd.ready)),
                     rows_out.eq(rows_out + core.o_res.valid)]
        m.d.comb += Assert(rows_out <= cmds * formal_config().rows,
                           "core result rows without a tile command")

    top = _Top(body)
    return top, [top.cd.clk, top.cd.rst, *_inputs(dut)]


# == command processor =======================================================================

def _processor(mods, check):
    dut = mods("cmd.processor").CommandProcessor(load_config("tiny"))
    p = dut

    def body(m, past):
        m.submodules.dut = dut
        for name in ("dma_rd_data", "dma_rd_done", "dma_wr_done", "spu_gemm_done"):
            stream_consumer_env(m, past, getattr(p, name), name)
        # one status per DMA or GEMM command, after it (the engine's and fan-out's contract)
        for cmd_s, done_s in ((p.dma_rd, p.dma_rd_done), (p.dma_wr, p.dma_wr_done),
                              (p.spu_gemm, p.spu_gemm_done)):
            pending = Signal(4)
            m.d.sync += pending.eq(pending + (cmd_s.valid & cmd_s.ready)
                                   - (done_s.valid & done_s.ready))
            m.d.comb += Assume(~done_s.valid | (pending != 0), "status without a command")
        # the DMA engine takes no command while its abort is high (its contract)
        m.d.comb += Assume(~p.dma_abort | ~(p.dma_rd.ready | p.dma_wr.ready),
                           "DMA ready during abort")
        # the register block sets the error bit from the pulse; only the driver clears it
        m.d.comb += Assume(~(past.ok & past(p.irq_error_set)) | p.error_pending,
                           "error bit set by the pulse")
        # "stopped": from the error pulse until the driver acknowledges (error bit low) or a
        # soft reset
        stopped = Signal()
        with m.If(p.irq_error_set):
            m.d.sync += stopped.eq(1)
        with m.Elif(~p.error_pending | p.soft_reset):
            m.d.sync += stopped.eq(0)
        # the DMA's statuses carry a DmaError code
        for s in (p.dma_rd_done, p.dma_wr_done):
            m.d.comb += Assume(~s.valid | (s.payload.code.as_value() <= 5), "DMA status code")
        # a dispatch: a DMA command taken, or a GEMM / load / store handed to the SPUs while
        # they run (not while ``flush`` holds them and their fan-outs in reset, which discards
        # what is handed over, as in hw/top.py)
        dispatch = Cat(p.dma_rd.valid & p.dma_rd.ready, p.dma_wr.valid & p.dma_wr.ready,
                       ~p.flush & ((p.spu_gemm.valid & p.spu_gemm.ready) | p.spu_load_start
                                   | p.spu_store_start)).any()
        if check == "halt":
            m.d.comb += [
                Assert(~(past.ok & past(p.irq_error_set))
                       | (p.error & (p.err_code.as_value() != 0)),
                       "error pulse not followed by the halted state with a code"),
                Assert(~(past.ok & ~past(p.error) & p.error) | past(p.irq_error_set),
                       "halted without an error pulse"),
                Assert(~(stopped & p.error_pending & ~p.soft_reset & ~past(p.soft_reset))
                       | p.error, "left the halted state before the acknowledge"),
            ]
        if check == "dispatch":
            m.d.comb += Assert(~stopped | ~dispatch, "dispatched while halted after a fault")

    top = _Top(body)
    return top, [top.cd.clk, top.cd.rst, *_inputs(dut)]


# == UART bridge =============================================================================

class _FreeRx(wiring.Component):
    """Stand-in for the UART receiver: its bytes come from free inputs (``f_*``), so that the
    proof runs at one byte per cycle instead of ten bit times."""

    rx: In(1)
    o_data: Out(stream.Signature(8))
    overrun: Out(1)
    framing_error: Out(1)
    active: Out(1)
    f_valid: In(1)
    f_byte: In(8)
    f_framing: In(1)

    def __init__(self, divisor):
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o_data.valid.eq(self.f_valid), self.o_data.payload.eq(self.f_byte),
                     self.framing_error.eq(self.f_framing), self.active.eq(self.f_valid)]
        return m


class _FreeTx(wiring.Component):
    """Stand-in for the UART transmitter: takes a byte whenever the free ``f_ready`` says."""

    i_data: In(stream.Signature(8))
    tx: Out(1, init=1)
    active: Out(1)
    f_ready: In(1)

    def __init__(self, divisor):
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i_data.ready.eq(self.f_ready)
        return m


def _uart(mods, check):
    from ...base.uart_proto import Command
    rxs, txs = [], []

    class Rx(_FreeRx):
        def __init__(self, divisor):
            super().__init__(divisor)
            rxs.append(self)

    class Tx(_FreeTx):
        def __init__(self, divisor):
            super().__init__(divisor)
            txs.append(self)

    uart_mod = mods("fpga.uart", UartRx=Rx, UartTx=Tx)
    # no command timeout (it only ever abandons a command), a small FIFO and counter
    dut = uart_mod.UartBridge(4, timeout_bits=0, fifo_depth=4, counter_width=16)
    inner = dut.elaborate(None)
    (rx,), (tx,) = rxs, txs

    def body(m, past):
        m.submodules.dut = inner
        stream_consumer_env(m, past, rx.o_data, "received bytes")
        if check == "axi":
            axi4_manager(m, past, dut.mem, max_outstanding=1, name="mem")
            axi4lite_manager(m, past, dut.csr, name="csr")
            return
        # the host's protocol, parsed from the bytes as received: what each byte is
        m.d.comb += [Assume(~dut.mem.bvalid | ~past(dut.mem.bvalid) | ~past.ok),
                     Assume(~dut.mem.rvalid | ~past(dut.mem.rvalid) | ~past.ok)]
        hs = rx.o_data.valid & rx.o_data.ready
        byte = rx.o_data.payload
        cmd = Signal(8)
        args = Signal(48)
        idx = Signal(3)
        left = Signal(16)
        state = Signal(2)    # 0 command byte, 1 arguments, 2 memory write data
        w_bytes = Signal(8)  # data bytes of well-formed memory writes
        r_bytes = Signal(17)  # bytes that well-formed memory reads ask for
        csr_w = Signal(8)
        csr_r = Signal(8)
        nargs = Mux(cmd == Command.CSR_WRITE, Command.CSR_WRITE.args,
                    Mux(cmd == Command.CSR_READ, Command.CSR_READ.args, Command.MEM_WRITE.args))
        length = Cat(args[32:40], byte)     # len16 when its last byte arrives
        with m.If(hs):
            with m.Switch(state):
                with m.Case(0):
                    m.d.sync += [cmd.eq(byte), idx.eq(0)]
                    with m.If(Cat(byte == c for c in (Command.CSR_WRITE, Command.CSR_READ,
                                                       Command.MEM_WRITE,
                                                       Command.MEM_READ)).any()):
                        m.d.sync += state.eq(1)
                with m.Case(1):
                    m.d.sync += [args.word_select(idx, 8).eq(byte), idx.eq(idx + 1)]
                    with m.If(idx == nargs - 1):
                        m.d.sync += state.eq(0)
                        with m.Switch(cmd):
                            with m.Case(Command.CSR_WRITE):
                                m.d.sync += csr_w.eq(csr_w + 1)
                            with m.Case(Command.CSR_READ):
                                m.d.sync += csr_r.eq(csr_r + 1)
                            with m.Case(Command.MEM_READ):
                                m.d.sync += r_bytes.eq(r_bytes + length)
                            with m.Case(Command.MEM_WRITE):
                                m.d.sync += left.eq(length)
                                with m.If(length != 0):
                                    m.d.sync += state.eq(2)
                with m.Case(2):
                    m.d.sync += [w_bytes.eq(w_bytes + 1), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.d.sync += state.eq(0)
        mem, csr = dut.mem, dut.csr
        n_aw, n_w, n_ar, n_caw, n_cw, n_car = (Signal(8, name=n) for n in (
            "n_aw", "n_w", "n_ar", "n_caw", "n_cw", "n_car"))
        m.d.sync += [
            n_aw.eq(n_aw + (mem.awvalid & mem.awready)), n_w.eq(n_w + (mem.wvalid & mem.wready)),
            n_ar.eq(n_ar + (mem.arvalid & mem.arready)),
            n_caw.eq(n_caw + (csr.awvalid & csr.awready)),
            n_cw.eq(n_cw + (csr.wvalid & csr.wready)),
            n_car.eq(n_car + (csr.arvalid & csr.arready)),
        ]
        m.d.comb += [
            Assert((n_aw + mem.awvalid <= w_bytes) & (n_w + mem.wvalid <= w_bytes),
                   "memory write without a data byte of a well-formed memory write"),
            Assert(n_ar + mem.arvalid <= r_bytes, "memory read not asked for"),
            Assert((n_caw + csr.awvalid <= csr_w) & (n_cw + csr.wvalid <= csr_w),
                   "register write without a well-formed register write"),
            Assert(n_car + csr.arvalid <= csr_r, "register read without a register read"),
        ]

    top = _Top(body)
    free = [rx.f_valid, rx.f_byte, rx.f_framing, tx.f_ready]
    return top, [top.cd.clk, top.cd.rst, *free, *_inputs(dut, exclude=("rx",))]


# == the list ================================================================================

PROPERTIES = (
    Property("dma_walk_in_job", "hw/dma/engine.py BurstWalker", "prove", 4,
             "every burst the walker offers that is not a discard chunk lies inside the region "
             "of the job it was started with, [addr, addr + (rows - 1) * stride + row_beats * "
             "bus bytes), for jobs of 1 to 4 rows whose region ends inside the 32-bit space "
             "(the walker's half of the window rule)",
             lambda mods: _walker(mods),
             Mutant(f"{_HW}.dma.engine", "self.addr.eq(self.job.addr), row.eq(self.job.addr)",
                    "self.addr.eq(self.job.addr + (1 << lb)), row.eq(self.job.addr)",
                    "walker's first burst one beat past the job's address")),
    Property("dma_burst_in_job", "hw/dma/engine.py DmaEngine (job registers, AR / AW)",
             "prove", 14,
             "every AR / AW burst lies inside its running job's extent [job.addr, end), end "
             "being the engine's registered end address; the walkers are replaced by their "
             "proven contract (dma_walk_in_job), jobs of 1 to 4 rows",
             lambda mods: _dma(mods, "in_job"),
             Mutant(f"{_HW}.dma.engine", 'getattr(bus, f"{ax}addr").eq(walk.addr),',
                    'getattr(bus, f"{ax}addr").eq(walk.addr + nbytes),',
                    "a burst presented one beat past the walker's address")),
    Property("dma_job_in_window", "hw/dma/engine.py DmaEngine (checks, job registers)", "bmc",
             20,
             "while a burst of a job is presented on AR / AW, the job's extent [job.addr, end) "
             "lies inside one enabled window with the read / write permission (windows "
             "unchanged during a job; the check stages' half of the window rule)",
             lambda mods: _dma(mods, "job_window"),
             Mutant(f"{_HW}.dma.engine", "hits.append(win.enable & getattr(win, perm) & above",
                    "hits.append(win.enable & above",
                    "window check ignores the read / write permission")),
    Property("dma_end", "hw/dma/engine.py DmaEngine (check stages, DSPs)", "bmc", 12,
             "the arithmetic's part of the window rule: in DECIDE the registered end address "
             "is addr + (rows - 1) * stride + row_bytes (jobs of 1 to 4 rows), through the "
             "extent's partial products",
             lambda mods: _dma(mods, "end"),
             Mutant(f"{_HW}.dma.engine", "m.d.sync += span.eq(span_lo + (span_hi << 16))",
                    "m.d.sync += span.eq(span_lo + (span_hi << 15))",
                    "upper partial product of the extent added one bit too low")),
    Property("dma_burst", "hw/dma/engine.py DmaEngine", "bmc", 28,
             "every burst is INCR, full-width, aligned, at most 16 beats (AXI: 256) and never "
             "crosses a 4 KiB boundary",
             lambda mods: _dma(mods, "burst"),
             Mutant(f"{_HW}.dma.engine", "limit.eq(Mux(near_end, 16 - off[:4], 16))",
                    "limit.eq(Mux(near_end, 17 - off[:4], 16))",
                    "burst walker's cut at a 4 KiB boundary one beat too late")),
    Property("dma_axi_read", "hw/dma/engine.py DmaEngine.bus (AR, R)", "bmc", 24,
             "AXI4 read manager: ARVALID held until ARREADY with a stable payload, none after "
             "reset, at most 4 bursts outstanding (R beats and RLAST assumed as requested)",
             lambda mods: _dma(mods, "read"),
             Mutant(f"{_HW}.dma.engine",
                    "with m.If(axready):\n            m.d.sync += axvalid.eq(0)",
                    "with m.If(axready | ~axready):\n            m.d.sync += axvalid.eq(0)",
                    "AR / AW valid dropped after one cycle, ready or not")),
    Property("dma_axi_write", "hw/dma/engine.py DmaEngine.bus (AW, W, B)", "bmc", 22,
             "AXI4 write manager: AWVALID / WVALID held until ready with a stable payload, "
             "WLAST exactly on beat AWLEN of each burst, W never ahead of its AW, at most 4 "
             "bursts outstanding, none after reset (B assumed only for completed bursts)",
             lambda mods: _dma(mods, "write"),
             Mutant(f"{_HW}.dma.engine", "bus.wlast.eq(head_last),",
                    "bus.wlast.eq(wbeat == 0),", "WLAST on the first beat of a burst")),
    Property("csr_axil", "hw/csr/block.py CsrBlock.bus", "prove", 4,
             "AXI4-Lite subordinate: BVALID / RVALID held until ready with a stable response, "
             "one response per request, one request of each kind held at a time, nothing valid "
             "after reset",
             lambda mods: _csr(mods),
             Mutant(f"{_HW}.csr.block", "bus.wready.eq(~w_full & ~b_valid),",
                    "bus.wready.eq(~b_valid),",
                    "W accepted while a write's data is already held")),
    Property("spu_streams", "hw/spu/spu.py Spu (o_store; tensor core i_cmd, i_lut, i_act, "
             "i_wgt, o_res)", "bmc", 20,
             "stream rules of every stream the SPU produces: valid held until ready, payload "
             "stable (i_act / i_wgt: valid only, their words follow a cycle after by contract); "
             "no tensor-core result row without a tile command",
             lambda mods: _spu(mods),
             Mutant(f"{_HW}.spu.spu", "m.d.comb += [par_skid.i.payload.eq(par_q), "
                    "par_skid.clear.eq(start),",
                    "m.d.comb += [par_skid.i.payload.eq(par_q), "
                    "par_skid.clear.eq(start | core.i_act.valid),",
                    "tile-command skid register cleared while a command waits"),
             memory_map=False),
    Property("cmd_fault_halt", "hw/cmd/processor.py CommandProcessor (ports)", "bmc", 20,
             "a fault ends halted: the error pulse is followed by error = 1 with a code; error "
             "rises only after the pulse and stays until the acknowledge (or a soft reset)",
             lambda mods: _processor(mods, "halt"),
             Mutant(f"{_HW}.cmd.processor",
                    "with m.If(halted & ~self.error_pending & ~flushing):",
                    "with m.If(halted & ~flushing):",
                    "halt released without waiting for the acknowledge")),
    Property("cmd_fault_no_dispatch", "hw/cmd/processor.py CommandProcessor (ports)", "bmc", 20,
             "from the error pulse until the acknowledge (or a soft reset): no DMA command, "
             "GEMM command, load or store start is dispatched",
             lambda mods: _processor(mods, "dispatch"),
             Mutant(f"{_HW}.cmd.processor",
                    "may_fetch = self.enable & ~halted & ~stop",
                    "may_fetch = self.enable & ~stop",
                    "descriptor fetch not stopped by the halted state")),
    Property("uart_malformed", "hw/fpga/uart.py UartBridge", "bmc", 20,
             "memory and register accesses only for well-formed commands: no memory write "
             "without a data byte of a MEM_WRITE frame, no memory read beyond what MEM_READ "
             "frames asked, no register access without a CSR frame (unknown bytes, short "
             "frames, len 0)",
             lambda mods: _uart(mods, "proto"),
             Mutant(f"{_HW}.fpga.uart", "with m.Case(Command.MEM_WRITE.value):\n"
                    "                        m.next = \"MW_DATA\"",
                    "with m.Case(Command.MEM_WRITE.value, Command.MEM_READ.value):\n"
                    "                        m.next = \"MW_DATA\"",
                    "a MEM_READ frame decoded as a memory write")),
    Property("uart_axi", "hw/fpga/uart.py UartBridge.mem, .csr", "bmc", 20,
             "the bridge's AXI4 memory and AXI4-Lite register manager ports: valid held until "
             "ready with a stable payload, WLAST on the single beat, one access outstanding, "
             "none after reset",
             lambda mods: _uart(mods, "axi"),
             Mutant(f"{_HW}.fpga.uart", "csr.arvalid.eq(st(\"CSR_AR\")),",
                    "csr.arvalid.eq(st(\"CSR_AR\") & ~csr.rvalid & (counter[0] == 0)),",
                    "register read valid withdrawn on odd cycles")),
)


def get(name) -> Property:
    for p in PROPERTIES:
        if p.name == name:
            return p
    raise KeyError(f"no formal property {name!r}; known: "
                   f"{', '.join(p.name for p in PROPERTIES)}")


def build(prop: Property, *, mutant=False):
    """The property's top and its free inputs, on the RTL or (``mutant``) on its mutant."""
    return prop.builder(_Mods(prop.mutant if mutant else None))
