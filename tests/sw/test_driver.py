"""The driver against a device left in an odd state by an earlier user, layer parameters the
device cannot hold (issue 20, items 4-8), and how programs are handed over (issue 19)."""

import asyncio

import numpy as np
import pytest

from s4accel.hw.cmd.descriptors import DESC_BYTES, Opcode
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import regs, scenarios
from s4accel.sw.driver import DeviceTimeout, Driver
from s4accel.sw.program import LayerParams, descriptor


def _poison_ring(backend, slots):
    """An earlier user's stale descriptors: UNKNOWN_OPCODE wherever the device might look."""
    for i in range(slots):
        backend.model.mem_write(backend.dram_base + i * DESC_BYTES, descriptor(13))


@pytest.mark.parametrize("head", [64, 100, 200])
def test_open_resets_a_head_past_the_ring(rng, head):
    """An earlier user with a larger ring (or a soft reset with TAIL >= 64) left RING_HEAD
    beyond our 64 slots: open() must bring it back inside the ring, so that the first
    descriptor is not written into the weight images and no stale slot runs."""
    backend = ModelBackend("tiny")
    m = backend.model
    m.write32(regs.RING_SIZE, 256)
    m.write32(regs.RING_TAIL, head)
    m.write32(regs.CTRL, regs.REGISTERS["CTRL"].field("soft_reset").mask)
    assert m.read32(regs.RING_HEAD) == head
    _poison_ring(backend, 256)

    async def main():
        dev = Driver(backend, ring_slots=64)
        await dev.open()
        assert await backend.read32(regs.RING_HEAD) < dev.ring_slots
        for _ in range(2):
            await scenarios.check_layer(dev, *scenarios.random_layer(rng, dev.info, 4, "int8"),
                                        f"after head {head}")
    asyncio.run(main())


def test_open_clears_a_pending_error(rng):
    """An earlier user left a device error unacknowledged (and a stale done): open() clears
    both, so run_layer does not raise the earlier user's error."""
    backend = ModelBackend("tiny")

    async def earlier_user():
        dev = Driver(backend)
        await dev.open()
        await dev.submit([descriptor(Opcode.NOP), descriptor(13)])   # faults, never waited for
        await backend.write32(regs.IRQ, 0)
        irq = await backend.read32(regs.IRQ)
        assert regs.REGISTERS["IRQ"].field("error").get(irq)

    async def main():
        dev = Driver(backend)
        await dev.open()
        assert await backend.read32(regs.IRQ) == 0
        assert not regs.REGISTERS["STATUS"].field("error").get(await backend.read32(regs.STATUS))
        await scenarios.check_layer(dev, *scenarios.random_layer(rng, dev.info, 2, "raw"),
                                    "after a pending error")
    asyncio.run(earlier_user())
    asyncio.run(main())


def test_open_clears_a_stale_done():
    backend = ModelBackend("tiny")

    async def main():
        dev = Driver(backend)
        await dev.open()
        await dev.submit([descriptor(Opcode.COMPLETE)])                # done, never waited for
        assert regs.REGISTERS["IRQ"].field("done").get(await backend.read32(regs.IRQ))
        dev2 = Driver(backend)
        await dev2.open()
        assert await backend.read32(regs.IRQ) == 0
    asyncio.run(main())


def _layer(rng, dev, m=5):
    x, packed, _ = scenarios.random_layer(rng, dev.info, 4, "int8", m=m, n=6, k=40)
    return x, packed


@pytest.mark.parametrize("field, value, message", [
    ("mult", 65537, r"mult must be in 0\.\.65535.*65537"),
    ("mult", 1 << 16, r"mult must be in 0\.\.65535.*65536"),
    ("mult", -1, r"mult must be in 0\.\.65535.*-1"),
    ("shift", 64, r"shift must be in 0\.\.47.*64"),
    ("shift", 300, r"shift must be in 0\.\.47.*300"),
    ("shift", -1, r"shift must be in 0\.\.47.*-1"),
    ("bias", 1 << 31, r"bias must be in -2147483648\.\.2147483647.*2147483648"),
    ("bias", -(1 << 31) - 1, r"bias must be in -2147483648\.\.2147483647.*-2147483649"),
    ("bias", 0.5, r"bias must be integers, not float64"),
    ("bias", np.arange(5), r"bias must be one value or 6, not shape \(5,\)"),
])
def test_run_layer_refuses_parameters_the_device_cannot_hold(rng, field, value, message):
    """Issue 20 item 7: acc = 50, mult = 65537, shift = 16 used to give 0 (the multiplier
    truncated to 16 bits) instead of an error."""
    async def main():
        dev = Driver(ModelBackend("tiny"))
        await dev.open()
        x, packed = _layer(rng, dev)
        p = {"bias": np.zeros(6, np.int64), "mult": np.full(6, 1), "shift": np.full(6, 0)}
        p[field] = value
        with pytest.raises(ValueError, match=message):
            await dev.run_layer(x, packed, LayerParams("int8", **p))
        # the limits themselves are fine
        p = {"bias": np.full(6, -(1 << 31)), "mult": np.full(6, 65535), "shift": np.full(6, 47)}
        await scenarios.check_layer(dev, x, packed, LayerParams("int8", **p), "limits")
    asyncio.run(main())


def test_run_layer_refuses_zero_rows(rng):
    """Issue 20 item 8: M = 0 is a ValueError naming the problem (it was "range() arg 3 must
    not be zero"), raised before the device is touched."""
    async def main():
        dev = Driver(ModelBackend("tiny"))
        await dev.open()
        x, packed = _layer(rng, dev)
        before = await dev.counters()
        with pytest.raises(ValueError, match=r"x has no rows \(M = 0\)"):
            await dev.run_layer(x[:0], packed, LayerParams("raw"))
        assert await dev.counters() == before
    asyncio.run(main())


class _Counting(ModelBackend):
    """The functional model, counting register writes by offset."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.writes = {}

    async def write32(self, offset, value):
        self.writes[offset] = self.writes.get(offset, 0) + 1
        await super().write32(offset, value)


def test_a_program_is_handed_over_with_one_tail_write(rng):
    """The whole program goes into the ring first, then one RING_TAIL write: the device never
    waits for the host in the middle of a program (the benches' cycles assume it)."""
    backend = _Counting("tiny")

    async def main():
        dev = Driver(backend)
        await dev.open()
        x, packed, params = scenarios.random_layer(rng, dev.info, 1, "int8", m=40, n=40, k=200)
        backend.writes.clear()
        res = await dev.run_layer(x, packed, params)
        assert res.descriptors > 64          # longer than the old 64-slot ring
        assert backend.writes.get(regs.RING_TAIL) == 1, backend.writes
    asyncio.run(main())


def test_a_program_longer_than_the_ring_runs_in_pieces(rng):
    backend = _Counting("tiny")

    async def main():
        dev = Driver(backend, ring_slots=16)
        await dev.open()
        x, packed, params = scenarios.random_layer(rng, dev.info, 1, "int8", m=20, n=20, k=200)
        res = await scenarios.check_layer(dev, x, packed, params, "16-slot ring")
        assert res.descriptors > 3 * 16
        assert backend.writes.get(regs.RING_TAIL, 0) >= res.descriptors // 15
    asyncio.run(main())


def test_submit_to_a_disabled_device_does_not_hang():
    """Issue 20 item 4: a full ring that the device cannot drain (CTRL.enable = 0) ends in
    DeviceTimeout, not an endless poll."""
    backend = ModelBackend("tiny")

    async def main():
        dev = Driver(backend, ring_slots=8)
        await dev.open()
        await backend.write32(regs.CTRL, 0)
        with pytest.raises(DeviceTimeout, match="ring is full"):
            await dev.submit([descriptor(Opcode.NOP)] * 20, max_cycles=1000)
    asyncio.run(main())
