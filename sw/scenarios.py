"""Driver scenarios shared by the functional-model tests and the RTL testbench, so the same
program bytes run on both backends."""

from __future__ import annotations

import numpy as np

from ..base import golden
from ..base.sparse import pack, prune
from ..hw.cmd.descriptors import ErrorCode, LoadFormat, Opcode, Target, VopOp
from ..hw.vector.vop import softmax_bits
from . import layout
from .driver import DeviceError, Driver
from .program import Allocator, LayerParams, descriptor


def random_layer(rng, info, s, mode, *, m=None, n=None, k=None):
    m = m or int(rng.integers(1, 3 * info.rows + 2))
    n = n or int(rng.integers(1, 3 * info.cols + 2))
    k = k or int(rng.integers(1, 160))
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    packed = pack(prune(rng.integers(-128, 128, (n, k), dtype=np.int8), s), s)
    if mode == "raw":
        params = LayerParams("raw", bias=rng.integers(-(1 << 31), 1 << 31, n))
    else:
        params = int8_params(rng, x, packed)
    return x, packed, params


def int8_params(rng, x, packed, *, lut=True):
    """Random bias, per-channel multiplier and a shift that keeps each channel's largest
    output in int8 range, ReLU and (optionally) a random LUT."""
    n = packed.n
    bias = rng.integers(-(1 << 12), 1 << 12, n)
    peak = np.abs(golden.gemm_raw(x, packed, bias).astype(np.int64)).max(axis=0) + 1
    mult = rng.integers(1 << 14, 1 << 16, n)
    bits = [int(p * u).bit_length() for p, u in zip(peak, mult, strict=True)]
    shift = np.clip(np.array(bits) - 7, 0, 47)
    return LayerParams("int8", bias=bias, mult=mult, shift=shift, relu=True,
                       lut=rng.integers(-128, 128, 256, dtype=np.int8) if lut else None)


def expected(x, packed, params):
    if params.mode == "raw":
        return golden.gemm_raw(x, packed, params.bias)
    return golden.gemm_int8(x, packed, params.bias, params.mult, params.shift,
                            relu=params.relu, lut=params.lut)


async def check_layer(dev: Driver, x, packed, params, label, max_cycles=2_000_000):
    res = await dev.run_layer(x, packed, params, max_cycles=max_cycles)
    exp = expected(x, packed, params)
    bad = np.argwhere(res.y.astype(np.int64) != exp.astype(np.int64))
    assert not len(bad), (f"{label}: {len(bad)} outputs differ from the golden model, first at "
                          f"{tuple(bad[0])}: got {res.y[tuple(bad[0])]}, "
                          f"expected {exp[tuple(bad[0])]}; (row, column, got, expected): "
                          + ", ".join(f"({r}, {c}, {res.y[r, c]}, {exp[r, c]})"
                                      for r, c in bad[:8].tolist()))
    return res


async def check_layer_against_model(dev: Driver, model: Driver, x, packed, params, label,
                                    max_cycles=2_000_000):
    """Run one layer on ``dev`` and on the functional model ``model``: the program bytes
    (descriptors and DRAM images) must be identical and so must the results, bit for bit."""
    mark, mark_m = dev.alloc.top, model.alloc.top
    prog, prog_m = dev.program(x, packed, params), model.program(x, packed, params)
    dev.alloc.top, model.alloc.top = mark, mark_m
    assert [bytes(d) for d in prog.descs] == [bytes(d) for d in prog_m.descs], \
        f"{label}: the two backends were given different descriptors"
    assert prog.images == prog_m.images, f"{label}: the two backends got different DRAM images"
    res = await check_layer(dev, x, packed, params, label, max_cycles)
    res_m = await model.run_layer(x, packed, params)
    bad = np.argwhere(res.y != res_m.y)
    assert not len(bad), (f"{label}: {len(bad)} outputs differ from the functional model, first "
                          f"at {tuple(bad[0])}")
    for key in ("perf_dma_rd_bytes", "perf_dma_wr_bytes", "perf_desc"):
        assert res.counters[key] == res_m.counters[key], \
            f"{label}: {key} is {res.counters[key]} on the RTL, {res_m.counters[key]} on the model"
    return res


def random_chain(rng, info, *, layers=None, m=None, last_mode=None, max_chunk=None,
                 tries=200):
    """A random chain of layers that runs on chip (:func:`~.chain.chain_program` accepts it):
    ``(x, [(packed, params), ...])``. Every layer but the last is int8 (ReLU, one LUT shared
    by the layers that use it); the last is raw or int8. Sparsities, widths (odd ones
    included) and M are drawn from ``rng``."""
    from .chain import NotOnChip, chain_program
    from .program import Allocator
    lut = rng.integers(-128, 128, 256, dtype=np.int8)
    for _ in range(tries):
        n_layers = layers or int(rng.integers(2, 4))
        mm = m or int(rng.integers(1, 6 * info.rows + 2))
        dims = [int(rng.integers(1, 100))] + [int(rng.integers(1, 80)) for _ in range(n_layers)]
        x = rng.integers(-128, 128, (mm, dims[0]), dtype=np.int8)
        chain, h = [], x
        for i in range(n_layers):
            s = int(rng.choice(info.sparsities))
            packed = pack(prune(rng.integers(-128, 128, (dims[i + 1], dims[i]), dtype=np.int8),
                                s), s)
            mode = (last_mode or str(rng.choice(["raw", "int8"]))) if i == n_layers - 1 \
                else "int8"
            if mode == "raw":
                params = LayerParams("raw", bias=rng.integers(-(1 << 31), 1 << 31, dims[i + 1]))
            else:
                params = int8_params(rng, h, packed, lut=False)
                if rng.random() < 0.3:
                    params.lut = lut
                h = expected(h, packed, params)
            chain.append((packed, params))
        try:
            chain_program(info, x, chain, Allocator(0, 1 << 40), max_chunk=max_chunk)
        except NotOnChip:
            continue
        return x, chain
    raise RuntimeError(f"no random chain fits this device in {tries} tries ({info})")


def random_conv(rng, info, *, ksize=None, stride=None, pad=None, s=None, mode=None,
                n_img=None, h=None, w=None, c=None, cout=None):
    """A random convolution that :func:`~.conv.conv_program` runs: ``(x, packed, params,
    geometry)`` with ``geometry = dict(ksize, stride, pad)``; any field may be fixed."""
    from .conv import conv_weights
    k = ksize or int(rng.integers(1, 8))
    st = stride or int(rng.integers(1, 3))
    p = int(rng.integers(0, k)) if pad is None else pad
    s = s or int(rng.choice(info.sparsities))
    mode = mode or ("int8" if rng.random() < 0.75 else "raw")
    n_img = n_img or int(rng.integers(1, info.rows + 2))
    h = h or int(rng.integers(max(1, k - 2 * p), k + 4))
    w = w or int(rng.integers(max(1, k - 2 * p), k + 4))
    c = c or int(rng.choice([1, 3, 8, 32, 40]))
    cout = cout or int(rng.integers(1, 2 * info.cols + 3))
    x = rng.integers(-128, 128, (n_img, h, w, c), dtype=np.int8)
    wk = conv_weights(rng.integers(-128, 128, (cout, k, k, c), dtype=np.int8))
    packed = pack(prune(wk, s), s)
    if mode == "raw":
        params = LayerParams("raw", bias=rng.integers(-(1 << 31), 1 << 31, cout))
    else:
        params = int8_params(rng, _conv_cols(x, k, st, p), packed)
    return x, packed, params, {"ksize": k, "stride": st, "pad": p}


def conv_cases(rng, info, *, kernels=(1, 3, 5, 7), strides=(1, 2)):
    """Random convolutions for every kernel size and stride, each with ``pad = k // 2``
    (padding at all four borders), a few bands (``max_band``; interior bands start with
    ``top = 0``) and an image of a few more rows and columns than the kernel: ``[(x, packed,
    params, geometry, max_band), ...]``. Where int8 output does not fit the device (a bank of
    channel tiles' weights over half the weight scratchpad, as for 7x7 on ``tiny``), the case
    is raw, and sparser if it must be."""
    from .conv import conv_program
    from .program import Allocator
    out = []
    for k in kernels:
        for st in strides:
            for attempt in range(40):
                mode = "int8" if attempt < 10 else "raw"
                s = None if attempt < 20 else max(info.sparsities)
                case = random_conv(rng, info, ksize=k, stride=st, pad=k // 2, mode=mode, s=s,
                                   h=int(rng.integers(k, k + 4)), w=int(rng.integers(k, k + 3)),
                                   c=int(rng.choice([3, 32, 40] if attempt < 30 else [3])))
                band = int(rng.integers(1, 3))
                try:
                    conv_program(info, case[0], case[1], case[2], Allocator(0, 1 << 40),
                                 max_band=band, **case[3])
                except ValueError:
                    continue
                out.append((*case, band))
                break
            else:
                raise ValueError(f"no {k}x{k} stride {st} convolution fits this device")
    return out


def pool_cases(rng, info, *, kernels=(2, 3, 5), strides=(1, 2)):
    """Random max poolings for every window size and stride, padding drawn from ``0 ..
    k - 1`` (every border where it is not 0), a few bands, channel counts that fill one bank,
    part of one and two: ``[(x, geometry, max_band), ...]``, int8 NHWC ``x``."""
    from .conv import pool_program
    out = []
    for k in kernels:
        for st in strides:
            for attempt in range(40):
                pad = int(rng.integers(0, k))
                h, w = int(rng.integers(k, k + 4)), int(rng.integers(k, k + 3))
                c = int(rng.choice([3, 32, 40] if attempt < 20 else [3]))
                n = int(rng.integers(1, info.rows + 2))
                x = rng.integers(-128, 128, (n, h, w, c), dtype=np.int8)
                geo, band = {"ksize": k, "stride": st, "pad": pad}, int(rng.integers(1, 3))
                try:
                    pool_program(info, x, Allocator(0, 1 << 40), max_band=band, **geo)
                except ValueError:
                    continue
                out.append((x, geo, band))
                break
            else:
                raise ValueError(f"no {k}x{k} stride {st} max pooling fits this device")
    return out


async def check_pool_against_model(dev: Driver, model: Driver, x, geometry, label, *,
                                   max_band=None, max_cycles=4_000_000):
    """Max pooling (:func:`~.conv.pool_program`, ``GemmBody.pool``) on ``dev`` and on the
    functional ``model``: both must equal :func:`golden.maxpool_nhwc` bit for bit."""
    want = golden.maxpool_nhwc(x, geometry["ksize"], geometry["stride"], geometry["pad"])
    for name, d in (("device", dev), ("model", model)):
        r = await d.run_pool(x, max_band=max_band, max_cycles=max_cycles, **geometry)
        if r.y.shape != want.shape or not np.array_equal(r.y, want):
            bad = int((r.y != want).sum()) if r.y.shape == want.shape else want.size
            raise AssertionError(f"{label}: {name}: {bad} of {want.size} outputs differ from "
                                 f"the golden model ({geometry}, band {max_band})")
        if name == "device":
            got = r
    return got


def vop_expected(op, a, b, params) -> np.ndarray:
    """What a VOP gives for the rows of ``a`` (and ``b``): the golden functions of
    :mod:`s4accel.base.vector` called directly (not ``hw/vector/vop.py``), in the form
    :func:`~.vop.vop_decode` returns."""
    from ..base import vector as V
    from ..hw.cmd.descriptors import VopOp
    op = VopOp(op)
    p = {"mask_n": 0, "relu": 0, "wide": 0, "shift": 0, "mult": 0, "mult_b": 0, "u_mult": 0,
         "u_shift": 0, "ln": None, **params}
    n = a.shape[1]
    mask = (np.broadcast_to(np.arange(n) < p["mask_n"], a.shape) if p["mask_n"] else None)
    bits = 16 if p["wide"] else 8
    if op == VopOp.ADD:
        return V.residual_add(a, b, p["mult"], p["mult_b"], p["shift"], out_bits=bits,
                              relu=bool(p["relu"]))
    if op == VopOp.MUL:
        return V.elementwise_mul(a, b, p["mult"], p["shift"], relu=bool(p["relu"]))
    if op == VopOp.GELU:
        return V.gelu(a, V.GeluParams(p["u_mult"], p["u_shift"], p["mult"], p["shift"]))
    if op == VopOp.SOFTMAX:
        # (the fields' meaning written out here, not vop.softmax_bits: independent of hw/)
        return V.softmax(a, p["mult"], p["shift"], mask,
                         out_bits=16 if p["wide"] else 7 if p["relu"] else 8)
    if op == VopOp.LAYERNORM:
        return V.layernorm(a, p["ln"])
    if op == VopOp.ROW_MAX:
        return V.row_max(a, mask)
    return V.row_sum(a, mask)


def vop_cases(rng, info, *, m=None, max_n=None):
    """VOPs of every operation on random rows and the extremes (all-equal rows, rows with one
    large value, saturating sums, masked positions, a row of one element, whole and partial
    banks, 16-bit results, in place): ``[(label, op, a, b, params, in_place), ...]``."""
    from ..base import vector as V
    from .vop import VOP_OPS
    R = info.rows
    max_n = min(max_n or 96, info.vec_max_row)
    cases = []

    def rows(n, kind, mm=None):
        mm = mm or m or int(rng.integers(1, 2 * R + 1))
        x = rng.integers(-128, 128, (mm, n), dtype=np.int8)
        if kind == "equal":
            x[:] = rng.integers(-128, 128, (mm, 1), dtype=np.int8)
        elif kind == "peak":
            x = rng.integers(-20, 21, (mm, n), dtype=np.int8)
            x[np.arange(mm), rng.integers(0, n, mm)] = 127
        elif kind == "extreme":
            x = rng.choice(np.array([-128, 127], np.int8), (mm, n))
        return x

    for op in VOP_OPS:
        for kind in ("random", "equal", "peak", "extreme"):
            n = int(rng.choice([1, 31, 32, 33, max_n, int(rng.integers(2, max_n + 1))]))
            if op == VopOp.LAYERNORM:
                n = max(n, 2)
            a = rows(n, kind)
            b = rows(n, kind if kind != "equal" else "random", len(a)) \
                if op in (VopOp.ADD, VopOp.MUL) else None
            p = {}
            if op == VopOp.ADD:
                # "extreme": multipliers that saturate every sum
                p = {"mult": int(rng.integers(1 << 14, 1 << 16)) if kind == "extreme" else
                     int(rng.integers(1, 1 << 16)), "mult_b": int(rng.integers(1, 1 << 16)),
                     "shift": int(rng.integers(8, 17)), "relu": int(rng.integers(0, 2)),
                     "wide": int(rng.integers(0, 2))}
                if rng.integers(0, 2):      # per channel (chan): each channel its own
                    lo = 1 << 14 if kind == "extreme" else 1
                    p.update(mult=rng.integers(lo, 1 << 16, n),
                             mult_b=rng.integers(1, 1 << 16, n),
                             shift=rng.integers(8, 17 + 8 * p["wide"], n))
            elif op == VopOp.MUL:
                p = {"mult": int(rng.integers(1, 1 << 16)), "shift": int(rng.integers(12, 24)),
                     "relu": int(rng.integers(0, 2))}
            elif op == VopOp.GELU:
                g = V.gelu_params(float(rng.uniform(0.01, 0.05)), float(rng.uniform(0.01, 0.05)))
                p = {"u_mult": g.u_mult, "u_shift": g.u_shift, "mult": g.mult, "shift": g.shift}
            elif op == VopOp.LAYERNORM:
                # int8 rows, or int16 ones (a residual sum) half the time, with an in_shift;
                # "extreme": gammas that saturate the output; "equal": eps 0 (variance 0)
                if rng.integers(0, 2):
                    noise = 0 if kind == "equal" else rng.integers(-128, 128, a.shape)
                    a = (a.astype(np.int16) * int(rng.integers(1, 257)) + noise).astype(np.int16)
                    if kind == "extreme":
                        a = rng.choice(np.array([-32768, 32767], np.int16), a.shape)
                    in_shift = int(rng.integers(0, 4))
                else:
                    in_shift = int(rng.integers(0, 2))
                gain = 8.0 if kind == "extreme" else 1.0
                # gammas from 1e-3 to 2: per-channel shifts up to the 40-bit bias's limit
                gamma = 10.0 ** rng.uniform(-3, 0.3, n) * rng.choice([-1.0, 1.0], n) * gain
                beta = rng.normal(0.0, 0.5, n)
                p = {"ln": V.layernorm_params(
                    float(rng.uniform(0.005, 0.1)), gamma, beta,
                    float(rng.uniform(0.02, 0.06)), in_shift=in_shift, bias_bits=40,
                    eps=0.0 if kind == "equal" else float(rng.choice([1e-12, 1e-5, 1e-2])))}
            else:
                mm, sh = V.softmax_params(float(rng.uniform(0.02, 0.5)))
                bits = int(rng.choice([7, 8, 16]))      # 7: relu (P V's int8 operand)
                p = {"mult": mm, "shift": sh, "mask_n": int(rng.integers(0, n + 1)),
                     "wide": int(bits == 16), "relu": int(bits == 7)}
            in_place = bool(rng.integers(0, 2)) and not (op == VopOp.ADD and p.get("wide"))

            width = (f" {softmax_bits(p['wide'], p['relu'])}-bit" if op == VopOp.SOFTMAX
                     else "")
            if op == VopOp.ADD and np.ndim(p["mult"]):
                width = " per channel"
            cases.append((f"{op.name} {kind} n={n}{' int16' if a.dtype == np.int16 else ''}"
                           f"{width}",
                          op, a, b, p, in_place))
    return cases


async def check_vop_against_model(dev: Driver, model: Driver, label, op, a, b, params,
                                  in_place=False, max_cycles=2_000_000):
    """One VOP (:func:`~.vop.vop_program`) on ``dev`` and on the functional ``model``: both
    must equal :func:`vop_expected` bit for bit. Returns the device's result."""
    from .vop import vop_decode, vop_program
    want = vop_expected(op, a, b, params)
    runs = await _on_both(dev, model, lambda d: vop_program(
        d.info, a, b, op=op, alloc=d.alloc, in_place=in_place, **params), max_cycles)
    for name, r in runs.items():
        y = vop_decode(r.y, op, a.shape[1], wide=params.get("wide", 0))[:a.shape[0]]
        if y.shape != want.shape or not np.array_equal(y, want):
            bad = int((y != want).sum()) if y.shape == want.shape else want.size
            raise AssertionError(f"{label}: {name}: {bad} of {want.size} results differ from "
                                 f"the golden model ({params}, in place {in_place})")
    return runs["device"]


async def _on_both(dev: Driver, model: Driver, build, max_cycles) -> dict:
    """Run the program ``build(driver)`` makes on ``dev`` and on the functional ``model``,
    each driver's DRAM allocation given back afterwards: ``{"device": result, "model":
    result}``."""
    runs = {}
    for name, d in (("device", dev), ("model", model)):
        mark = d.alloc.top
        try:
            runs[name] = await d.run_program(build(d), max_cycles)
        finally:
            d.alloc.top = mark
    return runs


def to_wgt_cases(rng, info, *, quick=False):
    """TO_WGT programs (:func:`~.vop.to_wgt_program`) to check: both orientations, token
    counts that are and are not whole row tiles, ``n`` past a bank and under a channel tile,
    each with a LOAD into WGT racing the copy (raw, and the packed format through the
    unpacker). Returns ``(label, x, a, transpose, w2, w2_fmt)`` tuples."""
    R = info.rows
    shapes = [(R + 1, 40, 3), (3 * R, 33, R + 2), (1, 1, 1), (2 * R - 1, 50, 5)]
    if quick:
        shapes = shapes[:1]
    cases = []
    for L, n, m in shapes:
        for transpose in (1, 0):
            x = rng.integers(-128, 128, (L, n), dtype=np.int8)
            k = L if transpose else n
            a = rng.integers(-128, 128, (m, k), dtype=np.int8)
            w2 = rng.integers(-128, 128, (int(rng.integers(1, 3 * info.cols)), k),
                              dtype=np.int8)
            fmt = LoadFormat.VALUES if (L + transpose) % 2 else LoadFormat.RAW
            label = f"TO_WGT {'V (x^T)' if transpose else 'K (x)'} {L}x{n}, a {m}x{k}"
            cases.append((label, x, a, transpose, w2, fmt))
    return cases


async def check_to_wgt_against_model(dev: Driver, model: Driver, label, x, a, transpose, w2,
                                     w2_fmt, max_cycles=2_000_000):
    """One :func:`~.vop.to_wgt_program` on ``dev`` and on the functional ``model``: the GEMM
    on the copy must equal numpy's ``a @ x`` (``transpose``) or ``a @ x^T`` and the GEMM on
    the racing LOAD's weights ``a @ w2^T``, exactly. Returns the device's result."""
    from .vop import to_wgt_program
    R, C = dev.info.rows, dev.info.cols
    a64, x64 = a.astype(np.int64), x.astype(np.int64)
    want1 = a64 @ (x64 if transpose else x64.T)
    want2 = a64 @ w2.astype(np.int64).T
    n1 = x.shape[1] if transpose else -(-x.shape[0] // R) * R
    j1 = -(-n1 // C) * C
    runs = await _on_both(dev, model, lambda d: to_wgt_program(
        d.info, x, a, transpose=transpose, alloc=d.alloc, w2=w2, w2_fmt=w2_fmt), max_cycles)
    for name, r in runs.items():
        y1, y2 = r.y[:, :want1.shape[1]], r.y[:, j1:j1 + want2.shape[1]]
        for what, y, want in (("the copy", y1, want1), ("the racing load", y2, want2)):
            if not np.array_equal(y, want):
                raise AssertionError(f"{label}: {name}: the GEMM on {what}: "
                                     f"{int((y != want).sum())} of {want.size} results differ")
    return runs["device"]


def attention_case(rng, info, *, quick=False):
    """A multi-head attention (:func:`~.attention.attention_program`) to check: int8 Q, K, V
    of ``H`` heads, ``L`` tokens (not whole row tiles) and ``d`` = 32, the last keys masked,
    scales that spread the scores over the int8 range. Returns ``(label, q, k, v, params,
    mask_n)``."""
    from ..base import vector as V
    h, n = (1, info.rows + 1) if quick else (2, min(3 * info.rows + 3, info.vec_max_row))
    d = 32
    q, k, v = (rng.integers(-128, 128, (h, n, d), dtype=np.int8) for _ in range(3))
    p = V.attention_params(0.02, 0.02, 0.03, 0.08, 0.02, d)
    mask = n - int(rng.integers(0, 3))
    return (f"attention {h} heads, {n} tokens, d {d}, keys < {mask}", q, k, v, p, mask)


async def check_attention_against_model(dev: Driver, model: Driver, label, q, k, v, params,
                                        mask_n, max_cycles=5_000_000):
    """One :func:`~.attention.attention_program` on ``dev`` and on the functional ``model``:
    both must equal :func:`~.attention.attention_reference` (the golden integer attention)
    bit for bit. Returns the device's result."""
    from .attention import attention_program, attention_reference
    want = attention_reference(q, k, v, params, mask_n)
    runs = await _on_both(dev, model, lambda d: attention_program(
        d.info, q, k, v, params, alloc=d.alloc, mask_n=mask_n), max_cycles)
    for name, r in runs.items():
        if r.y.shape != want.shape or not np.array_equal(r.y, want):
            bad = int((r.y != want).sum()) if r.y.shape == want.shape else want.size
            raise AssertionError(f"{label}: {name}: {bad} of {want.size} context values "
                                 f"differ from the golden model")
    return runs["device"]


#: Encoder layers the RTL runs (issue 22): (tokens, hidden, heads, FFN) per configuration;
#: ``fpga``'s is MiniLM's layer at 32 tokens, ``tiny``'s what its 8 KiB of ACT holds.
ENCODER_SHAPES = {"tiny": (16, 64, 2, 64), "fpga": (32, 384, 12, 1536)}


def encoder_case(rng, info, s, *, shape=None, layers=1):
    """``layers`` random float encoder layers (:func:`~.encoder.random_layer`), each
    calibrated on the float outputs of the ones before over random inputs and compiled at
    sparsity ``s``; an int8 input, the last key masked. ``shape``: ``(L, hidden, heads,
    ffn)``, default :data:`ENCODER_SHAPES`'s for the device's rows and columns. Returns
    ``(label, layer or list of layers, x, mask_n)``."""
    from .encoder import calibrate, compile_layer, float_layer, random_layer
    if shape is None:
        shape = ENCODER_SHAPES["tiny" if info.rows * info.cols <= 8 else "fpga"]
    L, D, H, F = shape
    xs = [rng.normal(0, 1, (L, D)) for _ in range(3)]
    x0 = xs[0]
    out, in_scale = [], None
    for _ in range(layers):
        w = random_layer(rng, D, H, F)
        out.append(compile_layer(w, calibrate(w, xs), s, in_scale=in_scale))
        in_scale = out[-1].out_scale
        xs = [float_layer(w, t) for t in xs]
    x = np.clip(np.round(x0 / np.asarray(out[0].in_scale)), -128, 127).astype(np.int8)
    what = f"{layers} encoder layers" if layers > 1 else "encoder layer"
    return (f"{what} {L} x {D}, {H} heads, FFN {F}, s={s}", out if layers > 1 else out[0], x,
            L - 1)


async def check_encoder_against_model(dev: Driver, model: Driver, label, layers, x, mask_n,
                                      max_cycles=50_000_000):
    """One :func:`~.encoder.encoder_program` (one layer or a list) on ``dev`` and on the
    functional ``model``: both must equal :meth:`~.encoder.IntEncoderLayer.reference` (of
    each layer in turn) bit for bit. Returns the device's result."""
    from .encoder import encoder_program
    want = x
    for layer in (layers if isinstance(layers, list) else [layers]):
        want = layer.reference(want, mask_n)
    runs = await _on_both(dev, model, lambda d: encoder_program(
        d.info, layers, x, alloc=d.alloc, mask_n=mask_n), max_cycles)
    for name, r in runs.items():
        y = r.y[:x.shape[0]]
        if y.shape != want.shape or not np.array_equal(y, want):
            bad = int((y != want).sum()) if y.shape == want.shape else want.size
            raise AssertionError(f"{label}: {name}: {bad} of {want.size} outputs differ from "
                                 f"the golden model")
    return runs["device"]


def random_conv_network(rng, info, *, s=None):
    """A random network of convolutions for :func:`~.conv.network_program`: a 3x3 (or 1x1)
    convolution, a second one (stride 1 or 2), a residual addition of the two as a 1x1 GEMM
    over both side by side (random int8 weights on the whole K), and a last layer whose
    window is the whole map (raw int32, as the CNN's pooling/classifier); small maps and
    channels of whole banks. Returns ``(x, ops, expected)``, ``expected`` the golden model's
    output as the program decodes it."""
    from .conv import ConvOp, conv_reference, conv_weights, nhwc_rows
    s = s or int(rng.choice(info.sparsities))
    n = int(rng.integers(1, info.rows + 2))
    h, w = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    c0 = int(rng.choice([3, 32]))
    c1 = 32
    x = rng.integers(-128, 128, (n, h, w, c0), dtype=np.int8)
    k1 = int(rng.choice([1, 3]))
    st = int(rng.integers(1, 3))

    def layer(name, src_t, src, cin, cout, k, stride, pad, mode, ss):
        wk = conv_weights(rng.integers(-128, 128, (cout, k, k, cin), dtype=np.int8))
        packed = pack(prune(wk, ss), ss)
        if mode == "raw":
            params = LayerParams("raw", bias=rng.integers(-(1 << 20), 1 << 20, cout))
        else:
            params = int8_params(rng, _conv_cols(src_t, k, stride, pad), packed, lut=False)
        op = ConvOp(name, src, packed, params, k, stride, pad)
        return op, conv_reference(src_t, packed, params, ksize=k, stride=stride, pad=pad)

    ops = []
    # the golden model runs on the batch padded to whole chunks with zero images, as the
    # device does (the program's output holds every row of every chunk)
    xf = np.zeros((-(-n // info.rows) * info.rows, h, w, c0), np.int8)
    xf[:n] = x
    op, a = layer("a", xf, "x", c0, c1, k1, 1, k1 // 2, "int8", s)
    ops.append(op)
    op, b = layer("b", a, "a", c1, c1, 3, st, 1, "int8", s)
    ops.append(op)
    if st == 2:      # the residual branch at the same size: a 1x1 stride-2 projection
        op, a2 = layer("p", a, "a", c1, c1, 1, 2, 0, "int8", s)
        ops.append(op)
        pair = ("b", "p")
    else:
        a2, pair = a, ("b", "a")
    cat = np.concatenate([b, a2], axis=3)
    op, y = layer("sum", cat, pair, 2 * c1, c1, 1, 1, 0, "int8", s)
    ops.append(op)
    hh, ww = y.shape[1], y.shape[2]
    k = min(hh, ww)
    op, out = layer("head", y, "sum", c1, int(rng.integers(1, 12)), k, 1, 0, "raw", 1)
    ops.append(op)
    # as the program decodes it: [chunks * ho * wo * rows, cout]
    return x, ops, nhwc_rows(out, info.rows)[:, :out.shape[3]]


def check_network_fits(info, x, ops):
    """``ValueError`` when :func:`~.conv.network_program` cannot place the network."""
    from .conv import network_program
    network_program(info, x, ops, Allocator(0, 1 << 40))


async def check_network_against_model(dev: Driver, model: Driver, x, ops, want, label, *,
                                      max_cycles=8_000_000):
    """Run a network of convolutions (:func:`~.conv.network_program`) on ``dev`` and on the
    functional ``model``: both must give ``want`` bit for bit, with equal MAC counts."""
    from .conv import network_program
    res = []
    for d in (dev, model):
        mark = d.alloc.top
        try:
            res.append(await d.run_program(network_program(d.info, x, ops, d.alloc),
                                           max_cycles))
        finally:
            d.alloc.top = mark
    for name, r in zip(("device", "model"), res):
        if r.y.shape != want.shape or not np.array_equal(r.y, want):
            bad = int((r.y != want).sum()) if r.y.shape == want.shape else want.size
            raise AssertionError(f"{label}: {name}: {bad} of {want.size} outputs differ from "
                                 "the golden model")
    if res[0].counters["perf_mac"] != res[1].counters["perf_mac"]:
        raise AssertionError(f"{label}: MAC counters differ: device "
                             f"{res[0].counters['perf_mac']}, model {res[1].counters['perf_mac']}")
    return res[0]


def conv_expected(x, packed, params, geometry):
    from .conv import conv_reference
    return conv_reference(x, packed, params, **geometry)


async def check_conv_against_model(dev: Driver, model: Driver, x, packed, params, geometry,
                                   label, *, max_band=None, max_cycles=4_000_000):
    """Run a convolution (:func:`~.conv.conv_program`, on-chip windows) on ``dev`` and on the
    functional ``model``: both must equal the golden model bit for bit, and the MAC count
    must agree."""
    want = conv_expected(x, packed, params, geometry)
    got = await dev.run_conv(x, packed, params, max_band=max_band, max_cycles=max_cycles,
                             **geometry)
    ref = await model.run_conv(x, packed, params, max_band=max_band, **geometry)
    for name, r in (("device", got), ("model", ref)):
        if not np.array_equal(r.y, want):
            bad = int((r.y != want).sum())
            raise AssertionError(f"{label}: {name}: {bad} of {want.size} outputs differ from "
                                 f"the golden model ({geometry})")
    if got.counters["perf_mac"] != ref.counters["perf_mac"]:
        raise AssertionError(f"{label}: MAC counters differ: device {got.counters['perf_mac']}"
                             f", model {ref.counters['perf_mac']}")
    return got


def _conv_cols(x, k, stride, pad):
    from .conv import conv_cols
    return conv_cols(x, k, stride, pad)


def chain_expected(x, chain):
    h = x
    for packed, params in chain:
        h = expected(h, packed, params)
    return h


async def check_chain_against_model(dev: Driver, model: Driver, x, chain, label, *,
                                    max_chunk=None, max_cycles=4_000_000):
    """Run a chain (one on-chip program, :func:`~.chain.chain_program`) on ``dev`` and on the
    functional model ``model``: the same program bytes, results bit for bit equal to each
    other and to the golden model, the same byte and descriptor counters."""
    res = await dev.run_chain(x, chain, max_chunk=max_chunk, max_cycles=max_cycles)
    res_m = await model.run_chain(x, chain, max_chunk=max_chunk)
    exp = chain_expected(x, chain)
    for who, r in (("RTL", res), ("functional model", res_m)):
        bad = np.argwhere(r.y.astype(np.int64) != exp.astype(np.int64))
        assert not len(bad), (f"{label}: {who}: {len(bad)} outputs differ from the golden model,"
                              f" first at {tuple(bad[0])}: got {r.y[tuple(bad[0])]}, expected "
                              f"{exp[tuple(bad[0])]}")
    for key in ("perf_dma_rd_bytes", "perf_dma_wr_bytes", "perf_desc", "perf_mac"):
        assert res.counters[key] == res_m.counters[key], \
            f"{label}: {key} is {res.counters[key]} on the RTL, {res_m.counters[key]} on the model"
    return res


def random_gather_chain(rng, info, *, layers=None, tries=200):
    """A random chain (:func:`random_chain`) that :func:`~.chain.gather_chain_program` also
    accepts (every layer but the last int8 on the device, split across the SPUs by output
    channel): ``(x, chain)``."""
    from .chain import gather_chain_program
    for _ in range(tries):
        x, chain = random_chain(rng, info, layers=layers or int(rng.integers(2, 4)))
        try:
            gather_chain_program(info, x, chain, Allocator(0, 1 << 40))
        except ValueError:
            continue
        return x, chain
    raise ValueError("no random chain fits the device as a gather chain")


async def check_gather_chain_against_model(dev: Driver, model: Driver, x, chain, label, *,
                                           max_cycles=4_000_000):
    """A chain whose layers are split across the SPUs by output channel and gather their
    inputs through the on-chip L2 (:func:`~.chain.gather_chain_program`) on ``dev`` and on the
    functional ``model``: the same program, results equal to each other and to the golden
    model, the same counters. Returns ``(result, placement)``."""
    from .chain import gather_chain_program
    res = []
    for d in (dev, model):
        mark = d.alloc.top
        try:
            prog = gather_chain_program(d.info, x, chain, d.alloc)
            res.append(await d.run_program(prog, max_cycles))
        finally:
            d.alloc.top = mark
    exp = chain_expected(x, chain)
    for who, r in zip(("RTL", "functional model"), res):
        if r.y.shape != exp.shape or not np.array_equal(r.y, exp):
            bad = int((r.y != exp).sum()) if r.y.shape == exp.shape else exp.size
            raise AssertionError(f"{label}: {who}: {bad} of {exp.size} outputs differ from the "
                                 "golden model")
    for key in ("perf_dma_rd_bytes", "perf_dma_wr_bytes", "perf_desc", "perf_mac"):
        if res[0].counters[key] != res[1].counters[key]:
            raise AssertionError(f"{label}: {key} is {res[0].counters[key]} on the RTL, "
                                 f"{res[1].counters[key]} on the model")
    return res[0], prog.placement


def _dma(addr, nbytes, target=Target.ACT, sram=0, rows=1, stride=None, fmt=0):
    return {"dram_addr": addr, "stride": nbytes if stride is None else stride,
            "row_bytes": nbytes, "rows": rows, "target": target, "sram_addr": sram,
            "fmt": getattr(fmt, "value", fmt)}


def _long_gemm(info):
    """The dense GEMM with the most MAC cycles (about m * n * banks * 32) that fits the
    scratchpads: thousands of cycles on every configuration."""
    best = None
    for banks in (1, 2, 4, 8, 16):
        n = min(info.par_depth, info.wgt_depth // (banks * 32))
        m = min(info.act_depth // banks, info.out_depth // max(1, n * info.rows)) if n else 0
        if n and m and (best is None or m * n * banks > best[0]):
            best = (m * n * banks, {"banks": banks, "m_tiles": m, "n_tiles": n})
    return best[1]


def _conv_gemm():
    """A valid conv GEMM (a 3x3 window over a 4x4 band of one bank a pixel at ACT word 0,
    zero word 20, one output pixel row of 4) for the error cases to break one field of."""
    return {"banks": 9, "m_tiles": 4, "n_tiles": 1, "conv": 1, "ksize": 3, "pad": 1,
            "top": 1, "cbanks": 1, "row_pitch": 4, "in_h": 4, "out_w": 4, "pad_addr": 20}


def _vop():
    """A valid VOP (ADD of two 2 x 64 matrices of 1 row tile: A at ACT word 0, B at 2, the
    result at 4) for the error cases to break one field of."""
    return {"op": VopOp.ADD.value, "n": 64, "m_tiles": 1, "a_addr": 0, "b_addr": 2,
            "out_addr": 4, "mult": 1, "mult_b": 1}


def _ln_vop():
    """A valid LAYERNORM VOP (2 x 64 of 1 row tile, int8: A at ACT word 0, the result at 4,
    the parameters from PAR word 0)."""
    return {"op": VopOp.LAYERNORM.value, "n": 64, "m_tiles": 1, "a_addr": 0, "b_addr": 0,
            "out_addr": 4}


def error_programs(dev: Driver, *, bus_errors=True):
    """(name, expected ErrorCode, descriptors, index of the faulting descriptor) for every
    error the device reports; each program is one bad descriptor after a good NOP.
    ``bus_errors=False`` leaves out the bus-error cases (for backends that cannot inject them)
    and their DRAM."""
    info = dev.info
    bb = info.bus_bytes
    buf = dev.alloc.alloc(4096)
    outside = dev.backend.dram_base + dev.backend.dram_size + 0x1000
    big = info.act_depth * info.rows * 32 + bb
    max_log2s = max(info.sparsities).bit_length() - 1
    nop = descriptor(Opcode.NOP)
    pw = 4 * bb * 8 // layout.packed_word_bits(LoadFormat.PACKED, info.cols)  # words of 4 beats
    cases = [
        ("unknown opcode", ErrorCode.UNKNOWN_OPCODE, [nop, descriptor(13)], 1),
        ("bad field", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.LOAD, dma=_dma(buf, bb + 1))], 1),
        ("bad gemm field", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.GEMM, gemm={"banks": 0, "m_tiles": 1, "n_tiles": 1})], 1),
        ("out of window", ErrorCode.OUT_OF_WINDOW,
         [nop, descriptor(Opcode.LOAD, dma=_dma(outside, bb))], 1),
        ("store out of window", ErrorCode.OUT_OF_WINDOW,
         [nop, descriptor(Opcode.STORE, dma=_dma(outside, bb))], 1),
        ("scratchpad overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.LOAD, dma=_dma(buf, big))], 1),
        ("gemm overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.GEMM, gemm={"banks": info.act_depth + 1, "m_tiles": 1,
                                             "n_tiles": 1})], 1),
        # weight words one past the end at the highest sparsity (one word per bank and tile)
        ("gemm weight overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.GEMM, gemm={
             "banks": 1, "m_tiles": 1, "n_tiles": 1, "log2s": max_log2s,
             "wgt_addr": info.wgt_depth - (32 >> max_log2s) + 1})], 1),
        # packed weight formats (DmaBody.fmt): only on a WGT LOAD, 3 is no format
        ("packed format on an ACT load", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.LOAD, dma=_dma(buf, bb, fmt=LoadFormat.PACKED))], 1),
        ("fmt 3", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.LOAD, dma=_dma(buf, bb, Target.WGT, fmt=3))], 1),
        ("packed format on a store", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.STORE, dma=_dma(buf, bb, fmt=LoadFormat.VALUES))], 1),
        # a packed WGT load's whole words exactly to the end pass; one word further overflows
        ("packed weight overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.LOAD, dma=_dma(buf, 4 * bb, Target.WGT, info.wgt_depth - pw,
                                                fmt=LoadFormat.PACKED)),
          descriptor(Opcode.LOAD, dma=_dma(buf, 4 * bb, Target.WGT, info.wgt_depth - pw + 1,
                                           fmt=LoadFormat.PACKED))], 2),
        # convolution addressing (GemmBody.conv): a zero count, the band one word past the
        # scratchpad, the zero word outside it, results written over the zero word
        ("conv with ksize 0", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.GEMM, gemm={**_conv_gemm(), "ksize": 0})], 1),
        ("conv band overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.GEMM, gemm={**_conv_gemm(), "in_h": 2,
                                             "row_pitch": info.act_depth // 2,
                                             "act_addr": info.act_depth % 2 + 1})], 1),
        ("conv zero word outside", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.GEMM, gemm={**_conv_gemm(), "pad_addr": info.act_depth})],
         1),
        ("conv writes its zero word", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.GEMM, gemm={**_conv_gemm(), "mode": 1, "out_act": 1,
                                             "out_addr": 40, "pad_addr": 40})], 1),
        # max pooling (GemmBody.pool): only with out_act; passes beyond the pixel's channel
        # banks; its output span (a word a channel bank) one word past the scratchpad
        ("pool without out_act", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.GEMM, gemm={**_conv_gemm(), "pool": 1, "mode": 1})], 1),
        ("pool of more banks than a pixel has", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.GEMM, gemm={**_conv_gemm(), "pool": 1, "mode": 1,
                                             "out_act": 1, "out_addr": 40, "n_tiles": 2})], 1),
        ("pool output overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.GEMM, gemm={**_conv_gemm(), "pool": 1, "mode": 1,
                                             "out_act": 1, "out_addr": info.act_depth - 3})],
         1),
        # VOP (VopBody): no empty row or matrix, a TO_WGT's words within WGT (64 columns of
        # one row tile are at least 64 words), a row operation's row
        # within the unit's buffer, shifts up to 47, an output that partly overwrites an input,
        # spans past the ACT depth, a SOFTMAX of 16 and 7 bits; LAYERNORM: 2 channels at
        # least, in_shift up to 31, eps under 2**40, its parameters within PAR, its 16-bit
        # input's 2B words a row; chan: only on an ADD, its parameters within PAR
        *([("to_wgt past the WGT depth", ErrorCode.SCRATCHPAD_OVERFLOW,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "op": VopOp.TO_WGT.value, "wide": 1,
                                              "out_addr": info.wgt_depth - 31})], 1),
           ("to_wgt of no rows", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "op": VopOp.TO_WGT.value,
                                              "m_tiles": 0})], 1),
           ("layernorm of one channel", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_ln_vop(), "n": 1})], 1),
           ("layernorm in_shift over 31", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_ln_vop(), "shift": 32})], 1),
           ("layernorm eps of 2**40", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_ln_vop(), "u_mult": 256})], 1),
           ("layernorm parameters past PAR", ErrorCode.SCRATCHPAD_OVERFLOW,
            [nop, descriptor(Opcode.VOP, vop={
                **_ln_vop(), "b_addr": info.par_depth - 2 * (32 // info.cols) + 1})], 1),
           ("layernorm 16-bit input overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
            [nop, descriptor(Opcode.VOP, vop={**_ln_vop(), "wide": 1,
                                              "a_addr": info.act_depth - 3})], 1),
           ("add chan PAR past the depth", ErrorCode.SCRATCHPAD_OVERFLOW,
            [nop, descriptor(Opcode.VOP, vop={
                **_vop(), "chan": 1, "mult": info.par_depth - 2 * (32 // info.cols) + 1})], 1),
           ("mul with chan", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "op": VopOp.MUL.value, "chan": 1})],
            1),
           ("softmax of 16 and 7 bits at once", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "op": VopOp.SOFTMAX.value, "wide": 1,
                                              "relu": 1})], 1),
           ("vop of empty rows", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "n": 0})], 1),
           ("vop softmax row over the unit's", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "op": VopOp.SOFTMAX.value,
                                              "n": info.vec_max_row + 1})], 1),
           ("vop shift over 47", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "shift": 48})], 1),
           ("vop output overlapping its input", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "op": VopOp.GELU.value,
                                              "out_addr": 1})], 1),
           ("vop output overlapping its second input", ErrorCode.BAD_FIELD,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "out_addr": 3})], 1),
           ("vop second operand overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "b_addr": info.act_depth - 1})], 1),
           ("vop output overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
            [nop, descriptor(Opcode.VOP, vop={**_vop(), "out_addr": info.act_depth - 1})],
            1)] if info.vec_max_row else
          [("vop without a vector unit", ErrorCode.UNKNOWN_OPCODE,
            [nop, descriptor(Opcode.VOP, vop=_vop())], 1)]),
        # a wait no earlier descriptor signals (it would block for ever)
        ("token nobody gives", ErrorCode.TOKEN,
         [nop, descriptor(Opcode.GEMM, wait_prev=1,
                          gemm={"banks": 1, "m_tiles": 1, "n_tiles": 1})], 1),
        # a valid GEMM longer than the watchdog (run_error_case's 2000 cycles)
        ("watchdog", ErrorCode.WATCHDOG, [nop, descriptor(Opcode.GEMM, gemm=_long_gemm(info))],
         1),
    ]
    if info.spus < 16:      # a mask naming only SPUs the device lacks
        cases.insert(3, ("mask of absent SPUs", ErrorCode.BAD_FIELD,
                         [nop, descriptor(Opcode.LOAD, spu_mask=1 << info.spus,
                                          dma=_dma(buf, bb))], 1))
    if bus_errors:
        # DRAM regions inside window 0 that answer SLVERR / DECERR
        slverr, decerr = dev.alloc.alloc(4096), dev.alloc.alloc(4096)
        dev.backend.inject_bus_error(slverr, slverr + 4096, "slverr")
        dev.backend.inject_bus_error(decerr, decerr + 4096, "decerr")
        cases[-1:-1] = [
            ("bus error on load", ErrorCode.BUS_SLVERR,
             [nop, descriptor(Opcode.LOAD, dma=_dma(slverr, 4 * bb))], 1),
            ("bus error on store", ErrorCode.BUS_DECERR,
             [nop, descriptor(Opcode.STORE, dma=_dma(decerr, 4 * bb))], 1),
            # an error response while bursts of the job are still to be issued: the rest is
            # walked as discard chunks (found by s4 fuzz: the walker never stepped again)
            ("bus error on a store of several rows", ErrorCode.BUS_DECERR,
             [nop, descriptor(Opcode.STORE, dma=_dma(decerr, 2 * bb, rows=6, stride=4 * bb))],
             1),
        ]
    return cases


async def run_error_case(dev: Driver, name, code, descs, index, *, good_layer, watchdog=2000,
                         after_error=None):
    """Submit a bad program, check the error (and ``after_error()``, if given, before anything
    else runs), then check a good layer runs correctly."""
    await dev.set_watchdog(watchdog)
    first = None
    try:
        first = dev.ring_base + ((dev._tail) % dev.ring_slots) * 32
        await dev.submit(descs + [descriptor(Opcode.COMPLETE)])
        await dev.wait(200_000)
    except DeviceError as e:
        assert e.code == code, f"{name}: expected {code.name}, got {e}"
        want = dev.ring_base + ((first - dev.ring_base) // 32 + index) % dev.ring_slots * 32
        assert e.desc_addr == want, f"{name}: faulting address {e.desc_addr:#x} != {want:#x}"
    else:
        raise AssertionError(f"{name}: the device reported no error")
    if after_error is not None:
        after_error()
    await dev.set_watchdog(0)
    x, packed, params = good_layer
    await check_layer(dev, x, packed, params, f"good layer after {name}")


async def run_soft_reset_case(dev: Driver, rng):
    """A soft reset in the middle of a job (timed backends): the job is still running 300
    cycles after its hand-over, the device is idle again within 2000 cycles of the reset, and
    the next layer is correct."""
    from . import regs

    b = dev.backend
    x, packed, params = random_layer(rng, dev.info, 1, "raw", m=3 * dev.info.rows,
                                     n=3 * dev.info.cols, k=150)
    prog = dev.program(x, packed, params)
    for addr, data in prog.images:
        await b.mem_write(addr, data)
    await dev.submit(prog.descs)
    await b.wait_irq(300)
    assert (await b.read32(regs.STATUS)) & 1, "the job should still be running"
    await dev.soft_reset()
    start = await b.cycle()
    while (await b.read32(regs.STATUS)) & 0b101 != 0b100:     # idle, not busy
        if await b.cycle() - start > 2000:
            raise AssertionError("the device did not return to idle after a soft reset")
        await b.wait_irq(1)
    await check_layer(dev, *random_layer(rng, dev.info, 8, "int8"), "after soft reset")


# -- the fault specification's cases (docs/faults.md), run on every backend ------------------

async def _run_raw(dev: Driver, descs, max_cycles=400_000):
    """Submit ``descs`` + COMPLETE and wait for the done or error interrupt bit without
    acknowledging it; what the registers show then: ``error``, ``err_code``, ``err_index``
    (ERR_ADDR as a descriptor index from the first one submitted), ``irq`` (done, error),
    ``head`` (RING_HEAD as an index from the first slot), deltas of ``desc`` and ``wr_bytes``
    (PERF_DESC, PERF_DMA_WR_BYTES). The interrupt is acknowledged afterwards."""
    from . import regs
    from .driver import DeviceTimeout

    b = dev.backend
    before = await dev.counters()
    first_slot = dev._tail
    await dev.submit(list(descs) + [descriptor(Opcode.COMPLETE)])
    start = await b.cycle()
    while True:
        irq = await b.read32(regs.IRQ)
        if irq & 3:
            break
        if await b.cycle() - start >= max_cycles:
            raise DeviceTimeout(f"no interrupt within {max_cycles} cycles")
        await b.wait_irq(4096)
        if await b.cycle() == start and not (await b.read32(regs.IRQ)) & 3:
            raise DeviceTimeout("an untimed backend finished without an interrupt")
    status = regs.REGISTERS["STATUS"]
    st = await b.read32(regs.STATUS)
    after = await dev.counters()
    err_addr = await b.read32(regs.ERR_ADDR)
    obs = {"error": status.field("error").get(st),
           "err_code": ErrorCode(status.field("err_code").get(st)).name,
           "err_index": ((err_addr - dev.ring_base) // 32 - first_slot) % dev.ring_slots
           if status.field("error").get(st) else None,
           "irq": irq & 3,
           "head": ((await b.read32(regs.RING_HEAD)) - first_slot) % dev.ring_slots,
           "desc": (after["perf_desc"] - before["perf_desc"]) & 0xFFFFFFFF,
           "wr_bytes": (after["perf_dma_wr_bytes"] - before["perf_dma_wr_bytes"]) & 0xFFFFFFFF}
    await b.write32(regs.IRQ, 3)
    dev._tail = await b.read32(regs.RING_TAIL)
    return obs


def _expect(obs, name, code, index=None, **more):
    """``obs`` shows ``code`` (NONE: no error; STATUS.err_code keeps the last fault's code
    then, so it is not compared) at descriptor ``index``, and ``more``."""
    want = {"error": int(code != ErrorCode.NONE)}
    if code != ErrorCode.NONE:
        want["err_code"] = code.name
    if index is not None:
        want["err_index"] = index
    want.update(more)
    got = {k: obs[k] for k in want}
    assert got == want, f"{name}: expected {want}, got {got} (all: {obs})"


def fault_spec_cases():
    """(name, async case(dev) -> observations) for the rules of docs/faults.md that a random
    program rarely hits: the RTL and the functional model must give the same observations,
    and each case checks what the specification says. A case leaves the device idle, its
    interrupt bits acknowledged; the caller re-opens the driver between cases."""
    from . import regs
    from .driver import CsrBusError

    def dram(dev, nbytes):
        return dev.alloc.alloc(max(nbytes, 64))

    async def first_in_program_order(dev):
        # the LOAD is checked before the GEMM in program order; on the old RTL the GEMM's
        # checks finished first and it was reported
        bb = dev.info.bus_bytes
        outside = dev.backend.dram_base + dev.backend.dram_size + 0x1000
        obs = await _run_raw(dev, [descriptor(Opcode.LOAD, dma=_dma(outside, bb)),
                                   descriptor(Opcode.GEMM, gemm={"banks": 0, "m_tiles": 1,
                                                                 "n_tiles": 1})])
        _expect(obs, "first in program order", ErrorCode.OUT_OF_WINDOW, 0, desc=0, irq=2)
        return obs

    async def earlier_work_completes(dev):
        # a long LOAD and a STORE before a bad GEMM both finish before it is reported
        info = dev.info
        bb = info.bus_bytes
        rows = min(info.act_depth, 64)
        word = info.rows * 32
        src = dram(dev, rows * word)
        dst = dram(dev, 4 * bb)
        await dev.backend.mem_write(dst, bytes(range(256))[:4 * bb] * 1)
        obs = await _run_raw(dev, [
            descriptor(Opcode.LOAD, dma=_dma(src, word, rows=rows)),
            descriptor(Opcode.STORE, dma=_dma(dst, 4 * bb)),
            descriptor(Opcode.GEMM, gemm={"banks": 0, "m_tiles": 1, "n_tiles": 1})])
        _expect(obs, "earlier work completes", ErrorCode.BAD_FIELD, 2, desc=2,
                wr_bytes=4 * bb)
        return obs

    async def nothing_after_runs(dev):
        bb = dev.info.bus_bytes
        dst = dram(dev, 4 * bb)
        pattern = bytes((7 * i + 3) & 0xFF for i in range(4 * bb))
        await dev.backend.mem_write(dst, pattern)
        obs = await _run_raw(dev, [
            descriptor(Opcode.LOAD, dma=_dma(dst, bb + 1 if bb > 1 else 3)),
            descriptor(Opcode.STORE, dma=_dma(dst, 4 * bb))])
        _expect(obs, "nothing after runs", ErrorCode.BAD_FIELD, 0, desc=0, wr_bytes=0)
        assert await dev.backend.mem_read(dst, 4 * bb) == pattern, \
            "a STORE after the failing descriptor wrote DRAM"
        obs["dram_kept"] = True
        return obs

    async def token_nobody_gives(dev):
        obs = await _run_raw(dev, [descriptor(Opcode.NOP), descriptor(
            Opcode.GEMM, wait_prev=1, gemm={"banks": 1, "m_tiles": 1, "n_tiles": 1})])
        _expect(obs, "token nobody gives", ErrorCode.TOKEN, 1, desc=1)
        return obs

    async def tokens_300_outstanding(dev):
        # 300 signals before the first wait: 8-bit counters wrapped and deadlocked here
        bb = dev.info.bus_bytes
        src = dram(dev, bb)
        n = 300
        loads = [descriptor(Opcode.LOAD, sig_next=1, dma=_dma(src, bb))] * n
        gemms = [descriptor(Opcode.GEMM, wait_prev=1,
                            gemm={"banks": 1, "m_tiles": 1, "n_tiles": 1})] * n
        obs = await _run_raw(dev, loads + gemms, max_cycles=2_000_000)
        _expect(obs, "300 outstanding tokens", ErrorCode.NONE, desc=2 * n + 1, irq=1)
        return obs

    async def fetch_bus_error(dev):
        slot = dev.ring_base + (dev._tail + 1) % dev.ring_slots * 32
        dev.backend.inject_bus_error(slot, slot + 32, "slverr")
        try:
            obs = await _run_raw(dev, [descriptor(Opcode.NOP), descriptor(Opcode.NOP)])
        finally:
            dev.backend.clear_bus_errors()
        _expect(obs, "fetch bus error", ErrorCode.BUS_SLVERR, 1, desc=1)
        return obs

    async def tail_past_the_ring(dev):
        b = dev.backend
        head = await b.read32(regs.RING_HEAD)
        await b.write32(regs.RING_TAIL, dev.ring_slots + 3)
        for _ in range(64):
            if (await b.read32(regs.IRQ)) & 2:
                break
            await b.wait_irq(64)
        st = regs.REGISTERS["STATUS"]
        s = await b.read32(regs.STATUS)
        obs = {"err_code": ErrorCode(st.field("err_code").get(s)).name,
               "error": st.field("error").get(s),
               "err_slot": (await b.read32(regs.ERR_ADDR) - dev.ring_base) // 32 - head,
               "head": await b.read32(regs.RING_HEAD)}
        want = {"err_code": "BAD_RING", "error": 1, "err_slot": 0, "head": dev.ring_slots + 3}
        assert obs == want, f"tail past the ring: expected {want}, got {obs}"
        await b.write32(regs.IRQ, 3)
        return obs

    async def unaligned_ring_base(dev):
        b = dev.backend
        bb = dev.info.bus_bytes
        if bb == 1:
            return {"skipped": "a 1-byte bus aligns everything"}
        await b.write32(regs.RING_BASE, dev.ring_base + bb // 2)
        obs = await _run_raw(dev, [descriptor(Opcode.NOP)])
        _expect(obs, "unaligned RING_BASE", ErrorCode.BAD_FIELD, desc=0)
        obs["err_index"] = None       # relative to a ring that is not where the driver put it
        return obs

    async def soft_reset_clears_the_error(dev):
        b = dev.backend
        await dev.submit([descriptor(13), descriptor(Opcode.COMPLETE)])
        for _ in range(64):
            if (await b.read32(regs.IRQ)) & 2:
                break
            await b.wait_irq(64)
        # no acknowledge: a soft reset returns the device to idle without an error, and
        # leaves the interrupt bit for the driver
        await dev.soft_reset()
        await b.wait_irq(16)
        st = regs.REGISTERS["STATUS"]
        s = await b.read32(regs.STATUS)
        obs = {"error": st.field("error").get(s), "err_code": st.field("err_code").get(s),
               "irq_error": (await b.read32(regs.IRQ)) >> 1 & 1}
        assert obs == {"error": 0, "err_code": 0, "irq_error": 1}, obs
        await b.write32(regs.IRQ, 3)
        return obs

    async def csr_bus_error(dev):
        b = dev.backend
        got = []
        for write in (False, True):
            try:
                if write:
                    await b.write32(0xFFC, 1)
                else:
                    await b.read32(0xFFC)
            except CsrBusError as e:
                got.append(e.write)
        assert got == [False, True], f"CSR accesses at 0xffc: bus errors for {got}"
        return {"bus_errors": got}

    async def submit_right_after_an_error(dev):
        # a STORE into a DECERR range while a long LOAD reads: the flush waits for the LOAD's
        # issued bursts to drain. A driver that acknowledges and submits at once must not lose
        # the new program (the RTL once let the head follow the tail for the whole flush)
        from .driver import DeviceError

        info = dev.info
        bb = info.bus_bytes
        word = info.rows * 32
        rows = info.act_depth
        src, bad = dram(dev, rows * word), dram(dev, 4 * bb)
        dev.backend.inject_bus_error(bad, bad + 4 * bb, "decerr")
        try:
            await dev.submit([descriptor(Opcode.LOAD, dma=_dma(src, word, rows=rows)),
                              descriptor(Opcode.STORE, dma=_dma(bad, 4 * bb)),
                              descriptor(Opcode.COMPLETE)])
            try:
                await dev.wait(400_000)
            except DeviceError as e:
                first = e.code.name
            else:
                first = "NONE"
            await dev.submit([descriptor(Opcode.COMPLETE)])
            await dev.wait(400_000)
        finally:
            dev.backend.clear_bus_errors()
        obs = {"first": first, "then": "done"}
        assert first == "BUS_DECERR", obs
        return obs

    return [(f.__name__, f) for f in (
        first_in_program_order, earlier_work_completes, nothing_after_runs, token_nobody_gives,
        tokens_300_outstanding, fetch_bus_error, tail_past_the_ring, unaligned_ring_base,
        soft_reset_clears_the_error, csr_bus_error, submit_right_after_an_error)]
