"""Static race check of a device program: scratchpad accesses that its tokens do not order.

The command processor runs LOADs, GEMMs and STOREs on three engines, each in program order and
one descriptor at a time, and orders the engines only through the dependency tokens and SYNC /
COMPLETE (docs/architecture.md). The functional model runs a program in program order, so a
program that forgets a token still gives the right result there and fails only on the RTL, and
only with some timings. This check finds such programs without any timing: it builds the
happens-before relation the hardware guarantees and reports every pair of scratchpad accesses
(same memory, an SPU in common, overlapping words, at least one a write) that it leaves
unordered.

Happens-before edges: each engine's descriptors in program order (one finishes before the next
starts); the ``k``-th signal of a token counter before the ``k``-th wait on it (a wait needs a
non-zero count, so ``k`` waits need ``k`` signals, given in the producer's program order):
``ld2ex`` (LOAD ``sig_next`` -> GEMM ``wait_prev``), ``ex2ld`` (GEMM ``sig_prev`` -> LOAD
``wait_next``), ``ex2st`` (GEMM ``sig_next`` -> STORE ``wait_prev``), ``st2ex`` (STORE
``sig_prev`` -> GEMM ``wait_next``); everything before a SYNC or COMPLETE before everything
after it. A VOP's accesses are its ACT operands and result, a LAYERNORM's or per-channel
ADD's PAR parameters and a TO_WGT's WGT words (``hw/vector/vop.py`` ``vop_spans``). A DECODE
is on the LOAD engine and writes its whole output span of ACT words (the
lane is not told apart: two DECODEs into different lanes of the same words count as a clash).
"""

from __future__ import annotations

from ..base.config import BANK
from ..hw.cmd.descriptors import DESC_BYTES, Opcode, Target, decode_descriptor, token_use

__all__ = ["races", "Access"]


class Access:
    """One descriptor's access to a scratchpad: ``mem`` (a :class:`Target` name or ``"OUT"``),
    words ``[lo, hi)``, SPU bit mask ``spus``, ``write``."""

    __slots__ = ("desc", "mem", "lo", "hi", "spus", "write")

    def __init__(self, desc, mem, lo, hi, spus, write):
        self.desc, self.mem, self.lo, self.hi, self.spus, self.write = (desc, mem, lo, hi,
                                                                         spus, write)

    def clashes(self, other) -> bool:
        return (self.mem == other.mem and bool(self.spus & other.spus)
                and self.lo < other.hi and other.lo < self.hi and (self.write or other.write))

    def __repr__(self):
        return (f"{'write' if self.write else 'read'} {self.mem}[{self.lo}:{self.hi}] "
                f"(descriptor {self.desc}, SPUs {self.spus:#x})")


def _reads_pad(g) -> bool:
    """Whether conv GEMM ``g`` reads its zero word: a tap outside its band of input rows
    (``hw/spu/spu.py`` ``conv_act_words``, with a word no address can be)."""
    from ..hw.spu.spu import conv_act_words
    words = conv_act_words(
        int(g.m_tiles), int(g.banks), act_addr=int(g.act_addr), ksize=int(g.ksize),
        stride2=int(g.stride2), pad=int(g.pad), top=int(g.top), cbanks=int(g.cbanks),
        row_pitch=int(g.row_pitch), in_h=int(g.in_h), out_w=int(g.out_w), pad_addr=-1)
    return bool((words < 0).any())


def _accesses(i, desc, rows, cols, spus):
    """The scratchpad words descriptor ``i`` reads and writes (word sizes of hw/spu/spu.py)."""
    from ..hw.spu.spu import int8_out_words

    mask = int(desc.header.spu_mask) & ((1 << spus) - 1) or (1 << spus) - 1
    op = int(desc.header.opcode)
    word = {"ACT": rows * BANK, "WGT": cols * 2, "PAR": cols * 8, "LUT": 256, "OUT": cols * 4}
    if op in (Opcode.LOAD.value, Opcode.STORE.value):
        d = desc.body.dma
        mem = Target(d.target).name if op == Opcode.LOAD.value else "OUT"
        lo = int(d.sram_addr)
        hi = lo - (-int(d.rows) * int(d.row_bytes) // word[mem])
        if op == Opcode.LOAD.value and mem == "WGT" and int(d.fmt) in (1, 2):
            # a packed weight stream: every whole word of it (hw/spu/wgt_unpack.py)
            from ..hw.spu.wgt_unpack import packed_word_bits
            wbits = packed_word_bits(int(d.fmt), cols)
            hi = lo + int(d.rows) * int(d.row_bytes) * 8 // wbits
        if op == Opcode.LOAD.value:
            return [Access(i, mem, lo, hi, mask, True)]
        return [Access(i, mem, lo, hi, mask & -mask, False)]   # a STORE reads the lowest SPU
    if op == Opcode.GEMM.value:
        g = desc.body.gemm
        mt, nt, nb = int(g.m_tiles), int(g.n_tiles), int(g.banks)
        nnz = BANK >> int(g.log2s)
        act, wgt, par, out0 = int(g.act_addr), int(g.wgt_addr), int(g.par_addr), int(g.out_addr)
        if g.out_act:       # int8 results into ACT: the span the checks bound (a superset)
            nbk = nt if g.pool else -(-nt * cols // BANK)   # (a pool: a word a channel bank)
            out_mem, out = "ACT", (mt - 1) * (int(g.out_stride) or nbk) + nbk
        else:
            out_mem, out = "OUT", int8_out_words(rows, cols, mt, nt) if g.mode else nt * mt * rows
        # the words read: a run of row tiles, or (conv) a band of input rows and, where a tap
        # falls outside the band, the zero word
        act_hi = act + (int(g.in_h) * int(g.row_pitch) if g.conv else mt * nb)
        acc = [Access(i, "ACT", act, act_hi, mask, False),
               Access(i, out_mem, out0, out0 + out, mask, True)]
        if not g.pool:      # (a max pooling reads no weights or parameters)
            acc += [Access(i, "WGT", wgt, wgt + nt * nb * nnz, mask, False),
                    Access(i, "PAR", par, par + nt, mask, False)]
        if g.conv and _reads_pad(g):
            acc.append(Access(i, "ACT", int(g.pad_addr), int(g.pad_addr) + 1, mask, False))
        if g.lut:
            acc.append(Access(i, "LUT", 0, 1, mask, False))
        return acc
    if op == Opcode.VOP.value:
        from ..hw.vector.vop import vop_fields, vop_spans
        f = vop_fields(desc.body.vop)
        spans = vop_spans(f["op"], f["n"], f["m_tiles"], cols=cols, rows=rows, **{k: f[k] for k in (
            "a_addr", "b_addr", "out_addr", "a_stride", "b_stride", "out_stride", "wide", "chan",
            "mult")})
        # ACT operands and result; a LAYERNORM's or per-channel ADD's parameters from PAR; a
        # TO_WGT's result in WGT
        mem = {"par": "PAR", "wgt": "WGT"}
        return [Access(i, mem.get(name, "ACT"), lo, hi, mask, name in ("out", "wgt"))
                for name, (lo, hi) in spans.items()]
    if op == Opcode.DECODE.value:      # the image into ACT (one row memory's bytes of them)
        d = desc.body.decode
        lo = int(d.act_addr)
        return [Access(i, "ACT", lo, lo + int(d.out_h) * int(d.out_w), mask, True)]
    return []


def races(descs, *, rows: int, cols: int, spus: int = 1) -> list[tuple[Access, Access]]:
    """Pairs of clashing scratchpad accesses of the program ``descs`` (32-byte descriptors in
    program order) that no chain of happens-before edges orders; empty for a race-free
    program. ``rows``, ``cols``, ``spus``: the device's tensor core and SPU count."""
    parsed = []
    for raw in descs:
        raw = bytes(raw)
        if len(raw) != DESC_BYTES:
            raise ValueError(f"a descriptor is {DESC_BYTES} bytes, not {len(raw)}")
        parsed.append(decode_descriptor(int.from_bytes(raw, "little")))
    before = [0] * len(parsed)         # bit j of before[i]: descriptor j happens before i
    last = {}                          # engine -> its latest descriptor
    signals = {}                       # counter -> the descriptors that signal it, in order
    waits = {}                         # counter -> waits on it so far
    barrier = None
    engine = {Opcode.LOAD.value: "ld", Opcode.GEMM.value: "ex", Opcode.VOP.value: "ex",
              Opcode.STORE.value: "st", Opcode.DECODE.value: "ld"}   # (DECODE: the LOAD engine)
    accesses = []
    for i, desc in enumerate(parsed):
        op = int(desc.header.opcode)
        preds = [] if barrier is None else [barrier]
        if op in (Opcode.SYNC.value, Opcode.COMPLETE.value):
            preds += last.values()
            last.clear()
            barrier = i
        elif op in engine:
            if engine[op] in last:
                preds.append(last[engine[op]])
            wait, sig = token_use(op, desc.header)
            for tok in wait:
                k = waits.get(tok, 0)
                waits[tok] = k + 1
                if k < len(signals.get(tok, ())):
                    preds.append(signals[tok][k])
            for tok in sig:
                signals.setdefault(tok, []).append(i)
            last[engine[op]] = i
            accesses += _accesses(i, desc, rows, cols, spus)
        for p in preds:
            before[i] |= before[p] | (1 << p)
    found = []
    for a_i, a in enumerate(accesses):
        for b in accesses[a_i + 1:]:
            if a.desc != b.desc and a.clashes(b) and not (before[b.desc] >> a.desc & 1):
                found.append((a, b))
    return found
