"""The driver against a device left in an odd state by an earlier user, and layer parameters
the device cannot hold (issue 20, items 5-8)."""

import asyncio

import pytest

from s4accel.hw.cmd.descriptors import DESC_BYTES, Opcode
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import regs, scenarios
from s4accel.sw.driver import Driver
from s4accel.sw.program import descriptor


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
        dev = Driver(backend)
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
