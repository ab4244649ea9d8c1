"""The fault specification's cases (docs/faults.md; ``sw/scenarios.fault_spec_cases``) on the
functional model: precise faults in program order, tokens, the ring, CSR bus errors. The RTL
runs the same cases against the model in tests/tb/test_fast_rtl.py."""

import asyncio

import numpy as np
import pytest

from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import scenarios
from s4accel.sw.driver import Driver

CASES = dict(scenarios.fault_spec_cases())


@pytest.mark.parametrize("config", ["tiny", "fpga"])
@pytest.mark.parametrize("name", list(CASES))
def test_fault_spec_case(config, name):
    async def run():
        dev = Driver(ModelBackend(config))
        await dev.open()
        obs = await CASES[name](dev)
        await dev.open()                       # the device is usable again
        await scenarios.check_layer(dev, *scenarios.random_layer(
            np.random.default_rng(1), dev.info, 4, "int8"), f"after {name}")
        return obs
    asyncio.run(run())


def test_token_bound_is_an_error():
    """A signal that would take a counter past TOKEN_LIMIT is refused with TOKEN (the counters
    never wrap). The counter is preset to one below the bound (65,528 LOADs take a minute on
    the model); the 300-signal case above runs on the RTL too."""
    from s4accel.hw.cmd.descriptors import ErrorCode, Opcode
    from s4accel.hw.cmd.processor import TOKEN_LIMIT
    from s4accel.sw import regs
    from s4accel.sw.program import descriptor

    async def run():
        backend = ModelBackend("tiny")
        dev = Driver(backend)
        await dev.open()
        src = dev.alloc.alloc(64)
        load = descriptor(Opcode.LOAD, sig_next=1, dma=scenarios._dma(src, 4))
        backend.model.tokens["ld2ex"] = TOKEN_LIMIT - 1
        first = await dev.submit([load, load, descriptor(Opcode.COMPLETE)])
        s = await backend.read32(regs.STATUS)
        assert ErrorCode(regs.REGISTERS["STATUS"].field("err_code").get(s)) == ErrorCode.TOKEN
        assert await backend.read32(regs.ERR_ADDR) == first + 32
        assert await backend.read32(regs.PERF_DESC) == 1
    asyncio.run(run())
