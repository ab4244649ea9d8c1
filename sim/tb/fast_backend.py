"""The driver's fast RTL backend: the simulation top ``s4_sim`` (accelerator + HDL DRAM model)
under cocotb, with Python only at job boundaries.

Compared with :class:`~s4accel.sim.tb.rtl_backend.RtlBackend` (cocotbext-axi's ``AxiRam`` and a
per-cycle monitor and counter in Python), nothing here runs per cycle or per bus beat:

- DRAM is :class:`~s4accel.sim.hdl.dram.SimDram` inside the design, with the same timing as the
  cocotbext RAM. ``mem_write`` only records the bytes; they reach the memory through the
  backdoor (one ``$readmemh`` of every pending write) before the next register access, which
  is when the device could first see them. ``mem_read`` is one ``$writememh`` of the words
  asked for.
- Registers still go through the AXI4-Lite port (cocotbext-axi's ``AxiLiteMaster``, idle
  between accesses).
- The clock toggles in cocotb's C++ layer (``impl="gpi"``), ``wait_irq`` is one edge trigger
  on ``irq`` or a timer, and ``cycle`` is simulation time over the clock period.
- The DRAM-window monitor is in the design (sticky ``stray``); it is checked whenever the
  interrupt line is seen high (the end of every job), and :attr:`violations` lists it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from cocotb.triggers import First, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from ...sw import regs
from ...sw.driver import DRAM_BASE, DRAM_SIZE, Backend, CsrBusError
from ..hdl.dram import N_FAULTS, N_WINDOWS
from .base import CLOCK_NS, reset, start_clock

__all__ = ["FastBackend", "DramViolation"]

_RESP = {"slverr": 2, "decerr": 3}


class DramViolation(AssertionError):
    """The design's DRAM monitor saw a burst outside the programmed windows."""


class FastBackend(Backend):
    def __init__(self, dut, *, dram_base=DRAM_BASE, dram_size=DRAM_SIZE):
        self.dut = dut
        self.dram_base, self.dram_size = dram_base, dram_size
        self.csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr_"), dut.clk, dut.rst)
        for side in (self.csr.write_if, self.csr.read_if):
            side.log.setLevel(logging.WARNING)
        self.words = 1 << len(dut.bd_lo)
        self.nb = dram_size // self.words
        self._pending = []          # (addr, bytes) written since the last flush, in order
        self._seq = 0
        self._faults = []           # (lo, hi, resp), newest first
        self._win = {(i, k): 0 for i in range(N_WINDOWS) for k in ("BASE", "LIMIT")}
        self._win_ctrl = 0
        self._dir = Path(os.getcwd())
        self.backdoor_ops = 0

    async def start(self):
        d = self.dut

        def init():
            d.bd_req.value = 0
            d.bd_dump.value = 0
            d.bd_lo.value = 0
            d.bd_hi.value = 0
            d.win_rd.value = 0
            d.win_wr.value = 0
            for i in range(N_WINDOWS):
                getattr(d, f"win{i}_base").value = 0
                getattr(d, f"win{i}_limit").value = 0
            self._write_faults()
        # the C++ clock starts low: its first rising edge comes after reset is asserted, so
        # cocotbext's channel tasks see reset, not X, on it (Icarus)
        start_clock(d, impl="gpi", start_high=False)
        await reset(d, 4, during=init)

    # -- Backend: registers ---------------------------------------------------------------------
    async def read32(self, offset):
        await self._flush()
        r = await self.csr.read(offset, 4)
        if int(r.resp) != 0:
            raise CsrBusError(offset, False, r.resp.name)
        return int.from_bytes(r.data, "little")

    async def write32(self, offset, value):
        await self._flush()
        r = await self.csr.write(offset, int(value & 0xFFFFFFFF).to_bytes(4, "little"))
        if int(r.resp) != 0:
            raise CsrBusError(offset, True, r.resp.name)
        self._shadow(offset & ~3, value)     # the CSR block ignores address bits 1:0

    def _shadow(self, offset, value):
        """Give the design's DRAM monitor the windows the driver programs."""
        names = {getattr(regs, f"WIN{i}_{k}"): (i, k) for i in range(4) for k in ("BASE", "LIMIT")}
        if offset in names:
            self._win[names[offset]] = value & 0xFFFFFFFF
        elif offset != regs.WIN_CTRL:
            return
        else:
            self._win_ctrl = value
        reg = regs.REGISTERS["WIN_CTRL"]
        en, rd, wr = (reg.field(n).get(self._win_ctrl) for n in ("en", "rd", "wr"))
        d = self.dut
        for i in range(N_WINDOWS):
            getattr(d, f"win{i}_base").value = self._win[(i, "BASE")]
            getattr(d, f"win{i}_limit").value = self._win[(i, "LIMIT")]
        d.win_rd.value = en & rd
        d.win_wr.value = en & wr

    # -- Backend: memory ------------------------------------------------------------------------
    def _check_range(self, addr, n):
        if not (self.dram_base <= addr and addr + n <= self.dram_base + self.dram_size):
            raise ValueError(f"[{addr:#x}, {addr + n:#x}) is outside the simulated DRAM "
                             f"[{self.dram_base:#x}, {self.dram_base + self.dram_size:#x})")

    async def mem_write(self, addr, data):
        data = bytes(data)
        self._check_range(addr, len(data))
        if data:
            self._pending.append((addr, data))

    async def mem_read(self, addr, n):
        self._check_range(addr, n)
        if n == 0:
            return b""
        await self._flush()
        w0 = (addr - self.dram_base) // self.nb
        w1 = -(-(addr + n - self.dram_base) // self.nb)
        words = await self._dump(w0, w1)
        off = addr - self.dram_base - w0 * self.nb
        return words[off:off + n]

    async def _backdoor(self, dump, lo=0, hi=0):
        d = self.dut
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        d.bd_dump.value = int(dump)
        d.bd_lo.value = lo
        d.bd_hi.value = hi
        d.bd_req.value = self._seq
        # the memory acts on the change of bd_req, in this time step; a picosecond later it
        # is done, and no clock edge has passed
        await Timer(1, "ps")
        self.backdoor_ops += 1
        if d.bd_ack.value.to_unsigned() != self._seq:
            raise RuntimeError("the DRAM model's backdoor did not answer (is this the s4_sim "
                               "design?)")

    async def _dump(self, w0, w1) -> bytes:
        """Words ``w0 .. w1 - 1`` of the memory as bytes."""
        path = self._dir / "s4_dram_dump.hex"
        if path.exists():
            path.unlink()
        await self._backdoor(True, w0, w1 - 1)
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        hexes = "".join(ln for ln in lines if ln and not ln.startswith(("//", "@")))
        raw = np.frombuffer(bytes.fromhex(hexes), np.uint8).reshape(-1, self.nb)
        if len(raw) != w1 - w0:
            raise RuntimeError(f"the DRAM dump holds {len(raw)} words, not {w1 - w0}")
        return raw[:, ::-1].tobytes()

    async def _flush(self):
        """Load every pending ``mem_write`` into the memory (one ``$readmemh``)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        nb, base = self.nb, self.dram_base
        # words only partly written keep their other bytes: read them first, then apply every
        # pending write that touches them, in order
        edges = {}
        for addr, data in pending:
            lo, hi = addr - base, addr - base + len(data)
            for w in {lo // nb, (hi - 1) // nb}:
                if (w * nb < lo or (w + 1) * nb > hi) and w not in edges:
                    edges[w] = bytearray(await self._dump(w, w + 1))
        chunks = []
        for addr, data in pending:
            lo, hi = addr - base, addr - base + len(data)
            for w, word in edges.items():
                a, b = max(lo, w * nb), min(hi, (w + 1) * nb)
                if a < b:
                    word[a - w * nb:b - w * nb] = data[a - lo:b - lo]
            w0, w1 = -(-lo // nb), hi // nb            # the whole words of this write
            if w0 < w1:
                chunks.append(_hex_block(w0, data[w0 * nb - lo:w1 * nb - lo], nb))
        for w, word in edges.items():
            chunks.append(_hex_block(w, bytes(word), nb))
        (self._dir / "s4_dram_load.hex").write_text("".join(chunks))
        await self._backdoor(False)

    # -- Backend: interrupt and time ------------------------------------------------------------
    async def wait_irq(self, max_cycles):
        await self._flush()
        d = self.dut
        if d.irq.value != 1 and max_cycles > 0:
            await First(RisingEdge(d.irq), Timer(max_cycles * CLOCK_NS, "ns"))
        high = d.irq.value == 1
        if high:
            self.check_monitor()
        return high

    async def cycle(self):
        """Rising clock edges so far, from simulation time (edges at ``(k + 1/2) * period``)."""
        return int(get_sim_time("ps")) // (CLOCK_NS * 1000)

    # -- monitor and faults ---------------------------------------------------------------------
    @property
    def violations(self) -> list[str]:
        d = self.dut
        if d.stray.value != 1:
            return []
        kind = "write" if d.stray_write.value == 1 else "read"
        return [f"{kind} burst at {d.stray_addr.value.to_unsigned():#x} outside the windows"]

    def check_monitor(self):
        """Raise :class:`DramViolation` if the design's monitor saw a stray burst."""
        v = self.violations
        if v:
            raise DramViolation("DRAM access outside the programmed windows: " + v[0])

    @property
    def bursts(self) -> dict:
        return {"read": self.dut.rd_bursts.value.to_unsigned(),
                "write": self.dut.wr_bursts.value.to_unsigned()}

    def inject_bus_error(self, lo, hi, kind):
        resp = _RESP.get(kind)
        if resp is None:
            raise ValueError(f"bus error kind must be 'slverr' or 'decerr', not {kind!r}")
        if len(self._faults) >= N_FAULTS:
            raise ValueError(f"the DRAM model has {N_FAULTS} fault ranges; clear them first")
        self._faults.insert(0, (lo, hi, resp))
        self._write_faults()

    def clear_bus_errors(self):
        """Remove every injected fault range (between jobs)."""
        self._faults = []
        self._write_faults()

    def _write_faults(self):
        d = self.dut
        for i in range(N_FAULTS):
            lo, hi, resp = self._faults[i] if i < len(self._faults) else (0, 0, 0)
            getattr(d, f"fault{i}_lo").value = lo & 0xFFFFFFFF
            getattr(d, f"fault{i}_hi").value = min(hi, 0xFFFFFFFF)
            getattr(d, f"fault{i}_resp").value = resp


def _hex_block(w0: int, data: bytes, nb: int) -> str:
    """``$readmemh`` text: ``@w0`` then one word per line (most significant byte first)."""
    arr = np.frombuffer(data, np.uint8).reshape(-1, nb)[:, ::-1]
    h = arr.tobytes().hex()
    step = 2 * nb
    return f"@{w0:x}\n" + "\n".join(h[i:i + step] for i in range(0, len(h), step)) + "\n"


async def started(dut, **kw) -> FastBackend:
    """A started :class:`FastBackend` on ``dut`` (the ``s4_sim`` design)."""
    be = FastBackend(dut, **kw)
    await be.start()
    return be


async def device_and_model(dut, name):
    """The configuration, the seeded generator of test ``name``, the started design, a driver
    on it and one on the functional model of the same configuration (both opened)."""
    from ...sw.driver import Driver
    from ..model.device_model import ModelBackend
    from .base import config_from_env, rng_from_env
    cfg = config_from_env()
    rng = rng_from_env(dut, name)
    be = await started(dut)
    dev = Driver(be)
    await dev.open()
    model = Driver(ModelBackend(cfg))
    await model.open()
    return cfg, rng, be, dev, model


__all__ += ["started", "device_and_model"]
