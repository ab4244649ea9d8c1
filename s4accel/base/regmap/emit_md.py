"""The Markdown reference of a register map (``docs/registers.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .emit_common import generated_line, hex_digits, reset_text
from .view import Field

if TYPE_CHECKING:
    from .model import RegisterMap

__all__ = ["to_markdown"]


def _md(text):
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
            .replace("<", "&lt;"))


def to_markdown(m: RegisterMap) -> str:
    """The reference (``docs/registers.md``): the access modes, a summary table, and a table
    of fields per register with the reserved bits filled in."""
    out = [f"<!-- {generated_line(m)} -->", "", f"# Register map `{m.name}`", ""]
    if m.description:
        out += [_md(m.description), ""]
    out += [
        f"{m.data_width}-bit registers at byte offsets in a {m.addr_width}-bit "
        f"({(1 << m.addr_width) // 1024 or 1} KiB) address space, reached over AXI4-Lite. "
        "Addresses without a register answer DECERR and read as 0; writes to read-only fields "
        "are ignored.",
        "",
        "| Access | Meaning |",
        "| --- | --- |",
        "| ro | read only: a constant when a reset value is given, else driven by the datapath |",
        "| rw | read/write |",
        "| w1c | set by the datapath, cleared by writing 1 |",
        "| w1p | writing 1 sends a one-cycle pulse to the datapath; reads as 0 |",
        "",
        "Reset values in braces depend on the hardware configuration (`{rows}` is "
        "`Config.rows`; `{sparsity_mask}` has bit i set when sparsity 2\\*\\*i is supported).",
    ]
    if m.interrupt is not None:
        i = m.interrupt
        out += ["", f"The interrupt line is `{i.enable_register}.{i.enable_field}` AND any set "
                    f"bit of `{i.status}`."]
    out += ["", "## Summary", "", "| Offset | Register | Access | Description |",
            "| --- | --- | --- | --- |"]
    for r in m.registers:
        out.append(f"| `{hex_digits(r.offset, m.addr_width)}` | [{r.name}](#{r.name.lower()}) | "
                   f"{r.access} | {_md(r.description)} |")
    out += ["", "## Registers"]
    for r in m.registers:
        out += ["", f"### {r.name}", "",
                f"Offset `{hex_digits(r.offset, m.addr_width)}`, {r.access}. {_md(r.description)}",
                "", "| Bits | Field | Access | Reset | Description |",
                "| --- | --- | --- | --- | --- |"]
        top = m.data_width - 1
        for f in sorted(r.fields, key=lambda f: -f.lsb):
            if f.msb < top:
                gap = Field("-", f.msb + 1, top - f.msb, "ro").bits
                out.append(f"| `{gap}` | - | - | 0 | reserved |")
            reset = "datapath" if f.is_datapath else f"`{reset_text(f)}`"
            if f.access == "w1p":
                reset = "0"
            out.append(f"| `{f.bits}` | `{f.name}` | {f.access} | {reset} | "
                       f"{_md(f.description)} |")
            top = f.lsb - 1
        if top >= 0:
            out.append(f"| `{Field('-', 0, top + 1, 'ro').bits}` | - | - | 0 | reserved |")
    out.append("")
    return "\n".join(out)
