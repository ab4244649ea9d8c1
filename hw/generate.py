"""``s4 generate``: the whole accelerator as Verilog, with its register documentation.

The output directory holds everything a hardware engineer needs to drop the accelerator into a
design or synthesize it alone:

- ``s4_top.v``: Verilog of :class:`~s4accel.hw.top.S4Top` for the configuration (top module
  ``s4_top``; ports ``clk``, ``rst``, the AXI4-Lite register port ``csr__*``, the AXI4 DRAM
  manager port ``dram__*`` and ``irq``);
- ``s4_regs.h`` and ``registers.md``: the register map (``s4accel/base/regmap/regmap.yaml``)
  with reset values resolved for the configuration;
- ``config.yaml``: the configuration the Verilog was built from.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from amaranth.back import verilog

from ..base.config import Config, load_config
from .top import S4Top

__all__ = ["generate", "verilog_ports"]


def verilog_ports(text: str, module: str = "s4_top") -> list[tuple[str, str, int]]:
    """``(direction, name, width)`` of every port of ``module`` in Verilog ``text``."""
    start = text.index(f"module {module}(")
    body = text[start:text.index("endmodule", start)]
    ports = []
    for m in re.finditer(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?"
                         r"\\?([\w$.]+)\s*;", body, re.M):
        width = int(m.group(2)) - int(m.group(3)) + 1 if m.group(2) else 1
        ports.append((m.group(1), m.group(4), width))
    return ports


def generate(config: Config | str, outdir, *, name: str = "s4_top") -> dict:
    """Write the accelerator for ``config`` into ``outdir``; returns a summary dict with the
    written ``files``, the Verilog ``ports`` and its ``lines``."""
    from ..base import regmap

    config = load_config(config)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(S4Top(config), name=name, emit_src=False)
    files = {
        f"{name}.v": text,
        "s4_regs.h": regmap.generate("c", config),
        "registers.md": regmap.generate("md", config),
        "config.yaml": yaml.safe_dump(config.to_dict(), sort_keys=False),
    }
    for fname, content in files.items():
        (out / fname).write_text(content)
    return {"config": config.name, "files": [str(out / f) for f in files],
            "ports": verilog_ports(text, name), "lines": text.count("\n")}
