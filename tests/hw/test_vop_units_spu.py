"""VOPs in an SPU with several vector units (``Config.vec_units``; ``Spu._vector_sequencer``)
in amaranth.sim: every operation (8- and 16-bit results and inputs, masked softmax keys, two
row tiles, strides) leaves the ACT scratchpad as :func:`~s4accel.hw.vector.vop.vop_reference`
makes it, word for word, in the cycles :func:`~s4accel.hw.vector.vop.vop_cycles` gives for
that many units. (One unit: the RTL suites and tests/sw/test_vop.py; per-channel ADDs with
several units: test_vop_chan_spu.py.)"""

import numpy as np
import pytest
from spu_sim import check_vop, run_cases

from s4accel.base import vector as V
from s4accel.base.config import BANK, load_config
from s4accel.hw.cmd.descriptors import VopOp
from s4accel.hw.vector.vop import vop_cycles

# (op, n, m_tiles, wide, relu, mask_n)
CASES = [(VopOp.ADD, 40, 2, 0, 1, 0), (VopOp.ADD, 33, 1, 1, 0, 0), (VopOp.MUL, 64, 2, 0, 0, 0),
         (VopOp.GELU, 70, 1, 0, 0, 0), (VopOp.ROW_MAX, 50, 2, 0, 0, 37),
         (VopOp.ROW_SUM, 96, 1, 0, 0, 0), (VopOp.SOFTMAX, 64, 2, 0, 0, 45),
         (VopOp.SOFTMAX, 33, 1, 0, 1, 0), (VopOp.SOFTMAX, 96, 1, 1, 0, 0),
         (VopOp.LAYERNORM, 64, 2, 0, 0, 0), (VopOp.LAYERNORM, 40, 1, 1, 0, 0)]


def _fields(case, nb):
    op, n, mt, wide, relu, mask_n = case
    # A at 0, B after A's words, the output after B's (16-bit inputs and results: two
    # words a vector); the second row tile through the strides
    span = 2 * nb * mt + 2
    f = {"op": op, "n": n, "m_tiles": mt, "a_addr": 0, "b_addr": span, "out_addr": 2 * span,
         "wide": wide, "relu": relu, "mask_n": mask_n, "mult": 100, "mult_b": 5, "shift": 10,
         "u_mult": 1000, "u_shift": 10}
    if op == VopOp.SOFTMAX:
        f["mult"], f["shift"] = V.softmax_params(0.1)
    if op == VopOp.LAYERNORM:
        # its parameters: PAR from word 1; eps (mult, mult_b, u_mult's low byte) 100
        f.update(b_addr=1, shift=4 if wide else 0, mult_b=0, u_mult=0)
    return f


def _run(cfg, rng):
    R, C = cfg.rows, cfg.cols

    async def one(ctx, dut, case):
        g = dut.geometry
        nb = -(-case[1] // BANK)
        fields = _fields(case, nb)
        act = rng.integers(-128, 128, (min(8 * nb * 2 + 8, g.act_depth), R, BANK),
                           dtype=np.int8)
        par = rng.integers(0, 256, (min(2 + 2 * nb * BANK // C, g.par_depth), C, 8),
                           dtype=np.uint8)
        par[..., 6] = rng.integers(8, 24, par.shape[:2])     # LayerNorm's output shifts
        cycles, wrong = await check_vop(ctx, dut, act, par, fields, f"{case}: the VOP")
        return case, fields, cycles, wrong

    return run_cases(cfg, CASES, one)


@pytest.mark.parametrize("over", [{"vec_units": 2}, {"rows": 4, "cols": 16, "vec_units": 2},
                                  {"rows": 4, "cols": 8, "vec_units": 4}],
                         ids=["tiny-v2", "r4c16-v2", "r4c8-v4"])
def test_every_operation_with_several_units(over, seed):
    cfg = load_config("tiny").replace(**over)
    rng = np.random.default_rng(seed)
    for case, f, cycles, wrong in _run(cfg, rng):
        assert wrong == 0, f"{over} {case}: {wrong} ACT words differ from vop_reference"
        want = vop_cycles(cfg.rows, f["op"], f["n"], f["m_tiles"], f["wide"], f["relu"],
                          cols=cfg.cols, units=cfg.vec_units)
        assert cycles == want, f"{over} {case}: {cycles} cycles, vop_cycles says {want}"


def test_units_must_divide_the_rows():
    from s4accel.base.config import ConfigError
    for bad in (3, 0, 4, True):
        with pytest.raises(ConfigError, match="vec_units"):
            load_config("tiny").replace(vec_units=bad)
    with pytest.raises(ValueError, match="units must divide rows"):
        vop_cycles(4, VopOp.GELU, 32, 1, units=3)
