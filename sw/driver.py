"""The device driver: discovers the device, manages the descriptor ring, runs programs.

The driver is written once, as coroutines, against :class:`Backend`; backends are the numpy
functional model (:class:`ModelBackend`, instant), the RTL under cocotb
(``s4accel.sim.tb.rtl_backend.RtlBackend``, Verilator or Icarus) and, later, a board behind a host
bridge. The same program bytes run on every backend.

Typical use with the functional model::

    import asyncio
    from s4accel.sw.driver import Driver, ModelBackend
    dev = Driver(ModelBackend("fpga"))
    y = asyncio.run(dev.run_layer(x, packed))       # Y = X @ W.T, int32
"""

from __future__ import annotations

import abc
import asyncio
import time
from dataclasses import dataclass

import numpy as np

from ..base.config import SPARSITY_LEVELS
from ..base.sparse import PackedWeights
from ..hw.cmd.descriptors import DESC_BYTES, ErrorCode
from . import regs
from .program import Allocator, DeviceInfo, LayerParams, layer_program
from .chain import chain_program

__all__ = ["Backend", "Driver", "CsrBusError", "DeviceError", "DeviceTimeout", "LayerResult",
           "RING_SLOTS"]

#: Default DRAM region the driver may use (the programmed access window).
DRAM_BASE = 0x1000_0000
DRAM_SIZE = 8 << 20


class DeviceError(RuntimeError):
    """The device stopped on an error: ``code`` (ErrorCode), the faulting descriptor's address
    ``desc_addr`` and its ring slot ``index``."""

    def __init__(self, code: int, desc_addr: int, index: int | None = None):
        try:
            self.code = ErrorCode(code)
        except ValueError:
            self.code = code
        self.desc_addr = desc_addr
        self.index = index
        name = self.code.name if isinstance(self.code, ErrorCode) else f"code {code}"
        where = f" (ring slot {index})" if index is not None else ""
        super().__init__(f"device error {name} at descriptor address {desc_addr:#010x}{where}")


class CsrBusError(RuntimeError):
    """A register access the device answered with a bus error (SLVERR / DECERR): an offset
    with no register (docs/faults.md, section 4)."""

    def __init__(self, offset: int, write: bool, resp: str = "DECERR"):
        self.offset, self.write, self.resp = offset, write, resp
        super().__init__(f"CSR {'write' if write else 'read'} at offset {offset:#05x}: the "
                         f"register block answered {resp} (no register there)")


class DeviceTimeout(TimeoutError):
    """The device did not finish within the cycle bound."""


class Backend(abc.ABC):
    """How the driver reaches a device: registers, DRAM, interrupt, time."""

    @abc.abstractmethod
    async def read32(self, offset: int) -> int:
        """The register at byte ``offset`` (bits 1:0 are ignored); :class:`CsrBusError` where
        the device answers a bus error."""

    @abc.abstractmethod
    async def write32(self, offset: int, value: int) -> None:
        """Write the register at ``offset``; :class:`CsrBusError` as :meth:`read32`."""

    @abc.abstractmethod
    async def mem_write(self, addr: int, data: bytes) -> None: ...

    @abc.abstractmethod
    async def mem_read(self, addr: int, n: int) -> bytes: ...

    @abc.abstractmethod
    async def wait_irq(self, max_cycles: int) -> bool:
        """Wait until the interrupt line is high (True) or ``max_cycles`` pass (False)."""

    @abc.abstractmethod
    async def cycle(self) -> int:
        """A free-running cycle count (0 on backends without time)."""

    def inject_bus_error(self, lo: int, hi: int, kind: str) -> None:
        """Make DRAM ``[lo, hi)`` answer ``kind`` (``"slverr"`` or ``"decerr"``) to the
        device's accesses: a test hook of simulated backends, absent on real boards."""
        raise NotImplementedError(f"{type(self).__name__} cannot inject bus errors")

    dram_base = DRAM_BASE
    dram_size = DRAM_SIZE



@dataclass
class LayerResult:
    """One program's outcome: ``cycles`` from handing it over (the first register access of
    :meth:`Driver.submit`) to the completion interrupt as the driver sees it, and ``wall_s``,
    the host's wall time over the same span (what simulators are measured by)."""
    y: np.ndarray
    cycles: int
    counters: dict
    dram_bytes: int
    descriptors: int
    wall_s: float = 0.0


def _f(reg, field):
    return regs.REGISTERS[reg].field(field)


#: Descriptor ring slots the driver asks for: programs of up to ``RING_SLOTS - 1`` descriptors
#: (the longest layer of ``s4 bench gemm`` has 3,122) are written whole before the device is
#: told, so it never waits on the host; 128 KiB of DRAM.
RING_SLOTS = 4096


class Driver:
    """One device behind a :class:`Backend`."""

    def __init__(self, backend: Backend, *, ring_slots: int = RING_SLOTS, use_irq: bool = True):
        self.backend = backend
        self.ring_slots = ring_slots
        self.use_irq = use_irq
        self.info: DeviceInfo | None = None
        self._tail = 0

    # -- discovery and setup -------------------------------------------------------------------
    async def open(self) -> DeviceInfo:
        """Discover the device and take it over: stop fetching, program window 0 over the
        backend's DRAM region and a ``ring_slots`` ring at its start, bring RING_HEAD inside
        that ring (an earlier user with a larger ring, or a soft reset with a tail past it, may
        have left it beyond), acknowledge any interrupt an earlier user left pending (a stale
        error would be reported as ours, a stale done would end our first wait early), then
        enable the command processor with an empty ring."""
        b = self.backend
        ident = await b.read32(regs.ID)
        if ident != regs.ID_VALUE_RESET:
            raise RuntimeError(
                f"no S4-open device: ID reads {ident:#010x}, expected {regs.ID_VALUE_RESET:#010x}")
        arr = await b.read32(regs.CAP_ARRAY)
        mask = _f("CAP_SPARSITY", "mask").get(await b.read32(regs.CAP_SPARSITY))
        sram = await b.read32(regs.CAP_SRAM)
        bus = _f("CAP_BUS", "dram_bus_bits").get(await b.read32(regs.CAP_BUS))
        cap_codec = await b.read32(regs.CAP_CODEC)
        cap_vec = await b.read32(regs.CAP_VEC)
        self.info = DeviceInfo(
            rows=_f("CAP_ARRAY", "rows").get(arr), cols=_f("CAP_ARRAY", "cols").get(arr),
            spus=_f("CAP_ARRAY", "spus").get(arr),
            sparsities=tuple(s for i, s in enumerate(SPARSITY_LEVELS) if mask >> i & 1),
            bus_bits=bus,
            act_sram_kib=1 << _f("CAP_SRAM", "act_kib_log2").get(sram),
            wgt_sram_kib=1 << _f("CAP_SRAM", "wgt_kib_log2").get(sram),
            out_sram_kib=1 << _f("CAP_SRAM", "out_kib_log2").get(sram),
            l2_kib=_f("CAP_L2", "kib").get(await b.read32(regs.CAP_L2)),
            vec_max_row=_f("CAP_VEC", "max_row").get(cap_vec),
            jpeg_decoders=_f("CAP_CODEC", "jpeg_decoders").get(cap_codec),
            jpeg_max_width=1 << _f("CAP_CODEC", "max_width_log2").get(cap_codec),
            vec_units=1 << _f("CAP_VEC", "units_log2").get(cap_vec))
        base, size = b.dram_base, b.dram_size
        await b.write32(regs.CTRL, 0)             # no fetch while the ring is reprogrammed
        await b.write32(regs.WIN0_BASE, base)
        await b.write32(regs.WIN0_LIMIT, base + size)
        win = 0x010101                            # window 0: enabled, read, write
        if self.info.l2_kib:                      # window 1: the on-chip L2
            await b.write32(regs.WIN1_BASE, self.info.l2_base)
            await b.write32(regs.WIN1_LIMIT, self.info.l2_base + self.info.l2_kib * 1024)
            win |= 0x020202
        await b.write32(regs.WIN_CTRL, win)
        self.ring_base = base
        await b.write32(regs.RING_BASE, base)
        await b.write32(regs.RING_SIZE, self.ring_slots)
        head = await b.read32(regs.RING_HEAD)
        if head >= self.ring_slots:
            # a soft reset empties the ring by moving the head to the tail
            await b.write32(regs.RING_TAIL, 0)
            await b.write32(regs.CTRL, _f("CTRL", "soft_reset").mask)
            for _ in range(64):                   # the RTL flushes for a few cycles first
                head = await b.read32(regs.RING_HEAD)
                if head < self.ring_slots:
                    break
                await b.wait_irq(16)
            else:
                raise RuntimeError(f"RING_HEAD stays at {head} after a soft reset, outside the "
                                   f"{self.ring_slots}-slot ring")
        self._tail = head
        await b.write32(regs.RING_TAIL, self._tail)
        await b.write32(regs.IRQ, _f("IRQ", "error").mask | _f("IRQ", "done").mask)
        await b.write32(regs.CTRL, (1 << _f("CTRL", "enable").lsb)
                        | (int(self.use_irq) << _f("CTRL", "irq_en").lsb))
        self.alloc = Allocator(base + self.ring_slots * DESC_BYTES,
                               size - self.ring_slots * DESC_BYTES)
        return self.info

    async def set_watchdog(self, cycles: int):
        await self.backend.write32(regs.WATCHDOG, cycles)

    async def set_window(self, index: int, base: int, limit: int, read=True, write=True):
        """Program DRAM access window ``index`` (0..3)."""
        if not 0 <= index < 4:
            raise ValueError(f"window index must be 0..3, not {index}")
        b = self.backend
        await b.write32(getattr(regs, f"WIN{index}_BASE"), base)
        await b.write32(getattr(regs, f"WIN{index}_LIMIT"), limit)
        ctrl = await b.read32(regs.WIN_CTRL)
        for name, on in (("en", True), ("rd", read), ("wr", write)):
            f = _f("WIN_CTRL", name)
            bits = f.get(ctrl)
            bits = bits | (1 << index) if on else bits & ~(1 << index)
            ctrl = f.put(ctrl, bits)
        await b.write32(regs.WIN_CTRL, ctrl)

    # -- ring ----------------------------------------------------------------------------------
    async def submit(self, descs, max_cycles: int = 10_000_000) -> int:
        """Write descriptors into the ring and hand them to the device; returns the address of
        the first one.

        A program that fits the free slots is written whole and handed over with one
        ``RING_TAIL`` write (one ``RING_HEAD`` read before it). A longer one is handed over in
        pieces as the device frees slots; if it frees none for ``max_cycles`` (device disabled
        or halted on an error) :class:`DeviceTimeout` is raised, after handing over what was
        written.
        """
        b = self.backend
        descs = [bytes(d) for d in descs]
        for d in descs:
            if len(d) != DESC_BYTES:
                raise ValueError(f"a descriptor is {DESC_BYTES} bytes, not {len(d)}")
        first = self.ring_base + self._tail * DESC_BYTES
        head = await b.read32(regs.RING_HEAD)
        i = 0
        while i < len(descs):
            free = (head - self._tail - 1) % self.ring_slots
            if free == 0:
                await b.write32(regs.RING_TAIL, self._tail)
                head = await self._wait_for_slot(head, max_cycles)
                continue
            # contiguous slots up to the ring's end: one memory write
            run = min(free, len(descs) - i, self.ring_slots - self._tail)
            await b.mem_write(self.ring_base + self._tail * DESC_BYTES, b"".join(descs[i:i + run]))
            self._tail = (self._tail + run) % self.ring_slots
            i += run
        await b.write32(regs.RING_TAIL, self._tail)
        return first

    async def _wait_for_slot(self, head, max_cycles):
        """Poll RING_HEAD until it moves from ``head``; the new value."""
        b = self.backend
        start = await b.cycle()
        while True:
            await b.wait_irq(64)
            now = await b.read32(regs.RING_HEAD)
            if now != head:
                return now
            waited = await b.cycle() - start
            if waited >= max_cycles or waited == 0:
                status = await b.read32(regs.STATUS)
                raise DeviceTimeout(
                    f"the descriptor ring is full and the device freed no slot in {waited} "
                    f"cycles (STATUS {status:#x}: disabled, halted on an error or stuck)")

    async def wait(self, max_cycles: int = 10_000_000):
        """Wait for the COMPLETE interrupt; raise :class:`DeviceError` on a device error."""
        b = self.backend
        start = await b.cycle()
        while True:
            irq = await b.read32(regs.IRQ)
            if _f("IRQ", "error").get(irq):
                status = await b.read32(regs.STATUS)
                addr = await b.read32(regs.ERR_ADDR)
                self._tail = await b.read32(regs.RING_TAIL)
                await b.write32(regs.IRQ, _f("IRQ", "error").mask)   # acknowledge
                raise DeviceError(_f("STATUS", "err_code").get(status), addr,
                                  (addr - self.ring_base) // DESC_BYTES)
            if _f("IRQ", "done").get(irq):
                await b.write32(regs.IRQ, _f("IRQ", "done").mask)
                return
            waited = await b.cycle() - start
            if waited >= max_cycles:
                raise DeviceTimeout(f"the device did not complete within {max_cycles} cycles "
                                    f"(STATUS {await b.read32(regs.STATUS):#x})")
            if self.use_irq:
                await b.wait_irq(min(max_cycles - waited, 4096))
            else:
                await b.wait_irq(min(max_cycles - waited, 64))
            if await b.cycle() == start and not await b.wait_irq(0):
                # an untimed backend that is neither done nor failed never will be
                raise DeviceTimeout("the device is idle without completing the program")

    async def soft_reset(self):
        await self.backend.write32(regs.CTRL, (await self.backend.read32(regs.CTRL))
                                   | _f("CTRL", "soft_reset").mask)
        self._tail = await self.backend.read32(regs.RING_TAIL)

    async def counters(self) -> dict:
        b = self.backend
        return {name.lower(): await b.read32(getattr(regs, name)) for name in
                ("PERF_BUSY", "PERF_MAC", "PERF_STALL_IN", "PERF_STALL_OUT",
                 "PERF_DMA_RD_BYTES", "PERF_DMA_WR_BYTES", "PERF_DESC")}

    # -- programs ------------------------------------------------------------------------------
    async def run_program(self, prog, max_cycles=10_000_000):
        b = self.backend
        for addr, data in prog.images:
            await b.mem_write(addr, data)
        before = await self.counters()
        w0 = time.perf_counter()
        t0 = await b.cycle()
        await self.submit(prog.descs, max_cycles)
        await self.wait(max_cycles)
        cycles = await b.cycle() - t0
        wall = time.perf_counter() - w0
        after = await self.counters()
        out = {}
        for addr, nbytes, *_ in prog.outputs:
            out[addr] = await b.mem_read(addr, nbytes)
        y = prog.decode(lambda a, n: out[a][:n])
        delta = {k: (after[k] - before[k]) & 0xFFFFFFFF for k in after}
        return LayerResult(y=y, cycles=cycles, counters=delta, dram_bytes=prog.dram_bytes,
                           descriptors=len(prog.descs), wall_s=wall)

    def program(self, x, packed: PackedWeights, params: LayerParams | None = None):
        """Build (not run) the program of one layer, allocating its DRAM."""
        if self.info is None:
            raise RuntimeError("call open() first")
        return layer_program(self.info, x, packed, params or LayerParams(), self.alloc)

    def chain(self, x, layers, *, max_chunk=None):
        """Build (not run) the on-chip program of a chain of layers (``[(packed, params),
        ...]``, :func:`~.chain.chain_program`; ``NotOnChip`` where it does not fit)."""
        if self.info is None:
            raise RuntimeError("call open() first")
        return chain_program(self.info, x, layers, self.alloc, max_chunk=max_chunk)

    async def run_chain(self, x, layers, *, max_chunk=None, max_cycles=10_000_000):
        """A chain of layers as one program: the input goes in once, the last layer's output
        comes out once, the activations in between stay on chip."""
        if self.info is None:
            await self.open()
        mark = self.alloc.top
        try:
            return await self.run_program(self.chain(x, layers, max_chunk=max_chunk),
                                          max_cycles)
        finally:
            self.alloc.top = mark

    async def run_conv(self, x, packed: PackedWeights, params: LayerParams, *, ksize, stride=1,
                       pad=0, max_band=None, max_cycles=10_000_000):
        """A convolution on NHWC ``x`` without im2col (:func:`~.conv.conv_program`): the
        result's ``y`` is ``[N, Ho, Wo, Cout]``."""
        from .conv import conv_program, rows_nhwc
        if self.info is None:
            await self.open()
        mark = self.alloc.top
        try:
            prog = conv_program(self.info, x, packed, params, self.alloc, ksize=ksize,
                                stride=stride, pad=pad, max_band=max_band)
            res = await self.run_program(prog, max_cycles)
        finally:
            self.alloc.top = mark
        from ..base.golden import conv_out_size
        n, h, w, _ = np.asarray(x).shape
        res.y = rows_nhwc(res.y, n, conv_out_size(h, ksize, stride, pad),
                          conv_out_size(w, ksize, stride, pad), self.info.rows)
        return res

    async def run_pool(self, x, *, ksize, stride=1, pad=0, max_band=None,
                       max_cycles=10_000_000):
        """Max pooling of NHWC ``x`` on the device (:func:`~.conv.pool_program`): the
        result's ``y`` is ``[N, Ho, Wo, C]``."""
        from ..base.golden import conv_out_size
        from .conv import pool_program, rows_nhwc
        if self.info is None:
            await self.open()
        mark = self.alloc.top
        try:
            prog = pool_program(self.info, x, self.alloc, ksize=ksize, stride=stride, pad=pad,
                                max_band=max_band)
            res = await self.run_program(prog, max_cycles)
        finally:
            self.alloc.top = mark
        n, h, w, _ = np.asarray(x).shape
        res.y = rows_nhwc(res.y, n, conv_out_size(h, ksize, stride, pad),
                          conv_out_size(w, ksize, stride, pad), self.info.rows)
        return res

    async def run_layer(self, x, packed: PackedWeights, params: LayerParams | None = None,
                        max_cycles=10_000_000) -> LayerResult:
        """``Y = requant(X @ W.T + bias)`` of one layer on the device.

        ``x`` with no rows (M = 0) and parameters the device cannot hold (``bias`` outside
        int32, ``mult`` outside 0..65535, ``shift`` outside 0..47) are a ``ValueError`` naming
        the problem, raised before any of the layer reaches the device."""
        if self.info is None:
            await self.open()
        mark = self.alloc.top
        try:
            return await self.run_program(self.program(x, packed, params), max_cycles)
        finally:
            self.alloc.top = mark


def run(coro):
    """Run a driver coroutine on an untimed backend (the functional model)."""
    return asyncio.run(coro)
