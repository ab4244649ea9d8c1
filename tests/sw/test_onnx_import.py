"""ONNX import, the .s4 file and the s4 compile / run / inspect commands, against
onnxruntime in float."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from s4accel.base.config import load_config
from s4accel.cli import main
from s4accel.sim.workloads.digits import load_digits_split, train_mlp
from s4accel.sim.workloads.execute import run_on_model
from s4accel.sw import model_file
from s4accel.sw.onnx_import import OnnxImportError, compile_onnx, export_onnx, import_onnx

SEED = 24


def _graph(nodes, inits, in_shape=("B", 64), out_shape=("B", 10), opset=17):
    g = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _mlp(rng, opset=17):
    """64-128-10: MatMul + bias Add + Relu, then Gemm (transB = 0), behind a Flatten of an
    [B, 1, 8, 8] input."""
    inits = {"w1": rng.normal(0, 0.125, (64, 128)), "b1": rng.normal(0, 0.1, 128),
             "w2": rng.normal(0, 0.09, (128, 10)), "b2": rng.normal(0, 0.1, 10)}
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "w1"], ["h0"], name="fc1"),
             helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
             helper.make_node("Relu", ["h1"], ["h2"], name="relu1"),
             helper.make_node("Gemm", ["h2", "w2", "b2"], ["y"], name="fc2")]
    return _graph(nodes, inits, in_shape=("B", 1, 8, 8), opset=opset)


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.asarray(x, np.float32)})[0]


def _device(compiled, x):
    xq = compiled.quantize_input(x)
    y, _ = run_on_model("fpga", compiled, xq)
    assert np.array_equal(y, compiled.reference(xq))
    return compiled.dequantize_output(y)


@pytest.mark.parametrize("opset", [13, 20])
def test_random_mlp_matches_onnxruntime(opset):
    rng = np.random.default_rng(SEED)
    model = _mlp(rng, opset)
    calib, x = rng.normal(0, 1, (256, 1, 8, 8)), rng.normal(0, 1, (256, 1, 8, 8))
    graph, compiled = compile_onnx(model, calib, 1, input_shape=(1, 1, 8, 8))
    assert [(la.weight.shape, la.relu) for la in graph.layers] == [((128, 64), True),
                                                                   ((10, 128), False)]
    ref = _ort(model, x)
    y = _device(compiled, graph.host_input(x))
    err = np.abs(y - ref).max() / np.abs(ref).max()
    agree = (y.argmax(1) == ref.argmax(1)).mean()
    print(f"random 64-128-10 MLP, opset {opset}: top-1 agreement {agree:.4f}, max error "
          f"{err:.4f} of the output range")
    assert agree >= 0.95
    assert err < 0.1


def test_digits_mlp_exported_matches_onnxruntime():
    x_tr, y_tr, x_te, y_te = load_digits_split(0)
    mlp = train_mlp(x_tr, y_tr, 64, 1, seed=0, epochs=15)
    model = export_onnx(mlp.layers())
    onnx.checker.check_model(model)
    graph, compiled = compile_onnx(model, x_tr, 1, input_shape=(1, 64))
    ref = _ort(model, x_te)
    assert np.allclose(ref, mlp.logits(x_te), atol=1e-4)
    y = _device(compiled, x_te)
    agree = (y.argmax(1) == ref.argmax(1)).mean()
    err = np.abs(y - ref).max() / np.abs(ref).max()
    print(f"digits 64-64-10 MLP ({len(y_te)} test images): top-1 agreement {agree:.4f}, max "
          f"error {err:.4f} of the output range, accuracy device "
          f"{(y.argmax(1) == y_te).mean():.4f} / float {(ref.argmax(1) == y_te).mean():.4f}")
    assert agree >= 0.99


def test_lut_activations_match_onnxruntime(tmp_path):
    """Tanh and Sigmoid after int8 layers run through the device's lookup table; a Relu after
    the last (raw) layer runs on the host."""
    rng = np.random.default_rng(SEED)
    inits = {"w1": rng.normal(0, 0.15, (64, 64)), "b1": rng.normal(0, 0.1, 64),
             "w2": rng.normal(0, 0.2, (48, 64)), "b2": rng.normal(0, 0.1, 48),
             "w3": rng.normal(0, 0.3, (10, 48)), "b3": rng.normal(0, 0.1, 10)}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1"),
             helper.make_node("Tanh", ["h1"], ["a1"], name="tanh1"),
             helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="fc2", transB=1),
             helper.make_node("Sigmoid", ["h2"], ["a2"], name="sig2"),
             helper.make_node("Gemm", ["a2", "w3", "b3"], ["h3"], name="fc3", transB=1),
             helper.make_node("Relu", ["h3"], ["y"], name="relu3")]
    model = _graph(nodes, inits)
    calib, x = rng.normal(0, 1, (256, 64)), rng.normal(0, 1, (256, 64))
    graph, compiled = compile_onnx(model, calib, 1, input_shape=(1, 64))
    assert [la.act for la in compiled.layers] == ["tanh", "sigmoid", None]
    assert [la.params.lut is not None for la in compiled.layers] == [True, True, False]
    assert "ReLU of fc3 (raw int32 output)" in compiled.host_ops
    ref = _ort(model, x)
    y = _device(compiled, x)
    assert (y >= 0).all()
    err = np.abs(y - ref).max() / np.abs(ref).max()
    print(f"64-64(tanh)-48(sigmoid)-10(relu): max error {err:.4f} of the output range")
    assert err < 0.1
    model_file.save(tmp_path / "m.s4", compiled, "fpga")
    loaded = model_file.load(tmp_path / "m.s4", "fpga").model
    xq = compiled.quantize_input(x)
    assert np.array_equal(loaded.reference(xq), compiled.reference(xq))
    assert np.array_equal(loaded.dequantize_output(compiled.reference(xq)), y)
    # the exporter writes the same activations back
    again = import_onnx(export_onnx(graph.layers), input_shape=(2, 64))
    assert [(la.relu, la.act) for la in again.layers] == [(False, "tanh"), (False, "sigmoid"),
                                                           (True, None)]


@pytest.mark.parametrize("op", ["Conv", "Softmax", "LSTM"])
def test_unsupported_op_names_the_node(op):
    rng = np.random.default_rng(SEED)
    inits = {"w": rng.normal(size=(10, 64))}
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node(op, ["h"], ["y"], name="the_node")]
    g = helper.make_graph(nodes, "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(inits["w"].astype(np.float32), "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError, match=f"node 'the_node' \\({op}\\)"):
        import_onnx(m)


def test_dynamic_batch_needs_input_shape():
    model = _mlp(np.random.default_rng(SEED))
    with pytest.raises(OnnxImportError, match="input 'x' has dynamic shape \\[B, 1, 8, 8\\]"):
        import_onnx(model)
    assert import_onnx(model, input_shape=(4, 1, 8, 8)).input_shape == (4, 1, 8, 8)
    with pytest.raises(OnnxImportError, match="does not fit"):
        import_onnx(model, input_shape=(4, 64))


def test_unsupported_opset():
    with pytest.raises(OnnxImportError, match="opset 12 is not supported"):
        import_onnx(_mlp(np.random.default_rng(SEED), opset=12), input_shape=(1, 1, 8, 8))


@pytest.fixture
def s4_file(tmp_path):
    rng = np.random.default_rng(SEED)
    model = _mlp(rng)
    x = rng.normal(0, 1, (64, 1, 8, 8))
    _, compiled = compile_onnx(model, x, 2, input_shape=(1, 1, 8, 8))
    path = tmp_path / "m.s4"
    model_file.save(path, compiled, "fpga", {"input_shape": [1, 1, 8, 8]})
    return path, compiled


def test_s4_file_round_trip(s4_file):
    path, compiled = s4_file
    mf = model_file.load(path, "fpga")
    assert mf.config == load_config("fpga")
    assert mf.info == {"input_shape": [1, 1, 8, 8]}
    xq = compiled.quantize_input(np.random.default_rng(1).normal(size=(8, 64)))
    assert np.array_equal(mf.model.reference(xq), compiled.reference(xq))
    assert mf.model.summary() == compiled.summary()


def test_s4_file_corrupted(s4_file):
    path, _ = s4_file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(model_file.ModelFileError, match="corrupted \\(checksum mismatch"):
        model_file.load(path)
    path.write_bytes(b"not a model")
    with pytest.raises(model_file.ModelFileError, match="not an s4 compiled model"):
        model_file.load(path)


def test_s4_file_of_version_1_still_loads(s4_file):
    """Format 1 (linear chains only, before CNNs) reads as a linear model."""
    path, compiled = s4_file
    data = bytearray(path.read_bytes())
    data[8:12] = (1).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    mf = model_file.load(path, "fpga")
    assert mf.kind == "linear"
    xq = compiled.quantize_input(np.random.default_rng(2).normal(size=(8, 64)))
    assert np.array_equal(mf.model.reference(xq), compiled.reference(xq))


def test_s4_file_for_another_config(s4_file):
    path, _ = s4_file
    with pytest.raises(model_file.ModelFileError,
                       match="compiled for configuration 'fpga', not 'tiny': it needs rows 8"):
        model_file.load(path, "tiny")


def test_cli_compile_run_inspect(tmp_path, capsys):
    rng = np.random.default_rng(SEED)
    model = _mlp(rng)
    onnx.save(model, tmp_path / "m.onnx")
    x = rng.normal(0, 1, (128, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    d = str(tmp_path)
    assert main(["compile", f"{d}/m.onnx", "--sparsity", "1", "--calib", f"{d}/x.npy",
                 "--input-shape", "1x1x8x8", "-o", f"{d}/m.s4"]) == 0
    assert main(["run", f"{d}/m.s4", "--input", f"{d}/x.npy", "-o", f"{d}/y.npy"]) == 0
    y, ref = np.load(tmp_path / "y.npy"), _ort(model, x)
    assert y.shape == ref.shape and (y.argmax(1) == ref.argmax(1)).mean() >= 0.95
    capsys.readouterr()
    assert main(["inspect", f"{d}/m.s4"]) == 0
    out = capsys.readouterr().out
    assert "fc1" in out and "fc2" in out and "MACs sparse" in out and "cycles" in out
    assert main(["inspect", f"{d}/m.onnx", "--input-shape", "8x1x8x8",
                 "--sparsity", "1,8"]) == 0
    assert "total" in capsys.readouterr().out


def _one_line_error(capsys, argv, match):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("s4: error: ") and match in err, err


def test_cli_errors(tmp_path, capsys):
    rng = np.random.default_rng(SEED)
    d = str(tmp_path)
    onnx.save(_mlp(rng), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", rng.normal(0, 1, (16, 1, 8, 8)))
    _one_line_error(capsys, ["compile", f"{d}/m.onnx", "--sparsity", "1", "-o", f"{d}/m.s4"],
                    "input 'x' has dynamic shape")
    inits = {"w": rng.normal(size=(10, 64))}
    conv = _graph([helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
                   helper.make_node("Softmax", ["h"], ["y"], name="probs")], inits)
    onnx.save(conv, tmp_path / "bad.onnx")
    _one_line_error(capsys, ["compile", f"{d}/bad.onnx", "--sparsity", "1", "--input-shape",
                             "1x64", "-o", f"{d}/m.s4"], "node 'probs' (Softmax)")
    _one_line_error(capsys, ["inspect", f"{d}/missing.onnx"], "no such file")
    assert main(["compile", f"{d}/m.onnx", "--sparsity", "1", "--calib", f"{d}/x.npy",
                 "--input-shape", "1x1x8x8", "-o", f"{d}/m.s4"]) == 0
    _one_line_error(capsys, ["run", f"{d}/m.s4", "--config", "tiny", "--input", f"{d}/x.npy",
                             "-o", f"{d}/y.npy"], "compiled for configuration 'fpga'")
    _one_line_error(capsys, ["run", f"{d}/m.s4", "--input", f"{d}/x.npy", "--backend", "uart",
                             "-o", f"{d}/y.npy"], "--backend uart needs --port")
    _one_line_error(capsys, ["run", f"{d}/m.s4", "--input", f"{d}/x.npy", "--backend", "uart",
                             "--port", f"{d}/no-such-port", "-o", f"{d}/y.npy"],
                    "--backend uart on ")
    np.save(tmp_path / "x64.npy", np.zeros((4, 64)))
    _one_line_error(capsys, ["run", f"{d}/m.s4", "--input", f"{d}/x64.npy", "-o",
                             f"{d}/y.npy"], "the model takes [B, 1, 8, 8]")
    data = bytearray((tmp_path / "m.s4").read_bytes())
    data[-5] ^= 1
    (tmp_path / "m.s4").write_bytes(bytes(data))
    _one_line_error(capsys, ["run", f"{d}/m.s4", "--input", f"{d}/x.npy", "-o", f"{d}/y.npy"],
                    "corrupted")
    _one_line_error(capsys, ["inspect", f"{d}/m.s4"], "corrupted")
