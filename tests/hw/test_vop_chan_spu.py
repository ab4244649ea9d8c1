"""A per-channel ADD VOP (``VopBody``'s ``chan``) in the SPU (``Spu._vector_sequencer`` and
the vector unit) in amaranth.sim: the ACT scratchpad afterwards is what
:func:`~s4accel.hw.vector.vop.vop_reference` makes of it (the parameters from random PAR
words, over-47 shifts and unused bytes included), word for word, in the cycles
:func:`~s4accel.hw.vector.vop.vop_cycles` says."""

import numpy as np
import pytest
from spu_sim import check_vop, run_cases

from s4accel.base.config import BANK, load_config
from s4accel.hw.cmd.descriptors import VopOp
from s4accel.hw.vector.vop import vop_cycles


def _run(cfg, cases, rng):
    """Each case ``(n, m_tiles, wide, relu, par_addr)`` (A at word 0, B after it, the output
    after B) on fresh random ACT and PAR words; returns ``[(case, cycles, wrong ACT words)]``."""
    R, C = cfg.rows, cfg.cols

    async def one(ctx, dut, case):
        g = dut.geometry
        n, mt, wide, relu, par_addr = case
        nb = -(-n // BANK)
        fields = {"op": VopOp.ADD, "n": n, "m_tiles": mt, "a_addr": 0, "b_addr": nb * mt,
                  "out_addr": 2 * nb * mt, "wide": wide, "relu": relu, "chan": 1,
                  "mult": par_addr, "mult_b": 12345, "shift": 7}
        act = rng.integers(-128, 128, (min(4 * nb * mt + 4, g.act_depth), R, BANK),
                           dtype=np.int8)
        par = rng.integers(0, 256, (min(par_addr + nb * BANK // C + 2, g.par_depth), C, 8),
                           dtype=np.uint8)
        # shifts mostly where a sum of two products lands in int8 / int16, some anything
        # (bits 6, 7 set; 48..63 taken as 47)
        sh = rng.integers(8, 20, par.shape[:2]) + (8 if wide else 0)
        par[..., 6] = np.where(rng.random(par.shape[:2]) < 0.8, sh, par[..., 6])
        cycles, wrong = await check_vop(ctx, dut, act, par, fields, f"{case}: the VOP")
        return case, cycles, wrong

    return run_cases(cfg, cases, one)


# n under a vector, past one, whole vectors; 16-bit results; two row tiles; PAR not at 0
CASES = [(2, 1, 0, 0, 0), (33, 2, 1, 1, 3), (96, 2, 0, 0, 5), (64, 1, 1, 0, 1),
         (40, 1, 0, 1, 2)]


@pytest.mark.parametrize("name,over", [("tiny", {}), ("fpga", {}),
                                       ("tiny", {"rows": 4, "cols": 16}),
                                       ("tiny", {"rows": 4, "cols": 16, "vec_units": 2}),
                                       ("tiny", {"rows": 4, "cols": 8, "vec_units": 4})],
                         ids=["tiny", "fpga", "tiny-r4c16", "tiny-r4c16-v2", "tiny-r4c8-v4"])
def test_per_channel_add_in_the_spu(name, over, seed):
    cfg = load_config(name).replace(**over) if over else load_config(name)
    rng = np.random.default_rng(seed)
    for case, cycles, wrong in _run(cfg, CASES, rng):
        n, mt, wide, relu, _ = case
        assert wrong == 0, f"{name} {over} {case}: {wrong} ACT words differ"
        want = vop_cycles(cfg.rows, VopOp.ADD, n, mt, wide, relu, cols=cfg.cols, chan=1,
                          units=cfg.vec_units)
        assert cycles == want, f"{name} {over} {case}: {cycles} cycles, expected {want}"
