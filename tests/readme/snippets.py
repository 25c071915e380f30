"""README.md read as a test script: its fenced code blocks, by section."""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SCHEDULE_LANGUAGES = ("yaml", "json", "toml")
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


@dataclass(frozen=True)
class Block:
    section: str  # the nearest heading above it
    lang: str
    text: str  # dedented

    def file_name(self) -> str | None:
        """The file a block says it is (first line ``# schedule.yaml``), if it says."""
        first = self.text.splitlines()[0] if self.text else ""
        match = re.fullmatch(r"#\s*(\S+\.\w+)", first.strip())
        return match.group(1) if match else None


def blocks(text: str | None = None) -> list[Block]:
    text = README.read_text() if text is None else text
    found = []
    for match in _FENCE.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[:match.start()], re.M)
        indent = len(match.group("indent"))
        body = "".join(line[indent:] if line.startswith(" " * indent) else line
                       for line in match.group("body").splitlines(keepends=True))
        found.append(Block(headings[-1] if headings else "", match.group("lang"), body))
    return found


def section(name: str) -> list[Block]:
    return [b for b in blocks() if b.section == name]


def schedule_snippets() -> list[Block]:
    return [b for b in blocks() if b.lang in SCHEDULE_LANGUAGES]


def commands(block: Block) -> list[list[str]]:
    """The shell commands of a bash block, comments dropped, ``.venv/bin/x`` as this venv's ``x``."""
    bin_dir = str(Path(sys.executable).parent)
    found = []
    for line in block.text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            found.append([w.replace(".venv/bin", bin_dir, 1) if w.startswith(".venv/bin/") else w for w in words])
    return found


def exported(block: Block) -> dict[str, str]:
    """``export A=1 B=2`` lines of a bash block."""
    variables = {}
    for words in commands(block):
        if words[0] == "export":
            variables.update(word.split("=", 1) for word in words[1:])
    return variables
