"""``s4 compile --host-fallback``: unsupported nodes at the head (an input normalization) and
the tail (a final Softmax) of an MLP and a CNN run on the host through onnxruntime, the device
part in between; ``s4 compile`` / ``s4 inspect`` print the split, ``s4 run`` executes the
whole, against onnxruntime in float. Without the flag the node is refused, and an unsupported
node between device layers is refused with the flag too."""

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from s4accel.cli import main
from s4accel.sw import model_file
from s4accel.sw.host_fallback import split_graph

SEED = 2406


def _model(nodes, inits, in_shape, out_shape):
    g = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _mlp(rng, middle=False):
    """Sub / Div (input normalization), MatMul + bias + Relu, Gemm, Softmax; with ``middle``
    a Softmax between the two layers as well."""
    inits = {"mean": rng.uniform(0.3, 0.7, (1, 64)), "std": rng.uniform(0.5, 2, (1, 64)),
             "w1": rng.normal(0, 0.2, (64, 32)), "b1": rng.normal(0, 0.1, 32),
             "w2": rng.normal(0, 0.5, (32, 10)), "b2": rng.normal(0, 0.1, 10)}
    nodes = [helper.make_node("Sub", ["x", "mean"], ["xs"], name="center"),
             helper.make_node("Div", ["xs", "std"], ["xn"], name="scale"),
             helper.make_node("MatMul", ["xn", "w1"], ["h0"], name="fc1"),
             helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
             helper.make_node("Relu", ["h1"], ["h2"], name="relu1")]
    if middle:
        nodes.append(helper.make_node("Softmax", ["h2"], ["h3"], name="mid_softmax", axis=1))
    nodes += [helper.make_node("Gemm", ["h3" if middle else "h2", "w2", "b2"], ["logits"],
                               name="fc2"),
              helper.make_node("Softmax", ["logits"], ["y"], name="probs", axis=1)]
    return _model(nodes, inits, ("B", 64), ("B", 10))


def _cnn(rng, c=8):
    """Mul (input scaling), 2x2 Conv + Relu, 2x2 Conv at stride 2 + Relu, GlobalAveragePool,
    Flatten, Gemm, Softmax on [B, 1, 8, 8]."""
    inits = {"k": np.full((1, 1, 1, 1), 4.0), "c1.w": rng.normal(0, 0.5, (c, 1, 2, 2)),
             "c1.b": rng.normal(0, 0.1, c), "c2.w": rng.normal(0, 0.3, (c, c, 2, 2)),
             "fc.w": rng.normal(0, 0.5, (5, c)), "fc.b": rng.normal(0, 0.1, 5)}
    nodes = [helper.make_node("Mul", ["x", "k"], ["xk"], name="gain"),
             helper.make_node("Conv", ["xk", "c1.w", "c1.b"], ["c1"], name="c1",
                              kernel_shape=[2, 2]),
             helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             helper.make_node("Conv", ["r1", "c2.w"], ["c2"], name="c2", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="r2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc",
                              transB=1),
             helper.make_node("Softmax", ["logits"], ["y"], name="probs", axis=1)]
    return _model(nodes, inits, ("B", 1, 8, 8), ("B", 5))


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.asarray(x, np.float32)})[0]


def _one_line_error(capsys, argv, match):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("s4: error: ") and match in err, err


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_host_head_and_tail_match_onnxruntime(kind, tmp_path, capsys):
    rng = np.random.default_rng(SEED)
    if kind == "mlp":
        model, shape, first = _mlp(rng), (64,), "node 'center' (Sub)"
        head, tail = "center (Sub), scale (Div)", "probs (Softmax)"
    else:
        model, shape, first = _cnn(rng), (1, 8, 8), "node 'gain' (Mul)"
        head, tail = "gain (Mul)", "probs (Softmax)"
    d = str(tmp_path)
    onnx.save(model, f"{d}/m.onnx")
    np.save(f"{d}/calib.npy", rng.uniform(0, 1, (256, *shape)).astype(np.float32))
    x = rng.uniform(0, 1, (64, *shape)).astype(np.float32)
    np.save(f"{d}/x.npy", x)
    argv = ["compile", f"{d}/m.onnx", "--sparsity", "1", "--calib", f"{d}/calib.npy",
            "--input-shape", "x".join(map(str, (1, *shape))), "-o", f"{d}/m.s4"]
    # without --host-fallback the node is refused, naming it
    _one_line_error(capsys, argv, first)
    assert main([*argv, "--host-fallback"]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + out)
    assert "host fallback, before the device" in out and head in out
    assert "host fallback, after the device ('logits' out): " + tail in out
    err = re.search(r"quantization error on 256 calibration inputs, against onnxruntime in "
                    r"float: max abs (\S+) \((\S+) % of the output range (\S+)\), top-1 "
                    r"agreement (\S+) %", out)
    assert err, out
    assert float(err[2]) < 5 and float(err[4]) >= 90
    mf = model_file.load(f"{d}/m.s4")
    assert mf.host is not None and mf.host.tail_nodes == [["probs", "Softmax"]]
    assert main(["run", f"{d}/m.s4", "--input", f"{d}/x.npy", "-o", f"{d}/y.npy"]) == 0
    y, ref = np.load(f"{d}/y.npy"), _ort(model, x)
    assert y.shape == ref.shape
    assert np.allclose(y.sum(1), 1, atol=1e-5)          # the Softmax ran
    rel = np.abs(y - ref).max() / (ref.max() - ref.min())
    agree = (y.argmax(1) == ref.argmax(1)).mean()
    with capsys.disabled():
        print(f"{kind} with host head and tail, {len(x)} inputs: max error {rel:.4f} of the "
              f"output range, top-1 agreement {agree:.4f}")
    assert rel < 0.05 and agree >= 0.9
    # the head alone is the normalization: without it the device part would see other inputs
    dev_in = mf.host.run_head(x)
    assert dev_in.shape == x.shape and not np.allclose(dev_in, x)
    capsys.readouterr()
    assert main(["inspect", f"{d}/m.s4"]) == 0
    out = capsys.readouterr().out
    assert head in out and tail in out and "on the device: " in out
    shape_text = "x".join(map(str, (4, *shape)))
    assert main(["inspect", f"{d}/m.onnx", "--input-shape", shape_text, "--host-fallback"]) == 0
    out = capsys.readouterr().out
    assert head in out and tail in out and "total" in out
    _one_line_error(capsys, ["inspect", f"{d}/m.onnx", "--input-shape", shape_text], first)


def test_host_fallback_refuses_a_node_between_device_layers(tmp_path, capsys):
    rng = np.random.default_rng(SEED)
    d = str(tmp_path)
    onnx.save(_mlp(rng, middle=True), f"{d}/m.onnx")
    _one_line_error(capsys, ["compile", f"{d}/m.onnx", "--sparsity", "1", "--input-shape",
                             "1x64", "--host-fallback", "-o", f"{d}/m.s4"],
                    "node 'mid_softmax' (Softmax): operator not supported on the device, "
                    "between device layers 'fc1' and 'fc2'; host fallback only handles nodes "
                    "before the first and after the last device layer")


def test_host_fallback_refuses_a_cut_of_two_tensors(tmp_path, capsys):
    """A device part that reads both the host head's output and the graph input."""
    rng = np.random.default_rng(SEED)
    nodes = [helper.make_node("Softmax", ["x"], ["s"], name="sm", axis=1),
             helper.make_node("Add", ["s", "x"], ["a"], name="mix"),
             helper.make_node("MatMul", ["a", "w"], ["y"], name="fc")]
    onnx.save(_model(nodes, {"w": rng.normal(size=(64, 10))}, ("B", 64), ("B", 10)),
              tmp_path / "m.onnx")
    _one_line_error(capsys, ["compile", str(tmp_path / "m.onnx"), "--sparsity", "1",
                             "--input-shape", "1x64", "--host-fallback", "-o",
                             str(tmp_path / "m.s4")],
                    "host fallback: the host head and the device part must meet in one "
                    "tensor, not 2 (s, x)")


def test_split_of_a_supported_graph_is_none():
    rng = np.random.default_rng(SEED)
    inits = {"w": rng.normal(size=(10, 64))}
    model = _model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], inits,
                   ("B", 64), ("B", 10))
    assert split_graph(model)[0] is None
