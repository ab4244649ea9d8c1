"""The driver on the numpy functional model: layers bit-exact, every error code."""

import asyncio

import pytest

from s4accel.hw.cmd.descriptors import ErrorCode
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import scenarios
from s4accel.sw.driver import Driver


@pytest.mark.parametrize("config", ["tiny", "fpga"])
@pytest.mark.parametrize("s", [1, 2, 4, 8, 16, 32])
@pytest.mark.parametrize("mode", ["raw", "int8"])
def test_layers(config, s, mode, rng):
    async def main():
        dev = Driver(ModelBackend(config))
        await dev.open()
        for _ in range(3):
            await scenarios.check_layer(dev, *scenarios.random_layer(rng, dev.info, s, mode),
                                        f"{config} s={s} {mode}")
    asyncio.run(main())


def test_large_layer_is_chunked(rng):
    """K and N large enough that rows are chunked and channel groups double-buffered."""
    async def main():
        dev = Driver(ModelBackend("tiny"))
        await dev.open()
        x, packed, params = scenarios.random_layer(rng, dev.info, 8, "raw", m=70, n=40, k=900)
        res = await scenarios.check_layer(dev, x, packed, params, "large")
        assert res.descriptors > 10
        x, packed, params = scenarios.random_layer(rng, dev.info, 1, "raw", m=2, n=4, k=900)
        with pytest.raises(ValueError, match="one channel tile needs 928 weight words"):
            await dev.run_layer(x, packed, params)
    asyncio.run(main())


@pytest.mark.parametrize("name", ["tiny", "fpga", "tiny_v2"])
def test_discovery_matches_config(name):
    """What the driver reads from the capability registers is the configuration (``tiny_v2``:
    two vector units, ``CAP_VEC.units_log2``)."""
    from rtl_configs import named_config

    from s4accel.sw.program import DeviceInfo

    cfg = named_config(name)

    async def main():
        dev = Driver(ModelBackend(cfg))
        info = await dev.open()
        assert info == DeviceInfo.from_config(cfg)
        assert info.vec_units == cfg.vec_units
        assert info.sparsities == (1, 2, 4, 8, 16, 32)
    asyncio.run(main())


def test_every_error_code(rng):
    async def main():
        dev = Driver(ModelBackend("tiny"))
        await dev.open()
        good = scenarios.random_layer(rng, dev.info, 4, "int8")
        cases = scenarios.error_programs(dev)
        # BAD_RING needs ring registers the driver owns: scenarios.fault_spec_cases has it;
        # DECODE_ERROR a device with a JPEG decoder: tests/model/test_codec_model.py
        assert {c[1] for c in cases} == set(ErrorCode) - {ErrorCode.NONE, ErrorCode.BAD_RING,
                                                          ErrorCode.DECODE_ERROR}
        for name, code, descs, index in cases:
            if name == "watchdog":
                continue  # the untimed model cannot wait; see the RTL error tests
            await scenarios.run_error_case(dev, name, code, descs, index, good_layer=good)
    asyncio.run(main())
