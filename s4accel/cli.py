"""The ``s4`` command line: the front door for every user task."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class CliError(Exception):
    """A user error: printed as ``s4: error: ...`` with exit status 2."""


def _cmd_bench_core(args):
    from .sim.bench.core import bench_core, format_table, plot_speedup

    print(f"s4 bench core: building and running the tensor core RTL ({args.sim}, "
          f"config {args.config}) ...", file=sys.stderr)
    rows, info = bench_core(args.config, m=args.m, k=args.k, n=args.n, seed=args.seed,
                            sim=args.sim)
    r0 = rows[0]
    out = sys.stderr if args.json else sys.stdout
    print(f"\nTensor core, config {info['config']} ({info['lanes']} lanes), GEMM "
          f"M={r0['m']} K={r0['k']} N={r0['n']}, {info['simulator']}: "
          f"build {info['build_s']:.1f} s, run {info['run_s']:.1f} s", file=out)
    print(format_table(rows), file=out)
    plot = Path(args.plot or f"bench_core_{info['config']}.png")
    plot_speedup(rows, plot, f"S4-open tensor core, {info['config']} preset "
                             f"({info['lanes']} lanes)")
    print(f"plot: {plot}", file=out)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


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
                                seed=args.seed, sim=args.sim)
    except ValueError as e:
        raise CliError(str(e)) from e
    out = sys.stderr if args.json else sys.stdout
    print(f"\nWhole layers DRAM to DRAM, config {info['config']} ({info['lanes']} lanes, "
          f"{info['dram_bus_bits']}-bit DRAM bus), {info['simulator']}: build "
          f"{info['build_s']:.1f} s, run {info['run_s']:.1f} s", file=out)
    print(format_table(rows), file=out)
    plot = Path(args.plot or f"bench_gemm_{info['config']}.png")
    plot_layers(rows, plot, f"S4-open layers, {info['config']} preset ({info['lanes']} lanes)")
    print(f"plot: {plot}", file=out)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


def _load_npy(path, what):
    import numpy as np
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {what} from {path}: {e}") from e


def _cmd_gemm(args):
    import numpy as np

    from .base import golden
    from .base.config import load_config
    from .base.sparse import check_sparsity, pack

    x = _load_npy(args.x, "X")
    w = _load_npy(args.w, "W")
    for name, a in (("X", x), ("W", w)):
        if a.dtype != np.int8 or a.ndim != 2:
            raise CliError(f"{name} must be a 2-D int8 array, not {a.dtype} with shape {a.shape}")
    if x.shape[1] != w.shape[1]:
        raise CliError(f"X is {x.shape[0]} x {x.shape[1]} but W is {w.shape[0]} x {w.shape[1]}: "
                       "K must match (Y = X @ W.T)")
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
        config = load_config(args.config)
        with tempfile.TemporaryDirectory() as tmp:
            job, res = Path(tmp) / "job.npz", Path(tmp) / "y.npy"
            np.savez(job, x=x, w=w, s=np.array(args.sparsity))
            runner.run_tests("tensor_core", config, args.sim, "s4accel.sim.tb.jobs",
                             testcase="gemm_file", tag="gemm_file",
                             env={"S4_JOB": job, "S4_RESULT": res})
            y = np.load(res)
            info = json.loads(Path(str(res) + ".json").read_text())
    np.save(args.out, y)
    extra = f", {info['cycles']} cycles on {args.sim} ({args.config})" if info else ""
    print(f"Y = X @ W.T: {y.shape[0]} x {y.shape[1]} int32 -> {args.out} "
          f"(backend {args.backend}, s={args.sparsity}{extra})")
    return 0


def _cmd_regmap(args):
    from .base import regmap

    argv = [args.format]
    if args.output:
        argv += ["-o", args.output]
    if args.config:
        argv += ["--config", args.config]
    if args.regmap:
        argv += ["--regmap", args.regmap]
    if args.check:
        argv.append("--check")
    try:
        return regmap.main(argv)
    except (regmap.RegmapError, ValueError, OSError) as e:
        raise CliError(str(e)) from e


def _cmd_demo(args):
    from .sim.workloads.demo import demo

    try:
        demo(args.config, images=args.images, batch=args.batch, seed=args.seed, sim=args.sim)
    except ValueError as e:
        raise CliError(str(e)) from e
    return 0


def _cmd_bench_digits(args):
    from .sim.workloads.digits import experiment, format_table

    print(f"s4 bench digits: training three MLPs, running them on the device model and "
          f"{args.images} images on the RTL ({args.config}) ...", file=sys.stderr)
    rows, info = experiment(args.config, images=args.images, batch=args.batch, seed=args.seed,
                            sim=args.sim)
    out = sys.stderr if args.json else sys.stdout
    n = rows[0]["test_images"]
    print(f"\nDigits MLPs, config {args.config}: accuracy on {n} test images (functional "
          f"device model), cycles per image on the RTL ({rows[0].get('rtl_images')} images, "
          "bit-exact)", file=out)
    print(format_table(rows), file=out)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


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
                              sim=args.sim, progress=lambda t: print(t, file=sys.stderr))
    out = sys.stderr if args.json else sys.stdout
    print(f"\nSPU array, {args.config} SPUs sharing one {infos[0]['dram_bus_bits']}-bit DRAM "
          f"port, {infos[0]['simulator']}", file=out)
    print(format_table(rows), file=out)
    if args.json:
        keep = ("spus", "layer", "sparsity", "cycles", "speedup_vs_one_spu", "lane_utilization",
                "dram_read_util", "dram_write_util", "dram_bytes", "m", "k", "n")
        print(json.dumps([{k: r[k] for k in keep} for r in rows], indent=1))
    return 0


def _cmd_bench_minilm(args):
    from .sim.workloads import minilm

    try:
        return minilm.main(args.args)
    except minilm.MiniLMMissing as e:
        raise CliError(str(e)) from e


def _cmd_project(args):
    from .sim.model import perf_model

    return perf_model.main(args.args)


def _cmd_fpga_build(args):
    from .hw.fpga import build

    try:
        return build.main(args.args)
    except build.FpgaBuildError as e:
        raise CliError(str(e)) from e


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


def _board_shape(text):
    from .sw.board import parse_shape
    return parse_shape(text)


def build_parser():
    parser = argparse.ArgumentParser(prog="s4", description="S4-open accelerator tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version", help="print the version")

    bench = sub.add_parser("bench", help="benchmarks (RTL simulation)")
    bsub = bench.add_subparsers(dest="bench", required=True)
    core = bsub.add_parser("core", help="tensor core speedup against sparsity")
    core.add_argument("--config", default="fpga")
    core.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    core.add_argument("--m", type=int)
    core.add_argument("--k", type=int)
    core.add_argument("--n", type=int)
    core.add_argument("--seed", type=int, default=0)
    core.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    core.add_argument("--plot", help="PNG path (default bench_core_<config>.png)")
    core.set_defaults(func=_cmd_bench_core)

    bd = bsub.add_parser("digits", help="small dense vs wide sparse MLPs on the digits set")
    bd.add_argument("--config", default="fpga")
    bd.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    bd.add_argument("--images", type=int, default=64, help="test images run on the RTL")
    bd.add_argument("--batch", type=int, default=32)
    bd.add_argument("--seed", type=int, default=0)
    bd.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    bd.set_defaults(func=_cmd_bench_digits)

    ba = bsub.add_parser("array", help="the same layers on 1, 2 and 4 SPUs (RTL)")
    ba.add_argument("--config", default="fpga")
    ba.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    ba.add_argument("--spus", type=int, nargs="+", default=[1, 2, 4])
    ba.add_argument("--layer", action="append")
    ba.add_argument("--sparsity", type=int, action="append")
    ba.add_argument("--seed", type=int, default=0)
    ba.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    ba.set_defaults(func=_cmd_bench_array)

    bmm = bsub.add_parser("minilm", help="MiniLM sentence encoder on the device: cosine "
                          "against float and cycles per token (options: --help)")
    bmm.add_argument("args", nargs=argparse.REMAINDER)
    bmm.set_defaults(func=_cmd_bench_minilm)

    bg = bsub.add_parser("gemm", help="whole layers DRAM to DRAM on the accelerator RTL")
    bg.add_argument("--config", default="fpga")
    bg.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    bg.add_argument("--layer", action="append", help="run only this layer (repeatable; "
                    "default: all BERT-base and ResNet-50 layers)")
    bg.add_argument("--shape", action="append", help="an extra layer MxKxN (repeatable)")
    bg.add_argument("--sparsity", type=int, action="append",
                    help="run only this s (repeatable; default: every level)")
    bg.add_argument("--seed", type=int, default=0)
    bg.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    bg.add_argument("--plot", help="PNG path (default bench_gemm_<config>.png)")
    bg.set_defaults(func=_cmd_bench_gemm)

    gemm = sub.add_parser("gemm", help="one raw int32 GEMM Y = X @ W.T from .npy files")
    gemm.add_argument("--x", required=True, help="int8 M x K .npy")
    gemm.add_argument("--w", required=True, help="int8 N x K .npy, bank-balanced at S")
    gemm.add_argument("--sparsity", type=int, required=True)
    gemm.add_argument("--backend", choices=("model", "rtl"), default="model")
    gemm.add_argument("--config", default="fpga", help="configuration for --backend rtl")
    gemm.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    gemm.add_argument("--out", required=True)
    gemm.set_defaults(func=_cmd_gemm)

    fp = sub.add_parser("fpga", help="FPGA builds with the YoWASP tools (pip install "
                        "-e '.[fpga]')")
    fsub = fp.add_subparsers(dest="fpga", required=True)
    fb = fsub.add_parser("build", help="synthesize, place and route for a board; resource "
                         "and Fmax report (options: --help)")
    fb.add_argument("args", nargs=argparse.REMAINDER)
    fb.set_defaults(func=_cmd_fpga_build)
    fr = fsub.add_parser("run", help="run layers on a board through its UART bridge and check "
                         "them bit for bit with the golden model")
    fr.add_argument("--port", required=True,
                    help="serial port of the board (/dev/ttyUSB0, COM3, ...) or 'model' (the "
                    "functional model answers the bridge protocol)")
    fr.add_argument("--baud", type=int, default=115_200, help="the bitstream's baud rate")
    fr.add_argument("--config", default="tiny", help="preset for --port model (a board "
                    "reports its own configuration)")
    fr.add_argument("--sparsity", type=int, nargs="+", default=[1, 4, 16])
    fr.add_argument("--shape", type=_board_shape, default=(8, 128, 16),
                    help="MxKxN (default 8x128x16)")
    fr.add_argument("--seed", type=int, default=None)
    fr.add_argument("--json", action="store_true")
    fr.set_defaults(func=_cmd_fpga_run)

    pj = sub.add_parser("project", help="performance-model projection of BERT and ResNet-50 "
                        "on a large preset (default antoum; options: --help)")
    pj.add_argument("args", nargs=argparse.REMAINDER)
    pj.set_defaults(func=_cmd_project)

    dm = sub.add_parser("demo", help="the digits model at 16x sparsity on the accelerator RTL")
    dm.add_argument("--config", default="fpga")
    dm.add_argument("--images", type=int, default=128, help="test images run on the RTL")
    dm.add_argument("--batch", type=int, default=32, help="images per device job")
    dm.add_argument("--seed", type=int, default=0)
    dm.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    dm.set_defaults(func=_cmd_demo)

    gen = sub.add_parser("generate", help="Verilog of the whole accelerator and its register "
                                          "documentation")
    gen.add_argument("--config", default="fpga", help="preset name or YAML path")
    gen.add_argument("-o", "--output", required=True, help="output directory")
    gen.set_defaults(func=_cmd_generate)

    rm = sub.add_parser("regmap", help="register map artifacts generated from s4accel/base/regmap.yaml")
    rm.add_argument("--format", required=True, choices=("c", "md", "py", "yaml"))
    rm.add_argument("-o", "--output", help="write to this file instead of stdout")
    rm.add_argument("--config", help="resolve configuration-dependent reset values "
                                     "(preset name or YAML path)")
    rm.add_argument("--regmap", help="register map YAML (default: the packaged s4accel/base/regmap.yaml)")
    rm.add_argument("--check", action="store_true",
                    help="exit 1 if --output differs from what would be generated")
    rm.set_defaults(func=_cmd_regmap)
    return parser


#: Commands whose options belong to another module's own command line (so --help reaches it).
_PASSTHROUGH = {("fpga", "build"): "_cmd_fpga_build",
                ("bench", "minilm"): "_cmd_bench_minilm",
                ("project",): "_cmd_project"}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    for prefix, func in _PASSTHROUGH.items():
        if tuple(argv[:len(prefix)]) == prefix:
            try:
                return globals()[func](argparse.Namespace(args=argv[len(prefix):]))
            except CliError as e:
                print(f"s4: error: {e}", file=sys.stderr)
                return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "version":
        from . import __version__
        print(__version__)
        return 0
    try:
        return args.func(args)
    except CliError as e:
        print(f"s4: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
