"""Fuzzing the golden JPEG decoder (:mod:`s4accel.base.jpeg`) with seeded mutations of files
Pillow encodes (:func:`s4accel.sim.workloads.jpeg.mutate`): every mutated file must either
decode or raise :class:`~s4accel.base.jpeg.JpegError`, within a time bound. Case ``i`` of seed
``s`` draws from ``np.random.default_rng([s, i])``, so one case replays on its own.

The decoder RTL's share (bounded termination, no pixel past the image) is the cocotb test
``corrupt_streams`` of :mod:`s4accel.sim.tb.jpeg`.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..base.jpeg import JpegError, decode
from .workloads.jpeg import encode, mutate, smooth_image

__all__ = ["FuzzReport", "FuzzFailure", "fuzz_case", "fuzz_golden"]

#: (sampling, Pillow options) of the files mutated, one per case in turn
BASES = [("grey", {"quality": 75}), ("4:4:4", {"quality": 90}),
         ("4:2:2", {"quality": 50, "restart_marker_blocks": 2}),
         ("4:2:0", {"quality": 75, "optimize": True}), ("4:2:0", {"quality": 20})]


class FuzzFailure(AssertionError):
    """A mutated file made the decoder raise something else than JpegError, or run too long."""


class _Timeout(Exception):
    pass


@dataclass
class FuzzReport:
    seed: int
    cases: int = 0
    decoded: int = 0
    refused: Counter = field(default_factory=Counter)   #: JpegError message head -> count
    max_seconds: float = 0.0


def fuzz_case(seed: int, case: int) -> tuple[bytes, str]:
    """The mutated file of ``case`` under ``seed`` and how it was made."""
    rng = np.random.default_rng([seed, case])
    mode, kw = BASES[case % len(BASES)]
    h, w = int(rng.integers(1, 40)), int(rng.integers(1, 48))
    good = encode(smooth_image(rng, h, w), mode, **kw)
    bad, how = mutate(good, rng)
    return bad, f"seed {seed} case {case}: {mode} {h}x{w} {kw}, {how}"


def fuzz_golden(cases: int, seed: int, *, time_limit: float = 5.0, decoder=decode,
                progress=None) -> FuzzReport:
    """Decode ``cases`` mutated files; raises :class:`FuzzFailure` naming the case (and its
    replay) on any exception but JpegError or on a decode taking over ``time_limit`` s."""
    report = FuzzReport(seed=seed)

    def expire(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, expire)
    try:
        for case in range(cases):
            data, what = fuzz_case(seed, case)
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, time_limit)
            try:
                decoder(data)
                report.decoded += 1
            except JpegError as e:
                report.refused[re.sub(r"\d+", "N", str(e).split(":")[0])[:60]] += 1
            except _Timeout:
                raise FuzzFailure(f"{what}: no result within {time_limit} s") from None
            except Exception as e:   # noqa: BLE001 - the finding: any other exception
                raise FuzzFailure(f"{what}: {type(e).__name__}: {e}") from e
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            report.max_seconds = max(report.max_seconds, time.monotonic() - t0)
            report.cases += 1
            if progress and case % 100 == 99:
                progress(f"{case + 1} cases")
    finally:
        signal.signal(signal.SIGALRM, old)
    return report
