"""What every cocotb testbench shares: the clock, the reset sequence, and the parameters read
from the environment.

One simulator build serves every test of a design, so a test takes its parameters from the
environment that :mod:`.runner` sets: ``S4_CONFIG`` (the configuration as JSON), ``S4_SEED``
(replay a randomized run) and ``S4_CASES`` (how many random cases a test runs). Every DUT has
a ``clk`` input and an active-high synchronous ``rst``.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from ...base.config import Config

#: Clock period of every testbench (100 MHz); cycle counts do not depend on it.
CLOCK_NS = 10


def config_from_env() -> Config:
    """The configuration the design was built for (``S4_CONFIG``)."""
    return Config.from_dict(json.loads(os.environ["S4_CONFIG"]))


def seed_from_env(dut, name: str) -> int:
    """``S4_SEED``, or a fresh seed; logged with the test's name so a failure can be replayed."""
    seed = int(os.environ.get("S4_SEED") or np.random.SeedSequence().entropy % (1 << 32))
    dut._log.info("%s: seed %d (replay with S4_SEED=%d)", name, seed, seed)
    return seed


def rng_from_env(dut, name: str) -> np.random.Generator:
    """A generator seeded by :func:`seed_from_env`: the one source of randomness of a test."""
    return np.random.default_rng(seed_from_env(dut, name))


def cases_from_env(default: int) -> int:
    """How many random cases a test runs: ``S4_CASES``, else ``default``."""
    return int(os.environ.get("S4_CASES") or default)


def pauses(rng, p: float):
    """An endless pause generator for cocotbext bus channels: each cycle pauses with
    probability ``p``."""
    while True:
        yield bool(rng.random() < p)


def start_clock(dut, *, impl: str = "py", start_high: bool = True) -> None:
    """Drive ``dut.clk`` with a :data:`CLOCK_NS` period from now on. ``impl="gpi"``: the
    clock toggles in cocotb's C++ layer without waking Python (cocotb's default is a Python
    task, two wake-ups a cycle); the fast backend uses it. ``start_high=False``: the first
    rising edge half a period from now."""
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns", impl=impl).start(start_high=start_high))


async def reset(dut, cycles: int = 3, *, settle: bool = True, during=None) -> None:
    """Hold ``rst`` for ``cycles`` rising edges, then release it; with ``settle``, return one
    edge after the release (the first cycle out of reset), else right at it.

    ``during``, if given, is called once the reset is asserted and before the first edge: the
    place to create bus models that must see the reset.
    """
    dut.rst.value = 1
    if during is not None:
        during()
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    if settle:
        await RisingEdge(dut.clk)


async def start(dut, cycles: int = 3, *, settle: bool = True, during=None) -> None:
    """:func:`start_clock`, then :func:`reset`."""
    start_clock(dut)
    await reset(dut, cycles, settle=settle, during=during)


async def started(make, dut, name: str, **kw):
    """The usual start of a test: ``make(dut, config, rng, **kw)`` (a testbench class) with the
    configuration and a generator seeded for the test ``name`` from the environment, started.
    Returns the testbench; it keeps ``config`` and ``rng``."""
    tb = make(dut, config_from_env(), rng_from_env(dut, name), **kw)
    await tb.start()
    return tb
