"""``s4 bench model``: whole networks end to end on the accelerator RTL, at every sparsity.

Each network runs as **one device program** per job: the host hands over the input once and
reads the output once. The MLP and the FFN keep their activations on chip between layers
(:func:`~s4accel.sw.chain.chain_program`); the CNN's feature maps (128 KiB a map for a job of 8
images on ``fpga``, as big as its whole activation scratchpad) go through device DRAM between
layers, read once as NHWC tensors (:func:`~s4accel.sw.conv.network_program`). Every layer of a network is pruned to the same ``s``; the ``s = 1`` run is
the same network dense, the baseline of ``speedup_vs_dense``. Every output is compared with the
golden model (:mod:`s4accel.base.golden`) bit for bit, and every program is also replayed
through the performance model (:func:`~s4accel.sim.model.perf_model.predict_program`):
``model_cycles``, ``model_error`` (relative, model against RTL) and ``bound`` come from it.

The networks (:data:`NETWORKS`, one :class:`Network` each; a builder returns one
:class:`Job` per sparsity: what the device program is built from and the golden output):

- ``digits_mlp``: the digits MLP of ``s4 demo`` (64 -> 512 (ReLU) -> 10, raw int32 logits),
  trained in numpy and pruned gradually to each ``s`` while fine-tuning
  (:func:`~s4accel.sim.workloads.digits.train_mlp`), 128 test images in one job;
- ``cnn``: the ResNet-style CNN (:func:`build_cnn`) as one program of convolutions that read
  their windows on chip (:func:`~s4accel.sw.conv.network_program`), 16 test images a job;
- ``minilm_ffn``: the FFN of all-MiniLM-L6-v2's first encoder layer (384 -> 1536, GELU through
  the activation LUT, -> 384, raw int32 output as a compiled model's last layer), its real
  weights pruned bank-balanced by magnitude to each ``s`` (no fine-tuning), on the FFN's real
  input for 128 tokens of the calibration sentences (which also set the int8 scales).

A network is added by appending a :class:`Network` whose builder returns :class:`Job` s; a
job's ``program`` builds its device program from ``inputs`` (default: a chain of layers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...base import golden
from ...base.config import load_config
from ...base.sparse import pack, prune
from ...sw.chain import NotOnChip, chain_program
from ...sw.program import LayerParams
from ...sw.scenarios import chain_expected
from .. import report
from ..report import Column

__all__ = ["COLUMNS", "NETWORKS", "Job", "Network", "bench_model", "chain_job", "ffn_chain",
           "format_table", "levels_for", "make_rows", "plot_networks", "run_jobs"]

SPARSITIES = (1, 2, 4, 8, 16, 32)


def chain_job(info, inputs, alloc):
    """The device program of a chain of layers: ``inputs`` is ``(x int8 [M, K0],
    [(PackedWeights, LayerParams), ...])``, optionally with a third item ``max_chunk``
    (:func:`~s4accel.sw.chain.chain_program`)."""
    x, layers, *chunk = inputs
    return chain_program(info, x, layers, alloc, max_chunk=chunk[0] if chunk else None)


@dataclass
class Job:
    """One network at one sparsity: ``program(DeviceInfo, inputs, Allocator)`` builds the
    device program (a :class:`~s4accel.sw.program.LayerProgram`); ``expected`` is the golden
    model's output, what the program must return bit for bit."""
    network: str
    sparsity: int
    inputs: object
    expected: np.ndarray
    program: Callable = chain_job
    rows: int = 0                 # images or tokens of the job
    shape: str = ""               # the layers, for the table
    stored_weights: int = 0


@dataclass
class Network:
    """A network of the bench: ``build(config, levels, seed, rows)`` returns one :class:`Job`
    per level (``rows``: images or tokens per job, ``None`` for ``default_rows``)."""
    name: str
    description: str
    build: Callable
    sparsities: tuple = SPARSITIES      # the levels the network allows
    default_rows: int = 128


def _chain_stats(layers):
    return (" -> ".join([str(layers[0][0].k)] + [str(p.n) for p, _ in layers]),
            sum(p.n * p.banks * p.nnz for p, _ in layers))


def _chain_jobs(name, x_by_s, layers_by_s, levels):
    jobs = []
    for s in levels:
        x, layers = x_by_s[s], layers_by_s[s]
        shape, stored = _chain_stats(layers)
        jobs.append(Job(name, s, (x, layers), chain_expected(x, layers), rows=x.shape[0],
                        shape=shape, stored_weights=stored))
    return jobs


# -- the networks -----------------------------------------------------------------------------


def build_digits_mlp(config, levels, seed=0, rows=None):
    """The demo's digits MLP 64 -> 512 -> 10, trained and pruned to each ``s``
    (:func:`~s4accel.sim.workloads.digits.train_mlp`), compiled as ``s4 demo`` compiles it
    (int8 hidden layer with ReLU, raw int32 logits for the host's argmax); ``rows`` test
    images in one job."""
    from ...sw.chain import chain_layers
    from ...sw.compiler import compile_model
    from ..workloads.digits import load_digits_split, train_mlp

    x_tr, y_tr, x_te, _ = load_digits_split(seed)
    rows = rows or 128
    if rows > len(x_te):
        raise ValueError(f"digits_mlp: at most {len(x_te)} test images, not {rows}")
    xs, chains = {}, {}
    for s in levels:
        mlp = train_mlp(x_tr, y_tr, 512, s, seed=seed)
        model = compile_model(mlp.layers(), x_tr, s, host_ops=["argmax"])
        xs[s] = model.quantize_input(x_te[:rows])
        chains[s] = chain_layers(model)
    return _chain_jobs("digits_mlp", xs, chains, levels)


def _gelu(v):
    from scipy.special import erf
    return 0.5 * v * (1.0 + erf(v / np.sqrt(2.0)))


def _quant_weights(w, s):
    """Prune ``w`` [N, K] bank-balanced to ``s`` (magnitude), int8 per output channel."""
    w = prune(np.asarray(w, np.float64), s)
    peak = np.abs(w).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return pack(prune(q, s), s), scale


def ffn_chain(x, w1, b1, w2, b2, s):
    """The int8 chain of a transformer FFN ``gelu(x @ w1.T + b1) @ w2.T + b2`` at sparsity
    ``s``, calibrated on ``x`` (float [M, K]): returns ``(x_q, [(packed, params)] * 2,
    y_scale)``, ``y_scale`` [N] the real value of one LSB of the int32 output per channel.

    Input: per-tensor scale ``max|x| / 127``; weights per output channel. The up-projection
    requantizes to the range of its pre-activation and its 256-entry LUT maps that int8 value
    to GELU's output with scale ``max|gelu| / 127`` (the next layer's input scale); the
    down-projection returns raw int32 (``acc + bias``, scale ``in scale * w_scale``), as a
    compiled model's last layer does: an int8 last layer stores whole banks of 32 channels,
    and four channel tiles of K = 1536 dense (6,144 weight words on ``fpga``) do not fit half
    its weight scratchpad, so the dense run would not be one program."""
    from ...sw.compiler import requant_params

    x = np.asarray(x, np.float64)
    in_scale = max(float(np.abs(x).max()), 1e-12) / 127.0
    x_q = np.clip(np.round(x / in_scale), -128, 127).astype(np.int8)

    def quant(w, b, h_scale):
        packed, w_scale = _quant_weights(w, s)
        acc_scale = h_scale * w_scale
        bias = np.clip(np.round(np.asarray(b, np.float64) / acc_scale), -(1 << 31),
                       (1 << 31) - 1).astype(np.int64)
        return packed, bias, acc_scale

    p1, bias1, acc_scale = quant(w1, b1, in_scale)
    pre = golden.gemm_raw(x_q, p1, bias1).astype(np.float64) * acc_scale
    pre_scale = max(float(np.abs(pre).max()), 1e-12) / 127.0
    mult, shift = requant_params(acc_scale / pre_scale)
    g = _gelu(np.arange(-128, 128) * pre_scale)
    g_scale = max(float(np.abs(g).max()), 1e-12) / 127.0
    lut = np.clip(np.round(g / g_scale), -128, 127).astype(np.int8)
    p2, bias2, y_scale = quant(w2, b2, g_scale)
    layers = [(p1, LayerParams("int8", bias=bias1, mult=mult, shift=shift, relu=False,
                               lut=lut)),
              (p2, LayerParams("raw", bias=bias2))]
    return x_q, layers, y_scale


def build_minilm_ffn(config, levels, seed=0, rows=None):
    """MiniLM's first encoder layer FFN (384 -> 1536 GELU -> 384) on ``rows`` tokens of its
    real input (the calibration sentences), each layer pruned to ``s``."""
    from ..workloads.minilm import MiniLM

    model = MiniLM()
    x = model.calibration_inputs()[(0, "ffn_up")]
    rows = rows or 128
    if rows > len(x):
        raise ValueError(f"minilm_ffn: the calibration sentences give {len(x)} tokens, not "
                         f"{rows}")
    w1, b1 = model.linear_weights(0, "ffn_up")
    w2, b2 = model.linear_weights(0, "ffn_down")
    xs, chains = {}, {}
    for s in levels:
        xs[s], chains[s], _ = ffn_chain(x[:rows], w1, b1, w2, b2, s)
    return _chain_jobs("minilm_ffn", xs, chains, levels)


def cnn_job(info, inputs, alloc):
    """The device program of the CNN: ``inputs`` is ``(x, ops)``, the stem's input windows and
    the layers (:func:`s4accel.sw.conv.network_program`)."""
    from ...sw.conv import network_program
    x, ops = inputs
    return network_program(info, x, ops, alloc)


def build_cnn(config, levels, seed=0, rows=None):
    """The ResNet-style CNN of :mod:`~s4accel.sim.workloads.cnn` (digits upscaled to 16x16;
    3x3 residual block of 64 channels at 16x16, a stride-2 stage of 128 with a projection
    shortcut, global average pooling, classifier), trained and pruned gradually to each ``s``
    (cached; the first run trains for a while), quantized on 256 training images, on ``rows``
    test images in one job (whole chunks of the array's rows). The stem (one input channel)
    and the classifier stay dense: the stem in the s = 2 format, which holds its 9 taps
    exactly; the residual additions and the pooling are GEMMs with one non-zero per bank."""
    from ..workloads import cnn

    x_tr, _, x_te, _ = cnn.load_split()
    rows = rows or 16
    if rows > len(x_te):
        raise ValueError(f"cnn: at most {len(x_te)} test images, not {rows}")
    params = cnn.train_cached(seed=seed)
    jobs = []
    for s in levels:
        q = cnn.quantize(params[s], x_tr[:256], s)
        xq = q.quantize_input(x_te[:rows])
        # the device computes whole chunks of the array's rows: the last one padded with
        # zero images, whose outputs the golden model gives too
        pad = np.zeros((-(-rows // config.rows) * config.rows,) + xq.shape[1:], np.int8)
        pad[:rows] = xq
        exp = q.forward_int(pad)
        ops = cnn.device_ops(q)
        jobs.append(Job("cnn", s, (cnn.device_input(q, xq), ops), exp, program=cnn_job,
                        rows=rows, shape="16x16: 64 -> 64, 128 (s2) -> GAP -> 10",
                        stored_weights=sum(o.packed.n * o.packed.banks * o.packed.nnz
                                           for o in ops)))
    return jobs


#: The networks of the bench, in the order they run.
NETWORKS = [
    Network("digits_mlp", "digits MLP 64-512-10 of s4 demo, trained and pruned per s",
            build_digits_mlp),
    Network("minilm_ffn", "MiniLM layer-0 FFN 384-1536(GELU LUT)-384, magnitude-pruned",
            build_minilm_ffn),
    Network("cnn", "ResNet-style CNN on 16x16 digits (64/128 channels, residual, stride 2, "
            "GAP), trained and pruned per s; stem and classifier dense", build_cnn,
            default_rows=16),
]


def _network(name) -> Network:
    for n in NETWORKS:
        if n.name == name:
            return n
    raise ValueError(f"unknown network {name!r}; choose from "
                     f"{', '.join(n.name for n in NETWORKS)}")


def levels_for(config, network: Network, sparsities=None) -> list:
    """The sparsities ``network`` runs at on ``config``: ``sparsities`` (each must be allowed
    by both, else ``ValueError``) or every level both allow."""
    if sparsities:
        for s in sparsities:
            if s not in config.sparsities:
                raise ValueError(f"sparsity {s} is not supported by {config.name} "
                                 f"({', '.join(map(str, config.sparsities))})")
            if s not in network.sparsities:
                raise ValueError(f"{network.name} does not run at sparsity {s}")
        return sorted(set(sparsities))
    return [s for s in network.sparsities if s in config.sparsities]


# -- running ----------------------------------------------------------------------------------


def bench_model(config_name="fpga", *, networks=None, sparsities=None, rows=None, seed=0,
                sim="verilator", fast=True, progress=None):
    """Run the bench; returns ``(rows, info)``. ``networks``: names (default all);
    ``sparsities``: levels (default every one the network and the configuration allow);
    ``rows``: images / tokens per job (default each network's). ``progress(line)`` is called
    as each row is measured."""
    from ...sw.program import Allocator, DeviceInfo

    config = load_config(config_name)
    nets = [_network(n) for n in (networks or [n.name for n in NETWORKS])]
    if rows is not None and rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    plan = [(net, levels_for(config, net, sparsities)) for net in nets]
    t0 = time.monotonic()
    jobs, skipped = [], []
    placement = {}      # network -> the compiler's report of where its tensors live
    info_dev = DeviceInfo.from_config(config)
    for net, levels in plan:
        for job in net.build(config, levels, seed, rows or net.default_rows):
            # a program that does not fit fails here, not in the simulator: an error for a
            # level asked for, else the level is left out (and said so)
            try:
                prog = job.program(info_dev, job.inputs, Allocator(0, 1 << 40))
                placement.setdefault(job.network, prog.placement)
            except NotOnChip as e:
                if sparsities:
                    raise ValueError(f"{job.network} at s = {job.sparsity} does not run as one "
                                     f"program on {config.name}: {e}") from e
                skipped.append(f"{job.network} s={job.sparsity}: {e}")
                continue
            jobs.append(job)
    if not jobs:
        raise ValueError(f"no network fits {config.name} as one program: " + "; ".join(skipped))
    prep_s = time.monotonic() - t0
    raw, info = run_jobs(config, jobs, sim=sim, fast=fast, progress=progress)
    info.update(prepare_s=prep_s, skipped=skipped, placement=placement)
    return make_rows(config, jobs, raw), info


def run_jobs(config, jobs, *, sim="verilator", fast=True, progress=None):
    """Run :class:`Job` s on the whole accelerator RTL, one program each, through the
    driver (the cocotb job ``bench_model`` of :mod:`s4accel.sim.tb.jobs`); returns the raw
    results (:func:`make_rows` takes them) and run information."""
    from ..tb import runner

    config = load_config(config) if isinstance(config, str) else config
    design = runner.whole_device_design(fast)
    build_s = runner.build_shared(design, config, sim)
    seen = [0]

    def poll(path):
        if progress and path.exists():
            lines = path.read_text().splitlines()
            for line in lines[seen[0]:]:
                progress(line)
            seen[0] = len(lines)
    t1 = time.monotonic()
    raw, run = runner.run_pickled_job(design, config, sim, "bench_model", list(jobs), poll=poll)
    run_s = time.monotonic() - t1
    info = {"config": config.name, "simulator": sim, "design": design, "build_s": build_s,
            "run_s": run_s, "log": str(run.log), "skipped": [],
            "lanes": config.lanes * config.spus, "dram_bus_bits": config.dram_bus_bits,
            "sim_cycles": sum(r["cycles"] for r in raw),
            "sim_wall_s": sum(r["wall_s"] for r in raw)}
    return raw, info


def make_rows(config, jobs, raw) -> list:
    """The bench's JSON rows from its jobs and the simulator's results (``raw``, one dict per
    job: ``cycles``, ``counters``, ``descs``, ``bit_exact``, ``wall_s``); the performance
    model replays each job's descriptors."""
    from ..model.perf_model import predict_program

    config = load_config(config) if isinstance(config, str) else config
    if len(raw) != len(jobs):
        raise ValueError(f"{len(raw)} results for {len(jobs)} jobs")
    dense = {j.network: r["cycles"] for j, r in zip(jobs, raw) if j.sparsity == 1}
    rows = []
    for job, r in zip(jobs, raw):
        c, cyc = r["counters"], r["cycles"]
        pred = predict_program(config, r["descs"])
        base = dense.get(job.network)
        rows.append({
            "config": config.name, "network": job.network, "layers": job.shape,
            "rows": job.rows, "sparsity": job.sparsity, "cycles": cyc,
            "speedup_vs_dense": base / cyc if base else None,
            "dram_bytes": c["perf_dma_rd_bytes"] + c["perf_dma_wr_bytes"],
            # fraction of the job's cycles in which every lane issued a MAC
            "lane_utilization": c["perf_mac"] / cyc,
            "bound": pred["bound"], "bit_exact": bool(r["bit_exact"]),
            "model_cycles": pred["cycles"],
            "model_error": (pred["cycles"] - cyc) / cyc,
            "stored_weights": job.stored_weights, "descriptors": len(r["descs"]),
            "cycles_per_row": cyc / job.rows if job.rows else None,
            "sim_cycles_per_s": cyc / r["wall_s"] if r.get("wall_s") else None,
        })
    return rows


def _ratio(r):
    sp = r["speedup_vs_dense"]
    return sp / r["sparsity"] if sp else None


#: The table of :func:`bench_model`'s rows.
COLUMNS = [Column("network", "network", "<11"), Column("M", "rows", ">4"),
           Column("s", "sparsity", ">3"), Column("cycles", "cycles", ">9"),
           Column("speedup", lambda r: r["speedup_vs_dense"] or None, ">8.2f"),
           Column("ratio", _ratio, ">6.3f"), Column("lane util", "lane_utilization", ">9.4f"),
           Column("DRAM bytes", "dram_bytes", ">11"), Column("bound", "bound", ">11"),
           Column("model cyc", "model_cycles", ">10"),
           Column("model err", "model_error", ">9.3%"),
           Column("bit-exact", lambda r: str(r["bit_exact"]), ">9")]


def format_table(rows) -> str:
    return report.format_table(rows, COLUMNS)


def plot_networks(rows, path, title):
    series = {}
    for r in rows:
        series.setdefault(r["network"], []).append((r["sparsity"], r["speedup_vs_dense"]))
    return report.plot_speedup(series, path, title, levels={r["sparsity"] for r in rows},
                               ylabel="network speedup over dense, end to end")

