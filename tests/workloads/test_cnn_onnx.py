"""CNNs through ONNX: the digits CNN exported and a random ResNet-style graph with
BatchNormalization, imported, quantized (sw/convnet.py), compiled to a .s4 file and run on the
functional device model, against onnxruntime in float; the refusals."""

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from s4accel.cli import main
from s4accel.sim.workloads import cnn
from s4accel.sim.workloads.execute import run_net_on_model
from s4accel.sw import model_file
from s4accel.sw.convnet import QuantNet
from s4accel.sw.onnx_import import ImportedNet, OnnxImportError, compile_onnx, import_onnx

SEED = 2404
#: The trained CNN's levels these tests use: training stops after 16x (a cached run to 32x,
#: `s4 bench model`'s, serves them too).
TRAINED = (1, 2, 4, 8, 16)


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.asarray(x, np.float32)})[0]


def _nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@pytest.fixture(scope="module")
def data():
    return cnn.load_split()


@pytest.fixture(scope="module")
def small(data):
    """A width-12 network (channels not a multiple of 32: the device pads them) trained
    briefly (about 7 s on one core)."""
    x, y, _, _ = data
    return cnn.train(x, y, width=12, seed=0, epochs=6, lr=5e-3, sparsities=(1,), steps=1,
                     step_epochs=1, finetune=0)[1]


def _report(what, y, ref):
    err = float(np.abs(y - ref).max())
    agree = float((y.argmax(1) == ref.argmax(1)).mean())
    print(f"{what}: top-1 agreement with onnxruntime {agree:.4f} on {len(y)} images, max logit "
          f"error {err:.4f} (logits up to {np.abs(ref).max():.2f})")
    return agree, err


def test_small_cnn_through_onnx(small, data, tmp_path):
    """Export -> import gives the float network; the quantized network agrees with
    onnxruntime, is cnn.quantize's integers, and the device program gives them."""
    x_tr, _, x_te, _ = data
    model = cnn.export_onnx(small)
    onnx.checker.check_model(model)
    ref = _ort(model, _nchw(x_te))
    graph = import_onnx(model, input_shape=(1, 1, 16, 16))
    assert isinstance(graph, ImportedNet) and graph.flat_output
    assert graph.layers == ["stem", "b1a", "b1b", "s2a", "s2b", "s2p", "fc"]
    assert np.allclose(graph.host_output(graph.net.forward(graph.host_input(_nchw(x_te)))),
                       ref, atol=1e-4)
    _, net = compile_onnx(model, _nchw(x_tr[:256]), 1, input_shape=(1, 1, 16, 16))
    q = cnn.quantize(small, x_tr[:256], 1)
    xq = net.quantize_input(x_te)
    got = net.forward_int(xq)
    assert np.array_equal(got.reshape(len(xq), -1), q.forward_int(xq))
    agree, err = _report("width-12 CNN, int8 (s = 1)", net.dequantize(got).reshape(len(xq), -1),
                         ref)
    assert agree >= 0.98 and err < 0.15 * np.abs(ref).max()
    # on the device model (8 images; the channels padded to whole banks on the device)
    y, _ = run_net_on_model("fpga", net, xq[:8])
    assert np.array_equal(y, got[:8])


def _resnet(rng, c=8, opset=17, pool=False, maxpool=False):
    """A small random ResNet-style graph on 3 x 12 x 12: a 3x3 stem with BatchNormalization
    (with ``maxpool`` then ResNet's 3x3 MaxPool at stride 2 with padding 1), an identity block
    (Conv-BN-Relu, Conv-BN, Add, Relu), a stride-2 block with a 1x1 projection (Conv with
    bias, then BN), with ``pool`` a 2x2 AveragePool at stride 2, GlobalAveragePool, Flatten
    and a Gemm to 5."""
    inits, nodes = {}, []

    def conv(name, src, cin, cout, k, stride=1, bn=True, relu=False, bias=False):
        inits[f"{name}.w"] = rng.normal(0, np.sqrt(2 / (k * k * cin)), (cout, cin, k, k))
        ins = [src, f"{name}.w"] + ([f"{name}.b"] if bias else [])
        if bias:
            inits[f"{name}.b"] = rng.normal(0, 0.1, cout)
        nodes.append(helper.make_node("Conv", ins, [name], name=name, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4))
        out = name
        if bn:
            for p, v in (("g", rng.uniform(0.5, 1.5, cout)), ("beta", rng.normal(0, 0.2, cout)),
                         ("mean", rng.normal(0, 0.2, cout)), ("var", rng.uniform(0.5, 2, cout))):
                inits[f"{name}.{p}"] = v
            nodes.append(helper.make_node(
                "BatchNormalization", [out] + [f"{name}.{p}" for p in ("g", "beta", "mean",
                                                                         "var")],
                [name + ".bn"], name=name + ".bn", epsilon=1e-5))
            out = name + ".bn"
        if relu:
            nodes.append(helper.make_node("Relu", [out], [name + ".relu"], name=name + ".relu"))
            out = name + ".relu"
        return out

    def add_relu(name, a, b):
        nodes.append(helper.make_node("Add", [a, b], [name], name=name))
        nodes.append(helper.make_node("Relu", [name], [name + ".relu"], name=name + ".relu"))
        return name + ".relu"

    h0 = conv("stem", "x", 3, c, 3, relu=True)
    if maxpool:
        nodes.append(helper.make_node("MaxPool", [h0], ["mp"], name="mp", kernel_shape=[3, 3],
                                      strides=[2, 2], pads=[1, 1, 1, 1]))
        h0 = "mp"
    h1 = add_relu("add1", conv("c1b", conv("c1a", h0, c, c, 3, relu=True), c, c, 3), h0)
    h2 = add_relu("add2", conv("c2b", conv("c2a", h1, c, 2 * c, 3, 2, relu=True), 2 * c,
                               2 * c, 3),
                  conv("proj", h1, c, 2 * c, 1, 2, bias=True))
    if pool:
        nodes.append(helper.make_node("AveragePool", [h2], ["avg"], name="avg",
                                      kernel_shape=[2, 2], strides=[2, 2]))
        h2 = "avg"
    nodes.append(helper.make_node("GlobalAveragePool", [h2], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat"))
    inits["fc.w"] = rng.normal(0, 0.3, (5, 2 * c))
    inits["fc.b"] = rng.normal(0, 0.1, 5)
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["y"], name="fc",
                                  transB=1))
    g = helper.make_graph(
        nodes, "resnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                        ["B", 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 5])],
        [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("opset,pool,maxpool", [(13, False, False), (20, True, False),
                                                 (17, False, True)])
def test_random_resnet_with_batchnorm(opset, pool, maxpool):
    seed = SEED + opset
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    model = _resnet(rng, opset=opset, pool=pool, maxpool=maxpool)
    calib, x = rng.uniform(0, 1, (128, 3, 12, 12)), rng.uniform(0, 1, (64, 3, 12, 12))
    ref = _ort(model, x)
    graph, net = compile_onnx(model, calib, 1, input_shape=(1, 3, 12, 12))
    assert [type(op).__name__ for op in graph.net.ops] == \
        ["Conv"] + ["MaxPool"] * maxpool + ["Conv", "Conv", "Add", "Conv", "Conv", "Conv",
                                            "Add"] + ["AvgPool"] * pool + ["Gap", "Conv"]
    assert [op.relu for op in graph.net.ops if hasattr(op, "relu")] == \
        [True, True, False, True, True, False, False, True, False]
    # BatchNormalization folded: the float network is the graph
    assert np.allclose(graph.host_output(graph.net.forward(graph.host_input(x))), ref,
                       atol=1e-4)
    assert net.host_windows          # 3 channels: the stem's windows come from the host
    xq = net.quantize_input(graph.host_input(x))
    y, _ = run_net_on_model("fpga", net, xq)
    assert np.array_equal(y, net.forward_int(xq))
    agree, err = _report(f"random ResNet-style CNN with BatchNormalization, opset {opset}"
                         + (", AveragePool" if pool else "") + (", MaxPool" if maxpool else ""),
                         graph.host_output(net.dequantize(y)), ref)
    assert agree >= 0.9 and err < 0.1 * np.abs(ref).max()


def _one(node_kw, *, extra_inits=None, in_shape=(1, 3, 8, 8), after=None):
    """A graph x -> Conv (c0) -> [the node under test] -> GAP -> Flatten -> Gemm."""
    rng = np.random.default_rng(SEED)
    inits = {"w0": rng.normal(size=(8, in_shape[1], 3, 3)), "fc": rng.normal(size=(4, 8)),
             **(extra_inits or {})}
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], name="c0", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])]
    nodes.append(helper.make_node(**node_kw))
    last = node_kw["outputs"][0]
    nodes += after or []
    if after:
        last = after[-1].output[0]
    nodes += [helper.make_node("GlobalAveragePool", [last], ["g"], name="gap"),
              helper.make_node("Flatten", ["g"], ["f"], name="flat"),
              helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1)]
    g = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


W1 = {"w1": np.ones((8, 8, 3, 3))}


@pytest.mark.parametrize("node,inits,match", [
    (dict(op_type="MaxPool", inputs=["c0"], outputs=["p"], name="pool", kernel_shape=[2, 2],
          strides=[2, 2], ceil_mode=1), None, "node 'pool' (MaxPool): ceil_mode = 1 is not"),
    (dict(op_type="MaxPool", inputs=["c0"], outputs=["p"], name="pool2", kernel_shape=[3, 3],
          pads=[0, 0, 1, 1]), None, "node 'pool2' (MaxPool): pads [0, 0, 1, 1]: only equal"),
    (dict(op_type="AveragePool", inputs=["c0"], outputs=["p"], name="avg", kernel_shape=[2, 2],
          pads=[1, 1, 1, 1]), None, "node 'avg' (AveragePool): padding is not supported"),
    (dict(op_type="AveragePool", inputs=["c0"], outputs=["p"], name="avg3", kernel_shape=[2, 2],
          strides=[3, 3]), None, "node 'avg3' (AveragePool): stride must be 1 or 2"),
    (dict(op_type="Conv", inputs=["c0", "w1"], outputs=["p"], name="grouped",
          kernel_shape=[3, 3], group=2, pads=[1, 1, 1, 1]), {"w1": np.ones((8, 4, 3, 3))},
     "node 'grouped' (Conv): group = 2"),
    (dict(op_type="Conv", inputs=["c0", "w1"], outputs=["p"], name="dil", kernel_shape=[3, 3],
          dilations=[2, 2], pads=[2, 2, 2, 2]), W1, "node 'dil' (Conv): dilations [2, 2]"),
    (dict(op_type="Conv", inputs=["c0", "w1"], outputs=["p"], name="asym", kernel_shape=[3, 3],
          pads=[0, 0, 1, 1]), W1, "node 'asym' (Conv): pads [0, 0, 1, 1]: only symmetric"),
    (dict(op_type="Conv", inputs=["c0", "w1"], outputs=["p"], name="s3", kernel_shape=[3, 3],
          strides=[3, 3]), W1, "node 's3' (Conv): stride must be 1 or 2, not 3"),
    (dict(op_type="Add", inputs=["c0", "x"], outputs=["p"], name="addx"), None,
     "node 'addx' (Add): a residual Add of the graph input"),
    (dict(op_type="Sigmoid", inputs=["c0"], outputs=["p"], name="sig"), None,
     "node 'sig' (Sigmoid): operator not supported"),
])
def test_unsupported_cnn_nodes_are_refused(node, inits, match):
    in_shape = (1, 8, 8, 8) if node["name"] == "addx" else (1, 3, 8, 8)
    extra = dict(inits or {})
    if node["name"] == "addx":
        extra["w0"] = np.ones((8, 8, 3, 3))
    with pytest.raises(OnnxImportError, match=match.replace("(", "\\(").replace(")", "\\)")
                       .replace("[", "\\[").replace("]", "\\]")):
        import_onnx(_one(node, extra_inits=extra, in_shape=in_shape))


def test_relu_and_batchnorm_fold_only_into_a_lone_conv():
    # c0 is read by the Relu and by the Add: the Relu cannot fold into c0
    relu = dict(op_type="Relu", inputs=["c0"], outputs=["r"], name="r")
    add = helper.make_node("Add", ["r", "c0"], ["s"], name="s")
    with pytest.raises(OnnxImportError, match="node 'r' \\(Relu\\): a Relu folds only"):
        import_onnx(_one(relu, after=[add]))
    bn = dict(op_type="BatchNormalization", inputs=["r", "g", "b", "m", "v"], outputs=["n"],
              name="bn")
    ones = {k: np.ones(8) for k in "gbmv"}
    with pytest.raises(OnnxImportError, match="node 'bn' \\(BatchNormalization\\): a "
                       "BatchNormalization folds only into the Conv"):
        import_onnx(_one(relu, after=[helper.make_node(**bn)], extra_inits=ones))


def test_cnn_s4_file_round_trip_and_versions(tmp_path):
    rng = np.random.default_rng(SEED)
    model = _resnet(rng, c=4, pool=True)
    calib = rng.uniform(0, 1, (32, 3, 12, 12))
    graph, net = compile_onnx(model, calib, [1, 2, 2, 2, 2, 2, 1], input_shape=(1, 3, 12, 12))
    assert [q.sparsity for q in net.ops if hasattr(q, "sparsity")] == [1, 2, 2, 2, 2, 2, 1]
    path = tmp_path / "r.s4"
    model_file.save(path, net, "fpga", {"input_shape": [1, 3, 12, 12], "flat_output": True})
    mf = model_file.load(path, "fpga")
    assert mf.kind == "convnet" and isinstance(mf.model, QuantNet)
    xq = net.quantize_input(graph.host_input(rng.uniform(0, 1, (8, 3, 12, 12))))
    assert np.array_equal(mf.model.forward_int(xq), net.forward_int(xq))
    assert np.array_equal(mf.model.dequantize(net.forward_int(xq)),
                          net.dequantize(net.forward_int(xq)))
    assert mf.model.summary() == net.summary()
    y, _ = run_net_on_model("fpga", mf.model, xq)      # the loaded network on the device
    assert np.array_equal(y, net.forward_int(xq))
    data = bytearray(path.read_bytes())
    data[8:12] = (5).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(model_file.ModelFileError, match="format version 5; this s4 reads "
                       "versions 1, 2, 3, 4"):
        model_file.load(path)


def test_cli_compile_run_inspect_cnn(tmp_path, capsys):
    rng = np.random.default_rng(SEED)
    model = _resnet(rng, c=4, pool=True, maxpool=True)
    onnx.save(model, tmp_path / "r.onnx")
    x = rng.uniform(0, 1, (16, 3, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    d = str(tmp_path)
    assert main(["compile", f"{d}/r.onnx", "--sparsity", "1", "--calib", f"{d}/x.npy",
                 "--input-shape", "1x3x12x12", "-o", f"{d}/r.s4"]) == 0
    assert "stem" in capsys.readouterr().out
    assert main(["run", f"{d}/r.s4", "--input", f"{d}/x.npy", "-o", f"{d}/y.npy"]) == 0
    y, ref = np.load(tmp_path / "y.npy"), _ort(model, x)
    assert y.shape == ref.shape == (16, 5)
    assert (y.argmax(1) == ref.argmax(1)).mean() >= 0.9
    capsys.readouterr()
    assert main(["inspect", f"{d}/r.s4"]) == 0
    out = capsys.readouterr().out
    for name in ("stem", "mp", "c1a", "c1b", "c2a", "c2b", "proj", "fc", "add1", "avg", "gap"):
        assert f"\n{name} " in out, name
    assert "3x3/2 p1" in out and "2x2/2" in out and "predicted cycles" in out
    assert main(["inspect", f"{d}/r.onnx", "--sparsity", "1,2,2,2,2,2,1", "--input-shape",
                 "8x3x12x12"]) == 0
    assert "MACs sparse" in capsys.readouterr().out
    # one-line errors
    bad = _one(dict(op_type="MaxPool", inputs=["c0"], outputs=["p"], name="pool",
                    kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1))
    onnx.save(bad, tmp_path / "bad.onnx")
    capsys.readouterr()
    assert main(["compile", f"{d}/bad.onnx", "--sparsity", "1", "-o", f"{d}/b.s4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "node 'pool' (MaxPool)" in err, err
    assert main(["compile", f"{d}/r.onnx", "--sparsity", "1,2", "--input-shape", "1x3x12x12",
                 "--calib", f"{d}/x.npy", "-o", f"{d}/b.s4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 sparsity levels for 7 layers" in err, err
    np.save(tmp_path / "x2.npy", x[:, :2])
    assert main(["run", f"{d}/r.s4", "--input", f"{d}/x2.npy", "-o", f"{d}/y.npy"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the model takes [B, 3, 12, 12]" in err, err


@pytest.mark.slow
def test_trained_cnn_through_onnx_matches_onnxruntime(data, tmp_path, capsys):
    """The acceptance: the project's trained CNN (seed 0, dense; cached training) exported,
    `s4 compile --sparsity 1` (its quantization error reported: top-1 agreement >= 99 % on the
    calibration images) and `s4 run` on the model backend over the 449 test images:
    top-1 agreement with onnxruntime >= 99 %, and exactly cnn.quantize's network."""
    x_tr, _, x_te, y_te = data
    p = cnn.train_cached(seed=0, sparsities=TRAINED)[1]
    model = cnn.export_onnx(p)
    ref = _ort(model, _nchw(x_te))
    assert np.allclose(ref, cnn.forward(p, x_te), atol=1e-4, rtol=1e-4)
    onnx.save(model, tmp_path / "cnn.onnx")
    np.save(tmp_path / "calib.npy", _nchw(x_tr[:256]))
    np.save(tmp_path / "x.npy", _nchw(x_te))
    d = str(tmp_path)
    assert main(["compile", f"{d}/cnn.onnx", "--sparsity", "1", "--calib", f"{d}/calib.npy",
                 "--input-shape", "1x1x16x16", "-o", f"{d}/cnn.s4"]) == 0
    out = capsys.readouterr().out
    quant = re.search(r"quantization error on 256 calibration inputs.*top-1 agreement (\S+) %",
                      out)
    assert quant, out
    assert main(["run", f"{d}/cnn.s4", "--input", f"{d}/x.npy", "-o", f"{d}/y.npy"]) == 0
    y = np.load(tmp_path / "y.npy")
    with capsys.disabled():
        print(f"\n  s4 compile: {quant[0]}")
        agree, err = _report("trained digits CNN (seed 0, s = 1) via s4 compile + s4 run", y,
                             ref)
        print(f"  accuracy: onnxruntime {(ref.argmax(1) == y_te).mean():.4f}, device model "
              f"{(y.argmax(1) == y_te).mean():.4f}")
    assert float(quant[1]) >= 99
    assert agree >= 0.99
    assert err < 0.05 * np.abs(ref).max()
    q = cnn.quantize(p, x_tr[:256], 1)
    assert np.allclose(y, q.logits(q.quantize_input(x_te)), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("s", [4, 16])
def test_trained_pruned_cnn_through_onnx(data, s):
    """The trained CNN's pruned snapshots (cached training) exported and compiled with the
    inner convolutions at s (stem and classifier dense, as the project runs them): the same
    integers as cnn.quantize (which the device program gives, test_cnn_program_is_the_integer_
    network), top-1 agreement with onnxruntime >= 99 %."""
    x_tr, _, x_te, _ = data
    p = cnn.train_cached(seed=0, sparsities=TRAINED)[s]
    model = cnn.export_onnx(p)
    ref = _ort(model, _nchw(x_te))
    graph, net = compile_onnx(model, _nchw(x_tr[:256]), [1] + [s] * 5 + [1],
                              input_shape=(1, 1, 16, 16))
    q = cnn.quantize(p, x_tr[:256], s)
    xq = net.quantize_input(x_te)
    got = net.forward_int(xq)
    assert np.array_equal(got.reshape(len(xq), -1), q.forward_int(xq))
    agree, err = _report(f"trained digits CNN (seed 0, s = {s}) via compile_onnx",
                         graph.host_output(net.dequantize(got)), ref)
    assert agree >= 0.99 and err < 0.05 * np.abs(ref).max()
