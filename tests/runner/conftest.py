"""Fixtures for the runner's tests: the pinned Claude Code CLI (found in one place), a
stand-in API process shared by the session, and simulated agent pods (see agent_pods.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_pods import MARKER, Pod
from tests.support.claude_cli import pinned_claude_bin

from headroom_dev.sandbox.client import SandboxProcess, start_sandbox


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """The pinned CLI; missing is a failure, not a skip: these tests are about it."""
    return pinned_claude_bin()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxProcess]:
    with start_sandbox("--marker", MARKER) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxProcess) -> SandboxProcess:
    """The shared stand-in, back to a blank state for each test."""
    sandbox_server.reset()
    sandbox_server.settings(marker=MARKER, reply="Done.")
    return sandbox_server


@pytest.fixture
def make_pod(
    tmp_path: Path, claude_bin: str, sandbox: SandboxProcess
) -> Iterator[Callable[..., Pod]]:
    counter = iter(range(1, 1000))

    def make(session_id: str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b") -> Pod:
        return Pod(tmp_path / f"pod-{next(counter)}", claude_bin, sandbox.url, session_id)

    yield make


@pytest.fixture
def make_git_server(tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Start real git servers (tests/support/git_server.py) on loopback: smart HTTP(S) behind
    a token check, optionally git daemon; every one is stopped after the test.
    make_git_server(token=..., tls=..., daemon=..., host=...) -> GitServer"""
    from tests.support.git_server import GitServer

    started: list[GitServer] = []

    def make(**options: object) -> GitServer:
        server = GitServer(tmp_path / f"git-server-{len(started)}", **options)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def git_server(make_git_server: Callable[..., object]) -> object:
    """A GitServer over HTTPS (self-signed; trust server.ca_file) with a random canary token,
    plus git daemon for anonymous git://."""
    import uuid

    return make_git_server(token=f"hdrm-canary-{uuid.uuid4().hex}", tls=True, daemon=True)
