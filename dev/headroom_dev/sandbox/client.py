"""Start a stand-in in its own process and steer it: for tests, `make run` and drills.

with start_sandbox(marker="ZEBRA") as sandbox:
    sandbox.add_credential("alice", "oauth", secret)
    sandbox.fill_window("alice", "five_hour", reset_in_seconds=3600)
    sandbox.script_session(session_id, [{"tools": [{"name": "Bash", "input": {...}}]}, ...])
    ... run claude with ANTHROPIC_BASE_URL=sandbox.url ...
    sandbox.requests()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


class SandboxError(RuntimeError):
    pass


class SandboxClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        if not self.url.startswith(("http://", "https://")):
            raise SandboxError(f"not an http URL: {self.url}")
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (scheme checked above)
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None

    def reset(self) -> None:
        self.call("POST", "/_admin/reset", {})

    def settings(self, marker: str | None = None, reply: str | None = None) -> Any:
        body = {k: v for k, v in (("marker", marker), ("reply", reply)) if v is not None}
        return self.call("POST", "/_admin/settings", body)

    def add_credential(
        self,
        name: str,
        kind: str,
        secret: str,
        windows: list[dict[str, Any]] | None = None,
        label: str = "",
    ) -> Any:
        body: dict[str, Any] = {"name": name, "kind": kind, "secret": secret, "label": label}
        if windows is not None:
            body["windows"] = windows
        return self.call("POST", "/_admin/credentials", body)

    def credentials(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/_admin/credentials")["credentials"]
        return result

    def expire(self, name: str) -> Any:
        return self.call("POST", f"/_admin/credentials/{name}/expire", {})

    def revive(self, name: str) -> Any:
        return self.call("POST", f"/_admin/credentials/{name}/revive", {})

    def fill_window(
        self,
        name: str,
        window: str,
        resets_at: int | None = None,
        reset_in_seconds: int | None = None,
    ) -> Any:
        body: dict[str, Any] = {}
        if resets_at is not None:
            body["resetsAt"] = resets_at
        if reset_in_seconds is not None:
            body["resetInSeconds"] = reset_in_seconds
        return self.call("POST", f"/_admin/credentials/{name}/windows/{window}/fill", body)

    def spend_credits(self, name: str, **options: Any) -> Any:
        """options: resetsAt, resetInSeconds, model, reason (see `credits.parse`)."""
        return self.call("POST", f"/_admin/credentials/{name}/credits/spend", options)

    def refill_credits(self, name: str) -> Any:
        return self.call("POST", f"/_admin/credentials/{name}/credits/refill", {})

    def reset_windows(self, name: str, window: str | None = None) -> Any:
        body = {} if window is None else {"window": window}
        return self.call("POST", f"/_admin/credentials/{name}/windows/reset", body)

    def set_usage_limit(self, min_interval_seconds: float) -> Any:
        """The usage endpoint's per-token rate limit (one read per this many seconds)."""
        return self.call("POST", "/_admin/usage", {"minIntervalSeconds": min_interval_seconds})

    def set_scopes(self, name: str, scopes: list[str]) -> Any:
        """The credential's OAuth scopes; ["user:inference"] is a `claude setup-token` token."""
        return self.call("POST", f"/_admin/credentials/{name}/scopes", {"scopes": scopes})

    def use_window(self, name: str, window: str, used: int) -> Any:
        return self.call("POST", f"/_admin/credentials/{name}/windows/{window}/use", {"used": used})

    def inject(self, kind: str, count: int = 1, **options: Any) -> Any:
        """kind: server_error | overloaded | rate_limit | stall; options: credential,
        retryAfter, seconds, message."""
        return self.call("POST", "/_admin/faults", {"kind": kind, "count": count, **options})

    def script_session(self, session: str, script: list[dict[str, Any]] | dict[str, Any]) -> Any:
        """Play `script` (steps, or {steps: [...]}) for the requests of this Claude Code
        session id, whichever credential they come with."""
        return self.call("PUT", f"/_admin/sessions/{session}/script", _steps(script))

    def script_prompt(self, word: str, script: list[dict[str, Any]] | dict[str, Any]) -> Any:
        """Play `script` for every conversation whose task contains `word` (a session's own
        script wins; this one wins over a credential's)."""
        return self.call("PUT", f"/_admin/prompts/{word}/script", _steps(script))

    def script_credential(self, name: str, script: list[dict[str, Any]] | dict[str, Any]) -> Any:
        """Play `script` for this credential's requests (a session's script wins)."""
        return self.call("PUT", f"/_admin/credentials/{name}/script", _steps(script))

    def scripts(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/_admin/scripts")
        return result

    def tool_results(self, since: int = 0) -> list[dict[str, Any]]:
        """The checked tool results of the recorded requests, oldest first."""
        result: list[dict[str, Any]] = self.call("GET", f"/_admin/tool-results?since={since}")[
            "toolResults"
        ]
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/_admin/state")
        return result

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", f"/_admin/requests?since={since}")[
            "requests"
        ]
        return result


def _steps(script: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    return script if isinstance(script, dict) else {"steps": script}


class SandboxProcess(SandboxClient):
    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        super().__init__(url)
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text("utf-8", errors="replace")


@contextmanager
def start_sandbox(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> Iterator[SandboxProcess]:
    """Run `headroom-dev sandbox-api --port 0` with extra `args` until the block ends."""
    with tempfile.TemporaryDirectory(prefix="headroom-sandbox-") as tmp:
        port_file, log_path = Path(tmp) / "port.json", Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "headroom_dev",
                    "sandbox-api",
                    "--port",
                    "0",
                    "--port-file",
                    str(port_file),
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
            try:
                url = _wait_for_port(port_file, process, log_path, timeout)
                yield SandboxProcess(url, process, log_path)
            finally:
                _stop(process, log)


def _wait_for_port(
    port_file: Path, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            url: str = json.loads(port_file.read_text("utf-8"))["url"]
            return url
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise SandboxError("sandbox-api did not start: " + log_path.read_text("utf-8")[-2000:])


def _stop(process: subprocess.Popen[bytes], log: BinaryIO) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.flush()
