"""Simulated agent pods for the runner's tests.

A simulated pod is what the operator's pod spec gives `headroom agent`: one workspace per
session (shared by every attempt, like the PVC), and per attempt a fresh config dir whose
`projects/` is the workspace's `.claude-projects` (in Kubernetes a subPath volume mount; here
a symlink made by the test, standing in for the kubelet), a HOME and a termination log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MARKER = "ZEBRA-4417"
AGENT = (sys.executable, "-m", "headroom", "agent")
EXIT = {"completed": 0, "walled": 75, "auth_failed": 77, "throttled": 69, "failed": 1}


@dataclass
class AgentRun:
    returncode: int
    stdout: str
    stderr: str
    termination_log: str  # what the kubelet would read; "" if the file was not written
    config_dir: Path

    @property
    def message(self) -> dict[str, Any]:
        """The termination message as the operator would read it."""
        assert self.termination_log, f"no termination log; stderr:\n{self.stderr[-2000:]}"
        doc: dict[str, Any] = json.loads(self.termination_log)
        return doc

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\nmessage: {self.termination_log}\n"
            f"stderr tail:\n{self.stderr[-1500:]}"
        )


class Pod:
    """One session's workspace and the attempts (pods) that run on it."""

    def __init__(self, root: Path, claude_bin: str, base_url: str, session_id: str) -> None:
        self.root = root
        self.claude_bin = claude_bin
        self.base_url = base_url
        self.session_id = session_id
        self.workspace = root / "workspace"
        (self.workspace / ".claude-projects").mkdir(parents=True)

    def attempt_dir(self, attempt: int) -> Path:
        return self.root / f"attempt-{attempt}"

    def environment(
        self, credential: dict[str, str], attempt: int, expect_transcript: bool, **extra: str
    ) -> dict[str, str]:
        place = self.attempt_dir(attempt)
        config = place / "claude"
        if not config.exists():
            config.mkdir(parents=True)
            (place / "home").mkdir()
            # Stand-in for the pod's subPath volume mount of the workspace's transcript tree.
            (config / "projects").symlink_to(self.workspace / ".claude-projects")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(place / "home"),
            "CLAUDE_CONFIG_DIR": str(config),
            "HEADROOM_WORKDIR": str(self.workspace),
            "HEADROOM_SESSION_ID": self.session_id,
            "HEADROOM_PROMPT": f"Remember the word {MARKER} and say hello.",
            "HEADROOM_ATTEMPT": str(attempt),
            "HEADROOM_EXPECT_TRANSCRIPT": "true" if expect_transcript else "false",
            "HEADROOM_TERMINATION_LOG": str(place / "termination-log"),
            "HEADROOM_CLAUDE_BIN": self.claude_bin,
            "ANTHROPIC_BASE_URL": self.base_url,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            **credential,
            **extra,
        }
        return env

    def start(
        self,
        credential: dict[str, str],
        attempt: int = 1,
        expect_transcript: bool = False,
        command: Sequence[str] = AGENT,
        **extra: str,
    ) -> subprocess.Popen[str]:
        env = self.environment(credential, attempt, expect_transcript, **extra)
        return subprocess.Popen(
            list(command),
            env=env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, process: subprocess.Popen[str], attempt: int, timeout: float) -> AgentRun:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            pytest.fail(f"headroom agent still running after {timeout}s; stderr:\n{stderr[-2000:]}")
        log = self.attempt_dir(attempt) / "termination-log"
        return AgentRun(
            returncode=process.returncode,
            stdout=stdout,
            stderr=stderr,
            termination_log=log.read_text("utf-8") if log.exists() else "",
            config_dir=self.attempt_dir(attempt) / "claude",
        )

    def run(
        self,
        credential: dict[str, str],
        attempt: int = 1,
        expect_transcript: bool = False,
        command: Sequence[str] = AGENT,
        timeout: float = 90,
        **extra: str,
    ) -> AgentRun:
        process = self.start(credential, attempt, expect_transcript, command, **extra)
        return self.finish(process, attempt, timeout)

    def transcripts(self) -> list[Path]:
        return sorted((self.workspace / ".claude-projects").glob(f"*/{self.session_id}.jsonl"))


def oauth(secret: str) -> dict[str, str]:
    return {"CLAUDE_CODE_OAUTH_TOKEN": secret}


def api_key(secret: str) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": secret}


def wait_for(condition: Callable[[], object], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")
