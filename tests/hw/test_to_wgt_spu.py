"""TO_WGT in the SPU (``Spu._to_wgt``) in amaranth.sim: the int8 matrix in ACT copied into
WGT as :func:`~s4accel.hw.vector.vop.to_wgt_image` gives it, word for word, nothing else in
WGT touched, in the cycles :func:`~s4accel.hw.vector.vop.to_wgt_cycles` says."""

import numpy as np
import pytest
from spu_sim import run_cases, run_vop, set_act, set_words

from s4accel.base.config import BANK, load_config
from s4accel.hw.cmd.descriptors import VopOp
from s4accel.hw.vector.vop import to_wgt_cycles, vop_reference


def _run(cfg, cases, seed):
    """Each case ``(n, m_tiles, wide, a_addr, out_addr)`` on a fresh random ACT and WGT
    (bank 0); returns ``[(case, cycles, wrong WGT words)]``."""
    R, C = cfg.rows, cfg.cols
    rng = np.random.default_rng(seed)

    async def one(ctx, dut, case):
        rams = dut.sim_rams
        g = dut.geometry
        n, mt, wide, a_addr, out_addr = case
        # random bytes everywhere, past n and past the matrix too
        act = rng.integers(-128, 128, (min(160, g.act_depth), R, BANK), dtype=np.int8)
        set_act(ctx, rams, act)
        wmem = rams["wgt"][0].sim_memory
        wgt = rng.integers(0, 256, (min(g.wgt_depth, 640), C, 2), dtype=np.uint8)
        set_words(ctx, wmem, wgt)
        cycles = await run_vop(ctx, dut, {"op": VopOp.TO_WGT, "n": n, "m_tiles": mt,
                                          "a_addr": a_addr, "out_addr": out_addr,
                                          "wide": wide, "shift": 3, "relu": 1}, 5000,
                               f"{case}: the TO_WGT")
        await ctx.tick()
        want = wgt.copy()
        vop_reference(act.copy(), op=VopOp.TO_WGT, n=n, m_tiles=mt, a_addr=a_addr,
                      out_addr=out_addr, wide=wide, wgt=want)
        got = np.array([np.frombuffer(ctx.get(wmem.data[a]).to_bytes(2 * C, "little"),
                                      np.uint8).reshape(C, 2) for a in range(len(wgt))])
        return case, cycles, int((got != want).any(axis=(1, 2)).sum())

    return run_cases(cfg, cases, one)


# (config, rows/cols override, cases): n past a bank and under a channel tile, one token
# and whole row tiles, addresses not at 0; cols < rows (the K copy's groups start mid-tile)
CASES = [
    ("tiny", {}, [(40, 2, 1, 0, 0), (40, 2, 0, 0, 0), (1, 1, 1, 3, 5), (1, 1, 0, 3, 5),
                  (56, 3, 1, 7, 11), (56, 3, 0, 7, 11)]),
    ("tiny", {"rows": 8, "cols": 2}, [(40, 2, 1, 0, 0), (5, 3, 0, 1, 0), (70, 1, 0, 0, 3)]),
    ("fpga", {}, [(33, 2, 1, 0, 0), (70, 3, 0, 5, 9), (128, 1, 1, 2, 1)]),
    # 32 columns (the antoum preset's): a channel tile wider than the row tile
    ("tiny", {"rows": 4, "cols": 32, "wgt_sram_kib": 16},
     [(40, 2, 1, 0, 0), (40, 3, 0, 1, 2), (64, 1, 1, 3, 5)]),
]


@pytest.mark.parametrize("name,over,cases", CASES,
                         ids=["tiny", "tiny-r8c2", "fpga", "tiny-r4c32"])
def test_to_wgt_in_the_spu(name, over, cases):
    cfg = load_config(name).replace(**over) if over else load_config(name)
    for case, cycles, wrong in _run(cfg, cases, seed=7):
        n, mt, wide, _, _ = case
        assert wrong == 0, f"{name} {over} {case}: {wrong} WGT words differ"
        assert cycles == to_wgt_cycles(cfg.rows, cfg.cols, n, mt, wide), (case, cycles)
