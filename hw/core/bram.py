"""Block RAM with a registered read port, in the RAM's own output register on the ECP5.

A block RAM's clock-to-out is most of a 10 ns cycle on the ECP5 (nextpnr 0.11: 5.83 ns for a
``DP16KD`` without its output register, 0.96 ns with it), and Yosys 0.70's ``memory_libmap``
rules for the ECP5 (``share/lattice/brams_16kd.txt``) have no output-register option, so a
register written behind a memory stays in the fabric and the RAM -> register path pays both
the slow clock-to-out and the routing to a slice. :class:`RegisteredRam` is that memory plus
that register; with ``family = "ecp5"`` (from the ``platform`` handed to
``verilog.convert``, as for :func:`~.dsp.registered_product`, or from ``family=``) it is a
grid of ``DP16KD`` instances with ``REGMODE = OUTREG`` on the read side; everywhere else it
is an Amaranth memory and a plain register, which is what the simulators check bit for bit.

Behaviour (both forms):

* write: ``w_data`` into word ``w_addr``, lane ``i`` (``width // lanes`` bits) when
  ``w_en[i]``;
* read: at a clock edge with ``r_en`` the RAM takes ``r_addr`` (``r_en`` low: it keeps the
  previous word's output); at an edge with ``r_oce`` ``r_data`` takes that output. So with
  ``r_en`` and ``r_oce`` both driven by a pipeline's advance, ``r_data`` is a pipeline
  register one stage behind the address, holding while stalled;
* reading a word in the cycle it is written is undefined (the users never do);
* ``w_reg=True``: the write port's address, data and enables are registered first, so a
  write lands one cycle after it is presented (reading the word in that next cycle is
  undefined too). The registers sit between the writers' multiplexers and the block RAMs,
  which on the ECP5 are in fixed columns that the multiplexers may be placed far from.

ECP5 primitive use (Lattice TN1264, and Yosys's own ``brams_map_16kd.v`` for the port
wiring): the data width is the widest of 18 / 9 / 4 / 2 / 1 bits a port whose depth covers
the memory (1,024 / 2,048 / 4,096 / 8,192 / 16,384 words), or the 36-bit pseudo-dual-port
mode for memories of at most 512 words; the word address sits at address bit 4 / 3 / 2 / 1
/ 0 (5 in 36-bit mode); in 18- and 36-bit modes the low address bits of the write port are
the byte (9-bit) write enables. Port A only writes and port B only reads, except in 36-bit
mode where the 36-bit word is split over both ports' data pins and the read side is
controlled by ``CEB`` / ``OCEB`` / ``ADB``; there both ports get ``REGMODE = OUTREG`` and the
output clock enable, so the 36-bit read is registered whichever half's register holds it.
Each lane has its own primitives (a lane of 128 bits is four 36-bit ones), so a lane's
write enable is the primitive's.
"""

from amaranth.hdl import ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import memory

from ..ram import NO_RW_CHECK
from .dsp import family_of

__all__ = ["RegisteredRam", "ecp5_mode"]

#: (data bits per port, address bit of the word address, words) for DP16KD's modes
_ECP5_MODES = ((36, 5, 512), (18, 4, 1024), (9, 3, 2048), (4, 2, 4096), (2, 1, 8192),
               (1, 0, 16384))


def ecp5_mode(depth: int, lane_bits: int):
    """The DP16KD mode for a memory ``depth`` words deep with ``lane_bits``-bit lanes:
    ``(data_bits, addr_lsb, primitives_per_lane)``, the one that needs fewest primitives
    (wider first on a tie)."""
    if not 1 <= depth <= 16384:
        raise ValueError(f"depth must be 1..16384 words for a DP16KD grid, not {depth}")
    best = None
    for bits, lsb, words in _ECP5_MODES:
        if depth > words:
            continue
        n = -(-lane_bits // bits)
        if best is None or n < best[2]:
            best = (bits, lsb, n)
    return best


class RegisteredRam(Elaboratable):
    """Simple dual-port RAM (one write port with ``lanes`` write enables, one read port)
    whose read data comes out of a register; see the module docstring."""

    def __init__(self, *, width: int, depth: int, lanes: int = 1, family=None,
                 w_reg: bool = False):
        if width <= 0 or depth <= 0:
            raise ValueError(f"width and depth must be positive, not {width} x {depth}")
        if lanes <= 0 or width % lanes:
            raise ValueError(f"lanes must divide the width ({width} bits), not {lanes}")
        self.width, self.depth, self.lanes = width, depth, lanes
        self._family, self._w_reg = family, w_reg
        abits = max(1, (depth - 1).bit_length())
        self.w_addr = Signal(abits)
        self.w_data = Signal(width)
        self.w_en = Signal(lanes)
        self.r_addr = Signal(abits)
        self.r_en = Signal()
        self.r_oce = Signal()
        self.r_data = Signal(width, reset_less=True)

    def _write_port(self, m):
        """The write port's address, data and enables as the memory sees them."""
        if not self._w_reg:
            return self.w_addr, self.w_data, self.w_en
        wa = Signal.like(self.w_addr, name="w_addr_r", reset_less=True)
        wd = Signal.like(self.w_data, name="w_data_r", reset_less=True)
        we = Signal.like(self.w_en, name="w_en_r")
        m.d.sync += [wa.eq(self.w_addr), wd.eq(self.w_data), we.eq(self.w_en)]
        return wa, wd, we

    def elaborate(self, platform):
        family = self._family or family_of(platform)
        if family == "ecp5":
            return self._ecp5()
        m = Module()
        w_addr, w_data, w_en = self._write_port(m)
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[],
                                               attrs=NO_RW_CHECK)
        self.sim_memory = mem       # the last elaboration's memory (amaranth.sim tests read it)
        wr = (mem.write_port(granularity=self.width // self.lanes) if self.lanes > 1
              else mem.write_port())
        rd = mem.read_port()
        m.d.comb += [wr.addr.eq(w_addr), wr.data.eq(w_data), wr.en.eq(w_en),
                     rd.addr.eq(self.r_addr), rd.en.eq(self.r_en)]
        with m.If(self.r_oce):
            m.d.sync += self.r_data.eq(rd.data)
        return m

    def _ecp5(self):
        m = Module()
        w_addr, w_data, w_en = self._write_port(m)
        lane_bits = self.width // self.lanes
        bits, lsb, per_lane = ecp5_mode(self.depth, lane_bits)
        pdp = bits == 36
        port_bits = min(bits, 18)
        for lane in range(self.lanes):
            for k in range(per_lane):
                lo = lane * lane_bits + k * bits
                n = min(bits, (lane + 1) * lane_bits - lo)
                di = Signal(bits, name=f"di{lane}_{k}")
                do = Signal(bits, name=f"do{lane}_{k}")
                m.d.comb += [di.eq(w_data[lo:lo + n]), self.r_data[lo:lo + n].eq(do[:n])]
                p = dict(
                    p_DATA_WIDTH_A=bits, p_DATA_WIDTH_B=bits,
                    p_REGMODE_A="OUTREG" if pdp else "NOREG", p_REGMODE_B="OUTREG",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                    i_CLKA=ClockSignal(), i_CLKB=ClockSignal(),
                    i_CEA=1, i_WEA=w_en[lane], i_OCEA=self.r_oce if pdp else 0,
                    i_RSTA=0, i_CEB=self.r_en, i_WEB=0, i_OCEB=self.r_oce, i_RSTB=0,
                )
                for c in range(3):
                    p[f"i_CSA{c}"] = p[f"i_CSB{c}"] = 0
                for i in range(14):
                    a = i - lsb
                    if a >= 0:
                        wa = w_addr[a] if a < len(w_addr) else Const(0)
                        ra = self.r_addr[a] if a < len(self.r_addr) else Const(0)
                    else:
                        # below the word address: byte write enables in 18 / 36-bit modes
                        wa = Const(1 if bits >= 18 and i < bits // 9 else 0)
                        ra = Const(0)
                    p[f"i_ADA{i}"] = wa
                    p[f"i_ADB{i}"] = ra
                for i in range(18):
                    if pdp:
                        p[f"i_DIA{i}"] = di[i]
                        p[f"i_DIB{i}"] = di[18 + i]
                        p[f"o_DOA{i}"] = do[i]
                        p[f"o_DOB{i}"] = do[18 + i]
                    else:
                        p[f"i_DIA{i}"] = di[i] if i < port_bits else Const(0)
                        p[f"i_DIB{i}"] = 0
                        if i < port_bits:
                            p[f"o_DOB{i}"] = do[i]
                m.submodules[f"bram{lane}_{k}"] = Instance("DP16KD", **p)
        return m
