"""Progress reports (sw/progress.py): a line every tenth of the way in a log, a bar redrawn in
place on a terminal, nothing without a stream."""

import io

from s4accel.sw.progress import Progress, track


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_log_lines_every_tenth_once_the_step_is_slow():
    """In a log: nothing for the first QUIET_S seconds, then a line at each tenth."""
    out, clock = io.StringIO(), _Clock()
    with Progress(40, "calibrating", out, clock=clock) as p:
        for _ in range(40):
            clock.t += 0.25
            p.update()
    lines = out.getvalue().splitlines()
    assert lines[0] == "calibrating: 8/40, 2 s, about 8 s left"
    assert lines[1] == "calibrating: 12/40, 3 s, about 7 s left"
    assert len(lines) == 9 and lines[-1] == "calibrating: 40/40, 10 s"
    quick = io.StringIO()
    with Progress(40, "quick", quick, clock=_Clock()) as p:
        p.update(40)
    assert quick.getvalue() == ""


def test_terminal_bar_is_redrawn_in_place():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    items = list(track(range(3), "pruning", out))
    assert items == [0, 1, 2]
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and "\n" not in text[:-1]
    assert "[" + "#" * Progress.WIDTH + "] pruning: 3/3" in text


def test_silent_without_a_stream_and_generators_counted():
    assert list(track((i for i in range(5)), "x")) == list(range(5))
    clock = _Clock()
    clock.t = 5.0
    out = io.StringIO()
    with Progress(3, "squares", out, clock=clock) as p:
        clock.t = 10.0
        p.update(3)
    assert out.getvalue().splitlines()[-1] == "squares: 3/3, 5 s"
