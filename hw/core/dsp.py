"""Registered multipliers, inside the FPGA's DSP block where the build names the family.

Yosys maps a ``*`` onto an ECP5 ``MULT18X18D`` with all its registers bypassed and leaves the
pipeline registers in the fabric, so every product pays fabric -> DSP -> fabric routing in
one cycle (11.4-11.7 ns after routing on ``ulx3s / fpga``). :func:`registered_product`
instantiates the block with its own input and output registers instead when the platform
passed to ``verilog.convert`` says ``family = "ecp5"`` (``s4 fpga build`` does); everywhere
else (simulation, ``s4 generate``, iCE40) it is the same pipeline written as plain
registers, which is what the simulators check bit for bit.
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Signal, signed

__all__ = ["Technology", "registered_product", "registered_uproduct", "family_of"]


class Technology:
    """The ``platform`` object handed to ``verilog.convert`` for an FPGA build: the gateware
    reads only ``family``."""

    def __init__(self, family: str):
        self.family = family

    def __repr__(self):
        return f"Technology({self.family!r})"


def family_of(platform):
    return getattr(platform, "family", None)


def registered_product(m, a, b, *, width, platform, name, en_in=1, en_out=1, in_regs=True):
    """``a * b`` (both signed) through two registers: ``a`` and ``b`` are registered when
    ``en_in``, their product (its low ``width`` bits, signed) when ``en_out``. No reset.
    Operands wider than 18 bits (or a product over 36) stay in plain registers.
    ``in_regs=False``: the operands are not registered (the caller's are registers), only
    the product: on the ECP5 the DSP's output register, so the multiplier's delay is not
    followed by the route back into the fabric."""
    fits = len(a) <= 18 and len(b) <= 18 and width <= 36
    if family_of(platform) == "ecp5" and fits:
        reg_in = "CLK0" if in_regs else "NONE"
        p = Signal(signed(width), name=name)
        a18, b18 = Signal(signed(18), name=f"{name}_a"), Signal(signed(18), name=f"{name}_b")
        p36 = Signal(signed(36), name=f"{name}_p")
        m.d.comb += [a18.eq(a), b18.eq(b), p.eq(p36[:width])]
        params = dict(
            p_REG_INPUTA_CLK=reg_in, p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK=reg_in, p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE1", p_REG_OUTPUT_RST="RST0",
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
            p_CLK3_DIV="ENABLED", p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED",
            p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            p_RESETMODE="SYNC",
            i_CLK0=ClockSignal(), i_CE0=en_in, i_CE1=en_out, i_RST0=0,
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
        )
        for i in range(18):
            params[f"i_A{i}"] = a18[i]
            params[f"i_B{i}"] = b18[i]
            params[f"i_C{i}"] = 0
        for i in range(36):
            params[f"o_P{i}"] = p36[i]
        m.submodules[f"{name}_dsp"] = Instance("MULT18X18D", **params)
    else:
        p = Signal(signed(width), name=name, reset_less=True)
        if in_regs:
            a1 = Signal(signed(len(a)), name=f"{name}_a", reset_less=True)
            b1 = Signal(signed(len(b)), name=f"{name}_b", reset_less=True)
            with m.If(en_in):
                m.d.sync += [a1.eq(a), b1.eq(b)]
        else:
            a1, b1 = a, b
        with m.If(en_out):
            m.d.sync += p.eq(a1 * b1)
    return p


def registered_uproduct(m, a, b, *, width, platform, name, en_in=1, en_out=1):
    """:func:`registered_product` of two unsigned values (each zero-extended by one bit, so
    16-bit operands still fit an 18-bit DSP input); the product's low ``width`` bits,
    unsigned."""
    return registered_product(m, Cat(a, Const(0, 1)).as_signed(),
                              Cat(b, Const(0, 1)).as_signed(), width=width,
                              platform=platform, name=name, en_in=en_in,
                              en_out=en_out).as_unsigned()
