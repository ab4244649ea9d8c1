"""``s4 fpga run``: run layers on a board through its UART host bridge and check them.

The board runs the bitstream of ``s4 fpga build`` (``hw/fpga/boards.py`` ``BoardTop``); the
driver reaches it with :class:`~s4accel.sw.uart_backend.UartBackend` over a serial port, loads a
random int8 layer per sparsity level, runs it, reads the result back and compares it bit for
bit with the golden model. ``s4 fpga run --port model`` answers the same byte protocol from the
functional model (``s4accel.sim.model.uart_model``), for trying the command without a board.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from . import scenarios
from .driver import Driver
from .uart_backend import UartBackend

__all__ = ["run_layers", "parse_shape"]


async def run_layers(transport, *, sparsities, shape, seed, ring_slots=16, say=print):
    """Open the device behind ``transport``, run one random int8 layer (``shape`` = M, K, N)
    per sparsity level and check it. Returns one dict per level."""

    rng = np.random.default_rng(seed)
    dev = Driver(UartBackend(transport), ring_slots=ring_slots)
    info = await dev.open()
    say(f"device: {info.rows}x{info.cols} lanes, {info.spus} SPU(s), "
        f"{info.bus_bytes * 8}-bit DRAM bus")
    m, k, n = shape
    rows = []
    for s in sparsities:
        if s not in info.sparsities:
            raise ValueError(f"sparsity {s} is not supported by the device "
                             f"(supported: {info.sparsities})")
        x, packed, params = scenarios.random_layer(rng, info, s, "int8", m=m, n=n, k=k)
        t0 = time.perf_counter()
        res = await dev.run_layer(x, packed, params)
        wall = time.perf_counter() - t0
        want = scenarios.expected(x, packed, params)
        bad = int(np.count_nonzero(res.y != want))
        rows.append({"sparsity": s, "m": m, "k": k, "n": n, "cycles": res.cycles,
                     "mismatches": bad, "bit_exact": bad == 0, "wall_s": round(wall, 3)})
        say(f"  s={s:2d}  {m}x{k}x{n}: {res.cycles} device cycles, "
            f"{'bit-exact' if bad == 0 else f'{bad} outputs differ from the golden model'}"
            f" ({wall:.2f} s over the link)")
    return rows


def parse_shape(text):
    """``MxKxN`` as a tuple, for argparse."""
    try:
        m, k, n = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be MxKxN, not {text!r}") from None
    if min(m, k, n) < 1:
        raise argparse.ArgumentTypeError(f"shape dimensions must be positive, not {text!r}")
    return m, k, n
