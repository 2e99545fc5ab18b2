"""Fixtures for the stand-in's tests that run the real Claude Code CLI against it: the pinned
CLI (found as tests/runner finds it), one stand-in process per test session, and a runner of
`claude -p` in a fresh working directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scripted_cli import ClaudeRunner
from tests.support.claude_cli import pinned_claude_bin

from headroom_dev.sandbox.client import SandboxProcess, start_sandbox


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """The pinned CLI; missing is a failure, not a skip: these tests are about it."""
    return pinned_claude_bin()


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
