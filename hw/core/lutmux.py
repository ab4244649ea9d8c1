"""Wide multiplexers and shifters built from the ECP5 slice's own multiplexers where the build
names the family.

Yosys's ABC9 maps a 32:1 multiplexer for delay as a tree of 6-input functions, each of them
four LUT4s, a PFUMX and an L6MUX21 on the ECP5: a lane's 8-bit window select came out at 261
LUT4s. The slice can do better by construction: two LUT4s (each a 2:1 multiplexer) and the
slice's PFUMX make a 4:1, two of those and an L6MUX21 an 8:1, so a 32:1 multiplexer is four
8:1 trees and one 4:1, 18 LUT4s a bit (144 for the window select) at a depth of two LUTs
and three dedicated multiplexers. A shifter is layers of 4:1 multiplexers the same way (two
bits of the amount a layer). :func:`word_select` and :func:`shift_units` instantiate these
when the platform passed to ``verilog.convert`` says ``family = "ecp5"`` (``s4 fpga build``
does); everywhere else (simulation, ``s4 generate``, iCE40) they are ``word_select`` and the
plain shift, which is what the simulators check bit for bit. ``tests/hw/test_lutmux.py``
proves each equal to its plain form with Yosys's ECP5 cell models.
"""

from amaranth.hdl import Cat, Const, Instance, Mux, Signal

from .dsp import family_of

__all__ = ["word_select", "shift_units"]

#: LUT4 INIT of ``Z = C ? B : A`` (``Z = INIT[{D, C, B, A}]``; D unused).
_MUX2_INIT = 0xCACA


def _lut_mux2(m, a, b, s, name):
    z = Signal(name=name)
    m.submodules[name] = Instance("LUT4", p_INIT=Const(_MUX2_INIT, 16),
                                  i_A=a, i_B=b, i_C=s, i_D=Const(0), o_Z=z)
    return z


def _mux4(m, d, s, name):
    """``d[s]`` for 4 inputs: two LUT4s and their slice's PFUMX (``Z = C0 ? ALUT : BLUT``)."""
    lo = _lut_mux2(m, d[0], d[1], s[0], f"{name}_l0")
    hi = _lut_mux2(m, d[2], d[3], s[0], f"{name}_l1")
    z = Signal(name=name)
    m.submodules[f"{name}_pf"] = Instance("PFUMX", i_ALUT=hi, i_BLUT=lo, i_C0=s[1], o_Z=z)
    return z


def _mux8(m, d, s, name):
    """``d[s]`` for 8 inputs: two 4:1 and an L6MUX21 (``Z = SD ? D1 : D0``)."""
    lo = _mux4(m, d[0:4], s[0:2], f"{name}_a")
    hi = _mux4(m, d[4:8], s[0:2], f"{name}_b")
    z = Signal(name=name)
    m.submodules[f"{name}_l6"] = Instance("L6MUX21", i_D0=lo, i_D1=hi, i_SD=s[2], o_Z=z)
    return z


def _tree(m, d, s, name):
    """``d[s]``, ``len(d) == 2 ** len(s)``: up to 8:1 in slices, 4:1 over sub-trees above."""
    k = len(s)
    if k == 1:
        return _lut_mux2(m, d[0], d[1], s[0], name)
    if k == 2:
        return _mux4(m, d, s, name)
    if k == 3:
        return _mux8(m, d, s, name)
    # the top two bits pick one of four sub-trees over the low k - 2 bits
    n = len(d) >> 2
    subs = [_tree(m, d[i * n:(i + 1) * n], s[:k - 2], f"{name}_{i}") for i in range(4)]
    return _mux4(m, subs, s[k - 2:], f"{name}_t")


def word_select(m, value, sel, width, *, platform, name):
    """``value.word_select(sel, width)`` for a ``sel`` below ``len(value) // width`` (a
    power of two of words), as slice multiplexers on the ECP5 (module docstring)."""
    words = len(value) // width
    if family_of(platform) != "ecp5" or words < 4 or words & (words - 1):
        return value.word_select(sel, width)
    k = words.bit_length() - 1
    s = sel[:k]
    out = []
    for b in range(width):
        d = [value[w * width + b] for w in range(words)]
        out.append(_tree(m, d, s, f"{name}_b{b}"))
    return Cat(*out)


def shift_units(m, value, amount, unit, out_width, *, left=False, platform, name):
    """``(value >> amount * unit)[:out_width]`` (``value << ...`` when ``left``), zeros
    shifted in, as layers of 4:1 slice multiplexers on the ECP5 (two bits of ``amount`` a
    layer: two LUT4s and a PFUMX an output bit) and a 2:1 layer for an odd bit; everywhere
    else the plain shift."""
    lg = unit.bit_length() - 1
    assert unit == 1 << lg
    if family_of(platform) != "ecp5":
        amt = Cat(Const(0, lg), amount) if lg else amount
        return ((value << amt) if left else (value >> amt))[:out_width]
    n_in = len(value)
    cur = [value[i] for i in range(n_in)]
    k = len(amount)
    # a layer makes the bits the layers after it may read: to the right, out_width plus the
    # widest shift they can still make
    layer = 0
    for lo in range(0, k, 2):
        bits = amount[lo:lo + 2]
        step = unit << lo
        rest = sum(unit << b for b in range(lo + len(bits), k))
        need = min(n_in, out_width + rest) if not left else out_width
        nxt = []
        for i in range(need):
            ats = [i - j * step if left else i + j * step for j in range(1 << len(bits))]
            d = [cur[a] if 0 <= a < len(cur) else Const(0) for a in ats]
            nm = f"{name}_s{layer}_{i}"
            if any(isinstance(x, Const) for x in d):
                # (zeros shifted in: a plain multiplexer that ABC9 folds into fewer LUTs)
                nxt.append(Mux(bits[0], d[1], d[0]) if len(bits) == 1 else
                           Mux(bits[1], Mux(bits[0], d[3], d[2]), Mux(bits[0], d[1], d[0])))
            elif len(bits) == 2:
                nxt.append(_mux4(m, d, bits, nm))
            else:
                nxt.append(_lut_mux2(m, d[0], d[1], bits[0], nm))
        cur = nxt
        layer += 1
    return Cat(*cur[:out_width])
