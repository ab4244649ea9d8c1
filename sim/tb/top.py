"""cocotb tests of the whole accelerator driven by the Python driver (``sw/driver.py``)
through the RTL backend; results are compared with the functional model's, bit for bit."""

from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge

from ...sw import scenarios
from ...sw.driver import Driver
from ..model.device_model import ModelBackend
from .base import cases_from_env, config_from_env, rng_from_env
from .rtl_backend import RtlBackend


async def _open(dut, rng, pause=0.0, use_irq=True):
    be = RtlBackend(dut, rng=rng, axi_pause=pause)
    await be.start()
    dev = Driver(be, use_irq=use_irq)
    await dev.open()
    return be, dev


def _no_violations(be):
    assert not be.violations, "DRAM accesses outside the programmed windows:\n" + \
        "\n".join(be.violations[:10])


@cocotb.test()
async def layers_every_sparsity(dut):
    """Whole layers (raw int32 and int8 with bias, requant, ReLU and LUT) at every s, bit-exact
    against the golden model and against the functional model running the same program."""
    cfg = config_from_env()
    rng = rng_from_env(dut, "layers_every_sparsity")
    be, dev = await _open(dut, rng)
    model = Driver(ModelBackend(cfg))
    await model.open()
    assert model.info == dev.info, f"capabilities differ: RTL {dev.info}, model {model.info}"
    for s in cfg.sparsities:
        for mode in ("raw", "int8"):
            x, packed, params = scenarios.random_layer(rng, dev.info, s, mode)
            res = await scenarios.check_layer_against_model(dev, model, x, packed, params,
                                                            f"s={s} {mode}")
            dut._log.info("s=%d %s M=%d N=%d K=%d: %d cycles, %d descriptors, counters %s",
                          s, mode, x.shape[0], packed.n, packed.k, res.cycles,
                          res.descriptors, res.counters)
    # several row chunks: the activation scratchpad is double-buffered and the next chunk's
    # activations load in pieces while this chunk computes
    info = dev.info
    chunk_rows = max(1, -(-4 * info.cols // info.bus_bytes)) * info.rows
    for mode in ("raw", "int8"):
        s = cfg.sparsities[int(rng.integers(0, len(cfg.sparsities)))]
        x, packed, params = scenarios.random_layer(rng, info, s, mode, m=3 * chunk_rows + 1,
                                                   n=5 * info.cols + 3)
        res = await scenarios.check_layer_against_model(dev, model, x, packed, params,
                                                        f"row chunks s={s} {mode}")
        dut._log.info("row chunks s=%d %s M=%d N=%d K=%d: %d cycles, %d descriptors", s, mode,
                      x.shape[0], packed.n, packed.k, res.cycles, res.descriptors)
    _no_violations(be)


@cocotb.test()
async def chains_on_chip(dut):
    """Layer chains as one program with the activations on chip, on the bus-checking path
    (with two SPUs: rows split across the SPUs, weights multicast), bit-exact against the
    golden and functional models."""
    cfg = config_from_env()
    rng = rng_from_env(dut, "chains_on_chip")
    be, dev = await _open(dut, rng)
    model = Driver(ModelBackend(cfg))
    await model.open()
    for k, max_chunk in enumerate([None, 1]):
        x, chain = scenarios.random_chain(rng, dev.info, max_chunk=max_chunk,
                                          m=int(rng.integers(2, 5)) * cfg.rows * cfg.spus + 1)
        res = await scenarios.check_chain_against_model(dev, model, x, chain, f"chain {k}",
                                                        max_chunk=max_chunk)
        dut._log.info("chain %d: M=%d, %d layers: %d cycles", k, x.shape[0], len(chain),
                      res.cycles)
    _no_violations(be)


@cocotb.test()
async def l2_gather_and_networks(dut):
    """The on-chip L2 (``hw/bus/l2.py``) on the bus-checking path with AXI backpressure: layer
    chains split across the SPUs by output channel that gather their inputs through it, and
    conv networks whose maps live in it (2-D strided loads of residual pairs included), both
    bit-exact against the golden and functional models. Without an L2 its addresses are not
    mapped: a LOAD from there (window opened) ends with BUS_DECERR, and the next job runs."""
    from ...base.config import L2_BASE
    from ...hw.cmd.descriptors import ErrorCode, Opcode
    from ...sw.program import descriptor
    cfg = config_from_env()
    rng = rng_from_env(dut, "l2_gather_and_networks")
    be, dev = await _open(dut, rng, pause=0.2)
    model = Driver(ModelBackend(cfg))
    await model.open()
    if not cfg.l2_kib:
        await dev.set_window(1, L2_BASE, L2_BASE + 4096)
        good = scenarios.random_layer(rng, dev.info, 4, "int8")
        await scenarios.run_error_case(
            dev, "load from an absent L2", ErrorCode.BUS_DECERR,
            [descriptor(Opcode.NOP), descriptor(Opcode.LOAD, dma=scenarios._dma(L2_BASE, 64))],
            1, good_layer=good)
        _no_violations(be)
        return
    for k in range(3):
        x, chain = scenarios.random_gather_chain(rng, dev.info)
        res, where = await scenarios.check_gather_chain_against_model(dev, model, x, chain,
                                                                       f"gather chain {k}")
        assert "L2" in [p for _, p, _ in where], where
        dut._log.info("gather chain %d: M=%d, widths %s, tensors %s: %d cycles", k,
                      x.shape[0], [p.n for p, _ in chain], [p for _, p, _ in where],
                      res.cycles)
    done = 0
    for _ in range(40):
        x, ops, want = scenarios.random_conv_network(rng, dev.info)
        try:
            scenarios.check_network_fits(dev.info, x, ops)
        except ValueError:
            continue
        res = await scenarios.check_network_against_model(dev, model, x, ops, want,
                                                          f"network {done}")
        dut._log.info("network %d in the L2: %d cycles", done, res.cycles)
        done += 1
        if done == 2:
            break
    assert done == 2
    _no_violations(be)


@cocotb.test()
async def layers_with_axi_backpressure(dut):
    """Random idle/backpressure on every AXI channel of the DRAM and CSR ports; the driver
    polls STATUS/IRQ with interrupts disabled (the line must stay low)."""
    cfg = config_from_env()
    rng = rng_from_env(dut, "layers_with_axi_backpressure")
    be, dev = await _open(dut, rng, pause=0.3, use_irq=False)
    irq_high = []

    async def watch_irq():
        while True:
            await RisingEdge(dut.clk)
            if dut.irq.value == 1:
                irq_high.append(await be.cycle())
    watcher = cocotb.start_soon(watch_irq())
    for _ in range(cases_from_env(3)):
        s = cfg.sparsities[int(rng.integers(0, len(cfg.sparsities)))]
        mode = ("raw", "int8")[int(rng.integers(0, 2))]
        await scenarios.check_layer(dev, *scenarios.random_layer(rng, dev.info, s, mode),
                                    f"backpressure s={s} {mode}")
    watcher.cancel()
    assert not irq_high, f"the interrupt line rose with CTRL.irq_en = 0 (cycle {irq_high[0]})"
    _no_violations(be)


@cocotb.test()
async def every_error_code(dut):
    """Each error: code, faulting descriptor address, interrupt, then a good job."""
    rng = rng_from_env(dut, "every_error_code")
    be, dev = await _open(dut, rng)
    good = scenarios.random_layer(rng, dev.info, 4, "int8")
    for name, code, descs, index in scenarios.error_programs(dev):
        irq_seen = []

        async def watch_irq(seen):
            for _ in range(300_000):
                await RisingEdge(dut.clk)
                if dut.irq.value == 1:
                    seen.append(True)
                    return

        def irq_rose(seen=irq_seen, name=name):
            # checked as soon as the error is reported, before the good job's done interrupt
            assert seen, f"{name}: the interrupt line never rose"

        watcher = cocotb.start_soon(watch_irq(irq_seen))
        await scenarios.run_error_case(dev, name, code, descs, index, good_layer=good,
                                       after_error=irq_rose)
        watcher.cancel()
        dut._log.info("%s: %s reported with the right address, next job correct", name,
                      code.name)
    _no_violations(be)


@cocotb.test()
async def soft_reset_mid_job(dut):
    """A soft reset in the middle of a job aborts it cleanly; the next job is correct."""
    rng = rng_from_env(dut, "soft_reset_mid_job")
    be, dev = await _open(dut, rng)
    await scenarios.run_soft_reset_case(dev, rng)
    _no_violations(be)
