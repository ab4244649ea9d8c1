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
                      "default: all BERT-base and ResNet-50 layers, the convolution "
                      "from NHWC included)"),
                  arg("--shape", action="append", help="an extra layer MxKxN (repeatable)"),
                  arg("--sparsity", type=int, action="append",
                      help="run only this s (repeatable; default: every level)"),
                  arg("--plot", help="PNG path (default bench_gemm_<config>.png)")])
def _cmd_bench_gemm(args):
    from .sim.bench.gemm import (CONVS, LAYERS, bench_gemm, format_table, parse_shape,
                                 plot_layers)

    layers, convs = {}, {}
    try:
        for name in args.layer or []:
            if name in CONVS:
                convs[name] = CONVS[name]
                continue
            if name not in LAYERS:
                raise ValueError(f"unknown layer {name!r}; choose from "
                                 f"{', '.join([*LAYERS, *CONVS])}")
            layers[name] = LAYERS[name]
        for shape in args.shape or []:
            key, dims = parse_shape(shape)
            layers[key] = dims
    except ValueError as e:
        raise CliError(str(e)) from e
    print(f"s4 bench gemm: building and running the accelerator RTL ({args.sim}, config "
          f"{args.config}) ...", file=sys.stderr)
    try:
        picked = bool(layers or convs)
        rows, info = bench_gemm(args.config, layers=layers if picked else None,
                                convs=convs if picked else None, sparsities=args.sparsity,
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


@command("bench model", "whole networks end to end on the accelerator RTL, each as one device "
         "program, at every sparsity",
         shared=("config", "seed", "sim", "json") + WHOLE_DEVICE,
         options=[arg("--network", action="append",
                      help="run only this network (repeatable; default: all)"),
                  arg("--sparsity", type=int, action="append",
                      help="run only this s (repeatable; default: every level)"),
                  arg("--rows", type=int, help="images or tokens per job (default: each "
                      "network's, 128)"),
                  arg("--plot", help="PNG path (default bench_model_<config>.png)")])
def _cmd_bench_model(args):
    from .base.config import load_config
    from .sim.bench.model import (NETWORKS, bench_model, format_table, levels_for,
                                  plot_networks)

    try:
        names = [n.name for n in NETWORKS]
        for name in args.network or []:
            if name not in names:
                raise ValueError(f"unknown network {name!r}; choose from {', '.join(names)}")
        if args.rows is not None and args.rows < 1:
            raise ValueError(f"--rows must be at least 1, not {args.rows}")
        cfg = load_config(args.config)
        for net in NETWORKS:
            if net.name in (args.network or names):
                levels_for(cfg, net, args.sparsity)
    except ValueError as e:
        raise CliError(str(e)) from e
    print(f"s4 bench model: preparing the networks, building and running the accelerator RTL "
          f"({args.sim}, config {args.config}) ...", file=sys.stderr)
    from .sim.workloads.minilm import MiniLMMissing

    for net in NETWORKS:
        if net.name in (args.network or names):
            print(f"  {net.name}: {net.description}", file=sys.stderr)
    try:
        rows, info = bench_model(args.config, networks=args.network, sparsities=args.sparsity,
                                 rows=args.rows, seed=args.seed, sim=args.sim,
                                 fast=not args.bus_checks,
                                 progress=lambda line: print("  " + line, file=sys.stderr))
    except (ValueError, MiniLMMissing) as e:
        raise CliError(str(e)) from e
    for line in info["skipped"]:
        print(f"  left out (not one program on {info['config']}): {line}", file=sys.stderr)
    for net, where in info.get("placement", {}).items():
        print(f"  {net}: tensors " + ", ".join(f"{t} {p} {b:,} B" for t, p, b in where),
              file=sys.stderr)
    cfg = info["config"]
    _report(args, rows, f"Whole networks, one device program each, config {cfg} "
            f"({info['lanes']} lanes, {info['dram_bus_bits']}-bit DRAM bus), "
            f"{info['simulator']} ({info['design']}): build {info['build_s']:.1f} s, run "
            f"{info['run_s']:.1f} s, {info['sim_cycles'] / info['sim_wall_s']:.0f} simulated "
            "cycles/s (hand-over to interrupt)", format_table(rows),
            (args.plot or f"bench_model_{cfg}.png", lambda path: plot_networks(
                rows, path, f"S4-open whole networks, {cfg} preset ({info['lanes']} lanes)")))
    bad = [f"{r['network']} s={r['sparsity']}" for r in rows if not r["bit_exact"]]
    if bad:
        raise CliError(f"{len(bad)} runs differ from the golden model: {', '.join(bad)}")
    return 0


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


@command("bench jpeg", "cycles per pixel of the JPEG decoder RTL per image, sampling mode and "
         "quality (scikit-learn's china.jpg and flower.jpg at 4:2:0 q75, synthetic images)",
         shared=("config", "seed", "sim", "json"),
         options=[arg("--max-side", type=int, help="crop the scikit-learn images to at most "
                      "this many pixels a side (default: full size, 640x427)")])
def _cmd_bench_jpeg(args):
    from .base.jpeg import JpegError
    from .sim.bench.jpeg import bench_jpeg, format_table, json_rows
    from .sim.tb.runner import SimulationFailed

    if args.max_side is not None and args.max_side < 1:
        raise CliError(f"--max-side must be positive, not {args.max_side}")
    print(f"s4 bench jpeg: building and running the JPEG decoder RTL ({args.sim}, config "
          f"{args.config}) ...", file=sys.stderr)
    try:
        rows, info = bench_jpeg(args.config, sim=args.sim, max_side=args.max_side,
                                seed=args.seed)
    except (JpegError, SimulationFailed) as e:
        raise CliError(str(e).splitlines()[0]) from e
    _report(args, rows, f"JPEG decoder, config {info['config']}, {info['simulator']}: cycles "
            "from the first scan byte to the last pixel (tables: their load cycles, apart); "
            f"run {info['run_s']:.1f} s, {info['sim_cycles']} simulated cycles",
            format_table(rows), json_rows=json_rows(rows))
    return 0 if all(r["exact_vs_golden"] for r in rows) else 1


@command("jpeg demo", "the image pipeline: JPEG digits decoded on the device (DECODE) into a "
         "sparse CNN, classifications out, on the functional model and the RTL",
         shared=("config", "seed", "sim", "json") + WHOLE_DEVICE,
         options=[arg("--sparsity", type=int, default=16, choices=(1, 2, 4, 8, 16),
                      help="the CNN's sparsity (default 16)"),
                  arg("--size", type=int, default=32, choices=(16, 32, 64),
                      help="JPEG side in pixels, box-resized to 16x16 on the device "
                      "(default 32)"),
                  arg("--quality", type=int, default=90, help="Pillow's JPEG quality "
                      "(default 90)"),
                  arg("--model-images", type=int, default=64,
                      help="test images through the functional model (default 64)"),
                  arg("--rtl-images", type=int, default=16,
                      help="test images through the RTL, whole chunks of the array's rows "
                      "(default 16; 0: none)")])
def _cmd_jpeg_demo(args):
    from .base.jpeg import JpegError
    from .sim.report import to_json
    from .sim.tb.runner import SimulationFailed
    from .sim.workloads.image_demo import format_table, run_demo

    if not 1 <= args.quality <= 100:
        raise CliError(f"--quality must be 1 to 100, not {args.quality}")
    if args.model_images < 0 or args.rtl_images < 0:
        raise CliError("--model-images and --rtl-images must not be negative")
    out = sys.stderr if args.json else sys.stdout
    try:
        res = run_demo(args.config, sparsity=args.sparsity, size=args.size,
                       quality=args.quality, model_images=args.model_images,
                       rtl_images=args.rtl_images, seed=args.seed, sim=args.sim,
                       fast=not args.bus_checks, out=out)
    except (JpegError, SimulationFailed, ValueError) as e:
        raise CliError(str(e).splitlines()[0]) from e
    print(f"\nImage pipeline, config {res['config']}, s = {res['sparsity']}", file=out)
    print(format_table(res), file=out)
    if args.json:
        print(to_json(res))
    return 0 if res.get("bit_exact", True) and res.get("model_equal", True) else 1


@command("jpeg decode", "decode a baseline JPEG file, or a Motion JPEG stream of concatenated "
         "frames, to PNG on the functional model (the golden decoder) or on the decoder RTL",
         shared=("config", "sim", "seed"),
         options=[arg("input", metavar="IN.jpg"),
                  arg("-o", "--output", required=True, metavar="OUT.png"),
                  arg("--backend", choices=("model", "rtl"), default="model",
                      help="model: the golden decoder; rtl: the decoder RTL through cocotb "
                      "(default model)"),
                  arg("--frames", action="store_true",
                      help="IN is a Motion JPEG stream (concatenated frames; also detected "
                      "when IN holds more than one frame): frame i is written to "
                      "OUT_<iii>.png, bytes outside frames are skipped and counted")])
def _cmd_jpeg_decode(args):
    from .base.jpeg import JpegError
    from .base.mjpeg import split_frames

    try:
        data = Path(args.input).read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {args.input}: {e.strerror or e}") from e
    try:
        split = None
        if args.frames:
            split = split_frames(data)
        else:
            try:
                split = split_frames(data)
            except JpegError:
                if data.count(b"\xff\xd8\xff") > 1:    # a stream with a bad frame
                    raise
            if split is not None and len(split) < 2:
                split = None
        if split is None:
            image, how = _jpeg_decode_frames([data], args)[0]
            _write_png(image, args.output)
            h, w = image.shape[:2]
            print(f"{args.input}: {w}x{h} {'grey' if image.ndim == 2 else 'RGB'} -> "
                  f"{args.output} ({how})")
            return 0
        out = Path(args.output)
        suffix = out.suffix or ".png"
        names = [str(out.with_name(f"{out.stem}_{i:03d}{suffix}")) for i in range(len(split))]
        decoded = _jpeg_decode_frames(list(split.frames), args, offsets=split.offsets)
    except JpegError as e:
        raise CliError(f"{args.input}: {e}") from e
    for i, ((image, how), name) in enumerate(zip(decoded, names, strict=True)):
        _write_png(image, name)
        h, w = image.shape[:2]
        print(f"frame {i}: {w}x{h} {'grey' if image.ndim == 2 else 'RGB'} -> {name} ({how})")
    skipped = f", {split.skipped} bytes outside frames skipped" if split.skipped else ""
    plural = "s" if len(split) != 1 else ""
    print(f"{args.input}: {len(split)} frame{plural}{skipped} -> "
          f"{out.with_name(out.stem + '_%03d' + suffix)}")
    return 0


def _write_png(image, path):
    import numpy as np
    from PIL import Image

    try:
        Image.fromarray(np.ascontiguousarray(image)).save(path, "PNG")
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from e


def _jpeg_decode_frames(frames, args, *, offsets=None):
    """Decode each frame (one file, or a stream's frames) on ``args.backend``; returns
    (image, how) per frame. On the RTL the frames run back to back in one simulation, each with
    its tables loaded first. Errors name the frame when there are several."""
    from .base.jpeg import JpegError, decode, parse

    def where(i):
        return "" if offsets is None else f"frame {i} (offset {offsets[i]}): "

    if args.backend == "model":
        out = []
        for i, data in enumerate(frames):
            try:
                out.append((decode(data), "functional model"))
            except JpegError as e:
                raise JpegError(f"{where(i)}{e}") from e
        return out
    from .hw.jpeg.decoder import decoder_config
    from .sim.bench.jpeg import rtl_decode
    from .sim.tb.runner import SimulationFailed

    from .base.config import load_config
    max_width = load_config(args.config).jpeg_max_width
    tables = []
    for i, data in enumerate(frames):
        try:
            tables.append(parse(data))
            # the driver's checks, before building anything
            decoder_config(tables[-1], max_width=max_width)
        except JpegError as e:
            raise JpegError(f"{where(i)}{e}") from e
    print(f"s4 jpeg decode: building and running the JPEG decoder RTL ({args.sim}"
          f"{'' if len(frames) == 1 else f', {len(frames)} frames back to back'}) ...",
          file=sys.stderr)
    try:
        results, _ = rtl_decode(frames, args.config, args.sim, args.seed)
    except SimulationFailed as e:
        raise CliError(str(e).splitlines()[0]) from e
    out = []
    for i, (t, r) in enumerate(zip(tables, results, strict=True)):
        if r["error"] != "NONE" or not r["done"]:
            raise CliError(f"{args.input}: {where(i)}corrupt JPEG data: the decoder stopped "
                           f"with error {r['error']} after {len(r['pixels'])} pixels")
        image = r["pixels"].reshape(t.height, t.width, 3)
        if len(t.components) == 1:
            image = image[:, :, 0]
        out.append((image, f"RTL ({args.sim}), {r['cycles']} cycles, tables "
                           f"{r['table_cycles']} cycles"))
    return out


@command("bench minilm", "MiniLM sentence encoder on the device: cosine against float, "
         "cycles per sentence, the vector unit's share", shared=("config", "json") + WHOLE_DEVICE,
         options=[arg("--linear", action="store_true",
                      help="the older bench: only the 36 linear layers on the device (raw "
                      "int32 out, everything else on the host in float), cycles per token "
                      "measured on the RTL"),
                  arg("--layers", type=int, default=6,
                      help="with --linear: encoder layers whose linear layers run on the "
                      "device (default 6)"),
                  arg("--no-rtl", action="store_true",
                      help="with --linear: skip the RTL cycle measurement"),
                  arg("--engine", choices=("model", "golden"), default=None,
                      help="'golden': the golden layers, bit-identical to the device (the "
                      "default of the whole-encoder bench); 'model': the programs on the "
                      "functional device model through the driver (the default with "
                      "--linear; the whole encoder then checks every sentence against the "
                      "golden layers)"),
                  arg("--prune", choices=("magnitude", "obs", "block", "distill"),
                      default="block",
                      help="'block' (default): one-shot bank-balanced pruning with the OBS "
                      "weight update towards the float model's outputs, then each encoder "
                      "layer's kept weights and biases fitted to the float layer's output on "
                      "calibration data (minutes per s; cached in $S4_CACHE_DIR, default "
                      "~/.cache/s4accel); 'distill': 'block', then end-to-end fine-tuning "
                      "towards the float model; 'obs': the one-shot OBS step only (cached too); "
                      "'magnitude': largest magnitudes per bank, no update"),
                  arg("--quant", choices=("smooth", "plain"), default="smooth",
                      help="with --linear: how each linear layer's input becomes int8: "
                      "'smooth' (default), SmoothQuant on the inputs a LayerNorm or a linear "
                      "layer produces and a zero point on FFN down's (GELU) input; 'plain', "
                      "per tensor at the calibration peak"),
                  arg("--no-cache", action="store_true",
                      help="recompute the pruned weights ('obs', 'block', 'distill') without "
                      "reading or writing the cache"),
                  arg("--sparsity", type=int, action="append", choices=(1, 2, 4, 8, 16, 32),
                      help="run only this s (repeatable; default 1, 4, 8, 16)"),
                  arg("--layer-report", action="store_true",
                      help="also print each linear layer's pruning error, magnitude vs OBS"),
                  arg("--seq-len", type=int, action="append",
                      help="sequence length of the cycles per sentence (repeatable; default "
                      "32, 128)")])
def _cmd_bench_minilm(args):
    from .sim.report import to_json
    from .sim.workloads import minilm

    try:
        if not args.linear:
            rows = minilm.encoder_report(args.config,
                                         sparsities=args.sparsity or minilm.SPARSITIES,
                                         seq_lens=tuple(args.seq_len or (32, 128)),
                                         prune=args.prune, cache=not args.no_cache,
                                         engine=args.engine or "golden",
                                         out=sys.stderr if args.json else sys.stdout)
            if args.json:
                print(to_json(rows))
            return 0
        rows = minilm.report(args.config, args.layers, not args.no_rtl,
                             engine=args.engine or "model",
                             prune=args.prune, sparsities=args.sparsity or minilm.SPARSITIES,
                             layer_report=args.layer_report, fast=not args.bus_checks,
                             cache=not args.no_cache, quant=args.quant,
                             out=sys.stderr if args.json else sys.stdout)
    except minilm.MiniLMMissing as e:
        raise CliError(str(e)) from e
    if args.json:
        print(to_json(rows))
    return 0


@command("project", "performance-model projection of BERT and ResNet-50 on a large "
         "preset", shared={"config": "antoum", "json": ...},
         options=[arg("--mechanisms", choices=("new", "old"), default="new",
                      help="new (default): dataflow plans with activations on chip, packed "
                      "weights, convolution without im2col; old: layers back to back through "
                      "DRAM with host im2col (its DRAM bytes are compared either way)"),
                  arg("--batch", type=int, default=None,
                      help="samples a batch of the old mechanisms (default 8); the new plans "
                      "choose their pass"),
                  arg("--seq", type=int, default=128, help="BERT-base sequence length"),
                  arg("--sparsity", type=int, nargs="+", default=[1, 8, 16],
                      choices=(1, 2, 4, 8, 16, 32)),
                  arg("--assume", nargs="+", default=[],
                      choices=("kv-on-chip", "residual-at-store", "spatial-resnet"),
                      help="design study, mechanisms the RTL does not have (new mechanisms "
                      "only; listed under 'Projected beyond the RTL'): kv-on-chip, BERT's K "
                      "and V reach WGT through an on-chip ACT -> WGT path; residual-at-store, "
                      "ResNet's residual additions in the store path instead of 1x1 GEMMs; "
                      "spatial-resnet, ResNet's row tiles of one image's pixels with the "
                      "halos written into neighbouring rows (resnet50_spatial_plan)")])
def _cmd_project(args):
    from .sim.model.dataflow import project_plan
    from .sim.model.perf_model import format_projection, project_bert_resnet, projection_json
    from .sim.report import to_json

    for name in ("batch", "seq"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name} must be a positive integer, not {value}")
    if args.batch is not None and args.mechanisms == "new":
        raise CliError("--batch sets the old mechanisms' batch (--mechanisms old); the new "
                       "plans choose their pass")
    if args.assume and args.mechanisms == "old":
        raise CliError("--assume changes the new mechanisms' plans; the old projection has "
                       "no such option")
    sparsities = tuple(args.sparsity)

    skipped = []

    def attempt(which, fn):
        # a preset whose scratchpads cannot hold a layer: an error for the projection asked
        # for, no comparison for the other (said after the projection)
        try:
            return fn()
        except ValueError as e:
            if which == args.mechanisms:
                raise CliError(f"no {which}-mechanism projection on '{args.config}': {e}"
                               + (" (try --mechanisms old)" if which == "new" else "")) from e
            skipped.append(f"No comparison with the {which} mechanisms: they cannot run on "
                           f"'{args.config}' ({e}).")
            return None

    old = attempt("old", lambda: project_bert_resnet(
        args.config, sparsities=sparsities, batch=args.batch or 8, seq=args.seq,
        bert_large=True))
    new = attempt("new", lambda: project_plan(
        args.config, sparsities=sparsities, seq=args.seq, bert_large=True,
        kv="onchip" if "kv-on-chip" in args.assume else "auto",
        add="store" if "residual-at-store" in args.assume else "gemm",
        resnet="spatial" if "spatial-resnet" in args.assume else "plan"))
    rows, other = (new, old) if args.mechanisms == "new" else (old, new)
    print("\n".join([format_projection(rows, args.config, compare=other), *skipped]),
          file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(to_json(projection_json(rows)))
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


# -- models: ONNX import, compiled-model files ---------------------------------------------


def _parse_input_shape(text):
    """``--input-shape 1x64`` (or ``1,64``) -> (1, 64)."""
    if text is None:
        return None
    try:
        dims = tuple(int(d) for d in text.replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise CliError(f"--input-shape {text}: give positive dimensions such as 1x64")
    return dims


def _parse_sparsity(text):
    """``--sparsity 4`` (every layer) or ``--sparsity 1,4,1`` (one per layer)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise CliError(f"--sparsity {text}: give an integer or one per layer, such as "
                       "1,8,1") from None
    return values[0] if len(values) == 1 else values


def _import_onnx(path, input_shape):
    """``path`` (or an ONNX ModelProto) imported; ``input_shape`` is ``--input-shape``'s text
    or a parsed tuple."""
    try:
        from .sw.onnx_import import import_onnx
    except ImportError as e:
        raise CliError(f"reading ONNX needs the onnx package ({e}); pip install onnx") from e
    if isinstance(input_shape, str) or input_shape is None:
        input_shape = _parse_input_shape(input_shape)
    try:
        return import_onnx(path, input_shape=input_shape)
    except ValueError as e:
        raise CliError(str(e)) from e


def _load_s4(path, config=None):
    from .sw.model_file import load

    try:
        return load(path, config)
    except ValueError as e:
        raise CliError(str(e)) from e


@command("compile", "compile a float ONNX model (a chain of Gemm / MatMul, bias Add, Relu, "
         "Sigmoid and Tanh, a CNN of Conv, BatchNormalization, Relu, residual Add, "
         "MaxPool, AveragePool, GlobalAveragePool, Flatten and Gemm, or a stack of post-LN "
         "transformer encoder layers; opsets 13 to 20) to a .s4 file, and report its "
         "quantization error against onnxruntime",
         shared=("config", "seed"),
         options=[arg("model", help="float ONNX model"),
                  arg("--sparsity", required=True, help="s for every layer, or one per layer "
                      "(1,8,1; a CNN's Conv and Gemm layers in graph order)"),
                  arg("--calib", help="calibration inputs .npy, shaped as the model input "
                      "(default: 256 normal random samples; real data gives better scales; "
                      "an encoder needs it: float sequences [n, seq, hidden])"),
                  arg("--input-shape", help="fixes dynamic input dimensions, such as 1x64"),
                  arg("--host-fallback", action="store_true", help="run unsupported nodes "
                      "before the first and after the last device layer (an input "
                      "normalization, a final Softmax) on the host, with onnxruntime"),
                  arg("-o", "--output", required=True, help="the .s4 file to write")])
def _cmd_compile(args):
    import numpy as np

    from .base.config import load_config
    from .sw.compiler import compile_model
    from .sw.model_file import ModelFile, save

    if not args.output.endswith(".s4"):
        raise CliError(f"-o {args.output}: name the compiled model file *.s4")
    sparsity = _parse_sparsity(args.sparsity)
    config = load_config(args.config)
    for s in sparsity if isinstance(sparsity, list) else [sparsity]:
        if s not in config.sparsities:
            raise CliError(f"--sparsity {s}: config {config.name} runs "
                           f"{', '.join(map(str, config.sparsities))}")
    in_shape = _parse_input_shape(args.input_shape)
    host, device = None, args.model
    if args.host_fallback:
        try:
            from .sw.host_fallback import split_graph
            host, device = split_graph(args.model, input_shape=in_shape)
        except ImportError as e:
            raise CliError(f"reading ONNX needs the onnx package ({e}); pip install onnx") \
                from e
        except ValueError as e:
            raise CliError(str(e)) from e
    full_shape = None
    if host is not None:     # the graph input's shape, its batch as --input-shape gives it
        full_shape = ((in_shape or (1,))[0], *host.input_shape[1:])
    graph = None
    if host is None:
        graph = _import_onnx(device, in_shape)
        full_shape = graph.input_shape
    encoder = graph is not None and hasattr(graph, "seq")
    if encoder and not args.calib:
        raise CliError(f"{args.model} is a transformer encoder: its scales need a calibration "
                       f"set of float sequences (--calib CALIB.npy, shaped [n, "
                       f"{', '.join(map(str, full_shape[1:]))}])")
    if args.calib:
        calib = _load_npy(args.calib, "--calib")
        if calib.dtype.kind not in "fiu":
            raise CliError(f"--calib: {args.calib} holds {calib.dtype}, not numbers")
        if calib.ndim != len(full_shape) or tuple(calib.shape[1:]) != tuple(full_shape[1:]):
            raise CliError(f"--calib: {args.calib} has shape {list(calib.shape)}; the model "
                           f"takes [B, {', '.join(map(str, full_shape[1:]))}]")
    else:
        print("s4 compile: no --calib, calibrating on 256 normal random samples",
              file=sys.stderr)
        calib = np.random.default_rng(args.seed).normal(size=(256, *full_shape[1:]))
    dev_calib = calib
    info = {"source": Path(args.model).name, "input_shape": list(full_shape)}
    if host is not None:
        try:
            dev_calib = host.run_head(calib)
        except Exception as e:  # noqa: BLE001  (onnxruntime raises its own kinds)
            raise CliError(f"host fallback: the head sub-graph fails on --calib: "
                           f"{' '.join(str(e).split())}") from e
        graph = _import_onnx(device, (full_shape[0], *dev_calib.shape[1:]))
        if hasattr(graph, "seq"):
            raise CliError("--host-fallback: a transformer encoder runs on the device whole; "
                           "compile it without --host-fallback")
        info["device_input_shape"] = list(graph.input_shape)
    info.update({"input_name": graph.input_name, "output_name": graph.output_name,
                 "opset": graph.opset})
    try:
        if hasattr(graph, "net"):
            from .sw.convnet import quantize_net
            model = quantize_net(graph.net, graph.host_input(dev_calib),
                                 graph.sparsity_map(sparsity), progress=sys.stderr)
            info.update({"layout": "NCHW", "flat_output": graph.flat_output})
        elif encoder:
            from .sw.encoder import compile_stack, encoder_program
            from .sw.program import Allocator, DeviceInfo
            model = compile_stack(graph.layers, list(graph.host_input(dev_calib)), sparsity,
                                  progress=sys.stderr)
            try:     # the program of one sequence must fit the configuration's scratchpads
                encoder_program(DeviceInfo.from_config(config), model.layers,
                                np.zeros((model.seq, model.hidden), np.int8),
                                alloc=Allocator(0, 1 << 40))
            except ValueError as e:
                raise CliError(f"{args.model} does not run on config {config.name}: {e}") \
                    from None
        else:
            model = compile_model(graph.layers, graph.host_input(dev_calib), sparsity)
        save(args.output, model, args.config, info, host)
    except ValueError as e:
        raise CliError(str(e)) from e
    except OSError as e:
        raise CliError(f"cannot write {args.output}: {e.strerror or e}") from e
    print(model.summary())
    if host is not None:
        print("\n".join(host.describe()))
    _print_quant_error(args.model, in_shape, ModelFile(model, config, info, host), calib)
    print(f"-> {args.output} (config {args.config})")
    return 0


#: At most this many calibration inputs are compared with onnxruntime (sequences of an
#: encoder).
QUANT_ERROR_INPUTS = 2048
ENCODER_QUANT_INPUTS = 64


def quant_error(model, input_shape, mf, x) -> dict:
    """The output error of compiled model ``mf`` (a :class:`~s4accel.sw.model_file.ModelFile`,
    run on the golden model, host-fallback parts included) against onnxruntime running float
    ONNX ``model`` on inputs ``x``: ``inputs``, ``max_abs``, ``range`` (the float output's
    max - min), ``rel`` (max_abs / range) and, for a classifier (``[B, classes]`` output),
    ``top1`` agreement."""
    import numpy as np

    from .sw.host_fallback import run_onnx, with_batch

    if mf.kind == "encoder":      # one sequence at a time (exports fix the batch to 1)
        from .sw.progress import track
        x = np.asarray(x)[:ENCODER_QUANT_INPUTS]
        m = with_batch(model, input_shape)
        ref = np.concatenate([run_onnx(m, s[None]) for s in track(
            x, "onnxruntime on the calibration sequences", sys.stderr)])
    else:
        x = np.asarray(x)[:QUANT_ERROR_INPUTS]
        ref = run_onnx(with_batch(model, input_shape), x)
    got, _ = _run_s4(mf, x, "golden", None)
    got = got.astype(np.float64).reshape(ref.shape)
    err = float(np.abs(got - ref).max())
    span = float(ref.max() - ref.min())
    res = {"inputs": len(x), "max_abs": err, "range": span, "rel": err / span if span else 0.0}
    if mf.kind == "encoder":
        res["cosine"] = float(got.ravel() @ ref.ravel()
                              / (np.linalg.norm(got) * np.linalg.norm(ref) or 1.0))
    if ref.ndim == 2 and ref.shape[1] > 1:
        res["top1"] = float((got.argmax(1) == ref.argmax(1)).mean())
    return res


def _print_quant_error(model, input_shape, mf, calib):
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("quantization error: not measured (pip install onnxruntime)")
        return
    try:
        e = quant_error(model, input_shape, mf, calib)
    except Exception as ex:  # noqa: BLE001  (onnxruntime raises its own kinds)
        print(f"quantization error: not measured (onnxruntime: {' '.join(str(ex).split())})")
        return
    top1 = f", top-1 agreement {100 * e['top1']:.2f} %" if "top1" in e else ""
    if "cosine" in e:
        top1 = f", cosine similarity {e['cosine']:.5f}"
    print(f"quantization error on {e['inputs']} calibration inputs, against onnxruntime in "
          f"float: max abs {e['max_abs']:.4g} ({100 * e['rel']:.2f} % of the output range "
          f"{e['range']:.4g}){top1}")


@command("run", "run a compiled .s4 model on float inputs from a .npy file",
         shared={"config": {"default": None, "help": "the device's configuration (default: "
                            "the one the model was compiled for)"}, "sim": ...},
         options=[arg("model", help="compiled model (.s4)"),
                  arg("--input", required=True, help="float inputs .npy, shaped as the "
                      "model input with any batch size (an encoder: [B, seq, hidden] or one "
                      "[seq, hidden])"),
                  arg("--backend", choices=("model", "rtl", "uart"), default="model",
                      help="model: the functional device model (default); rtl: the "
                      "accelerator's RTL in a simulator (--sim); uart: a board behind its "
                      "UART host bridge (--port)"),
                  arg("--port", help="--backend uart: the board's serial port (/dev/ttyUSB0), "
                      "or 'model' for the functional model behind the bridge protocol"),
                  arg("--baud", type=int, default=115_200, help="--backend uart: the "
                      "bitstream's baud rate (default 115200)"),
                  arg("--batch", type=int, default=32, help="inputs per device job on the rtl "
                      "and uart backends (default 32)"),
                  arg("-o", "--out", required=True, help="float outputs .npy")])
def _cmd_run(args):
    import numpy as np

    _check_out(args.out)
    if args.backend == "uart" and not args.port:
        raise CliError("--backend uart needs --port (the board's serial port, or 'model')")
    if args.backend != "uart" and args.port:
        raise CliError("--port is for --backend uart")
    if args.batch < 1:
        raise CliError(f"--batch {args.batch}: give a positive number of inputs")
    mf = _load_s4(args.model, args.config)
    x = _load_npy(args.input, "--input")
    shape = mf.info.get("input_shape")
    if x.dtype.kind not in "fiu":
        raise CliError(f"--input: {args.input} holds {x.dtype}, not numbers")
    given = list(x.shape)
    one = mf.kind == "encoder" and x.ndim == 2        # one sequence [seq, hidden]
    if one:
        x = x[None]
    if shape is not None and (x.ndim != len(shape) or list(x.shape[1:]) != shape[1:]):
        also = (f" (or one [{', '.join(map(str, shape[1:]))}])" if mf.kind == "encoder"
                else "")
        raise CliError(f"--input: {args.input} has shape {given}; the model takes "
                       f"[B, {', '.join(map(str, shape[1:]))}]{also}")
    config = mf.config if args.config is None else args.config
    try:
        out, cycles = _run_s4(mf, x, args.backend, config, sim=args.sim, port=args.port,
                              baud=args.baud, batch=args.batch)
    except ValueError as e:
        raise CliError(str(e)) from e
    if one:
        out, x = out[0], x[0]
    try:
        np.save(args.out, out)
    except OSError as e:
        raise CliError(f"cannot write --out {args.out}: {e.strerror or e}") from e
    where = {"model": "", "rtl": f", {cycles} device cycles on {args.sim}",
             "uart": f" over {args.port}"}[args.backend]
    what = "1 sequence" if one else f"{x.shape[0]} inputs"
    print(f"{args.model}: {what} -> {args.out} {list(out.shape)} float32 "
          f"(backend {args.backend}, config {mf.config.name}{where})")
    return 0


def _run_s4(mf, x, backend, config, *, sim="verilator", port=None, baud=115_200, batch=32):
    """A loaded .s4 model (:class:`~s4accel.sw.model_file.ModelFile`) on float inputs ``x``
    shaped as the model input: the host parts (input quantization, host-fallback sub-graphs,
    output dequantization) here, the device part on ``backend`` (``golden``: the golden
    model's integers, as every backend gives them). Returns ``(float32 output,
    device cycles)``; ``ValueError`` (one line) for what fails."""
    import numpy as np

    from .sw.onnx_import import graph_output, nchw_input

    net = mf.kind == "convnet"
    if mf.kind == "encoder":
        xq = mf.model.quantize_input(x)
        try:
            y, cycles = _on_device(mf, xq, backend, config, sim=sim, port=port, baud=baud,
                                   batch=batch)
        except MemoryError as e:
            raise ValueError(f"backend {backend}: {e}: the encoder's weights do not fit the "
                             "device's DRAM") from e
        return np.asarray(mf.model.dequantize(y), np.float32), cycles
    if mf.host is not None:
        x = mf.host.run_head(x)
    if net:
        xq = mf.model.quantize_input(nchw_input(
            x, mf.info.get("device_input_shape", mf.info["input_shape"]),
            mf.info.get("input_name", "x")))
    else:
        xq = mf.model.quantize_input(np.asarray(x, np.float64).reshape(len(x), -1))
    y, cycles = _on_device(mf, xq, backend, config, sim=sim, port=port, baud=baud, batch=batch)
    if net:
        out = graph_output(mf.model.dequantize(y), mf.info.get("flat_output", True))
    else:
        out = mf.model.dequantize_output(y)
    if mf.host is not None:
        out = mf.host.run_tail(out)
    return np.asarray(out, np.float32), cycles


#: The functional model's DRAM for an encoder (as ``sim/workloads/minilm.py`` runs MiniLM's
#: six layers: their weights take 11 MB).
ENCODER_MODEL_DRAM = 256 << 20


def _on_device(mf, xq, backend, config, *, sim, port, baud, batch):
    """The integer output of ``mf``'s device part on int8 inputs ``xq`` and its cycles."""
    from .sim.workloads.execute import run_net_on_model, run_on_model

    net = mf.kind in ("convnet", "encoder")
    if backend == "golden":
        return (mf.model.forward_int(xq) if net else mf.model.reference(xq)), 0
    if backend == "model":
        if mf.kind == "encoder":   # one program a sequence, every layer's weights in DRAM
            return run_net_on_model(config, mf.model, xq, batch=1,
                                    dram_size=ENCODER_MODEL_DRAM)
        if net:
            return run_net_on_model(config, mf.model, xq)
        y, results = run_on_model(config, mf.model, xq)
        return y, sum(r.cycles for r in results)
    if backend == "rtl":
        from .sim.tb.runner import SimulationFailed
        from .sim.workloads.execute import run_on_rtl
        try:
            out, _ = run_on_rtl(config, {"model": mf.model}, xq, batch=batch, sim=sim)
        except (SimulationFailed, RuntimeError, OSError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"the RTL run on {sim} failed: {reason}") from e
        return out["model"]["y"], sum(out["model"]["cycles"])
    return _on_uart(mf, xq, config, port, baud, batch)


def _on_uart(mf, xq, config, port, baud, batch):
    """``_on_device`` through the UART host bridge: a board on serial ``port``, or the
    functional model behind the bridge protocol (``port`` ``model``)."""
    import asyncio

    import numpy as np

    from .sim.workloads.execute import run_net_on_driver
    from .sw.compiler import run_model
    from .sw.driver import Driver
    from .sw.program import DeviceInfo
    from .sw.uart_backend import BridgeError, SerialTransport, UartBackend

    async def main(transport):
        dev = Driver(UartBackend(transport), ring_slots=16)   # a board's DRAM is small
        info = await dev.open()
        want = DeviceInfo.from_config(mf.config)
        # (the vector unit and the decoders: a compiled linear or convolutional model uses
        # neither, and board builds leave the vector unit out)
        diff = [f"{k} {getattr(want, k)} (device: {getattr(info, k)})"
                for k in want.__dataclass_fields__
                if k not in ("vec_max_row", "vec_units", "jpeg_decoders")
                and getattr(want, k) != getattr(info, k)]
        if diff:
            raise ValueError(f"the device on {port} is not configuration "
                             f"{mf.config.name!r}: the model needs {', '.join(diff)}")
        if mf.kind in ("convnet", "encoder"):
            y, cycles, _ = await run_net_on_driver(
                dev, mf.model, xq, batch=getattr(mf.model, "program_batch", batch))
            return y, cycles
        ys, cycles = [], 0
        for i in range(0, len(xq), batch):
            mark = dev.alloc.top
            try:
                y, c, _ = await run_model(dev, mf.model, xq[i:i + batch])
            finally:
                dev.alloc.top = mark
            ys.append(y)
            cycles += c
        return np.concatenate(ys), cycles

    try:
        if port == "model":
            from .sim.model.uart_model import ModelTransport
            return asyncio.run(main(ModelTransport(config)))
        with SerialTransport(port, baud) as transport:
            return asyncio.run(main(transport))
    except MemoryError as e:
        raise ValueError(f"--backend uart on {port}: {e}: the model's data for --batch "
                         f"{batch} do not fit the board's DRAM") from e
    except (BridgeError, OSError, ImportError, RuntimeError) as e:
        raise ValueError(f"--backend uart on {port}: {' '.join(str(e).split())}") from e


@command("inspect", "layers, shapes, sparsity, MACs and predicted cycles of an ONNX model or "
         "a .s4 file",
         shared={"config": {"default": None, "help": "configuration for the cycle "
                            "prediction (default: the .s4 file's, or fpga)"}},
         options=[arg("model", help="float ONNX model or compiled .s4"),
                  arg("--sparsity", default="1", help="for an ONNX model: s for every layer "
                      "or one per layer (default 1)"),
                  arg("--input-shape", help="fixes dynamic input dimensions, such as 1x64"),
                  arg("--host-fallback", action="store_true", help="for an ONNX model: as "
                      "s4 compile --host-fallback, show the device part and the split")])
def _cmd_inspect(args):
    from .base.config import load_config
    from .sim.model.perf_model import predict_layer

    rows = []
    split = None
    if args.model.endswith(".s4"):
        mf = _load_s4(args.model, args.config)
        split = mf.host
        shape = tuple(mf.info.get("device_input_shape") or mf.info.get("input_shape") or (1,))
        given = _parse_input_shape(args.input_shape)
        if given:    # behind a host head only the batch carries over to the device part
            shape = (given[0], *shape[1:]) if split is not None else given
        if mf.kind == "encoder":
            config = mf.config if args.config is None else load_config(args.config)
            return _inspect_encoder(args, mf.model, config,
                                    f"compiled encoder, config {mf.config.name}, from "
                                    f"{mf.info.get('source', '?')}")
        if mf.kind == "convnet":
            config = mf.config if args.config is None else load_config(args.config)
            return _inspect_net(args, mf.model, config, shape,
                                f"compiled model, config {mf.config.name}, from "
                                f"{mf.info.get('source', '?')}", split)
        config = mf.config if args.config is None else load_config(args.config)
        m = shape[0]
        src = f"compiled model, config {mf.config.name}, from {mf.info.get('source', '?')}"
        for q in mf.model.layers:
            rows.append((q.name, q.packed.k, q.packed.n, q.sparsity, q.params.mode,
                         q.params.relu, q.params.lut is not None))
        host = mf.model.host_ops
    else:
        graph, split = _inspect_import(args)
        config = load_config(args.config or "fpga")
        sparsity = _parse_sparsity(args.sparsity)
        if hasattr(graph, "seq"):
            import numpy as np

            from .sw.encoder import compile_stack
            try:     # scales from two random sequences: enough for the cycles
                calib = np.random.default_rng(0).normal(size=(2, *graph.input_shape[1:]))
                enc = compile_stack(graph.layers, list(calib), sparsity)
            except ValueError as e:
                raise CliError(f"--sparsity: {e}") from e
            return _inspect_encoder(args, enc, config, f"ONNX opset {graph.opset}, input "
                                    f"{graph.input_name!r}, a transformer encoder")
        if hasattr(graph, "net"):
            import numpy as np

            from .sw.convnet import quantize_net
            try:
                calib = np.random.default_rng(0).normal(size=(2, *graph.net.input_hwc))
                net = quantize_net(graph.net, calib, graph.sparsity_map(sparsity))
            except ValueError as e:
                raise CliError(f"--sparsity: {e}") from e
            return _inspect_net(args, net, config, graph.input_shape,
                                f"ONNX opset {graph.opset}, input {graph.input_name!r} (NCHW)",
                                split)
        s_list = sparsity if isinstance(sparsity, list) else [sparsity] * len(graph.layers)
        if len(s_list) != len(graph.layers):
            raise CliError(f"--sparsity: {len(s_list)} levels for {len(graph.layers)} layers")
        shape, m = graph.input_shape, graph.input_shape[0]
        src = f"ONNX opset {graph.opset}, input {graph.input_name!r}"
        n_layers = len(graph.layers)
        for i, (layer, s) in enumerate(zip(graph.layers, s_list, strict=True)):
            n, k = layer.weight.shape
            last = i == n_layers - 1
            rows.append((layer.name, k, n, s, "raw" if last else "int8",
                         layer.relu and not last, layer.act is not None and not last))
        host = ["input quantization", "output dequantization"]
    print(f"{args.model}: {src}; input {list(shape)}, predicted for config {config.name} "
          f"with M = {m}")
    print(f"{'layer':<14} {'K':>5} {'N':>5} {'s':>3} {'output':<12} {'MACs dense':>11} "
          f"{'MACs sparse':>11} {'cycles':>8}")
    tot = [0, 0, 0]
    for name, k, n, s, mode, relu, lut in rows:
        dense = m * k * n
        sparse = dense // s
        if s not in config.sparsities:
            raise CliError(f"layer {name!r}: sparsity {s} is not one of config "
                           f"{config.name}'s {list(config.sparsities)}")
        cycles = predict_layer(config, m, k, n, s, mode, lut=lut)["cycles"]
        out = "int32" if mode == "raw" else "int8" + (" ReLU" if relu else "") + (
            " LUT" if lut else "")
        print(f"{name:<14} {k:>5} {n:>5} {s:>3} {out:<12} {dense:>11} {sparse:>11} "
              f"{cycles:>8}")
        tot = [tot[0] + dense, tot[1] + sparse, tot[2] + cycles]
    print(f"{'total':<14} {'':>5} {'':>5} {'':>3} {'':<12} {tot[0]:>11} {tot[1]:>11} "
          f"{tot[2]:>8}")
    print("on the host: " + ", ".join(host))
    if split is not None:
        print("\n".join(split.describe()))
    return 0


def _inspect_import(args):
    """``s4 inspect MODEL.onnx``'s imported graph (its device part with ``--host-fallback``)
    and the split (or None)."""
    import numpy as np

    if not args.host_fallback:
        return _import_onnx(args.model, args.input_shape), None
    in_shape = _parse_input_shape(args.input_shape)
    try:
        from .sw.host_fallback import split_graph
        split, device = split_graph(args.model, input_shape=in_shape)
        if split is None:
            return _import_onnx(device, in_shape), None
        dev = split.run_head(np.zeros(split.input_shape)).shape
    except ImportError as e:
        raise CliError(f"reading ONNX needs the onnx package ({e}); pip install onnx") from e
    except ValueError as e:
        raise CliError(str(e)) from e
    return _import_onnx(device, ((in_shape or (1,))[0], *dev[1:])), split


def _inspect_encoder(args, enc, config, src):
    """``s4 inspect`` of an encoder (:class:`~s4accel.sw.encoder.EncoderStack`): its layers,
    MACs a sequence, and the cycles predicted for the device program of one sequence."""
    import numpy as np

    from .sim.model.perf_model import predict_program
    from .sw.encoder import encoder_program
    from .sw.program import Allocator, DeviceInfo

    L = enc.seq
    print(f"{args.model}: {src}; {len(enc.layers)} layers on sequences of {L} tokens, "
          f"predicted for config {config.name}")
    print(f"{'layer':<8} {'hidden':>6} {'heads':>5} {'FFN':>5} {'s':>3} {'MACs dense':>11} "
          f"{'MACs sparse':>11}")
    tot = [0, 0]
    for i, q in enumerate(enc.layers):
        D, F = q.hidden, q.up.packed.n
        if q.sparsity not in config.sparsities:
            raise CliError(f"layer {i}: sparsity {q.sparsity} is not one of config "
                           f"{config.name}'s {list(config.sparsities)}")
        lin = L * (4 * D * D + 2 * D * F)
        att = 2 * L * L * D
        dense, sparse = lin + att, lin // q.sparsity + att
        print(f"{i:<8} {D:>6} {q.heads:>5} {F:>5} {q.sparsity:>3} {dense:>11} {sparse:>11}")
        tot = [tot[0] + dense, tot[1] + sparse]
    print(f"{'total':<8} {'':>6} {'':>5} {'':>5} {'':>3} {tot[0]:>11} {tot[1]:>11}")
    try:
        prog = encoder_program(DeviceInfo.from_config(config), enc.layers,
                               np.zeros((L, enc.hidden), np.int8), alloc=Allocator(0, 1 << 40))
        print(f"one device program a sequence: {len(prog.descs)} descriptors, "
              f"{predict_program(config, prog)['cycles']} cycles predicted")
    except ValueError as e:
        print(f"does not run on config {config.name}: {e}")
    print("on the host: input quantization, output dequantization")
    return 0


def _inspect_net(args, net, config, shape, src, split=None):
    """``s4 inspect`` of a convolutional network: its operations, MACs per batch of
    ``shape[0]`` images, and the cycles predicted for its whole device program."""
    import numpy as np

    from .sim.model.perf_model import predict_program
    from .sw.program import Allocator, DeviceInfo

    m = shape[0]
    for r in net.layer_rows():
        if r["op"] == "conv" and r["sparsity"] not in config.sparsities:
            raise CliError(f"layer {r['name']!r}: sparsity {r['sparsity']} is not one of "
                           f"config {config.name}'s {list(config.sparsities)}")
    print(f"{args.model}: {src}; input {list(shape)}, predicted for config {config.name} "
          f"with {m} image(s)")
    print(f"{'layer':<14} {'op':<5} {'kernel':<10} {'output HWC':<12} {'K':>5} {'N':>5} "
          f"{'s':>3} {'output':<10} {'MACs dense':>11} {'MACs sparse':>11}")
    tot = [0, 0]
    for r in net.layer_rows():
        out = "x".join(map(str, r["shape"]))
        if r["op"] == "conv":
            dense = m * r["m"] * r["k"] * r["n"]
            sparse = dense // r["sparsity"]
            ker = f"{r['kernel']}x{r['kernel']}/{r['stride']} p{r['pad']}"
            print(f"{r['name']:<14} {'conv':<5} {ker:<10} {out:<12} {r['k']:>5} {r['n']:>5} "
                  f"{r['sparsity']:>3} {r['output']:<10} {dense:>11} {sparse:>11}")
            tot = [tot[0] + dense, tot[1] + sparse]
        else:
            ker = f"{r['kernel']}x{r['kernel']}/{r['stride']}" if "kernel" in r else ""
            print(f"{r['name']:<14} {r['op']:<5} {ker:<10} {out:<12} {'':>5} {'':>5} {'':>3} "
                  f"{r['output']:<10} {'':>11} {'':>11}")
    try:
        info = DeviceInfo.from_config(config)
        prog = net.device_program(np.zeros((m, *net.input_hwc), np.int8), info,
                                  Allocator(0, 1 << 40))
        cycles = predict_program(config, prog)["cycles"]
    except ValueError as e:
        raise CliError(f"the network does not fit config {config.name}: {e}") from e
    print(f"{'total':<14} {'':<5} {'':<10} {'':<12} {'':>5} {'':>5} {'':>3} {'':<10} "
          f"{tot[0]:>11} {tot[1]:>11}")
    print(f"predicted cycles of the whole device program ({len(prog.descs)} descriptors, "
          f"additions and pooling as GEMMs): {cycles}")
    print("on the host: " + net.summary().rsplit("on the host: ", 1)[1])
    if split is not None:
        print("\n".join(split.describe()))
    return 0


@command("fuzz", "random co-simulation: random programs, faults and register pokes on the RTL "
         "against the functional model, or on the model alone (invariants)",
         shared={"config": "tiny", "sim": ..., "json": ...,
                 "seed": {"default": None, "help": "random seed (default: a fresh one, "
                          "printed; the same seed replays the run)"}},
         options=[arg("--backend", choices=("model", "rtl"), default="model"),
                  arg("--descriptors", type=int, default=2000,
                      help="descriptors to hand over in all (default 2000)"),
                  arg("--program", type=int, default=None,
                      help="replay only program PROGRAM of the run with --seed"),
                  arg("--spus", type=int, default=None,
                      help="override the configuration's number of SPUs"),
                  arg("--l2", type=int, default=None, metavar="KIB",
                      help="override the configuration's on-chip L2 size in KiB (0: none)")])
def _cmd_fuzz(args):
    import numpy as np

    from .base.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        if args.spus is not None:
            config = config.replace(spus=args.spus, name=f"{config.name}_{args.spus}spu")
        if args.l2 is not None:
            config = config.replace(l2_kib=args.l2, name=f"{config.name}_l2_{args.l2}")
    except ConfigError as e:
        raise CliError(str(e)) from e
    if args.descriptors < 1:
        raise CliError(f"--descriptors must be at least 1, not {args.descriptors}")
    if args.program is not None and (args.seed is None or args.program < 0):
        raise CliError("--program needs --seed (the run it belongs to) and a program index >= 0")
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy
                                                        % (1 << 32))
    out = sys.stderr if args.json else sys.stdout
    print(f"s4 fuzz: backend {args.backend}, config {config.name}, seed {seed} (replay with "
          f"--seed {seed}), {args.descriptors} descriptors", file=out, flush=True)
    if args.backend == "model":
        from .sim.fuzz import fuzz_model
        stats = fuzz_model(config, seed, args.descriptors, only=args.program, spus=args.spus,
                           log=lambda line: print(line, file=sys.stderr, flush=True),
                           preset=args.config)
        data, reports = stats.as_json(), stats.reports
    else:
        from .sim.fuzz import run_rtl_fuzz
        try:
            data, reports = run_rtl_fuzz(config, seed, args.descriptors, sim=args.sim,
                                         only=args.program, spus=args.spus, preset=args.config)
        except ValueError as e:
            raise CliError(str(e)) from e
    for line in reports:
        print(line, file=out)
    faults = ", ".join(f"{k} {v}" for k, v in sorted(data["faults_by_code"].items())) or "none"
    print(f"{data['programs']} programs, {data['descriptors']} descriptors in "
          f"{data['seconds']:.1f} s; faults: {faults}\nhangs {data['hangs']}, exceptions "
          f"{data['exceptions']}, stray writes {data['stray_writes']}, mismatches "
          f"{data['mismatches']}, bad follow-ups {data['bad_followups']} (seed {seed})", file=out)
    if args.json:
        print(json.dumps(data))
    bad = any(data[k] for k in ("hangs", "exceptions", "stray_writes", "mismatches",
                                "bad_followups"))
    return 1 if bad else 0


@command("formal", "formal proofs of the blocks with SymbiYosys (bounded or k-induction); "
         "needs the [fpga] and [formal] extras", shared=("json",),
         options=[arg("--property", action="append", metavar="NAME",
                      help="run only this property (repeatable; default: all)"),
                  arg("--list", action="store_true", help="list the properties and exit"),
                  arg("--timeout", type=int, default=900,
                      help="seconds per property before it counts as an error (default 900)")])
def _cmd_formal(args):
    import time

    from .sim import formal
    from .sim.report import to_json

    if args.list:
        for p in formal.PROPERTIES:
            print(f"{p.name:22} {p.mode:5} {p.depth:3}  {p.block}: {p.summary}")
        return 0
    try:
        props = [formal.get(n) for n in args.property] if args.property else formal.PROPERTIES
        formal.check_tools()
    except (KeyError, formal.FormalToolError) as e:
        raise CliError(str(e).strip("'\"")) from None
    out = sys.stderr if args.json else sys.stdout
    start = time.monotonic()
    rows = []
    print(f"{'property':22} {'mode':5} {'depth':>5} {'result':6} {'seconds':>8}  block", file=out)
    for p in props:
        row = formal.run(p, timeout=args.timeout)
        log = row.pop("log")
        rows.append(row)
        print(f"{p.name:22} {p.mode:5} {p.depth:5} {row['result']:6} {row['seconds']:8.1f}  "
              f"{p.block}", file=out, flush=True)
        if row["result"] != "pass":
            print(log[-1500:], file=sys.stderr)
    print(f"{sum(r['result'] == 'pass' for r in rows)} of {len(rows)} hold, "
          f"{time.monotonic() - start:.0f} s", file=out)
    if args.json:
        print(to_json(rows))
    return 0 if all(r["result"] == "pass" for r in rows) else 1


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
