"""Fixtures for the stand-in's tests that run the real Claude Code CLI against it: the pinned
CLI (found as tests/runner finds it), one stand-in process per test session, and a runner of
`claude -p` in a fresh working directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripted_cli import PINNED_CLI_VERSION, ClaudeRunner

from headroom_dev.sandbox.client import SandboxProcess, start_sandbox

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLAUDE_BIN = REPO / "hack" / "claude-code" / "node_modules" / ".bin" / "claude"


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """The pinned CLI: $HEADROOM_CLAUDE_BIN, else hack/claude-code's npm install. Missing is a
    failure, not a skip, as in tests/runner."""
    configured = os.environ.get("HEADROOM_CLAUDE_BIN") or str(DEFAULT_CLAUDE_BIN)
    found = shutil.which(configured)
    if found is None:
        pytest.fail(
            f"Claude Code CLI not found at {configured}. Run `make claude-cli` "
            "(npm ci --prefix hack/claude-code --no-audit --no-fund) or set HEADROOM_CLAUDE_BIN."
        )
    version = subprocess.run(
        [found, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    if PINNED_CLI_VERSION not in version:
        pytest.fail(f"{found} is {version.strip()!r}, not the pinned {PINNED_CLI_VERSION}")
    return found


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxProcess]:
    with start_sandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxProcess) -> SandboxProcess:
    """The shared stand-in, back to a blank state (no credentials, scripts or records)."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def claude(tmp_path: Path, claude_bin: str, sandbox: SandboxProcess) -> ClaudeRunner:
    return ClaudeRunner(claude_bin, sandbox.url, tmp_path)
