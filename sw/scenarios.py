"""Driver scenarios shared by the functional-model tests and the RTL testbench, so the same
program bytes run on both backends."""

from __future__ import annotations

import numpy as np

from ..base import golden
from ..base.sparse import pack, prune
from ..hw.cmd.descriptors import ErrorCode, Opcode, Target
from .driver import DeviceError, Driver
from .program import LayerParams, descriptor


def random_layer(rng, info, s, mode, *, m=None, n=None, k=None):
    m = m or int(rng.integers(1, 3 * info.rows + 2))
    n = n or int(rng.integers(1, 3 * info.cols + 2))
    k = k or int(rng.integers(1, 160))
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    packed = pack(prune(rng.integers(-128, 128, (n, k), dtype=np.int8), s), s)
    if mode == "raw":
        params = LayerParams("raw", bias=rng.integers(-(1 << 31), 1 << 31, n))
    else:
        params = int8_params(rng, x, packed)
    return x, packed, params


def int8_params(rng, x, packed, *, lut=True):
    """Random bias, per-channel multiplier and a shift that keeps each channel's largest
    output in int8 range, ReLU and (optionally) a random LUT."""
    n = packed.n
    bias = rng.integers(-(1 << 12), 1 << 12, n)
    peak = np.abs(golden.gemm_raw(x, packed, bias).astype(np.int64)).max(axis=0) + 1
    mult = rng.integers(1 << 14, 1 << 16, n)
    bits = [int(p * u).bit_length() for p, u in zip(peak, mult, strict=True)]
    shift = np.clip(np.array(bits) - 7, 0, 47)
    return LayerParams("int8", bias=bias, mult=mult, shift=shift, relu=True,
                       lut=rng.integers(-128, 128, 256, dtype=np.int8) if lut else None)


def expected(x, packed, params):
    if params.mode == "raw":
        return golden.gemm_raw(x, packed, params.bias)
    return golden.gemm_int8(x, packed, params.bias, params.mult, params.shift,
                            relu=params.relu, lut=params.lut)


async def check_layer(dev: Driver, x, packed, params, label, max_cycles=2_000_000):
    res = await dev.run_layer(x, packed, params, max_cycles=max_cycles)
    exp = expected(x, packed, params)
    bad = np.argwhere(res.y.astype(np.int64) != exp.astype(np.int64))
    assert not len(bad), (f"{label}: {len(bad)} outputs differ from the golden model, first at "
                          f"{tuple(bad[0])}: got {res.y[tuple(bad[0])]}, "
                          f"expected {exp[tuple(bad[0])]}")
    return res


async def check_layer_against_model(dev: Driver, model: Driver, x, packed, params, label,
                                    max_cycles=2_000_000):
    """Run one layer on ``dev`` and on the functional model ``model``: the program bytes
    (descriptors and DRAM images) must be identical and so must the results, bit for bit."""
    mark, mark_m = dev.alloc.top, model.alloc.top
    prog, prog_m = dev.program(x, packed, params), model.program(x, packed, params)
    dev.alloc.top, model.alloc.top = mark, mark_m
    assert [bytes(d) for d in prog.descs] == [bytes(d) for d in prog_m.descs], \
        f"{label}: the two backends were given different descriptors"
    assert prog.images == prog_m.images, f"{label}: the two backends got different DRAM images"
    res = await check_layer(dev, x, packed, params, label, max_cycles)
    res_m = await model.run_layer(x, packed, params)
    bad = np.argwhere(res.y != res_m.y)
    assert not len(bad), (f"{label}: {len(bad)} outputs differ from the functional model, first "
                          f"at {tuple(bad[0])}")
    for key in ("perf_dma_rd_bytes", "perf_dma_wr_bytes", "perf_desc"):
        assert res.counters[key] == res_m.counters[key], \
            f"{label}: {key} is {res.counters[key]} on the RTL, {res_m.counters[key]} on the model"
    return res


def _dma(addr, nbytes, target=Target.ACT, sram=0, rows=1, stride=None):
    return {"dram_addr": addr, "stride": nbytes if stride is None else stride,
            "row_bytes": nbytes, "rows": rows, "target": target, "sram_addr": sram}


def _long_gemm(info):
    """The dense GEMM with the most MAC cycles (about m * n * banks * 32) that fits the
    scratchpads: thousands of cycles on every configuration."""
    best = None
    for banks in (1, 2, 4, 8, 16):
        n = min(info.par_depth, info.wgt_depth // (banks * 32))
        m = min(info.act_depth // banks, info.out_depth // max(1, n * info.rows)) if n else 0
        if n and m and (best is None or m * n * banks > best[0]):
            best = (m * n * banks, {"banks": banks, "m_tiles": m, "n_tiles": n})
    return best[1]


def error_programs(dev: Driver, *, bus_errors=True):
    """(name, expected ErrorCode, descriptors, index of the faulting descriptor) for every
    error the device reports; each program is one bad descriptor after a good NOP.
    ``bus_errors=False`` leaves out the bus-error cases (for backends that cannot inject them)
    and their DRAM."""
    info = dev.info
    bb = info.bus_bytes
    buf = dev.alloc.alloc(4096)
    outside = dev.backend.dram_base + dev.backend.dram_size + 0x1000
    big = info.act_depth * info.rows * 32 + bb
    max_log2s = max(info.sparsities).bit_length() - 1
    nop = descriptor(Opcode.NOP)
    cases = [
        ("unknown opcode", ErrorCode.UNKNOWN_OPCODE, [nop, descriptor(13)], 1),
        ("bad field", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.LOAD, dma=_dma(buf, bb + 1))], 1),
        ("bad gemm field", ErrorCode.BAD_FIELD,
         [nop, descriptor(Opcode.GEMM, gemm={"banks": 0, "m_tiles": 1, "n_tiles": 1})], 1),
        ("out of window", ErrorCode.OUT_OF_WINDOW,
         [nop, descriptor(Opcode.LOAD, dma=_dma(outside, bb))], 1),
        ("store out of window", ErrorCode.OUT_OF_WINDOW,
         [nop, descriptor(Opcode.STORE, dma=_dma(outside, bb))], 1),
        ("scratchpad overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.LOAD, dma=_dma(buf, big))], 1),
        ("gemm overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.GEMM, gemm={"banks": info.act_depth + 1, "m_tiles": 1,
                                             "n_tiles": 1})], 1),
        # weight words one past the end at the highest sparsity (one word per bank and tile)
        ("gemm weight overflow", ErrorCode.SCRATCHPAD_OVERFLOW,
         [nop, descriptor(Opcode.GEMM, gemm={
             "banks": 1, "m_tiles": 1, "n_tiles": 1, "log2s": max_log2s,
             "wgt_addr": info.wgt_depth - (32 >> max_log2s) + 1})], 1),
        # a wait no earlier descriptor signals (it would block for ever)
        ("token nobody gives", ErrorCode.TOKEN,
         [nop, descriptor(Opcode.GEMM, wait_prev=1,
                          gemm={"banks": 1, "m_tiles": 1, "n_tiles": 1})], 1),
        # a valid GEMM longer than the watchdog (run_error_case's 2000 cycles)
        ("watchdog", ErrorCode.WATCHDOG, [nop, descriptor(Opcode.GEMM, gemm=_long_gemm(info))],
         1),
    ]
    if info.spus < 16:      # a mask naming only SPUs the device lacks
        cases.insert(3, ("mask of absent SPUs", ErrorCode.BAD_FIELD,
                         [nop, descriptor(Opcode.LOAD, spu_mask=1 << info.spus,
                                          dma=_dma(buf, bb))], 1))
    if bus_errors:
        # DRAM regions inside window 0 that answer SLVERR / DECERR
        slverr, decerr = dev.alloc.alloc(4096), dev.alloc.alloc(4096)
        dev.backend.inject_bus_error(slverr, slverr + 4096, "slverr")
        dev.backend.inject_bus_error(decerr, decerr + 4096, "decerr")
        cases[-1:-1] = [
            ("bus error on load", ErrorCode.BUS_SLVERR,
             [nop, descriptor(Opcode.LOAD, dma=_dma(slverr, 4 * bb))], 1),
            ("bus error on store", ErrorCode.BUS_DECERR,
             [nop, descriptor(Opcode.STORE, dma=_dma(decerr, 4 * bb))], 1),
        ]
    return cases


async def run_error_case(dev: Driver, name, code, descs, index, *, good_layer, watchdog=2000,
                         after_error=None):
    """Submit a bad program, check the error (and ``after_error()``, if given, before anything
    else runs), then check a good layer runs correctly."""
    await dev.set_watchdog(watchdog)
    first = None
    try:
        first = dev.ring_base + ((dev._tail) % dev.ring_slots) * 32
        await dev.submit(descs + [descriptor(Opcode.COMPLETE)])
        await dev.wait(200_000)
    except DeviceError as e:
        assert e.code == code, f"{name}: expected {code.name}, got {e}"
        want = dev.ring_base + ((first - dev.ring_base) // 32 + index) % dev.ring_slots * 32
        assert e.desc_addr == want, f"{name}: faulting address {e.desc_addr:#x} != {want:#x}"
    else:
        raise AssertionError(f"{name}: the device reported no error")
    if after_error is not None:
        after_error()
    await dev.set_watchdog(0)
    x, packed, params = good_layer
    await check_layer(dev, x, packed, params, f"good layer after {name}")


async def run_soft_reset_case(dev: Driver, rng):
    """A soft reset in the middle of a job (timed backends): the job is still running 300
    cycles after its hand-over, the device is idle again within 2000 cycles of the reset, and
    the next layer is correct."""
    from . import regs

    b = dev.backend
    x, packed, params = random_layer(rng, dev.info, 1, "raw", m=3 * dev.info.rows,
                                     n=3 * dev.info.cols, k=150)
    prog = dev.program(x, packed, params)
    for addr, data in prog.images:
        await b.mem_write(addr, data)
    await dev.submit(prog.descs)
    await b.wait_irq(300)
    assert (await b.read32(regs.STATUS)) & 1, "the job should still be running"
    await dev.soft_reset()
    start = await b.cycle()
    while (await b.read32(regs.STATUS)) & 0b101 != 0b100:     # idle, not busy
        if await b.cycle() - start > 2000:
            raise AssertionError("the device did not return to idle after a soft reset")
        await b.wait_irq(1)
    await check_layer(dev, *random_layer(rng, dev.info, 8, "int8"), "after soft reset")
