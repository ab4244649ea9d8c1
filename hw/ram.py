"""Block RAM conventions shared by the gateware."""

__all__ = ["NO_RW_CHECK"]

#: Attributes for a ``memory.Memory`` whose read and write ports never touch the same word in
#: the same cycle (a scratchpad region is loaded before the GEMM that reads it starts, and is
#: not loaded again while one reads it: the command processor's tokens order them). Yosys then
#: maps the memory onto bare block RAMs. Without it, Yosys emulates the "old data" result of a
#: same-cycle read and write of one word with a bypass register and a mux behind every RAM
#: output bit (measured on a 512 x 36 memory for the ECP5: 83 flip-flops, 56 LUT4s and 13
#: wide-mux cells, and a LUT on the RAM's clock-to-out path). On an FPGA such a collision
#: returns undefined data; the simulators return the old word.
NO_RW_CHECK = {"no_rw_check": 1}
