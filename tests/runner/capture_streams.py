"""Record what the real Claude Code CLI prints, scenario by scenario, into tests/runner/data/.

The classifier's unit tests replay these lines, so they test real output rather than lines
we imagined. Run again after changing the pinned CLI version:

    .venv/bin/python tests/runner/capture_streams.py

Each scenario runs the CLI directly (not through the runner) against `headroom-dev sandbox-api`,
with fake credentials, and stores its stdout as <scenario>.jsonl plus an entry in
manifest.json (exit code, CLI version, what the stand-in was told to do). Scenarios with a
script make the stand-in's model call tools (see headroom_dev.sandbox.script), which the CLI runs
with --permission-mode bypassPermissions in a scratch directory.

Name scenarios to record only those (the others keep their files and manifest entries):

    .venv/bin/python tests/runner/capture_streams.py completed_tool_use structured_output
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headroom_dev.sandbox.client import SandboxClient, start_sandbox

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
CLAUDE = os.environ.get("HEADROOM_CLAUDE_BIN") or str(
    REPO / "hack" / "claude-code" / "node_modules" / ".bin" / "claude"
)
OAUTH = "sk-ant-oat01-FIXTUREoauthTOKEN0000"
API_KEY = "sk-ant-api03-FIXTUREapiKEY00000000"
SESSION = "0f1e2d3c-4b5a-4697-8877-665544332211"
MISSING_SESSION = "00000000-1111-4222-8333-444444444444"
DEFAULT_ARGS = ["--session-id", SESSION]


@dataclass
class Scenario:
    name: str
    description: str
    credential: str = "oauth"  # oauth | api_key
    setup: Callable[[SandboxClient], None] = lambda sandbox: None
    extra_env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=lambda: list(DEFAULT_ARGS))
    timeout: float = 90
    script: list[dict[str, Any]] | None = None  # what the stand-in's model plays
    prompt: str = "Say hello."
    # How the stand-in was told to answer, when its answer is inferred rather than measured.
    stand_in: dict[str, Any] | None = None


CREDITS_STAND_IN = (
    "POST /_admin/credentials/cred/credits/spend; the 429's headers and body are the"
    " stand-in's, inferred from what the 2.1.330 bundle parses (headroom_dev.sandbox.credits)"
)


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}},
          "required": ["answer"], "additionalProperties": False}  # fmt: skip
SCRIPTED = ["--session-id", SESSION, "--permission-mode", "bypassPermissions"]
WRONG_STRUCTURED_OUTPUT = {
    "tools": [{"name": "StructuredOutput", "input": {"answer": 42}, "expect": {"isError": True}}]
}


SCENARIOS = [
    Scenario("completed_oauth", "one turn with an OAuth token; windows allowed"),
    Scenario("completed_api_key", "one turn with an API key", credential="api_key"),
    Scenario(
        "walled_five_hour_oauth",
        "OAuth token whose five_hour window is full",
        setup=lambda s: s.fill_window("cred", "five_hour", reset_in_seconds=3600),
    ),
    Scenario(
        "walled_seven_day_oauth",
        "OAuth token whose seven_day window is full",
        setup=lambda s: s.fill_window("cred", "seven_day", reset_in_seconds=86400),
    ),
    Scenario(
        "walled_seven_day_opus_oauth",
        "--model opus on an OAuth token whose seven_day_opus (Opus-only weekly) window is "
        "full: the 429's representative claim is seven_day_opus",
        setup=lambda s: s.fill_window("cred", "seven_day_opus", reset_in_seconds=3 * 86400),
        args=["--session-id", SESSION, "--model", "opus"],
    ),
    Scenario(
        "walled_seven_day_sonnet_oauth",
        "default model (Sonnet for an OAuth token) whose seven_day_sonnet window is full",
        setup=lambda s: s.fill_window("cred", "seven_day_sonnet", reset_in_seconds=2 * 86400),
    ),
    Scenario(
        "seven_day_opus_full_sonnet_runs_oauth",
        "default model (Sonnet) on an OAuth token whose seven_day_opus window is full: runs",
        setup=lambda s: s.fill_window("cred", "seven_day_opus", reset_in_seconds=3 * 86400),
    ),
    Scenario(
        "allowed_warning_five_hour_oauth",
        "OAuth token whose five_hour window is 85% used: the stand-in sends "
        "surpassed-threshold 0.8 for it; the run completes",
        setup=lambda s: s.add_credential(
            "cred",
            "oauth",
            OAUTH,
            windows=[
                {"name": "five_hour", "capacity": 100, "used": 85},
                {"name": "seven_day", "capacity": 1000},
            ],
        ),
    ),
    Scenario(
        "usage_429_api_key",
        "API key whose window is full: 429 with retry-after and no unified headers",
        credential="api_key",
        setup=lambda s: s.fill_window("cred", "five_hour", reset_in_seconds=3600),
    ),
    Scenario(
        "credits_spent_oauth",
        "OAuth token whose usage credit is spent (overage lane rejected, out_of_credits); "
        "the 429 names the refresh time",
        setup=lambda s: s.spend_credits("cred", resetInSeconds=20 * 86400),
        stand_in={"how": CREDITS_STAND_IN, "body": {"resetInSeconds": 20 * 86400}},
    ),
    Scenario(
        "credits_spent_no_reset_oauth",
        "OAuth token whose usage credit is spent (out_of_credits); the 429 names no refresh time",
        setup=lambda s: s.spend_credits("cred"),
        stand_in={"how": CREDITS_STAND_IN, "body": {}},
    ),
    Scenario(
        "credits_model_required_oauth",
        "--model claude-fable-5-1 on an OAuth token whose seat lacks usage credits: 429 with "
        "error.details.error_code credits_required (seat_tier_level_disabled)",
        setup=lambda s: s.spend_credits(
            "cred", model="claude-fable", reason="seat_tier_level_disabled"
        ),
        args=["--session-id", SESSION, "--model", "claude-fable-5-1"],
        stand_in={
            "how": CREDITS_STAND_IN,
            "body": {"model": "claude-fable", "reason": "seat_tier_level_disabled"},
        },
    ),
    Scenario(
        "credits_seat_required_oauth",
        "default model (not one the CLI lists as credit-only) on an OAuth token whose seat "
        "lacks usage credits: the same credits_required 429 as for a credit-only model",
        setup=lambda s: s.spend_credits(
            "cred", model="claude-sonnet", reason="seat_tier_level_disabled"
        ),
        stand_in={
            "how": CREDITS_STAND_IN,
            "body": {"model": "claude-sonnet", "reason": "seat_tier_level_disabled"},
        },
    ),
    Scenario(
        "credits_balance_too_low_api_key",
        "API key whose prepaid credit balance is spent: 400 invalid_request_error "
        "'Your credit balance is too low ...'",
        credential="api_key",
        setup=lambda s: s.spend_credits("cred"),
        stand_in={"how": CREDITS_STAND_IN, "body": {}},
    ),
    Scenario(
        "auth_failed_oauth_expired",
        "expired OAuth token: 401 authentication_error",
        setup=lambda s: s.expire("cred"),
    ),
    Scenario(
        "auth_failed_api_key",
        "revoked API key: 401 authentication_error (retries cut to 2)",
        credential="api_key",
        setup=lambda s: s.expire("cred"),
        extra_env={"CLAUDE_CODE_MAX_RETRIES": "2"},
    ),
    Scenario(
        "server_error_recovered",
        "two 500s whose text says 'rate limit', then success",
        setup=lambda s: s.inject("server_error", 2),
    ),
    Scenario(
        "server_error_exhausted",
        "500s whose text says 'rate limit' until the retries run out (1 retry)",
        setup=lambda s: s.inject("server_error", 5),
        extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"},
    ),
    Scenario(
        "overloaded_exhausted",
        "529 overloaded_error until the retries run out (1 retry)",
        setup=lambda s: s.inject("overloaded", 5),
        extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"},
    ),
    Scenario(
        "bare_429_recovered",
        "two bare 429s with retry-after: 1, then success",
        setup=lambda s: s.inject("rate_limit", 2, retryAfter=1),
    ),
    Scenario(
        "bare_429_exhausted",
        "bare 429s with retry-after: 1 until the retries run out (1 retry)",
        setup=lambda s: s.inject("rate_limit", 5, retryAfter=1),
        extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"},
    ),
    Scenario(
        "resume_missing",
        "--resume of a session id that has no transcript",
        args=["--resume", MISSING_SESSION],
    ),
    Scenario(
        "completed_tool_use",
        "scripted model: Bash, then Write, then a final answer; the CLI runs both tools",
        args=SCRIPTED,
        prompt="Do the task.",
        script=[
            {
                "text": "Looking.",
                "tools": [
                    {"name": "Bash", "input": {"command": "echo hi"}, "expect": {"contains": "hi"}}
                ],
            },
            {
                "tools": [
                    {"name": "Write", "input": {"file_path": "notes.txt", "content": "hello\n"}}
                ]
            },
            {"text": "Wrote notes.txt."},
        ],
    ),
    Scenario(
        "structured_output",
        "--json-schema: the scripted model calls StructuredOutput with a valid answer",
        args=[*SCRIPTED, "--json-schema", json.dumps(SCHEMA)],
        prompt="Answer in the schema.",
        script=[{"structuredOutput": {"answer": "42"}}],
    ),
    Scenario(
        "structured_output_retries_exhausted",
        "--json-schema: every StructuredOutput call fails the schema until the CLI gives up",
        args=[*SCRIPTED, "--json-schema", json.dumps(SCHEMA)],
        prompt="Answer in the schema.",
        script=[WRONG_STRUCTURED_OUTPUT] * 8,
    ),
    Scenario(
        "max_budget_exhausted",
        "--max-budget-usd 1: the second answer reports a million input tokens (over $1)",
        args=[*SCRIPTED, "--max-budget-usd", "1"],
        prompt="Do the task.",
        script=[
            {
                "tools": [{"name": "Bash", "input": {"command": "echo one"}}],
                "usage": {"inputTokens": 1000},
            },
            {
                "tools": [{"name": "Bash", "input": {"command": "echo two"}}],
                "usage": {"inputTokens": 1_000_000},
            },
            {"text": "never reached"},
        ],
    ),
]


def capture(scenario: Scenario, sandbox: SandboxClient, version: str) -> dict[str, object]:
    sandbox.reset()
    kind, secret = ("oauth", OAUTH) if scenario.credential == "oauth" else ("api_key", API_KEY)
    sandbox.add_credential("cred", kind, secret)
    scenario.setup(sandbox)
    if scenario.script is not None:
        sandbox.script_credential("cred", scenario.script)
    with tempfile.TemporaryDirectory(prefix="headroom-capture-") as tmp:
        root = Path(tmp)
        (root / "work").mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "CLAUDE_CONFIG_DIR": str(root / "config"),
            "ANTHROPIC_BASE_URL": sandbox.url,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            ("CLAUDE_CODE_OAUTH_TOKEN" if kind == "oauth" else "ANTHROPIC_API_KEY"): secret,
            **scenario.extra_env,
        }
        if scenario.script is not None and os.geteuid() == 0:
            env["IS_SANDBOX"] = "1"  # else the CLI refuses bypassPermissions as root
        argv = [CLAUDE, "-p", "--output-format", "stream-json", "--verbose", *scenario.args]
        done = subprocess.run(
            [*argv, "--", scenario.prompt],
            cwd=root / "work",
            env=env,
            capture_output=True,
            text=True,
            timeout=scenario.timeout,
            check=False,
        )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    # Fixtures are committed: make sure no credential made it into them.
    assert not any(s in done.stdout for s in (OAUTH, API_KEY)), scenario.name
    (DATA / f"{scenario.name}.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    return {
        "description": scenario.description,
        "exitCode": done.returncode,
        "cliVersion": version,
        "credential": scenario.credential,
        "env": scenario.extra_env,
        "stderr": done.stderr.strip()[-300:],
        "lines": len(lines),
        **({"args": scenario.args, "script": scenario.script} if scenario.script else {}),
        **({"args": scenario.args} if _plain_with_args(scenario) else {}),
        **({"standIn": scenario.stand_in} if scenario.stand_in else {}),
    }


def _plain_with_args(scenario: Scenario) -> bool:
    return scenario.script is None and scenario.args != DEFAULT_ARGS


def main(names: list[str]) -> int:
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    version = subprocess.run(
        [CLAUDE, "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / "manifest.json"
    recorded: dict[str, object] = json.loads(path.read_text("utf-8")) if names else {}
    with start_sandbox() as sandbox:
        for scenario in SCENARIOS:
            if names and scenario.name not in names:
                continue
            entry = capture(scenario, sandbox, version)
            recorded[scenario.name] = entry
            print(scenario.name, entry["exitCode"], file=sys.stderr)
    # Scenario order, whichever were recorded this time.
    manifest = {s.name: recorded[s.name] for s in SCENARIOS if s.name in recorded}
    path.write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
