"""The agent image's entrypoint, run the way its Dockerfile runs it: the project installed
into a clean virtualenv (no dev extras, no source tree on the path), `headroom agent` from
that venv's bin, the real CLI, the stand-in. No Docker engine here, so this is as close as a
test can get to the image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_pods import REPO, Pod, oauth

from headroom_dev.sandbox.client import SandboxProcess

pytestmark = pytest.mark.cli

DOCKERFILE = REPO / "images" / "agent" / "Dockerfile"


def entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the agent Dockerfile has no exec-form ENTRYPOINT"
    command: list[str] = json.loads(match.group(1))
    return command


def test_entrypoint_from_a_clean_venv_completes_a_run(
    tmp_path: Path, sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    command = entrypoint()
    assert command == ["headroom", "agent"]
    # What the Dockerfile copies into its build stage, and nothing else.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copytree(
        REPO / "operator",
        source / "operator",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    sandbox.add_credential("alice", "oauth", "sk-ant-oat01-image-test-5555")

    run = make_pod().run(
        oauth("sk-ant-oat01-image-test-5555"),
        command=[str(venv / "bin" / command[0]), *command[1:]],
    )

    assert run.returncode == 0, run.describe()
    assert run.message["outcome"] == "completed"
