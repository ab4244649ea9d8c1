"""``s4 fpga run``: run layers on a board through its UART host bridge and check them.

The board runs the bitstream of ``s4 fpga build`` (``hw/fpga/boards.py`` ``BoardTop``); the
driver reaches it with :class:`~s4accel.sw.uart_backend.UartBackend` over a serial port, loads a
random int8 layer per sparsity level, runs it, reads the result back and compares it bit for
bit with the golden model. ``--port model`` answers the same byte protocol from the functional
model, for trying the command (and the protocol) without a board.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import numpy as np

__all__ = ["run_layers", "main"]


async def run_layers(transport, *, sparsities, shape, seed, ring_slots=16, say=print):
    """Open the device behind ``transport``, run one random int8 layer (``shape`` = M, K, N)
    per sparsity level and check it. Returns one dict per level."""
    from ..sim import scenarios
    from .driver import Driver
    from .uart_backend import UartBackend

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


def _shape(text):
    try:
        m, k, n = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be MxKxN, not {text!r}") from None
    if min(m, k, n) < 1:
        raise argparse.ArgumentTypeError(f"shape dimensions must be positive, not {text!r}")
    return m, k, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="s4 fpga run", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", required=True,
                   help="serial port of the board (/dev/ttyUSB0, COM3, ...) or 'model'")
    p.add_argument("--baud", type=int, default=115_200, help="the bitstream's baud rate")
    p.add_argument("--config", default="tiny", help="preset for --port model (a board "
                   "reports its own configuration)")
    p.add_argument("--sparsity", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--shape", type=_shape, default=(8, 128, 16), help="MxKxN (default 8x128x16)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    say(f"seed {seed} (replay with --seed {seed})")
    from .uart_backend import BridgeError, ModelTransport, SerialTransport

    try:
        if args.port == "model":
            rows = asyncio.run(run_layers(ModelTransport(args.config), sparsities=args.sparsity,
                                          shape=args.shape, seed=seed, say=say))
        else:
            with SerialTransport(args.port, args.baud) as port:
                rows = asyncio.run(run_layers(port, sparsities=args.sparsity,
                                              shape=args.shape, seed=seed, say=say))
    except (BridgeError, ValueError, ImportError, OSError) as e:
        print(f"s4: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
