"""PLL divider search (hw/fpga/pll.py) against the datasheet formulas and the icestorm /
Trellis tools' answers for the boards' oscillators."""

import pytest

from s4accel.hw.fpga.pll import PllError, pll_params


def test_ecp5_25_to_100_matches_ecppll():
    # yowasp-ecppll -i 25 -o 100: refclk divisor 1, feedback divisor 4, clkout0 divisor 6
    p = pll_params("ecp5", 25.0, 100.0)
    d = p.dividers
    assert (d["CLKI_DIV"], d["CLKFB_DIV"], d["CLKOP_DIV"]) == (1, 4, 6)
    assert p.f_out == 100.0 and p.f_vco == 600.0


def test_ice40_12_to_24_matches_icepll():
    # yowasp-icepll -i 12 -o 24: DIVR 0, DIVF 63, DIVQ 5, FILTER_RANGE 1, VCO 768 MHz
    p = pll_params("ice40", 12.0, 24.0)
    assert p.dividers == {"DIVR": 0, "DIVF": 63, "DIVQ": 5, "FILTER_RANGE": 1}
    assert p.f_out == 24.0


@pytest.mark.parametrize("family,f_in", [("ecp5", 25.0), ("ice40", 12.0)])
@pytest.mark.parametrize("f_out", [20.0, 33.0, 48.0, 75.0, 100.0])
def test_formulas_and_ranges(family, f_in, f_out):
    p = pll_params(family, f_in, f_out, tolerance=0.05)
    d = p.dividers
    if family == "ecp5":
        pfd = f_in / d["CLKI_DIV"]
        assert p.f_out == pytest.approx(pfd * d["CLKFB_DIV"])
        assert p.f_vco == pytest.approx(p.f_out * d["CLKOP_DIV"])
        assert 3.125 <= pfd <= 400 and 400 <= p.f_vco <= 800
    else:
        pfd = f_in / (d["DIVR"] + 1)
        assert p.f_vco == pytest.approx(pfd * (d["DIVF"] + 1))
        assert p.f_out == pytest.approx(p.f_vco / 2 ** d["DIVQ"])
        assert 10 <= pfd <= 133 and 533 <= p.f_vco <= 1066
    assert abs(p.f_out - f_out) <= 0.05 * f_out


def test_unreachable_frequency_names_it():
    with pytest.raises(PllError, match="1000"):
        pll_params("ecp5", 25.0, 1000.0)
    with pytest.raises(PllError, match="ice40 PLL cannot make 5"):
        pll_params("ice40", 12.0, 5.0)
    with pytest.raises(PllError, match="family"):
        pll_params("gowin", 27.0, 100.0)
