"""Every `lcsim ...` command in the README's bash blocks parses with today's flags (optional
parts shown as `[--flag X]` left out)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lcsim.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        for part in line.split("&&"):
            part = re.sub(r"\[[^\]]*\]", "", part.split("#", 1)[0]).strip()
            if part.startswith("lcsim "):
                out.append(part)
    return out


def test_the_readme_shows_commands():
    assert len(_commands()) >= 10


@pytest.mark.parametrize("command", _commands())
def test_readme_command_parses(command):
    args = build_parser().parse_args(shlex.split(command)[1:])  # SystemExit(2) if a flag is off
    assert callable(args.func)
