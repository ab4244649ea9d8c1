"""Progress reports for long host steps (calibration, pruning, compiling): a bar redrawn in
place on a terminal, and on anything else (a CI log, a file) a line at every tenth of the way
once the step has taken ``QUIET_S`` seconds, so logs stay short and quick steps (and a command
that ends with a one-line error) print nothing. Library functions take ``progress=None``
(silent) or a stream; the command line passes ``sys.stderr``."""

from __future__ import annotations

import time

__all__ = ["Progress", "track", "QUIET_S"]

#: seconds before a step's first line in a log (a terminal's bar is drawn at once)
QUIET_S = 2.0


class Progress:
    """``total`` steps of ``label``; :meth:`update` after each, :meth:`close` (or the ``with``
    block's end) when done. ``stream`` ``None``: silent."""

    WIDTH = 24

    def __init__(self, total: int, label: str, stream=None, *, clock=time.monotonic):
        if total < 0:
            raise ValueError(f"total must not be negative, not {total}")
        self.total, self.label, self.stream, self.clock = int(total), label, stream, clock
        self.done = 0
        self.t0 = clock()
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._tenth = -1
        self._closed = False
        self._draw()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        self._draw()

    def _text(self) -> str:
        t = self.clock() - self.t0
        n, k = self.total, self.done
        eta = f", about {t / k * (n - k):.0f} s left" if 0 < k < n else ""
        return f"{self.label}: {k}/{n}, {t:.0f} s{eta}"

    def _draw(self) -> None:
        if self.stream is None or self._closed:
            return
        if self._tty:
            fill = self.WIDTH * self.done // max(self.total, 1)
            bar = "#" * fill + "." * (self.WIDTH - fill)
            self.stream.write(f"\r[{bar}] {self._text()}\x1b[K")
            self.stream.flush()
            return
        tenth = 10 * self.done // max(self.total, 1)
        if tenth > self._tenth and self.clock() - self.t0 >= QUIET_S:
            self._tenth = tenth
            self.stream.write(self._text() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
        self._closed = True


def track(items, label: str, stream=None, total: int | None = None):
    """Yield ``items``, reporting progress on ``stream`` (``None``: silent)."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    with Progress(len(items) if total is None else total, label, stream) as p:
        for item in items:
            yield item
            p.update()
