"""PLLs of the supported FPGA families: divider search and the primitive instance.

:func:`pll_params` finds the dividers that bring a board oscillator closest to the frequency a
configuration asks for (``Config.clock_mhz``), within the datasheet ranges of the family;
:class:`Pll` instantiates the primitive (ECP5 ``EHXPLLL``, iCE40 ``SB_PLL40_PAD``) and drives a
clock domain from it. The numbers agree with the icestorm / Trellis tools
(``yowasp-icepll -i 12 -o 24``, ``yowasp-ecppll -i 25 -o 100``), which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PllParams", "pll_params", "Pll", "PllError"]


class PllError(ValueError):
    """No divider setting reaches the requested frequency within the family's ranges."""


@dataclass(frozen=True)
class PllParams:
    family: str
    f_in: float
    f_out: float              #: achieved output frequency (MHz)
    f_vco: float
    dividers: dict            #: primitive parameters (names as the primitive spells them)


# datasheet ranges (MHz)
_ECP5 = {"pfd": (3.125, 400.0), "vco": (400.0, 800.0), "out": (3.125, 400.0)}
_ICE40 = {"pfd": (10.0, 133.0), "vco": (533.0, 1066.0), "out": (16.0, 275.0)}


def _ice40_filter(f_pfd):
    for i, hi in enumerate((17.0, 26.0, 44.0, 66.0, 101.0)):
        if f_pfd < hi:
            return i + 1
    return 6


def pll_params(family: str, f_in: float, f_out: float, *, tolerance=0.01) -> PllParams:
    """Dividers for ``f_in`` -> ``f_out`` MHz on ``family`` (``"ecp5"`` or ``"ice40"``):
    the closest output, then the VCO that ``ecppll`` / ``icepll`` prefer (ECP5: nearest
    600 MHz; iCE40: highest). Raises :class:`PllError` when the
    best output is more than ``tolerance`` (relative) away from ``f_out``."""
    best = None
    if family == "ecp5":
        r = _ECP5
        if not r["out"][0] <= f_out <= r["out"][1]:
            raise PllError(f"ECP5 PLL output must be {r['out'][0]}-{r['out'][1]} MHz, "
                           f"not {f_out}")
        for clki in range(1, 129):
            pfd = f_in / clki
            if not r["pfd"][0] <= pfd <= r["pfd"][1]:
                continue
            for fb in range(1, 81):
                out = pfd * fb
                for op in range(1, 129):
                    vco = out * op
                    if not r["vco"][0] <= vco <= r["vco"][1]:
                        continue
                    key = (abs(out - f_out), abs(vco - 600.0))
                    if best is None or key < best[0]:
                        best = (key, out, vco, {"CLKI_DIV": clki, "CLKFB_DIV": fb,
                                                "CLKOP_DIV": op, "CLKOP_CPHASE": op // 2 - 1
                                                if op > 1 else 0, "CLKOP_FPHASE": 0})
    elif family == "ice40":
        r = _ICE40
        for divr in range(16):
            pfd = f_in / (divr + 1)
            if not r["pfd"][0] <= pfd <= r["pfd"][1]:
                continue
            for divf in range(128):
                vco = pfd * (divf + 1)
                if not r["vco"][0] <= vco <= r["vco"][1]:
                    continue
                for divq in range(1, 7):
                    out = vco / 2 ** divq
                    if not r["out"][0] <= out <= r["out"][1]:
                        continue
                    key = (abs(out - f_out), -vco)
                    if best is None or key < best[0]:
                        best = (key, out, vco, {"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                                "FILTER_RANGE": _ice40_filter(pfd)})
    else:
        raise PllError(f"unknown FPGA family {family!r} (ecp5 or ice40)")
    if best is None or abs(best[1] - f_out) > tolerance * f_out:
        got = f"{best[1]:.3f} MHz" if best else "nothing"
        raise PllError(f"{family} PLL cannot make {f_out} MHz from {f_in} MHz "
                       f"(closest: {got})")
    _, out, vco, div = best
    return PllParams(family, f_in, out, vco, div)


class Pll(wiring.Component):
    """The family's PLL between the board oscillator pin ``clk_in`` and ``clk_out``;
    ``locked`` is high once the output is stable."""

    def __init__(self, params: PllParams):
        self.params = params
        super().__init__({"clk_in": In(1), "clk_out": Out(1), "locked": Out(1)})

    def elaborate(self, platform):
        m = Module()
        p = self.params
        if p.family == "ecp5":
            d = p.dividers
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{p.f_in:g}", a_FREQUENCY_PIN_CLKOP=f"{p.f_out:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=d["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=d["CLKOP_DIV"],
                p_CLKOP_CPHASE=d["CLKOP_CPHASE"], p_CLKOP_FPHASE=d["CLKOP_FPHASE"],
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=d["CLKFB_DIV"],
                i_RST=0, i_STDBY=0, i_CLKI=self.clk_in, o_CLKOP=self.clk_out,
                i_CLKFB=self.clk_out, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
                i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_LOCK=self.locked)
        else:
            d = p.dividers
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_DIVR=d["DIVR"], p_DIVF=d["DIVF"], p_DIVQ=d["DIVQ"],
                p_FILTER_RANGE=d["FILTER_RANGE"],
                i_PACKAGEPIN=self.clk_in, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=self.clk_out, o_LOCK=self.locked)
        return m
