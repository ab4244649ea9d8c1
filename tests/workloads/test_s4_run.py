"""``s4 run`` of compiled models on every backend: the exported digits MLP (a linear chain) and a
small CNN (``convnet``), compiled for ``tiny`` (the ``s4_sim`` build the RTL tests share), give
exactly the integers of ``--backend model`` on the RTL (``rtl``: one short run per model kind)
and through the UART host bridge (``--port model``: the bridge protocol answered by the
functional model)."""

import contextlib
import io
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from s4accel.cli import main
from s4accel.sim.workloads.digits import load_digits_split, train_mlp
from s4accel.sw.onnx_import import export_onnx

SEED = 2405


def small_cnn(rng, c=8, hw=8):
    """A CNN that fits ``tiny``: 2x2 Conv + Relu, 2x2 Conv at stride 2 + Relu, MaxPool 2x2,
    GlobalAveragePool, Flatten, Gemm to 5 classes, on a ``[B, 1, hw, hw]`` input."""
    inits = {"c1.w": rng.normal(0, 0.5, (c, 1, 2, 2)), "c1.b": rng.normal(0, 0.1, c),
             "c2.w": rng.normal(0, 0.3, (c, c, 2, 2)),
             "fc.w": rng.normal(0, 0.3, (5, c)), "fc.b": rng.normal(0, 0.1, 5)}
    nodes = [helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], name="c1",
                              kernel_shape=[2, 2]),
             helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             helper.make_node("Conv", ["r1", "c2.w"], ["c2"], name="c2", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="r2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["y"], name="fc", transB=1)]
    g = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 1, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 5])],
        [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``{kind: (s4 path, inputs .npy path)}``: the digits MLP (64-64-10, trained, exported to
    ONNX) on 16 test images, the small CNN on 4 random images, both compiled for tiny."""
    d = tmp_path_factory.mktemp("s4run")
    x_tr, y_tr, x_te, _ = load_digits_split(0)
    mlp = train_mlp(x_tr, y_tr, 64, 1, seed=0, epochs=15)
    onnx.save(export_onnx(mlp.layers()), d / "mlp.onnx")
    np.save(d / "mlp_calib.npy", x_tr.astype(np.float32))
    np.save(d / "mlp_x.npy", x_te[:16].astype(np.float32))
    rng = np.random.default_rng(SEED)
    onnx.save(small_cnn(rng), d / "cnn.onnx")
    np.save(d / "cnn_calib.npy", rng.uniform(0, 1, (64, 1, 8, 8)).astype(np.float32))
    np.save(d / "cnn_x.npy", rng.uniform(0, 1, (4, 1, 8, 8)).astype(np.float32))
    out = {}
    for kind, name, shape in (("linear", "mlp", "1x64"), ("convnet", "cnn", "1x1x8x8")):
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            assert main(["compile", str(d / f"{name}.onnx"), "--sparsity", "1", "--config",
                         "tiny", "--calib", str(d / f"{name}_calib.npy"), "--input-shape",
                         shape, "-o", str(d / f"{name}.s4")]) == 0
        err = re.search(r"quantization error on (\d+) calibration inputs.*top-1 agreement "
                        r"(\S+) %", text.getvalue())
        print(f"{name}: {err[0] if err else text.getvalue()}")
        assert err and int(err[1]) == len(np.load(d / f"{name}_calib.npy"))
        if name == "mlp":           # the trained classifier: its int8 version agrees
            assert float(err[2]) >= 99
        out[kind] = (d / f"{name}.s4", d / f"{name}_x.npy")
    return out


def _run(s4, x, out, *backend):
    assert main(["run", str(s4), "--input", str(x), "-o", str(out), *backend]) == 0
    return np.load(out)


def test_uart_backend_runs_host_fallback(models, tmp_path):
    """The digits MLP with a final Softmax on the host (--host-fallback): the host tail runs
    on the output of the device part on every backend."""
    s4, x = models["linear"]
    d = s4.parent
    model = onnx.load(d / "mlp.onnx")
    out = model.graph.output[0].name
    model.graph.node[-1].output[0] = "logits"
    model.graph.node.append(helper.make_node("Softmax", ["logits"], [out], name="probs",
                                             axis=1))
    onnx.save(model, tmp_path / "sm.onnx")
    assert main(["compile", str(tmp_path / "sm.onnx"), "--sparsity", "1", "--config", "tiny",
                 "--calib", str(d / "mlp_calib.npy"), "--input-shape", "1x64",
                 "--host-fallback", "-o", str(tmp_path / "sm.s4")]) == 0
    logits = _run(s4, x, tmp_path / "logits.npy")
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    got = _run(tmp_path / "sm.s4", x, tmp_path / "uart.npy", "--backend", "uart", "--port",
               "model", "--batch", "4")
    assert np.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "convnet"])
def test_uart_backend_matches_model(models, kind, tmp_path):
    s4, x = models[kind]
    want = _run(s4, x, tmp_path / "model.npy")
    got = _run(s4, x, tmp_path / "uart.npy", "--backend", "uart", "--port", "model",
               "--batch", "2")
    assert want.shape == got.shape and np.array_equal(want, got)


@pytest.mark.rtl
@pytest.mark.parametrize("kind", ["linear", "convnet"])
def test_rtl_backend_matches_model(models, kind, tmp_path, capsys):
    s4, x = models[kind]
    want = _run(s4, x, tmp_path / "model.npy")
    got = _run(s4, x, tmp_path / "rtl.npy", "--backend", "rtl")
    out = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + out)
    assert "backend rtl, config tiny" in out and "device cycles on verilator" in out
    # the float outputs are the integer outputs times per-column scales: equal floats, equal
    # integers
    assert want.shape == got.shape and np.array_equal(want, got)
