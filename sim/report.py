"""One reporter for the benchmarks, the workloads and the performance model: a text table from a
column spec, rows as JSON, and the speedup-over-dense plot.

A table is a list of :class:`Column` s applied to rows (dicts, or anything a column's key
function accepts)::

    COLUMNS = [Column("s", "sparsity", ">3"), Column("cycles", "cycles", ">9"),
               Column("speedup", "speedup_vs_dense", ">8.2f")]
    print(format_table(rows, COLUMNS))

It lives in ``sim`` itself rather than in ``sim/bench`` because the performance model
(``sim/model``) prints its projection with it too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Column", "format_table", "to_json", "write_json", "plot_speedup"]

_ALIGN_WIDTH = re.compile(r"[<>^]?\d*")


@dataclass(frozen=True)
class Column:
    """One column of a table.

    ``key`` is a row's key (missing keys read as ``None``) or a function of the row. ``spec``
    is a format spec such as ``">9.4f"``; its alignment and width also lay out the header and
    ``missing``, the text shown for a ``None`` value.
    """
    header: str
    key: str | Callable
    spec: str = ""
    missing: str = "-"

    def value(self, row):
        return self.key(row) if callable(self.key) else row.get(self.key)

    def cell(self, row) -> str:
        v = self.value(row)
        if v is None:
            return format(self.missing, self._layout)
        return format(v, self.spec)

    @property
    def head(self) -> str:
        return format(self.header, self._layout)

    @property
    def _layout(self) -> str:
        # the alignment and width of the spec, without its type (a header is text)
        layout = _ALIGN_WIDTH.match(self.spec).group()
        return layout if layout[:1] in "<>^" else "<" + layout


def format_table(rows, columns, *, rule: bool = True, indent: str = "", sep: str = " ") -> str:
    """The header line, a rule of dashes as wide as the widest line (with ``rule``), then one
    line per row; columns joined by ``sep``, every line prefixed by ``indent`` and stripped of
    trailing blanks."""
    lines = [sep.join(c.head for c in columns)]
    lines += [sep.join(c.cell(r) for c in columns) for r in rows]
    lines = [(indent + line).rstrip() for line in lines]
    if rule:
        lines.insert(1, indent + "-" * (max(len(line) for line in lines) - len(indent)))
    return "\n".join(lines)


def _plain(v):
    # numpy scalars and arrays, paths: what json cannot write by itself
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def to_json(rows, indent: int = 1) -> str:
    """Rows (or any result) as JSON text; numpy values become plain numbers and lists."""
    return json.dumps(rows, indent=indent, default=_plain)


def write_json(rows, path) -> Path:
    """Write :func:`to_json` of ``rows`` to ``path``; returns the path."""
    path = Path(path)
    path.write_text(to_json(rows) + "\n")
    return path


def plot_speedup(series: dict, path, title: str, *, ylabel: str, levels=None,
                 figsize=(6, 4.5), legend_size=None) -> Path:
    """A log-log PNG of speedup over dense against the sparsity ``s``, with the ideal
    (speedup = s) as a dashed line.

    ``series`` maps a label to its ``(s, speedup)`` points (a point whose speedup is ``None``
    is left out); ``levels`` (default: every ``s``
    of the series) are the axis ticks and the ideal line's points. Drawn with matplotlib's Agg
    backend, so no display is needed.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted(levels or {s for pts in series.values() for s, _ in pts})
    fig, ax = plt.subplots(figsize=figsize)
    ax.plot(levels, levels, "--", color="gray", label="ideal (speedup = s)")
    for label, pts in series.items():
        pts = [(s, v) for s, v in pts if v]     # no dense run, no speedup
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(levels, [str(v) for v in levels])
    ax.set_yticks(levels, [str(v) for v in levels])
    ax.set_xlabel("weight sparsity s")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
