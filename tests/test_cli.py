"""The command line: ``s4 gemm`` on both backends and its errors, ``s4 bench core`` output."""

import json

import numpy as np
import pytest

from s4accel.sw.cli import main
from s4accel.sw.sparse import prune


def _files(tmp_path, rng, m, k, n, s):
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = prune(rng.integers(-128, 128, (n, k), dtype=np.int8), s)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    return x, w


@pytest.mark.parametrize("backend", ["model", "rtl"])
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
