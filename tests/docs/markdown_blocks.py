"""The fenced code blocks of the project's Markdown files, as the docs tests run them.

Every fence carries a language. Command languages (``console``, ``bash``, ``python``)
are examples a reader may type, so the docs tests run them, unless the block's first
line is a visible ``# illustrative: <why>`` comment. Other languages (``json``,
``text``, ``ini``, ...) show data and are not run.

``console`` blocks hold prompted commands (``$ cmd``, continued over lines while the
shell would still read on) each followed by the output a reader should see; ``bash``
blocks hold commands only; a ``python`` block is one script.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

COMMAND_LANGUAGES = frozenset({"console", "bash", "python"})
DATA_LANGUAGES = frozenset({"text", "json", "ini", "yaml", "protobuf", "dockerfile", "http"})
ILLUSTRATIVE = re.compile(r"^#\s*illustrative:\s*(?P<why>.+)$")
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[A-Za-z0-9_+-]*)\s*$")


@dataclass(frozen=True)
class Command:
    """One command of a block and the output the document shows for it."""

    text: str
    line: int
    expected: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    body: str
    commands: tuple[Command, ...] = field(default=())

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def illustrative(self) -> str | None:
        """Why the block is not run, when its first line says it is illustrative."""
        first = self.body.lstrip("\n").split("\n", 1)[0].strip()
        match = ILLUSTRATIVE.match(first)
        return match["why"] if match else None

    @property
    def runnable(self) -> bool:
        return self.language in COMMAND_LANGUAGES and self.illustrative is None


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text().split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        indent = len(opening["indent"])
        body = "\n".join(line[indent:] for line in lines[index + 1 : end])
        language = opening["lang"]
        commands = _commands(body, language, first_line=index + 2)
        blocks.append(Block(path, index + 1, language, body, commands))
        index = end + 1
    return blocks


def _commands(body: str, language: str, first_line: int) -> tuple[Command, ...]:
    if language == "console":
        return tuple(_console_commands(body.split("\n"), first_line))
    if language == "bash":
        return tuple(_bash_commands(body.split("\n"), first_line))
    return ()


def _console_commands(lines: list[str], first_line: int) -> list[Command]:
    commands: list[Command] = []
    index = 0
    while index < len(lines):
        if not lines[index].startswith("$ "):
            index += 1  # output before any prompt (none in our docs) is ignored
            continue
        text, index = _read_command(lines, index, prompt="$ ")
        start = index
        while index < len(lines) and not lines[index].startswith("$ "):
            index += 1
        expected = tuple(line for line in lines[start:index] if line.strip())
        commands.append(Command(text, first_line + start - 1, expected))
    return commands


def _bash_commands(lines: list[str], first_line: int) -> list[Command]:
    commands: list[Command] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if not stripped or stripped.startswith("#"):
            index += 1
            continue
        line = first_line + index
        text, index = _read_command(lines, index, prompt="")
        commands.append(Command(text, line))
    return commands


def _read_command(lines: list[str], index: int, prompt: str) -> tuple[str, int]:
    """One command from lines[index]: continued while bash says it is incomplete."""
    parts = [lines[index][len(prompt) :]]
    index += 1
    while not complete("\n".join(parts)) and index < len(lines):
        parts.append(lines[index])
        index += 1
    return "\n".join(parts), index


def complete(command: str) -> bool:
    """bash's own parser decides: a trailing backslash or an open quote reads on."""
    if command.rstrip().endswith("\\"):
        return False
    checked = subprocess.run(["bash", "-n"], input=command, capture_output=True, text=True)
    return checked.returncode == 0
