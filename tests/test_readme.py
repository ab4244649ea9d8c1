"""The README's firmware example runs as printed (on the functional model)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], re.S)


def test_firmware_example_runs(capsys):
    blocks = _python_blocks("Firmware developers")
    assert blocks, "the Firmware developers section has no Python example"
    exec(compile(blocks[0], "README.md (firmware example)", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "UNKNOWN_OPCODE" in out and "descriptors" in out
