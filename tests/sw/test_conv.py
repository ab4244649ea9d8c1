"""Convolution without im2col (``GemmBody.conv``, ``sw/conv.py``) on the functional model: the
window walk against the golden model's im2col, single convolutions and networks of them
bit-exact, the compiled CNN against its integer definition, and the errors a user gets."""

import numpy as np
import pytest

from s4accel.base import golden
from s4accel.base.config import load_config
from s4accel.hw.spu.spu import conv_act_words
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import scenarios
from s4accel.sw.conv import (conv_program, conv_reference, conv_weights, network_program,
                             nhwc_rows, rows_nhwc)
from s4accel.sw.driver import Driver, run
from s4accel.sw.program import Allocator, DeviceInfo, LayerParams


def test_window_walk_is_im2col(rng):
    """Gathering the words conv_act_words names from an NHWC band (one image per row, a word
    a pixel and channel bank) gives golden.im2col_nhwc's rows, bands and padding included."""
    for _ in range(60):
        k = int(rng.integers(1, 8))
        st = int(rng.integers(1, 3))
        pad = int(rng.integers(0, min(k, 8)))
        h, w = int(rng.integers(max(1, k - 2 * pad), k + 5)), int(rng.integers(max(1, k - 2 * pad), k + 5))
        cb = int(rng.integers(1, 3))
        x = rng.integers(-128, 128, (1, h, w, 32 * cb), dtype=np.int8)
        ho, wo = golden.conv_out_size(h, k, st, pad), golden.conv_out_size(w, k, st, pad)
        want = golden.im2col_nhwc(x, k, k, st, pad)                  # [ho * wo, k*k*32*cb]
        oy0 = int(rng.integers(0, ho))                               # a band of output rows
        rows = int(rng.integers(1, ho - oy0 + 1))
        iy0 = max(0, oy0 * st - pad)
        iy1 = min(h, (oy0 + rows - 1) * st - pad + k)
        base, zero = 5, 3
        mem = np.full((base + (iy1 - iy0) * w * cb + 2, 32), 99, np.int64)
        mem[zero] = 0
        mem[base:base + (iy1 - iy0) * w * cb] = x[0, iy0:iy1].reshape(-1, 32)
        words = conv_act_words(rows * wo, k * k * cb, act_addr=base, ksize=k, stride2=st - 1,
                               pad=pad, top=iy0 - (oy0 * st - pad), cbanks=cb,
                               row_pitch=w * cb, in_h=iy1 - iy0, out_w=wo, pad_addr=zero)
        got = mem[words].reshape(rows * wo, -1)
        assert np.array_equal(got, want[oy0 * wo:(oy0 + rows) * wo]), (k, st, pad, h, w, oy0)


@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_convolutions_on_the_model(config, rng):
    """Every kernel size 1, 3, 5, 7 at stride 1 and 2 with padding on all borders, in bands:
    the functional model equals the golden model (im2col + GEMM)."""
    async def go():
        dev = Driver(ModelBackend(config))
        info = await dev.open()
        for x, packed, params, geo, band in scenarios.conv_cases(rng, info):
            res = await dev.run_conv(x, packed, params, max_band=band, **geo)
            assert np.array_equal(res.y, conv_reference(x, packed, params, **geo)), geo
    run(go())


@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_conv_networks_on_the_model(config, rng):
    async def go():
        dev = Driver(ModelBackend(config))
        info = await dev.open()
        done = 0
        for _ in range(60):
            x, ops, want = scenarios.random_conv_network(rng, info)
            try:
                prog = network_program(info, x, ops, dev.alloc)
            except ValueError:
                continue
            res = await dev.run_program(prog)
            assert np.array_equal(res.y, want), [(o.name, o.ksize, o.stride) for o in ops]
            done += 1
            if done == 4:
                break
        assert done == 4
    run(go())


def test_cnn_program_is_the_integer_network(rng):
    """The CNN compiled as one device program (stem windows from the host, residual additions
    and pooling as GEMMs) gives QuantCnn.forward_int's integers on the functional model."""
    from s4accel.sim.workloads import cnn
    p = cnn.init_params(32, seed=1)
    x = rng.random((8, 16, 16, 1)).astype(np.float32)
    q = cnn.quantize(p, x, 4)
    xq = q.quantize_input(x)

    async def go():
        dev = Driver(ModelBackend("fpga"))
        await dev.open()
        res = await dev.run_program(cnn.device_program(q, xq, dev.info, dev.alloc))
        return cnn.device_logits(res.y, 8, dev.info.rows)
    assert np.array_equal(run(go()), q.forward_int(xq))


def test_nhwc_rows_round_trip(rng):
    x = rng.integers(-128, 128, (5, 3, 4, 40), dtype=np.int8)
    r = nhwc_rows(x, 4)
    assert r.shape == (2 * 12 * 4, 64) and not r[:, 40:].any()
    assert np.array_equal(r[(0 * 12 + 5) * 4 + 3, :40], x[3, 1, 1])
    assert np.array_equal(rows_nhwc(r, 5, 3, 4, 4)[..., :40], x)


@pytest.mark.parametrize("kw,match", [
    ({"ksize": 0}, "kernel size"), ({"ksize": 16}, "kernel size"), ({"stride": 3}, "stride"),
    ({"pad": 3}, "padding"), ({"ksize": 5, "pad": 0}, "does not fit")])
def test_bad_geometry_is_a_clear_error(kw, match):
    info = DeviceInfo.from_config(load_config("tiny"))
    x = np.zeros((2, 4, 4, 3), np.int8)
    geo = {"ksize": 3, "stride": 1, "pad": 1, **kw}
    k = geo["ksize"] if 1 <= geo["ksize"] <= 15 else 3
    from s4accel.base.sparse import pack
    packed = pack(conv_weights(np.zeros((4, k, k, 3), np.int8)), 1)
    with pytest.raises(ValueError, match=match):
        conv_program(info, x, packed, LayerParams("raw"), Allocator(0, 1 << 30), **geo)


def test_weights_of_the_wrong_k_are_refused():
    info = DeviceInfo.from_config(load_config("tiny"))
    from s4accel.base.sparse import pack
    packed = pack(np.zeros((4, 27), np.int8), 1)      # 3x3x3 without the channel padding
    with pytest.raises(ValueError, match="conv_weights"):
        conv_program(info, np.zeros((2, 4, 4, 3), np.int8), packed, LayerParams("raw"),
                     Allocator(0, 1 << 30), ksize=3, pad=1)


def test_programs_report_where_tensors_live(rng):
    """The compiler's report (LayerProgram.placement): a chain keeps its hidden layers in ACT;
    a conv network keeps its maps in device DRAM, the residual pairs sharing pixels."""
    from s4accel.sw.chain import chain_program
    info = DeviceInfo.from_config(load_config("fpga"))
    x, chain = scenarios.random_chain(rng, info, layers=3)
    where = chain_program(info, x, chain, Allocator(0, 1 << 40)).placement
    assert [p for _, p, _ in where] == ["DRAM", "ACT", "ACT", "DRAM"]
    assert where[1][2] == x.shape[0] * -(-chain[0][0].n // 32) * 32
    for _ in range(40):
        x, ops, _ = scenarios.random_conv_network(rng, info)
        try:
            prog = network_program(info, x, ops, Allocator(0, 1 << 40))
        except ValueError:
            continue
        names = [t for t, _, _ in prog.placement]
        assert names[0] == "x" and names[-1] == "head (output)"
        assert any("pixels shared with" in t for t in names)
        assert all(p == "DRAM" for _, p, _ in prog.placement)
        break
    else:
        raise AssertionError("no random network fits fpga")


# -- max pooling (GemmBody.pool) --------------------------------------------------------------

def test_pool_walk_is_the_golden_maxpool(rng):
    """The words pool_act_words names, maximized per window, give golden.maxpool_nhwc (with
    a -128 padding word), bands and every pass (channel bank) included."""
    from s4accel.hw.spu.spu import pool_act_words
    for _ in range(60):
        k = int(rng.integers(1, 6))
        st = int(rng.integers(1, 3))
        pad = int(rng.integers(0, k))
        h, w = int(rng.integers(k, k + 5)), int(rng.integers(k, k + 4))
        cb = int(rng.integers(1, 4))
        x = rng.integers(-128, 128, (1, h, w, 32 * cb), dtype=np.int8)
        ho, wo = golden.conv_out_size(h, k, st, pad), golden.conv_out_size(w, k, st, pad)
        want = golden.maxpool_nhwc(x, k, st, pad)[0]                  # [ho, wo, 32*cb]
        oy0 = int(rng.integers(0, ho))
        rows = int(rng.integers(1, ho - oy0 + 1))
        iy0 = max(0, oy0 * st - pad)
        iy1 = min(h, (oy0 + rows - 1) * st - pad + k)
        base, low = 5, 3
        mem = np.full((base + (iy1 - iy0) * w * cb + 2, 32), 99, np.int64)
        mem[low] = -128
        mem[base:base + (iy1 - iy0) * w * cb] = x[0, iy0:iy1].reshape(-1, 32)
        words = pool_act_words(rows * wo, cb, k * k, act_addr=base, ksize=k, stride2=st - 1,
                               pad=pad, top=iy0 - (oy0 * st - pad), cbanks=cb,
                               row_pitch=w * cb, in_h=iy1 - iy0, out_w=wo, pad_addr=low)
        got = mem[words].max(axis=2)                                  # [cb, rows*wo, 32]
        got = got.transpose(1, 0, 2).reshape(rows, wo, 32 * cb)
        assert np.array_equal(got, want[oy0:oy0 + rows]), (k, st, pad, h, w, oy0)


@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_pools_on_the_model(config, rng):
    """Windows of 2, 3 and 5 at stride 1 and 2 with padding, in bands: the functional model
    (pool GEMM + identity GEMM + STORE) equals golden.maxpool_nhwc."""
    async def go():
        dev = Driver(ModelBackend(config))
        info = await dev.open()
        for x, geo, band in scenarios.pool_cases(rng, info):
            res = await dev.run_pool(x, max_band=band, **geo)
            assert np.array_equal(res.y, golden.maxpool_nhwc(x, geo["ksize"], geo["stride"],
                                                             geo["pad"])), geo
            assert res.counters["perf_mac"] > 0        # the identity GEMMs; the pools none
    run(go())


def test_network_with_a_max_pool(rng):
    """conv 3x3 -> max pool 3x3/2 pad 1 (ResNet's stem pattern) -> conv 1x1 as one program
    on the model equals the golden model layer by layer."""
    from s4accel.base.sparse import pack, prune
    from s4accel.sw.conv import ConvOp, PoolOp
    info = DeviceInfo.from_config(load_config("fpga"))
    x = rng.integers(-128, 128, (9, 7, 6, 3), dtype=np.int8)

    def conv(name, src, xin, cin, cout, k, pad, mode):
        wk = conv_weights(rng.integers(-128, 128, (cout, k, k, cin), dtype=np.int8))
        packed = pack(prune(wk, 4), 4)
        if mode == "raw":
            params = LayerParams("raw", bias=rng.integers(-1000, 1000, cout))
        else:
            params = scenarios.int8_params(rng, scenarios._conv_cols(xin, k, 1, pad), packed,
                                           lut=False)
        return ConvOp(name, src, packed, params, k, 1, pad), conv_reference(
            xin, packed, params, ksize=k, stride=1, pad=pad)
    xf = np.zeros((16, 7, 6, 3), np.int8)
    xf[:9] = x
    c1, y1 = conv("c1", "x", xf, 3, 40, 3, 1, "int8")
    p1 = golden.maxpool_nhwc(y1, 3, 2, 1)
    c2, y2 = conv("c2", "p1", p1, 40, 16, 1, 0, "raw")
    ops = [c1, PoolOp("p1", "c1", 3, 2, 1), c2]

    async def go():
        dev = Driver(ModelBackend("fpga"))
        await dev.open()
        res = await dev.run_program(network_program(dev.info, x, ops, dev.alloc))
        return res.y
    got = run(go())
    want = nhwc_rows(y2, info.rows)[:, :16]
    assert np.array_equal(got, want)


def test_pool_reads_no_weights(rng):
    """A pool GEMM's weight and parameter fields are not checked (it reads neither): weight
    and parameter addresses past the scratchpads still pool; a pool with relu is BAD_FIELD."""
    from s4accel.hw.cmd.descriptors import ErrorCode, Opcode
    from s4accel.sw.driver import DeviceError
    from s4accel.sw.program import descriptor

    async def go():
        dev = Driver(ModelBackend("tiny"))
        info = await dev.open()
        g = {**scenarios._conv_gemm(), "pool": 1, "mode": 1, "out_act": 1, "out_addr": 40,
             "wgt_addr": 0xFFFF, "par_addr": 0xFFFF}
        await dev.submit([descriptor(Opcode.GEMM, gemm=g), descriptor(Opcode.COMPLETE)])
        await dev.wait(100_000)
        with pytest.raises(DeviceError) as e:
            await dev.submit([descriptor(Opcode.GEMM, gemm={**g, "relu": 1}),
                              descriptor(Opcode.COMPLETE)])
            await dev.wait(100_000)
        assert e.value.code == ErrorCode.BAD_FIELD
        return info
    run(go())
