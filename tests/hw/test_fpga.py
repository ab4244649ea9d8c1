"""FPGA board wrapper (hw/fpga/boards.py): elaboration, constraints and the on-chip AXI RAM.

The synthesis / place-and-route flow itself (hw/fpga/build.py) needs the YoWASP tools and
minutes per build, so it is not run here.
"""

import fnmatch
import importlib.util
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from s4accel.base.config import load_config
from s4accel.hw.fpga.boards import BOARDS, AxiRam, BoardTop
from s4accel.hw.fpga.build import CONSTRAINTS_DIR, format_result, slow_endpoints
from s4accel.hw.generate import verilog_ports


@pytest.mark.slow
def test_board_top_ports_and_constraints():
    text = verilog.convert(BoardTop(load_config("tiny"), BOARDS["icebreaker"]), name="top",
                           emit_src=False)
    ports = {name: (d, w) for d, name, w in verilog_ports(text, "top")}
    assert ports == {"clk": ("input", 1), "btn": ("input", 1), "uart_rx": ("input", 1),
                     "uart_tx": ("output", 1), "led": ("output", 8)}
    for board in BOARDS.values():
        c = (CONSTRAINTS_DIR / board.constraints).read_text()
        names = set(re.findall(r'(?:COMP "|set_io (?:-\S+ (?:yes )?)*)([\w\[\]]+)', c))
        assert names == {"clk", "btn", "uart_rx", "uart_tx"} | {f"led[{i}]" for i in range(8)}, \
            board.name


def test_axi_ram_burst_write_then_read():
    dut = AxiRam(data_width=32, words=16)
    bus = dut.bus
    data = [0x11111111 * (i + 1) for i in range(4)]
    got = []

    async def bench(ctx):
        ctx.set(bus.awaddr, 0x1008)
        ctx.set(bus.awlen, 3)
        ctx.set(bus.awvalid, 1)
        await ctx.tick().until(bus.awready)
        ctx.set(bus.awvalid, 0)
        for i, d in enumerate(data):
            ctx.set(bus.wdata, d)
            ctx.set(bus.wstrb, 0xF if i != 1 else 0x3)
            ctx.set(bus.wlast, i == 3)
            ctx.set(bus.wvalid, 1)
            await ctx.tick().until(bus.wready)
        ctx.set(bus.wvalid, 0)
        ctx.set(bus.bready, 1)
        await ctx.tick().until(bus.bvalid)
        ctx.set(bus.bready, 0)
        ctx.set(bus.araddr, 0x1008)
        ctx.set(bus.arlen, 3)
        ctx.set(bus.arvalid, 1)
        await ctx.tick().until(bus.arready)
        ctx.set(bus.arvalid, 0)
        ctx.set(bus.rready, 1)
        while len(got) < 4:
            _, _, valid, rdata, rlast = await ctx.tick().sample(bus.rvalid, bus.rdata,
                                                                bus.rlast)
            if valid:
                got.append((rdata, rlast))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(1e-4)
    # beat 1 was written with wstrb 0x3: its upper half stays 0 (RAM init)
    assert got == [(data[0], 0), (data[1] & 0xFFFF, 0), (data[2], 0), (data[3], 1)]


@pytest.mark.slow
def test_board_clock_comes_from_the_pll_when_needed():
    """fpga (100 MHz) on ULX3S's 25 MHz oscillator needs the EHXPLLL (x4); tiny (24 MHz) on
    iCEBreaker's 12 MHz the SB_PLL40_PAD (x2); tiny on ULX3S runs from the 25 MHz pin."""
    fpga = BoardTop(load_config("fpga"), BOARDS["ulx3s"])
    assert fpga.clock_mhz == 100.0
    text = verilog.convert(fpga, name="top", emit_src=False)
    assert "EHXPLLL" in text and ".CLKFB_DIV(32'd4)" in text and ".CLKOP_DIV(32'd6)" in text
    ice = BoardTop(load_config("tiny"), BOARDS["icebreaker"])
    assert ice.clock_mhz == 24.0
    text = verilog.convert(ice, name="top", emit_src=False)
    assert "SB_PLL40_PAD" in text and ".DIVF(32'd63)" in text and ".DIVQ(32'd5)" in text
    tiny = BoardTop(load_config("tiny"), BOARDS["ulx3s"])
    assert tiny.pll is None and tiny.clock_mhz == 25.0
    assert "EHXPLLL" not in verilog.convert(tiny, name="top", emit_src=False)


def test_slow_endpoints_from_a_detailed_nextpnr_report():
    # the shape nextpnr writes with --detailed-timing-report: per net, each endpoint's delay
    # is [routing delay, arrival time]
    def net(name, *ends):
        return {"net": name, "driver": "x", "port": "F",
                "endpoints": [{"cell": c, "port": p, "delay": [0.3, t]} for c, p, t in ends]}
    report = {"detailed_net_timings": [
        net("a", ("core.s4.dma.job_TRELLIS_FF_Q_3", "CE", 10.61),
            ("core.s4.dma.job_TRELLIS_FF_Q_12", "CE", 10.42),
            ("core.s4.dma.addr_TRELLIS_FF_Q", "CE", 9.9)),
        net("b", ("core.s4.spu.hold_valid0_TRELLIS_FF_Q", "DI", 12.2)),
        net("c", ("core.s4.spu.wgt_sram.0.1_DP16KD", "ADA5", 10.05)),
    ]}
    slow = slow_endpoints(report, 10.0)
    assert [(g["register"], g["port"], g["arrival_ns"], g["endpoints"]) for g in slow] == [
        ("core.s4.spu.hold_valid0", "DI", 12.2, 1),
        ("core.s4.dma.job", "CE", 10.61, 2),
        ("core.s4.spu.wgt_sram.0.1", "ADA5", 10.05, 1)]
    assert slow_endpoints(report, 12.5) == []
    assert slow_endpoints({}, 10.0) == []
    text = format_result({"board": "ulx3s", "config": "fpga", "luts": 1, "ffs": 1, "dsps": 0,
                          "brams": 0, "sprams": 0, "fmax_mhz": 82.0, "target_mhz": 100.0,
                          "synth_s": 1, "pnr_s": 1, "utilization": {},
                          "slow_endpoints": slow})
    assert "late: core.s4.spu.hold_valid0.DI 12.20 ns (1 endpoint)" in text
    assert "late: core.s4.dma.job.CE 10.61 ns (2 endpoints)" in text


def test_nextpnr_gets_the_placer_timing_weight(tmp_path, monkeypatch):
    """The placer timing weight (default TIMING_WEIGHT, or --timing-weight) reaches nextpnr's
    command line, for both families (yosys and nextpnr replaced: the command is only
    recorded, and the failed run is reported as not routed)."""
    from s4accel.hw.fpga import build as fb

    cmds = []

    def fake_run(cmd, log, timeout):
        cmds.append(cmd)
        return 1, 0.0

    def fake_synth(board, config, outdir, **kw):
        outdir.mkdir(parents=True, exist_ok=True)
        return {"clock_mhz": 100.0, "luts": 0, "ffs": 0, "dsps": 0, "brams": 0, "sprams": 0,
                "synth_s": 0.0}

    monkeypatch.setattr(fb, "synthesize", fake_synth)
    monkeypatch.setattr(fb, "_run", fake_run)
    for board, weight in (("ulx3s", None), ("icebreaker", 17)):
        kw = {} if weight is None else {"timing_weight": weight}
        res = fb.build(board, "tiny", tmp_path / board, **kw)
        assert res["routed"] is False and res["fmax_mhz"] is None
        cmd = cmds[-1]
        i = cmd.index("--placer-heap-timingweight")
        assert cmd[i + 1] == str(weight or fb.TIMING_WEIGHT), cmd
    from s4accel.cli import main
    main(["fpga", "build", "--board", "icebreaker", "--out", str(tmp_path / "cli"),
          "--timing-weight", "5"])
    assert cmds[-1][cmds[-1].index("--placer-heap-timingweight") + 1] == "5"


def test_constraints_are_package_resources(tmp_path, monkeypatch):
    """The pin files are package data of ``s4accel.constraints`` (setup.py maps it to
    ``constraints/``; pyproject.toml's package data patterns take every board's file into a
    wheel) and build() reads them only through :data:`CONSTRAINTS_DIR`, the package's
    :mod:`importlib.resources` root, not through a path relative to the source tree (which an
    installed wheel does not have). yosys and nextpnr are replaced: the command is recorded."""
    from s4accel.hw.fpga import build as fb

    spec = importlib.util.find_spec("s4accel.constraints")
    assert spec is not None and spec.submodule_search_locations, "no package s4accel.constraints"
    assert CONSTRAINTS_DIR == resources.files("s4accel.constraints")
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["s4accel.constraints"]
    for board in BOARDS.values():
        assert (CONSTRAINTS_DIR / board.constraints).is_file(), board.name
        assert any(fnmatch.fnmatch(board.constraints, p) for p in patterns), (board, patterns)

    cmds = []
    monkeypatch.setattr(fb, "_run", lambda cmd, log, timeout: (cmds.append(cmd), (1, 0.0))[1])
    monkeypatch.setattr(fb, "synthesize", lambda board, config, outdir, **kw: (
        outdir.mkdir(parents=True, exist_ok=True),
        {"clock_mhz": 25.0, "luts": 0, "ffs": 0, "dsps": 0, "brams": 0, "sprams": 0,
         "synth_s": 0.0})[1])

    def pin_file(board):
        """What nextpnr reads: a name relative to its working directory, the build directory
        (a YoWASP tool may not see an absolute path: its /tmp is not the host's)."""
        fb.build(board, "tiny", tmp_path / board)
        name = cmds[-1][cmds[-1].index("--lpf" if BOARDS[board].family == "ecp5" else "--pcf")
                        + 1]
        assert not Path(name).is_absolute() and "/" not in name, name
        return (tmp_path / board / name).read_bytes()

    for board in BOARDS.values():
        assert pin_file(board.name) == (CONSTRAINTS_DIR / board.constraints).read_bytes()
    # another package root (as in an installed wheel): the files come from there
    elsewhere = tmp_path / "site-packages" / "s4accel" / "constraints"
    elsewhere.mkdir(parents=True)
    monkeypatch.setattr(fb, "CONSTRAINTS_DIR", elsewhere)
    for board in BOARDS.values():
        (elsewhere / board.constraints).write_text(f"# {board.name}\n")
        assert pin_file(board.name) == f"# {board.name}\n".encode()
