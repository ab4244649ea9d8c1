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
after it.
"""

from __future__ import annotations

from ..base.config import BANK
from ..hw.cmd.descriptors import DESC_BYTES, Opcode, Target

__all__ = ["races", "Access"]

_TOKENS = {  # opcode: (waits, signals) as (header flag, counter)
    Opcode.LOAD: ((("wait_next", "ex2ld"),), (("sig_next", "ld2ex"),)),
    Opcode.GEMM: ((("wait_prev", "ld2ex"), ("wait_next", "st2ex")),
                  (("sig_prev", "ex2ld"), ("sig_next", "ex2st"))),
    Opcode.STORE: ((("wait_prev", "ex2st"),), (("sig_prev", "st2ex"),)),
}


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


def _fields(raw: bytes):
    v = int.from_bytes(raw, "little")
    head = {"opcode": v & 0xF, "wait_prev": v >> 4 & 1, "wait_next": v >> 5 & 1,
            "sig_prev": v >> 6 & 1, "sig_next": v >> 7 & 1, "spu_mask": v >> 8 & 0xFFFF}
    body = v >> 32

    def take(widths):
        nonlocal body
        out = {}
        for name, w in widths:
            out[name] = body & ((1 << w) - 1)
            body >>= w
        return out

    if head["opcode"] in (Opcode.LOAD.value, Opcode.STORE.value):
        return head, take((("dram_addr", 32), ("stride", 32), ("row_bytes", 20), ("rows", 16),
                           ("target", 2), ("sram_addr", 16)))
    if head["opcode"] == Opcode.GEMM.value:
        return head, take((("act_addr", 16), ("wgt_addr", 16), ("par_addr", 16),
                           ("out_addr", 16), ("banks", 16), ("m_tiles", 16), ("n_tiles", 16),
                           ("log2s", 3), ("mode", 1), ("relu", 1), ("lut", 1)))
    return head, {}


def _accesses(i, head, body, rows, cols, spus):
    """The scratchpad words descriptor ``i`` reads and writes (word sizes of hw/spu/spu.py)."""
    from ..hw.spu.spu import int8_out_words

    mask = head["spu_mask"] & ((1 << spus) - 1) or (1 << spus) - 1
    op = head["opcode"]
    word = {"ACT": rows * BANK, "WGT": cols * 2, "PAR": cols * 8, "LUT": 256, "OUT": cols * 4}
    if op == Opcode.LOAD.value:
        mem = Target(body["target"]).name
        n = -(-body["rows"] * body["row_bytes"] // word[mem])
        return [Access(i, mem, body["sram_addr"], body["sram_addr"] + n, mask, True)]
    if op == Opcode.STORE.value:
        low = mask & -mask            # a STORE reads the lowest selected SPU
        n = -(-body["rows"] * body["row_bytes"] // word["OUT"])
        return [Access(i, "OUT", body["sram_addr"], body["sram_addr"] + n, low, False)]
    if op == Opcode.GEMM.value:
        mt, nt, nb = body["m_tiles"], body["n_tiles"], body["banks"]
        nnz = BANK >> body["log2s"]
        out = (int8_out_words(rows, cols, mt, nt) if body["mode"] else nt * mt * rows)
        acc = [Access(i, "ACT", body["act_addr"], body["act_addr"] + mt * nb, mask, False),
               Access(i, "WGT", body["wgt_addr"], body["wgt_addr"] + nt * nb * nnz, mask, False),
               Access(i, "PAR", body["par_addr"], body["par_addr"] + nt, mask, False),
               Access(i, "OUT", body["out_addr"], body["out_addr"] + out, mask, True)]
        if body["lut"]:
            acc.append(Access(i, "LUT", 0, 1, mask, False))
        return acc
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
        parsed.append(_fields(raw))
    n = len(parsed)
    before = [0] * n                   # bit j of before[i]: descriptor j happens before i
    last = {}                          # engine -> its latest descriptor
    signals = {t: [] for t in ("ld2ex", "ex2ld", "ex2st", "st2ex")}
    waits = {t: 0 for t in signals}
    barrier = None
    engine = {Opcode.LOAD.value: "ld", Opcode.GEMM.value: "ex", Opcode.STORE.value: "st"}
    accesses = []
    for i, (head, body) in enumerate(parsed):
        op = head["opcode"]
        preds = []
        if barrier is not None:
            preds.append(barrier)
        if op in (Opcode.SYNC.value, Opcode.COMPLETE.value):
            preds += list(last.values())
            last.clear()
            for p in preds:
                before[i] |= before[p] | (1 << p)
            barrier = i
            continue
        if op not in engine:
            continue
        if engine[op] in last:
            preds.append(last[engine[op]])
        for flag, tok in _TOKENS[Opcode(op)][0]:
            if head[flag]:
                k = waits[tok]
                waits[tok] += 1
                if k < len(signals[tok]):
                    preds.append(signals[tok][k])
        for p in preds:
            before[i] |= before[p] | (1 << p)
        for flag, tok in _TOKENS[Opcode(op)][1]:
            if head[flag]:
                signals[tok].append(i)
        last[engine[op]] = i
        accesses += _accesses(i, head, body, rows, cols, spus)
    found = []
    for a_i, a in enumerate(accesses):
        for b in accesses[a_i + 1:]:
            if a.desc != b.desc and a.clashes(b) and not (before[b.desc] >> a.desc & 1):
                found.append((a, b))
    return found
