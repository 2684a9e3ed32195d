"""The README's code blocks, so that tests run what the README shows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
# A block is a fenced code block; "<!-- file: NAME -->" on the line before names the file it is.
_BLOCK = re.compile(r"(?:<!-- file: (?P<name>[\w.]+) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)^```$",
                    re.S | re.M)


@dataclass
class Block:
    lang: str
    code: str
    name: str | None  # the file this block is, or None for a program shown on its own
    line: int


def blocks() -> list[Block]:
    text = README.read_text()
    return [Block(m["lang"], m["code"], m["name"], text.count("\n", 0, m.start()) + 1)
            for m in _BLOCK.finditer(text)]


def files() -> dict[str, str]:
    """The README's named files, by name."""
    return {b.name: b.code for b in blocks() if b.name}
