"""Run the real Claude Code CLI (`claude -p --output-format stream-json --verbose`) against the
stand-in, in a working directory of the test's own, and read what it printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OAUTH_ALICE = "sk-ant-oat01-SCRIPTEDaliceTOKEN000"
OAUTH_BOB = "sk-ant-oat01-SCRIPTEDbobTOKEN00000"
API_KEY = "sk-ant-api03-SCRIPTEDapiKEY0000000"


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("type") == "result"]
        assert results, f"no result event; exit {self.returncode}\n{self.describe()}"
        return results[-1]

    def describe(self) -> str:
        return f"stdout tail:\n{self.stdout[-3000:]}\nstderr tail:\n{self.stderr[-1500:]}"


class ClaudeRunner:
    """One conversation's place: a working directory and a config dir kept between runs, so
    `--resume` finds the transcript of the run before."""

    def __init__(self, claude_bin: str, base_url: str, root: Path) -> None:
        self.claude_bin = claude_bin
        self.base_url = base_url
        self.root = root
        self.work = root / "work"
        self.work.mkdir(parents=True, exist_ok=True)

    def run(
        self,
        *args: str,
        prompt: str = "Do the task.",
        oauth_token: str | None = OAUTH_ALICE,
        api_key: str | None = None,
        timeout: float = 120,
        **extra_env: str,
    ) -> CliRun:
        process = self.start(
            *args, prompt=prompt, oauth_token=oauth_token, api_key=api_key, **extra_env
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        return CliRun(process.returncode, stdout, stderr)

    def start(
        self,
        *args: str,
        prompt: str = "Do the task.",
        oauth_token: str | None = OAUTH_ALICE,
        api_key: str | None = None,
        **extra_env: str,
    ) -> subprocess.Popen[str]:
        """The CLI in its own process group, as the runner starts it."""
        env = self.environment(oauth_token, api_key, extra_env)
        argv = [
            self.claude_bin,
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
            *args,
            "--",
            prompt,
        ]
        return subprocess.Popen(
            argv,
            cwd=self.work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def environment(
        self, oauth_token: str | None, api_key: str | None, extra_env: dict[str, str]
    ) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.root / "home"),
            "CLAUDE_CONFIG_DIR": str(self.root / "config"),
            "ANTHROPIC_BASE_URL": self.base_url,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            **extra_env,
        }
        if os.geteuid() == 0:
            # The CLI refuses bypassPermissions as root unless told it runs in a sandbox (a
            # CI container); agent pods run as a normal user and never need this.
            env["IS_SANDBOX"] = "1"
        if api_key is not None:
            env["ANTHROPIC_API_KEY"] = api_key
        elif oauth_token is not None:
            env["CLAUDE_CODE_OAUTH_TOKEN"] = oauth_token
        return env
