"""The on-chip L2 (``Config.l2_kib``, ``hw/bus/l2.py``) on the functional model: transfers to
and from it, its bounds, the compiler's placement (conv networks, chains split across SPUs by
output channel that gather through it) and the first-fit pool that frees a tensor after its
last reader. The RTL runs the same programs in ``sim/tb/top.py`` (``l2_gather_and_networks``)
and ``sim/tb/fast.py`` (``conv_networks_on_chip`` on a configuration with an L2)."""

import numpy as np
import pytest

from s4accel.base.config import L2_BASE, ConfigError, load_config
from s4accel.hw.cmd.descriptors import ErrorCode, Opcode
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import scenarios
from s4accel.sw.chain import gather_chain_program
from s4accel.sw.conv import network_program
from s4accel.sw.driver import DeviceError, Driver, run
from s4accel.sw.program import RegionPool, descriptor

L2_X2 = load_config("tiny").replace(spus=2, l2_kib=16, name="tiny_x2")


def test_region_pool_first_fit_free_and_merge():
    p = RegionPool(1000, 640, align=64)
    a, b, c = p.alloc(100), p.alloc(64), p.alloc(200)
    assert (a, b, c) == (1000, 1128, 1192)
    assert p.alloc(300) is None                       # 640 - 448 = 192 left
    p.free(b)
    assert p.alloc(64) == 1128                        # first fit reuses the hole
    p.free(a)
    p.free(1128)
    assert p.runs[0] == (1000, 1192)                  # neighbours merged
    assert p.alloc(192) == 1000
    assert RegionPool(0, 0).alloc(1) is None


def test_l2_size_must_be_a_power_of_two_of_at_least_4_kib():
    for bad in (2, 3, 12, -4):
        with pytest.raises(ConfigError, match="l2_kib"):
            load_config("tiny").replace(l2_kib=bad)


def test_transfers_through_the_l2_and_its_end():
    """A STORE into the L2 and a LOAD back (into ACT, through a GEMM to DRAM) round-trip;
    a LOAD running past the L2's end is BUS_DECERR; the host cannot write the L2."""
    async def go():
        dev = Driver(ModelBackend(L2_X2))
        info = await dev.open()
        assert info.l2_kib == 16
        rng = np.random.default_rng(4)
        x, chain = scenarios.random_gather_chain(rng, info, layers=2)
        prog = gather_chain_program(info, x, chain, dev.alloc)
        res = await dev.run_program(prog)
        assert np.array_equal(res.y, scenarios.chain_expected(x, chain))
        bb = info.bus_bytes
        end = L2_BASE + 16 * 1024
        with pytest.raises(DeviceError) as e:        # the driver's window ends with the L2
            await dev.submit([descriptor(Opcode.LOAD, dma=scenarios._dma(end - bb, 2 * bb)),
                              descriptor(Opcode.COMPLETE)])
            await dev.wait(100_000)
        assert e.value.code == ErrorCode.OUT_OF_WINDOW
        await dev.open()
        await dev.set_window(1, L2_BASE, end + 4096)     # past it: nothing mapped there
        with pytest.raises(DeviceError) as e:
            await dev.submit([descriptor(Opcode.LOAD, dma=scenarios._dma(end - bb, 2 * bb)),
                              descriptor(Opcode.COMPLETE)])
            await dev.wait(100_000)
        assert e.value.code == ErrorCode.BUS_DECERR
        with pytest.raises(ValueError, match="outside the modelled DRAM"):
            await dev.backend.mem_write(L2_BASE, b"\0" * 8)
    run(go())


def test_gather_chains_keep_their_tensors_in_the_l2():
    """Chains of up to four layers split across two SPUs by output channel: bit-exact, every
    tensor between layers in the L2, buffers reused once read (two live at a time)."""
    async def go():
        dev = Driver(ModelBackend(L2_X2))
        info = await dev.open()
        rng = np.random.default_rng(9)
        for _ in range(4):
            x, chain = scenarios.random_gather_chain(rng, info, layers=int(rng.integers(2, 5)))
            prog = gather_chain_program(info, x, chain, dev.alloc)
            where = [p for _, p, _ in prog.placement]
            assert where[0] == "DRAM" and where[-1] == "DRAM"
            assert set(where[1:-1]) == {"L2"}, prog.placement
            res = await dev.run_program(prog)
            assert np.array_equal(res.y, scenarios.chain_expected(x, chain))
    run(go())


def test_conv_network_maps_in_the_l2_are_freed_after_their_last_reader(rng):
    """A network's maps go to the L2; with an L2 just large enough for two maps, a five-map
    network still keeps most of them there (buffers freed after their last reader)."""
    from s4accel.base.sparse import pack, prune
    from s4accel.sw.conv import ConvOp, conv_weights
    from s4accel.sw.program import LayerParams
    info_cfg = load_config("tiny").replace(l2_kib=4, name="tiny_l2")
    x = rng.integers(-128, 128, (2, 4, 4, 32), dtype=np.int8)
    ops, h = [], x
    from s4accel.sw.conv import conv_reference
    for i in range(5):
        wk = conv_weights(rng.integers(-128, 128, (32, 1, 1, 32), dtype=np.int8))
        packed = pack(prune(wk, 8), 8)
        params = scenarios.int8_params(rng, scenarios._conv_cols(h, 1, 1, 0), packed, lut=False)
        ops.append(ConvOp(f"c{i}", "x" if i == 0 else f"c{i - 1}", packed, params))
        h = conv_reference(h, packed, params, ksize=1, stride=1, pad=0)

    async def go():
        dev = Driver(ModelBackend(info_cfg))
        info = await dev.open()
        prog = network_program(info, x, ops, dev.alloc)
        res = await dev.run_program(prog)
        return prog, res
    prog, res = run(go())
    where = [p for _, p, _ in prog.placement]
    # each map is 2 images x 16 pixels x 64 bytes = 2 KiB: two fit the 4 KiB L2 at a time
    assert where == ["DRAM", "L2", "L2", "L2", "L2", "DRAM"], prog.placement
    assert np.array_equal(res.y[:, :32].reshape(1, 4, 4, 2, 32).transpose(0, 3, 1, 2, 4)
                          .reshape(2, 4, 4, 32), h)
