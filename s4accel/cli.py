"""The ``s4`` command line: the front door for every user task."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class CliError(Exception):
    """A user error: printed as ``s4: error: ...`` with exit status 2."""


# -- registration ---------------------------------------------------------------------------
#
# Every command is a function taking the parsed arguments, registered with @command: its words
# ("bench core"), its help, the shared options it takes (declared once, in SHARED; a command
# may change a shared option's default) and its own options (arg(...)).

def arg(*flags, **kwargs):
    """One argparse option of a command: ``arg("--m", type=int)``."""
    return flags, kwargs


#: Options that several commands take, declared once. ``{default}`` in a help text is
#: filled in with the command's default.
SHARED = {
    "config": arg("--config", default="fpga", help="preset name or YAML path (default {default})"),
    "seed": arg("--seed", type=int, default=0, help="random seed; the same seed replays a run "
                "(default {default})"),
    "sim": arg("--sim", default="verilator", choices=("verilator", "icarus"),
               help="RTL simulator (default {default})"),
    "json": arg("--json", action="store_true", help="JSON on stdout, the human-readable "
                "report on stderr"),
    # the whole-accelerator simulation: the fast path (default) or the bus-checking one
    "fast": arg("--fast", dest="bus_checks", action="store_false", default=False,
                help="simulate with the DRAM model inside the design, Python only between "
                "jobs (the default)"),
    "bus_checks": arg("--bus-checks", dest="bus_checks", action="store_true", default=False,
                      help="simulate with cocotbext-axi's RAM and the Python bus monitor on "
                      "the DRAM port instead (same cycles, about 5 to 20 times slower)"),
}

#: The shared options of every bench that simulates the whole accelerator.
WHOLE_DEVICE = ("fast", "bus_checks")

#: (words, help, shared options with their defaults, own options, function), in order
COMMANDS = []


def command(words, help, *, shared=(), options=()):
    """Register ``func`` as ``s4 WORDS``; ``shared`` names options of :data:`SHARED`, or maps
    them to this command's default (or to a dict of argparse settings that replace the
    shared ones, such as the default and the help)."""
    shared = shared if isinstance(shared, dict) else {name: ... for name in shared}

    def register(func):
        COMMANDS.append((tuple(words.split()), help, shared, list(options), func))
        return func
    return register


def _report(args, rows, title, table, plot=None, json_rows=None):
    """A bench's report: the title and table on stdout (on stderr with --json, when the JSON
    rows go to stdout), then ``plot(path)`` writes the PNG when given."""
    from .sim.report import to_json

    out = sys.stderr if args.json else sys.stdout
    print(f"\n{title}", file=out)
    print(table, file=out)
    if plot is not None:
        path, draw = plot
        draw(Path(path))
        print(f"plot: {path}", file=out)
    if args.json:
        print(to_json(rows if json_rows is None else json_rows))
    return 0


def _board_shape(text):
    from .sw.board import parse_shape
    return parse_shape(text)


@command("bench core", "tensor core speedup against sparsity",
         shared=("config", "seed", "sim", "json"),
         options=[arg("--m", type=int), arg("--k", type=int), arg("--n", type=int),
                  arg("--plot", help="PNG path (default bench_core_<config>.png)")])
def _cmd_bench_core(args):
    from .sim.bench.core import bench_core, format_table, plot_speedup

    print(f"s4 bench core: building and running the tensor core RTL ({args.sim}, "
          f"config {args.config}) ...", file=sys.stderr)
    rows, info = bench_core(args.config, m=args.m, k=args.k, n=args.n, seed=args.seed,
                            sim=args.sim)
    r0 = rows[0]
    cfg = info["config"]
    return _report(args, rows, f"Tensor core, config {cfg} ({info['lanes']} lanes), GEMM "
                   f"M={r0['m']} K={r0['k']} N={r0['n']}, {info['simulator']}: build "
                   f"{info['build_s']:.1f} s, run {info['run_s']:.1f} s", format_table(rows),
                   (args.plot or f"bench_core_{cfg}.png", lambda path: plot_speedup(
                       rows, path, f"S4-open tensor core, {cfg} preset ({info['lanes']} lanes)")))


@command("bench gemm", "whole layers DRAM to DRAM on the accelerator RTL",
         shared=("config", "seed", "sim", "json") + WHOLE_DEVICE,
         options=[arg("--layer", action="append", help="run only this layer (repeatable; "
                      "default: all BERT-base and ResNet-50 layers)"),
                  arg("--shape", action="append", help="an extra layer MxKxN (repeatable)"),
                  arg("--sparsity", type=int, action="append",
                      help="run only this s (repeatable; default: every level)"),
                  arg("--plot", help="PNG path (default bench_gemm_<config>.png)")])
def _cmd_bench_gemm(args):
    from .sim.bench.gemm import LAYERS, bench_gemm, format_table, parse_shape, plot_layers

    layers = {}
    try:
        for name in args.layer or []:
            if name not in LAYERS:
                raise ValueError(f"unknown layer {name!r}; choose from {', '.join(LAYERS)}")
            layers[name] = LAYERS[name]
        for shape in args.shape or []:
            key, dims = parse_shape(shape)
            layers[key] = dims
    except ValueError as e:
        raise CliError(str(e)) from e
    print(f"s4 bench gemm: building and running the accelerator RTL ({args.sim}, config "
          f"{args.config}) ...", file=sys.stderr)
    try:
        rows, info = bench_gemm(args.config, layers=layers or None, sparsities=args.sparsity,
                                seed=args.seed, sim=args.sim, fast=not args.bus_checks)
    except ValueError as e:
        raise CliError(str(e)) from e
    cfg = info["config"]
    return _report(args, rows, f"Whole layers DRAM to DRAM, config {cfg} ({info['lanes']} "
                   f"lanes, {info['dram_bus_bits']}-bit DRAM bus), {info['simulator']} "
                   f"({info['design']}): build {info['build_s']:.1f} s, run "
                   f"{info['run_s']:.1f} s, {info['sim_cycles'] / info['sim_wall_s']:.0f} "
                   "simulated cycles/s (hand-over to interrupt)", format_table(rows),
                   (args.plot or f"bench_gemm_{cfg}.png", lambda path: plot_layers(
                       rows, path, f"S4-open layers, {cfg} preset ({info['lanes']} lanes)")))


#: Largest array ``s4 gemm`` reads (X, W) or writes (Y), in bytes. The golden model's int64
#: working copies peak at about ten times the size of X.
MAX_ARRAY_BYTES = 64 << 20


def _size(nbytes):
    """``nbytes`` for a person: ``2.5 KiB``, ``238.0 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes} B" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def _check_out(path):
    """``--out`` names a .npy file in a directory that exists (checked before any work)."""
    p = Path(path)
    if p.suffix != ".npy":
        raise CliError(f"--out {path}: the result is saved as .npy; name a file ending in .npy")
    parent = p.parent
    if not parent.is_dir():
        raise CliError(f"--out {path}: directory {parent} does not exist")
    if p.is_dir():
        raise CliError(f"--out {path} is a directory")


def _load_npy(path, what):
    """An array from a .npy file: anything else, a header claiming more than
    :data:`MAX_ARRAY_BYTES` (read before the data) or a truncated file is a :class:`CliError`."""
    import math
    import os

    import numpy as np
    from numpy.lib import format as npy

    try:
        with open(path, "rb") as f:
            magic = f.read(len(npy.MAGIC_PREFIX))
            if not magic:
                raise CliError(f"{what}: {path} is empty, not an .npy file")
            if magic != npy.MAGIC_PREFIX:
                kind = " (it is a zip archive, such as an .npz)" if magic[:4] == b"PK\x03\x04" \
                    else ""
                raise CliError(f"{what}: {path} is not an .npy file{kind}")
            f.seek(0)
            try:
                version = npy.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = npy.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = npy.read_array_header_2_0(f)
                else:
                    raise ValueError(f"format version {version[0]}.{version[1]}; s4 reads 1.0 "
                                     "and 2.0")
            except (ValueError, EOFError, TypeError, SyntaxError) as e:
                reason = " ".join(str(e).split())
                raise CliError(f"{what}: {path} is not a valid .npy file: {reason}") from e
            if dtype.hasobject:
                raise CliError(f"{what}: {path} holds Python objects, not numbers")
            nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
            if nbytes > MAX_ARRAY_BYTES:
                raise CliError(f"{what}: {path} holds a {_size(nbytes)} array (shape "
                               f"{tuple(shape)}, {dtype}); s4 gemm takes at most "
                               f"{_size(MAX_ARRAY_BYTES)} per array")
            have = os.fstat(f.fileno()).st_size - f.tell()
            if have < nbytes:
                raise CliError(f"{what}: {path} is truncated: its header announces {nbytes} "
                               f"bytes of data, the file has {have}")
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except OSError as e:
        raise CliError(f"cannot read {what} from {path}: {e.strerror or e}") from e
    except ValueError as e:
        reason = " ".join(str(e).split())
        raise CliError(f"cannot read {what} from {path}: {reason}") from e


@command("gemm", "one raw int32 GEMM Y = X @ W.T from .npy files (each array at most 64 MiB; "
         "--config is checked even with --backend model)",
         shared={"config": "fpga", "sim": ...},
         options=[arg("--x", required=True, help="int8 M x K .npy (M, K >= 1)"),
                  arg("--w", required=True, help="int8 N x K .npy, bank-balanced at S"),
                  arg("--sparsity", type=int, required=True),
                  arg("--backend", choices=("model", "rtl"), default="model"),
                  arg("--out", required=True, help="result .npy (the name must end in .npy; "
                      "its directory must exist)")])
def _cmd_gemm(args):
    import numpy as np

    from .base import golden
    from .base.config import ConfigError, load_config
    from .base.sparse import check_sparsity, pack

    _check_out(args.out)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        raise CliError(str(e)) from e
    x = _load_npy(args.x, "X")
    w = _load_npy(args.w, "W")
    for name, a in (("X", x), ("W", w)):
        if a.dtype != np.int8 or a.ndim != 2:
            raise CliError(f"{name} must be a 2-D int8 array, not {a.dtype} with shape {a.shape}")
        if 0 in a.shape:
            raise CliError(f"{name} has {a.shape[0]} rows and {a.shape[1]} columns; a GEMM "
                           "needs at least one of each")
    if x.shape[1] != w.shape[1]:
        raise CliError(f"X is {x.shape[0]} x {x.shape[1]} but W is {w.shape[0]} x {w.shape[1]}: "
                       "K must match (Y = X @ W.T)")
    y_bytes = x.shape[0] * w.shape[0] * 4
    if y_bytes > MAX_ARRAY_BYTES:
        raise CliError(f"Y would be {x.shape[0]} x {w.shape[0]} int32, {_size(y_bytes)}; s4 gemm "
                       f"writes at most {_size(MAX_ARRAY_BYTES)} per array")
    try:
        check_sparsity(w, args.sparsity)
        packed = pack(w, args.sparsity)
    except ValueError as e:
        raise CliError(str(e)) from e
    if args.backend == "model":
        y = golden.gemm_raw(x, packed)
        info = {}
    else:
        import tempfile

        from .sim.tb import runner
        with tempfile.TemporaryDirectory() as tmp:
            job, res = Path(tmp) / "job.npz", Path(tmp) / "y.npy"
            np.savez(job, x=x, w=w, s=np.array(args.sparsity))
            runner.run_tests("tensor_core", config, args.sim, "s4accel.sim.tb.jobs",
                             testcase="gemm_file", tag="gemm_file",
                             env={"S4_JOB": job, "S4_RESULT": res})
            y = np.load(res)
            info = json.loads(Path(str(res) + ".json").read_text())
    try:
        np.save(args.out, y)
    except OSError as e:
        raise CliError(f"cannot write --out {args.out}: {e.strerror or e}") from e
    extra = f", {info['cycles']} cycles on {args.sim} ({args.config})" if info else ""
    print(f"Y = X @ W.T: {y.shape[0]} x {y.shape[1]} int32 -> {args.out} "
          f"(backend {args.backend}, s={args.sparsity}{extra})")
    return 0


@command("regmap", "register map artifacts generated from the register map YAML",
         shared={"config": {"default": None, "help": "resolve configuration-dependent reset "
                            "values (preset name or YAML path)"}},
         options=[arg("--format", required=True, choices=("c", "md", "py", "yaml")),
                  arg("-o", "--output", help="write to this file instead of stdout"),
                  arg("--regmap", help="register map YAML (default: the packaged one)"),
                  arg("--check", action="store_true",
                      help="exit 1 if --output differs from what would be generated")])
def _cmd_regmap(args):
    from .base import regmap

    if args.check and not args.output:
        raise CliError("--check needs --output")
    try:
        if args.check:
            if regmap.check(args.format, args.output, config=args.config, path=args.regmap):
                return 0
            print(f"{args.output} is out of date; regenerate it with "
                  f"s4 regmap --format {args.format} -o {args.output}", file=sys.stderr)
            return 1
        text = regmap.render(args.format, config=args.config, path=args.regmap)
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
    except (regmap.RegmapError, ValueError, OSError) as e:
        raise CliError(str(e)) from e
    return 0


@command("demo", "the digits model at 16x sparsity on the accelerator RTL",
         shared=("config", "seed", "sim", "json") + WHOLE_DEVICE,
         options=[arg("--images", type=int, default=128, help="test images run on the RTL"),
                  arg("--batch", type=int, default=32, help="images per device job")])
def _cmd_demo(args):
    from .sim.report import to_json
    from .sim.workloads.demo import demo

    try:
        res = demo(args.config, images=args.images, batch=args.batch, seed=args.seed,
                   sim=args.sim, fast=not args.bus_checks,
                   out=sys.stderr if args.json else sys.stdout)
    except ValueError as e:
        raise CliError(str(e)) from e
    if args.json:
        keep = ("accuracy", "cycles_per_image", "speedup", "images", "test_images",
                "sim_cycles_per_s")
        print(to_json({k: res[k] for k in keep}))
    return 0


@command("bench digits", "small dense vs wide sparse MLPs on the digits set",
         shared=("config", "seed", "sim", "json") + WHOLE_DEVICE,
         options=[arg("--images", type=int, default=64, help="test images run on the RTL"),
                  arg("--batch", type=int, default=32)])
def _cmd_bench_digits(args):
    from .sim.workloads.digits import experiment, format_table

    print(f"s4 bench digits: training three MLPs, running them on the device model and "
          f"{args.images} images on the RTL ({args.config}) ...", file=sys.stderr)
    rows, info = experiment(args.config, images=args.images, batch=args.batch, seed=args.seed,
                            sim=args.sim, fast=not args.bus_checks)
    n = rows[0]["test_images"]
    return _report(args, rows, f"Digits MLPs, config {args.config}: accuracy on {n} test images "
                   f"(functional device model), cycles per image on the RTL "
                   f"({rows[0].get('rtl_images')} images, bit-exact)", format_table(rows))


@command("bench array", "the same layers on 1, 2 and 4 SPUs (RTL)",
         shared=("config", "seed", "sim", "json") + WHOLE_DEVICE,
         options=[arg("--spus", type=int, nargs="+", default=[1, 2, 4]),
                  arg("--layer", action="append"),
                  arg("--sparsity", type=int, action="append")])
def _cmd_bench_array(args):
    from .sim.bench.array import ARRAY_LAYERS, bench_array, format_table
    from .sim.bench.gemm import LAYERS

    names = args.layer or list(ARRAY_LAYERS)
    for name in names:
        if name not in LAYERS:
            raise CliError(f"unknown layer {name!r}; choose from {', '.join(LAYERS)}")
    rows, infos = bench_array(args.config, spus=tuple(args.spus),
                              layers={k: LAYERS[k] for k in names},
                              sparsities=tuple(args.sparsity or (1, 8, 16)), seed=args.seed,
                              sim=args.sim, progress=lambda t: print(t, file=sys.stderr),
                              fast=not args.bus_checks)
    keep = ("spus", "layer", "sparsity", "cycles", "speedup_vs_one_spu", "lane_utilization",
            "dram_read_util", "dram_write_util", "dram_bytes", "m", "k", "n",
            "sim_cycles_per_s")
    return _report(args, rows, f"SPU array, {args.config} SPUs sharing one "
                   f"{infos[0]['dram_bus_bits']}-bit DRAM port, {infos[0]['simulator']}",
                   format_table(rows), json_rows=[{k: r[k] for k in keep} for r in rows])


@command("bench minilm", "MiniLM sentence encoder on the device: cosine against float "
         "and cycles per token", shared=("config", "json") + WHOLE_DEVICE,
         options=[arg("--layers", type=int, default=6,
                      help="encoder layers whose linear layers run on the device (default 6)"),
                  arg("--no-rtl", action="store_true", help="skip the RTL cycle measurement"),
                  arg("--engine", choices=("model", "golden"), default="model",
                      help="'model': the functional device model through the driver "
                      "(default); 'golden': the golden model of the same programs (faster)"),
                  arg("--prune", choices=("obs", "magnitude"), default="obs",
                      help="'obs': one-shot bank-balanced pruning with the OBS weight update "
                      "from calibration text (default); 'magnitude': largest magnitudes per "
                      "bank, no update"),
                  arg("--sparsity", type=int, action="append", choices=(1, 2, 4, 8, 16, 32),
                      help="run only this s (repeatable; default 1, 4, 8, 16)"),
                  arg("--layer-report", action="store_true",
                      help="also print each linear layer's pruning error, magnitude vs OBS")])
def _cmd_bench_minilm(args):
    from .sim.report import to_json
    from .sim.workloads import minilm

    try:
        rows = minilm.report(args.config, args.layers, not args.no_rtl, engine=args.engine,
                             prune=args.prune, sparsities=args.sparsity or minilm.SPARSITIES,
                             layer_report=args.layer_report, fast=not args.bus_checks,
                             out=sys.stderr if args.json else sys.stdout)
    except minilm.MiniLMMissing as e:
        raise CliError(str(e)) from e
    if args.json:
        print(to_json(rows))
    return 0


@command("project", "performance-model projection of BERT and ResNet-50 on a large "
         "preset", shared={"config": "antoum"},
         options=[arg("--batch", type=int, default=8),
                  arg("--seq", type=int, default=128, help="BERT-base sequence length"),
                  arg("--sparsity", type=int, nargs="+", default=[1, 8, 16])])
def _cmd_project(args):
    from .sim.model.perf_model import format_projection, project_bert_resnet

    rows = project_bert_resnet(args.config, sparsities=tuple(args.sparsity), batch=args.batch,
                               seq=args.seq, bert_large=True)
    print(format_projection(rows, args.config))
    return 0


@command("fpga build", "synthesize, place and route for a board with the YoWASP tools; "
         "resource and Fmax report",
         shared={"config": {"default": None, "help": "preset or YAML (default: tiny for "
                            "icebreaker, fpga for ulx3s)"},
                 "seed": {"default": 1, "help": "nextpnr's placer seed (default 1)"},
                 "json": ...},
         options=[arg("--board", required=True, choices=("icebreaker", "ulx3s")),
                  arg("--out", help="build directory (default build/fpga_BOARD_CONFIG)"),
                  arg("--freq", type=float, help="clock MHz (default: the config's clock_mhz; "
                      "made by the PLL unless within 5 %% of the board oscillator)"),
                  arg("--timing-weight", type=int, default=None, metavar="N",
                      help="nextpnr's --placer-heap-timingweight (default: the build's, "
                      "hw/fpga/build.py TIMING_WEIGHT; nextpnr's own is 10)"),
                  arg("--router", choices=("router1", "router2"), default="router1",
                      help="nextpnr's router (default router1: on ulx3s/tiny at 100 MHz "
                      "router2 reached 66.5 MHz where router1 reached 85-89 MHz)"),
                  arg("--timeout", type=float, help="seconds per tool"),
                  arg("--synth-only", action="store_true",
                      help="stop after yosys (cell counts only; a quick CI check)")])
def _cmd_fpga_build(args):
    from .base.config import load_config
    from .hw.fpga.build import FpgaBuildError, build, format_result, synthesize

    config = args.config or {"icebreaker": "tiny", "ulx3s": "fpga"}[args.board]
    out = Path(args.out or f"build/fpga_{args.board}_{Path(str(config)).stem}")
    weight = {} if args.timing_weight is None else {"timing_weight": args.timing_weight}
    try:
        if args.synth_only:
            r = synthesize(args.board, config, out, clock_mhz=args.freq, timeout=args.timeout)
            r = {"board": args.board, "config": load_config(config).name, **r}
            print(json.dumps(r, indent=1) if args.json else
                  f"{r['board']} / {r['config']}: {r['luts']} LUT4, {r['ffs']} FF, "
                  f"{r['dsps']} DSP, {r['brams']} BRAM, {r['sprams']} SPRAM "
                  f"(yosys {r['synth_s']} s)")
            return 0
        r = build(args.board, config, out, target_mhz=args.freq, seed=args.seed,
                  router=args.router, timeout=args.timeout, **weight)
    except FpgaBuildError as e:
        print(f"s4: error: {e}", file=sys.stderr)
        return 1
    # 0: routed at the target frequency; 1: a tool failed / does not fit; 3: routed, but the
    # Fmax nextpnr reached is below the target (the bitstream is written all the same)
    status = 1 if not r["routed"] else 0 if r["timing_met"] else 3
    if args.json:
        keys = ("board", "config", "luts", "ffs", "dsps", "brams", "sprams", "fmax_mhz",
                "target_mhz", "timing_met", "routed", "bitstream", "pll", "synth_s", "pnr_s",
                "utilization", "error")
        r = dict(r, utilization={k: v for k, v in r["utilization"].items() if v.get("used")})
        print(json.dumps({k: r[k] for k in keys if k in r}, indent=1))
    else:
        print(format_result(r))
    if not r["routed"]:
        print(f"s4: error: {r['error']}", file=sys.stderr)
    elif not r["timing_met"]:
        print(f"s4: warning: timing not met: Fmax {r['fmax_mhz']:.1f} MHz < target "
              f"{r['target_mhz']:g} MHz", file=sys.stderr)
    return status


@command("fpga run", "run layers on a board through its UART bridge and check them bit "
         "for bit with the golden model",
         shared={"config": "tiny", "json": ...,
                 "seed": {"default": None, "help": "random seed (default: a fresh one, printed)"}},
         options=[arg("--port", required=True, help="serial port of the board (/dev/ttyUSB0, "
                      "COM3, ...) or 'model' (the functional model answers the bridge "
                      "protocol; --config is its preset, a board reports its own)"),
                  arg("--baud", type=int, default=115_200, help="the bitstream's baud rate"),
                  arg("--sparsity", type=int, nargs="+", default=[1, 4, 16]),
                  arg("--shape", type=_board_shape, default=(8, 128, 16),
                      help="MxKxN (default 8x128x16)")])
def _cmd_fpga_run(args):
    import asyncio

    import numpy as np

    from .sim.model.uart_model import ModelTransport
    from .sw.board import run_layers
    from .sw.uart_backend import BridgeError, SerialTransport

    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    say(f"seed {seed} (replay with --seed {seed})")
    try:
        if args.port == "model":
            rows = asyncio.run(run_layers(ModelTransport(args.config), sparsities=args.sparsity,
                                          shape=args.shape, seed=seed, say=say))
        else:
            with SerialTransport(args.port, args.baud) as port:
                rows = asyncio.run(run_layers(port, sparsities=args.sparsity,
                                              shape=args.shape, seed=seed, say=say))
    except (BridgeError, ValueError, ImportError, OSError) as e:
        print(f"s4: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0 if all(r["bit_exact"] for r in rows) else 1


@command("generate", "Verilog of the whole accelerator and its register documentation",
         shared=("config",),
         options=[arg("-o", "--output", required=True, help="output directory")])
def _cmd_generate(args):
    from .base.config import ConfigError
    from .hw.generate import generate

    try:
        summary = generate(args.config, args.output)
    except (ConfigError, ValueError) as e:
        raise CliError(str(e)) from e
    ports = summary["ports"]
    print(f"S4-open accelerator, configuration {summary['config']}: "
          f"{summary['lines']} lines of Verilog, {len(ports)} ports "
          f"({sum(w for _, _, w in ports)} bits)")
    for f in summary["files"]:
        print(f"  wrote {f}")
    return 0


@command("version", "print the version")
def _cmd_version(args):
    from . import __version__
    print(__version__)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="s4", description="S4-open accelerator tools")
    groups = {(): parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")}
    for words, help, shared, options, func in COMMANDS:
        for n in range(1, len(words)):
            if words[:n] not in groups:
                p = groups[words[:n - 1]].add_parser(words[n - 1], help=f"{words[n - 1]} ...")
                groups[words[:n]] = p.add_subparsers(dest="_".join(words[:n]), required=True,
                                                     metavar="COMMAND")
        p = groups[words[:-1]].add_parser(words[-1], help=help, description=help)
        for name, default in shared.items():
            flags, kwargs = SHARED[name]
            kwargs = dict(kwargs)
            if isinstance(default, dict):
                kwargs.update(default)
            elif default is not ...:
                kwargs["default"] = default
            if "help" in kwargs:
                kwargs["help"] = kwargs["help"].format(default=kwargs.get("default"))
            p.add_argument(*flags, **kwargs)
        for flags, kwargs in options:
            p.add_argument(*flags, **kwargs)
        p.set_defaults(func=func)
    return parser


def main(argv=None):
    from .base.config import ConfigError, load_config

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if isinstance(getattr(args, "config", None), str):
            load_config(args.config)    # a bad --config stops every command before it starts
        return args.func(args)
    except (CliError, ConfigError) as e:
        print(f"s4: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
