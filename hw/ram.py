"""Block RAM conventions shared by the gateware."""

from amaranth.hdl import Cat, Signal
from amaranth.lib import memory

__all__ = ["NO_RW_CHECK", "ColumnMemory", "column_width"]

#: Attributes for a ``memory.Memory`` whose read and write ports never touch the same word in
#: the same cycle (a scratchpad region is loaded before the GEMM that reads it starts, and is
#: not loaded again while one reads it: the command processor's tokens order them). Yosys then
#: maps the memory onto bare block RAMs. Without it, Yosys emulates the "old data" result of a
#: same-cycle read and write of one word with a bypass register and a mux behind every RAM
#: output bit (measured on a 512 x 36 memory for the ECP5: 83 flip-flops, 56 LUT4s and 13
#: wide-mux cells, and a LUT on the RAM's clock-to-out path). On an FPGA such a collision
#: returns undefined data; the simulators return the old word.
NO_RW_CHECK = {"no_rw_check": 1}


def column_width(depth: int) -> int:
    """Bits per block RAM column for a memory ``depth`` words deep, when it is deeper than a
    16 Kbit block RAM's 2048 x 9 shape: 4 (4096 deep), 2 (8192) or 1 (16384). 0 when the
    memory is not that deep (Yosys maps it without a depth cascade anyway)."""
    return 16384 // depth if 2048 < depth <= 16384 else 0


class ColumnMemory:
    """A memory of ``width``-bit words built from columns of ``column_width(depth)`` bits
    each, one memory per column, so that a deep memory maps onto block RAMs as deep as itself
    (8192 x 2, ...) instead of shallower ones with a depth cascade: each output bit then comes
    straight from one block RAM, with no multiplexer behind the RAM's clock-to-out.

    One write port (``granularity`` bits per enable bit) and one read port, as plain signals:
    ``w_addr``, ``w_data``, ``w_en``; ``r_addr``, ``r_en``, ``r_data``."""

    def __init__(self, m, name, *, width, depth, granularity, attrs=None):
        col = column_width(depth) or width
        if granularity % col or width % granularity:
            raise ValueError(f"{name}: columns of {col} bits must divide the write granularity "
                             f"{granularity}, which must divide the width {width}")
        abits = max(1, (depth - 1).bit_length())
        self.w_addr = Signal(abits, name=f"{name}_waddr")
        self.r_addr = Signal(abits, name=f"{name}_raddr")
        self.w_data = Signal(width, name=f"{name}_wdata")
        self.r_data = Signal(width, name=f"{name}_rdata")
        self.w_en = Signal(width // granularity, name=f"{name}_wen")
        self.r_en = Signal(name=f"{name}_ren")
        outs = []
        for i in range(width // col):
            mem = memory.Memory(shape=col, depth=depth, init=[], attrs=attrs)
            m.submodules[f"{name}{i}"] = mem
            wr, rd = mem.write_port(), mem.read_port()
            lo = i * col
            m.d.comb += [wr.addr.eq(self.w_addr), wr.data.eq(self.w_data[lo:lo + col]),
                         wr.en.eq(self.w_en[lo // granularity]),
                         rd.addr.eq(self.r_addr), rd.en.eq(self.r_en)]
            outs.append(rd.data)
        m.d.comb += self.r_data.eq(Cat(*outs))
