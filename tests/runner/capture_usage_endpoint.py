"""Record how the real Claude Code CLI reads the plan usage endpoint (`GET /api/oauth/usage`)
into tests/runner/data/usage_endpoint.jsonl. Run again after changing the pinned CLI version:

    .venv/bin/python tests/runner/capture_usage_endpoint.py

The CLI is asked for its structured `/usage` data (the SDK control request `get_usage`) with
an OAuth token that carries the `user:profile` scope and ANTHROPIC_BASE_URL pointing at the
stand-in. What it prints, the lines of its debug log about the read, and the requests the
stand-in saw are stored. Measured with 2.1.330: the CLI reads the endpoint from its OAuth
host (https://api.anthropic.com), not from ANTHROPIC_BASE_URL, so the stand-in never sees the
read; the facts about the request and its answers come from the bundle instead
(usage_endpoint.json, checked against the pinned CLI by test_usage_endpoint_facts.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from headroom_dev.sandbox.client import SandboxClient, start_sandbox

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "usage_endpoint.jsonl"
CLAUDE = os.environ.get("HEADROOM_CLAUDE_BIN") or str(
    REPO / "hack" / "claude-code" / "node_modules" / ".bin" / "claude"
)
OAUTH = "sk-ant-oat01-FIXTUREoauthTOKEN0000"
SCOPES = "user:inference user:profile"
GET_USAGE = {
    "type": "control_request",
    "request_id": "usage-1",
    "request": {"subtype": "get_usage", "skip_behaviors": True},
}
DEBUG_WORDS = ("fetchUtilization", "ENOTFOUND api.anthropic.com")


def capture() -> list[dict[str, Any]]:
    with start_sandbox() as server, tempfile.TemporaryDirectory() as home:
        sandbox = SandboxClient(server.url)
        sandbox.add_credential("cred", "oauth", OAUTH)
        debug = Path(home) / "debug.txt"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "ANTHROPIC_BASE_URL": server.url,
            "CLAUDE_CODE_OAUTH_TOKEN": OAUTH,
            "CLAUDE_CODE_OAUTH_SCOPES": SCOPES,
            "CLAUDE_CODE_SUBSCRIPTION_TYPE": "max",
        }
        args = [CLAUDE, "-p", "--input-format", "stream-json", "--output-format",
                "stream-json", "--verbose", "--debug-file", str(debug)]  # fmt: skip
        lines = _ask(args, env, home)
        records: list[dict[str, Any]] = [
            {"source": "env", "env": {k: v for k, v in env.items() if k.startswith("CLAUDE_CODE_")
                                      and k != "CLAUDE_CODE_OAUTH_TOKEN"}},
            {"source": "stdin", "line": GET_USAGE},
        ]  # fmt: skip
        records += [{"source": "stdout", "line": json.loads(line)} for line in lines]
        for text in debug.read_text(errors="replace").splitlines():
            if any(word in text for word in DEBUG_WORDS):
                records.append({"source": "debug", "text": text[:400]})
        for entry in sandbox.requests():
            records.append({"source": "stand-in", "method": entry["method"],
                            "path": entry["path"], "status": entry["status"]})  # fmt: skip
    return records


def _ask(args: list[str], env: dict[str, str], cwd: str) -> list[str]:
    """Send the control request; keep stdout's lines up to its answer (no system lines)."""
    proc = subprocess.Popen(args, env=env, cwd=cwd, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(GET_USAGE) + "\n")
    proc.stdin.flush()
    kept, deadline = [], time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if not line.startswith('{"type":"system"'):
                kept.append(line)
            if '"control_response"' in line:
                time.sleep(1)  # let the debug log catch up with the read it started
                break
    finally:
        proc.kill()
        proc.wait(10)
    return kept


def main() -> int:
    records = capture()
    DATA.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records), "utf-8")
    print(f"wrote {len(records)} records to {DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
