"""Functional model of the whole device: registers, descriptor ring, DMA checks, scratchpads.

It executes the same descriptor bytes as the RTL with the same checks and error codes, and the
same arithmetic (the golden model), instantly: the driver's ``model`` backend. It is not cycle
accurate; cycles come from the RTL or the performance model.
"""

from __future__ import annotations

import numpy as np

from ...base import codec, golden
from ...base.config import BANK, L2_BASE, Config, load_config
from ...base.regmap import load as load_regmap
from ...hw.cmd.descriptors import (DESC_BYTES, TOKENS, ErrorCode, LoadFormat, Opcode, Target,
                                   VopOp, decode_descriptor, token_use)
from ...hw.cmd.processor import TOKEN_LIMIT
from ...hw.spu.spu import SpuGeometry, conv_act_words, int8_out_words, out_slot, pool_act_words
from ...hw.vector.vop import vop_fields, vop_reference, vop_spans
from ...sw import layout, regs
from ...sw.driver import DRAM_BASE, DRAM_SIZE, Backend, CsrBusError

__all__ = ["DeviceModel"]


class _Fault(Exception):
    def __init__(self, code: ErrorCode, addr: int):
        super().__init__(code.name)
        self.code, self.addr = code, addr


class DeviceModel:
    """The device as the driver sees it: 32-bit registers and a DRAM region it may access.

    ``dram`` is a bytearray standing for DRAM from ``dram_base``; accesses outside it are bus
    errors (DECERR), as an unmapped address would be on a real interconnect.
    """

    def __init__(self, config: Config, dram_base: int, dram_size: int):
        self.config = config
        self.geom = SpuGeometry.of(config)
        self.dram_base = dram_base
        self.dram = bytearray(dram_size)
        # the on-chip L2 (Config.l2_kib at L2_BASE): reached by DMA transfers only
        self.l2 = bytearray(config.l2_kib * 1024)
        self.regmap = load_regmap()
        self.consts = {}
        self.regs = {}
        for reg in self.regmap.resolve_resets(config).registers:
            self.regs[reg.offset] = reg.reset
        # one set of scratchpads per SPU; self.sram / self.out / self.lut are the selected one's
        self.spu_mem = [({t: bytearray(self.geom.bits(t) // 8 * self.geom.depth(t))
                          for t in (Target.ACT, Target.WGT, Target.PAR)},
                         bytearray(self.geom.out_bits // 8 * self.geom.out_depth),
                         np.zeros(256, np.int8)) for _ in range(config.spus)]
        self._use_spu(0)
        self.halted = False
        self.cycles = 0
        self.bus_faults = []    # (lo, hi, ErrorCode) injected by tests
        # dependency tokens counted at dispatch, as the RTL's dispatch checks do
        self.tokens = dict.fromkeys(TOKENS, 0)
        # untimed: the device is idle whenever the host looks
        self._set("STATUS", "idle", 1)

    def clear_bus_errors(self):
        self.bus_faults.clear()

    def inject_bus_error(self, lo: int, hi: int, kind: str):
        codes = {"slverr": ErrorCode.BUS_SLVERR, "decerr": ErrorCode.BUS_DECERR}
        if kind not in codes:
            raise ValueError(f"bus error kind must be 'slverr' or 'decerr', not {kind!r}")
        self.bus_faults.append((lo, hi, codes[kind]))

    # -- registers -------------------------------------------------------------------------
    def _field(self, reg, name):
        return regs.REGISTERS[reg].field(name)

    def _get(self, reg, name):
        return self._field(reg, name).get(self.regs[getattr(regs, reg)])

    def _set(self, reg, name, value):
        off = getattr(regs, reg)
        self.regs[off] = self._field(reg, name).put(self.regs[off], value)

    def read32(self, offset: int) -> int:
        """The register at ``offset`` (bits 1:0 ignored, as the CSR block does); an offset with
        no register is a bus error (:class:`CsrBusError`), as the RTL answers DECERR."""
        offset &= ~3
        if offset not in regs.BY_OFFSET:
            raise CsrBusError(offset, write=False)
        return self.regs[offset]

    def write32(self, offset: int, value: int):
        offset &= ~3
        reg = regs.BY_OFFSET.get(offset)
        if reg is None:
            raise CsrBusError(offset, write=True)
        old = self.regs[offset]
        new = old
        for f in reg.fields:
            if f.access == "rw":
                new = f.put(new, f.get(value))
            elif f.access == "w1c":
                new = f.put(new, f.get(old) & ~f.get(value))
        self.regs[offset] = new
        if reg.name == "CTRL" and self._field("CTRL", "soft_reset").get(value):
            self._soft_reset()
        if reg.name == "IRQ" and self.halted and not self._get("IRQ", "error"):
            self.halted = False
            self._set("STATUS", "error", 0)
        self._run()

    @property
    def irq(self) -> bool:
        return bool(self._get("CTRL", "irq_en") and self.regs[regs.IRQ])

    def _soft_reset(self):
        self._set("RING_HEAD", "index", self._get("RING_TAIL", "index"))
        self.tokens = dict.fromkeys(TOKENS, 0)
        self.halted = False
        self._set("STATUS", "error", 0)
        self._set("STATUS", "err_code", 0)

    # -- memory ------------------------------------------------------------------------------
    def mem_write(self, addr: int, data: bytes):
        off = addr - self.dram_base
        if off < 0 or off + len(data) > len(self.dram):
            raise ValueError(f"host write [{addr:#x}, {addr + len(data):#x}) is outside the "
                             f"modelled DRAM")
        self.dram[off:off + len(data)] = data

    def mem_read(self, addr: int, n: int) -> bytes:
        off = addr - self.dram_base
        if off < 0 or off + n > len(self.dram):
            raise ValueError(f"host read [{addr:#x}, {addr + n:#x}) is outside the modelled DRAM")
        return bytes(self.dram[off:off + n])

    def _window_ok(self, start, end, write):
        en, rd, wr = (self._get("WIN_CTRL", f) for f in ("en", "rd", "wr"))
        for i in range(4):
            base = self._get(f"WIN{i}_BASE", "addr")
            limit = self._get(f"WIN{i}_LIMIT", "addr")
            perm = (wr if write else rd) >> i & 1
            if en >> i & 1 and perm and base <= start and end <= limit:
                return True
        return False

    def _dma_check(self, d, desc_addr, write):
        """The DMA's checks of a transfer (alignment, then the window), at dispatch."""
        bb = self.geom.bus_bits // 8
        if (d.dram_addr % bb or d.stride % bb or d.row_bytes % bb or d.rows == 0
                or d.row_bytes == 0):
            raise _Fault(ErrorCode.BAD_FIELD, desc_addr)
        end = d.dram_addr + (d.rows - 1) * d.stride + d.row_bytes
        if end > 1 << 32 or not self._window_ok(d.dram_addr, end, write):
            raise _Fault(ErrorCode.OUT_OF_WINDOW, desc_addr)

    def _place(self, a, n, desc_addr):
        """``(memory, offset)`` of ``n`` bytes at bus address ``a``: the L2 (``hw/bus/l2.py``,
        no bus errors there) or DRAM, with the injected bus faults; anything else answers
        DECERR (an L2 transfer running past the L2's end goes on to the DRAM port, where
        nothing is mapped)."""
        if self.l2 and L2_BASE <= a and a + n <= L2_BASE + len(self.l2):
            return self.l2, a - L2_BASE
        off = a - self.dram_base
        if off < 0 or off + n > len(self.dram):
            raise _Fault(ErrorCode.BUS_DECERR, desc_addr)
        for lo, hi, code in self.bus_faults:
            if a < hi and lo < a + n:
                raise _Fault(code, desc_addr)
        return self.dram, off

    def _dma_rows(self, d, desc_addr):
        """``(memory, offset)`` of a checked transfer's rows; bus faults as they are met."""
        for r in range(d.rows):
            yield self._place(d.dram_addr + r * d.stride, d.row_bytes, desc_addr)

    # -- execution ---------------------------------------------------------------------------
    def _run(self):
        """Run the ring from RING_HEAD up to RING_TAIL, as the command processor does.

        The ring follows the RTL (``hw/cmd/processor.py``): slot ``head`` is fetched from
        ``(RING_BASE + head * 32) mod 2**32``, then the head moves to ``head + 1``, or to 0 when
        that is ``>= RING_SIZE``. A fetch while ``RING_TAIL >= RING_SIZE`` or ``RING_HEAD >=
        RING_SIZE`` (a tail the head never meets, or a head outside the ring; ``RING_SIZE = 0``
        included) is ``BAD_RING``. Every fault is precise (docs/faults.md): everything before
        the failing descriptor has run, nothing after it.
        """
        bb = self.geom.bus_bits // 8
        while (self._get("CTRL", "enable") and not self.halted
               and self._get("RING_HEAD", "index") != self._get("RING_TAIL", "index")):
            head = self._get("RING_HEAD", "index")
            size = self._get("RING_SIZE", "slots")
            addr = (self._get("RING_BASE", "addr") + head * DESC_BYTES) & 0xFFFF_FFFF
            try:
                if self._get("RING_TAIL", "index") >= size or head >= size:
                    raise _Fault(ErrorCode.BAD_RING, addr)
                end = addr + DESC_BYTES
                if addr % bb:       # the fetch is a DMA job: aligned, then inside a window
                    raise _Fault(ErrorCode.BAD_FIELD, addr)
                if not self._window_ok(addr, end, False):
                    raise _Fault(ErrorCode.OUT_OF_WINDOW, addr)
                mem, off = self._place(addr, DESC_BYTES, addr)
                raw = int.from_bytes(mem[off:off + DESC_BYTES], "little")
                self._count("PERF_DMA_RD_BYTES", DESC_BYTES)   # the fetch is a DMA read too
                self._set("RING_HEAD", "index", 0 if head + 1 >= size else head + 1)
                self._execute(decode_descriptor(raw), addr)
            except _Fault as f:
                self._set("STATUS", "err_code", f.code.value)
                self._set("STATUS", "error", 1)
                self._set("ERR_ADDR", "addr", f.addr)
                self._set("IRQ", "error", 1)
                self._set("RING_HEAD", "index", self._get("RING_TAIL", "index"))
                self.tokens = dict.fromkeys(TOKENS, 0)     # the flush resets the counters
                self.halted = True

    def _count(self, name, amount=1):
        off = getattr(regs, name)
        self.regs[off] = (self.regs[off] + amount) & 0xFFFFFFFF

    def _tokens(self, op, header, addr):
        """The dispatch-time token check (``TOKEN``), after the descriptor's own checks."""
        waits, sigs = token_use(op, header)
        if (any(self.tokens[n] == 0 for n in waits)
                or any(self.tokens[n] >= TOKEN_LIMIT for n in sigs)):
            raise _Fault(ErrorCode.TOKEN, addr)
        for n in waits:
            self.tokens[n] -= 1
        for n in sigs:
            self.tokens[n] += 1

    def _execute(self, desc, addr):
        op = int(desc.header.opcode)
        g = self.geom
        if op == Opcode.VOP.value and not self.config.vec_max_row:
            raise _Fault(ErrorCode.UNKNOWN_OPCODE, addr)    # no vector unit
        if (op in (Opcode.LOAD.value, Opcode.STORE.value, Opcode.GEMM.value, Opcode.VOP.value)
                and not self._selected(desc.header)):
            raise _Fault(ErrorCode.BAD_FIELD, addr)
        if op == Opcode.NOP.value or op == Opcode.SYNC.value:
            pass
        elif op == Opcode.COMPLETE.value:
            self._set("IRQ", "done", 1)
        elif op == Opcode.LOAD.value:
            d = desc.body.dma
            target = Target(d.target)
            fmt = int(d.fmt)
            if (d.rows == 0 or d.row_bytes == 0 or d.row_bytes % (g.bus_bits // 8) or fmt == 3
                    or (fmt != LoadFormat.RAW.value and target != Target.WGT)):
                raise _Fault(ErrorCode.BAD_FIELD, addr)
            word = g.bits(target) // 8
            depth = g.depth(target)
            nbytes = d.rows * d.row_bytes
            if fmt == LoadFormat.RAW.value:
                words_over = nbytes > (depth - d.sram_addr) * word
            else:     # every whole word of the bit stream
                words_over = (nbytes * 8 // layout.packed_word_bits(fmt, self.config.cols)
                              > depth - d.sram_addr)
            if d.sram_addr >= depth or words_over:
                raise _Fault(ErrorCode.SCRATCHPAD_OVERFLOW, addr)
            self._dma_check(d, addr, write=False)
            self._tokens(op, desc.header, addr)
            data = b"".join(bytes(mem[o:o + d.row_bytes])
                            for mem, o in self._dma_rows(d, addr))
            self._count("PERF_DMA_RD_BYTES", len(data))
            for i in self._selected(desc.header):       # multicast: one read, every SPU
                self._use_spu(i)
                if target == Target.LUT:
                    self.lut[:min(256, len(data))] = np.frombuffer(data[:256], np.int8)
                elif fmt != LoadFormat.RAW.value:
                    words = layout.unpack_wgt_stream(data, self.config.cols, fmt)
                    start = d.sram_addr * word
                    self.sram[target][start:start + len(words)] = words
                else:
                    start = d.sram_addr * word
                    self.sram[target][start:start + len(data)] = data
        elif op == Opcode.STORE.value:
            d = desc.body.dma
            if (d.rows == 0 or d.row_bytes == 0 or d.row_bytes % (g.bus_bits // 8)
                    or int(d.fmt) != LoadFormat.RAW.value):
                raise _Fault(ErrorCode.BAD_FIELD, addr)
            word = g.out_bits // 8
            nbytes = d.rows * d.row_bytes
            if d.sram_addr >= g.out_depth or nbytes > (g.out_depth - d.sram_addr) * word:
                raise _Fault(ErrorCode.SCRATCHPAD_OVERFLOW, addr)
            self._dma_check(d, addr, write=True)
            self._tokens(op, desc.header, addr)
            start = d.sram_addr * word
            self._use_spu(self._selected(desc.header)[0])
            rows = list(self._dma_rows(d, addr))
            for r, (mem, off) in enumerate(rows):
                chunk = self.out[start + r * d.row_bytes:start + (r + 1) * d.row_bytes]
                mem[off:off + d.row_bytes] = chunk
            self._count("PERF_DMA_WR_BYTES", nbytes)
        elif op == Opcode.GEMM.value:
            self._gemm_check(desc.body.gemm, addr)
            self._tokens(op, desc.header, addr)
            for i in self._selected(desc.header):
                self._use_spu(i)
                self._gemm(desc.body.gemm)
        elif op == Opcode.VOP.value:
            fields = vop_fields(desc.body.vop)
            self._vop_check(fields, addr)
            self._tokens(op, desc.header, addr)
            for i in self._selected(desc.header):
                self._use_spu(i)
                act = np.frombuffer(self.sram[Target.ACT], np.int8).reshape(
                    g.act_depth, self.config.rows, BANK)
                par = np.frombuffer(self.sram[Target.PAR], np.uint8).reshape(
                    g.par_depth, self.config.cols, 8)
                wgt = np.frombuffer(self.sram[Target.WGT], np.uint8).reshape(
                    g.wgt_depth, self.config.cols, 2)
                vop_reference(act, par=par, wgt=wgt, **fields)
        elif op == Opcode.DECODE.value and self.config.jpeg_decoders:
            self._decode(desc, addr)
        else:
            raise _Fault(ErrorCode.UNKNOWN_OPCODE, addr)
        self._count("PERF_DESC")

    # -- DECODE (the codec wrapper) ------------------------------------------------------------
    def _decode(self, desc, addr):
        """A DECODE descriptor (``DecodeBody``; :mod:`s4accel.base.codec` the arithmetic):
        the dispatch checks in the documented order, then the table block and the bitstream
        through the DMA's read path, then the image into every selected SPU's ACT lane."""
        d, g, bb = desc.body.decode, self.geom, self.geom.bus_bits // 8
        if (not self._selected(desc.header) or d.bits_len == 0 or d.crop_w == 0
                or d.crop_h == 0 or d.out_w == 0 or d.out_h == 0 or d.out_w > d.crop_w
                or d.out_h > d.crop_h or d.out_w > codec.MAX_OUT_W
                or d.lane >= self.config.rows):
            raise _Fault(ErrorCode.BAD_FIELD, addr)
        if d.act_addr + d.out_h * d.out_w > g.act_depth:
            raise _Fault(ErrorCode.SCRATCHPAD_OVERFLOW, addr)
        if d.table_addr % bb or d.bits_addr % bb:
            raise _Fault(ErrorCode.BAD_FIELD, addr)
        bits_span = -(-int(d.bits_len) // bb) * bb        # the bus words the DMA reads
        for start, n in ((d.table_addr, codec.TABLE_BLOCK_BYTES), (d.bits_addr, bits_span)):
            if start + n > 1 << 32 or not self._window_ok(start, start + n, False):
                raise _Fault(ErrorCode.OUT_OF_WINDOW, addr)
        self._tokens(Opcode.DECODE.value, desc.header, addr)
        mem, off = self._place(d.table_addr, codec.TABLE_BLOCK_BYTES, addr)
        block = bytes(mem[off:off + codec.TABLE_BLOCK_BYTES])
        mem, off = self._place(d.bits_addr, bits_span, addr)
        bits = bytes(mem[off:off + int(d.bits_len)])
        self._count("PERF_DMA_RD_BYTES", codec.TABLE_BLOCK_BYTES + bits_span)
        try:
            q = codec.decode_job(block, bits, out_h=int(d.out_h), out_w=int(d.out_w),
                                 crop=(int(d.crop_x), int(d.crop_y), int(d.crop_w),
                                       int(d.crop_h)), max_width=self.config.jpeg_max_width)
        except ValueError as e:       # BlockError (an image wider than the decoder's
            # jpeg_max_width too), JpegError, a crop outside the frame
            raise _Fault(ErrorCode.DECODE_ERROR, addr) from e
        lanes = np.frombuffer(codec.act_lane_image(q), np.int8).reshape(-1, BANK)
        R = self.config.rows
        for i in self._selected(desc.header):
            self._use_spu(i)
            act = np.frombuffer(self.sram[Target.ACT], np.int8).reshape(g.act_depth, R, BANK)
            act[d.act_addr:d.act_addr + len(lanes), d.lane] = lanes

    def _use_spu(self, i):
        self.sram, self.out, self.lut = self.spu_mem[i]

    def _selected(self, header):
        """SPUs a descriptor selects (``spu_mask``; 0 means all; bits of absent SPUs are
        ignored, and a mask naming only absent SPUs selects none: :meth:`_execute` refuses
        that LOAD, STORE or GEMM with BAD_FIELD, as the RTL's dispatch checks do)."""
        mask = int(header.spu_mask) & ((1 << self.config.spus) - 1)
        if int(header.spu_mask) == 0:
            mask = (1 << self.config.spus) - 1
        return [i for i in range(self.config.spus) if mask >> i & 1]

    def _gemm_check(self, gb, addr):
        cfg, g = self.config, self.geom
        log2s = int(gb.log2s)
        if (log2s > 5 or (1 << log2s) not in cfg.sparsities or gb.banks == 0
                or gb.m_tiles == 0 or gb.n_tiles == 0 or (gb.out_act and not gb.mode)
                or (gb.out_stride and not gb.out_act)):
            raise _Fault(ErrorCode.BAD_FIELD, addr)
        if gb.conv and (gb.ksize == 0 or gb.cbanks == 0 or gb.out_w == 0):
            raise _Fault(ErrorCode.BAD_FIELD, addr)
        if gb.pool and not (gb.conv and gb.out_act and not gb.relu and not gb.lut
                            and gb.n_tiles <= gb.cbanks):
            raise _Fault(ErrorCode.BAD_FIELD, addr)
        nb, mt, nt = int(gb.banks), int(gb.m_tiles), int(gb.n_tiles)
        nnz = BANK >> log2s
        # the words the GEMM reads: a run of row tiles, or (conv) a band of input rows
        if gb.conv:
            act_end = gb.act_addr + int(gb.in_h) * int(gb.row_pitch)
        else:
            act_end = gb.act_addr + mt * nb
        if gb.out_act:      # ACT words written: one bank of a row tile each
            nbk = nt if gb.pool else -(-nt * cfg.cols // BANK)
            step = int(gb.out_stride) or nbk
            out_end, out_depth = gb.out_addr + (mt - 1) * step + nbk, g.act_depth
            if gb.out_addr < act_end and gb.act_addr < out_end:    # writes what it reads
                raise _Fault(ErrorCode.BAD_FIELD, addr)
            if gb.conv and gb.out_addr <= gb.pad_addr < out_end:     # ... or its zero word
                raise _Fault(ErrorCode.BAD_FIELD, addr)
        else:
            out_end, out_depth = gb.out_addr + self._out_words(gb), g.out_depth
        unused = bool(gb.pool)      # (a pool reads no weights or parameters)
        if (act_end > g.act_depth
                or (not unused and (gb.wgt_addr + nt * nb * nnz > g.wgt_depth
                                    or gb.par_addr + nt > g.par_depth))
                or out_end > out_depth
                or (gb.conv and gb.pad_addr >= g.act_depth)):
            raise _Fault(ErrorCode.SCRATCHPAD_OVERFLOW, addr)

    def _vop_check(self, f, addr):
        """A VOP's checks (``VopBody``'s docstring), in the RTL's order."""
        op = f["op"]
        ln = op == VopOp.LAYERNORM.value
        row_op = op in (VopOp.SOFTMAX.value, VopOp.ROW_MAX.value, VopOp.ROW_SUM.value,
                        VopOp.LAYERNORM.value)
        if (f["n"] == 0 or f["m_tiles"] == 0
                or (row_op and f["n"] > self.config.vec_max_row)
                or (ln and (f["n"] < 2 or f["shift"] > 31 or f["u_mult"] > 255))
                or (op == VopOp.SOFTMAX.value and f["relu"] and f["wide"])
                or (f["chan"] and op != VopOp.ADD.value)
                or f["shift"] > golden.SHIFT_MAX or f["u_shift"] > golden.SHIFT_MAX):
            raise _Fault(ErrorCode.BAD_FIELD, addr)
        spans = vop_spans(op, f["n"], f["m_tiles"], cols=self.config.cols, rows=self.config.rows,
                          **{k: f[k] for k in ("a_addr", "b_addr", "out_addr", "a_stride",
                                               "b_stride", "out_stride", "wide", "chan",
                                               "mult")})
        par = spans.pop("par", None)
        wgt = spans.pop("wgt", None)
        o_lo, o_hi = spans.get("out", (0, 0))      # (TO_WGT writes WGT, not ACT)
        wide_add = op == VopOp.ADD.value and f["wide"]
        for src in ("a", "b"):
            if src not in spans:
                continue
            lo, hi = spans[src]
            same = (f["out_addr"] == f[f"{src}_addr"]
                    and f["out_stride"] == f[f"{src}_stride"] and not wide_add)
            if o_lo < hi and lo < o_hi and not same:
                raise _Fault(ErrorCode.BAD_FIELD, addr)
        if (any(hi > self.geom.act_depth for _, hi in spans.values())
                or (par and par[1] > self.geom.par_depth)
                or (wgt and wgt[1] > self.geom.wgt_depth)):
            raise _Fault(ErrorCode.SCRATCHPAD_OVERFLOW, addr)

    def _out_words(self, gb):
        """Output words a GEMM block spans: a word per row (raw), or int8 bytes in the
        activation layout (``hw/spu/spu.py``, :func:`int8_out_words`)."""
        R, C = self.config.rows, self.config.cols
        mt, nt = int(gb.m_tiles), int(gb.n_tiles)
        return int8_out_words(R, C, mt, nt) if gb.mode else nt * mt * R

    def _pool(self, gb):
        """Max pooling (``GemmBody.pool``): every row's byte-wise maximum over each window's
        words (:func:`pool_act_words`) into ACT word ``out_addr + i * step + j``."""
        R = self.config.rows
        g = self.geom
        nb, mt, nt = int(gb.banks), int(gb.m_tiles), int(gb.n_tiles)
        act = np.frombuffer(self.sram[Target.ACT], np.int8).reshape(g.act_depth, R, BANK)
        words = pool_act_words(mt, nt, nb, act_addr=int(gb.act_addr), ksize=int(gb.ksize),
                               stride2=int(gb.stride2), pad=int(gb.pad), top=int(gb.top),
                               cbanks=int(gb.cbanks), row_pitch=int(gb.row_pitch),
                               in_h=int(gb.in_h), out_w=int(gb.out_w),
                               pad_addr=int(gb.pad_addr))
        y = act[words].max(axis=2)                                   # [nt, mt, R, 32]
        step = int(gb.out_stride) or nt
        dst = (int(gb.out_addr) + np.arange(mt)[None, :] * step
               + np.arange(nt)[:, None]) % (1 << 16)
        act[dst] = y

    def _gemm(self, gb):
        if gb.pool:
            return self._pool(gb)
        cfg, g = self.config, self.geom
        R, C = cfg.rows, cfg.cols
        log2s = int(gb.log2s)
        nb, mt, nt = int(gb.banks), int(gb.m_tiles), int(gb.n_tiles)
        nnz = BANK >> log2s
        act = np.frombuffer(self.sram[Target.ACT], np.int8).reshape(g.act_depth, R, BANK)
        wgt = np.frombuffer(self.sram[Target.WGT], np.uint8).reshape(g.wgt_depth, C, 2)
        par = np.frombuffer(self.sram[Target.PAR], np.uint8).reshape(g.par_depth, C, 8)
        out = np.frombuffer(self.out, np.int32).reshape(g.out_depth, C)
        if gb.out_act:      # int8 into ACT: slots of C bytes, R * 32 / C a word
            out8 = np.frombuffer(self.sram[Target.ACT], np.int8).reshape(-1, C)
            slot0 = int(gb.out_addr) * R * (BANK // C)
        else:               # int8 mode: slots of the output scratchpad, 4 a word
            out8 = np.frombuffer(self.out, np.int8).reshape(-1, C)
            slot0 = int(gb.out_addr) * 4
        row = int(gb.out_addr)
        words = None
        if gb.conv:         # convolution addressing: the im2col windows' words
            words = conv_act_words(mt, nb, act_addr=int(gb.act_addr), ksize=int(gb.ksize),
                                   stride2=int(gb.stride2), pad=int(gb.pad), top=int(gb.top),
                                   cbanks=int(gb.cbanks), row_pitch=int(gb.row_pitch),
                                   in_h=int(gb.in_h), out_w=int(gb.out_w),
                                   pad_addr=int(gb.pad_addr))
        if words is None:
            words = gb.act_addr + np.arange(mt)[:, None] * nb + np.arange(nb)[None, :]
        relu, lut = bool(gb.relu), (self.lut if gb.lut else None)
        stride = int(gb.out_stride) if gb.out_act else 0
        b_ix, c_ix = np.arange(nb)[:, None, None], np.arange(C)[None, None, :]
        for j in range(nt):
            # the tile's weights as a dense [nb * 32, C] matrix (the packed entries scattered to
            # their indices; padding entries are zeros); float64 products and sums of int8
            # values are exact integers (|sum| < 2**14 * K, far below 2**53)
            w = wgt[gb.wgt_addr + j * nb * nnz:][:nb * nnz].reshape(nb, nnz, C, 2)
            vals = w[..., 0].view(np.int8).astype(np.float64)              # [nb, nnz, C]
            if log2s == 0:
                dense = vals
            else:
                dense = np.zeros((nb, BANK, C))
                np.add.at(dense, (b_ix, (w[..., 1] & 31).astype(np.intp), c_ix), vals)
            dense = dense.reshape(nb * BANK, C)
            p = par[gb.par_addr + j]
            bias = p[:, 0:4].copy().view("<i4").reshape(C).astype(np.int64)
            mult = p[:, 4:6].copy().view("<u2").reshape(C).astype(np.int64)
            shift = np.minimum((p[:, 6] & 63).astype(np.int64), golden.SHIFT_MAX)
            for i0 in range(0, mt, 64):        # row tiles in chunks: bounded temporaries
                i1 = min(mt, i0 + 64)
                xa = act[words[i0:i1]]                                     # [m, nb, R, 32]
                x = xa.transpose(0, 2, 1, 3).reshape((i1 - i0) * R, nb * BANK)
                acc = (x.astype(np.float64) @ dense).astype(np.int64)      # [m * R, C]
                raw = golden.wrap32(acc + bias)
                if not gb.mode:
                    at = row + (j * mt + i0) * R
                    out[at:at + (i1 - i0) * R] = raw
                    continue
                y = golden.requantize(raw, mult, shift, relu=relu, lut=lut).astype(np.int32)
                y = y.reshape(i1 - i0, R, C)
                for i in range(i0, i1):
                    at = slot0 + out_slot(R, C, nt, j, i, 0, stride)
                    out8[at:at + R * (BANK // C):BANK // C] = y[i - i0]
        self._count("PERF_MAC", mt * nt * nb * nnz)

class ModelBackend(Backend):
    """The numpy functional model of the device (``s4accel.sim.model.device_model``)."""

    def __init__(self, config="fpga", dram_base=DRAM_BASE, dram_size=DRAM_SIZE):
        self.model = DeviceModel(load_config(config), dram_base, dram_size)
        self.dram_base, self.dram_size = dram_base, dram_size

    async def read32(self, offset):
        return self.model.read32(offset)

    async def write32(self, offset, value):
        self.model.write32(offset, value)

    async def mem_write(self, addr, data):
        self.model.mem_write(addr, data)

    async def mem_read(self, addr, n):
        return self.model.mem_read(addr, n)

    async def wait_irq(self, max_cycles):
        return self.model.irq

    async def cycle(self):
        return 0

    def inject_bus_error(self, lo, hi, kind):
        self.model.inject_bus_error(lo, hi, kind)

    def clear_bus_errors(self):
        self.model.clear_bus_errors()
