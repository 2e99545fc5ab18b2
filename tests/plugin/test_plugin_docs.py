"""The docs stay true to the plugin: the operator guide lists every subcommand the parser
has, and the README's quick start keeps its two set-up commands and shows the plugin."""

from __future__ import annotations

import re
from pathlib import Path

from headroom.plugin.main import parser

REPO = Path(__file__).resolve().parents[2]


def subcommands() -> set[str]:
    [group] = [a for a in parser()._actions if a.dest == "command"]
    return set(group.choices or {})


def test_the_operator_guide_lists_every_subcommand() -> None:
    guide = (REPO / "docs" / "operator-guide.md").read_text()
    section = guide.split("## kubectl headroom\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`kubectl headroom (\w+)", section))
    documented |= set(re.findall(r"/ `(\w+) ACCOUNT`", section))
    assert documented == subcommands() == {"status", "why", "logs", "drill", "pause", "resume"}


def test_the_quick_start_keeps_two_commands_and_shows_the_plugin() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    first_block = quick.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.splitlines()] == [
        ["make", "run"],
        ["make", "test"],
    ]
    assert "kubectl headroom status" in quick
