"""What can be checked of the images without a Docker engine: the pinned CLI is installed by
`npm ci` from hack/claude-code, the processes run as non-root, the entrypoints are the
`headroom` subcommands, and nothing secret is baked in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from agent_pods import REPO

IMAGES = REPO / "images"


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


@pytest.mark.parametrize(
    ("image", "command"), [("agent", ["headroom", "agent"]), ("operator", ["headroom", "operator"])]
)
def test_final_stage_runs_headroom_as_non_root(image: str, command: list[str]) -> None:
    steps = instructions(IMAGES / image / "Dockerfile")
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    [entry] = [arg for op, arg in final if op == "ENTRYPOINT"]
    assert json.loads(entry) == command


def test_agent_image_installs_the_pinned_cli_with_npm_ci() -> None:
    steps = instructions(IMAGES / "agent" / "Dockerfile")
    runs = " ".join(arg for op, arg in steps if op == "RUN")
    assert "npm ci --prefix hack/claude-code" in runs
    copies = " ".join(arg for op, arg in steps if op == "COPY")
    assert "hack/claude-code/package-lock.json" in copies
    lock = json.loads((REPO / "hack" / "claude-code" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@anthropic-ai/claude-code"]["version"] == "2.1.330"
    assert "useradd --uid 10001" in runs and " agent" in runs


@pytest.mark.parametrize("image", ["agent", "operator"])
def test_no_secret_is_baked_in(image: str) -> None:
    text = (IMAGES / image / "Dockerfile").read_text()
    for name in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "credentials.json", "sk-ant-"):
        assert name not in text
    # The one build argument is the base image (made locally where no registry is reachable).
    args = [arg for op, arg in instructions(IMAGES / image / "Dockerfile") if op == "ARG"]
    assert [a.split("=", 1)[0] for a in args] in ([], ["BASE_IMAGE"])
