"""cocotb testbench of the DMA engine (``hw/dma/engine.py``) against a cocotbext-axi RAM.

Parameters come from the environment so one simulator build serves every test: ``S4_CONFIG``
(JSON configuration), ``S4_SEED`` (replay a run). Every read word is checked against the RAM,
every write against a shadow copy of it, and an AXI monitor checks every address beat
(windows, 4 KiB, burst attributes), the W / R beat counts and the abort rules.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiBus
from cocotbext.axi.constants import AxiResp

from ...base.config import Config
from ...hw.dma.engine import (
    AXCACHE,
    MAX_BURST,
    DmaError,
    dma_cmd_layout,
    dma_status_layout,
    windows_layout,
)
from .axi_ram import Faults, FaultyAxiRam
from .base import config_from_env, pauses, rng_from_env, start, started
from .streams import Sink, Source, StreamLoop

RAM_SIZE = 1 << 20

#: Windows of most tests: (base, limit, enable, read, write). 0 and 1 touch, so a job
#: spanning them must be refused; 3 is disabled.
WINDOWS = [
    (0x00000, 0x40000, 1, 1, 1),
    (0x40000, 0x60000, 1, 1, 0),
    (0x60000, 0x80000, 1, 0, 1),
    (0x80000, 0xA0000, 0, 1, 1),
]


def _int(handle) -> int:
    try:
        return int(handle.value)
    except ValueError:  # X / Z before the first drive
        return 0


def bursts(addr, rows, row_bytes, stride, nbytes):
    """The bursts the engine must issue for a good job: ``(address, beats)`` in order."""
    out = []
    for r in range(rows):
        a = addr + r * stride
        left = row_bytes // nbytes
        while left:
            n = min(MAX_BURST, left, (0x1000 - (a & 0xFFF)) // nbytes)
            out.append((a, n))
            a += n * nbytes
            left -= n
    return out


# -- AXI monitor ---------------------------------------------------------------------------------

class AxiMonitor:
    """Samples the AXI port every cycle; records every problem in ``errors``.

    Checked at each AR / AW handshake: inside one enabled window with the permission, no 4 KiB
    crossing, INCR, full width, at most 16 beats, aligned, cache / prot / id. No address beat
    may start once ``abort`` has been high for two cycles (the engine stops issuing from the
    cycle after it rises). W strobes are all ones (or zero once abort was seen).
    Every AXI channel the engine drives and every stream out of it keeps ``valid`` and its
    payload until the transfer (AXI handshake and Amaranth stream rules).
    """

    #: channels driven by the engine: valid, ready, payload signals
    HELD = [
        ("bus__arvalid", "bus__arready", ("bus__araddr", "bus__arlen")),
        ("bus__awvalid", "bus__awready", ("bus__awaddr", "bus__awlen")),
        ("bus__wvalid", "bus__wready", ("bus__wdata", "bus__wstrb", "bus__wlast")),
        ("o_rd_data__valid", "o_rd_data__ready", ("o_rd_data__payload",)),
        ("o_rd_done__valid", "o_rd_done__ready", ("o_rd_done__payload",)),
        ("o_wr_done__valid", "o_wr_done__ready", ("o_wr_done__payload",)),
    ]

    def __init__(self, dut, nbytes):
        self.dut, self.nbytes = dut, nbytes
        self.lb = nbytes.bit_length() - 1
        self.windows = []
        self.errors = []
        self.ar, self.aw = [], []     # (cycle, addr, beats)
        self.w = []                   # (cycle, last, strobe)
        self.r_cycles = []
        self.b_count = 0
        self.cycle = 0
        self.abort_seen = False

    def _err(self, msg):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {msg}")

    def _check_addr(self, kind, perm, addr, length, size, burst, cache, prot, ident):
        beats = length + 1
        nbytes = beats * self.nbytes
        what = f"{kind} 0x{addr:08x} x{beats}"
        if beats > MAX_BURST:
            self._err(f"{what}: more than {MAX_BURST} beats")
        if size != self.lb or burst != 1 or cache != AXCACHE or prot != 0 or ident != 0:
            self._err(f"{what}: size {size} burst {burst} cache {cache} prot {prot} id {ident}")
        if addr % self.nbytes:
            self._err(f"{what}: unaligned")
        if (addr & 0xFFF) + nbytes > 0x1000:
            self._err(f"{what}: crosses 4 KiB")
        if not any(en and p and base <= addr and addr + nbytes <= limit
                   for base, limit, en, rd, wr in self.windows for p in ((rd, wr)[perm],)):
            self._err(f"{what}: outside the windows")

    async def run(self):
        d = self.dut
        prev_abort = prev2_abort = 0
        ar_pending = aw_pending = False
        held = [(getattr(d, v), getattr(d, r), [getattr(d, p) for p in ps], v)
                for v, r, ps in self.HELD]
        waiting = [None] * len(held)   # payload of a valid beat not yet taken
        while True:
            await RisingEdge(d.clk)
            await ReadOnly()
            self.cycle += 1
            for i, (valid, ready, payload, name) in enumerate(held):
                v = _int(valid)
                now = [_int(p) for p in payload] if v else None
                if waiting[i] is not None and now != waiting[i]:
                    self._err(f"{name} dropped or changed its beat before the transfer")
                waiting[i] = now if v and not _int(ready) else None
            abort = _int(d.abort)
            self.abort_seen |= bool(abort)
            arv, arr = _int(d.bus__arvalid), _int(d.bus__arready)
            if arv and not ar_pending and prev_abort and prev2_abort:
                self._err("AR started while abort was high")
            if arv and arr:
                addr, length = _int(d.bus__araddr), _int(d.bus__arlen)
                self.ar.append((self.cycle, addr, length + 1))
                self._check_addr("AR", 0, addr, length, _int(d.bus__arsize),
                                 _int(d.bus__arburst), _int(d.bus__arcache),
                                 _int(d.bus__arprot), _int(d.bus__arid))
            ar_pending = bool(arv and not arr)
            awv, awr = _int(d.bus__awvalid), _int(d.bus__awready)
            if awv and not aw_pending and prev_abort and prev2_abort:
                self._err("AW started while abort was high")
            if awv and awr:
                addr, length = _int(d.bus__awaddr), _int(d.bus__awlen)
                self.aw.append((self.cycle, addr, length + 1))
                self._check_addr("AW", 1, addr, length, _int(d.bus__awsize),
                                 _int(d.bus__awburst), _int(d.bus__awcache),
                                 _int(d.bus__awprot), _int(d.bus__awid))
            aw_pending = bool(awv and not awr)
            if _int(d.bus__wvalid) and _int(d.bus__wready):
                strobe = _int(d.bus__wstrb)
                if strobe != (1 << self.nbytes) - 1 and not (strobe == 0 and self.abort_seen):
                    self._err(f"W strobe 0x{strobe:x}")
                self.w.append((self.cycle, _int(d.bus__wlast), strobe))
            if _int(d.bus__rvalid) and _int(d.bus__rready):
                self.r_cycles.append(self.cycle)
            if _int(d.bus__bvalid) and _int(d.bus__bready):
                self.b_count += 1
            prev_abort, prev2_abort = abort, prev_abort

    def check_quiet(self):
        """Every burst complete: R / W beats and B responses match the address beats."""
        want_r = sum(b for _, _, b in self.ar)
        assert len(self.r_cycles) == want_r, f"{len(self.r_cycles)} R beats for {want_r}"
        lasts = [last for _, last, _ in self.w]
        want = []
        for _, _, beats in self.aw:
            want += [0] * (beats - 1) + [1]
        assert lasts == want, f"W beats / WLAST do not match the AW bursts ({len(lasts)} beats " \
                              f"for {len(want)})"
        assert self.b_count == len(self.aw), f"{self.b_count} B for {len(self.aw)} AW"
        assert not self.errors, "AXI monitor: " + "; ".join(self.errors)


# -- testbench -----------------------------------------------------------------------------------

class DmaTB:
    """Owns the clock, reset, the RAM, the AXI monitor and the stream drivers of one engine."""

    def __init__(self, dut, config: Config, rng, *, axi_pause=0.0, idle=0.0, stall=0.0,
                 faults=()):
        self.dut, self.config, self.rng = dut, config, rng
        self.nbytes = config.dram_bus_bits // 8
        self.bits = config.dram_bus_bits
        self.axi_pause = axi_pause
        self.faults = Faults(faults)
        self.rd_cmd = Source(dut, "i_rd", rng=rng, idle=idle)
        self.wr_cmd = Source(dut, "i_wr", rng=rng, idle=idle)
        self.wr_data = Source(dut, "i_wr_data", rng=rng, idle=idle)
        self.rd_data = Sink(dut, "o_rd_data", rng=rng, stall=stall)
        self.rd_done = Sink(dut, "o_rd_done", rng=rng, stall=stall)
        self.wr_done = Sink(dut, "o_wr_done", rng=rng, stall=stall)
        self.loop = StreamLoop(dut.clk, [self.rd_cmd, self.wr_cmd, self.wr_data],
                               [self.rd_data, self.rd_done, self.wr_done])
        self.mon = AxiMonitor(dut, self.nbytes)
        # scoreboard: expected read words (data, last) and statuses, in order
        self.want_rd_words, self.want_rd_done, self.want_wr_done = [], [], []
        self.shadow = None
        for name in ("i_rd", "i_wr", "i_wr_data"):
            getattr(dut, f"{name}__payload").value = 0
        dut.abort.value = 0
        dut.windows.value = 0

    async def start(self, windows=WINDOWS):
        d = self.dut

        def ram():
            # created under reset, as the bus models expect
            self.ram = FaultyAxiRam(AxiBus.from_prefix(d, "bus_"), d.clk, d.rst, RAM_SIZE,
                                    self.faults)
        await start(d, settle=False, during=ram)
        init = self.rng.integers(0, 256, RAM_SIZE, dtype=np.uint8).tobytes()
        self.ram.write(0, init)
        self.shadow = bytearray(init)
        if self.axi_pause:
            # a different rate per channel, so that each one is sometimes the bottleneck
            w, r = self.ram.write_if, self.ram.read_if
            for ch in (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel):
                p = min(0.8, self.axi_pause * self.rng.uniform(0.3, 2.0))
                ch.set_pause_generator(pauses(self.rng, p))
        self.set_windows(windows)
        cocotb.start_soon(self.mon.run())
        cocotb.start_soon(self.loop.run_until(lambda: False, 1 << 40, "stream loop"))
        await RisingEdge(d.clk)

    def set_windows(self, windows):
        self.windows = list(windows)
        self.mon.windows = self.windows
        self.dut.windows.value = windows_layout.const(
            [dict(base=b, limit=lim, enable=e, read=r, write=w)
             for b, lim, e, r, w in windows]).as_bits()

    async def wait_for(self, cond, bound, what):
        for _ in range(bound):
            if cond():
                return
            await RisingEdge(self.dut.clk)
        if not cond():
            raise AssertionError(f"{what}: not done in {bound} cycles")

    # -- jobs --------------------------------------------------------------------------

    @staticmethod
    def cmd(addr, rows, row_bytes, stride):
        return dma_cmd_layout.const(dict(addr=addr, rows=rows, row_bytes=row_bytes,
                                         stride=stride)).as_bits()

    def words_of(self, mem, addr, rows, row_bytes, stride):
        n = self.nbytes
        out = []
        for r in range(rows):
            a = addr + r * stride
            out += [int.from_bytes(mem[a + i:a + i + n], "little") for i in range(0, row_bytes, n)]
        return out

    def read(self, addr, rows, row_bytes, stride, code=DmaError.OK):
        """Queue a read job; its words are expected only when ``code`` is OK."""
        self.rd_cmd.extend([self.cmd(addr, rows, row_bytes, stride)])
        if code == DmaError.OK:
            words = self.words_of(self.shadow, addr, rows, row_bytes, stride)
            self.want_rd_words += [(w, i == len(words) - 1) for i, w in enumerate(words)]
        self.want_rd_done.append((code, addr))

    def write(self, addr, rows, row_bytes, stride, code=DmaError.OK):
        """Queue a write job with random data (``rows * ceil(row_bytes / bus bytes)`` words)."""
        n = self.nbytes
        count = rows * -(-row_bytes // n)
        words = [int.from_bytes(self.rng.integers(0, 256, n, dtype=np.uint8).tobytes(), "little")
                 for _ in range(count)]
        self.wr_cmd.extend([self.cmd(addr, rows, row_bytes, stride)])
        self.wr_data.extend(words)
        if code == DmaError.OK:
            it = iter(words)
            for r in range(rows):
                a = addr + r * stride
                for i in range(0, row_bytes, n):
                    self.shadow[a + i:a + i + n] = next(it).to_bytes(n, "little")
        self.want_wr_done.append((code, addr))
        return words

    def decode_words(self):
        mask = (1 << self.bits) - 1
        return [(b & mask, bool(b >> self.bits)) for b in self.rd_data.beats]

    @staticmethod
    def decode_status(beats):
        out = []
        for b in beats:
            s = dma_status_layout.from_bits(b)
            out.append((DmaError(s.code), int(s.addr)))
        return out

    def bound(self, words):
        pause = min(0.8, 2 * self.axi_pause)
        slow = 1.0 / max(0.02, (1 - pause) ** 2 * (1 - self.rd_data.stall))
        return int(300 + 6 * words * slow)

    async def finish(self, words, what):
        """Wait for every queued job's status, then check everything that was queued."""
        await self.wait_for(lambda: len(self.rd_done.beats) >= len(self.want_rd_done)
                            and len(self.wr_done.beats) >= len(self.want_wr_done),
                            self.bound(words), what)
        await self.wait_for(lambda: _int(self.dut.o_idle), 50, f"{what}: o_idle")
        await self.check(what)

    async def check(self, what):
        got = self.decode_status(self.rd_done.beats)
        assert got == self.want_rd_done, f"{what}: read statuses {got} != {self.want_rd_done}"
        got = self.decode_status(self.wr_done.beats)
        assert got == self.want_wr_done, f"{what}: write statuses {got} != {self.want_wr_done}"
        words = self.decode_words()
        if words != self.want_rd_words:
            bad = next((i for i, (a, b) in enumerate(zip(words, self.want_rd_words, strict=False))
                        if a != b),
                       min(len(words), len(self.want_rd_words)))
            raise AssertionError(f"{what}: read words differ from word {bad} ({len(words)} got, "
                                 f"{len(self.want_rd_words)} expected)")
        assert self.rd_cmd.done and self.wr_cmd.done, f"{what}: commands left"
        assert self.wr_data.done, f"{what}: {len(self.wr_data.queue)} write words not consumed"
        mem = self.ram.read(0, RAM_SIZE)
        if mem != bytes(self.shadow):
            diff = next(i for i in range(RAM_SIZE) if mem[i] != self.shadow[i])
            raise AssertionError(f"{what}: RAM differs from the model at 0x{diff:x}")
        self.mon.check_quiet()
        # everything checked: start the next batch from empty lists
        self.rd_data.beats, self.rd_done.beats, self.wr_done.beats = [], [], []
        self.want_rd_words, self.want_rd_done, self.want_wr_done = [], [], []

    def counters(self):
        return _int(self.dut.rd_bytes), _int(self.dut.wr_bytes)


def random_region(rng, nbytes, window, *, max_rows=5, max_row_beats=40):
    """A good job inside ``window``: near 4 KiB boundaries, overlapping or sparse rows."""
    base, limit = window[0], window[1]
    row_bytes = nbytes * int(rng.integers(1, max_row_beats + 1))
    rows = int(rng.integers(1, max_rows + 1))
    kind = rng.integers(0, 5)
    if kind == 0:
        stride = row_bytes
    elif kind == 1:
        stride = row_bytes + nbytes * int(rng.integers(1, 64))
    elif kind == 2:
        stride = nbytes * int(rng.integers(0, max(1, row_bytes // nbytes)))  # overlapping rows
    elif kind == 3:
        stride = 0x1000 + nbytes * int(rng.integers(-4, 5))
    else:
        stride = nbytes * int(rng.integers(0, 4096 // nbytes))
    span = (rows - 1) * stride + row_bytes
    while span > limit - base:
        rows -= 1
        span = (rows - 1) * stride + row_bytes
    room = (limit - base - span) // nbytes
    pick = rng.integers(0, 4)
    if pick == 0:
        addr = base + nbytes * int(rng.integers(0, room + 1))
    elif pick == 1:
        addr = limit - span  # ends exactly at the limit
    else:  # just before a 4 KiB boundary
        page = base + 0x1000 * int(rng.integers(1, (limit - base) // 0x1000))
        addr = min(max(base, page - nbytes * int(rng.integers(0, 24))), limit - span)
    return addr, rows, row_bytes, stride


def random_refused(rng, nbytes, perm):
    """A job the engine must refuse on a path (``perm`` 0 read, 1 write), and its code."""
    job = list(random_region(rng, nbytes, WINDOWS[0], max_rows=3, max_row_beats=12))
    kind = int(rng.integers(0, 8))
    if kind == 0 and nbytes > 1:
        job[0] += int(rng.integers(1, nbytes))
    elif kind == 1:
        job[2] += int(rng.integers(1, nbytes))
    elif kind == 2:
        job[3] += int(rng.integers(1, nbytes))
    elif kind == 3:
        job[1] = 0
    elif kind == 4:
        job[2] = 0
    else:
        # the same shape in a window without the permission, a disabled one, or across two
        span = (job[1] - 1) * job[3] + job[2]
        if kind == 5:
            job[0] = WINDOWS[2 - perm][0] + nbytes * int(rng.integers(0, 64))
        elif kind == 6:
            job[0] = WINDOWS[3][0] + nbytes * int(rng.integers(0, 64))
        else:
            job[0] = WINDOWS[1][0] - nbytes * int(rng.integers(1, span // nbytes + 1)) + nbytes
            job[0] = min(job[0], WINDOWS[1][0] - nbytes)
            if job[0] + span <= WINDOWS[1][0]:
                job[2] += WINDOWS[1][0] - (job[0] + span) + nbytes
        return tuple(job), DmaError.OUT_OF_WINDOW
    return tuple(job), DmaError.BAD_FIELD


def check_partial_write(mem, old, new, n):
    """Every word of ``mem`` is either its ``old`` or its ``new`` value."""
    for i in range(0, RAM_SIZE, 0x1000):
        page = mem[i:i + 0x1000]
        if page != old[i:i + 0x1000] and page != new[i:i + 0x1000]:
            for j in range(i, i + 0x1000, n):
                assert mem[j:j + n] in (old[j:j + n], new[j:j + n]), f"stray write at 0x{j:x}"


# -- tests -----------------------------------------------------------------------------------------

@cocotb.test()
async def random_reads(dut):
    """Random 2-D reads with pauses on every AXI channel and gaps on every stream."""
    tb = await started(DmaTB, dut, "random_reads", axi_pause=0.3, idle=0.3, stall=0.3)
    rng = tb.rng
    words = 0
    for _ in range(10):
        if rng.random() < 0.2:
            job, code = random_refused(rng, tb.nbytes, 0)
            tb.read(*job, code=code)
            continue
        addr, rows, row_bytes, stride = random_region(rng, tb.nbytes, WINDOWS[rng.integers(0, 2)])
        tb.read(addr, rows, row_bytes, stride)
        words += rows * row_bytes // tb.nbytes
    await tb.finish(words, "random reads")
    assert tb.counters()[0] == words * tb.nbytes, f"rd_bytes {tb.counters()[0]}"
    dut._log.info("random reads: %d words, %d bursts", words, len(tb.mon.ar))


@cocotb.test()
async def random_writes(dut):
    """Random 2-D writes with pauses on every AXI channel and gaps on every stream."""
    tb = await started(DmaTB, dut, "random_writes", axi_pause=0.3, idle=0.3, stall=0.3)
    rng = tb.rng
    words = 0
    for _ in range(10):
        if rng.random() < 0.2:
            job, code = random_refused(rng, tb.nbytes, 1)
            tb.write(*job, code=code)
            continue
        win = WINDOWS[(0, 2)[rng.integers(0, 2)]]
        addr, rows, row_bytes, stride = random_region(rng, tb.nbytes, win)
        tb.write(addr, rows, row_bytes, stride)
        words += rows * row_bytes // tb.nbytes
    await tb.finish(words, "random writes")
    assert tb.counters()[1] == words * tb.nbytes, f"wr_bytes {tb.counters()[1]}"
    dut._log.info("random writes: %d words, %d bursts", words, len(tb.mon.aw))


@cocotb.test()
async def concurrent_read_write(dut):
    """Reads from the read-only window while writes go to the write-only one."""
    tb = await started(DmaTB, dut, "concurrent_read_write", axi_pause=0.2, idle=0.2, stall=0.2)
    rng = tb.rng
    words = 0
    for _ in range(6):
        job = random_region(rng, tb.nbytes, WINDOWS[1])
        tb.read(*job)
        words += job[1] * job[2] // tb.nbytes
        job = random_region(rng, tb.nbytes, WINDOWS[2])
        tb.write(*job)
        words += job[1] * job[2] // tb.nbytes
    await tb.finish(words // 2, "concurrent jobs")
    # both directions were busy at once
    r = set(tb.mon.r_cycles)
    both = sum(1 for c, _, _ in tb.mon.w if c in r)
    dut._log.info("concurrent: %d cycles with both an R and a W beat", both)
    assert both > 0, "read and write never overlapped"


@cocotb.test()
async def refused_jobs(dut):
    """Bad fields and out-of-window jobs: right code and address, no AR / AW at all, and a
    refused write still consumes exactly its words (the next good jobs stay aligned)."""
    config = config_from_env()
    rng = rng_from_env(dut, "refused_jobs")
    tb = DmaTB(dut, config, rng, axi_pause=0.2, idle=0.3, stall=0.3)
    windows = WINDOWS[:3] + [(0xFFFF0000, 0xFFFFFFFF, 1, 1, 1)]
    await tb.start(windows)
    n = tb.nbytes
    bad = DmaError.BAD_FIELD
    oow = DmaError.OUT_OF_WINDOW
    jobs = [
        ((0x100 + n // 2, 2, 4 * n, 8 * n), bad),   # unaligned addr
        ((0x100, 3, 3 * n + 1, 8 * n), bad),        # unaligned row_bytes (3 * 4 words)
        ((0x100, 2, 4 * n, 8 * n + 2), bad),        # unaligned stride
        ((0x100, 0, 4 * n, 8 * n), bad),            # no rows
        ((0x100, 2, 0, 8 * n), bad),                # empty rows
        ((0x40000 - 2 * n, 1, 4 * n, 0), oow),      # spans windows 0 and 1
        ((0x40000 - 47 * n, 2, 16 * n, 32 * n), oow),  # row 1 ends one word past window 0
        ((0x80000, 1, 4 * n, 0), oow),              # disabled window
        ((0xA0000, 1, 4 * n, 0), oow),              # no window
        ((0xFFFFF000, 2, 0x40, 0x1000), oow),       # past 2**32
        ((0xFFFF0000, 2, 0x100, 0xFFFFF000), oow),  # extent wraps around 2**32 in 32 bits
        ((0xFFFFFF00, 1, 0x100, 0), oow),           # ends exactly at 2**32 > limit
    ]
    for job, code in jobs:
        tb.read(*job, code=code)
        tb.write(*job, code=code)
    tb.write(0x50000, 1, 4 * n, 0, code=oow)   # read-only window
    tb.read(0x60000, 1, 4 * n, 0, code=oow)    # write-only window
    await tb.finish(400, "refused jobs")
    assert not tb.mon.ar and not tb.mon.aw, "a refused job reached the bus"
    # the engine still works, and the refused writes left the data stream aligned
    tb.write(0x1000 - 2 * n, 3, 5 * n, 7 * n)
    tb.read(0x5000 - 2 * n, 3, 5 * n, 7 * n)
    await tb.finish(100, "good jobs after refused ones")


@cocotb.test()
async def bus_errors(dut):
    """SLVERR / DECERR on reads and writes: first error wins with its burst address, issued
    bursts complete, read words are still delivered, and the next jobs run normally."""
    config = config_from_env()
    rng = rng_from_env(dut, "bus_errors")
    n = config.dram_bus_bits // 8
    slv = (0x2000 + 40 * n, 0x2000 + 42 * n, AxiResp.SLVERR)
    dec = (0x2000 + 70 * n, 0x2000 + 71 * n, AxiResp.DECERR)
    tb = DmaTB(dut, config, rng, axi_pause=0.2, idle=0.2, stall=0.2, faults=[slv, dec])
    await tb.start()
    cases = [
        ((0x2000, 2, 48 * n, 64 * n), slv, DmaError.SLVERR),   # row 0 beats 40, 41
        ((0x2000 + 64 * n, 1, 32 * n, 0), dec, DmaError.DECERR),
        ((0x2000, 1, 96 * n, 0), slv, DmaError.SLVERR),        # both: the first one wins
    ]
    for (addr, rows, row_bytes, stride), fault, code in cases:
        plan = bursts(addr, rows, row_bytes, stride, n)
        first = next(i for i, (a, b) in enumerate(plan) if a < fault[1] and fault[0] < a + b * n)
        err_addr = plan[first][0]
        want = tb.words_of(tb.shadow, addr, rows, row_bytes, stride)
        through = sum(b for _, b in plan[:first + 1])

        # read: words of the issued bursts are delivered, last on the final one
        tb.rd_cmd.extend([tb.cmd(addr, rows, row_bytes, stride)])
        await tb.wait_for(lambda: tb.rd_done.beats, tb.bound(len(want)), "read with error")
        await tb.wait_for(lambda: _int(dut.o_idle), 50, "o_idle")
        got = tb.decode_status(tb.rd_done.beats)
        assert got == [(code, err_addr)], f"read status {got}, want {(code, err_addr)}"
        words = tb.decode_words()
        assert through <= len(words) <= len(want), f"{len(words)} words, {through} at least"
        assert [w for w, _ in words] == want[:len(words)], "read words differ"
        assert [last for _, last in words] == [False] * (len(words) - 1) + [True], "last flags"
        tb.rd_data.beats, tb.rd_done.beats = [], []

        # write: every word consumed; faulty words not written, earlier bursts written
        old = bytes(tb.shadow)
        tb.write(addr, rows, row_bytes, stride)
        new = bytes(tb.shadow)
        await tb.wait_for(lambda: tb.wr_done.beats, tb.bound(len(want)), "write with error")
        await tb.wait_for(lambda: _int(dut.o_idle), 50, "o_idle")
        got = tb.decode_status(tb.wr_done.beats)
        assert got == [(code, err_addr)], f"write status {got}, want {(code, err_addr)}"
        assert tb.wr_data.done, "write words left"
        mem = tb.ram.read(0, RAM_SIZE)
        for a, beats in plan[:first]:
            assert mem[a:a + beats * n] == new[a:a + beats * n], f"burst 0x{a:x} lost"
        check_partial_write(mem, old, new, n)
        for lo, hi, _ in (slv, dec):
            assert mem[lo:hi] == old[lo:hi], "a faulty beat was written"
        tb.shadow[:] = mem
        tb.wr_done.beats, tb.want_wr_done = [], []
        tb.mon.check_quiet()
    # the engine recovers
    tb.read(0x2000, 2, 8 * n, 16 * n)
    tb.write(0x3000, 2, 8 * n, 16 * n)
    await tb.finish(32, "good jobs after bus errors")


async def _abort_round(tb, rd_job, wr_job, wr_code, trigger, label):
    """Start a long read and a long write, wait for ``trigger``, abort, check, recover."""
    dut, n = tb.dut, tb.nbytes
    old = bytes(tb.shadow)
    tb.read(*rd_job, code=DmaError.ABORTED)
    tb.write(*wr_job, code=wr_code)
    new = bytes(tb.shadow)
    await trigger()
    dut.abort.value = 1
    ar_at_abort, aw_at_abort = len(tb.mon.ar), len(tb.mon.aw)
    # the parent flushes its queue (all but a word already offered, which must stay); the
    # engine takes and drops whatever is offered while abort is high
    while len(tb.wr_data.queue) > 1:
        tb.wr_data.queue.pop()
    await tb.wait_for(lambda: _int(dut.o_idle) and tb.wr_data.done, 2000, f"{label}: abort")
    for _ in range(int(tb.rng.integers(1, 6))):
        await RisingEdge(dut.clk)
    dut.abort.value = 0
    assert len(tb.mon.ar) <= ar_at_abort + 1 and len(tb.mon.aw) <= aw_at_abort + 1, \
        f"{label}: bursts started after the abort"
    total = rd_job[1] * rd_job[2] // n
    dut._log.info("%s: %d of %d read words delivered, %d W beats (%d with zero strobes)",
                  label, len(tb.rd_data.beats), total, len(tb.mon.w),
                  sum(1 for _, _, s in tb.mon.w if s == 0))
    got = tb.decode_status(tb.rd_done.beats) + tb.decode_status(tb.wr_done.beats)
    want = [(DmaError.ABORTED, rd_job[0]), (DmaError.ABORTED, wr_job[0])]
    assert got == want, f"{label}: statuses {got}, want {want}"
    words = tb.decode_words()
    assert len(words) < total, f"{label}: the read was not cut short"
    assert [w for w, _ in words] == tb.words_of(old, *rd_job)[:len(words)], \
        f"{label}: read words before the abort differ"
    mem = tb.ram.read(0, RAM_SIZE)
    check_partial_write(mem, old, new, n)
    tb.mon.check_quiet()
    tb.shadow[:] = mem
    tb.rd_data.beats, tb.rd_done.beats, tb.wr_done.beats = [], [], []
    tb.want_rd_words, tb.want_rd_done, tb.want_wr_done = [], [], []
    # good jobs after the abort
    tb.write(0x30000 - 4 * n, 3, 24 * n, 32 * n)
    tb.read(0x38000 - 4 * n, 3, 24 * n, 32 * n)
    await tb.finish(200, f"{label}: good jobs after the abort")


@cocotb.test()
async def abort_midway(dut):
    """Abort long reads and writes in flight, right after they are accepted, and while a
    refused write is discarding its words: the jobs end ABORTED, every issued burst completes
    (write beats with zero strobes), nothing new starts, and the next jobs run normally."""
    tb = await started(DmaTB, dut, "abort_midway", axi_pause=0.2, idle=0.1, stall=0.2)
    rng = tb.rng
    n = tb.nbytes
    rd_job = (0x10000, 16, 64 * n, 80 * n)
    wr_job = (0x20000 - 8 * n, 16, 64 * n, 80 * n)

    t = int(rng.integers(10, 400))

    async def in_flight():
        await tb.wait_for(lambda: len(tb.rd_data.beats) > t and len(tb.mon.w) > t, 5000,
                          "traffic before the abort")

    await _abort_round(tb, rd_job, wr_job, DmaError.OK, in_flight, f"abort after {t} beats")

    delay = int(rng.integers(0, 6))

    async def accepted():
        await tb.wait_for(lambda: tb.rd_cmd.done and tb.wr_cmd.done, 100, "jobs accepted")
        for _ in range(delay):
            await RisingEdge(dut.clk)

    await _abort_round(tb, rd_job, wr_job, DmaError.OK, accepted,
                       f"abort {delay} cycles after acceptance")

    async def discarding():
        await tb.wait_for(lambda: len(tb.rd_data.beats) > t and tb.wr_data.sent > t, 5000,
                          "traffic before the abort")

    refused = (WINDOWS[1][0], 16, 64 * n, 64 * n)   # read-only window
    await _abort_round(tb, rd_job, refused, DmaError.OUT_OF_WINDOW, discarding,
                       f"abort of a refused write after {t} words")

    # an abort while idle changes nothing
    dut.abort.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
        assert _int(dut.o_idle), "not idle during an idle abort"
    dut.abort.value = 0
    tb.read(0x2000, 2, 8 * n, 16 * n)
    tb.write(0x3000, 2, 8 * n, 16 * n)
    await tb.finish(32, "good jobs after an idle abort")


@cocotb.test()
async def full_rate(dut):
    """With no pauses a long read keeps R at least 85 % busy; also measures W."""
    tb = await started(DmaTB, dut, "full_rate")
    n = tb.nbytes
    job = (0x1000 - 8 * n, 4, 0x1000, 0x2000)   # every row crosses a 4 KiB boundary
    beats = job[1] * job[2] // n
    util = {}
    for kind in ("read", "write"):
        start = tb.mon.cycle
        getattr(tb, kind)(*job)
        await tb.finish(beats, f"full-rate {kind}")
        cycles = [c for c, *_ in tb.mon.w] if kind == "write" else tb.mon.r_cycles
        cycles = [c for c in cycles if c > start]
        assert len(cycles) == beats
        util[kind] = beats / (cycles[-1] - cycles[0] + 1)
        dut._log.info("full-rate %s: %d beats in %d cycles on the data channel (%.1f %%), "
                      "%d cycles command to idle", kind, beats, cycles[-1] - cycles[0] + 1,
                      100 * util[kind], tb.mon.cycle - start)
    assert util["read"] >= 0.85, f"read data channel {100 * util['read']:.1f} % busy"
    assert util["write"] >= 0.85, f"write data channel {100 * util['write']:.1f} % busy"
