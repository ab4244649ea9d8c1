"""The command line: ``s4 gemm`` on both backends and its errors, ``s4 bench core`` output."""

import json
from pathlib import Path

import numpy as np
import pytest

from s4accel.base.config import load_config
from s4accel.base.sparse import prune
from s4accel.cli import main


def _files(tmp_path, rng, m, k, n, s):
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = prune(rng.integers(-128, 128, (n, k), dtype=np.int8), s)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    return x, w


@pytest.mark.parametrize("backend", ["model", pytest.param("rtl", marks=pytest.mark.rtl)])
def test_gemm_from_files(tmp_path, rng, backend, capsys):
    x, w = _files(tmp_path, rng, 5, 45, 9, 8)
    out = tmp_path / "y.npy"
    rc = main(["gemm", "--x", str(tmp_path / "x.npy"), "--w", str(tmp_path / "w.npy"),
               "--sparsity", "8", "--backend", backend, "--config", "tiny", "--out", str(out)])
    assert rc == 0
    y = np.load(out)
    assert y.dtype == np.int32
    assert np.array_equal(y, x.astype(np.int64) @ w.T.astype(np.int64))
    assert "backend " + backend in capsys.readouterr().out


def test_gemm_refuses_too_dense_weights(tmp_path, rng, capsys):
    x, w = _files(tmp_path, rng, 2, 64, 4, 8)
    w[3, 32:48] = 7  # row 3, bank 1: 16 non-zeros where s = 8 allows 4
    np.save(tmp_path / "w.npy", w)
    rc = main(["gemm", "--x", str(tmp_path / "x.npy"), "--w", str(tmp_path / "w.npy"),
               "--sparsity", "8", "--out", str(tmp_path / "y.npy")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "row 3, bank 1" in err and "at most 4 allowed" in err
    assert not (tmp_path / "y.npy").exists()


def test_gemm_refuses_bad_files(tmp_path, rng, capsys):
    _files(tmp_path, rng, 2, 64, 4, 8)
    np.save(tmp_path / "f.npy", np.zeros((2, 64), np.float32))
    rc = main(["gemm", "--x", str(tmp_path / "f.npy"), "--w", str(tmp_path / "w.npy"),
               "--sparsity", "8", "--out", str(tmp_path / "y.npy")])
    assert rc == 2 and "X must be a 2-D int8 array, not float32" in capsys.readouterr().err
    rc = main(["gemm", "--x", str(tmp_path / "x.npy"), "--w", str(tmp_path / "w.npy"),
               "--sparsity", "3", "--out", str(tmp_path / "y.npy")])
    assert rc == 2 and "sparsity must be one of" in capsys.readouterr().err


@pytest.mark.rtl
@pytest.mark.slow
def test_bench_core_small(tmp_path, capsys):
    """A reduced bench on tiny: JSON keys, bit-exact, speedup close to s."""
    plot = tmp_path / "plot.png"
    rc = main(["bench", "core", "--config", "tiny", "--json", "--m", "4", "--n", "8",
               "--k", "256", "--plot", str(plot)])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["sparsity"] for r in rows] == [1, 2, 4, 8, 16, 32]
    for r in rows:
        assert {"sparsity", "cycles", "macs_dense_equiv", "speedup_vs_dense",
                "lane_utilization"} <= set(r)
        assert r["bit_exact"] and r["macs_dense_equiv"] == 4 * 8 * 256
    # 4 tiles of 256/s cycles plus a fixed pipeline tail: the ratio falls with s but stays near
    assert rows[3]["speedup_vs_dense"] >= 0.85 * 8
    assert plot.stat().st_size > 1000


@pytest.mark.slow
def test_generate_writes_verilog_that_compiles(tmp_path, capsys):
    """``s4 generate``: Verilog that Icarus accepts, with the configured bus widths, and the
    register documentation equal to what the register map generates."""
    import shutil
    import subprocess

    from s4accel.base import regmap
    from s4accel.base.config import load_config
    from s4accel.hw.generate import verilog_ports

    out = tmp_path / "gen"
    assert main(["generate", "--config", "tiny", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = (out / "s4_top.v").read_text()
    ports = {name: (d, w) for d, name, w in verilog_ports(text)}
    cfg = load_config("tiny")
    assert ports["dram__wdata"] == ("output", cfg.dram_bus_bits)
    assert ports["dram__rdata"] == ("input", cfg.dram_bus_bits)
    assert ports["csr__awaddr"] == ("input", 12)
    assert ports["irq"] == ("output", 1)
    assert (out / "registers.md").read_text() == regmap.generate("md", cfg)
    assert (out / "s4_regs.h").read_text() == regmap.generate("c", cfg)
    if shutil.which("iverilog"):
        r = subprocess.run(["iverilog", "-o", str(tmp_path / "a.vvp"), str(out / "s4_top.v")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    if shutil.which("gcc"):
        r = subprocess.run(["gcc", "-fsyntax-only", "-x", "c", str(out / "s4_regs.h")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_generate_refuses_what_the_rtl_cannot_build(tmp_path, capsys):
    assert main(["generate", "--config", "antoum", "-o", str(tmp_path / "g")]) == 2
    assert "dram_bus_bits=512" in capsys.readouterr().err


def test_regmap_check(tmp_path, capsys):
    """``s4 regmap``: writes an artifact, ``--check`` passes on it and fails once it changes."""
    path = tmp_path / "regs.h"
    assert main(["regmap", "--format", "c", "-o", str(path)]) == 0
    assert main(["regmap", "--format", "c", "-o", str(path), "--check"]) == 0
    path.write_text(path.read_text().replace("0x000u", "0x004u", 1))
    assert main(["regmap", "--format", "c", "-o", str(path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["regmap", "--format", "c", "--check"]) == 2
    assert "--check needs --output" in capsys.readouterr().err


@pytest.mark.rtl
@pytest.mark.slow
def test_bench_gemm_small(tmp_path, capsys):
    """``s4 bench gemm --json`` on a small layer: the documented keys, bit-exact results, and
    a sparse run faster than the dense one."""
    plot = tmp_path / "g.png"
    rc = main(["bench", "gemm", "--config", "tiny", "--shape", "16x96x24", "--sparsity", "1",
               "--sparsity", "8", "--json", "--plot", str(plot)])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["sparsity"] for r in rows] == [1, 8]
    for r in rows:
        for key in ("layer", "sparsity", "cycles", "speedup_vs_dense", "lane_utilization",
                    "dram_bytes"):
            assert key in r, key
        assert r["bit_exact"] and r["layer"] == "custom_16x96x24"
        assert 0 < r["lane_utilization"] <= 1
    assert rows[1]["cycles"] < rows[0]["cycles"] and rows[1]["speedup_vs_dense"] > 1
    assert rows[1]["dram_bytes"] < rows[0]["dram_bytes"]
    assert plot.stat().st_size > 0


def test_bench_gemm_refuses_unknown_layer(capsys):
    assert main(["bench", "gemm", "--layer", "bert_huge"]) == 2
    assert "unknown layer 'bert_huge'" in capsys.readouterr().err


@pytest.mark.rtl
@pytest.mark.slow
def test_bench_array_small():
    """Two SPUs on a compute-bound layer: same results, fewer cycles (the same channel split
    the full ``s4 bench array`` uses). On the bus path with tests/tb/test_top_rtl.py's designs
    (built without the vector unit; a GEMM's cycles do not depend on it), so no design is built
    for this test alone."""
    from s4accel.sim.bench.array import bench_array

    one = load_config("tiny").replace(vec_max_row=0, name="tiny_novec")
    two = one.replace(spus=2, l2_kib=16, name="tiny_x2_novec")
    rows, _ = bench_array("tiny", spus=(1, 2), layers={"small": (48, 160, 32)}, sparsities=(1,),
                          fast=False, configs={1: one, 2: two})
    by_n = {r["spus"]: r for r in rows}
    assert set(by_n) == {1, 2}
    assert all(r["bit_exact"] for r in rows)
    assert by_n[1]["speedup_vs_one_spu"] == 1.0
    assert by_n[2]["speedup_vs_one_spu"] > 1.5, by_n[2]


def test_shared_options_are_declared_once():
    """--config, --seed, --sim and --json come from cli.SHARED on every command that takes
    them; no command declares its own."""
    from s4accel import cli

    shared_flags = {f for flags, _ in cli.SHARED.values() for f in flags}
    for words, _, _shared, options, _ in cli.COMMANDS:
        own = {f for flags, _ in options for f in flags}
        assert not own & shared_flags, f"s4 {' '.join(words)} declares {own & shared_flags}"
    parser = cli.build_parser()
    args = parser.parse_args(["bench", "gemm", "--config", "tiny", "--seed", "3", "--json"])
    assert (args.config, args.seed, args.sim, args.json) == ("tiny", 3, "verilator", True)
    assert parser.parse_args(["project"]).config == "antoum"
    assert parser.parse_args(["fpga", "build", "--board", "ulx3s"]).seed == 1


def test_project_prints_the_projection(capsys):
    assert main(["project", "--sparsity", "1", "16"]) == 0
    out = capsys.readouterr().out
    assert "'antoum' projection" in out and "BERT-Large" in out and "ResNet-50" in out
    assert "943.7 sparse-equivalent at 32x" in out and "82 GB/s shared" in out
    assert "Published per chip" in out
    # issue 21: the new mechanisms by default, their plan's assumptions, and DRAM bytes per
    # inference against the old mechanisms
    assert "new mechanisms" in out and "BERT-base: a sequence a SPU" in out
    assert "BERT-Large: tokens split by rows" in out       # 384 tokens: over one SPU's ACT
    assert "ResNet-50: a pass is one group of 32 images" in out
    assert "DRAM bytes per inference" in out and "old MB/inf" in out


def test_project_says_when_the_comparison_cannot_run(tmp_path, capsys):
    """A preset the old mechanisms cannot run (ResNet-50's 3x3x512 dense channel tile over
    half of a 512 KiB WGT) still projects, and says why the comparison is missing."""
    text = (Path(__file__).parents[1] / "s4accel/base/configs/antoum.yaml").read_text()
    cfg = tmp_path / "antoum_w512.yaml"
    cfg.write_text(text.replace("wgt_sram_kib: 1024", "wgt_sram_kib: 512"))
    assert main(["project", "--config", str(cfg), "--sparsity", "1", "16"]) == 0
    out = capsys.readouterr().out
    assert "old MB/inf" not in out
    assert "No comparison with the old mechanisms: they cannot run on" in out
    assert "one channel tile needs" in out


def test_project_old_mechanisms(capsys):
    assert main(["project", "--mechanisms", "old", "--sparsity", "16", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "old mechanisms: layers back to back through DRAM, batch 4" in out
    assert "im2col activations for convolutions" in out and "new MB/inf" in out
    # --batch belongs to the old mechanisms: one line, exit 2
    assert main(["project", "--batch", "4"]) == 2
    assert "--mechanisms old" in capsys.readouterr().err


def test_project_json(capsys):
    """Issue 21 item 8: ``s4 project --json`` is a list of objects, one per model and
    sparsity; the table and its assumptions go to stderr."""
    assert main(["project", "--sparsity", "1", "16", "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert "'antoum' projection" in captured.err and "on-chip SRAM" in captured.err
    assert isinstance(rows, list)
    assert [(r["model"], r["sparsity"]) for r in rows] == [
        (m, s) for m in ("BERT-base", "BERT-Large", "ResNet-50") for s in (1, 16)]
    types = {"model": str, "sparsity": int, "samples_per_s": float,
             "lane_utilization": float, "dram_gb_s": float, "bound": str}
    for r in rows:
        assert set(types) <= set(r)
        for key, kind in types.items():
            assert type(r[key]) is kind, (key, r[key])
        assert r["samples_per_s"] > 0 and 0 < r["lane_utilization"] <= 1
        assert 0 < r["dram_gb_s"] <= 82
        assert r["bound"] in ("compute", "dram", "dma_read", "dma_write", "descriptors")
        assert r["mechanisms"] == "new" and r["dram_bytes_per_sample"] > 0
    dense = {r["model"]: r["samples_per_s"] for r in rows if r["sparsity"] == 1}
    for r in rows:
        assert r["speedup_vs_dense"] == pytest.approx(r["samples_per_s"] / dense[r["model"]])


# -- issue 20, CLI paragraph: every bad input is one line on stderr, exit 2, before simulating --

@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if ``s4 gemm --backend rtl`` starts a simulation."""
    from s4accel.sim.tb import runner

    def refuse(*args, **kwargs):
        raise AssertionError("the RTL simulation started before the bad input was refused")
    monkeypatch.setattr(runner, "run_tests", refuse)


def _gemm(tmp_path, *extra, x="x.npy", w="w.npy", out="y.npy", backend="rtl"):
    return main(["gemm", "--x", str(tmp_path / x), "--w", str(tmp_path / w), "--sparsity", "8",
                 "--config", "tiny", "--backend", backend, "--out", str(tmp_path / out),
                 *extra])


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("s4: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    return err


def test_gemm_out_in_missing_directory_is_refused_first(tmp_path, rng, capsys, no_simulation):
    _files(tmp_path, rng, 2, 64, 4, 8)
    assert _gemm(tmp_path, out="missing/y.npy") == 2
    _one_line_error(capsys, "--out", "missing", "does not exist")


def test_gemm_out_must_be_npy(tmp_path, rng, capsys, no_simulation):
    """``np.save`` appends .npy to any other name (``y.txt`` became ``y.txt.npy`` while the
    report said ``-> y.txt``): other names are refused."""
    _files(tmp_path, rng, 2, 64, 4, 8)
    assert _gemm(tmp_path, out="y.txt") == 2
    _one_line_error(capsys, "--out", "y.txt", ".npy")
    assert not list(tmp_path.glob("y.txt*"))
    assert _gemm(tmp_path, out=".") == 2
    _one_line_error(capsys, "--out", ".npy")


@pytest.mark.parametrize("content, words", [
    (b"", ["X", "is empty", "not an .npy file"]),
    (b"hello, world\n1 2 3\n", ["X", "not an .npy file"]),
    (None, ["X", "not an .npy file", ".npz"]),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': ", ["X", "not a valid .npy file"]),
    (b"\x93NUMPY\x01\x00\x40\x00{'descr': '|i1', 'fortran_order': False, 'shape': (2, 64), }"
     b"          \n", ["X", "truncated"]),
])
def test_gemm_refuses_what_is_not_an_npy_file(tmp_path, rng, capsys, no_simulation, content,
                                              words):
    _files(tmp_path, rng, 2, 64, 4, 8)
    name = "bad.npy"
    if content is None:
        name = "bad.npz"
        np.savez(tmp_path / name, x=np.zeros((2, 64), np.int8))
    else:
        (tmp_path / name).write_bytes(content)
    assert _gemm(tmp_path, x=name) == 2
    _one_line_error(capsys, *words)


def test_gemm_refuses_a_header_claiming_a_huge_array(tmp_path, rng, capsys, no_simulation):
    """A 128-byte file whose header claims 238 GiB is refused from the header, before loading."""
    _files(tmp_path, rng, 2, 64, 4, 8)
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|i1", "fortran_order": False, "shape": (1 << 20, 238 << 10)})
    (tmp_path / "huge.npy").write_bytes(buf.getvalue())
    assert _gemm(tmp_path, w="huge.npy") == 2
    _one_line_error(capsys, "W", "238.0 GiB", "64.0 MiB")


def test_gemm_size_limit(tmp_path, rng, capsys, monkeypatch, no_simulation):
    from s4accel import cli

    _files(tmp_path, rng, 40, 64, 4, 8)
    monkeypatch.setattr(cli, "MAX_ARRAY_BYTES", 2048)
    assert _gemm(tmp_path) == 2                                  # X: 40 x 64 = 2560 bytes
    _one_line_error(capsys, "X", "2.5 KiB", "2.0 KiB")
    _files(tmp_path, rng, 30, 64, 20, 8)
    assert _gemm(tmp_path) == 2                                  # Y: 30 x 20 x 4 = 2400 bytes
    _one_line_error(capsys, "Y", "2.3 KiB", "2.0 KiB")


def test_gemm_refuses_zero_rows(tmp_path, rng, capsys, no_simulation):
    _files(tmp_path, rng, 2, 64, 4, 8)
    np.save(tmp_path / "x0.npy", np.zeros((0, 64), np.int8))
    assert _gemm(tmp_path, x="x0.npy", backend="model") == 2
    _one_line_error(capsys, "X", "0 rows")
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize("config, words", [
    ("nope", ["no configuration preset named 'nope'"]),
    ("bad.yaml:rows: 2\n  cols: 4\n", ["bad.yaml", "not valid YAML", "line 2"]),
    ("bad.yaml:sparsities: 8\n", ["sparsities", "not 8"]),
    ("bad.yaml:clock_mhz: .inf\n", ["clock_mhz", "not inf"]),
    ("missing.yaml", ["missing.yaml", "does not exist"]),
])
def test_gemm_refuses_bad_configs_before_building(tmp_path, rng, capsys, no_simulation, config,
                                                  words):
    _files(tmp_path, rng, 2, 64, 4, 8)
    if ":" in config:
        name, text = config.split(":", 1)
        (tmp_path / name).write_text(text)
        config = name
    if config.endswith(".yaml"):
        config = str(tmp_path / config)
    assert main(["gemm", "--x", str(tmp_path / "x.npy"), "--w", str(tmp_path / "w.npy"),
                 "--sparsity", "8", "--config", config, "--backend", "rtl",
                 "--out", str(tmp_path / "y.npy")]) == 2
    _one_line_error(capsys, *words)


def test_bad_config_is_one_line_on_every_command(capsys):
    assert main(["project", "--config", "nope"]) == 2
    _one_line_error(capsys, "no configuration preset named 'nope'")


def test_project_assume_is_a_labelled_design_study(capsys):
    """``--assume``: the plans with mechanisms the RTL does not have, each listed under
    'Projected beyond the RTL' and flagged on the targets line; not for the old projection."""
    assert main(["project", "--sparsity", "1", "16"]) == 0
    plain = capsys.readouterr().out
    assert "assumed" not in plain and "These plans assume" not in plain
    assert main(["project", "--sparsity", "1", "16", "--assume", "kv-on-chip",
                 "residual-at-store"]) == 0
    out = capsys.readouterr().out
    beyond = next(line for line in out.splitlines()
                  if line.startswith("Projected beyond the RTL"))
    assert "ACT -> WGT path" in beyond and "residual additions in the store path" in beyond
    assert "BERT-base 7.94x, 94.9% (both reached)" in out and "These plans assume" in out
    assert main(["project", "--sparsity", "1", "16", "--assume", "spatial-resnet"]) == 0
    out = capsys.readouterr().out
    assert "row tiles of one image's pixels" in next(
        line for line in out.splitlines() if line.startswith("Projected beyond the RTL"))
    assert "ResNet-50: design study (--assume spatial-resnet)" in out
    assert main(["project", "--mechanisms", "old", "--assume", "kv-on-chip"]) == 2
    assert "--assume" in capsys.readouterr().err
