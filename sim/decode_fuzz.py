"""Fuzzing DECODE (the codec wrapper) on the functional model: seeded mutations of JPEG files
Pillow encodes (:func:`~s4accel.sim.workloads.jpeg.mutate`), of the table block (byte flips)
and of the descriptor's fields (crop, size, lane, ACT address at and past their bounds), run
as DECODE descriptors through the device's registers and ring.

Invariants per case (:class:`DecodeFuzzFailure` names the case and its replay otherwise): the
device ends with COMPLETE or with one of the codes a DECODE may raise (``docs/faults.md``
section 7), within a time bound and with no Python exception; on success the output span
holds exactly the golden job's lanes (:func:`s4accel.base.codec.decode_job` of the bytes in
DRAM) and not one other ACT byte changed, of any SPU; on an error nothing in ACT changed; and
the device then decodes a known-good image correctly. Case ``i`` of seed ``s`` draws from
``np.random.default_rng([s, i])``, so one case replays on its own.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..base import codec
from ..base.config import BANK, load_config
from ..base.jpeg import JpegError
from ..hw.cmd.descriptors import DESC_BYTES, ErrorCode, Opcode, Target
from ..sw import regs
from ..sw.codec import decode_descriptor
from ..sw.driver import DRAM_BASE
from ..sw.program import descriptor
from .model.device_model import DeviceModel
from .workloads.jpeg import encode, mutate, scan_start, smooth_image

__all__ = ["DecodeFuzzFailure", "DecodeFuzzReport", "fuzz_decode", "ALLOWED"]

MODES = ("grey", "4:4:4", "4:2:2", "4:2:0")
#: codes a DECODE may end with on a device whose windows cover DRAM (no bus faults injected)
ALLOWED = {ErrorCode.BAD_FIELD, ErrorCode.SCRATCHPAD_OVERFLOW, ErrorCode.OUT_OF_WINDOW,
           ErrorCode.DECODE_ERROR}
_RING, _BLOCK, _BITS, _GOOD = 0x0, 0x1000, 0x2000, 0x8000    # offsets in DRAM
_DRAM = 64 << 10


class DecodeFuzzFailure(AssertionError):
    """An invariant broke (see the module docstring)."""


@dataclass
class DecodeFuzzReport:
    seed: int
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)   #: "ok" or an ErrorCode name -> count
    max_seconds: float = 0.0


class _Timeout(Exception):
    pass


def _device(config):
    cfg = load_config(config)
    if not cfg.jpeg_decoders:
        cfg = cfg.replace(jpeg_decoders=1)
    m = DeviceModel(cfg, DRAM_BASE, _DRAM)
    m.write32(regs.WIN0_BASE, DRAM_BASE)
    m.write32(regs.WIN0_LIMIT, DRAM_BASE + _DRAM)
    m.write32(regs.WIN_CTRL, 0x010101)
    m.write32(regs.RING_BASE, DRAM_BASE + _RING)
    m.write32(regs.RING_SIZE, 64)
    m.write32(regs.CTRL, 1)
    return m


def _run(m, descs):
    """Hand ``descs`` to the device; returns None (COMPLETE) or the ErrorCode raised."""
    head = m.read32(regs.RING_HEAD)
    for i, d in enumerate(descs):
        m.mem_write(DRAM_BASE + _RING + ((head + i) % 64) * DESC_BYTES, d)
    m.write32(regs.RING_TAIL, (head + len(descs)) % 64)
    irq = m.read32(regs.IRQ)
    m.write32(regs.IRQ, irq)                                   # acknowledge
    if irq & regs.IRQ_ERROR_MASK:
        return ErrorCode(regs.REGISTERS["STATUS"].field("err_code").get(m.read32(regs.STATUS)))
    if not irq & regs.IRQ_DONE_MASK:
        raise DecodeFuzzFailure("the device neither completed nor failed")
    return None


def _acts(m):
    return [np.frombuffer(mem[0][Target.ACT], np.int8).reshape(-1, m.config.rows, BANK).copy()
            for mem in m.spu_mem]


def _case(seed, case, info_rows, act_depth):
    rng = np.random.default_rng([seed, case])
    mode = MODES[case % len(MODES)]
    h, w = int(rng.integers(1, 33)), int(rng.integers(1, 41))
    kw = {"quality": int(rng.integers(5, 101))}
    if rng.random() < 0.3:
        kw["restart_marker_blocks"] = int(rng.integers(1, 4))
    good = encode(smooth_image(rng, h, w), mode, **kw)
    tables, bits = codec.split_scan(good)
    norms = [codec.Norm(int(rng.integers(-4096, 4096)), int(rng.integers(-64, 64)),
                        int(rng.integers(0, 12))) for _ in range(3)]
    block = codec.table_block(tables, norms)
    how = [f"{mode} {h}x{w} {kw}"]
    r = rng.random()
    if r < 0.6:                     # a mutated file: its own headers if they still parse
        bad, what = mutate(good, rng)
        how.append(what)
        try:
            t2, bits = codec.split_scan(bad)
            block = codec.table_block(t2, norms)
        except JpegError:
            bits = bad[scan_start(good):]
    if rng.random() < 0.2:          # flips in the table block
        blk = bytearray(block)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, len(blk)))
            blk[at] ^= 1 << int(rng.integers(8))
        block = bytes(blk)
        how.append("block flips")
    cw, ch = w, h
    crop = (0, 0, cw, ch)
    if rng.random() < 0.5:
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        crop = (x0, y0, int(rng.integers(1, w - x0 + 1)), int(rng.integers(1, h - y0 + 1)))
    out_w, out_h = int(rng.integers(1, crop[2] + 1)), int(rng.integers(1, crop[3] + 1))
    lane = int(rng.integers(0, info_rows))
    act_addr = int(rng.integers(0, max(1, act_depth - out_w * out_h + 1)))
    fields = dict(crop=crop, out_h=out_h, out_w=out_w, lane=lane, act_addr=act_addr,
                  bits_len=len(bits))
    if rng.random() < 0.25:         # a field at or past its bound
        k = str(rng.choice(["crop", "out", "lane", "act", "len"]))
        if k == "crop":
            fields["crop"] = (crop[0] + int(rng.integers(0, 3)), crop[1], crop[2] + 1, crop[3])
        elif k == "out":
            fields["out_w"] = crop[2] + int(rng.integers(0, 2))
        elif k == "lane":
            fields["lane"] = info_rows + int(rng.integers(0, 2))
        elif k == "act":
            fields["act_addr"] = act_depth - out_w * out_h + int(rng.integers(0, 2))
        else:
            fields["bits_len"] = int(rng.integers(0, len(bits) + 1))
        how.append(f"field {k}")
    return block, bits, fields, f"seed {seed} case {case}: " + ", ".join(how)


def fuzz_decode(cases: int, seed: int, *, config="tiny", time_limit: float = 5.0,
                progress=None) -> DecodeFuzzReport:
    """Run ``cases`` fuzzed DECODE jobs on the model of ``config`` (given one decoder and
    at least 64 KiB of ACT); raises :class:`DecodeFuzzFailure` on a broken invariant."""
    cfg = load_config(config)
    m = _device(cfg.replace(act_sram_kib=max(cfg.act_sram_kib, 64)))
    rows, depth = m.config.rows, m.geom.act_depth
    report = DecodeFuzzReport(seed=seed)
    # the known-good job run after each case
    good_rng = np.random.default_rng([seed, 1 << 30])
    good = encode(smooth_image(good_rng, 16, 24), "4:2:0", quality=75)
    g_tables, g_bits = codec.split_scan(good)
    g_block = codec.table_block(g_tables)
    m.mem_write(DRAM_BASE + _GOOD, g_block)
    m.mem_write(DRAM_BASE + _GOOD + 0x1000, g_bits)
    g_lanes = np.frombuffer(codec.act_lane_image(codec.decode_job(
        g_block, g_bits, crop=(0, 0, 24, 16), out_h=8, out_w=12)), np.int8).reshape(-1, BANK)
    g_desc = decode_descriptor(table_addr=DRAM_BASE + _GOOD, bits_addr=DRAM_BASE + _GOOD
                               + 0x1000, bits_len=len(g_bits), act_addr=0, lane=0,
                               crop=(0, 0, 24, 16), out_h=8, out_w=12)
    complete = descriptor(Opcode.COMPLETE)

    def expire(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, expire)
    try:
        for case in range(cases):
            block, bits, fields, what = _case(seed, case, rows, depth)
            bits = bits[:0x6000 - _BITS]
            fields["bits_len"] = min(fields["bits_len"], len(bits))
            m.mem_write(DRAM_BASE + _BLOCK, block)
            m.mem_write(DRAM_BASE + _BITS, bits + bytes(-len(bits) % 64))
            before = _acts(m)
            desc = decode_descriptor(table_addr=DRAM_BASE + _BLOCK,
                                     bits_addr=DRAM_BASE + _BITS, **fields)
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, time_limit)
            try:
                code = _run(m, [desc, complete])
            except _Timeout:
                raise DecodeFuzzFailure(f"{what}: no result within {time_limit} s") from None
            except DecodeFuzzFailure as e:
                raise DecodeFuzzFailure(f"{what}: {e}") from None
            except Exception as e:   # noqa: BLE001 - the finding: any Python exception
                raise DecodeFuzzFailure(f"{what}: {type(e).__name__}: {e}") from e
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            report.max_seconds = max(report.max_seconds, time.monotonic() - t0)
            after = _acts(m)
            if code is not None:
                if code not in ALLOWED:
                    raise DecodeFuzzFailure(f"{what}: error {code.name}, not a DECODE's")
                if any(not np.array_equal(a, b) for a, b in zip(after, before, strict=True)):
                    raise DecodeFuzzFailure(f"{what}: {code.name} but ACT changed")
                report.outcomes[code.name] += 1
                m.write32(regs.IRQ, regs.IRQ_ERROR_MASK)
            else:
                q = codec.decode_job(block, bits[:fields["bits_len"]],
                                     crop=fields["crop"], out_h=fields["out_h"],
                                     out_w=fields["out_w"])
                lanes = np.frombuffer(codec.act_lane_image(q), np.int8).reshape(-1, BANK)
                span = slice(fields["act_addr"], fields["act_addr"] + len(lanes))
                for a, b in zip(after, before, strict=True):
                    if not np.array_equal(a[span, fields["lane"]], lanes):
                        raise DecodeFuzzFailure(f"{what}: the output span differs from golden")
                    b[span, fields["lane"]] = lanes
                    if not np.array_equal(a, b):
                        raise DecodeFuzzFailure(f"{what}: a write outside the output span")
                report.outcomes["ok"] += 1
            if _run(m, [g_desc, complete]) is not None or not np.array_equal(
                    _acts(m)[0][:len(g_lanes), 0], g_lanes):
                raise DecodeFuzzFailure(f"{what}: the known-good job failed after it")
            report.cases += 1
            if progress and case % 100 == 99:
                progress(f"{case + 1} cases")
    finally:
        signal.signal(signal.SIGALRM, old)
    return report
