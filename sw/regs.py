# Generated from s4accel/base/regmap/regmap.yaml by s4accel.base.regmap; do not edit.
"""Register map ``s4``: byte offsets, fields and access modes for drivers.

Control and status registers of the S4-open sparse accelerator, reached by the host over
AXI4-Lite.

For every register ``<REG>`` is its byte offset; for every field there are
``<REG>_<FIELD>_SHIFT``, ``_WIDTH``, ``_MASK`` (in register position), ``_ACCESS`` and, where
the reset value does not depend on the hardware configuration, ``_RESET``. ``REGISTERS`` maps
register names to :class:`~s4accel.base.regmap.view.Register` s, whose ``fields`` are tuples of
:class:`~s4accel.base.regmap.view.Field` s (``Register.field(name)`` finds one); ``BY_OFFSET``
maps offsets. A reset value that depends on the configuration is kept as its expression (see the
register map's header); ``None`` marks a field driven by the datapath.
"""

from s4accel.base.regmap.view import Field, Register

NAME = "s4"
DATA_WIDTH = 32
ADDR_WIDTH = 12
#: the interrupt line is CTRL.irq_en AND any bit of IRQ
INTERRUPT_STATUS = "IRQ"
INTERRUPT_ENABLE = ("CTRL", "irq_en")

# -- byte offsets ----------------------------------------------------------------------------------
ID = 0x000
VERSION = 0x004
CAP_ARRAY = 0x008
CAP_SPARSITY = 0x00C
CAP_SRAM = 0x010
CAP_BUS = 0x014
CAP_L2 = 0x018
CAP_VEC = 0x01C
CTRL = 0x020
STATUS = 0x024
IRQ = 0x028
ERR_ADDR = 0x02C
WATCHDOG = 0x030
CAP_CODEC = 0x034
RING_BASE = 0x040
RING_SIZE = 0x044
RING_HEAD = 0x048
RING_TAIL = 0x04C
WIN_CTRL = 0x080
WIN0_BASE = 0x090
WIN0_LIMIT = 0x094
WIN1_BASE = 0x098
WIN1_LIMIT = 0x09C
WIN2_BASE = 0x0A0
WIN2_LIMIT = 0x0A4
WIN3_BASE = 0x0A8
WIN3_LIMIT = 0x0AC
PERF_BUSY = 0x100
PERF_MAC = 0x104
PERF_STALL_IN = 0x108
PERF_STALL_OUT = 0x10C
PERF_DMA_RD_BYTES = 0x110
PERF_DMA_WR_BYTES = 0x114
PERF_DESC = 0x118

# -- fields ---------------------------------------------------------------------------------------
ID_VALUE_SHIFT = 0
ID_VALUE_WIDTH = 32
ID_VALUE_MASK = 0xFFFFFFFF
ID_VALUE_ACCESS = "ro"
ID_VALUE_RESET = 0x53344F50
VERSION_PATCH_SHIFT = 0
VERSION_PATCH_WIDTH = 8
VERSION_PATCH_MASK = 0x000000FF
VERSION_PATCH_ACCESS = "ro"
VERSION_PATCH_RESET = 0
VERSION_MINOR_SHIFT = 8
VERSION_MINOR_WIDTH = 8
VERSION_MINOR_MASK = 0x0000FF00
VERSION_MINOR_ACCESS = "ro"
VERSION_MINOR_RESET = 7
VERSION_MAJOR_SHIFT = 16
VERSION_MAJOR_WIDTH = 8
VERSION_MAJOR_MASK = 0x00FF0000
VERSION_MAJOR_ACCESS = "ro"
VERSION_MAJOR_RESET = 0
CAP_ARRAY_SPUS_SHIFT = 0
CAP_ARRAY_SPUS_WIDTH = 8
CAP_ARRAY_SPUS_MASK = 0x000000FF
CAP_ARRAY_SPUS_ACCESS = "ro"
CAP_ARRAY_ROWS_SHIFT = 8
CAP_ARRAY_ROWS_WIDTH = 8
CAP_ARRAY_ROWS_MASK = 0x0000FF00
CAP_ARRAY_ROWS_ACCESS = "ro"
CAP_ARRAY_COLS_SHIFT = 16
CAP_ARRAY_COLS_WIDTH = 8
CAP_ARRAY_COLS_MASK = 0x00FF0000
CAP_ARRAY_COLS_ACCESS = "ro"
CAP_ARRAY_BANK_SHIFT = 24
CAP_ARRAY_BANK_WIDTH = 8
CAP_ARRAY_BANK_MASK = 0xFF000000
CAP_ARRAY_BANK_ACCESS = "ro"
CAP_SPARSITY_MASK_SHIFT = 0
CAP_SPARSITY_MASK_WIDTH = 6
CAP_SPARSITY_MASK_MASK = 0x0000003F
CAP_SPARSITY_MASK_ACCESS = "ro"
CAP_SRAM_ACT_KIB_LOG2_SHIFT = 0
CAP_SRAM_ACT_KIB_LOG2_WIDTH = 8
CAP_SRAM_ACT_KIB_LOG2_MASK = 0x000000FF
CAP_SRAM_ACT_KIB_LOG2_ACCESS = "ro"
CAP_SRAM_WGT_KIB_LOG2_SHIFT = 8
CAP_SRAM_WGT_KIB_LOG2_WIDTH = 8
CAP_SRAM_WGT_KIB_LOG2_MASK = 0x0000FF00
CAP_SRAM_WGT_KIB_LOG2_ACCESS = "ro"
CAP_SRAM_OUT_KIB_LOG2_SHIFT = 16
CAP_SRAM_OUT_KIB_LOG2_WIDTH = 8
CAP_SRAM_OUT_KIB_LOG2_MASK = 0x00FF0000
CAP_SRAM_OUT_KIB_LOG2_ACCESS = "ro"
CAP_BUS_DRAM_BUS_BITS_SHIFT = 0
CAP_BUS_DRAM_BUS_BITS_WIDTH = 16
CAP_BUS_DRAM_BUS_BITS_MASK = 0x0000FFFF
CAP_BUS_DRAM_BUS_BITS_ACCESS = "ro"
CAP_BUS_DESC_BYTES_SHIFT = 16
CAP_BUS_DESC_BYTES_WIDTH = 8
CAP_BUS_DESC_BYTES_MASK = 0x00FF0000
CAP_BUS_DESC_BYTES_ACCESS = "ro"
CAP_BUS_DESC_BYTES_RESET = 32
CAP_L2_KIB_SHIFT = 0
CAP_L2_KIB_WIDTH = 24
CAP_L2_KIB_MASK = 0x00FFFFFF
CAP_L2_KIB_ACCESS = "ro"
CAP_VEC_MAX_ROW_SHIFT = 0
CAP_VEC_MAX_ROW_WIDTH = 16
CAP_VEC_MAX_ROW_MASK = 0x0000FFFF
CAP_VEC_MAX_ROW_ACCESS = "ro"
CAP_VEC_UNITS_LOG2_SHIFT = 16
CAP_VEC_UNITS_LOG2_WIDTH = 4
CAP_VEC_UNITS_LOG2_MASK = 0x000F0000
CAP_VEC_UNITS_LOG2_ACCESS = "ro"
CTRL_ENABLE_SHIFT = 0
CTRL_ENABLE_WIDTH = 1
CTRL_ENABLE_MASK = 0x00000001
CTRL_ENABLE_ACCESS = "rw"
CTRL_ENABLE_RESET = 0
CTRL_IRQ_EN_SHIFT = 1
CTRL_IRQ_EN_WIDTH = 1
CTRL_IRQ_EN_MASK = 0x00000002
CTRL_IRQ_EN_ACCESS = "rw"
CTRL_IRQ_EN_RESET = 0
CTRL_SOFT_RESET_SHIFT = 2
CTRL_SOFT_RESET_WIDTH = 1
CTRL_SOFT_RESET_MASK = 0x00000004
CTRL_SOFT_RESET_ACCESS = "w1p"
CTRL_SOFT_RESET_RESET = 0
STATUS_BUSY_SHIFT = 0
STATUS_BUSY_WIDTH = 1
STATUS_BUSY_MASK = 0x00000001
STATUS_BUSY_ACCESS = "ro"
STATUS_ERROR_SHIFT = 1
STATUS_ERROR_WIDTH = 1
STATUS_ERROR_MASK = 0x00000002
STATUS_ERROR_ACCESS = "ro"
STATUS_IDLE_SHIFT = 2
STATUS_IDLE_WIDTH = 1
STATUS_IDLE_MASK = 0x00000004
STATUS_IDLE_ACCESS = "ro"
STATUS_ERR_CODE_SHIFT = 8
STATUS_ERR_CODE_WIDTH = 8
STATUS_ERR_CODE_MASK = 0x0000FF00
STATUS_ERR_CODE_ACCESS = "ro"
IRQ_DONE_SHIFT = 0
IRQ_DONE_WIDTH = 1
IRQ_DONE_MASK = 0x00000001
IRQ_DONE_ACCESS = "w1c"
IRQ_DONE_RESET = 0
IRQ_ERROR_SHIFT = 1
IRQ_ERROR_WIDTH = 1
IRQ_ERROR_MASK = 0x00000002
IRQ_ERROR_ACCESS = "w1c"
IRQ_ERROR_RESET = 0
ERR_ADDR_ADDR_SHIFT = 0
ERR_ADDR_ADDR_WIDTH = 32
ERR_ADDR_ADDR_MASK = 0xFFFFFFFF
ERR_ADDR_ADDR_ACCESS = "ro"
WATCHDOG_CYCLES_SHIFT = 0
WATCHDOG_CYCLES_WIDTH = 32
WATCHDOG_CYCLES_MASK = 0xFFFFFFFF
WATCHDOG_CYCLES_ACCESS = "rw"
WATCHDOG_CYCLES_RESET = 0
CAP_CODEC_JPEG_DECODERS_SHIFT = 0
CAP_CODEC_JPEG_DECODERS_WIDTH = 4
CAP_CODEC_JPEG_DECODERS_MASK = 0x0000000F
CAP_CODEC_JPEG_DECODERS_ACCESS = "ro"
CAP_CODEC_MAX_WIDTH_LOG2_SHIFT = 4
CAP_CODEC_MAX_WIDTH_LOG2_WIDTH = 4
CAP_CODEC_MAX_WIDTH_LOG2_MASK = 0x000000F0
CAP_CODEC_MAX_WIDTH_LOG2_ACCESS = "ro"
RING_BASE_ADDR_SHIFT = 0
RING_BASE_ADDR_WIDTH = 32
RING_BASE_ADDR_MASK = 0xFFFFFFFF
RING_BASE_ADDR_ACCESS = "rw"
RING_BASE_ADDR_RESET = 0
RING_SIZE_SLOTS_SHIFT = 0
RING_SIZE_SLOTS_WIDTH = 16
RING_SIZE_SLOTS_MASK = 0x0000FFFF
RING_SIZE_SLOTS_ACCESS = "rw"
RING_SIZE_SLOTS_RESET = 0
RING_HEAD_INDEX_SHIFT = 0
RING_HEAD_INDEX_WIDTH = 16
RING_HEAD_INDEX_MASK = 0x0000FFFF
RING_HEAD_INDEX_ACCESS = "ro"
RING_TAIL_INDEX_SHIFT = 0
RING_TAIL_INDEX_WIDTH = 16
RING_TAIL_INDEX_MASK = 0x0000FFFF
RING_TAIL_INDEX_ACCESS = "rw"
RING_TAIL_INDEX_RESET = 0
WIN_CTRL_EN_SHIFT = 0
WIN_CTRL_EN_WIDTH = 4
WIN_CTRL_EN_MASK = 0x0000000F
WIN_CTRL_EN_ACCESS = "rw"
WIN_CTRL_EN_RESET = 0
WIN_CTRL_RD_SHIFT = 8
WIN_CTRL_RD_WIDTH = 4
WIN_CTRL_RD_MASK = 0x00000F00
WIN_CTRL_RD_ACCESS = "rw"
WIN_CTRL_RD_RESET = 0
WIN_CTRL_WR_SHIFT = 16
WIN_CTRL_WR_WIDTH = 4
WIN_CTRL_WR_MASK = 0x000F0000
WIN_CTRL_WR_ACCESS = "rw"
WIN_CTRL_WR_RESET = 0
WIN0_BASE_ADDR_SHIFT = 0
WIN0_BASE_ADDR_WIDTH = 32
WIN0_BASE_ADDR_MASK = 0xFFFFFFFF
WIN0_BASE_ADDR_ACCESS = "rw"
WIN0_BASE_ADDR_RESET = 0
WIN0_LIMIT_ADDR_SHIFT = 0
WIN0_LIMIT_ADDR_WIDTH = 32
WIN0_LIMIT_ADDR_MASK = 0xFFFFFFFF
WIN0_LIMIT_ADDR_ACCESS = "rw"
WIN0_LIMIT_ADDR_RESET = 0
WIN1_BASE_ADDR_SHIFT = 0
WIN1_BASE_ADDR_WIDTH = 32
WIN1_BASE_ADDR_MASK = 0xFFFFFFFF
WIN1_BASE_ADDR_ACCESS = "rw"
WIN1_BASE_ADDR_RESET = 0
WIN1_LIMIT_ADDR_SHIFT = 0
WIN1_LIMIT_ADDR_WIDTH = 32
WIN1_LIMIT_ADDR_MASK = 0xFFFFFFFF
WIN1_LIMIT_ADDR_ACCESS = "rw"
WIN1_LIMIT_ADDR_RESET = 0
WIN2_BASE_ADDR_SHIFT = 0
WIN2_BASE_ADDR_WIDTH = 32
WIN2_BASE_ADDR_MASK = 0xFFFFFFFF
WIN2_BASE_ADDR_ACCESS = "rw"
WIN2_BASE_ADDR_RESET = 0
WIN2_LIMIT_ADDR_SHIFT = 0
WIN2_LIMIT_ADDR_WIDTH = 32
WIN2_LIMIT_ADDR_MASK = 0xFFFFFFFF
WIN2_LIMIT_ADDR_ACCESS = "rw"
WIN2_LIMIT_ADDR_RESET = 0
WIN3_BASE_ADDR_SHIFT = 0
WIN3_BASE_ADDR_WIDTH = 32
WIN3_BASE_ADDR_MASK = 0xFFFFFFFF
WIN3_BASE_ADDR_ACCESS = "rw"
WIN3_BASE_ADDR_RESET = 0
WIN3_LIMIT_ADDR_SHIFT = 0
WIN3_LIMIT_ADDR_WIDTH = 32
WIN3_LIMIT_ADDR_MASK = 0xFFFFFFFF
WIN3_LIMIT_ADDR_ACCESS = "rw"
WIN3_LIMIT_ADDR_RESET = 0
PERF_BUSY_COUNT_SHIFT = 0
PERF_BUSY_COUNT_WIDTH = 32
PERF_BUSY_COUNT_MASK = 0xFFFFFFFF
PERF_BUSY_COUNT_ACCESS = "ro"
PERF_MAC_COUNT_SHIFT = 0
PERF_MAC_COUNT_WIDTH = 32
PERF_MAC_COUNT_MASK = 0xFFFFFFFF
PERF_MAC_COUNT_ACCESS = "ro"
PERF_STALL_IN_COUNT_SHIFT = 0
PERF_STALL_IN_COUNT_WIDTH = 32
PERF_STALL_IN_COUNT_MASK = 0xFFFFFFFF
PERF_STALL_IN_COUNT_ACCESS = "ro"
PERF_STALL_OUT_COUNT_SHIFT = 0
PERF_STALL_OUT_COUNT_WIDTH = 32
PERF_STALL_OUT_COUNT_MASK = 0xFFFFFFFF
PERF_STALL_OUT_COUNT_ACCESS = "ro"
PERF_DMA_RD_BYTES_COUNT_SHIFT = 0
PERF_DMA_RD_BYTES_COUNT_WIDTH = 32
PERF_DMA_RD_BYTES_COUNT_MASK = 0xFFFFFFFF
PERF_DMA_RD_BYTES_COUNT_ACCESS = "ro"
PERF_DMA_WR_BYTES_COUNT_SHIFT = 0
PERF_DMA_WR_BYTES_COUNT_WIDTH = 32
PERF_DMA_WR_BYTES_COUNT_MASK = 0xFFFFFFFF
PERF_DMA_WR_BYTES_COUNT_ACCESS = "ro"
PERF_DESC_COUNT_SHIFT = 0
PERF_DESC_COUNT_WIDTH = 32
PERF_DESC_COUNT_MASK = 0xFFFFFFFF
PERF_DESC_COUNT_ACCESS = "ro"

# -- structure ------------------------------------------------------------------------------------
REGISTERS = {
    "ID": Register(
        "ID", 0x000, (
            Field(
                "value", 0, 32, "ro", 0x53344F50,
                "Always 0x53344F50."),
        ),
        "Identification, the ASCII bytes \"S4OP\"."),
    "VERSION": Register(
        "VERSION", 0x004, (
            Field(
                "patch", 0, 8, "ro", 0,
                "Patch version."),
            Field(
                "minor", 8, 8, "ro", 7,
                "Minor version."),
            Field(
                "major", 16, 8, "ro", 0,
                "Major version."),
        ),
        "Version of the register map and of the programming model (semantic versioning)."),
    "CAP_ARRAY": Register(
        "CAP_ARRAY", 0x008, (
            Field(
                "spus", 0, 8, "ro", "{spus}",
                "Number of sparse processing units."),
            Field(
                "rows", 8, 8, "ro", "{rows}",
                "Tensor-core array rows (tokens)."),
            Field(
                "cols", 16, 8, "ro", "{cols}",
                "Tensor-core array columns (output channels)."),
            Field(
                "bank", 24, 8, "ro", "{bank}",
                "Bank size of the sparse format."),
        ),
        "Shape of the compute fabric."),
    "CAP_SPARSITY": Register(
        "CAP_SPARSITY", 0x00C, (
            Field(
                "mask", 0, 6, "ro", "{sparsity_mask}",
                "Bit i set when sparsity 2**i is supported (bit 0: dense, bit 5: 32x)."),
        ),
        "Supported sparsity levels."),
    "CAP_SRAM": Register(
        "CAP_SRAM", 0x010, (
            Field(
                "act_kib_log2", 0, 8, "ro", "log2({act_sram_kib})",
                "Activation scratchpad."),
            Field(
                "wgt_kib_log2", 8, 8, "ro", "log2({wgt_sram_kib})",
                "Weight scratchpad."),
            Field(
                "out_kib_log2", 16, 8, "ro", "log2({out_sram_kib})",
                "Output scratchpad."),
        ),
        "Scratchpad sizes per SPU as log2 of the size in KiB (sizes are powers of two; the size "
        "in KiB is 1 << field)."),
    "CAP_BUS": Register(
        "CAP_BUS", 0x014, (
            Field(
                "dram_bus_bits", 0, 16, "ro", "{dram_bus_bits}",
                "Width of the DRAM data bus in bits."),
            Field(
                "desc_bytes", 16, 8, "ro", 32,
                "Size of one descriptor in bytes."),
        ),
        "Memory-side interface."),
    "CAP_L2": Register(
        "CAP_L2", 0x018, (
            Field(
                "kib", 0, 24, "ro", "{l2_kib}",
                "Size in KiB (0 when absent)."),
        ),
        "The on-chip L2 buffer shared by the SPUs: SRAM at address 0x2000_0000 of the DMA's "
        "address space (LOAD and STORE reach it like DRAM, inside the chip), `kib` KiB (0: no "
        "L2)."),
    "CAP_VEC": Register(
        "CAP_VEC", 0x01C, (
            Field(
                "max_row", 0, 16, "ro", "{vec_max_row}",
                "Longest row in elements (0 when absent)."),
            Field(
                "units_log2", 16, 4, "ro", "log2({vec_units})",
                "Log2 of the vector units a SPU (Config.vec_units)."),
        ),
        "The vector units of each SPU, driven by VOP descriptors: `max_row` is the longest row "
        "their row operations (softmax, row max, row sum) take (0: no vector unit, and a VOP is "
        "an unknown opcode); `2**units_log2` units run that many rows of a row tile at once."),
    "CTRL": Register(
        "CTRL", 0x020, (
            Field(
                "enable", 0, 1, "rw", 0,
                "The command processor fetches descriptors."),
            Field(
                "irq_en", 1, 1, "rw", 0,
                "Raise the interrupt line while any IRQ bit is set."),
            Field(
                "soft_reset", 2, 1, "w1p", 0,
                "Write 1 to abort the engine cleanly and return it to idle."),
        ),
        "Engine control."),
    "STATUS": Register(
        "STATUS", 0x024, (
            Field(
                "busy", 0, 1, "ro", None,
                "Descriptors are being executed."),
            Field(
                "error", 1, 1, "ro", None,
                "The engine stopped on an error; see err_code."),
            Field(
                "idle", 2, 1, "ro", None,
                "Nothing in flight; safe to reprogram."),
            Field(
                "err_code", 8, 8, "ro", None,
                "Error code of the last failure (0 = none)."),
        ),
        "Engine state, driven by the datapath."),
    "IRQ": Register(
        "IRQ", 0x028, (
            Field(
                "done", 0, 1, "w1c", 0,
                "A completion descriptor was executed."),
            Field(
                "error", 1, 1, "w1c", 0,
                "A descriptor failed."),
        ),
        "Interrupt causes, set by the datapath and cleared by writing 1."),
    "ERR_ADDR": Register(
        "ERR_ADDR", 0x02C, (
            Field(
                "addr", 0, 32, "ro", None,
                "Descriptor address."),
        ),
        "DRAM byte address of the descriptor that failed."),
    "WATCHDOG": Register(
        "WATCHDOG", 0x030, (
            Field(
                "cycles", 0, 32, "rw", 0,
                "Cycles without progress before a descriptor fails; 0 disables it."),
        ),
        "Watchdog timeout."),
    "CAP_CODEC": Register(
        "CAP_CODEC", 0x034, (
            Field(
                "jpeg_decoders", 0, 4, "ro", "{jpeg_decoders}",
                "Number of JPEG decoder instances."),
            Field(
                "max_width_log2", 4, 4, "ro", "log2({jpeg_max_width})",
                "log2 of the widest image a decoder takes (a wider one ends its DECODE with "
                "DECODE_ERROR): 11 for 2048, the table block's limit."),
        ),
        "The codec wrapper: JPEG decoder instances that run DECODE descriptors (0: none, and a "
        "DECODE is UNKNOWN_OPCODE)."),
    "RING_BASE": Register(
        "RING_BASE", 0x040, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address of slot 0."),
        ),
        "Descriptor ring in DRAM."),
    "RING_SIZE": Register(
        "RING_SIZE", 0x044, (
            Field(
                "slots", 0, 16, "rw", 0,
                "Number of descriptor slots."),
        ),
        "Descriptor ring length."),
    "RING_HEAD": Register(
        "RING_HEAD", 0x048, (
            Field(
                "index", 0, 16, "ro", None,
                "Slot index."),
        ),
        "Next slot the command processor reads, driven by the datapath."),
    "RING_TAIL": Register(
        "RING_TAIL", 0x04C, (
            Field(
                "index", 0, 16, "rw", 0,
                "Slot index."),
        ),
        "One past the last slot the driver filled; writing it hands descriptors over."),
    "WIN_CTRL": Register(
        "WIN_CTRL", 0x080, (
            Field(
                "en", 0, 4, "rw", 0,
                "Window enabled."),
            Field(
                "rd", 8, 4, "rw", 0,
                "Reads allowed."),
            Field(
                "wr", 16, 4, "rw", 0,
                "Writes allowed."),
        ),
        "DRAM access windows; bit n of each field belongs to window n."),
    "WIN0_BASE": Register(
        "WIN0_BASE", 0x090, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address."),
        ),
        "First byte of window 0."),
    "WIN0_LIMIT": Register(
        "WIN0_LIMIT", 0x094, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address."),
        ),
        "End of window 0 (exclusive)."),
    "WIN1_BASE": Register(
        "WIN1_BASE", 0x098, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address."),
        ),
        "First byte of window 1."),
    "WIN1_LIMIT": Register(
        "WIN1_LIMIT", 0x09C, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address."),
        ),
        "End of window 1 (exclusive)."),
    "WIN2_BASE": Register(
        "WIN2_BASE", 0x0A0, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address."),
        ),
        "First byte of window 2."),
    "WIN2_LIMIT": Register(
        "WIN2_LIMIT", 0x0A4, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address."),
        ),
        "End of window 2 (exclusive)."),
    "WIN3_BASE": Register(
        "WIN3_BASE", 0x0A8, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address."),
        ),
        "First byte of window 3."),
    "WIN3_LIMIT": Register(
        "WIN3_LIMIT", 0x0AC, (
            Field(
                "addr", 0, 32, "rw", 0,
                "Byte address."),
        ),
        "End of window 3 (exclusive)."),
    "PERF_BUSY": Register(
        "PERF_BUSY", 0x100, (
            Field(
                "count", 0, 32, "ro", None,
                "Cycles."),
        ),
        "Cycles with work in flight."),
    "PERF_MAC": Register(
        "PERF_MAC", 0x104, (
            Field(
                "count", 0, 32, "ro", None,
                "Cycles."),
        ),
        "Cycles in which every lane issued a MAC (MACs = count * lanes)."),
    "PERF_STALL_IN": Register(
        "PERF_STALL_IN", 0x108, (
            Field(
                "count", 0, 32, "ro", None,
                "Cycles."),
        ),
        "Cycles the tensor cores waited for input data."),
    "PERF_STALL_OUT": Register(
        "PERF_STALL_OUT", 0x10C, (
            Field(
                "count", 0, 32, "ro", None,
                "Cycles."),
        ),
        "Cycles the tensor cores waited for the output drain."),
    "PERF_DMA_RD_BYTES": Register(
        "PERF_DMA_RD_BYTES", 0x110, (
            Field(
                "count", 0, 32, "ro", None,
                "Bytes."),
        ),
        "Bytes read from DRAM."),
    "PERF_DMA_WR_BYTES": Register(
        "PERF_DMA_WR_BYTES", 0x114, (
            Field(
                "count", 0, 32, "ro", None,
                "Bytes."),
        ),
        "Bytes written to DRAM."),
    "PERF_DESC": Register(
        "PERF_DESC", 0x118, (
            Field(
                "count", 0, 32, "ro", None,
                "Descriptors."),
        ),
        "Descriptors completed."),
}
BY_OFFSET = {reg.offset: reg for reg in REGISTERS.values()}
