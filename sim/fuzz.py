"""``s4 fuzz``: random co-simulation of the device against the functional model.

Random *programs* run on a backend (the RTL's fast design ``s4_sim``, or the functional model
alone) and, for the RTL, on the functional model (:class:`DeviceModel`) from identical DRAM
images and register settings; after each program the two are compared. The fault
specification (``docs/faults.md``) says what must agree and what is only checked as an
invariant (section 5).

A program is generated from ``(seed, index)`` alone (:func:`make_program`), so any program
of a run can be generated again. Before it runs, a *preamble* puts the device in a chosen
state while it is idle or halted: ``CTRL = 0``, the ring registers (sometimes a small ring, an
unaligned base, a base near 2^32, a tail the head never reaches), ``RING_TAIL`` and a soft
reset (which moves the head there and clears the token counters), the interrupt acknowledged,
windows (usually the standard ones, sometimes shrunk, moved, empty or outside DRAM),
``WATCHDOG`` (usually 0) and injected bus-error ranges. The program's descriptors are written
into the ring and handed over with one ``RING_TAIL`` write. Some programs are *register pokes*
instead: random writes to every register (undefined offsets included) while idle, then every
register is compared.

Descriptors are segments separated by barriers: valid layers (:func:`~s4accel.sw.program.
layer_program`, race-free through their tokens) emitted only while no token is outstanding,
and random or boundary descriptors (every opcode, zero / huge fields, unaligned addresses,
window edges, scratchpad bounds, random token bits), each followed by a SYNC, so no two
descriptors that could touch the same scratchpad or DRAM overlap on the RTL while the model
runs them in program order.

Invariants on every backend: no Python exception, no hang (a cycle bound on the RTL; on the
model a program that does not finish), no write outside an enabled write window (RTL: the
design's DRAM monitor and the DRAM image; model: DRAM outside the write windows against the
image before), and after each fault a known-good layer that is bit-exact against the golden
model. See :func:`fuzz_model` and :func:`fuzz_rtl`.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..base.config import BANK, L2_BASE, Config
from ..hw.cmd.descriptors import (DESC_BYTES, TOKENS, DmaBody, ErrorCode, GemmBody, Header,
                                  Opcode, Target, VopBody, VopOp, token_use, vop_in_words,
                                  vop_par_words, vop_words)
from ..hw.spu.spu import SpuGeometry, int8_out_words
from ..hw.vector.vop import to_wgt_words, vop_cycles
from ..sw import regs, scenarios
from ..sw.layout import packed_word_bits
from ..sw.driver import DRAM_BASE, DRAM_SIZE
from ..sw.program import Allocator, DeviceInfo, layer_program
from .model.device_model import ModelBackend

__all__ = ["make_program", "fuzz_model", "fuzz_rtl", "FuzzStats", "ARENA", "JSON_KEYS"]

# -- DRAM arena --------------------------------------------------------------------------------
# Every access a program may make that DRAM answers lies in the arena at the start of the
# simulated DRAM: the ring (never writable), the data region (random targets, layer images)
# and the follow-up region (the known-good layer, the scrub's zero row). Windows are placed
# inside the arena or outside DRAM altogether, so comparing the arena compares all of DRAM.
B = DRAM_BASE
RING_OFF, RING_BYTES = 0, 8 << 10
RING_SLOTS = 128
DATA_OFF, DATA_BYTES = 8 << 10, 40 << 10
FOLLOW_OFF, FOLLOW_BYTES = 48 << 10, 16 << 10
ARENA = 64 << 10
#: bytes after the arena the model's stray-write check also watches, filled with a pattern
#: (a stray write of zeros is seen too)
GUARD = 64 << 10
GUARD_FILL = bytes([0xA5, 0x5A, 0xC3, 0x3C]) * (GUARD // 4)

#: the keys of ``s4 fuzz --json`` (then ``config``, ``backend``, ``seconds``)
JSON_KEYS = ("descriptors", "programs", "faults_by_code", "hangs", "exceptions", "stray_writes",
             "mismatches", "bad_followups", "seed")

#: error codes of the fault specification, by value (8 and 9 are being added to the RTL)
CODE_NAMES = {e.value: e.name for e in ErrorCode}
CODE_NAMES.setdefault(8, "TOKEN")
CODE_NAMES.setdefault(9, "BAD_RING")
BUS_CODES = (ErrorCode.BUS_SLVERR.value, ErrorCode.BUS_DECERR.value)
WATCHDOG_CODE = ErrorCode.WATCHDOG.value


def _f(reg, name):
    return regs.REGISTERS[reg].field(name)


# -- descriptor encoding -----------------------------------------------------------------------
def _layout_fields(layout, base=0):
    from amaranth.lib import data
    return {name: (base + f.offset, (1 << f.width) - 1) for name, f in data.Layout.cast(layout)}


_HDR = _layout_fields(Header)
_BODY_AT = 32
_DMA = _layout_fields(DmaBody, _BODY_AT)
_GEMM = _layout_fields(GemmBody, _BODY_AT)
_VOP = _layout_fields(VopBody, _BODY_AT)


def encode(opcode, *, dma=None, gemm=None, vop=None, **header) -> bytes:
    """One descriptor from raw field values (any opcode 0..15, reserved fields included),
    without building Amaranth constants; values are masked to their field widths."""
    v = int(opcode.value if isinstance(opcode, Opcode) else opcode) & 15
    for fields, body in ((_HDR, header), (_DMA, dma), (_GEMM, gemm), (_VOP, vop)):
        for name, value in (body or {}).items():
            if name == "opcode":
                continue
            value = int(value.value if hasattr(value, "value") else value)
            off, mask = fields[name]
            v |= (value & mask) << off
    return v.to_bytes(DESC_BYTES, "little")


def _layer_encode(opcode, *, dma=None, gemm=None, **header):
    """The encoder :func:`layer_program` gets (same bytes as ``program.descriptor``)."""
    return encode(opcode, dma=dma, gemm=gemm, **header)


def decode(raw: bytes) -> dict:
    """The fields the fuzzer reasons about: opcode, flags, and the DMA / GEMM body."""
    v = int.from_bytes(raw, "little")
    out = {name: (v >> off) & mask for name, (off, mask) in _HDR.items()}
    out["dma"] = {name: (v >> off) & mask for name, (off, mask) in _DMA.items()}
    out["gemm"] = {name: (v >> off) & mask for name, (off, mask) in _GEMM.items()}
    out["vop"] = {name: (v >> off) & mask for name, (off, mask) in _VOP.items()}
    return out


def dma_extent(d) -> tuple[int, int]:
    """``[start, end)`` of a LOAD / STORE body's DRAM extent (end not wrapped)."""
    return d["dram_addr"], d["dram_addr"] + max(d["rows"] - 1, 0) * d["stride"] + d["row_bytes"]


# -- program generation ------------------------------------------------------------------------
@dataclass
class Program:
    """One generated program: the state the preamble sets, the descriptors and DRAM images."""
    index: int
    kind: str = "run"                  # "run" or "poke"
    ring_base: int = B + RING_OFF
    ring_size: int = RING_SLOTS
    head: int = 0
    tail: int | None = None            # None: the slot after the last descriptor
    windows: list = field(default_factory=list)   # 4 x (base, limit); WIN_CTRL value
    win_ctrl: int = 0
    watchdog: int = 0
    bus_errors: list = field(default_factory=list)   # (lo, hi, kind)
    descs: list = field(default_factory=list)
    images: list = field(default_factory=list)       # (addr, bytes)
    segments: list = field(default_factory=list)     # (first index, last index) of barriers
    pokes: list = field(default_factory=list)        # (offset, value) for "poke" programs
    sane: float = 0.5                  # share of random descriptors that pass every check
    soft_reset_first: bool = True      # preamble: soft reset before (or after) the IRQ ack
    layers: int = 0

    def slots(self):
        """Ring slot of each descriptor (the device's head advance rule)."""
        out, s = [], self.head
        for _ in self.descs:
            out.append(s)
            s = 0 if s + 1 >= self.ring_size else s + 1
        return out

    def slot_addrs(self):
        return [(self.ring_base + DESC_BYTES * s) & 0xFFFF_FFFF for s in self.slots()]

    def end_tail(self):
        if self.tail is not None:
            return self.tail
        s = self.head
        for _ in self.descs:
            s = 0 if s + 1 >= self.ring_size else s + 1
        return s

    def write_windows(self):
        """``[(base, limit)]`` of enabled windows with write permission."""
        en = _f("WIN_CTRL", "en").get(self.win_ctrl)
        wr = _f("WIN_CTRL", "wr").get(self.win_ctrl)
        return [self.windows[i] for i in range(4) if en >> i & wr >> i & 1]


def standard_windows(l2_kib=0):
    """Window 0: the arena, read only (the ring is never writable); window 1: the data and
    follow-up regions, read and write; window 2 (with an L2): the on-chip L2, read and
    write."""
    if l2_kib:
        wins = [(B, B + ARENA), (B + DATA_OFF, B + ARENA), (L2_BASE, L2_BASE + l2_kib * 1024),
                (0, 0)]
        return wins, _win_ctrl(en=0b0111, rd=0b0111, wr=0b0110)
    wins = [(B, B + ARENA), (B + DATA_OFF, B + ARENA), (0, 0), (0, 0)]
    return wins, _win_ctrl(en=0b0011, rd=0b0011, wr=0b0010)


def _win_ctrl(en, rd, wr):
    v = _f("WIN_CTRL", "en").put(0, en)
    v = _f("WIN_CTRL", "rd").put(v, rd)
    return _f("WIN_CTRL", "wr").put(v, wr)


class Generator:
    """Random programs for one configuration."""

    def __init__(self, config: Config):
        self.config = config
        self.geom = SpuGeometry.of(config)
        self.info = DeviceInfo.from_config(config)
        self.bb = config.dram_bus_bits // 8

    # -- building blocks ------------------------------------------------------------------
    def _addr(self, rng, prog, nbytes):
        """A DRAM address for a LOAD / STORE extent of about ``nbytes``: mostly aligned in the
        data region, else a boundary: window edges, unaligned, 0, near 2^32, the ring, past
        DRAM."""
        bb = self.bb
        l2 = self.config.l2_kib * 1024
        if l2 and rng.random() < 0.15:
            # the on-chip L2: inside (aligned), flush against its end, or just past it
            if rng.random() < 0.7:
                return L2_BASE + int(rng.integers(0, max(1, (l2 - nbytes) // bb + 1))) * bb
            return int(rng.choice([L2_BASE + l2 - nbytes, L2_BASE + l2 - nbytes + bb,
                                   L2_BASE + l2, L2_BASE - bb])) & 0xFFFF_FFFF
        r = rng.random()
        if r < 0.6:
            lo = B + DATA_OFF
            hi = max(lo + bb, B + DATA_OFF + DATA_BYTES - nbytes)
            return int(rng.integers(lo // bb, hi // bb)) * bb
        if r < 0.8:
            base, limit = prog.windows[int(rng.integers(0, 4))]
            return int(rng.choice([base, limit - nbytes, limit - nbytes + bb, base - bb,
                                   limit, limit - bb])) & 0xFFFF_FFFF
        if r < 0.88:
            return B + DATA_OFF + int(rng.integers(0, DATA_BYTES))       # unaligned, mostly
        return int(rng.choice([0, 0xFFFF_FFE0, 0xFFFF_FFFF - bb + 1, 1 << 31, B,
                               B + RING_OFF + 32 * int(rng.integers(0, RING_SLOTS)),
                               B + DRAM_SIZE - bb, B + DRAM_SIZE, B - bb,
                               int(rng.integers(0, 1 << 32))]))

    def _flags(self, rng, p=0.06):
        return {k: int(rng.random() < p) for k in ("wait_prev", "wait_next", "sig_prev",
                                                   "sig_next")}

    def _mask(self, rng):
        n = self.config.spus
        r = rng.random()
        if r < 0.8:
            return 0
        if r < 0.9:
            return int(rng.integers(1, 1 << n)) if n > 1 else 1
        if r < 0.95 and n < 16:
            return 1 << int(rng.integers(n, 16))          # only absent SPUs: BAD_FIELD
        return int(rng.integers(0, 1 << 16))

    def _small(self, rng, typical_hi, huge=0xFFFF):
        r = rng.random()
        if r < 0.85:
            return int(rng.integers(1, typical_hi + 1))
        if r < 0.93:
            return 0
        return int(rng.choice([huge, typical_hi + 1, 2 * typical_hi]))

    def random_dma(self, rng, prog, store):
        g, bb = self.geom, self.bb
        target = Target.ACT if store else Target(int(rng.integers(0, 4)))
        word = (g.out_bits if store else g.bits(target)) // 8
        depth = g.out_depth if store else g.depth(target)
        cap = word * depth
        r = rng.random()
        if r < 0.7:
            row_bytes = bb * int(rng.integers(1, 9))
        elif r < 0.8:
            row_bytes = int(rng.choice([0, bb - 1 if bb > 1 else 3, bb + 1, 3 * bb // 2 or 2]))
        elif r < 0.9:
            row_bytes = min(cap, (1 << 20) - 1) // bb * bb        # the whole scratchpad
        else:
            row_bytes = int(rng.choice([(1 << 20) - 1, (1 << 20) - bb, cap + bb, word]))
        rows = self._small(rng, 4)
        r = rng.random()
        if r < 0.75:
            stride = row_bytes
        elif r < 0.85:
            stride = bb * int(rng.integers(0, 64))
        else:
            stride = int(rng.choice([0, 1, bb + 1, 0xFFFF_FFFF, 1 << 31, row_bytes - bb]))
        stride &= 0xFFFF_FFFF
        # fmt: mostly RAW; packed formats mostly on WGT loads, now and then anywhere (BAD_FIELD)
        r = rng.random()
        if r < 0.75 or (r < 0.95 and (store or target != Target.WGT)):
            fmt = 0
        elif r < 0.95:
            fmt = int(rng.integers(1, 3))
        else:
            fmt = int(rng.integers(1, 4))
        r = rng.random()
        if r < 0.7:
            sram = int(rng.integers(0, depth))
        elif r < 0.8:
            sram = 0
        else:
            need = -(-max(rows, 1) * row_bytes // word)
            if fmt in (1, 2) and not store:     # a packed stream's whole words
                need = max(rows, 1) * row_bytes * 8 // packed_word_bits(fmt, self.config.cols)
            sram = int(rng.choice([depth, depth - 1, max(0, depth - need), depth - need + 1,
                                   0xFFFF])) & 0xFFFF
        extent = max(rows - 1, 0) * stride + row_bytes
        return {"dram_addr": self._addr(rng, prog, extent), "stride": stride,
                "row_bytes": row_bytes, "rows": rows, "target": target.value, "sram_addr": sram,
                "fmt": fmt}

    def sane_dma(self, rng, store, prog=None):
        """A LOAD / STORE body that passes every check under the standard windows."""
        g, bb = self.geom, self.bb
        target = Target.ACT if store else Target(int(rng.integers(0, 4)))
        word = (g.out_bits if store else g.bits(target)) // 8
        depth = g.out_depth if store else g.depth(target)
        row_bytes = bb * int(rng.integers(1, 5))
        rows = int(rng.integers(1, 4))
        stride = row_bytes * int(rng.integers(1, 3)) if rng.random() < 0.8 else 0
        need = -(-rows * row_bytes // word)
        fmt = 0
        if not store and target == Target.WGT and rng.random() < 0.5:
            fmt = int(rng.integers(1, 3))          # packed: its stream's whole words
            need = rows * row_bytes * 8 // packed_word_bits(fmt, self.config.cols)
        sram = int(rng.integers(0, max(1, depth - need + 1)))
        extent = (rows - 1) * stride + row_bytes
        lo = (B + DATA_OFF) // bb
        addr = int(rng.integers(lo, (B + DATA_OFF + DATA_BYTES - extent) // bb)) * bb
        l2 = self.config.l2_kib * 1024
        if l2 and extent <= l2 and rng.random() < 0.3:
            addr = L2_BASE + int(rng.integers(0, (l2 - extent) // bb + 1)) * bb
        r = rng.random()
        if r < 0.25 and prog is not None:
            # flush against the end of a window (one word past it now and then), or at its start
            base, limit = prog.windows[int(rng.integers(0, 2))]
            addr = int(rng.choice([limit - extent, limit - extent, limit - extent + bb,
                                   base, base - bb])) // bb * bb & 0xFFFF_FFFF
        return {"dram_addr": addr, "stride": stride, "row_bytes": row_bytes, "rows": rows,
                "target": target.value, "sram_addr": sram, "fmt": fmt}

    def sane_gemm(self, rng):
        g, cfg = self.geom, self.config
        log2s = int(rng.choice([s.bit_length() - 1 for s in cfg.sparsities]))
        nnz = BANK >> log2s
        nb, mt, nt = (int(rng.integers(1, 3)) for _ in range(3))
        mode = int(rng.random() < 0.5)
        if mode and rng.random() < 0.3:
            # int8 blocks across an activation bank (cols channels a tile, 32 a bank)
            nt = min(int(rng.integers(1, 2 * (BANK // cfg.cols) + 2)),
                     g.wgt_depth // (nb * nnz), g.par_depth)
            while int8_out_words(cfg.rows, cfg.cols, mt, nt) > g.out_depth:
                nt -= 1
        body = {"banks": nb, "m_tiles": mt, "n_tiles": nt, "log2s": log2s,
                "mode": mode, "relu": int(rng.random() < 0.5),
                "lut": int(rng.random() < 0.3),
                "act_addr": int(rng.integers(0, g.act_depth - mt * nb + 1)),
                "wgt_addr": int(rng.integers(0, g.wgt_depth - nt * nb * nnz + 1)),
                "par_addr": int(rng.integers(0, g.par_depth - nt + 1)),
                "out_addr": int(rng.integers(0, g.out_depth
                                             - self._out_words(mode, mt, nt) + 1))}
        if mode and rng.random() < 0.3:
            # int8 results into the activation scratchpad, beside the words the GEMM reads
            nbk = -(-nt * cfg.cols // BANK)
            stride = int(rng.choice([0, nbk, nbk + 1, nbk + 2])) if rng.random() < 0.5 else 0
            words = (mt - 1) * (stride or nbk) + nbk
            a0, a1 = body["act_addr"], body["act_addr"] + mt * nb
            room = [(0, a0 - words)] if a0 >= words else []
            if g.act_depth - a1 >= words:
                room.append((a1, g.act_depth - words))
            if room:
                lo, hi = room[int(rng.integers(0, len(room)))]
                body.update(out_act=1, out_stride=stride,
                            out_addr=int(rng.integers(lo, hi + 1)))
        if rng.random() < 0.25:
            self._conv_fields(rng, body, sane=True)
            if body.get("conv") and body.get("out_act") and rng.random() < 0.4:
                # max pooling over the same walk: one ACT word a channel bank (n_tiles) per
                # row tile, so the output span checked before (ceil(n_tiles * cols / 32)
                # banks) is redrawn inside the scratchpad, beside the band and zero word
                self._pool_fields(rng, body)
        return body

    def _pool_fields(self, rng, body):
        """Turn a sane conv GEMM with ``out_act`` into a max pooling (GemmBody.pool): no relu or
        LUT, an output span of ``n_tiles`` words a row tile placed beside what it reads."""
        g = self.geom
        nt, mt = int(rng.integers(1, body["cbanks"] + 1)), body["m_tiles"]
        body["n_tiles"] = nt
        stride = int(rng.choice([0, nt, nt + 1]))
        words = (mt - 1) * (stride or nt) + nt
        a0 = body["act_addr"]
        a1 = a0 + body["in_h"] * body["row_pitch"]
        taken = sorted([(a0, a1), (body["pad_addr"], body["pad_addr"] + 1)])
        free, at = [], 0
        for lo, hi in taken:
            if lo - at >= words:
                free.append((at, lo - words))
            at = max(at, hi)
        if g.act_depth - at >= words:
            free.append((at, g.act_depth - words))
        if not free:
            return
        lo, hi = free[int(rng.integers(0, len(free)))]
        body.update(pool=1, relu=0, lut=0, out_stride=stride,
                    out_addr=int(rng.integers(lo, hi + 1)))

    def _conv_fields(self, rng, body, *, sane):
        """Convolution addressing (GemmBody.conv) on a GEMM body: a random window walk over a
        band of ACT words; ``sane``: a band inside the scratchpad, beside any ``out_act``
        output (see the GemmBody docstring for the walk and its checks)."""
        g = self.geom
        k = int(rng.integers(1, 16))
        cb = int(rng.integers(1, 4))
        fields = {"conv": 1, "ksize": k, "stride2": int(rng.integers(0, 2)),
                  "pad": int(rng.integers(0, 8)), "top": int(rng.integers(0, 8)),
                  "cbanks": cb, "out_w": int(rng.integers(1, 6)),
                  "in_h": int(rng.integers(0, 6)),
                  "row_pitch": cb * int(rng.integers(0, 7)) + int(rng.random() < 0.2)}
        if sane:
            fields["in_h"] = min(fields["in_h"], g.act_depth // max(1, fields["row_pitch"]))
            span = fields["in_h"] * fields["row_pitch"]
            if body.get("out_act"):
                nbk = -(-body["n_tiles"] * self.config.cols // BANK)
                o0 = body["out_addr"]
                o1 = o0 + (body["m_tiles"] - 1) * (body.get("out_stride") or nbk) + nbk
                free = [(a, b) for a, b in ((0, o0), (o1, g.act_depth)) if b - a > span]
                if not free:
                    return
                lo, hi = free[int(rng.integers(0, len(free)))]
                fields["act_addr"] = int(rng.integers(lo, hi - span))
                fields["pad_addr"] = int(rng.integers(lo, hi))
                if fields["act_addr"] <= fields["pad_addr"] < fields["act_addr"] + span:
                    pass        # the zero word inside the band: allowed (a read)
            else:
                fields["act_addr"] = int(rng.integers(0, g.act_depth - span + 1))
                fields["pad_addr"] = int(rng.integers(0, g.act_depth))
        else:
            for name in ("ksize", "cbanks", "out_w"):
                if rng.random() < 0.05:
                    fields[name] = 0                        # BAD_FIELD
            r = rng.random()
            fields["pad_addr"] = int(rng.integers(0, g.act_depth) if r < 0.8 else
                                     rng.choice([g.act_depth - 1, g.act_depth,
                                                 int(rng.integers(0, 1 << 16))]))
            if rng.random() < 0.2:
                fields["in_h"] = int(rng.integers(0, 1 << 10))
                fields["row_pitch"] = int(rng.integers(0, 1 << 16))
        body.update(fields)

    def _out_words(self, mode, mt, nt):
        """Output words a GEMM block spans (raw: a word per row; int8: the activation layout
        of hw/spu/spu.py)."""
        R, C = self.config.rows, self.config.cols
        return int8_out_words(R, C, mt, nt) if mode else nt * mt * R

    def random_gemm(self, rng):
        g, cfg = self.geom, self.config
        r = rng.random()
        if r < 0.8:
            log2s = int(rng.choice([s.bit_length() - 1 for s in cfg.sparsities]))
        else:
            log2s = int(rng.integers(0, 8))
        nnz = BANK >> min(log2s, 5)
        nb, mt, nt = self._small(rng, 3), self._small(rng, 3), self._small(rng, 3)
        mode = int(rng.random() < 0.5)
        addrs = {"act_addr": (g.act_depth, max(mt, 1) * max(nb, 1)),
                 "wgt_addr": (g.wgt_depth, max(nt, 1) * max(nb, 1) * nnz),
                 "par_addr": (g.par_depth, max(nt, 1)),
                 "out_addr": (g.out_depth, self._out_words(mode, max(mt, 1), max(nt, 1)))}
        body = {"banks": nb, "m_tiles": mt, "n_tiles": nt, "log2s": log2s,
                "mode": mode, "relu": int(rng.random() < 0.5),
                "lut": int(rng.random() < 0.3)}
        if rng.random() < 0.25:
            # results into ACT (with raw mode: BAD_FIELD), bounded by the ACT depth, and
            # now and then overlapping the words read (BAD_FIELD)
            body["out_act"] = 1
            nbk = -(-max(nt, 1) * cfg.cols // BANK)
            stride = int(rng.choice([0, 0, nbk, nbk + 1, 1, int(rng.integers(0, 1 << 16))]))
            body["out_stride"] = stride
            words = (max(mt, 1) - 1) * (stride or nbk) + nbk
            addrs["out_addr"] = (g.act_depth, words)
            if rng.random() < 0.3:
                addrs.pop("out_addr")
                a = int(rng.integers(0, max(1, g.act_depth - max(mt, 1) * max(nb, 1) + 1)))
                body["act_addr"] = a
                addrs.pop("act_addr")
                body["out_addr"] = max(0, a + int(rng.integers(-words, max(mt, 1) * max(nb, 1)
                                                               + 1)))
        elif rng.random() < 0.05:
            body["out_stride"] = int(rng.integers(1, 1 << 16))     # without out_act: BAD_FIELD
        for name, (depth, used) in addrs.items():
            r = rng.random()
            if r < 0.8:
                body[name] = int(rng.integers(0, max(1, depth - used + 1)))
            else:      # exactly at the bound, one past it, or anywhere
                body[name] = int(rng.choice([depth - used, depth - used + 1, depth,
                                             int(rng.integers(0, 1 << 16))])) & 0xFFFF
        if rng.random() < 0.2:
            self._conv_fields(rng, body, sane=False)
            if rng.random() < 0.5:      # the band at the end of the scratchpad, or one past
                span = int(body["in_h"]) * int(body["row_pitch"])
                body["act_addr"] = max(0, g.act_depth - span + int(rng.integers(0, 2))) & 0xFFFF
        if rng.random() < 0.08:
            # max pooling: with or without conv / out_act (BAD_FIELD without), relu or lut
            # (BAD_FIELD), weight and parameter fields anywhere (not checked for a pool)
            body["pool"] = 1
            if rng.random() < 0.7:
                body["relu"] = body["lut"] = 0
            if rng.random() < 0.5:
                body["wgt_addr"] = int(rng.integers(0, 1 << 16))
                body["par_addr"] = int(rng.integers(0, 1 << 16))
        return body

    def _vop_params(self, rng, op):
        """Valid parameters of a VOP operation (shifts up to 47)."""
        p = {"mult": int(rng.integers(0, 1 << 16)), "shift": int(rng.integers(0, 48)),
             "relu": int(rng.integers(0, 2)), "wide": int(rng.integers(0, 2))}
        if op == VopOp.ADD.value:
            p["mult_b"] = int(rng.integers(0, 1 << 16))
            p["chan"] = int(rng.random() < 0.3)     # per channel, mult a PAR address
        elif op == VopOp.GELU.value:
            p.update(u_mult=int(rng.integers(0, 1 << 16)), u_shift=int(rng.integers(0, 48)))
        elif op in (VopOp.SOFTMAX.value, VopOp.ROW_MAX.value, VopOp.ROW_SUM.value):
            p["mask_n"] = int(rng.integers(0, 70)) if rng.random() < 0.5 else 0
            if op == VopOp.SOFTMAX.value and rng.random() < 0.7:
                p["shift"] = int(rng.integers(8, 30))    # probabilities that are not all 0
            if op == VopOp.SOFTMAX.value and p["relu"] and p["wide"]:   # 7 or 16 bits
                p[("relu", "wide")[int(rng.integers(0, 2))]] = 0
        elif op == VopOp.LAYERNORM.value:      # in_shift, and eps split over three fields
            p.update(shift=int(rng.integers(0, 32)), mult_b=int(rng.integers(0, 1 << 16)),
                     u_mult=int(rng.integers(0, 256)) if rng.random() < 0.3 else 0)
            if rng.random() < 0.5:
                p["mult"] = p["mult_b"] = 0
        return p

    def sane_vop(self, rng):
        """A VOP whose fields pass the checks (``VopBody``): small rows and row tiles, the
        operands and the result in separate runs of the ACT scratchpad, or in place."""
        depth, max_row = self.geom.act_depth, self.config.vec_max_row
        op = int(rng.choice([o.value for o in VopOp]))
        if op == VopOp.TO_WGT.value:
            return self._to_wgt(rng)
        ln = op == VopOp.LAYERNORM.value
        n = int(rng.integers(2 if ln else 1, min(max_row, 96) + 1))
        body = {"op": op, "n": n, **self._vop_params(rng, op)}
        nb, _, ow = vop_words(op, n, body["wide"])
        ni = vop_in_words(op, n, body["wide"])
        binary = op in (VopOp.ADD.value, VopOp.MUL.value)
        runs = (2 if binary else 1) * nb + ow + (ni - nb)
        mt = int(rng.integers(1, max(2, min(4, depth // max(1, runs)) + 1)))
        if mt * runs > depth:
            return {"op": op, "n": 1, "m_tiles": 1, "a_addr": 0, "out_addr": 1,
                    "b_addr": 2, "mult": 1}
        base = int(rng.integers(0, depth - mt * runs + 1))
        body.update(m_tiles=mt, a_addr=base, b_addr=base + mt * nb,
                    out_addr=base + (2 if binary else 1) * mt * ni)
        if ln:          # B's address is the parameters' PAR word
            body["b_addr"] = int(rng.integers(
                0, max(1, self.geom.par_depth - vop_par_words(op, n, self.config.cols) + 1)))
        if body.get("chan"):    # mult is the per-channel parameters' PAR word
            body["mult"] = int(rng.integers(
                0, max(1, self.geom.par_depth - vop_par_words(op, n, self.config.cols, 1)
                       + 1)))
        if rng.random() < 0.3 and not (op == VopOp.ADD.value and body["wide"]) \
                and ow <= nb and mt * nb <= depth:
            body["out_addr"] = body["a_addr"]          # in place
        return body

    def _to_wgt(self, rng, fit=True):
        """A TO_WGT (an ACT matrix into WGT as weights) of small rows and row tiles, its WGT
        span inside the scratchpad (``fit``) or ending at, just past or far past its end."""
        R, C, wd = self.config.rows, self.config.cols, self.geom.wgt_depth
        n = int(rng.integers(1, 97))
        wide = int(rng.integers(0, 2))
        nb = -(-n // BANK)
        mt = int(rng.integers(1, max(2, min(4, self.geom.act_depth // nb)) + 1))
        words = to_wgt_words(n, mt, R, C, wide)
        if words > wd:
            n, mt, words = 1, 1, to_wgt_words(1, 1, R, C, wide)
        out = (int(rng.integers(0, wd - words + 1)) if fit else
               int(rng.choice([wd - words, wd - words + 1, wd - 1, 0xFFFF])))
        return {"op": VopOp.TO_WGT.value, "n": n, "m_tiles": mt, "wide": wide,
                "a_addr": int(rng.integers(0, self.geom.act_depth - mt * nb + 1)),
                "out_addr": out, **({"relu": 1, "shift": 5} if rng.random() < 0.3 else {})}

    def random_vop(self, rng):
        """A VOP with fields anywhere, boundary values likely (``BAD_FIELD`` and
        ``SCRATCHPAD_OVERFLOW`` cases, and valid ones)."""
        depth = self.geom.act_depth
        body = self.sane_vop(rng)
        r = rng.random()
        if r < 0.15:
            if rng.random() < 0.4:      # a TO_WGT's WGT span at or past the end
                body = self._to_wgt(rng, fit=False)
            elif rng.random() < 0.2:    # a SOFTMAX of 7 and 16 bits at once (BAD_FIELD)
                body.update(op=VopOp.SOFTMAX.value, relu=1, wide=1)
            elif rng.random() < 0.3:    # chan: on another operation (BAD_FIELD), an ADD's
                body["chan"] = 1        # PAR span at or past the end
                if body["op"] == VopOp.ADD.value:
                    words = vop_par_words(VopOp.ADD, body["n"], self.config.cols, 1)
                    body["mult"] = int(rng.choice([self.geom.par_depth - words,
                                                   self.geom.par_depth - words + 1,
                                                   self.geom.par_depth, 0xFFFF])) & 0xFFFF
            else:       # a LAYERNORM with its own boundaries (n 1, in_shift, eps, PAR span)
                body.update(op=VopOp.LAYERNORM.value, wide=int(rng.integers(0, 2)))
                k = str(rng.choice(["n", "shift", "u_mult", "b_addr"]))
                body[k] = int({"n": rng.choice([1, 2]), "shift": rng.integers(30, 34),
                               "u_mult": rng.choice([255, 256, 0xFFFF]),
                               "b_addr": rng.choice([self.geom.par_depth - 1,
                                                     self.geom.par_depth, 0xFFFF])}[k])
        elif r < 0.25:
            body["n"] = int(rng.choice([0, self.config.vec_max_row + 1, 0xFFFF]))
        elif r < 0.32:
            body["m_tiles"] = int(rng.choice([0, depth, 0xFFFF]))
        elif r < 0.42:
            body[str(rng.choice(["shift", "u_shift"]))] = int(rng.integers(48, 64))
        elif r < 0.6:
            body[str(rng.choice(["a_addr", "b_addr", "out_addr"]))] = int(rng.choice(
                [0, 1, depth - 1, depth, 0xFFFF, int(rng.integers(0, depth))]))
        elif r < 0.75:
            body[str(rng.choice(["a_stride", "b_stride", "out_stride"]))] = int(rng.choice(
                [1, 2, depth, 0xFFFF, int(rng.integers(0, 8))]))
        elif r < 0.8:
            body["reserved"] = int(rng.integers(1, 1 << 14))
        return body

    def random_descriptor(self, rng, prog, tokens):
        """One random or boundary descriptor; ``tokens`` (ld2ex, ex2ld, ex2st, st2ex) is updated
        as the descriptor would if it succeeds (a failing one ends the program anyway)."""
        sane = rng.random() < prog.sane
        r = rng.random()
        if sane and r >= 0.89:
            r = rng.random() * 0.89         # a known opcode
        if r < 0.30:
            op = Opcode.LOAD.value
        elif r < 0.50:
            op = Opcode.STORE.value
        elif r < 0.75:
            op = Opcode.GEMM.value
            if self.config.vec_max_row and rng.random() < 0.25:
                op = Opcode.VOP.value
        elif r < 0.81:
            op = Opcode.NOP.value
        elif r < 0.86:
            op = Opcode.SYNC.value
        elif r < 0.89:
            op = Opcode.COMPLETE.value
        else:
            op = int(rng.integers(6, 16))
        flags = self._flags(rng)
        hdr = dict(flags, spu_mask=0 if sane else self._mask(rng))
        if rng.random() < 0.05:
            hdr["reserved"] = int(rng.integers(0, 256))
        dma = gemm = vop = None
        if op == Opcode.VOP.value and self.config.vec_max_row:
            vop = self.sane_vop(rng) if sane else self.random_vop(rng)
        elif sane and op in (Opcode.LOAD.value, Opcode.STORE.value):
            dma = self.sane_dma(rng, op == Opcode.STORE.value, prog)
        elif sane and op == Opcode.GEMM.value:
            gemm = self.sane_gemm(rng)
        elif op in (Opcode.LOAD.value, Opcode.STORE.value):
            dma = self.random_dma(rng, prog, op == Opcode.STORE.value)
            if rng.random() < 0.05:
                dma["reserved"] = int(rng.integers(0, 1 << 30))
        elif op == Opcode.GEMM.value:
            gemm = self.random_gemm(rng)
        elif rng.random() < 0.3:
            dma = {"dram_addr": int(rng.integers(0, 1 << 32)), "rows": int(rng.integers(0, 99))}
        # token bookkeeping (program order, as the precise rule has it)
        waits, sigs = token_use(op, SimpleNamespace(**flags))
        for name in waits:
            tokens[TOKENS.index(name)] -= 1
        for name in sigs:
            tokens[TOKENS.index(name)] += 1
        for ch in range(4):
            tokens[ch] = max(tokens[ch], 0)
        return encode(op, dma=dma, gemm=gemm, vop=vop, **hdr)

    def layer(self, rng, alloc):
        """A small valid layer (its descriptors and images), or None when it does not fit."""
        info, cfg = self.info, self.config
        s = int(rng.choice(cfg.sparsities))
        mode = "int8" if rng.random() < 0.5 else "raw"
        m = int(rng.integers(1, 2 * cfg.rows + 2))
        n = int(rng.integers(1, 2 * cfg.cols + 2))
        k = int(rng.integers(1, 70))
        x, packed, params = scenarios.random_layer(rng, info, s, mode, m=m, n=n, k=k)
        mark = alloc.top
        try:
            prog = layer_program(info, x, packed, params, alloc, encode=_layer_encode)
        except (MemoryError, ValueError):
            alloc.top = mark
            return None
        return prog, (x, packed, params)

    # -- programs -------------------------------------------------------------------------
    def make(self, seed: int, index: int) -> Program:
        rng = np.random.default_rng([seed, index])
        prog = Program(index)
        prog.windows, prog.win_ctrl = standard_windows(self.config.l2_kib)
        prog.soft_reset_first = bool(rng.random() < 0.5)
        prog.sane = float(rng.choice([0.5, 0.9, 0.97]))
        if rng.random() < 0.04:
            return self._poke_program(rng, prog)
        # ring
        r = rng.random()
        ring = "standard"
        if r < 0.05:
            ring = "small"
            prog.ring_size = int(rng.integers(1, 9))
            prog.ring_base = B + RING_OFF + 32 * int(rng.integers(0, RING_SLOTS - 8))
        elif r < 0.07:
            ring = "unaligned"
            prog.ring_size = 16
            prog.ring_base = B + RING_OFF + int(rng.integers(1, 32)) + 32 * 8
            if prog.ring_base % self.bb == 0:
                prog.ring_base += 1
        elif r < 0.09:
            ring = "bad"
            prog.ring_size = int(rng.choice([0, 4, 16]))
        elif r < 0.10:
            ring = "wrap"
            prog.ring_base = 0xFFFF_FFE0 - 32 * int(rng.integers(0, 3))
            prog.ring_size = 8
        prog.head = int(rng.integers(0, max(prog.ring_size, 1)))
        # windows
        if rng.random() < 0.2:
            self._random_windows(rng, prog)
        # watchdog
        r = rng.random()
        if r < 0.04:
            prog.watchdog = int(rng.integers(1, 3000))
        elif r < 0.06:
            prog.watchdog = int(rng.integers(1 << 16, 1 << 20))
        # bus errors (non-overlapping, at most the DRAM model's four)
        r = rng.random()
        if r < 0.15:
            lo = B + DATA_OFF + int(rng.integers(0, DATA_BYTES // 64)) * 64
            prog.bus_errors.append((lo, lo + 64 * int(rng.integers(1, 64)),
                                    str(rng.choice(["slverr", "decerr"]))))
        elif r < 0.17:      # on the ring: descriptor fetches fail
            lo = prog.ring_base + DESC_BYTES * int(rng.integers(0, 4))
            prog.bus_errors.append((lo, lo + DESC_BYTES, str(rng.choice(["slverr", "decerr"]))))
        # descriptors
        limit = max(prog.ring_size - 1, 0) if ring != "bad" else 6
        budget = min(int(rng.integers(2, 40)), limit)
        if ring == "bad":
            budget = max(budget, 1)
            big = prog.ring_size + int(rng.integers(0, 3))
            prog.tail = big if prog.ring_size or rng.random() < 0.5 else int(rng.integers(1, 8))
            prog.head = min(prog.head, max(prog.ring_size - 1, 0))
        alloc = Allocator(B + DATA_OFF + int(rng.integers(0, 64)) * 64,
                          DATA_BYTES - 64 * 64, align=64)
        tokens = [0, 0, 0, 0]
        while len(prog.descs) < budget:
            start = len(prog.descs)
            if not any(tokens) and rng.random() < 0.25 and budget - start >= 8:
                lay = self.layer(rng, alloc)
                if lay is not None and len(lay[0].descs) + 1 <= budget - start:
                    prog.descs += lay[0].descs          # ends with COMPLETE (a barrier)
                    prog.images += lay[0].images
                    prog.layers += 1
                    prog.segments.append((start, len(prog.descs) - 1))
                    continue
            prog.descs.append(self.random_descriptor(rng, prog, tokens))
            if len(prog.descs) < budget:
                prog.descs.append(encode(Opcode.SYNC))
            prog.segments.append((start, len(prog.descs) - 1))
        if prog.descs and len(prog.descs) < limit and rng.random() < 0.8:
            prog.descs.append(encode(Opcode.COMPLETE))
        # random bytes for LOADs to read (the data region, where no image is)
        if rng.random() < 0.5:
            a = B + DATA_OFF + int(rng.integers(0, DATA_BYTES - 4096))
            prog.images.insert(0, (a, rng.integers(0, 256, int(rng.integers(1, 4096)),
                                                   dtype=np.uint8).tobytes()))
        return prog

    def _random_windows(self, rng, prog):
        wins = []
        for _ in range(4):
            r = rng.random()
            a = B + int(rng.integers(0, ARENA // 16)) * 16
            b = B + int(rng.integers(0, ARENA // 16 + 1)) * 16
            if r < 0.6:
                wins.append((min(a, b), max(a, b)))
            elif r < 0.75:
                wins.append((max(a, b), min(a, b)))                    # base >= limit: empty
            elif r < 0.9:
                wins.append((0xFFFF_0000, 0xFFFF_FFFF))                # outside DRAM
            else:
                wins.append((B + DRAM_SIZE, B + DRAM_SIZE + 0x1000))    # just past DRAM
        en, rd, wr = (int(rng.integers(0, 16)) for _ in range(3))
        # a window that may write stays off the ring and inside the arena (or outside DRAM)
        for i, (lo, hi) in enumerate(wins):
            in_dram = lo < B + DRAM_SIZE and hi > B
            if in_dram and (lo < B + DATA_OFF or hi > B + ARENA):
                wr &= ~(1 << i)
        prog.windows = wins
        prog.win_ctrl = _win_ctrl(en, rd, wr)

    def _poke_program(self, rng, prog):
        prog.kind = "poke"
        names = ["WIN_CTRL", "WATCHDOG", "CTRL", "IRQ", "RING_BASE", "RING_SIZE", "RING_TAIL",
                 "ID", "STATUS", "ERR_ADDR", "PERF_DESC", "PERF_BUSY", "CAP_ARRAY"] + \
                [f"WIN{i}_{k}" for i in range(4) for k in ("BASE", "LIMIT")]
        for _ in range(int(rng.integers(1, 12))):
            r = rng.random()
            if r < 0.85:
                off = getattr(regs, str(rng.choice(names)))
            elif r < 0.95:
                off = int(rng.choice([0x018, 0x01C, 0x034, 0x050, 0x084, 0x0B0, 0x11C, 0xFFC]))
            else:
                off = int(rng.integers(0, 0x1000)) & ~3
            value = int(rng.integers(0, 1 << 32))
            if off == regs.CTRL:
                value &= ~_f("CTRL", "enable").mask     # no fetch from what the pokes leave
            if off == regs.RING_TAIL:
                continue                                 # would hand over stale slots
            prog.pokes.append((off, value))
        return prog


def make_program(config: Config, seed: int, index: int) -> Program:
    """Program ``index`` of the run with ``seed`` (the same on every call)."""
    return Generator(config).make(seed, index)


# -- running a program on a backend --------------------------------------------------------------
@dataclass
class Outcome:
    state: str                      # "done", "fault", "hang"
    regs: dict
    counters: dict
    arena: bytes = b""
    before: bytes = b""             # the arena as the program found it (model)
    cycles: int = 0


COUNTERS = ("PERF_BUSY", "PERF_MAC", "PERF_STALL_IN", "PERF_STALL_OUT", "PERF_DMA_RD_BYTES",
            "PERF_DMA_WR_BYTES", "PERF_DESC")
COMPARED_COUNTERS = ("PERF_DESC", "PERF_DMA_RD_BYTES", "PERF_DMA_WR_BYTES")
READ_BACK = ("STATUS", "IRQ", "ERR_ADDR", "RING_HEAD", "RING_TAIL", "RING_BASE", "RING_SIZE",
             "CTRL", "WATCHDOG", "WIN_CTRL") + tuple(f"WIN{i}_{k}" for i in range(4)
                                                      for k in ("BASE", "LIMIT"))


class Device:
    """A backend as the fuzzer drives it: ``sleep(cycles)`` waits on timed backends (None on
    the model, which finishes at the register write)."""

    def __init__(self, backend, config, sleep=None, bound=20_000):
        self.be = backend
        self.config = config
        self.sleep = sleep
        self.bound = bound
        model = getattr(backend, "model", None)
        #: the DRAM the program finds (after the preamble's host writes): the model's own, to
        #: check that it writes nothing outside the windows
        self.snapshot = (lambda: bytes(model.dram[:ARENA + GUARD])) if model else None

    async def rd(self, name):
        return await self.be.read32(getattr(regs, name))

    async def wr(self, name, value):
        await self.be.write32(getattr(regs, name), value & 0xFFFF_FFFF)

    async def quiet(self, bound=20_000):
        """Wait until STATUS.busy is 0 (a flush or the work in flight is over); False if it
        stays busy for ``bound`` cycles."""
        if self.sleep is None:
            return True
        t0 = await self.be.cycle()
        step = 8
        while _f("STATUS", "busy").get(await self.rd("STATUS")):
            if await self.be.cycle() - t0 > bound:
                return False
            await self.sleep(step)
            step = min(2 * step, 1024)
        return True

    def clear_bus_errors(self):
        be = self.be
        if hasattr(be, "clear_bus_errors"):
            be.clear_bus_errors()
        else:
            be.model.bus_faults.clear()

    async def preamble(self, prog: Program):
        await self.wr("CTRL", 0)
        await self.quiet()
        await self.wr("RING_BASE", prog.ring_base)
        await self.wr("RING_SIZE", prog.ring_size)
        await self.wr("RING_TAIL", prog.head)
        ack = _f("IRQ", "error").mask | _f("IRQ", "done").mask
        if not prog.soft_reset_first:
            await self.wr("IRQ", ack)
        await self.wr("CTRL", _f("CTRL", "soft_reset").mask)
        ok = await self.quiet()
        if prog.soft_reset_first:
            await self.wr("IRQ", ack)
        for i, (base, limit) in enumerate(prog.windows):
            await self.wr(f"WIN{i}_BASE", base)
            await self.wr(f"WIN{i}_LIMIT", limit)
        await self.wr("WIN_CTRL", prog.win_ctrl)
        await self.wr("WATCHDOG", prog.watchdog)
        self.clear_bus_errors()
        for lo, hi, kind in prog.bus_errors:
            self.be.inject_bus_error(lo, hi, kind)
        for addr, data in prog.images:
            await self.be.mem_write(addr, data)
        for addr, d in zip(prog.slot_addrs(), prog.descs, strict=True):
            if B <= addr and addr + DESC_BYTES <= B + ARENA:
                await self.be.mem_write(addr, d)
        return ok

    async def counters(self):
        return {name: await self.rd(name) for name in COUNTERS}

    async def read_back(self):
        return {name: await self.rd(name) for name in READ_BACK}

    async def wait_done(self, bound):
        """``"fault"`` (halted, flush over), ``"done"`` (the ring is empty and nothing is in
        flight) or ``"hang"`` (neither within ``bound`` cycles; on the model: at once)."""
        t0 = await self.be.cycle()
        step = 32
        while True:
            status = await self.rd("STATUS")
            busy = _f("STATUS", "busy").get(status)
            if not busy:
                if _f("STATUS", "error").get(status):
                    return "fault"
                if await self.rd("RING_HEAD") == await self.rd("RING_TAIL"):
                    # STATUS again: a fault found at fetch (BAD_RING) is pending, with busy 0,
                    # for a few cycles before its flush moves the head to the tail
                    again = await self.rd("STATUS")
                    if not _f("STATUS", "busy").get(again):
                        return "fault" if _f("STATUS", "error").get(again) else "done"
            if self.sleep is None or await self.be.cycle() - t0 > bound:
                return "hang"
            await self.sleep(step)
            step = min(2 * step, 2048)

    async def run(self, prog: Program, *, read_arena=True) -> Outcome:
        if prog.kind == "poke":
            return await self.poke(prog)
        await self.preamble(prog)
        snap = self.snapshot() if self.snapshot else b""
        before = await self.counters()
        t0 = await self.be.cycle()
        await self.wr("CTRL", _f("CTRL", "enable").mask | _f("CTRL", "irq_en").mask)
        await self.wr("RING_TAIL", prog.end_tail())
        state = await self.wait_done(self.bound + cycle_estimate(self.config, prog.descs))
        cycles = await self.be.cycle() - t0
        regs_ = await self.read_back()
        after = await self.counters()
        delta = {k: (after[k] - before[k]) & 0xFFFF_FFFF for k in COUNTERS}
        arena = await self.be.mem_read(B, ARENA) if read_arena else b""
        return Outcome(state, regs_, delta, arena, before=snap, cycles=cycles)

    async def poke(self, prog: Program) -> Outcome:
        await self.wr("CTRL", 0)
        await self.quiet()
        raised = []
        for off, value in prog.pokes:
            try:
                await self.be.write32(off, value)
            except Exception as e:   # an undefined offset may answer a bus error
                raised.append((off, type(e).__name__))
            await self.quiet()
        regs_ = await self.read_back()
        for off in sorted({off for off, _ in prog.pokes if regs.BY_OFFSET.get(off) is None}):
            try:
                regs_[f"@{off:#x}"] = await self.be.read32(off)
            except Exception as e:
                raised.append((off, type(e).__name__))
        regs_["raised"] = raised
        return Outcome("done", regs_, {})


async def _layer_check(dev: Device, config, rng, label="follow-up"):
    # LayerProgram.decode wants a synchronous reader: fetch the output regions first
    async def prefetch(lay):
        dev._last_read = {a: await dev.be.mem_read(a, n) for a, n, _, _ in lay.outputs}
    info = DeviceInfo.from_config(config)
    prog = Program(-1)
    prog.windows, prog.win_ctrl = standard_windows(config.l2_kib)
    prog.head = int(rng.integers(0, RING_SLOTS))
    s = int(rng.choice(config.sparsities))
    mode = "int8" if rng.random() < 0.5 else "raw"
    x, packed, params = scenarios.random_layer(rng, info, s, mode, m=config.rows + 1,
                                               n=config.cols + 1, k=int(rng.integers(1, 65)))
    alloc = Allocator(B + FOLLOW_OFF, FOLLOW_BYTES, align=64)
    lay = layer_program(info, x, packed, params, alloc, encode=_layer_encode)
    prog.descs, prog.images = lay.descs, lay.images
    out = await dev.run(prog, read_arena=False)
    if out.state != "done":
        return (f"{label}: the layer ended {out.state} (STATUS {out.regs['STATUS']:#x}, "
                f"ERR_ADDR {out.regs['ERR_ADDR']:#x})")
    await prefetch(lay)
    y = lay.decode(lambda a, n: dev._last_read[a][:n])
    exp = scenarios.expected(x, packed, params)
    bad = np.argwhere(y.astype(np.int64) != exp.astype(np.int64))
    if len(bad):
        return (f"{label}: {len(bad)} outputs differ from the golden model, first at "
                f"{tuple(bad[0])}")
    return None


def cycle_estimate(config: Config, descs) -> int:
    """A generous bound on the cycles ``descs`` take when nothing blocks: each DMA beat, MAC
    step and descriptor counted several times over (the hang bound is a base plus this)."""
    g = SpuGeometry.of(config)
    bb = config.dram_bus_bits // 8
    cap = max(g.bits(t) // 8 * g.depth(t) for t in (Target.ACT, Target.WGT, Target.PAR))
    cap = max(cap, g.out_bits // 8 * g.out_depth)
    total = 0
    for raw in descs:
        d = decode(raw)
        total += 300
        if d["opcode"] in (Opcode.LOAD.value, Opcode.STORE.value):
            total += 4 * min(d["dma"]["rows"] * d["dma"]["row_bytes"], cap) // bb
            total += 40 * min(d["dma"]["rows"], cap // bb)
        elif d["opcode"] == Opcode.GEMM.value:
            gm = d["gemm"]
            work = gm["m_tiles"] * gm["n_tiles"] * gm["banks"] * (BANK >> min(gm["log2s"], 5))
            total += 4 * min(work, g.out_depth // config.rows * g.wgt_depth)
            total += 100 * min(gm["m_tiles"] * gm["n_tiles"], g.out_depth)
        elif d["opcode"] == Opcode.VOP.value and config.vec_max_row:
            v = d["vop"]
            # (at most the ACT depth in row tiles)
            total += 4 * vop_cycles(config.rows, v["op"], min(v["n"], BANK * g.act_depth),
                                    min(v["m_tiles"], g.act_depth), v["wide"],
                                    cols=config.cols, chan=v.get("chan", 0),
                                    units=config.vec_units)
    return total


def scrub_program(config: Config) -> Program:
    """Make every scratchpad of every SPU hold known values (all zero): after a fault the
    RTL's scratchpads are undefined (docs/faults.md section 3) and the model's are not, so a
    later STORE or GEMM of stale data would differ for no fault of either."""
    g = SpuGeometry.of(config)
    bb = config.dram_bus_bits // 8
    prog = Program(-2)
    prog.windows, prog.win_ctrl = standard_windows(config.l2_kib)
    zero = B + FOLLOW_OFF + FOLLOW_BYTES - 4096
    prog.images = [(zero, bytes(4096))]
    for t in (Target.ACT, Target.WGT, Target.PAR, Target.LUT):
        total = g.bits(t) // 8 * g.depth(t)
        row = min(total, 4096) // bb * bb
        rows = total // row
        prog.descs.append(encode(Opcode.LOAD, dma={"dram_addr": zero, "stride": 0,
                                                   "row_bytes": row, "rows": rows,
                                                   "target": t.value, "sram_addr": 0}))
    prog.descs.append(encode(Opcode.SYNC))
    log2s = max(config.sparsities).bit_length() - 1
    tiles = g.out_depth // config.rows
    out = 0
    while tiles > 0:
        mt = min(tiles, g.act_depth, 0xFFFF)
        prog.descs.append(encode(Opcode.GEMM, gemm={
            "banks": 1, "m_tiles": mt, "n_tiles": 1, "log2s": log2s, "out_addr": out}))
        out += mt * config.rows
        tiles -= mt
    if config.l2_kib:
        # the L2 too (a STORE that faults may have written part of its rows there, the
        # model's never does): the zeroed output scratchpad stored over all of it
        prog.descs.append(encode(Opcode.SYNC))
        chunk = g.out_depth * g.out_bits // 8 // bb * bb
        for at in range(0, config.l2_kib * 1024, chunk):
            n = min(chunk, config.l2_kib * 1024 - at)
            prog.descs.append(encode(Opcode.STORE, dma={
                "dram_addr": L2_BASE + at, "stride": n, "row_bytes": n, "rows": 1,
                "target": 0, "sram_addr": 0}))
    prog.descs.append(encode(Opcode.COMPLETE))
    return prog


# -- comparison ----------------------------------------------------------------------------------
def _fields_of(status):
    return (_f("STATUS", "error").get(status), _f("STATUS", "err_code").get(status))


def _windows_union_mask(prog: Program, lo: int, n: int) -> np.ndarray:
    """Bytes ``[lo, lo + n)`` a write window of ``prog`` covers."""
    mask = np.zeros(n, bool)
    for base, limit in prog.write_windows():
        a, b = max(base, lo) - lo, min(limit, lo + n) - lo
        if a < b:
            mask[a:b] = True
    return mask


def stray_bytes(prog: Program, before: bytes, after: bytes, lo: int = B) -> list[int]:
    """Addresses (first few) that changed outside the program's write windows."""
    a = np.frombuffer(before, np.uint8)
    b = np.frombuffer(after, np.uint8)
    changed = (a != b) & ~_windows_union_mask(prog, lo, len(a))
    return [lo + int(i) for i in np.flatnonzero(changed)[:4]]


def _fault_hits(prog: Program, addr: int) -> bool:
    """Whether the descriptor at ring address ``addr`` of ``prog`` is a LOAD / STORE whose
    extent meets an injected range or leaves DRAM (it may report a bus error)."""
    for a, raw in zip(prog.slot_addrs(), prog.descs, strict=True):
        if a != addr:
            continue
        d = decode(raw)
        if d["opcode"] not in (Opcode.LOAD.value, Opcode.STORE.value):
            return False
        lo, hi = dma_extent(d["dma"])
        if lo < B or hi > B + DRAM_SIZE:
            return True
        return any(lo < fhi and flo < hi for flo, fhi, _ in prog.bus_errors)
    return False


def _segment_store_extents(prog: Program, addrs) -> list[tuple[int, int]]:
    """DRAM extents of the STOREs in the barrier segments holding the descriptors at ring
    addresses ``addrs`` (where an imprecise fault leaves old or new bytes)."""
    slot = prog.slot_addrs()
    idx = {i for i, a in enumerate(slot) if a in addrs}
    out = []
    for first, last in prog.segments:
        if any(first <= i <= last for i in idx):
            for raw in prog.descs[first:last + 1]:
                d = decode(raw)
                if d["opcode"] == Opcode.STORE.value:
                    out.append(dma_extent(d["dma"]))
    return out


def compare(prog: Program, dut: Outcome, ref: Outcome, spus: int = 1) -> list[str]:
    """Differences between the backend under test and the model after ``prog`` that the fault
    specification does not allow (docs/faults.md sections 2, 3 and 5)."""
    if prog.kind == "poke":
        diffs = []
        for k in dut.regs:
            if k in ("STATUS",):
                a, b = _fields_of(dut.regs[k]), _fields_of(ref.regs.get(k, 0))
            else:
                a, b = dut.regs[k], ref.regs.get(k)
            if a != b:
                diffs.append(f"{k}: {_show(a)} on the RTL, {_show(b)} on the model")
        return diffs
    diffs = []
    (err, code), (err_m, code_m) = _fields_of(dut.regs["STATUS"]), _fields_of(ref.regs["STATUS"])
    addr, addr_m = dut.regs["ERR_ADDR"], ref.regs["ERR_ADDR"]
    faulted, faulted_m = dut.state == "fault", ref.state == "fault"
    if faulted and code == WATCHDOG_CODE and prog.watchdog:
        # timed: the model cannot raise it (section 5); invariants only
        if addr not in prog.slot_addrs():
            diffs.append(f"WATCHDOG reported at {addr:#x}, not a descriptor of the program")
        return diffs
    imprecise = (faulted and faulted_m and code in BUS_CODES and code_m in BUS_CODES
                 and (_fault_hits(prog, addr) or _fault_hits(prog, addr_m)))
    if faulted != faulted_m:
        diffs.append(f"ended {dut.state} on the RTL, {ref.state} on the model")
    if (err, code) != (err_m, code_m) and not (imprecise and _fault_hits(prog, addr)):
        diffs.append(f"STATUS error/err_code {err}/{_code(code)} on the RTL, "
                     f"{err_m}/{_code(code_m)} on the model")
    if (faulted or faulted_m) and addr != addr_m and not (imprecise and _fault_hits(prog, addr)):
        diffs.append(f"ERR_ADDR {addr:#x} on the RTL ({_slot(prog, addr)}), {addr_m:#x} on the "
                     f"model ({_slot(prog, addr_m)})")
    irq, irq_m = dut.regs["IRQ"], ref.regs["IRQ"]
    mask = _f("IRQ", "error").mask | (0 if imprecise else _f("IRQ", "done").mask)
    if irq & mask != irq_m & mask:
        diffs.append(f"IRQ {irq:#x} on the RTL, {irq_m:#x} on the model")
    for k in ("RING_HEAD", "RING_TAIL"):
        if dut.regs[k] != ref.regs[k]:
            diffs.append(f"{k} {dut.regs[k]} on the RTL, {ref.regs[k]} on the model")
    precise = faulted and faulted_m and not imprecise and code != WATCHDOG_CODE
    if precise and dut.counters["PERF_DESC"] != ref.counters["PERF_DESC"]:
        diffs.append(f"PERF_DESC +{dut.counters['PERF_DESC']} on the RTL, "
                     f"+{ref.counters['PERF_DESC']} on the model (a precise fault)")
    if dut.counters["PERF_DESC"] > len(prog.descs):
        diffs.append(f"PERF_DESC +{dut.counters['PERF_DESC']} for {len(prog.descs)} descriptors")
    for k in ("PERF_BUSY", "PERF_STALL_IN", "PERF_STALL_OUT"):
        # cycle counters: not modelled; at most one count a cycle and SPU (plus the read-back)
        if dut.counters[k] > (dut.cycles + 2000) * (1 if k == "PERF_BUSY" else spus):
            diffs.append(f"{k} +{dut.counters[k]} in {dut.cycles} cycles")
    if not faulted and not faulted_m:
        for k in COMPARED_COUNTERS:
            if dut.counters[k] != ref.counters[k]:
                diffs.append(f"{k} +{dut.counters[k]} on the RTL, +{ref.counters[k]} on the "
                             "model")
    a = np.frombuffer(dut.arena, np.uint8)
    b = np.frombuffer(ref.arena, np.uint8)
    differ = a != b
    if imprecise:
        for lo, hi in _segment_store_extents(prog, {addr, addr_m}):
            differ[max(lo - B, 0):max(min(hi - B, ARENA), 0)] = False
    if differ.any():
        where = np.flatnonzero(differ)
        diffs.append(f"DRAM differs in {len(where)} bytes, first at {B + int(where[0]):#x} "
                     f"(RTL {a[where[0]]:#04x}, model {b[where[0]]:#04x})")
    return diffs


def _show(v):
    return f"{v:#x}" if isinstance(v, int) else repr(v)


def _code(c):
    return CODE_NAMES.get(c, str(c))


def _slot(prog, addr):
    s = prog.slot_addrs()
    if addr in s:
        i = s.index(addr)
        return f"descriptor {i}, opcode {decode(prog.descs[i])['opcode']}"
    return "not a slot of this program"


# -- the fuzz loop -------------------------------------------------------------------------------
@dataclass
class FuzzStats:
    seed: int
    config: str
    backend: str
    l2_kib: int = 0
    descriptors: int = 0
    programs: int = 0
    faults_by_code: dict = field(default_factory=dict)
    hangs: int = 0
    exceptions: int = 0
    stray_writes: int = 0
    mismatches: int = 0
    bad_followups: int = 0
    seconds: float = 0.0
    reports: list = field(default_factory=list)     # human-readable lines, first few kept

    def note(self, line):
        if len(self.reports) < 200:
            self.reports.append(line)

    def as_json(self):
        d = {k: getattr(self, k) for k in JSON_KEYS}
        d.update(config=self.config, backend=self.backend, seconds=round(self.seconds, 2))
        return d

    @property
    def failed(self):
        return bool(self.hangs or self.exceptions or self.stray_writes or self.mismatches
                    or self.bad_followups)


def replay_command(stats: FuzzStats, index: int, spus=None) -> str:
    extra = f" --spus {spus}" if spus else ""
    if stats.l2_kib:
        extra += f" --l2 {stats.l2_kib}"
    return (f"s4 fuzz --backend {stats.backend} --config {stats.config}{extra} "
            f"--seed {stats.seed} --program {index}")


async def fuzz(config: Config, seed: int, descriptors: int, *, dut_dev: Device | None,
               model_dev: Device, stats: FuzzStats, only=None, spus=None, monitor=None,
               log=None):
    """The loop behind :func:`fuzz_model` and :func:`fuzz_rtl`: programs until
    ``descriptors`` have been handed over (or only program ``only``). ``dut_dev`` None: the
    model is the backend under test (invariants only). ``monitor()``: the RTL design's stray
    burst report (a list; sticky)."""
    gen = Generator(config)
    t0 = time.monotonic()
    index = 0 if only is None else only
    tainted = only is not None and dut_dev is not None
    seen_monitor = False
    resync = False
    devs = [d for d in (dut_dev, model_dev) if d is not None]
    for d in devs:      # DRAM no window lets a program write holds a pattern, not zeros
        await d.be.mem_write(B + ARENA, GUARD_FILL)
    while (stats.descriptors < descriptors) if only is None else index == only:
        prog = gen.make(seed, index)
        stats.programs += 1
        stats.descriptors += len(prog.descs)
        where = f"program {index}"
        try:
            if tainted:
                for d in devs:
                    await d.run(scrub_program(config), read_arena=False)
                tainted = False
            if resync:
                # DRAM may legitimately differ (a hang, a timed or imprecise fault, a mismatch
                # already reported): the next program starts from the backend's DRAM
                await model_dev.be.mem_write(B, await dut_dev.be.mem_read(B, ARENA))
                resync = False
            outs = []
            for d in devs:
                out = await d.run(prog)
                if d is model_dev and prog.kind == "run":
                    bad = stray_bytes(prog, out.before, d.snapshot())
                    if bad:
                        stats.stray_writes += 1
                        stats.note(f"{where}: the model wrote outside the write windows at "
                                   f"{', '.join(hex(a) for a in bad)}; replay: "
                                   f"{replay_command(stats, index, spus)}")
                    out.before = out.before[:ARENA]
                outs.append(out)
            out = outs[0]
            if out.state == "hang":
                stats.hangs += 1
                stats.note(f"{where}: hang on the {stats.backend} (STATUS "
                           f"{out.regs['STATUS']:#x}, RING_HEAD {out.regs['RING_HEAD']}, "
                           f"RING_TAIL {out.regs['RING_TAIL']}); replay: "
                           f"{replay_command(stats, index, spus)}")
            if out.state == "fault":
                code = _f("STATUS", "err_code").get(out.regs["STATUS"])
                name = _code(code)
                stats.faults_by_code[name] = stats.faults_by_code.get(name, 0) + 1
            if dut_dev is not None and prog.kind == "run":
                # stray writes on the RTL: the design's monitor and the arena image
                before = outs[1].before
                bad = stray_bytes(prog, before, out.arena) if before else []
                v = monitor() if monitor else []
                bad = [hex(a) for a in bad]
                if v and not seen_monitor:
                    seen_monitor = True
                    bad = bad + v
                if bad:
                    stats.stray_writes += 1
                    stats.note(f"{where}: access outside the windows on the RTL: {bad}; "
                               f"replay: {replay_command(stats, index, spus)}")
                if out.state != "hang":
                    diffs = compare(prog, out, outs[1], config.spus)
                    if diffs:
                        stats.mismatches += 1
                        stats.note(f"{where}: " + "; ".join(diffs) + "; replay: "
                                   + replay_command(stats, index, spus))
            elif dut_dev is not None and prog.kind == "poke":
                diffs = compare(prog, out, outs[1], config.spus)
                if diffs:
                    stats.mismatches += 1
                    stats.note(f"{where} (register pokes): " + "; ".join(diffs) + "; replay: "
                               + replay_command(stats, index, spus))
            if dut_dev is not None and (prog.kind == "poke" or outs[0].arena != outs[1].arena):
                resync = True
            if any(o.state != "done" for o in outs):
                tainted = dut_dev is not None
                resync = dut_dev is not None
                for d in devs:
                    if not await d.quiet(0 if out.state == "hang" else 20_000):
                        await d.wr("CTRL", _f("CTRL", "soft_reset").mask)
                        await d.quiet()
                for d in devs:
                    msg = await _layer_check(d, config, np.random.default_rng([seed, index, 1]))
                    if msg:
                        stats.bad_followups += 1
                        stats.note(f"{where}: {msg} ({'model' if d is model_dev else 'RTL'}); "
                                   f"replay: {replay_command(stats, index, spus)}")
        except Exception:
            stats.exceptions += 1
            stats.note(f"{where}: exception: {traceback.format_exc(limit=6)}replay: "
                       f"{replay_command(stats, index, spus)}")
            tainted = resync = dut_dev is not None
        if log and stats.programs % 200 == 0:
            log(f"{stats.programs} programs, {stats.descriptors} descriptors, "
                f"{time.monotonic() - t0:.0f} s")
        index += 1
    # the model never writes DRAM beyond the arena (the generator keeps write windows in it)
    m = model_dev.be.model.dram
    tail = np.frombuffer(bytes(m[ARENA + GUARD:]), np.uint8)
    guard = bytes(m[ARENA:ARENA + GUARD])
    if tail.any() or guard != GUARD_FILL:
        stats.stray_writes += 1
        stats.note("the model's DRAM beyond the arena changed")
    stats.seconds += time.monotonic() - t0
    return stats


def fuzz_model(config: Config, seed: int, descriptors: int, *, only=None, spus=None, log=None,
               backend_factory=None, preset=None) -> FuzzStats:
    """``s4 fuzz --backend model``: the functional model alone, invariants only. ``preset``:
    the ``--config`` the replay commands name (default the configuration's name)."""
    import asyncio

    be = (backend_factory or ModelBackend)(config)
    stats = FuzzStats(seed=seed, config=preset or config.name, backend="model",
                      l2_kib=config.l2_kib)
    asyncio.run(fuzz(config, seed, descriptors, dut_dev=None, model_dev=Device(be, config),
                     stats=stats, only=only, spus=spus, log=log))
    return stats


async def fuzz_rtl(dut, config: Config, seed: int, descriptors: int, *, only=None, spus=None,
                   log=None, bound=20_000, preset=None) -> FuzzStats:
    """The cocotb side of ``s4 fuzz --backend rtl``: the fast design ``s4_sim`` against the
    functional model."""
    from cocotb.triggers import First, RisingEdge, Timer

    from .tb.base import CLOCK_NS
    from .tb.fast_backend import started

    be = await started(dut)

    async def sleep(cycles):
        if dut.irq.value != 1:
            await First(RisingEdge(dut.irq), Timer(cycles * CLOCK_NS, "ns"))
        else:
            await Timer(cycles * CLOCK_NS, "ns")

    stats = FuzzStats(seed=seed, config=preset or config.name, backend="rtl",
                      l2_kib=config.l2_kib)
    await fuzz(config, seed, descriptors, dut_dev=Device(be, config, sleep, bound),
               model_dev=Device(ModelBackend(config), config), stats=stats, only=only, spus=spus,
               monitor=lambda: be.violations, log=log)
    return stats


def run_rtl_fuzz(config: Config, seed: int, descriptors: int, *, sim="verilator", only=None,
                 spus=None, preset=None) -> tuple[dict, list[str]]:
    """``s4 fuzz --backend rtl``: build (or reuse) ``s4_sim`` for ``config`` and run
    :func:`fuzz_rtl` under cocotb; returns the JSON dict and the report lines."""
    import json
    import tempfile
    from pathlib import Path

    from .tb import runner

    spec = {"seed": seed, "descriptors": descriptors, "only": only, "spus": spus,
            "preset": preset}
    runner.build_shared("s4_sim", config, sim)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "fuzz.json"
        try:
            runner.run_tests("s4_sim", config, sim, "s4accel.sim.tb.jobs", testcase="fuzz",
                             tag=f"fuzz_{seed}",
                             env={"S4_JOB": json.dumps(spec), "S4_RESULT": result})
        except runner.SimulationFailed:
            if not result.exists():
                raise
        raw = json.loads(result.read_text())
    return raw["stats"], raw["reports"]
