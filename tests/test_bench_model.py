"""``s4 bench model``: its JSON rows, its argument errors, the FFN chain's quantization, and
(``rtl``) a small run on ``tiny``."""

import json

import numpy as np
import pytest

from s4accel.base.config import load_config
from s4accel.base.sparse import prune
from s4accel.cli import main
from s4accel.sim.bench import model as bm
from s4accel.sim.model.perf_model import predict_program
from s4accel.sim.report import to_json
from s4accel.sw import scenarios
from s4accel.sw.scenarios import chain_expected
from s4accel.sw.program import Allocator, DeviceInfo

#: The keys every row has (issue 21 item 7, plus the performance model's prediction).
KEYS = ("network", "sparsity", "cycles", "speedup_vs_dense", "dram_bytes", "lane_utilization",
        "bound", "bit_exact", "model_cycles", "model_error")


def test_rows_from_results(rng):
    """make_rows: the documented keys, speedup against the network's s = 1 row, the model's
    error relative to the RTL's cycles, JSON-serializable."""
    cfg = load_config("tiny")
    info = DeviceInfo.from_config(cfg)
    x, chain = scenarios.random_chain(rng, info)
    jobs, raw = [], []
    for s, scale in ((1, 1.0), (4, 0.25)):
        job = bm.Job("toy", s, (x, chain), chain_expected(x, chain), rows=len(x))
        prog = job.program(info, job.inputs, Allocator(0, 1 << 40))
        pred = predict_program(cfg, prog.descs)
        cycles = int(pred["cycles"] * scale) + 10
        jobs.append(job)
        raw.append({"cycles": cycles, "descs": prog.descs, "bit_exact": s == 1, "wall_s": 1.0,
                    "counters": {"perf_dma_rd_bytes": 100, "perf_dma_wr_bytes": 20,
                                 "perf_mac": cycles // 2}})
    rows = bm.make_rows(cfg, jobs, raw)
    for r in rows:
        for key in KEYS:
            assert key in r, key
        assert r["dram_bytes"] == 120 and r["lane_utilization"] == pytest.approx(0.5, abs=0.01)
        assert r["bound"] in ("compute", "dma_read", "dma_write", "descriptors")
        assert r["model_error"] == pytest.approx((r["model_cycles"] - r["cycles"]) / r["cycles"])
    assert rows[0]["speedup_vs_dense"] == 1.0
    assert rows[1]["speedup_vs_dense"] == pytest.approx(rows[0]["cycles"] / rows[1]["cycles"])
    assert [r["bit_exact"] for r in rows] == [True, False]
    assert json.loads(to_json(rows))[1]["sparsity"] == 4
    assert "model err" in bm.format_table(rows) and "toy" in bm.format_table(rows)
    with pytest.raises(ValueError, match="1 results for 2 jobs"):
        bm.make_rows(cfg, jobs, raw[:1])


@pytest.mark.parametrize("argv,message", [
    (["--network", "resnet9000"], "unknown network 'resnet9000'"),
    (["--sparsity", "3"], "sparsity 3 is not supported by fpga"),
    (["--config", "tiny", "--sparsity", "64"], "sparsity 64 is not supported by tiny"),
    (["--rows", "0"], "--rows must be at least 1"),
])
def test_cli_refuses_bad_arguments(argv, message, capsys):
    """Bad arguments stop the bench before any training or simulation, without a
    traceback."""
    assert main(["bench", "model", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_refuses_a_level_that_is_not_one_program(capsys):
    """A level asked for that does not run as one program (the dense digits MLP's hidden
    layer does not fit half of tiny's weight scratchpad) is an error, before the RTL."""
    rc = main(["bench", "model", "--config", "tiny", "--network", "digits_mlp", "--sparsity",
               "1", "--rows", "4"])
    assert rc == 2
    assert "digits_mlp at s = 1 does not run as one program on tiny" in \
        capsys.readouterr().err


def test_ffn_chain_quantization(rng):
    """The FFN chain (GELU through the LUT, raw last layer): dequantized, it follows the float
    FFN with the same pruned weights; the program of MiniLM's shape fits fpga dense and at
    s = 16."""
    m, d, h = 24, 64, 128
    x = rng.normal(0, 1, (m, d))
    w1, b1 = rng.normal(0, 0.2, (h, d)), rng.normal(0, 0.1, h)
    w2, b2 = rng.normal(0, 0.1, (d, h)), rng.normal(0, 0.1, d)
    for s in (1, 4):
        x_q, layers, y_scale = bm.ffn_chain(x, w1, b1, w2, b2, s)
        (p1, q1), (p2, q2) = layers
        assert p1.s == p2.s == s and q1.mode == "int8" and q2.mode == "raw"
        assert q1.lut is not None and not q1.relu
        y = chain_expected(x_q, layers)
        assert y.dtype == np.int32 and y.shape == (m, d)
        w1p, w2p = prune(w1, s), prune(w2, s)
        ref = bm._gelu(x @ w1p.T + b1) @ w2p.T + b2
        got = y * y_scale
        cos = (got * ref).sum() / np.linalg.norm(got) / np.linalg.norm(ref)
        assert cos > 0.98, (s, cos)
    info = DeviceInfo.from_config(load_config("fpga"))
    xm = rng.normal(0, 1, (128, 384))
    for s in (1, 16):
        x_q, layers, _ = bm.ffn_chain(xm, rng.normal(0, 0.05, (1536, 384)), np.zeros(1536),
                                      rng.normal(0, 0.05, (384, 1536)), np.zeros(384), s)
        bm.chain_job(info, (x_q, layers), Allocator(0, 1 << 40))   # NotOnChip otherwise


@pytest.mark.rtl
@pytest.mark.slow
def test_bench_model_tiny(tmp_path, capsys):
    """``s4 bench model`` on tiny, the digits MLP at two sparsities, 8 images: the keys,
    bit-exact rows, the sparser faster, the performance model within 2 % (it is exact on
    these), the plot written."""
    plot = tmp_path / "m.png"
    rc = main(["bench", "model", "--config", "tiny", "--network", "digits_mlp", "--sparsity",
               "2", "--sparsity", "16", "--rows", "8", "--json", "--plot", str(plot)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    rows = json.loads(out.out)
    assert [(r["network"], r["sparsity"]) for r in rows] == [("digits_mlp", 2),
                                                             ("digits_mlp", 16)]
    for r in rows:
        for key in KEYS:
            assert key in r, key
        assert r["bit_exact"] is True and r["rows"] == 8 and r["config"] == "tiny"
        assert 0 < r["lane_utilization"] <= 1 and r["dram_bytes"] > 0
        assert abs(r["model_error"]) <= 0.02, r
        assert r["speedup_vs_dense"] is None        # no s = 1 row
    assert rows[1]["cycles"] < rows[0]["cycles"]
    assert "digits_mlp" in out.err and plot.stat().st_size > 0
