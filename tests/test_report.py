"""The shared reporter (``sim/report.py``): tables from column specs, JSON, the speedup plot."""

import json

import numpy as np

from s4accel.sim import report
from s4accel.sim.bench import array, core, gemm
from s4accel.sim.report import Column

COLUMNS = [Column("name", "name", "<6"), Column("cycles", "cycles", ">7"),
           Column("util", lambda r: r.get("util"), ">6.3f")]


def test_table_layout():
    text = report.format_table([{"name": "a", "cycles": 12, "util": 0.5},
                                {"name": "bb", "cycles": 3456}], COLUMNS)
    assert text.split("\n") == [
        "name    cycles   util",
        "---------------------",
        "a           12  0.500",
        "bb        3456      -",      # a missing value is '-', laid out like the column
    ]


def test_table_rule_spans_the_widest_line_and_options():
    rows = [{"name": "a_long_name", "cycles": 1, "util": 1.0}]
    lines = report.format_table(rows, COLUMNS).split("\n")
    assert lines[1] == "-" * len(lines[2]) and len(lines[2]) > len(lines[0])
    text = report.format_table(rows, COLUMNS, rule=False, indent="  ")
    assert text.split("\n") == ["  name    cycles   util", "  a_long_name       1  1.000"]


def test_bench_tables_keep_their_columns():
    row = {"sparsity": 4, "cycles": 1000, "macs_dense_equiv": 4096, "speedup_vs_dense": 3.9,
           "lane_utilization": 0.97, "bit_exact": True, "sim_cycles_per_s": None}
    lines = core.format_table([row]).split("\n")
    assert lines[0].split() == ["s", "cycles", "dense-eq", "MACs", "speedup", "ideal", "ratio",
                                "lane", "util", "bit-exact", "sim", "cyc/s"]
    assert lines[2].split() == ["4", "1000", "4096", "3.90", "4", "0.975", "0.9700", "True",
                                "0"]
    row = {"layer": "l", "m": 2, "k": 3, "n": 4, "sparsity": 2, "cycles": 9,
           "speedup_vs_dense": None, "lane_utilization": 0.5, "dram_bytes": 64,
           "dram_read_util": 0.25, "dram_write_util": 0.125, "stall_input_cycles": 1,
           "stall_output_cycles": 0, "descriptors": 3}
    assert gemm.format_table([row]).split("\n")[2].split() == [
        "l", "2x3x4", "2", "9", "-", "-", "0.5000", "64", "0.250", "0.125", "1", "0", "3"]
    rows = [dict(row, spus=n, lanes=64 * n, speedup_vs_one_spu=n / 1, lane_utilization=0.5 * n)
            for n in (2, 1)]
    lines = array.format_table(rows).split("\n")
    assert [line.split()[2] for line in lines[2:]] == ["1", "2"]      # sorted by SPUs


def test_json_takes_numpy_values(tmp_path):
    rows = [{"s": np.int64(4), "util": np.float32(0.5), "y": np.arange(3), "log": tmp_path}]
    assert json.loads(report.to_json(rows)) == [{"s": 4, "util": 0.5, "y": [0, 1, 2],
                                                 "log": str(tmp_path)}]
    path = report.write_json(rows, tmp_path / "rows.json")
    assert json.loads(path.read_text())[0]["s"] == 4


def test_speedup_plot_is_a_png(tmp_path):
    rows = [{"layer": name, "sparsity": s, "speedup_vs_dense": sp}
            for name in ("a", "b") for s, sp in ((1, 1.0), (4, 3.5), (16, None))]
    path = gemm.plot_layers(rows, tmp_path / "layers.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [{"sparsity": s, "speedup_vs_dense": s * 0.9} for s in (1, 2, 4)]
    path = core.plot_speedup(rows, tmp_path / "core.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
