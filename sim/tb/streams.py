"""cocotb stream drivers for Amaranth ``lib.stream`` ports, in one cycle loop.

Amaranth flattens a stream port ``i_x`` into ``i_x__valid``, ``i_x__ready`` and
``i_x__payload``. All sources and sinks here are served by a single coroutine per clock cycle:
inputs are written just after the rising edge and handshakes are sampled in the ReadOnly phase
before the next one, which behaves the same on Verilator and Icarus.
"""

from __future__ import annotations

from collections import deque

from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["Source", "Sink", "StreamLoop"]


class Source:
    """Drives a stream into the DUT; ``idle`` is the chance of holding ``valid`` low a cycle."""

    def __init__(self, dut, name, *, rng=None, idle=0.0):
        self.name = name
        #: cycles to hold ``valid`` low before each of the next beats (a directed schedule,
        #: consumed one entry per beat; empty: only ``idle`` decides)
        self.gaps = deque()
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.queue = deque()
        self.rng, self.idle = rng, idle
        self.sent = 0
        self._driving = False
        self.valid.value = 0

    def extend(self, beats):
        self.queue.extend(beats)

    def _drive(self):
        if not self._driving and self.queue and self.gaps and self.gaps[0] > 0:
            self.gaps[0] -= 1
            self.valid.value = 0
            return
        if not self._driving and self.queue and not (self.idle and self.rng.random() < self.idle):
            if self.gaps:
                self.gaps.popleft()
            self.payload.value = self.queue[0]
            self.valid.value = 1
            self._driving = True
        elif not self._driving:
            self.valid.value = 0

    def _sample(self):
        if self._driving and self.ready.value == 1:
            self.queue.popleft()
            self.sent += 1
            self._driving = False

    @property
    def done(self):
        return not self.queue


class Sink:
    """Takes a stream out of the DUT; ``stall`` is the chance of holding ``ready`` low.

    A stream without ``ready`` (the DUT does not wait: every valid beat is a transfer) is
    taken as it comes; ``stall`` must then be 0.
    """

    def __init__(self, dut, name, *, rng=None, stall=0.0):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready", None)
        if self.ready is None and stall:
            raise ValueError(f"{name} has no ready signal, so it cannot be stalled "
                             f"(stall={stall!r})")
        self.payload = getattr(dut, f"{name}__payload")
        self.rng, self.stall = rng, stall
        self.beats = []
        self._ready = 1
        if self.ready is not None:
            self.ready.value = 1

    def _drive(self):
        if self.ready is None:
            return
        self._ready = 0 if (self.stall and self.rng.random() < self.stall) else 1
        self.ready.value = self._ready

    def _sample(self):
        if self._ready and self.valid.value == 1:
            self.beats.append(self.payload.value.to_unsigned())


class StreamLoop:
    """Serves sources and sinks every cycle until a condition holds or a cycle bound hits.

    Between two ``run_until`` calls sources with nothing to send hold ``valid`` low and sinks
    hold ``ready`` low, so no transfer happens unobserved.
    """

    def __init__(self, clk, sources=(), sinks=(), watches=()):
        self.clk = clk
        self.sources = list(sources)
        self.sinks = list(sinks)
        self.cycle = 0
        #: signal -> number of cycles it was seen high (sampled with the handshakes)
        self.counts = {w: 0 for w in watches}

    async def run_until(self, cond, max_cycles, what="stream traffic"):
        """Run until ``cond()``; return the cycles spent. Fails after ``max_cycles``."""
        start = self.cycle
        while not cond():
            if self.cycle - start >= max_cycles:
                state = ", ".join(f"{s.name}: {len(s.queue)} beats left" for s in self.sources)
                state += ", " + ", ".join(f"{s.name}: {len(s.beats)} beats out" for s in self.sinks)
                raise AssertionError(f"{what} did not finish in {max_cycles} cycles ({state})")
            await RisingEdge(self.clk)
            self.cycle += 1
            for s in self.sources:
                s._drive()
            for s in self.sinks:
                s._drive()
            await ReadOnly()
            for s in self.sources:
                s._sample()
            for s in self.sinks:
                s._sample()
            for w in self.counts:
                if w.value == 1:
                    self.counts[w] += 1
        # Leave no stale handshake behind: clock cycles run by other code before the next
        # run_until must not repeat the last beat of a source or drop a beat into a sink.
        await RisingEdge(self.clk)
        self.cycle += 1
        for s in self.sources:
            if not s._driving:
                s.valid.value = 0
        for s in self.sinks:
            if s.ready is not None:
                s._ready = 0
                s.ready.value = 0
        return self.cycle - start - 1
