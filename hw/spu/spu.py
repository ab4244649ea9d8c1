"""The sparse processing unit (SPU): tensor core + four scratchpads + GEMM sequencer.

The SPU is a passive datapath driven by the command processor: it writes DMA read data into a
scratchpad (``load_*``), runs GEMM blocks (``i_gemm``) and reads the output scratchpad out for
DMA writes (``store_*``). Scratchpad word formats (little-endian, channel/row 0 in the low bits):

===========  ==========================  ===================================================
scratchpad   word                        content
===========  ==========================  ===================================================
ACT          rows x 32 bytes             one bank of activations for every row of a row tile
WGT          cols x 2 bytes              one stored weight per channel: value, then index
                                         (loaded raw, or decoded from a packed stream by
                                         ``wgt_unpack.WgtUnpack``)
PAR          cols x 8 bytes              per channel: bias (int32), mult (u16), shift (u8), 0
OUT          cols x 4 bytes              raw: one output row of int32; int8: bytes (below)
===========  ==========================  ===================================================

In int8 mode (``GemmBody.mode = 1``) the output scratchpad is a byte array holding the block's
results in the activation layout (:func:`out_slot`): ``m_tiles`` x ``ceil(n_tiles * cols /
32)`` ACT words (``rows x 32`` bytes: one bank of 32 output channels for every row of a row
tile), from byte ``out_addr * cols * 4`` on. A layer's output channels are the next layer's K,
so a STORE copies a block out as the next layer's LOAD ACT image (no host repacking). With
``GemmBody.out_act`` the same slots are written into the ACT scratchpad instead (its memories
are one per row; a result row is one row memory's ``cols``-byte lane), from ACT word
``out_addr`` on, ``out_stride`` words a row tile: the next GEMM reads them as its input and a
layer chain never leaves the chip (``sw/chain.py``). A loaded ACT word that meets a result row
at the same row memory waits one cycle. Bytes of a last, partial bank that the block does not
write keep their contents.

The packing is done where the results are written, not in the store reader: a result row
arrives every cycle at most and its ``cols`` bytes are a quarter of an OUT word, so one
byte-enabled write of one quarter (a register address, no data mux but the lane replicate)
packs at full rate; a store reader gathering four 32-bit words per bus word would send only
``cols`` bytes a cycle, well under the DRAM bus (8 of 16 bytes on ``fpga``, 16 of 64 on
``antoum``). The STORE path is unchanged and moves four times fewer bytes.
"""

from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...base.config import BANK, Config
from ..bus.slice import SkidSlice
from ..cmd.descriptors import GemmBody, Target, VopBody, VopOp
from ..jpeg.engine import act_write_layout
from ..vector.unit import VecOp, VectorUnit
from ..core.bram import RegisteredRam
from ..core.dsp import registered_uproduct
from ..core.requant import OutMode
from ..core.tensor_core import COUNTER_BITS, TensorCore
from .wgt_unpack import WgtUnpack

__all__ = ["Spu", "SpuGeometry", "PAR_DEPTH", "WGT_BANK_DEPTH", "out_slot", "int8_out_words",
           "conv_act_words", "pool_act_words"]

#: Depth of the parameter scratchpad (channel tiles).
PAR_DEPTH = 128

#: Words per bank of the weight scratchpad (see ``Spu.elaborate``).
WGT_BANK_DEPTH = 2048


def out_slot(rows, cols, n_tiles, j, i, r, stride=0):
    """Where an int8 GEMM block writes row ``r`` of tile (channel tile ``j``, row tile ``i``):
    the slot (``cols`` bytes, a quarter of an OUT word, or ``32 / cols`` of a row of an ACT
    word) from the block's first byte. The slots form ACT-shaped words of ``rows x 32`` bytes,
    ``stride`` of them a row tile (0: ``nbk = ceil(n_tiles * cols / 32)``, the block's banks):
    ``((i * stride + j // g) * rows + r) * g + j % g`` with ``g = 32 / cols``."""
    g = BANK // cols
    stride = stride or -(-n_tiles // g)
    return ((i * stride + j // g) * rows + r) * g + j % g


def int8_out_words(rows, cols, m_tiles, n_tiles):
    """Output scratchpad words an int8 GEMM block spans (the bound the checks use):
    ``ceil(m_tiles * nbk * rows * 32 / (cols * 4))``."""
    g = BANK // cols
    return -(-(m_tiles * -(-n_tiles // g) * rows * g) // 4)


def conv_act_words(m_tiles, banks, *, act_addr, ksize, stride2, pad, top, cbanks, row_pitch,
                   in_h, out_w, pad_addr):
    """The ACT word a ``conv`` GEMM reads for row tile ``i`` and bank ``b`` (``GemmBody``'s
    docstring is the definition): an ``[m_tiles, banks]`` int64 array. Row tile ``i`` is output
    pixel ``divmod(i, out_w)``, bank ``b`` channel bank ``b % cbanks`` of tap
    ``divmod(b // cbanks, ksize)``; taps outside the band read ``pad_addr``."""
    import numpy as np
    if ksize == 0 or cbanks == 0 or out_w == 0:
        raise ValueError("ksize, cbanks and out_w must be positive")
    st = 1 + int(stride2)
    oy, ox = np.divmod(np.arange(m_tiles, dtype=np.int64), out_w)
    b = np.arange(banks, dtype=np.int64)
    cb = b % cbanks
    dy, dx = np.divmod(b // cbanks, ksize)
    y = oy[:, None] * st + dy[None, :]
    x = (ox[:, None] * st + dx[None, :] - pad) * cbanks
    ok = (y >= top) & (y < top + in_h) & (x >= 0) & (x + cbanks <= row_pitch)
    word = (act_addr + (y - top) * row_pitch + x + cb[None, :]) % (1 << 16)
    return np.where(ok, word, pad_addr)


def pool_act_words(m_tiles, n_tiles, banks, *, act_addr, ksize, stride2, pad, top, cbanks,
                   row_pitch, in_h, out_w, pad_addr):
    """The ACT word a ``pool`` GEMM reads in pass ``j`` for row tile ``i`` and tap ``b``
    (``GemmBody``'s docstring is the definition): an ``[n_tiles, m_tiles, banks]`` int64
    array. Pass ``j`` pools channel bank ``j``; tap ``b`` is ``divmod(b, ksize)``; taps
    outside the band read ``pad_addr``."""
    import numpy as np
    if ksize == 0 or cbanks == 0 or out_w == 0:
        raise ValueError("ksize, cbanks and out_w must be positive")
    st = 1 + int(stride2)
    oy, ox = np.divmod(np.arange(m_tiles, dtype=np.int64), out_w)
    dy, dx = np.divmod(np.arange(banks, dtype=np.int64), ksize)
    y = oy[:, None] * st + dy[None, :]
    x = (ox[:, None] * st + dx[None, :] - pad) * cbanks
    ok = (y >= top) & (y < top + in_h) & (x >= 0) & (x + cbanks <= row_pitch)
    j = np.arange(n_tiles, dtype=np.int64)[:, None, None]
    word = (act_addr + (y - top) * row_pitch + x + j) % (1 << 16)
    return np.where(ok[None], word, pad_addr)


@dataclass(frozen=True)
class SpuGeometry:
    """Scratchpad word widths (bits) and depths (words) of one SPU."""
    bus_bits: int
    act_bits: int
    act_depth: int
    wgt_bits: int
    wgt_depth: int
    par_bits: int
    par_depth: int
    out_bits: int
    out_depth: int

    @classmethod
    def of(cls, config: Config) -> "SpuGeometry":
        R, C = config.rows, config.cols
        if C > BANK:
            raise ValueError(f"cols must be at most {BANK} (an int8 output row is a slice of "
                             f"one activation bank), not {C} (configuration {config.name})")
        g = cls(bus_bits=config.dram_bus_bits,
                act_bits=R * BANK * 8, act_depth=config.act_sram_kib * 8192 // (R * BANK * 8),
                wgt_bits=C * 16, wgt_depth=config.wgt_sram_kib * 8192 // (C * 16),
                par_bits=C * 64, par_depth=PAR_DEPTH,
                out_bits=C * 32, out_depth=config.out_sram_kib * 8192 // (C * 32))
        for name in ("act", "wgt", "par", "out"):
            bits, depth = getattr(g, f"{name}_bits"), getattr(g, f"{name}_depth")
            if bits % g.bus_bits:
                raise ValueError(f"{name} scratchpad word ({bits} bits) must be a multiple of "
                                 f"the DRAM bus ({g.bus_bits} bits) for configuration "
                                 f"{config.name}")
            if not 1 <= depth <= 1 << 16:
                raise ValueError(f"{name} scratchpad depth must be 1..65536 words, not {depth} "
                                 f"(configuration {config.name})")
        return g

    def bits(self, target: Target) -> int:
        return {Target.ACT: self.act_bits, Target.WGT: self.wgt_bits,
                Target.PAR: self.par_bits, Target.LUT: self.bus_bits}[target]

    def depth(self, target: Target) -> int:
        return {Target.ACT: self.act_depth, Target.WGT: self.wgt_depth,
                Target.PAR: self.par_depth, Target.LUT: 256 * 8 // self.bus_bits}[target]


def _word_reader(m, name, rd, valid, ready, start, base, run, repeat, outer, step, *,
                 stages=()):
    """Read ``outer`` x ``repeat`` runs of ``run`` consecutive words (run ``o`` starting at
    ``base + o*step``) from read port ``rd`` into a valid/ready handshake, one word a cycle.

    ``valid`` is a register; the read port's enable stalls it, so data holds while stalled.
    ``rd`` is a read port, or a function ``rd(m, addr, en)`` that drives read ports itself.
    ``stages`` is a list of register loads ``[(register, value), ...]``, one list per pipeline
    stage behind the block RAM output: all of them load on the read enable, and ``valid``
    follows the words through as many stages. So the handshake's payload (the last stage's
    register) is a flip-flop, and the block RAM's slow clock-to-out and any bank select sit
    between registers of their own. A stage's list may leave out registers loaded elsewhere
    on the same enable (a :class:`RegisteredRam`'s output register, its ``r_oce`` = ``en``).
    """
    # down-counters: "last" tests are zero tests, not compares against run/repeat/outer - 1
    x = Signal(24, name=f"{name}_x")
    x_left = Signal(24, name=f"{name}_x_left")
    rep_left = Signal(16, name=f"{name}_rep_left")
    o_left = Signal(16, name=f"{name}_o_left")
    run_m1 = Signal(24, name=f"{name}_run_m1")
    repeat_m1 = Signal(16, name=f"{name}_repeat_m1")
    obase = Signal(24, name=f"{name}_obase")
    active = Signal(name=f"{name}_active")
    advance = Signal(name=f"{name}_advance")
    m.d.comb += advance.eq(~valid | ready)
    if callable(rd):
        rd(m, obase + x, advance)
    else:
        m.d.comb += [rd.en.eq(advance), rd.addr.eq(obase + x)]
    # stage k's words are valid in v[k]: v[0] the RAM output, then one flag per stage
    v = [Signal(name=f"{name}_v{k}") for k in range(len(stages))] + [valid]
    with m.If(advance):
        m.d.sync += v[0].eq(active)
        for k, loads in enumerate(stages):
            m.d.sync += [v[k + 1].eq(v[k])] + [reg.eq(value) for reg, value in loads]
    # "x_left == 0", "rep_left == 0", "o_left == 0" and their conjunctions are kept as
    # registers: each counter's enable is one LUT of the step and one such flag, so the
    # handshake path (ready -> advance -> counter enables) has no compare in it
    x_last = Signal(name=f"{name}_x_last")
    rep_last = Signal(name=f"{name}_rep_last")
    o_last = Signal(name=f"{name}_o_last")
    xr_last = Signal(name=f"{name}_xr_last")        # x_last & rep_last
    xro_last = Signal(name=f"{name}_xro_last")      # x_last & rep_last & o_last
    run_one = Signal(name=f"{name}_run_one")         # run_m1 == 0
    repeat_one = Signal(name=f"{name}_repeat_one")   # repeat_m1 == 0
    issue = Signal(name=f"{name}_issue")   # a word is read this cycle
    m.d.comb += issue.eq(active & advance)
    x_last_n = Signal(name=f"{name}_x_last_n")
    rep_last_n = Signal(name=f"{name}_rep_last_n")
    o_last_n = Signal(name=f"{name}_o_last_n")
    m.d.comb += [
        x_last_n.eq(Mux(x_last, run_one, x_left == 1)),
        rep_last_n.eq(Mux(x_last, Mux(rep_last, repeat_one, rep_left == 1), rep_last)),
        o_last_n.eq(Mux(xr_last, o_left == 1, o_last)),   # (after the last run: unused)
    ]
    with m.If(issue):
        m.d.sync += [x.eq(Mux(x_last, 0, x + 1)), x_left.eq(Mux(x_last, run_m1, x_left - 1)),
                     x_last.eq(x_last_n), rep_last.eq(rep_last_n), o_last.eq(o_last_n),
                     xr_last.eq(x_last_n & rep_last_n),
                     xro_last.eq(x_last_n & rep_last_n & o_last_n)]
    with m.If(issue & x_last):
        m.d.sync += rep_left.eq(Mux(rep_last, repeat_m1, rep_left - 1))
    with m.If(issue & xr_last & ~o_last):
        m.d.sync += [o_left.eq(o_left - 1), obase.eq(obase + step)]
    with m.If(issue & xro_last):
        m.d.sync += active.eq(0)
    with m.If(start):
        m.d.sync += [x.eq(0), x_left.eq(run - 1), x_last.eq(run == 1), run_m1.eq(run - 1),
                     run_one.eq(run == 1), rep_left.eq(repeat - 1), rep_last.eq(repeat == 1),
                     repeat_m1.eq(repeat - 1), repeat_one.eq(repeat == 1),
                     o_left.eq(outer - 1), o_last.eq(outer == 1), obase.eq(base), active.eq(1),
                     xr_last.eq((run == 1) & (repeat == 1)),
                     xro_last.eq((run == 1) & (repeat == 1) & (outer == 1))]
    return SimpleNamespace(active=active, issue=issue, x_last=x_last)


def _small_product(a, b):
    """``a * b`` for a narrow ``a`` (a few bits) as shift-and-add: no multiplier."""
    return sum((Mux(a[k], b, 0) << k) for k in range(len(a)))


class Spu(wiring.Component):
    """One sparse processing unit.

    Members
    -------
    i_gemm : In(stream.Signature(GemmBody))
        Starts a GEMM block (fields checked by the command processor); ready when idle.
    i_vop : In(stream.Signature(VopBody))
        With a vector unit (``config.vec_max_row``): starts a VOP (checked by the command
        processor); ready when idle.
    gemm_done : Out(1)
        Pulses when the block's last output row is in the output scratchpad, or a VOP's last
        result is in the activation scratchpad.
    load_start, load_target, load_addr, load_fmt : In
        Start a load into ``load_target`` at word ``load_addr``; ``i_load`` words then fill
        it bus word by bus word (lane 0 = low bits of a scratchpad word), or with a packed
        ``load_fmt`` (WGT only) through the weight unpacker.
    i_load : In(stream.Signature(data.StructLayout({"data": bus_bits, "last": 1})))
    i_dec : In(stream.Signature(act_write_layout))
        With a decoder (``config.jpeg_decoders``): a DECODE's pixels, each a whole word
        ``addr`` of row memory ``row`` of the activation scratchpad. Written in the cycle
        taken; below GEMM and VOP results and pool maxima (not ready while one is written).
    store_start, store_addr, store_beats : In
        Start reading ``store_beats`` bus words of the output scratchpad from ``store_addr``.
    o_store : Out(stream.Signature(data.StructLayout({"data": bus_bits})))
    busy_cycles, mac_cycles, stall_input_cycles, stall_output_cycles : Out(48)
        The tensor core's performance counters.
    """

    def __init__(self, config: Config):
        self._config = config
        self._geom = g = SpuGeometry.of(config)
        super().__init__({
            "i_gemm": In(stream.Signature(GemmBody)),
            **({"i_vop": In(stream.Signature(VopBody))} if config.vec_max_row else {}),
            "gemm_done": Out(1),
            "gemm_busy": Out(1),
            "load_start": In(1),
            "load_target": In(Target),
            "load_addr": In(16),
            "load_fmt": In(2),
            "i_load": In(stream.Signature(data.StructLayout({"data": g.bus_bits, "last": 1}))),
            **({"i_dec": In(stream.Signature(act_write_layout))}
               if config.jpeg_decoders else {}),
            "store_start": In(1),
            "store_addr": In(16),
            "store_beats": In(24),
            "o_store": Out(stream.Signature(data.StructLayout({"data": g.bus_bits}))),
            "busy_cycles": Out(COUNTER_BITS),
            "mac_cycles": Out(COUNTER_BITS),
            "stall_input_cycles": Out(COUNTER_BITS),
            "stall_output_cycles": Out(COUNTER_BITS),
        })

    @property
    def config(self):
        return self._config

    @property
    def geometry(self):
        return self._geom

    def elaborate(self, platform):
        m = Module()
        cfg, g = self._config, self._geom
        R, C = cfg.rows, cfg.cols
        m.submodules.core = core = TensorCore(cfg, act_skew=True, act_delay=1)
        for name in ("busy_cycles", "mac_cycles", "stall_input_cycles", "stall_output_cycles"):
            m.d.comb += getattr(self, name).eq(getattr(core, name))

        # Weight, parameter and activation scratchpads are RegisteredRams: the register behind
        # each read port is the block RAM's own output register on the ECP5 (its clock-to-out
        # without it is 5.83 ns of the 10 ns cycle, see hw/core/bram.py).
        par_lanes = g.par_bits // g.bus_bits
        m.submodules.par_sram = par_ram = RegisteredRam(width=g.par_bits, depth=g.par_depth,
                                                        lanes=par_lanes)
        # the weight scratchpad is banked by depth, WGT_BANK_DEPTH words a bank (as deep as an
        # ECP5 block RAM at 9 bits), and every bank's output is registered before the bank
        # select: Yosys would otherwise cascade the block RAMs of one deep memory through a
        # mux right behind their clock-to-out (measured 13.2 ns on the ULX3S)
        n_wb = -(-g.wgt_depth // WGT_BANK_DEPTH)
        wb_bits = (WGT_BANK_DEPTH - 1).bit_length()     # word address bits within a bank
        wgt_lanes = g.wgt_bits // g.bus_bits
        wgt_banks = []
        for b in range(n_wb):
            depth = min(WGT_BANK_DEPTH, g.wgt_depth - b * WGT_BANK_DEPTH)
            wgt_banks.append(RegisteredRam(width=g.wgt_bits, depth=depth, lanes=wgt_lanes))
            m.submodules[f"wgt_sram{b}"] = wgt_banks[-1]
        # the activation scratchpad is one memory per row (one row's 32 bytes of a word each),
        # read with a skew of one cycle per row (see the GEMM sequencer). Its write lanes are
        # as fine as a bus word and as an int8 result row (``cols`` bytes) need: GEMMs with
        # ``out_act`` write their results here, a row into one row's memory
        row_bits = BANK * 8
        act_lanes = g.act_bits // g.bus_bits
        # a row is k whole bus lanes, or a bus lane holds j whole rows
        row_lanes = row_bits // g.bus_bits if g.bus_bits <= row_bits else 1
        lane_bits = min(g.bus_bits, C * 8, row_bits)    # one write-enable lane
        fine = row_bits // lane_bits                      # write lanes per row memory
        act_mems = []
        for r in range(R):
            # (the write port through registers: every writer of ACT meets in one multiplexer
            # a row, and its output crossed the chip to the row's block RAMs on ulx3s / fpga)
            act_mems.append(RegisteredRam(width=row_bits, depth=g.act_depth, lanes=fine,
                                          w_reg=True))
            m.submodules[f"act_sram{r}"] = act_mems[-1]
        self.sim_rams = {"act": act_mems, "wgt": wgt_banks, "par": par_ram}   # (amaranth.sim)
        m.submodules.out_sram = out_mem = memory.Memory(shape=g.out_bits, depth=g.out_depth,
                                                        init=[])

        # -- loads: DMA read data -> scratchpads (and the LUT) -------------------------------
        ld_target = Signal(Target)
        ld_packed = Signal()     # a WGT load in a packed format (LoadFormat)
        ld_word = Signal(16)
        ld_lane = Signal(range(max(2, g.act_bits // g.bus_bits)))
        lut_byte = Signal(range(max(2, g.bus_bits // 8)))
        lut_ptr = Signal(9)
        to_lut = ld_target == Target.LUT
        # A LUT word is taken only once its last byte is written, so the DMA reports the load
        # done only after the whole table is in place. The ready is a register: "not a LUT
        # load, or on the word's last byte", updated with the target and the byte counter.
        last_byte = g.bus_bits // 8 - 1
        ld_ready = Signal(init=1)   # (ld_target resets to ACT)
        ld_hold = Signal()             # a loaded activation word waits (see below)
        wgt_wait = Signal()            # a LOAD into WGT waits for a TO_WGT (below)
        with m.If(~ld_packed):
            m.d.comb += self.i_load.ready.eq(ld_ready & ~ld_hold & ~wgt_wait)
        # packed weight loads go through the unpacker, which takes bus words at its own pace
        m.submodules.wgt_unpack = unpack = WgtUnpack(cols=C, bus_bits=g.bus_bits)
        m.d.comb += [unpack.i.payload.eq(self.i_load.payload.data),
                     unpack.i.valid.eq(self.i_load.valid & ld_packed & ~wgt_wait),
                     unpack.start.eq(self.load_start), unpack.fmt.eq(self.load_fmt)]
        with m.If(ld_packed):
            m.d.comb += self.i_load.ready.eq(unpack.i.ready)
        with m.If(unpack.emit):
            m.d.sync += ld_word.eq(ld_word + 1)
        take = self.i_load.valid & self.i_load.ready & ~ld_packed
        # the scratchpads are written a cycle after a word is taken, from registers (word
        # address, data, lane enables): the counters' outputs fan out to a hundred block RAMs
        # otherwise, and their own increments followed them there. A load is reported done
        # when the command processor's slice is empty, and a GEMM's checks take four cycles
        # after that, so every word is written before anything reads it.
        #
        # A GEMM with ``out_act`` writes result rows into the activation memories (below); a
        # result row and a loaded word that meet at one row's memory in one cycle: the result
        # is written (the array cannot wait) and the loaded word waits, its registers held and
        # the load's ready low (``ld_hold``), so the next cycle writes it.
        bus_data = Signal(g.bus_bits, reset_less=True)
        wr_word = Signal(16, reset_less=True)
        with m.If(~ld_hold):
            m.d.sync += [bus_data.eq(self.i_load.payload.data), wr_word.eq(ld_word)]

        act_en = Signal(act_lanes)     # bus lanes of the activation word written this cycle
        # results into ACT: row ``res_row``'s memory, word ``res_word``, lanes ``res_en``
        res_act = Signal()
        res_row = Signal(range(max(2, R)))
        res_word = Signal(16)
        res_en = Signal(fine)
        res_data = Signal(row_bits)
        # a VOP's results (the vector sequencer, below) go the same way as a GEMM's: row
        # ``res_row`` (= ``vw_row``), word ``res_word``, all lanes
        vw_en = Signal()
        vw_row = Signal(range(max(2, R)))
        vw_addr = Signal(16)
        vw_data = Signal(row_bits)
        # with several vector units (``vec_units`` V > 1) unit u's results go into row
        # ``V * vx_grp + u``'s memory through its own registers: the rows of a group at once
        V = cfg.vec_units if cfg.vec_max_row else 1
        vx_en = [Signal(name=f"vx_en{u}") for u in range(V)] if V > 1 else []
        vx_addr = [Signal(16, name=f"vx_addr{u}") for u in range(V)] if V > 1 else []
        vx_data = [Signal(row_bits, name=f"vx_data{u}", reset_less=True)
                   for u in range(V)] if V > 1 else []
        vx_grp = Signal(range(max(2, R // V)), name="vx_grp")
        vx_here = [vx_en[r % V] & (vx_grp == r // V) for r in range(R)] if V > 1 else []
        ld_row_en = []                 # per row: the load's write enables (fine lanes)
        # max pooling (``GemmBody.pool``, below): row r writes its window maximum ``pool_max[r]``
        # into its own memory at ``pool_wa[r]`` when ``pool_we[r]`` (rows independently)
        pool_we = [Signal(name=f"pool_we{r}") for r in range(R)]
        pool_wa = [Signal(16, name=f"pool_wa{r}") for r in range(R)]
        pool_max = [Signal(row_bits, name=f"pool_max{r}", reset_less=True) for r in range(R)]
        # a DECODE's pixels (no LOAD runs meanwhile: both are on the LOAD stage)
        dec_we = Signal()
        dec_row = Signal(4)
        dec_addr = Signal(16)
        dec_data = Signal(row_bits)
        if cfg.jpeg_decoders:
            busy_w = res_act | vw_en | Cat(*pool_we, *vx_en).any()
            m.d.comb += [self.i_dec.ready.eq(~busy_w),
                         dec_we.eq(self.i_dec.valid & ~busy_w),
                         dec_row.eq(self.i_dec.payload.row), dec_addr.eq(self.i_dec.payload.addr),
                         dec_data.eq(self.i_dec.payload.data)]
        for r, ram in enumerate(act_mems):
            if g.bus_bits <= row_bits:
                k = row_lanes
                data_r = bus_data.replicate(k)
                en_r = Cat(*(b.replicate(g.bus_bits // lane_bits) for b in act_en[r * k:r * k + k]))
            else:
                j = g.bus_bits // row_bits
                data_r = bus_data[(r % j) * row_bits:(r % j + 1) * row_bits]
                en_r = act_en[r // j].replicate(fine)
            ld_row_en.append(en_r)
            here = (res_act | vw_en) & (res_row == r)
            pw = pool_we[r]
            dh = dec_we & (dec_row == r)
            w_addr = Mux(here, res_word, Mux(dh, dec_addr, wr_word))
            w_data = Mux(here, res_data, Mux(dh, dec_data, data_r))
            w_all = pw | dh
            if V > 1:       # a vector unit's result (never at the same time as a pool's)
                w_addr = Mux(vx_here[r], vx_addr[r % V], w_addr)
                w_data = Mux(vx_here[r], vx_data[r % V], w_data)
                w_all = w_all | vx_here[r]
            m.d.comb += [ram.w_addr.eq(Mux(pw, pool_wa[r], w_addr)),
                         ram.w_data.eq(Mux(pw, pool_max[r], w_data)),
                         ram.w_en.eq(Mux(w_all, Const((1 << fine) - 1, fine),
                                         Mux(here, res_en, Mux(ld_hold, 0, en_r))))]
        # (a GEMM's result rows and a pool's maxima never meet: one block runs at a time)
        m.d.comb += ld_hold.eq(((res_act | vw_en) & Array(en.any() for en in ld_row_en)[res_row])
                               | Cat(*((pool_we[r] | (vx_here[r] if V > 1 else 0))
                                       & ld_row_en[r].any() for r in range(R))).any())
        wgt_en = Signal(wgt_lanes)     # bus lanes of the weight word written this cycle
        # a TO_WGT VOP's words (the vector sequencer): whole words, from registers. While one
        # runs (``tw_lock``) a LOAD into WGT waits: no bus word is taken and the unpacker gets
        # none, so the last loaded word is written before the copy's first (which comes
        # several cycles after the VOP is taken), and nothing of the load is lost
        tw_en = Signal()
        tw_addr = Signal(16)
        tw_data = Signal(g.wgt_bits)
        tw_lock = Signal()
        for b, ram in enumerate(wgt_banks):
            w_en = wgt_en | unpack.o_valid.replicate(wgt_lanes)
            w_addr = Mux(tw_en, tw_addr, wr_word)
            w_en = Mux(tw_en, Const((1 << wgt_lanes) - 1, wgt_lanes), w_en)
            m.d.comb += [ram.w_addr.eq(w_addr[:wb_bits]),
                         ram.w_data.eq(Mux(tw_en, tw_data,
                                           Mux(unpack.o_valid, unpack.o_word,
                                               bus_data.replicate(wgt_lanes)))),
                         ram.w_en.eq(w_en if n_wb == 1 else
                                     Mux(w_addr[wb_bits:] == b, w_en, 0))]
        m.d.comb += wgt_wait.eq(tw_lock & (ld_target == Target.WGT))
        par_en = Signal(par_lanes)
        m.d.comb += [par_ram.w_addr.eq(wr_word), par_ram.w_data.eq(bus_data.replicate(par_lanes)),
                     par_ram.w_en.eq(par_en)]
        for t, en in ((Target.ACT, act_en), (Target.WGT, wgt_en), (Target.PAR, par_en)):
            lanes = g.bits(t) // g.bus_bits
            with m.If(take & (ld_target == t)):
                last_lane = ld_lane == lanes - 1
                m.d.sync += [en.eq(Const(1, lanes) << ld_lane if lanes > 1 else 1),
                             ld_lane.eq(Mux(last_lane, 0, ld_lane + 1)),
                             ld_word.eq(Mux(last_lane, ld_word + 1, ld_word))]
            with m.Elif(~ld_hold):     # (a held activation word is written next cycle)
                m.d.sync += en.eq(0)
        m.d.comb += [core.i_lut.payload.addr.eq(lut_ptr[:8]),
                     core.i_lut.payload.data.eq(self.i_load.payload.data.word_select(lut_byte, 8))]
        with m.If(to_lut & self.i_load.valid):
            m.d.comb += core.i_lut.valid.eq(~lut_ptr[8])
            next_byte = Mux(lut_byte == last_byte, 0, lut_byte + 1)
            m.d.sync += [lut_byte.eq(next_byte), lut_ptr.eq(lut_ptr + ~lut_ptr[8]),
                         ld_ready.eq(next_byte == last_byte)]
        with m.If(self.load_start):
            m.d.sync += [ld_target.eq(self.load_target), ld_word.eq(self.load_addr),
                         ld_lane.eq(0), lut_ptr.eq(0), lut_byte.eq(0),
                         ld_ready.eq(self.load_target != Target.LUT),
                         ld_packed.eq((self.load_target == Target.WGT) & (self.load_fmt != 0))]

        # -- GEMM sequencer --------------------------------------------------------------------
        gemm = Signal(GemmBody)
        busy = Signal()
        setup = Signal(2)         # two cycles: register the loop bounds, then start
        entries = Signal(24)      # banks * nnz
        rows_left = Signal(32)    # n_tiles * m_tiles * rows, counted down
        no_rows_left = Signal()   # register: rows_left == 0 (no compare in the done path)
        vbusy = Signal()          # a VOP runs (the vector sequencer, below)
        m.d.comb += [self.i_gemm.ready.eq(~busy & ~vbusy), self.gemm_busy.eq(busy | vbusy)]
        accept = Signal()
        m.d.comb += accept.eq(self.i_gemm.valid & ~busy & ~vbusy)
        with m.If(accept):
            m.d.sync += [gemm.eq(self.i_gemm.payload), busy.eq(1), setup.eq(1)]
        # the loop bounds' products: operands registered with the command (inside a DSP on
        # the ECP5), products one cycle later, in time for the start cycle
        new = GemmBody(self.i_gemm.payload)
        m_banks = registered_uproduct(m, new.m_tiles, new.banks, width=32,   # m_tiles * banks
                                      platform=platform, name="m_banks", en_in=accept)
        tiles = registered_uproduct(m, new.n_tiles, new.m_tiles, width=32,   # n_tiles * m_tiles
                                    platform=platform, name="tiles", en_in=accept)
        start = Signal()
        m.d.comb += start.eq(setup[1])
        with m.If(setup.any()):     # never in the cycle that accepts a GEMM (busy is high)
            m.d.sync += setup.eq(setup << 1)
        # loop bounds are registered so no multiplier sits in the readers' compare paths
        with m.If(setup[0]):
            m.d.sync += [
                entries.eq((gemm.banks << 5) >> gemm.log2s),
                no_rows_left.eq((gemm.n_tiles == 0) | (gemm.m_tiles == 0)),
            ]
        with m.If(setup[1]):     # (pool: the last row's window maxima, one per tile)
            m.d.sync += rows_left.eq(Mux(gemm.pool, tiles, tiles * R))

        # row 0's activation read port follows the reader; row r's takes row 0's address and
        # enable r cycles later (a chain of registers), so its data is row 0's r cycles later,
        # which is when row r of the array needs it (TensorCore act_skew): no window delay
        # lines, and only row 0's enable is on the core's handshake path
        # (row 0 is read at the reader's address; each row after it a cycle later)
        for r in range(1, R):
            en_r = Signal(name=f"act_en{r}")
            addr_r = Signal.like(act_mems[0].r_addr, name=f"act_addr{r}")
            m.d.sync += [en_r.eq(act_mems[r - 1].r_en), addr_r.eq(act_mems[r - 1].r_addr)]
            m.d.comb += [act_mems[r].r_en.eq(en_r), act_mems[r].r_addr.eq(addr_r)]

        # convolution addressing (``GemmBody.conv``): the word of row tile i, bank b is walked
        # incrementally (conv_act_words is the definition): c_addr is the tap's word if it is
        # inside the band, else pad_addr is read. Channel bank cb, tap column dx and the
        # pixel's bank b count up; a tap row adds row_pitch - ksize*cbanks + 1, a pixel
        # st*cbanks, an output row st*row_pitch (from the row's first pixel). c_y is the
        # window row, c_x the word offset in the row (signed: left padding is negative).
        cv = Signal(name="cv_on")
        cv_init = Signal(16, name="cv_init")          # act_addr - top*row_pitch - pad*cbanks
        cv_x_init = Signal(signed(24), name="cv_x_init")
        cv_dy = Signal(16, name="cv_dy_step")
        cv_px = Signal(16, name="cv_px_step")
        cv_row = Signal(17, name="cv_row_step")
        cv_x_lim = Signal(signed(24), name="cv_x_lim")
        cv_y_hi = Signal(11, name="cv_y_hi")
        cv_cb_m1 = Signal(8, name="cv_cb_m1")
        cv_tap = Signal(8, name="cv_tap_step")       # pool: cbanks (one bank a tap), else 1
        cv_base = Signal(16, name="cv_base")         # the current pass's first word
        pl = gemm.pool
        cv_k_m1 = Signal(4, name="cv_k_m1")
        cv_b_m1 = Signal(16, name="cv_b_m1")
        cv_w_m1 = Signal(10, name="cv_w_m1")
        st_one = ~gemm.stride2
        with m.If(setup[0]):
            m.d.sync += [
                cv.eq(gemm.conv),
                cv_init.eq(gemm.act_addr - _small_product(gemm.top, gemm.row_pitch)
                           - _small_product(gemm.pad, gemm.cbanks)),
                cv_x_init.eq(-_small_product(gemm.pad, gemm.cbanks)),
                cv_dy.eq(gemm.row_pitch - _small_product(gemm.ksize, gemm.cbanks)
                         + Mux(gemm.pool, gemm.cbanks, 1)),
                cv_tap.eq(Mux(gemm.pool, gemm.cbanks, 1)),
                cv_px.eq(Mux(st_one, gemm.cbanks, gemm.cbanks << 1)),
                cv_row.eq(Mux(st_one, gemm.row_pitch, gemm.row_pitch << 1)),
                cv_x_lim.eq(gemm.row_pitch - gemm.cbanks),
                cv_y_hi.eq(gemm.top + gemm.in_h),
                cv_cb_m1.eq(Mux(gemm.pool, 0, gemm.cbanks - 1)), cv_k_m1.eq(gemm.ksize - 1),
                cv_b_m1.eq(gemm.banks - 1), cv_w_m1.eq(gemm.out_w - 1),
            ]
        c_addr = Signal(16, name="cv_addr")     # the current tap's word
        c_rbase = Signal(16, name="cv_rbase")   # the current output row's first pixel
        c_pbase = Signal(16, name="cv_pbase")   # the current pixel
        c_x = Signal(signed(24), name="cv_x")
        c_x0 = Signal(signed(24), name="cv_x0")
        c_y = Signal(20, name="cv_y")
        c_y0 = Signal(20, name="cv_y0")
        c_cb = Signal(8, name="cv_cb")
        c_dx = Signal(4, name="cv_dx")
        c_b = Signal(16, name="cv_b")
        c_ox = Signal(10, name="cv_ox")
        c_in = Signal(name="cv_inside")
        m.d.comb += c_in.eq((c_y >= gemm.top) & (c_y < cv_y_hi) & (c_x >= 0)
                            & (c_x <= cv_x_lim))

        v_raddr = Signal(16)      # the vector sequencer's read (row 0's port; the chain
        v_ren = Signal()          # takes it to the other rows)

        def act_rd(m, addr, en):
            m.d.comb += [act_mems[0].r_addr.eq(Mux(vbusy, v_raddr,
                                                   Mux(cv, Mux(c_in, c_addr, gemm.pad_addr),
                                                       addr))),
                         act_mems[0].r_en.eq(Mux(vbusy, v_ren, en))]

        wgt_sel = [Signal(range(max(2, n_wb)), name=f"wgt_sel{k}") for k in range(2)]

        def wgt_rd(m, addr, en):
            for ram in wgt_banks:
                m.d.comb += [ram.r_addr.eq(addr[:wb_bits]), ram.r_en.eq(en), ram.r_oce.eq(en)]
            if n_wb > 1:
                with m.If(en):
                    m.d.sync += wgt_sel[0].eq(addr[wb_bits:])

        def par_rd(m, addr, en):
            m.d.comb += [par_ram.r_addr.eq(addr), par_ram.r_en.eq(en), par_ram.r_oce.eq(en)]

        # Weight and parameter words reach the core through two registers behind their block
        # RAMs (see _word_reader): the RAM's output register (one per weight bank), then the
        # bank select for the weights and a plain register for the parameters, so neither
        # the RAMs' clock-to-out nor the distance to the far lanes or parameter slots shares a
        # cycle with anything else.
        wgt_bq = [ram.r_data for ram in wgt_banks]
        wgt_q = Signal(g.wgt_bits, reset_less=True)
        par_q = Signal(g.par_bits, reset_less=True)
        # The activation rows come out of the RAMs' output registers unconditionally (the
        # core is told the words come act_delay = 1 cycle after their handshake): no enable
        # on 2,048 bits.
        act_q = [ram.r_data for ram in act_mems]
        m.d.comb += [ram.r_oce.eq(1) for ram in act_mems]
        # (a pool's words go to the max units, which are always ready, not to the core)
        act_v = Signal(name="act_valid")
        m.d.comb += core.i_act.valid.eq(act_v & ~pl)
        act_rdr = _word_reader(m, "act", act_rd, act_v, core.i_act.ready | pl, start,
                               gemm.act_addr, m_banks, 1, gemm.n_tiles, 0)
        cv_st = Mux(st_one, 1, 2)
        # a pass over the row tiles starts at cv_init, a pool's pass j at cv_init + j
        pass_init = Mux(start, cv_init, cv_base + pl)
        with m.If(start | (act_rdr.issue & act_rdr.x_last)):    # a pass over the row tiles
            m.d.sync += [c_addr.eq(pass_init), c_rbase.eq(pass_init), c_pbase.eq(pass_init),
                         cv_base.eq(pass_init),
                         c_x.eq(cv_x_init), c_x0.eq(cv_x_init), c_y.eq(0), c_y0.eq(0),
                         c_cb.eq(0), c_dx.eq(0), c_b.eq(0), c_ox.eq(0)]
        with m.Elif(act_rdr.issue):
            with m.If(c_b == cv_b_m1):                      # the pixel's last bank
                m.d.sync += [c_cb.eq(0), c_dx.eq(0), c_b.eq(0)]
                with m.If(c_ox == cv_w_m1):                 # next output row
                    row = c_rbase + cv_row
                    m.d.sync += [c_rbase.eq(row), c_pbase.eq(row), c_addr.eq(row),
                                 c_x.eq(cv_x_init), c_x0.eq(cv_x_init),
                                 c_y.eq(c_y0 + cv_st), c_y0.eq(c_y0 + cv_st), c_ox.eq(0)]
                with m.Else():                              # next pixel
                    px = c_pbase + cv_px
                    m.d.sync += [c_pbase.eq(px), c_addr.eq(px),
                                 c_x.eq(c_x0 + cv_px), c_x0.eq(c_x0 + cv_px),
                                 c_y.eq(c_y0), c_ox.eq(c_ox + 1)]
            with m.Else():
                m.d.sync += c_b.eq(c_b + 1)
                with m.If(c_cb != cv_cb_m1):                # next channel bank
                    m.d.sync += [c_addr.eq(c_addr + 1), c_cb.eq(c_cb + 1)]
                with m.Elif(c_dx != cv_k_m1):               # next tap in the row
                    m.d.sync += [c_addr.eq(c_addr + cv_tap), c_cb.eq(0), c_dx.eq(c_dx + 1),
                                 c_x.eq(c_x + gemm.cbanks)]
                with m.Else():                              # next tap row
                    m.d.sync += [c_addr.eq(c_addr + cv_dy), c_cb.eq(0), c_dx.eq(0),
                                 c_x.eq(c_x0), c_y.eq(c_y + 1)]
        # (a pool uses neither weights nor parameters)
        _word_reader(m, "wgt", wgt_rd, core.i_wgt.valid, core.i_wgt.ready, start & ~pl,
                     gemm.wgt_addr, entries, gemm.m_tiles, gemm.n_tiles, entries,
                     stages=[[(wgt_sel[1], wgt_sel[0])],
                             [(wgt_q, Array(wgt_bq)[wgt_sel[1]] if n_wb > 1 else wgt_bq[0])]])
        # the parameter words reach the core's command port through a skid register: the
        # reader's ready is that register's "empty" flip-flop, not the core's ready, so the
        # reader's counters and RAM enables do not wait on the core's handshake logic, which
        # the placer may put far away (u_fpga28: 11.15 ns, 8.2 ns of it routing). No latency.
        m.submodules.par_skid = par_skid = SkidSlice(g.par_bits)
        _word_reader(m, "par", par_rd, par_skid.i.valid, par_skid.i.ready, start & ~pl,
                     gemm.par_addr, 1, gemm.m_tiles, gemm.n_tiles, 1,
                     stages=[[], [(par_q, par_ram.r_data)]])
        m.d.comb += [par_skid.i.payload.eq(par_q), par_skid.clear.eq(start),
                     core.i_cmd.valid.eq(par_skid.o.valid),
                     par_skid.o.ready.eq(core.i_cmd.ready)]
        m.d.comb += core.i_act.payload.eq(Cat(*act_q))
        for c in range(C):
            w = wgt_q[16 * c:16 * c + 16]
            m.d.comb += [core.i_wgt.payload[c].value.eq(w[:8]),
                         core.i_wgt.payload[c].index.eq(w[8:13])]
        cmd = core.i_cmd.payload
        m.d.comb += [cmd.log2s.eq(gemm.log2s), cmd.banks.eq(gemm.banks),
                     cmd.mode.eq(Mux(gemm.mode, OutMode.INT8, OutMode.RAW)),
                     cmd.relu.eq(gemm.relu), cmd.lut.eq(gemm.lut)]
        for c in range(C):
            p = par_skid.o.payload[64 * c:64 * c + 64]
            m.d.comb += [cmd.bias[c].eq(p[:32]), cmd.mult[c].eq(p[32:48]),
                         cmd.shift[c].eq(p[48:54])]

        # -- max pooling (``GemmBody.pool``; ``pool_act_words`` is the definition) -----------
        # The walker's words go to one max unit per row instead of the core. A word's tap
        # flags and output word leave with it (issue cycle t) and follow it down the rows:
        # row 0's data is at its RAM's output at t + 2 (valid, then act_delay), row r's r
        # cycles later, so the flags pass a register chain beside the address chain. Each
        # row keeps its running maximum in ``pool_max`` (the first tap loads it) and writes
        # it the cycle after the window's last tap, from registers.
        po_pix = Signal(16, name="pool_pix")      # output word of the current pixel
        po_pass = Signal(16, name="pool_pass")    # output word of the pass's first pixel
        po_step = Signal(16, name="pool_step")
        with m.If(setup[0]):
            m.d.sync += po_step.eq(Mux(gemm.out_stride != 0, gemm.out_stride, gemm.n_tiles))
        tap_last = Signal(name="pool_tap_last")
        m.d.comb += tap_last.eq(c_b == cv_b_m1)
        with m.If(start):
            m.d.sync += [po_pix.eq(gemm.out_addr), po_pass.eq(gemm.out_addr)]
        with m.Elif(act_rdr.issue & tap_last):
            with m.If(act_rdr.x_last):                     # the pass's last window
                m.d.sync += [po_pass.eq(po_pass + 1), po_pix.eq(po_pass + 1)]
            with m.Else():
                m.d.sync += po_pix.eq(po_pix + po_step)
        pq_v = [Signal(name=f"pool_v{k}") for k in range(R + 1)]
        pq_first = [Signal(name=f"pool_first{k}") for k in range(R + 1)]
        pq_last = [Signal(name=f"pool_last{k}") for k in range(R + 1)]
        pq_addr = [Signal(16, name=f"pool_addr{k}") for k in range(R + 1)]
        m.d.sync += [pq_v[0].eq(act_rdr.issue & pl), pq_first[0].eq(c_b == 0),
                     pq_last[0].eq(tap_last), pq_addr[0].eq(po_pix)]
        for k in range(R):
            m.d.sync += [pq_v[k + 1].eq(pq_v[k]), pq_first[k + 1].eq(pq_first[k]),
                         pq_last[k + 1].eq(pq_last[k]), pq_addr[k + 1].eq(pq_addr[k])]
        for r in range(R):
            d, acc = act_q[r], pool_max[r]
            mx = Cat(*(Mux(acc[8 * k:8 * k + 8].as_signed() > d[8 * k:8 * k + 8].as_signed(),
                           acc[8 * k:8 * k + 8], d[8 * k:8 * k + 8]) for k in range(BANK)))
            v = pq_v[r + 1]
            with m.If(v):
                m.d.sync += acc.eq(Mux(pq_first[r + 1], d, mx))
            m.d.sync += [pool_we[r].eq(v & pq_last[r + 1]), pool_wa[r].eq(pq_addr[r + 1])]
        with m.If(pool_we[R - 1]):
            m.d.sync += [rows_left.eq(rows_left - 1), no_rows_left.eq(rows_left == 1)]

        # results -> output scratchpad. The write address is a register, ``slot`` (quarter
        # words: a raw row is 4 slots, an int8 row 1, see out_slot), stepped as rows arrive;
        # every candidate next value is one adder from registers, so the path from the
        # result's valid/last to the RAM's address pins is a 3:1 mux and the slot register.
        g_tiles = BANK // C                        # channel tiles per bank (int8 mode)
        lg_g = g_tiles.bit_length() - 1
        lg_rg = (R * g_tiles).bit_length() - 1     # slots per row tile and bank: R * g
        lg_r = R.bit_length() - 1
        # slots (C bytes) of either scratchpad: OUT words are 4 slots, ACT words R * g
        sb = max(20, (max(g.out_depth * 4, g.act_depth * R * g_tiles) - 1).bit_length())
        slot = Signal(sb)           # the row being written
        tile_slot = Signal(sb)      # row 0 of the current tile
        col_slot = Signal(sb)       # row 0 of the current channel tile's first row tile
        col_mod = Signal(range(max(2, g_tiles)))   # channel tile modulo g
        i_left = Signal(16)         # row tiles left after this one (counted down)
        i_last = Signal()           # register: i_left == 0
        i_step = Signal(sb)         # slots from one row tile to the next: nbk * R * g
        m_one = Signal()            # register: m_tiles == 1
        int8 = gemm.mode
        to_act = Signal()           # register: int8 results into ACT (``out_act``)
        # the first slot: OUT word out_addr (4 slots a word), or ACT word out_addr (R * g)
        slot0 = Mux(gemm.out_act, gemm.out_addr << lg_rg, gemm.out_addr << 2)
        with m.If(setup[0]):
            m.d.sync += [slot.eq(slot0), tile_slot.eq(slot0), col_slot.eq(slot0),
                         to_act.eq(gemm.mode & gemm.out_act), col_mod.eq(0),
                         i_left.eq(gemm.m_tiles - 1), i_last.eq(gemm.m_tiles == 1),
                         m_one.eq(gemm.m_tiles == 1),
                         i_step.eq(Mux(gemm.out_act & (gemm.out_stride != 0),
                                       gemm.out_stride,
                                       (gemm.n_tiles + g_tiles - 1) >> lg_g) << lg_rg)]
        out_wr = out_mem.write_port(granularity=C * 8)
        res = core.o_res.payload
        packed = Cat(*(res.data[c][:8] for c in range(C)))
        m.d.comb += [out_wr.addr.eq(slot[2:]),
                     out_wr.data.eq(Mux(int8, packed.replicate(4), res.data)),
                     out_wr.en.eq(Mux(core.o_res.valid & ~to_act,
                                      Mux(int8, Const(1, 4) << slot[:2], 0b1111), 0))]
        # into ACT: slot = (word * R + row) * g + lane (the activation layout, out_slot)
        per = C * 8 // lane_bits              # write lanes a result row covers
        # a result row enters the ACT write multiplexers one cycle after the tensor core gives
        # it, from registers: the core's output valid had fanned out through them (and the
        # LOAD's hold) to every row memory's enables across the chip (on ulx3s / fpga the
        # board's worst paths: placer's estimate 42.94 MHz, 58.67 with this register).
        # ``gemm_done`` does not move (``no_rows_left`` is itself a register behind the last
        # result); a loaded word that meets a result row (``ld_hold``) meets it a cycle
        # later (the performance model's ``Timing.gemm_result``).
        res_v = Signal(name="res_v")
        res_slot = Signal.like(slot, name="res_slot", reset_less=True)
        res_packed = Signal.like(packed, name="res_packed", reset_less=True)
        m.d.sync += [res_v.eq(core.o_res.valid & to_act), res_slot.eq(slot),
                     res_packed.eq(packed)]
        m.d.comb += [res_act.eq(res_v),
                     res_row.eq(Mux(vw_en, vw_row,
                                    res_slot[lg_g:lg_g + lg_r] if lg_r else 0)),
                     res_word.eq(Mux(vw_en, vw_addr, res_slot[lg_g + lg_r:])),
                     res_data.eq(Mux(vw_en, vw_data, res_packed.replicate(g_tiles))),
                     res_en.eq(Mux(vw_en, Const((1 << fine) - 1, fine),
                                   Const((1 << per) - 1, fine) << (res_slot[:lg_g] * per)
                                   if g_tiles > 1 else Const((1 << fine) - 1, fine)))]
        row_next = Signal(sb)
        tile_next = Signal(sb)
        col_next = Signal(sb)
        col_wrap = col_mod == g_tiles - 1 if g_tiles > 1 else Const(1)
        m.d.comb += [row_next.eq(slot + Mux(int8, g_tiles, 4)),
                     tile_next.eq(tile_slot + i_step),
                     col_next.eq(col_slot + Mux(col_wrap, (R - 1) * g_tiles + 1, 1))]
        with m.If(core.o_res.valid):
            m.d.sync += [rows_left.eq(rows_left - 1), no_rows_left.eq(rows_left == 1)]
            with m.If(~int8 | ~res.last):
                m.d.sync += slot.eq(row_next)
            with m.Elif(~i_last):
                m.d.sync += [slot.eq(tile_next), tile_slot.eq(tile_next),
                             i_left.eq(i_left - 1), i_last.eq(i_left == 1)]
            with m.Else():
                m.d.sync += [slot.eq(col_next), tile_slot.eq(col_next), col_slot.eq(col_next),
                             col_mod.eq(Mux(col_wrap, 0, col_mod + 1)),
                             i_left.eq(gemm.m_tiles - 1), i_last.eq(m_one)]
        with m.If(busy & ~setup.any() & no_rows_left):
            m.d.sync += busy.eq(0)
            m.d.comb += self.gemm_done.eq(1)

        if cfg.vec_max_row:
            self._vector_sequencer(m, act_q, vbusy, v_raddr, v_ren, vw_en, vw_row, vw_addr,
                                   vw_data, busy, par_ram, (tw_en, tw_addr, tw_data, tw_lock),
                                   (vx_en, vx_addr, vx_data, vx_grp))
        else:
            m.d.comb += [vw_en.eq(0), tw_en.eq(0), tw_lock.eq(0)]

        # -- stores: output scratchpad -> DMA write data -------------------------------------
        lanes = g.out_bits // g.bus_bits
        st_rd = out_mem.read_port(transparent_for=[out_wr])
        w_valid, w_ready = Signal(), Signal()
        st_words = Signal(24)
        m.d.comb += st_words.eq((self.store_beats + lanes - 1) // lanes if lanes > 1
                                else self.store_beats)
        st_words_r = Signal(24)
        st_go = Signal()
        with m.If(self.store_start):
            m.d.sync += [st_words_r.eq(st_words), st_go.eq(self.store_beats != 0)]
        with m.Else():
            m.d.sync += st_go.eq(0)
        st_addr_r = Signal(16)
        with m.If(self.store_start):
            m.d.sync += st_addr_r.eq(self.store_addr)
        # the words pass a register right behind the block RAM (and its transparency mux)
        # before the hold registers (u_fpga32: RAM -> mux -> hold registers at 10.0 ns, the
        # holds placed toward the DMA). The cycle it adds before a store's first word is
        # hidden behind the DMA's checks (the performance model's store_job is unchanged).
        st_q = Signal(g.out_bits, name="st_q", reset_less=True)
        _word_reader(m, "st", st_rd, w_valid, w_ready, st_go, st_addr_r, st_words_r, 1, 1, 0,
                     stages=[[(st_q, st_rd.data)]])
        # two hold registers, filled and emptied in turn: the reader's ready is a register
        # (this entry is free), never the DMA's ready, so no handshake path runs through both
        hold = [Signal(g.out_bits, name=f"hold{i}", reset_less=True) for i in range(2)]
        hv = [Signal(name=f"hold_valid{i}") for i in range(2)]
        wp, rp = Signal(), Signal()
        lane = Signal(range(max(2, lanes)))
        left_one = Signal()          # one beat left to send (registered compare)
        left = Signal(24)
        with m.If(self.store_start):
            m.d.sync += [left.eq(self.store_beats), left_one.eq(self.store_beats == 1)]
        out_take = self.o_store.valid & self.o_store.ready
        last_lane = (lane == lanes - 1) | left_one
        cur = Mux(rp, hold[1], hold[0])
        m.d.comb += [
            w_ready.eq(~Mux(wp, hv[1], hv[0])),
            self.o_store.valid.eq(Mux(rp, hv[1], hv[0])),
            self.o_store.payload.data.eq(cur.word_select(lane, g.bus_bits) if lanes > 1
                                         else cur),
        ]
        with m.If(out_take):
            m.d.sync += [left.eq(left - 1), left_one.eq(left == 2),
                         lane.eq(Mux(last_lane, 0, lane + 1))]
            with m.If(last_lane):
                m.d.sync += rp.eq(~rp)
                for i in range(2):
                    with m.If(rp == i):
                        m.d.sync += hv[i].eq(0)
        with m.If(w_valid & w_ready):
            m.d.sync += wp.eq(~wp)
            for i in range(2):
                with m.If(wp == i):
                    m.d.sync += [hold[i].eq(st_q), hv[i].eq(1)]
        return m

    def _vector_sequencer(self, m, act_q, vbusy, v_raddr, v_ren, vw_en, vw_row, vw_addr,
                          vw_data, gemm_busy, par_ram, tw, vx):
        """The VOP sequencer (``VopBody``; ``hw/vector/vop.py`` is the definition): one
        :class:`VectorUnit` command a row, the row's words read from its ACT memory into the
        unit, the results written back into the same memory.

        A row ``r`` of row tile ``i``: the command goes to the unit (``CMD``), then the row's
        ``B`` words (ADD and MUL: A's and B's in turn, ``2B``) are read one a cycle
        (``ISSUE``) through row 0's port; the address chain takes each read to row ``r``'s
        memory ``r`` cycles later, so the word is at ``act_q[r]`` ``r + 2`` cycles after its
        issue, where a tag chain beside it hands it to the unit. The unit takes it in that
        cycle: for the row operations it always does, and element-wise its output is always
        taken (the writes never wait; a 16-bit result's two words take two cycles, the time
        between two ADD vectors, which read two words each). The next row starts once the
        unit is idle and the last result is written (``DRAIN``), so every row reads what the
        rows before it wrote. Cycles a row: 1 + ``B`` (or ``2B``) + the drain (the unit's
        latency, ``r + 2`` and the write).

        LAYERNORM: a 16-bit input (``wide``) is read as two words a vector, as ADD's A and B
        are. The per-channel parameters come from PAR (``32 / cols`` words a vector of 32
        channels, read through PAR's port, idle during a VOP) into a register the unit takes
        as ``i_chan``; the next vector's words are read once it has taken one, so the
        normalized row leaves at one vector per ``32 / cols + 3`` cycles.

        ADD with ``chan``: the same fetch, from PAR word ``mult`` on (again from the row's
        first vector for every row). The unit takes A, B and the parameters together when
        B's word arrives, ``r + 3`` cycles after A's read, and the next vector's fetch starts
        then, its parameters whole ``P + 3`` cycles later (``P = 32 / cols``). The reads have
        no back-pressure, so they are timed to that: a row's first vector's reads are issued
        once its parameters are in the register, every later vector's A read ``P + 3``
        cycles after the one before (its parameters arrive in the cycle its B word does,
        whatever the row's latency ``r``); ``P + 3`` cycles a vector
        (:func:`~..vector.vop.vop_cycles`). (Waiting for the vector before to be taken, as
        a first version did, cost ``P + r + 6``.)

        Several units (``Config.vec_units`` V > 1): the rows go in groups of V, unit ``u``
        taking row ``r0 + u`` of the group starting at row ``r0``. The reads are the same for
        every row of a group (the address chain takes each to row ``r0 + u`` ``r0 + u``
        cycles later), so one ISSUE feeds all V units, each from its own tag and memory;
        each writes its results into its own row through its own registers (``vx``), and
        DRAIN waits for all of them. The units' cycles never depend on the data, so each
        runs the schedule of the unit before it a cycle later. The per-channel parameters
        stay one register, refilled once every unit has taken it: a per-channel ADD's
        vectors are ``P + 2 + V`` cycles apart (the last unit takes its parameters ``V - 1``
        cycles after the first); a LAYERNORM's units wait for it and go on together.
        """
        cfg = self._config
        R = cfg.rows
        V = cfg.vec_units
        G = R // V                      # groups of rows a row tile
        lg_v = V.bit_length() - 1
        vus = []
        for u in range(V):
            unit = VectorUnit(lanes=BANK, max_row=cfg.vec_max_row)
            m.submodules["vec" if V == 1 else f"vec{u}"] = unit
            vus.append(unit)
        vu = vus[0]
        vx_en, vx_addr, vx_data, vx_grp = vx
        vop = Signal(VopBody)
        m.d.comb += self.i_vop.ready.eq(~vbusy & ~gemm_busy)
        nb = Signal(12)                 # input words a row
        ow = Signal(13)                 # output words a row
        binary = Signal()
        pair = Signal()                 # two words a vector read: binary, or LAYERNORM wide
        wide_in = Signal()              # LAYERNORM of 16-bit input
        is_ln = Signal()
        is_chan = Signal()              # ADD with per-channel parameters from PAR
        wide = Signal()                 # 16-bit results: two words a vector
        reduce = Signal()
        sa, sb, so = Signal(16), Signal(16), Signal(16)
        a_base, b_base, o_base = Signal(16), Signal(16), Signal(16)
        t_left = Signal(16)             # row tiles after this one
        vr = Signal(range(max(2, R)))   # the row (V > 1: the group's first row)
        vg = Signal(range(max(2, G)))   # the group (vr / V)
        m.d.comb += vg.eq(vr >> lg_v)
        if V > 1:
            m.d.comb += vx_grp.eq(vg)
        k = Signal(13)                  # reads issued this row
        k_b = Signal()                  # the next read is B's (binary)
        # per unit: vectors it took this row, output words it wrote, the second word of a
        # 16-bit result next, A's word waiting for B's (binary)
        kk = [Signal(12, name="vop_kk" if V == 1 else f"vop_kk{u}") for u in range(V)]
        oc = [Signal(13, name="vop_oc" if V == 1 else f"vop_oc{u}") for u in range(V)]
        half = [Signal(name="vop_half" if V == 1 else f"vop_half{u}") for u in range(V)]
        a_hold = [Signal(BANK * 8, name="vop_a_hold" if V == 1 else f"vop_a_hold{u}")
                  for u in range(V)]
        # LAYERNORM's parameter fetch from PAR (one vector of 32 channels at a time)
        C = cfg.cols
        P = BANK // C                   # PAR words a vector
        f_run = Signal()                # a LAYERNORM or per-channel ADD row is in progress
        f_addr = Signal(16)             # the next PAR word
        f_i = Signal(range(P + 1))      # reads issued for the vector being fetched
        f_got = Signal(range(P + 1))    # its words arrived
        f_vec = Signal(13)              # vectors whose fetch has started this row
        f_v = [Signal(name=f"vop_fv{d}") for d in range(2)]
        chan = Signal(BANK * 64)        # the vector's parameters, channel l in bits 64l..
        chan_full = Signal()
        # a per-channel ADD: cycles since its last A read (saturating at the spacing of two)
        spacing = P + 2 + V
        gap = Signal(range(spacing + 1))
        with m.If(gap != spacing):
            m.d.sync += gap.eq(gap + 1)
        is_tw, tw_states, tw_datapath = self._to_wgt(m, vop, vbusy, nb, sa, vr, act_q, v_raddr,
                                                     v_ren, tw)
        with m.FSM(name="vop_fsm"):
            with m.State("IDLE"):
                with m.If(self.i_vop.valid & ~vbusy & ~gemm_busy):
                    m.d.sync += [vop.eq(self.i_vop.payload), vbusy.eq(1)]
                    m.next = "SETUP"
            with m.State("SETUP"):
                b_new = ((vop.n + 31) >> 5)[:12]
                is_red = (vop.op == VopOp.ROW_MAX) | (vop.op == VopOp.ROW_SUM)
                is_wide = vop.wide & ((vop.op == VopOp.ADD) | (vop.op == VopOp.SOFTMAX))
                ow_new = Mux(is_red, 1, Mux(is_wide, b_new << 1, b_new))
                ln_new = vop.op == VopOp.LAYERNORM
                is_bin = (vop.op == VopOp.ADD) | (vop.op == VopOp.MUL)
                m.d.sync += [nb.eq(b_new), ow.eq(ow_new), reduce.eq(is_red), wide.eq(is_wide),
                             binary.eq(is_bin), is_ln.eq(ln_new), wide_in.eq(ln_new & vop.wide),
                             is_chan.eq((vop.op == VopOp.ADD) & vop.chan),
                             pair.eq(is_bin | (ln_new & vop.wide)),
                             sa.eq(Mux(vop.a_stride == 0,
                                       Mux(ln_new & vop.wide, b_new << 1, b_new),
                                       vop.a_stride)),
                             sb.eq(Mux(vop.b_stride == 0, b_new, vop.b_stride)),
                             so.eq(Mux(vop.out_stride == 0, ow_new, vop.out_stride)),
                             a_base.eq(vop.a_addr), b_base.eq(vop.b_addr),
                             o_base.eq(vop.out_addr), t_left.eq(vop.m_tiles - 1), vr.eq(0)]
                m.next = "CMD"
                with m.If(is_tw):
                    m.next = "TW_SETUP"
            with m.State("CMD"):
                # (the units are idle here, all of them ready: they take it together)
                for unit in vus:
                    c = unit.i_cmd.payload
                    m.d.comb += [unit.i_cmd.valid.eq(1), c.op.eq(vop.op.as_value()),
                                 c.n.eq(vop.n), c.mult.eq(vop.mult), c.mult_b.eq(vop.mult_b),
                                 c.shift.eq(vop.shift), c.relu.eq(vop.relu),
                                 c.wide.eq(vop.wide), c.u_mult.eq(vop.u_mult),
                                 c.u_shift.eq(vop.u_shift), c.in_shift.eq(vop.shift[:5]),
                                 c.eps.eq(Cat(vop.mult, vop.mult_b, vop.u_mult[:8])),
                                 c.chan.eq(is_chan)]
                m.d.sync += [f_addr.eq(Mux(is_chan, vop.mult, vop.b_addr)), f_i.eq(0),
                             f_got.eq(0), f_vec.eq(0), chan_full.eq(0)]
                with m.If(vu.i_cmd.ready):
                    m.d.sync += [k.eq(0), k_b.eq(0)]
                    m.d.sync += [x.eq(0) for x in kk + oc + half]
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                last = (k == nb - 1) & (~pair | k_b)
                # a per-channel ADD: a row's first vector's reads once its parameters are in,
                # every later vector's P + 3 cycles after the one before (B's read right
                # after A's): its parameters, fetched once the vector before is taken, are
                # whole when its B word arrives
                go = ~is_chan | k_b | Mux(k == 0, chan_full, gap == spacing)
                with m.If(go & ~k_b):
                    m.d.sync += gap.eq(1)
                m.d.comb += [v_ren.eq(go), f_run.eq(is_ln | is_chan),
                             v_raddr.eq(Mux(wide_in, a_base + Cat(k_b, k),
                                            Mux(k_b, b_base, a_base) + k))]
                with m.If(go):
                    m.d.sync += k_b.eq(pair & ~k_b)
                    with m.If(~pair | k_b):
                        m.d.sync += k.eq(k + 1)
                    with m.If(last):
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += f_run.eq(is_ln | is_chan)
                idle = Cat(*(~unit.busy & ~unit.o_data.valid for unit in vus)).all()
                if V > 1:
                    idle = idle & ~Cat(*vx_en).any()
                with m.If(idle & ~vw_en):
                    with m.If(vr == R - V):
                        m.d.sync += [vr.eq(0), a_base.eq(a_base + sa), b_base.eq(b_base + sb),
                                     o_base.eq(o_base + so), t_left.eq(t_left - 1)]
                        with m.If(t_left == 0):
                            m.next = "DONE"
                        with m.Else():
                            m.next = "CMD"
                    with m.Else():
                        m.d.sync += vr.eq(vr + V)
                        m.next = "CMD"
            with m.State("DONE"):
                m.d.comb += self.gemm_done.eq(1)
                m.d.sync += vbusy.eq(0)
                m.next = "IDLE"
            tw_states()
        tw_datapath()

        # the tag chain: tv[d] is a read issued d cycles ago (tb: B's word)
        tv = [Signal(name=f"vop_tv{d}") for d in range(R + 2)]
        tb = [Signal(name=f"vop_tb{d}") for d in range(R + 2)]
        m.d.comb += [tv[0].eq(v_ren), tb[0].eq(k_b)]
        for d in range(1, R + 2):
            m.d.sync += [tv[d].eq(tv[d - 1]), tb[d].eq(tb[d - 1])]
        # per unit u: its tag and its word, row vr + u's, r + 2 cycles after the read
        def at_row(seq, u):
            return Array(seq[g * V + u] for g in range(G))[vg] if G > 1 else seq[u]
        # (the word is 0 while no VOP runs: the unit's inputs then stay still during GEMMs,
        # which event-driven simulators notice)
        # the valid positions: p = kk*32 + l < mask_n (mask_n 0: all)
        h16 = BANK // 2
        for u, unit in enumerate(vus):
            sfx = "" if V == 1 else str(u)
            here_v = Signal(name=f"vop_here_v{sfx}")
            here_b = Signal(name=f"vop_here_b{sfx}")
            word = Signal(BANK * 8, name=f"vop_word{sfx}")
            m.d.comb += [here_v.eq(at_row(tv[2:], u)), here_b.eq(at_row(tb[2:], u)),
                         word.eq(Mux(vbusy, at_row(act_q, u), 0))]
            with m.If(here_v & ~here_b):
                m.d.sync += a_hold[u].eq(word)
            a_word = Mux(binary, a_hold[u], word)
            # 16-bit LAYERNORM input: elements 0..15 in the first word, 16..31 in the second
            a16 = [(a_hold[u] if lane < h16 else word)[16 * (lane % h16):16 * (lane % h16) + 16]
                   for lane in range(BANK)]
            rem = Signal(signed(18), name=f"vop_rem{sfx}")
            m.d.comb += rem.eq(vop.mask_n - (kk[u] << 5))
            ia = unit.i_a.payload
            for lane in range(BANK):
                m.d.comb += [ia.data[lane].eq(Mux(wide_in, a16[lane].as_signed(),
                                                  a_word[8 * lane:8 * lane + 8].as_signed())),
                             ia.mask[lane].eq((vop.mask_n == 0) | (rem > lane)),
                             unit.i_b.payload[lane].eq(word[8 * lane:8 * lane + 8].as_signed())]
            fire = here_v & (here_b | ~pair) & ~is_tw
            m.d.comb += [unit.i_a.valid.eq(fire), unit.i_b.valid.eq(fire & binary)]
            with m.If(unit.i_a.valid & unit.i_a.ready):
                m.d.sync += kk[u].eq(kk[u] + 1)
        # LAYERNORM's (and a per-channel ADD's) parameters: P reads a vector through PAR's
        # port (the GEMM engine, idle during a VOP, drives it otherwise), the words shifted in
        # as they arrive two cycles later; the register is offered to the units once whole and
        # refilled once every one has taken it
        issue = (f_run & ~chan_full & (f_i != P) & ((f_i != 0) | (f_vec != nb)))
        with m.If(f_run):
            m.d.comb += [par_ram.r_addr.eq(f_addr), par_ram.r_en.eq(issue),
                         par_ram.r_oce.eq(1)]
        with m.If(issue):
            m.d.sync += [f_addr.eq(f_addr + 1), f_i.eq(f_i + 1)]
            with m.If(f_i == 0):
                m.d.sync += f_vec.eq(f_vec + 1)
        m.d.sync += [f_v[0].eq(issue), f_v[1].eq(f_v[0])]
        with m.If(f_v[1]):
            m.d.sync += [chan.eq(Cat(chan[C * 64:], par_ram.r_data) if P > 1
                                 else par_ram.r_data), f_got.eq(f_got + 1)]
            with m.If(f_got == P - 1):
                m.d.sync += chan_full.eq(1)
        takes = [unit.i_chan.valid & unit.i_chan.ready for unit in vus]
        if V == 1:
            m.d.comb += vu.i_chan.valid.eq(chan_full)
            all_taken = takes[0]
        else:
            taken = [Signal(name=f"vop_taken{u}") for u in range(V)]
            all_taken = Cat(*(t | tk for t, tk in zip(taken, takes))).all()
            for u, unit in enumerate(vus):
                m.d.comb += unit.i_chan.valid.eq(chan_full & ~taken[u])
                with m.If(all_taken):
                    m.d.sync += taken[u].eq(0)
                with m.Elif(takes[u]):
                    m.d.sync += taken[u].eq(1)
        with m.If(all_taken):
            m.d.sync += [chan_full.eq(0), f_i.eq(0), f_got.eq(0)]
        for unit in vus:
            ch = unit.i_chan.payload
            for lane in range(BANK):
                p = chan[64 * lane:64 * lane + 64]
                m.d.comb += [ch[lane].mult.eq(p[32:48].as_signed()),
                             ch[lane].bias.eq(Cat(p[0:32], p[56:64]).as_signed()),
                             ch[lane].shift.eq(Mux(p[48:54] > 47, 47, p[48:54]))]
        # results: registered writes into row vr + u's memory
        for u, unit in enumerate(vus):
            o = unit.o_data
            if V == 1:
                w_en, w_addr, w_data = vw_en, vw_addr, vw_data
            else:
                w_en, w_addr, w_data = vx_en[u], vx_addr[u], vx_data[u]
            m.d.comb += o.ready.eq(~wide | half[u])
            res8 = Cat(*(o.payload.data[lane][:8] for lane in range(BANK)))
            res16 = Cat(*(o.payload.data[lane][:16] for lane in range(BANK)))
            with m.If(o.valid):
                m.d.sync += [w_en.eq(1), w_addr.eq(o_base + oc[u]), oc[u].eq(oc[u] + 1),
                             w_data.eq(Mux(reduce, o.payload.data[0].as_unsigned(),
                                           Mux(wide, Mux(half[u], res16[BANK * 8:],
                                                         res16[:BANK * 8]), res8))),
                             half[u].eq(wide & ~half[u])]
                if V == 1:
                    m.d.sync += vw_row.eq(vr)
            with m.Else():
                m.d.sync += w_en.eq(0)
        if V > 1:
            m.d.comb += vw_en.eq(0)
        return m

    def _to_wgt(self, m, vop, vbusy, nb, sa, vr, act_q, v_raddr, v_ren, tw):
        """TO_WGT (``VopBody``; :func:`~..vector.vop.to_wgt_image` is the definition): the
        vector sequencer's states that copy the int8 matrix X (``T = m_tiles * R`` tokens of
        ``n`` bytes) from ACT into WGT as a dense weight image, written one word a cycle
        through WGT's write port (``tw``: enable, address, data, and the lock that holds a
        LOAD into WGT meanwhile). Returns ``(is_tw, states, datapath)``: the sequencer calls
        ``states()`` inside its FSM and ``datapath()`` after it (the default ``tw_en`` of 0 is
        set here, before both).

        ACT reads go through row 0's port (``v_raddr``, ``v_ren``); a read of row ``r`` has
        its word at ``act_q[r]`` ``r + 2`` cycles after its issue. The reads are issued row
        by row (all of row 0's first), so their words arrive in issue order, at least as far
        apart as the reads; an arrival-side copy of the issue counters says where each goes
        (``vr``, the row whose word is taken, is one of them).

        - ``wide`` (W = X^T, P V's V): per row ``r``, ACT word ``kw``, row tile ``i``: one
          read, token ``t = i R + r``; its word gives ``P = 32 / cols`` WGT words, channel
          tile ``j = kw P + q`` (``q < P``, those with ``j C < n``) at ``out_addr + j Tp + t``
          (``Tp``: T rounded up to 32). A read every ``P`` cycles; then the ``(0, e)`` words
          of the padding tokens ``T .. Tp - 1``.
        - else (W = X, Q K^T's K): per group of ``C`` tokens (channel tile ``j``) and ACT word
          ``kw``: ``C`` reads into a buffer, then its 32 WGT words (entry ``e``: byte ``e`` of
          each token's word) at consecutive addresses from ``out_addr + (j B + kw) 32``.
        """
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        P = BANK // C
        if BANK % C:
            raise ValueError(f"TO_WGT needs cols dividing {BANK}, not {C}")
        lg_r, lg_c, lg_p = R.bit_length() - 1, C.bit_length() - 1, P.bit_length() - 1
        tw_en, tw_addr, tw_data, tw_lock = tw
        is_tw = Signal()
        m.d.comb += [is_tw.eq(vop.op == VopOp.TO_WGT), tw_lock.eq(vbusy & is_tw)]
        t_all = Signal(22)              # T tokens
        tp = Signal(22)                 # T rounded up to 32
        nj = Signal(22)                 # channel tiles
        m1 = Signal(16)                 # m_tiles - 1
        # issue side
        ir, ikw, ii = Signal(range(max(2, R))), Signal(13), Signal(16)
        p_addr = Signal(16)             # the next read's ACT word
        p_kw = Signal(16)               # a_addr (+ i0 sa) + kw: this pass's first word
        gap = Signal(range(max(2, P)))
        # arrival side
        akw, ai = Signal(13), Signal(16)
        at = Signal(22)                 # the arriving token
        a_base = Signal(24)             # out_addr + kw P Tp
        a_rem = Signal(signed(18))      # n - 32 kw
        arrived = Signal()              # every read has arrived
        # emission (V): the latched word, shifted a channel tile at a time
        e_word = Signal(BANK * 8)
        e_left = Signal(range(P + 1))
        e_addr = Signal(24)
        e_rem = Signal(signed(18))
        e_t = Signal(5)
        # K: the group (channel tile j, ACT word kw) and its buffer
        gj = Signal(22)
        g_base = Signal(16)             # a_addr + i0 sa (i0: the group's first row tile)
        g_r0 = Signal(range(max(2, R)))
        k_n = Signal(range(C + 1))      # reads issued / arrived in the group
        k_got = Signal(range(C + 1))
        buf = [Signal(BANK * 8, name=f"tw_buf{c}") for c in range(C)]
        k_e = Signal(6)                 # entry written
        k_trem = Signal(signed(24))     # T - j C: the group's valid tokens
        k_frem = Signal(signed(18))     # n - 32 kw: the word's valid bytes
        w_addr = Signal(24)
        TR, TI = min(C, R), max(1, C // R)
        lg_ti = TI.bit_length() - 1

        def chan(val, ok, e):           # one channel of a WGT word: (value or 0, e)
            return Cat(Mux(ok, val, 0), e[:5], Const(0, 3))

        m.d.sync += tw_en.eq(0)
        k_ir = Signal(range(max(2, TR)))
        k_ii = Signal(range(max(2, TI)))
        tw_arr = Signal()

        def states():               # inside the sequencer's FSM
            with m.State("TW_SETUP"):
                t_new = (vop.m_tiles << lg_r)
                m.d.sync += [t_all.eq(t_new), tp.eq(((t_new + 31) >> 5) << 5),
                             nj.eq(Mux(vop.wide, (vop.n + C - 1) >> lg_c,
                                       (t_new + C - 1) >> lg_c)),
                             m1.eq(vop.m_tiles - 1),
                             ir.eq(0), ikw.eq(0), ii.eq(0), p_addr.eq(vop.a_addr),
                             p_kw.eq(vop.a_addr), gap.eq(0), vr.eq(0), akw.eq(0), ai.eq(0),
                             at.eq(0), a_base.eq(vop.out_addr), a_rem.eq(vop.n), arrived.eq(0),
                             e_left.eq(0), gj.eq(0), g_base.eq(vop.a_addr), g_r0.eq(0),
                             k_n.eq(0), k_got.eq(0), k_e.eq(0), k_trem.eq(t_new),
                             k_frem.eq(vop.n), w_addr.eq(vop.out_addr)]
                with m.If(vop.wide):
                    m.next = "TW_ISSUE"
                with m.Else():
                    m.next = "KX_READ"

            # -- W = X^T ----------------------------------------------------------------------
            with m.State("TW_ISSUE"):
                with m.If(gap == 0):
                    m.d.comb += [v_ren.eq(1), v_raddr.eq(p_addr)]
                    m.d.sync += gap.eq(P - 1)
                    with m.If(ii != m1):
                        m.d.sync += [ii.eq(ii + 1), p_addr.eq(p_addr + sa)]
                    with m.Elif(ikw != nb - 1):
                        m.d.sync += [ii.eq(0), ikw.eq(ikw + 1), p_addr.eq(p_kw + 1),
                                     p_kw.eq(p_kw + 1)]
                    with m.Elif(ir != R - 1):
                        m.d.sync += [ii.eq(0), ikw.eq(0), ir.eq(ir + 1), p_addr.eq(vop.a_addr),
                                     p_kw.eq(vop.a_addr)]
                    with m.Else():
                        m.next = "TW_DRAIN"
                with m.Else():
                    m.d.sync += gap.eq(gap - 1)
            with m.State("TW_DRAIN"):
                with m.If(arrived & (e_left == 0)):
                    m.d.sync += [at.eq(t_all), gj.eq(0), w_addr.eq(vop.out_addr + t_all)]
                    with m.If(t_all == tp):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "TW_PAD"
            with m.State("TW_PAD"):        # the padding tokens' (0, e) words, tile by tile
                m.d.sync += [tw_en.eq(1), tw_addr.eq(w_addr),
                             tw_data.eq(Cat(*(chan(Const(0, 8), 0, at) for c in range(C))))]
                with m.If(at != tp - 1):
                    m.d.sync += [at.eq(at + 1), w_addr.eq(w_addr + 1)]
                with m.Else():
                    m.d.sync += [at.eq(t_all), gj.eq(gj + 1), w_addr.eq(w_addr + 1 + t_all)]
                    with m.If(gj == nj - 1):
                        m.next = "DONE"

            # -- W = X ------------------------------------------------------------------------
            with m.State("KX_READ"):
                m.d.comb += [v_ren.eq(1), v_raddr.eq(p_addr)]
                m.d.sync += k_n.eq(k_n + 1)
                if TI > 1:
                    with m.If(k_ii != TI - 1):
                        m.d.sync += [k_ii.eq(k_ii + 1), p_addr.eq(p_addr + sa)]
                    with m.Else():
                        m.d.sync += [k_ii.eq(0), k_ir.eq(k_ir + 1), p_addr.eq(g_base + ikw)]
                else:
                    m.d.sync += k_ir.eq(k_ir + 1)
                with m.If(k_n == C - 1):
                    m.d.sync += [k_ii.eq(0), k_ir.eq(0)]
                    m.next = "KX_WAIT"
            with m.State("KX_WAIT"):
                with m.If(k_got == C):
                    m.d.sync += k_e.eq(0)
                    m.next = "KX_WRITE"
            with m.State("KX_WRITE"):
                m.d.sync += [tw_en.eq(1), tw_addr.eq(w_addr), w_addr.eq(w_addr + 1),
                             k_e.eq(k_e + 1),
                             tw_data.eq(Cat(*(chan(buf[c][:8], (k_trem > c) & (k_frem > k_e),
                                                   k_e) for c in range(C))))]
                m.d.sync += [b.eq(b >> 8) for b in buf]
                with m.If(k_e == BANK - 1):
                    # the next group: the next ACT word, or the next channel tile's tokens
                    m.d.sync += [k_n.eq(0), k_got.eq(0), k_frem.eq(k_frem - BANK), vr.eq(g_r0)]
                    with m.If(ikw != nb - 1):
                        m.d.sync += [ikw.eq(ikw + 1), p_addr.eq(g_base + ikw + 1)]
                        m.next = "KX_READ"
                    with m.Else():
                        m.d.sync += [ikw.eq(0), gj.eq(gj + 1), k_frem.eq(vop.n),
                                     k_trem.eq(k_trem - C)]
                        if C >= R:
                            nbase = g_base + (sa << lg_ti)
                            m.d.sync += [g_base.eq(nbase), p_addr.eq(nbase)]
                        else:
                            wrap = g_r0 == R - C
                            nbase = Mux(wrap, g_base + sa, g_base)
                            r0 = Mux(wrap, 0, g_r0 + C)
                            m.d.sync += [g_r0.eq(r0), vr.eq(r0), g_base.eq(nbase),
                                         p_addr.eq(nbase)]
                        with m.If(gj == nj - 1):
                            m.next = "DONE"
                        with m.Else():
                            m.next = "KX_READ"

        def datapath():             # after it
            # -- arrivals: a tag chain of (read issued, its row) ---------------------------------
            tv = [Signal(name=f"tw_tv{d}") for d in range(R + 2)]
            tr = [Signal(range(max(2, R)), name=f"tw_tr{d}") for d in range(R + 2)]
            row_now = Signal(range(max(2, R)))
            with m.If(vop.wide):
                m.d.comb += row_now.eq(ir)
            with m.Else():
                m.d.comb += row_now.eq(g_r0 + k_ir)
            m.d.comb += [tv[0].eq(v_ren & is_tw), tr[0].eq(row_now)]
            for d in range(1, R + 2):
                m.d.sync += [tv[d].eq(tv[d - 1]), tr[d].eq(tr[d - 1])]
            m.d.comb += tw_arr.eq(Cat(*(tv[d] & (tr[d] == d - 2) for d in range(2, R + 2))).any())
            word = Array(act_q)[vr]
            with m.If(vop.wide):
                # emission: P words from the latched one, a channel tile a cycle
                with m.If(e_left != 0):
                    m.d.sync += [tw_en.eq(e_rem > 0), tw_addr.eq(e_addr), e_addr.eq(e_addr + tp),
                                 e_rem.eq(e_rem - C), e_left.eq(e_left - 1),
                                 e_word.eq(e_word >> (8 * C)),
                                 tw_data.eq(Cat(*(chan(e_word[8 * c:8 * c + 8], e_rem > c, e_t)
                                                  for c in range(C))))]
                with m.If(tw_arr):
                    m.d.sync += [e_word.eq(word), e_left.eq(P), e_addr.eq(a_base + at),
                                 e_rem.eq(a_rem), e_t.eq(at[:5])]
                    with m.If(ai != m1):
                        m.d.sync += [ai.eq(ai + 1), at.eq(at + R)]
                    with m.Elif(akw != nb - 1):
                        m.d.sync += [ai.eq(0), akw.eq(akw + 1), at.eq(vr),
                                     a_base.eq(a_base + (tp << lg_p)), a_rem.eq(a_rem - BANK)]
                    with m.Elif(vr != R - 1):
                        m.d.sync += [ai.eq(0), akw.eq(0), vr.eq(vr + 1), at.eq(vr + 1),
                                     a_base.eq(vop.out_addr), a_rem.eq(vop.n)]
                    with m.Else():
                        m.d.sync += arrived.eq(1)
            with m.Else():
                with m.If(tw_arr):
                    m.d.sync += k_got.eq(k_got + 1)
                    if TI > 1:
                        slot = Signal(range(C))
                        k_ai = Signal(range(TI))
                        k_ar = Signal(range(max(2, TR)))
                        m.d.comb += slot.eq(Cat(k_ar, k_ai) if lg_r else k_ai)
                        m.d.sync += k_ai.eq(k_ai + 1)
                        with m.If(k_ai == TI - 1):
                            m.d.sync += [k_ar.eq(k_ar + 1), vr.eq(vr + 1)]
                        with m.If(k_got == C - 1):
                            m.d.sync += [k_ai.eq(0), k_ar.eq(0)]
                    else:
                        slot = vr - g_r0
                        m.d.sync += vr.eq(vr + 1)
                    for c in range(C):
                        with m.If(slot == c):
                            m.d.sync += buf[c].eq(word)
        return is_tw, states, datapath
