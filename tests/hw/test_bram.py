"""RegisteredRam: the ECP5 form (DP16KD grid, output registers) against the generic form
(Amaranth memory + register), side by side in Icarus on the same random traffic."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal

from s4accel.hw.core.bram import RegisteredRam, ecp5_mode
from s4accel.hw.core.dsp import Technology

MODEL = Path(__file__).parent / "ecp5_dp16kd.v"


class _Pair(Elaboratable):
    def __init__(self, width, depth, lanes):
        self.ecp5 = RegisteredRam(width=width, depth=depth, lanes=lanes, family="ecp5")
        self.ref = RegisteredRam(width=width, depth=depth, lanes=lanes, family="generic")
        r = self.ref
        self.w_addr = Signal(len(r.w_addr), name="w_addr")
        self.w_data = Signal(width, name="w_data")
        self.w_en = Signal(lanes, name="w_en")
        self.r_addr = Signal(len(r.r_addr), name="r_addr")
        self.r_en, self.r_oce = Signal(name="r_en"), Signal(name="r_oce")
        self.q_ecp5, self.q_ref = Signal(width, name="q_ecp5"), Signal(width, name="q_ref")

    def elaborate(self, platform):
        m = Module()
        m.submodules.ecp5, m.submodules.ref = self.ecp5, self.ref
        for ram in (self.ecp5, self.ref):
            m.d.comb += [ram.w_addr.eq(self.w_addr), ram.w_data.eq(self.w_data),
                         ram.w_en.eq(self.w_en), ram.r_addr.eq(self.r_addr),
                         ram.r_en.eq(self.r_en), ram.r_oce.eq(self.r_oce)]
        m.d.comb += [self.q_ecp5.eq(self.ecp5.r_data), self.q_ref.eq(self.ref.r_data)]
        return m

    def ports(self):
        return [self.w_addr, self.w_data, self.w_en, self.r_addr, self.r_en, self.r_oce,
                self.q_ecp5, self.q_ref]


def _testbench(width, depth, lanes, rng, cycles):
    """A Verilog testbench: random writes and reads over about 48 addresses (so reads find
    written words), random read / output enables, never a read and write of one word in one
    cycle; compares the two forms' r_data after every edge."""
    # random words and their neighbours (an address bit one place off aliases them), the
    # first and last word
    picks = rng.choice(depth, size=min(depth, 24), replace=False)
    addrs = np.unique(np.concatenate([picks, picks ^ 1, [0, depth - 1]]))
    addrs = addrs[addrs < depth]
    lines = []
    for _ in range(cycles):
        wa, ra = (int(a) for a in rng.choice(addrs, size=2))
        we = int(rng.integers(0, 1 << lanes)) if rng.random() < 0.5 else 0
        re, oce = int(rng.random() < 0.7), int(rng.random() < 0.7)
        if re and wa == ra:
            we = 0
        wd = int.from_bytes(rng.bytes((width + 7) // 8), "little") & ((1 << width) - 1)
        lines.append(f"    w_addr = {wa}; w_en = {we}; w_data = {width}'h{wd:x}; "
                     f"r_addr = {ra}; r_en = {re}; r_oce = {oce}; step;")
    body = "\n".join(lines)
    return f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 0;
  reg [{len(Signal(range(max(2, depth)))) - 1}:0] w_addr, r_addr;
  reg [{width - 1}:0] w_data;
  reg [{lanes - 1}:0] w_en;
  reg r_en, r_oce;
  wire [{width - 1}:0] q_ecp5, q_ref;
  integer bad = 0, nonzero = 0, xs = 0;
  top dut(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en),
          .r_addr(r_addr), .r_en(r_en), .r_oce(r_oce), .q_ecp5(q_ecp5), .q_ref(q_ref));
  task step; begin
    #5 clk = 1; #1;
    if (^q_ref === 1'bx) xs = xs + 1;   // the generic read port before its first read
    else if (q_ecp5 !== q_ref) begin
      bad = bad + 1;
      if (bad < 5) $display("MISMATCH t=%0t ecp5=%h ref=%h", $time, q_ecp5, q_ref);
    end
    if (q_ref != 0) nonzero = nonzero + 1;
    #4 clk = 0;
  end endtask
  initial begin
{body}
    $display("RESULT bad=%0d nonzero=%0d xs=%0d", bad, nonzero, xs);
    $finish;
  end
endmodule
"""


# (width, depth, lanes): the SPU's and the requantizer's shapes on tiny and fpga, and the
# narrow modes
SHAPES = [
    (128, 2048, 1),    # fpga weight bank: 9-bit mode, 15 primitives
    (512, 128, 4),     # fpga parameters: 36-bit pseudo dual port, 4 a lane
    (256, 512, 2),     # fpga activation row: 36-bit, lanes of 128
    (64, 512, 2),      # tiny weights: 36-bit, a lane of 32 bits in one primitive
    (8, 256, 1),       # requantizer LUT: one primitive (36-bit mode, the widest)
    (20, 4096, 2),     # 4-bit mode
    (3, 9000, 1),      # 1-bit mode
]


def test_ecp5_mode_choice():
    assert ecp5_mode(2048, 128) == (9, 3, 15)
    assert ecp5_mode(128, 128) == (36, 5, 4)
    assert ecp5_mode(256, 8) == (36, 5, 1)     # widest on a tie
    assert ecp5_mode(1024, 18) == (18, 4, 1)
    assert ecp5_mode(16384, 3) == (1, 0, 3)
    with pytest.raises(ValueError, match="16385"):
        ecp5_mode(16385, 8)
    with pytest.raises(ValueError, match="lanes"):
        RegisteredRam(width=10, depth=4, lanes=3)


def test_ecp5_form_uses_output_registers():
    def rtl(**kw):
        ram = RegisteredRam(width=128, depth=2048)
        ports = [ram.w_addr, ram.w_data, ram.w_en, ram.r_addr, ram.r_en, ram.r_oce, ram.r_data]
        return verilog.convert(ram, ports=ports, name="ram", **kw)
    ecp5 = rtl(platform=Technology("ecp5"))
    assert ecp5.count("DP16KD ") == 15
    assert ecp5.count(".REGMODE_B(\"OUTREG\")") == 15
    assert "DP16KD" not in rtl()


@pytest.mark.rtl
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_ecp5_form_matches_generic(shape, seed, tmp_path):
    width, depth, lanes = shape
    rng = np.random.default_rng(seed)
    pair = _Pair(width, depth, lanes)
    (tmp_path / "top.v").write_text(verilog.convert(pair, ports=pair.ports(), name="top"))
    (tmp_path / "tb.v").write_text(_testbench(width, depth, lanes, rng, 600))
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "-s", "tb", "tb.v", "top.v", str(MODEL)],
                   cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    result = [line for line in out.splitlines() if line.startswith("RESULT")]
    assert result, out
    fields = dict(kv.split("=") for kv in result[0].split()[1:])
    assert int(fields["bad"]) == 0, out
    assert int(fields["nonzero"]) > 100, out    # the reads did find written words
    assert int(fields["xs"]) < 20, out          # (undefined only until the first reads)
