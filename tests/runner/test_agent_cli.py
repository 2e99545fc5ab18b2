"""`headroom agent` running the real Claude Code CLI against `headroom-dev sandbox-api`.

Each test plays one pod attempt (or several) as the operator would set it up and reads the
termination message the operator would read.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import pytest
from agent_pods import EXIT, MARKER, Pod, api_key, oauth, wait_for

from headroom.contract.termination import parse
from headroom.runner.stream import rfc3339
from headroom_dev.sandbox.client import SandboxProcess

pytestmark = pytest.mark.cli

TOKEN_A = "sk-ant-oat01-test-account-a-0000"
TOKEN_B = "sk-ant-oat01-test-account-b-1111"
KEY_C = "sk-ant-api03-test-account-c-2222"


def assert_outcome(run: object, outcome: str) -> dict[str, object]:
    from agent_pods import AgentRun

    assert isinstance(run, AgentRun)
    message = run.message
    assert message["outcome"] == outcome, run.describe()
    assert run.returncode == EXIT[outcome], run.describe()
    # The operator's parser accepts it (schema, size) and reads the same outcome.
    parsed = parse(run.termination_log)
    assert parsed.message is not None, parsed.problem
    assert parsed.message.outcome.value == outcome
    # The same message is the last line on stdout, for the pod log.
    assert json.loads(run.stdout.strip().splitlines()[-1]) == message
    return message


def api_requests(sandbox: SandboxProcess) -> list[dict[str, object]]:
    records = sandbox.requests()
    # Every request the CLI made was one the stand-in knows how to answer.
    assert not [r for r in records if r["result"] == "not_found"], records
    return [r for r in records if str(r["path"]).startswith("/v1/messages")]


@pytest.mark.parametrize("kind", ["oauth", "api_key"])
def test_normal_run_completes(
    kind: str, sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    secret = TOKEN_A if kind == "oauth" else KEY_C
    sandbox.add_credential("alice", kind, secret)
    pod = make_pod()

    run = pod.run(oauth(secret) if kind == "oauth" else api_key(secret))

    message = assert_outcome(run, "completed")
    assert message["sessionId"] == pod.session_id
    assert message["turns"] == 1
    assert isinstance(message["costUSD"], float) and message["costUSD"] > 0
    assert message["transcript"] is True and len(pod.transcripts()) == 1
    if kind == "oauth":  # subscription windows come back as utilization
        assert set(message["utilization"]) == {"five_hour", "seven_day"}
    [request] = api_requests(sandbox)
    assert request["credential"] == "alice"
    assert request["session"] == pod.session_id
    assert request["status"] == 200
    assert "--session-id" in run.stderr


def test_credentials_file_is_copied_not_linked(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    access, refresh = "sk-ant-oat01-file-access-3333", "sk-ant-ort01-file-refresh-4444"
    sandbox.add_credential("filed", "oauth", access)
    pod = make_pod()
    source = pod.root / "secret" / "credentials.json"
    source.parent.mkdir()
    expires_ms = int((time.time() + 36000) * 1000)
    document = {
        "claudeAiOauth": {
            "accessToken": access,
            "refreshToken": refresh,
            "expiresAt": expires_ms,
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max",
        }
    }
    source.write_text(json.dumps(document))
    source.chmod(0o400)  # as the Secret volume mounts it

    run = pod.run({}, HEADROOM_CREDENTIALS_FILE=str(source))

    assert_outcome(run, "completed")
    copy = run.config_dir / ".credentials.json"
    assert copy.is_file() and not copy.is_symlink()
    assert json.loads(copy.read_text())["claudeAiOauth"]["accessToken"] == access
    assert copy.stat().st_mode & 0o777 == 0o600
    assert [r["credential"] for r in api_requests(sandbox)] == ["filed"]


@pytest.mark.parametrize("window", ["five_hour", "seven_day"])
def test_exhausted_window_is_walled_with_the_reset_the_api_sent(
    window: str, sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    resets_at = int(time.time()) + 7200
    sandbox.fill_window("alice", window, resets_at=resets_at)
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A))

    message = assert_outcome(run, "walled")
    assert message["window"] == window
    assert message["resetsAt"] == rfc3339(resets_at)
    assert message["utilization"][window] == 1.0  # type: ignore[index]
    assert "rejected" in str(message["evidence"])
    [request] = api_requests(sandbox)
    assert request["status"] == 429 and request["window"] == window


def test_a_per_model_weekly_wall_stops_that_model_only(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    resets_at = int(time.time()) + 3 * 86400
    sandbox.fill_window("alice", "seven_day_opus", resets_at=resets_at)

    run = make_pod().run(oauth(TOKEN_A), HEADROOM_MODEL="opus")

    message = assert_outcome(run, "walled")
    assert (message["window"], message["resetsAt"]) == ("seven_day_opus", rfc3339(resets_at))
    assert "rateLimitType=seven_day_opus" in str(message["evidence"])
    # The default model of an OAuth token (Sonnet) does not draw on the Opus window.
    assert_outcome(make_pod().run(oauth(TOKEN_A)), "completed")


def test_a_window_past_its_warning_threshold_is_reported_in_warnings(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    windows = [{"name": "five_hour", "capacity": 100, "used": 85}, {"name": "seven_day"}]
    sandbox.add_credential("alice", "oauth", TOKEN_A, windows=windows)

    message = assert_outcome(make_pod().run(oauth(TOKEN_A)), "completed")

    assert message["warnings"] == {"five_hour": 0.8}
    assert message["utilization"]["five_hour"] == 0.86  # type: ignore[index]


@pytest.mark.parametrize("refresh", [True, False])
def test_spent_usage_credit_is_walled_on_credits_with_the_refresh_time_if_sent(
    refresh: bool, sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    resets_at = int(time.time()) + 20 * 86400
    sandbox.spend_credits("alice", **({"resetsAt": resets_at} if refresh else {}))
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A))

    message = assert_outcome(run, "walled")
    assert message["window"] == "credits"
    assert message.get("resetsAt") == (rfc3339(resets_at) if refresh else None)
    assert "out_of_credits" in str(message["evidence"])
    [request] = api_requests(sandbox)  # no retries: the CLI gives up at once
    assert request["status"] == 429 and request["result"] == "credits_spent"


def test_an_api_key_whose_balance_is_spent_is_walled_on_credits(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("payg", "api_key", KEY_C)
    sandbox.spend_credits("payg")
    pod = make_pod()

    run = pod.run(api_key(KEY_C))

    message = assert_outcome(run, "walled")
    assert message["window"] == "credits" and "resetsAt" not in message
    assert "billing_error" in str(message["evidence"])


def test_a_model_that_needs_credits_is_walled_on_model_credits_only_for_it(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    sandbox.spend_credits("alice", model="claude-fable", reason="seat_tier_zero_credit_limit")
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A), HEADROOM_MODEL="claude-fable-5-1")

    message = assert_outcome(run, "walled")
    assert message["window"] == "model_credits" and "resetsAt" not in message
    assert "seat_tier_zero_credit_limit" in str(message["detail"])
    other = make_pod()
    assert_outcome(other.run(oauth(TOKEN_A)), "completed")  # the default model still runs


@pytest.mark.parametrize("kind", ["api_key", "oauth"])
def test_expired_credential_is_auth_failed_at_the_first_401(
    kind: str, sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    secret = KEY_C if kind == "api_key" else TOKEN_A
    sandbox.add_credential("alice", kind, secret)
    sandbox.expire("alice")
    pod = make_pod()

    # Left alone, the CLI retries a dead API key ten times over minutes (docs/runner.md).
    run = pod.run(api_key(secret) if kind == "api_key" else oauth(secret), timeout=60)

    message = assert_outcome(run, "auth_failed")
    assert "authentication_failed" in str(message["evidence"])
    attempts = api_requests(sandbox)
    assert all(r["status"] == 401 for r in attempts)
    # Stopped at the first retry: one request, two if the retry was already on its way.
    assert 1 <= len(attempts) <= 2, attempts


def test_server_errors_that_mention_rate_limits_are_retried_not_walled(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    sandbox.inject("server_error", 2)
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A))

    assert_outcome(run, "completed")
    assert [r["status"] for r in api_requests(sandbox)] == [500, 500, 200]
    assert '"error":"server_error"' in run.stdout  # the CLI did report the retries


@pytest.mark.parametrize(("fault", "status"), [("server_error", 500), ("overloaded", 529)])
def test_server_errors_that_outlast_the_retries_fail_and_never_wall(
    fault: str, status: int, sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    sandbox.inject(fault, 10)
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A), CLAUDE_CODE_MAX_RETRIES="1")

    message = assert_outcome(run, "failed")
    assert "window" not in message and "resetsAt" not in message
    assert str(status) in str(message["evidence"])
    assert [r["status"] for r in api_requests(sandbox)] == [status, status]


def test_bare_429_with_retry_after_is_retried_not_walled(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    sandbox.inject("rate_limit", 2, retryAfter=1)
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A))

    assert_outcome(run, "completed")
    assert [r["status"] for r in api_requests(sandbox)] == [429, 429, 200]


def test_bare_429s_that_outlast_the_retries_are_throttled_not_walled(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    sandbox.inject("rate_limit", 10, retryAfter=1)
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A), CLAUDE_CODE_MAX_RETRIES="1")

    message = assert_outcome(run, "throttled")
    assert "window" not in message and "resetsAt" not in message
    # The CLI does emit a rejected rate_limit_event here, but without a reset time.
    assert '"type":"rate_limit_event","rate_limit_info":{"status":"rejected"' in run.stdout


def test_api_key_usage_limit_is_throttled_because_it_names_no_window(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("payg", "api_key", KEY_C)
    sandbox.fill_window("payg", "five_hour", reset_in_seconds=600)
    pod = make_pod()

    run = pod.run(api_key(KEY_C))

    message = assert_outcome(run, "throttled")
    assert "429" in str(message["evidence"])


def test_cross_account_resume_carries_the_conversation(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("account-a", "oauth", TOKEN_A)
    sandbox.add_credential("account-b", "oauth", TOKEN_B)
    sandbox.fill_window("account-a", "five_hour", reset_in_seconds=3600)
    pod = make_pod()

    first = pod.run(oauth(TOKEN_A), attempt=1)
    walled = assert_outcome(first, "walled")
    assert walled["transcript"] is True

    # The operator moves the session: another account, another config dir, same workspace.
    second = pod.run(oauth(TOKEN_B), attempt=2, expect_transcript=True)

    assert_outcome(second, "completed")
    assert "--resume" in second.stderr
    assert second.config_dir != first.config_dir
    a, b = api_requests(sandbox)
    assert (a["credential"], a["status"], a["markerPresent"]) == ("account-a", 429, True)
    assert b["credential"] == "account-b"
    assert b["session"] == pod.session_id
    assert b["markerInHistory"] is True, b  # the earlier turn, carried by --resume
    assert MARKER in json.loads(second.stdout.strip().splitlines()[-1]).get("evidence", "")


def test_retry_before_the_first_turn_starts_fresh_with_session_id(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    """Attempt 1 died before Claude Code wrote anything (no transcript, and it never reported
    one): attempt 2 must use --session-id, since --resume would find nothing."""
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    pod = make_pod()
    assert pod.transcripts() == []

    run = pod.run(oauth(TOKEN_A), attempt=2, expect_transcript=False)

    assert_outcome(run, "completed")
    assert "--session-id" in run.stderr and "--resume" not in run.stderr
    [request] = api_requests(sandbox)
    assert request["session"] == pod.session_id


def test_missing_transcript_after_one_was_reported_fails_without_starting_over(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A), attempt=3, expect_transcript=True)

    message = assert_outcome(run, "failed")
    assert "Resume found no conversation" in str(message["detail"])
    assert message["transcript"] is False
    assert api_requests(sandbox) == []  # no blank restart reached the API


def test_sigterm_is_forwarded_and_the_next_attempt_resumes(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    """The pod is deleted while its request hangs: the runner stops Claude Code, reports
    honestly, and the transcript the CLI had already written lets attempt 2 resume."""
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    sandbox.inject("stall", 1, seconds=120)
    pod = make_pod()

    process = pod.start(oauth(TOKEN_A), attempt=1, HEADROOM_STOP_GRACE_SECONDS="5")
    wait_for(lambda: sandbox.state()["inFlight"] == 1, what="the CLI's first request")
    process.send_signal(signal.SIGTERM)
    # Far below the 120 s stall: only a forwarded SIGTERM ends the run this soon.
    first = pod.finish(process, attempt=1, timeout=30)

    message = assert_outcome(first, "failed")
    assert "SIGTERM" in str(message["detail"])
    assert message["transcript"] is True

    second = pod.run(oauth(TOKEN_A), attempt=2, expect_transcript=bool(message["transcript"]))

    assert_outcome(second, "completed")
    assert "--resume" in second.stderr
    assert api_requests(sandbox)[-1]["markerInHistory"] is True


def test_model_is_passed_through(sandbox: SandboxProcess, make_pod: Callable[..., Pod]) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    pod = make_pod()

    run = pod.run(oauth(TOKEN_A), HEADROOM_MODEL="claude-sonnet-4-5", HEADROOM_MAX_TURNS="3")

    assert_outcome(run, "completed")
    assert [r["model"] for r in api_requests(sandbox)] == ["claude-sonnet-4-5"]


def test_unwritable_termination_log_still_reports_on_stdout_with_the_right_code(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    sandbox.add_credential("alice", "oauth", TOKEN_A)
    sandbox.fill_window("alice", "five_hour", reset_in_seconds=600)
    pod = make_pod()
    unwritable = pod.root / "no-such-dir" / "termination-log"

    run = pod.run(oauth(TOKEN_A), HEADROOM_TERMINATION_LOG=str(unwritable))

    assert run.returncode == EXIT["walled"], run.describe()
    assert not unwritable.exists()
    last = json.loads(run.stdout.strip().splitlines()[-1])
    assert last["outcome"] == "walled" and last["window"] == "five_hour"
    assert "cannot write" in run.stderr
