"""VOP descriptors (issue 22) on the functional model: every operation against the golden
functions called directly, the checks, the program builder's refusals, and the sequencer's
cycle formula against the SPU in amaranth.sim."""

import numpy as np
import pytest

from s4accel.base import vector as V
from s4accel.base.config import load_config
from s4accel.hw.cmd.descriptors import Opcode, VopOp
from s4accel.hw.vector.vop import vop_cycles, vop_reference, vop_spans
from s4accel.sim.model.device_model import ModelBackend
from s4accel.sw import scenarios
from s4accel.sw.driver import DeviceError, Driver, run
from s4accel.sw.program import Allocator, DeviceInfo, descriptor
from s4accel.sw.vop import vop_decode, vop_program


@pytest.mark.parametrize("config", ["tiny", "fpga"])
def test_every_operation_matches_the_golden_functions(config, seed):
    """The extremes of :func:`scenarios.vop_cases` (all-equal rows, one large value,
    saturating sums, masked keys, 16-bit results, in place) on the model, bit-exact."""
    async def main():
        dev, ref = Driver(ModelBackend(config)), Driver(ModelBackend(config))
        await dev.open()
        await ref.open()
        rng = np.random.default_rng(seed)
        cases = scenarios.vop_cases(rng, dev.info)
        assert {c[1] for c in cases} == set(VopOp) - {VopOp.TO_WGT}
        for case in cases:
            await scenarios.check_vop_against_model(dev, ref, *case)
    run(main())


def test_reference_is_row_by_row_in_place():
    """In place, a row's results overwrite its own words only; other rows and words keep
    theirs (the definition the RTL's sequencer follows)."""
    rng = np.random.default_rng(1)
    act = rng.integers(-128, 128, (16, 2, 32), dtype=np.int8)
    before = act.copy()
    m, s = V.softmax_params(0.1)
    vop_reference(act, op=VopOp.SOFTMAX, n=40, m_tiles=2, a_addr=3, out_addr=3, a_stride=4,
                  out_stride=4, mult=m, shift=s)
    for i in range(2):
        for r in range(2):
            x = before[3 + 4 * i:5 + 4 * i, r].reshape(-1)[:40]
            want = np.zeros(64, np.uint8)
            want[:40] = V.softmax(x, m, s)
            assert np.array_equal(act[3 + 4 * i:5 + 4 * i, r].reshape(-1).view(np.uint8), want)
    untouched = [w for w in range(16) if w not in (3, 4, 7, 8)]
    assert np.array_equal(act[untouched], before[untouched])


def test_spans():
    assert vop_spans(VopOp.ADD, 40, 3, a_addr=0, b_addr=10, out_addr=20, a_stride=0,
                     b_stride=5, out_stride=0, wide=1) == {"a": (0, 6), "b": (10, 22),
                                                           "out": (20, 32)}
    assert vop_spans(VopOp.ROW_MAX, 100, 2, a_addr=0, b_addr=0, out_addr=8, a_stride=0,
                     b_stride=0, out_stride=0, wide=1) == {"a": (0, 8), "out": (8, 10)}
    # LAYERNORM of 16-bit input: A's words are 2B a row; B's address is PAR's (32/cols words
    # a vector of channels)
    assert vop_spans(VopOp.LAYERNORM, 40, 3, a_addr=0, b_addr=5, out_addr=20, a_stride=0,
                     b_stride=0, out_stride=0, wide=1, cols=8) == {
                         "a": (0, 12), "out": (20, 26), "par": (5, 13)}
    # a per-channel ADD: its parameters from PAR word mult on (only with chan)
    assert vop_spans(VopOp.ADD, 40, 3, a_addr=0, b_addr=10, out_addr=20, a_stride=0,
                     b_stride=0, out_stride=0, wide=0, cols=4, chan=1, mult=7) == {
                         "a": (0, 6), "b": (10, 16), "out": (20, 26), "par": (7, 23)}
    assert "par" not in vop_spans(VopOp.ADD, 40, 3, a_addr=0, b_addr=10, out_addr=20,
                                  a_stride=0, b_stride=0, out_stride=0, wide=0, cols=4,
                                  mult=7)


def test_program_refusals():
    info = DeviceInfo.from_config(load_config("tiny"))
    alloc = Allocator(0, 1 << 20)
    a = np.zeros((2, 8), np.int8)
    with pytest.raises(ValueError, match="does not run it"):
        vop_program(info, a, op=VopOp.TO_WGT, alloc=alloc)
    with pytest.raises(ValueError, match="needs its parameters"):
        vop_program(info, a, op=VopOp.LAYERNORM, alloc=alloc)
    ln = V.layernorm_params(0.05, np.ones(8), np.zeros(8), 0.03, bias_bits=40)
    with pytest.raises(ValueError, match="takes its parameters from ln"):
        vop_program(info, a, op=VopOp.LAYERNORM, alloc=alloc, ln=ln, mult=3)
    with pytest.raises(ValueError, match="bias must be in"):
        vop_program(info, a, op=VopOp.LAYERNORM, alloc=alloc,
                    ln=V.LayerNormParams(0, 0, ln.mult, ln.bias + (1 << 40), ln.shift))
    with pytest.raises(ValueError, match="eps must be in"):
        vop_program(info, a, op=VopOp.LAYERNORM, alloc=alloc,
                    ln=V.LayerNormParams(0, 1 << 40, ln.mult, ln.bias, ln.shift))
    with pytest.raises(ValueError, match="no vector unit"):
        vop_program(DeviceInfo.from_config(load_config("tiny").replace(vec_max_row=0)), a,
                    op=VopOp.GELU, alloc=alloc)
    with pytest.raises(ValueError, match="one shape"):
        vop_program(info, a, np.zeros((2, 9), np.int8), op=VopOp.ADD, alloc=alloc)
    with pytest.raises(ValueError, match="longer than the vector unit"):
        vop_program(info, np.zeros((2, 129), np.int8), op=VopOp.SOFTMAX, alloc=alloc)
    with pytest.raises(ValueError, match="cannot run in place"):
        vop_program(info, a, a, op=VopOp.ADD, alloc=alloc, in_place=True, wide=1)


def test_no_vector_unit_is_an_unknown_opcode():
    async def main():
        dev = Driver(ModelBackend(load_config("tiny").replace(vec_max_row=0)))
        info = await dev.open()
        assert info.vec_max_row == 0
        with pytest.raises(DeviceError, match="UNKNOWN_OPCODE"):
            await dev.submit([descriptor(Opcode.VOP, vop={"op": 0, "n": 1, "m_tiles": 1,
                                                          "out_addr": 1}),
                              descriptor(Opcode.COMPLETE)])
            await dev.wait(10_000)
    run(main())


def test_decode_formats():
    y = np.zeros((2, 64), np.int8)
    y[0, :4] = np.frombuffer(np.int32(-5).tobytes(), np.int8)
    assert vop_decode(y, VopOp.ROW_SUM, 40).tolist() == [-5, 0]
    y[1, :4] = np.frombuffer(np.array([300, -2], "<i2").tobytes(), np.int8)
    assert vop_decode(y, VopOp.ADD, 2, wide=1)[1].tolist() == [300, -2]
    assert vop_decode(y, VopOp.SOFTMAX, 2, wide=1)[1].tolist() == [300, 65534]


def test_cycles_formula_against_the_spu():
    """``vop_cycles`` (the performance model's) equals the SPU's cycles from taking a VOP to
    its done pulse, in amaranth.sim, for every operation, partial banks, 16-bit results and
    two row tiles."""
    from amaranth.sim import Simulator
    from spu_sim import run_vop

    from s4accel.hw.spu.spu import Spu
    cfg = load_config("tiny")
    dut = Spu(cfg)
    cases = [(op, n, wide, mt, 0) for op in (VopOp.ADD, VopOp.GELU, VopOp.ROW_MAX,
                                             VopOp.SOFTMAX, VopOp.LAYERNORM)
             for n, wide, mt in ((2, 0, 1), (33, 1, 2), (96, 0, 2))]
    cases += [(VopOp.SOFTMAX, n, 0, mt, 1) for n, mt in ((2, 1), (96, 2))]   # 7-bit
    got = []

    async def bench(ctx):
        for op, n, wide, mt, relu in cases:
            mult, shift = V.softmax_params(0.1) if op == VopOp.SOFTMAX else (100, 10)
            got.append(await run_vop(ctx, dut, {
                "op": op, "n": n, "m_tiles": mt, "a_addr": 0, "b_addr": 20, "out_addr": 40,
                "mult": mult, "shift": shift, "wide": wide, "u_mult": 1000, "u_shift": 10,
                "mult_b": 5, "relu": relu}, 2000))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = [vop_cycles(cfg.rows, op, n, mt, wide, relu, cols=cfg.cols)
            for op, n, wide, mt, relu in cases]
    assert got == want


@pytest.mark.parametrize("cols", [2, 4, 8, 16, 32])
def test_to_wgt_image_is_the_dense_weight_image(cols):
    """TO_WGT's definition equals the weight image of the packed dense matrix, both ways, and
    a GEMM on it is numpy's product."""
    from s4accel.base.sparse import pack
    from s4accel.hw.vector.vop import to_wgt_image, to_wgt_words
    from s4accel.sw import layout
    rng = np.random.default_rng(cols)
    x = rng.integers(-128, 128, (37, 45), dtype=np.int8)
    for transpose in (0, 1):
        w = x.T if transpose else x
        img = to_wgt_image(x, cols, transpose)
        assert img.tobytes() == layout.wgt_image(pack(w, 1), cols)
        # as TO_WGT of 37 tokens (one row a tile) of 45 columns
        assert len(img) == to_wgt_words(45, 37, 1, cols, transpose)
        # a GEMM on the image: Y[m, ch] = sum_k a[m, k] * W[ch, k]
        nt, nb = -(-w.shape[0] // cols), -(-w.shape[1] // 32)
        vals = img[:, :, 0].view(np.int8).reshape(nt, nb, 32, cols)
        wd = vals.transpose(0, 3, 1, 2).reshape(nt * cols, nb * 32)[:w.shape[0], :w.shape[1]]
        a = rng.integers(-128, 128, (5, w.shape[1]), dtype=np.int8).astype(np.int64)
        assert np.array_equal(a @ wd.T.astype(np.int64), a @ w.T.astype(np.int64))


def test_to_wgt_words_and_spans():
    from s4accel.hw.vector.vop import to_wgt_words
    # V (x^T): ceil(n / cols) channel tiles x ceil(T / 32) banks; K (x): ceil(T / cols) x
    # ceil(n / 32)
    assert to_wgt_words(40, 3, 8, 8, 1) == 5 * 1 * 32
    assert to_wgt_words(40, 3, 8, 8, 0) == 3 * 2 * 32
    assert to_wgt_words(1, 40, 2, 4, 1) == 1 * 3 * 32
    assert vop_spans(VopOp.TO_WGT, 40, 3, a_addr=4, b_addr=0, out_addr=100, a_stride=0,
                     b_stride=0, out_stride=0, wide=0, cols=8, rows=8) == {
                         "a": (4, 10), "wgt": (100, 292)}


@pytest.mark.parametrize("name", ["tiny", "fpga"])
def test_to_wgt_programs_on_the_model(name):
    """The functional model runs :func:`to_wgt_program` (a GEMM on the copy, a LOAD into WGT
    racing it) exactly as numpy multiplies."""
    cfg = load_config(name)

    async def main():
        dev = Driver(ModelBackend(cfg))
        await dev.open()
        rng = np.random.default_rng(3)
        for case in scenarios.to_wgt_cases(rng, dev.info):
            await scenarios.check_to_wgt_against_model(dev, dev, *case)
    run(main())


def test_to_wgt_program_refusals():
    from s4accel.sw.vop import to_wgt_program
    info = DeviceInfo.from_config(load_config("tiny"))
    alloc = Allocator(0, 1 << 20)
    x = np.zeros((4, 8), np.int8)
    with pytest.raises(ValueError, match="a must have 4 columns"):
        to_wgt_program(info, x, np.zeros((2, 8), np.int8), transpose=1, alloc=alloc)
    with pytest.raises(ValueError, match="do not fit"):
        to_wgt_program(info, np.zeros((4, 4000), np.int8), np.zeros((2, 4000), np.int8),
                       transpose=0, alloc=alloc)
