"""Canary credentials never leave the runner: not in the termination message, its stdout or
stderr, the stand-in's log or its request records, whatever the outcome. To make the check
able to fail, the stand-in's model answers with the canaries themselves, so the CLI prints
them and the runner has to scrub them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from agent_pods import AgentRun, Pod, api_key, oauth

from headroom_dev.sandbox.client import SandboxProcess

pytestmark = pytest.mark.cli

# One shaped like a real token (caught by pattern too), one caught only by value.
OAUTH_CANARY = "sk-ant-oat01-CANARY-7c1d9e5a0b3f"
KEY_CANARY = "canary-api-key-4b2e8f6a1d0c9e7f"
ACCESS_CANARY = "sk-ant-oat01-CANARY-access-5e6f7a8b"
REFRESH_CANARY = "canary-refresh-token-0a9b8c7d6e5f"
CANARIES = (OAUTH_CANARY, KEY_CANARY, ACCESS_CANARY, REFRESH_CANARY)


def assert_no_canary(run: AgentRun, sandbox: SandboxProcess) -> None:
    places = {
        "termination message": run.termination_log,
        "stdout": run.stdout,
        "stderr": run.stderr,
        "stand-in log": sandbox.log(),
        "stand-in records": json.dumps(sandbox.requests()),
        "stand-in credentials": json.dumps(sandbox.credentials()),
    }
    for place, text in places.items():
        for canary in CANARIES:
            assert canary not in text, f"{canary} leaked into the {place}"
    assert run.termination_log, run.describe()


def echo(sandbox: SandboxProcess, *secrets: str) -> None:
    """Make the model repeat the run's own credentials (the only ones the runner knows)."""
    sandbox.settings(reply="Leaking on purpose: " + " ".join(secrets))


def test_completed_run_scrubs_a_token_the_model_repeats(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", OAUTH_CANARY)
    echo(sandbox, OAUTH_CANARY)

    run = make_pod().run(oauth(OAUTH_CANARY))

    assert run.message["outcome"] == "completed"
    assert "Leaking on purpose" in run.stdout  # the reply did reach the log, scrubbed
    assert "[redacted]" in run.message["evidence"]
    assert_no_canary(run, sandbox)


def test_walled_run_keeps_the_token_out(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", OAUTH_CANARY)
    sandbox.fill_window("alice", "five_hour", resets_at=int(time.time()) + 3600)

    run = make_pod().run(oauth(OAUTH_CANARY))

    assert run.message["outcome"] == "walled"
    assert_no_canary(run, sandbox)


def test_auth_failure_keeps_a_plain_api_key_out(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("payg", "api_key", KEY_CANARY)
    sandbox.expire("payg")

    run = make_pod().run(api_key(KEY_CANARY))

    assert run.message["outcome"] == "auth_failed"
    assert_no_canary(run, sandbox)


def test_credentials_file_values_are_scrubbed_too(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("filed", "oauth", ACCESS_CANARY)
    echo(sandbox, ACCESS_CANARY, REFRESH_CANARY)
    pod = make_pod()
    source = pod.root / "credentials.json"
    source.write_text(
        json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": ACCESS_CANARY,
                    "refreshToken": REFRESH_CANARY,
                    "expiresAt": int((time.time() + 36000) * 1000),
                    "scopes": ["user:inference"],
                }
            }
        )
    )

    run = pod.run({}, HEADROOM_CREDENTIALS_FILE=str(source))

    assert run.message["outcome"] == "completed"
    assert run.message["evidence"].count("[redacted]") == 2
    assert_no_canary(run, sandbox)


def test_a_broken_pod_environment_reports_without_the_token(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    run = make_pod().run(oauth(OAUTH_CANARY), HEADROOM_SESSION_ID=OAUTH_CANARY)

    assert run.message["outcome"] == "failed"
    assert "HEADROOM_SESSION_ID" in run.message["detail"]
    assert_no_canary(run, sandbox)
