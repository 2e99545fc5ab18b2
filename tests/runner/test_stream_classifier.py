"""The pure stream classifier, replaying lines the real CLI printed (tests/runner/data/,
recorded by capture_streams.py from Claude Code 2.1.330 against the stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headroom.contract.termination import (
    CREDITS_WINDOW,
    MODEL_CREDITS_WINDOW,
    Outcome,
    TerminationMessage,
    encode,
    parse,
)
from headroom.runner.stream import LineSplitter, StreamClassifier, classify, credit_wall, rfc3339

DATA = Path(__file__).resolve().parent / "data"
MANIFEST = json.loads((DATA / "manifest.json").read_text())


def lines_of(name: str) -> list[str]:
    return (DATA / f"{name}.jsonl").read_text().splitlines()


def events_of(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines_of(name)]


EXPECTED = {
    "completed_oauth": Outcome.COMPLETED,
    "completed_api_key": Outcome.COMPLETED,
    "walled_five_hour_oauth": Outcome.WALLED,
    "walled_seven_day_oauth": Outcome.WALLED,
    "walled_seven_day_opus_oauth": Outcome.WALLED,
    "walled_seven_day_sonnet_oauth": Outcome.WALLED,
    "seven_day_opus_full_sonnet_runs_oauth": Outcome.COMPLETED,
    "allowed_warning_five_hour_oauth": Outcome.COMPLETED,
    "usage_429_api_key": Outcome.THROTTLED,
    "auth_failed_oauth_expired": Outcome.AUTH_FAILED,
    "auth_failed_api_key": Outcome.AUTH_FAILED,
    "server_error_recovered": Outcome.COMPLETED,
    "server_error_exhausted": Outcome.FAILED,
    "overloaded_exhausted": Outcome.FAILED,
    "bare_429_recovered": Outcome.COMPLETED,
    "bare_429_exhausted": Outcome.THROTTLED,
    "resume_missing": Outcome.FAILED,
    "completed_tool_use": Outcome.COMPLETED,
    "structured_output": Outcome.COMPLETED,
    "structured_output_retries_exhausted": Outcome.FAILED,
    "max_budget_exhausted": Outcome.FAILED,
    "credits_spent_oauth": Outcome.WALLED,
    "credits_spent_no_reset_oauth": Outcome.WALLED,
    "credits_model_required_oauth": Outcome.WALLED,
    "credits_seat_required_oauth": Outcome.WALLED,
    "credits_balance_too_low_api_key": Outcome.WALLED,
}


def test_a_structured_answer_and_the_final_text_reach_the_verdict() -> None:
    verdict = classify(lines_of("structured_output"), exit_code=0)
    assert verdict.structured_output == {"answer": "42"}
    assert verdict.summary == '{"answer":"42"}'  # the CLI's `result` holds the same as text
    assert verdict.duration_seconds is not None and verdict.duration_seconds >= 0


def test_a_spent_budget_says_so_from_the_errors_the_cli_lists() -> None:
    verdict = classify(lines_of("max_budget_exhausted"), exit_code=1)
    assert verdict.outcome is Outcome.FAILED
    assert "error_max_budget_usd" in verdict.detail
    assert "Reached maximum budget" in verdict.detail


def test_every_recorded_scenario_has_an_expectation() -> None:
    assert set(MANIFEST) == set(EXPECTED)
    assert {entry["cliVersion"] for entry in MANIFEST.values()} == {"2.1.330"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_stream_classifies_as_measured(name: str) -> None:
    verdict = classify(lines_of(name), exit_code=MANIFEST[name]["exitCode"])
    assert verdict.outcome is EXPECTED[name], verdict


@pytest.mark.parametrize("name", ["walled_five_hour_oauth", "walled_seven_day_oauth"])
def test_wall_takes_window_and_reset_from_the_rate_limit_event(name: str) -> None:
    [event] = [e for e in events_of(name) if e["type"] == "rate_limit_event"]
    info = event["rate_limit_info"]
    assert isinstance(info, dict)

    verdict = classify(lines_of(name), exit_code=1)

    assert verdict.window == info["rateLimitType"]
    assert verdict.resets_at == rfc3339(info["resetsAt"])
    assert verdict.utilization[info["rateLimitType"]] == 1.0
    assert verdict.evidence.startswith("rate_limit_event status=rejected")


@pytest.mark.parametrize(
    ("name", "window", "model"),
    [
        ("walled_seven_day_opus_oauth", "seven_day_opus", "claude-opus-5-5"),
        ("walled_seven_day_sonnet_oauth", "seven_day_sonnet", "claude-sonnet-5-5"),
    ],
)
def test_a_per_model_weekly_wall_names_its_window(name: str, window: str, model: str) -> None:
    """Measured: the per-model window comes only as the event's rateLimitType (the CLI reads
    no per-window headers for it, so unifiedWindows lacks it and no utilization is given);
    the CLI does not switch to another model by itself."""
    events = events_of(name)
    assert events[0]["model"] == model
    [event] = [e for e in events if e["type"] == "rate_limit_event"]
    info = event["rate_limit_info"]
    assert isinstance(info, dict) and window not in info["unifiedWindows"]

    verdict = classify(lines_of(name), exit_code=1)

    assert (verdict.outcome, verdict.window) == (Outcome.WALLED, window)
    assert verdict.resets_at == rfc3339(info["resetsAt"])
    assert window not in verdict.utilization and not verdict.warnings


def test_a_full_opus_window_does_not_stop_a_sonnet_run() -> None:
    verdict = classify(lines_of("seven_day_opus_full_sonnet_runs_oauth"), exit_code=0)
    assert verdict.outcome is Outcome.COMPLETED and "seven_day_opus" not in verdict.utilization


def test_an_allowed_warning_marks_its_window_with_the_threshold_it_surpassed() -> None:
    [event] = [
        e for e in events_of("allowed_warning_five_hour_oauth") if e["type"] == "rate_limit_event"
    ]
    info = event["rate_limit_info"]
    assert isinstance(info, dict) and info["status"] == "allowed_warning"

    verdict = classify(lines_of("allowed_warning_five_hour_oauth"), exit_code=0)

    assert verdict.outcome is Outcome.COMPLETED
    assert verdict.warnings == {"five_hour": info["surpassedThreshold"]} == {"five_hour": 0.8}
    assert verdict.utilization["five_hour"] == info["utilization"]


def test_a_warning_carried_through_the_termination_message() -> None:
    verdict = classify(lines_of("allowed_warning_five_hour_oauth"), exit_code=0)
    message = TerminationMessage(Outcome.COMPLETED, warnings=verdict.warnings)
    parsed = parse(encode(message)).message
    assert parsed is not None and parsed.warnings == {"five_hour": 0.8}


def test_a_later_allowed_status_clears_a_warning_and_odd_values_are_ignored() -> None:
    classifier = StreamClassifier()
    warned = {"status": "allowed_warning", "rateLimitType": "seven_day", "surpassedThreshold": 0.75}
    odd = {"status": "allowed_warning", "rateLimitType": "five_hour", "surpassedThreshold": True}
    for info in (warned, odd, {**warned, "rateLimitType": "Bad Name"}):
        classifier.feed(json.dumps({"type": "rate_limit_event", "rate_limit_info": info}))
    assert classifier.warnings == {"seven_day": 0.75}
    seven_day = {"status": "allowed", "utilization": 0.7}
    allowed = {
        "status": "allowed",
        "rateLimitType": "five_hour",
        "unifiedWindows": {"seven_day": seven_day},
    }
    classifier.feed(json.dumps({"type": "rate_limit_event", "rate_limit_info": allowed}))
    assert classifier.warnings == {}


def test_wall_is_decided_by_the_event_even_if_the_stream_is_cut_before_the_result() -> None:
    lines = [line for line in lines_of("walled_five_hour_oauth") if '"type":"result"' not in line]
    assert classify(lines, exit_code=None, interrupted="SIGTERM").outcome is Outcome.WALLED


def test_wall_from_the_error_message_when_the_event_is_missing() -> None:
    lines = [line for line in lines_of("walled_five_hour_oauth") if "rate_limit_event" not in line]
    verdict = classify(lines, exit_code=1)
    assert verdict.outcome is Outcome.WALLED
    assert verdict.window == "five_hour"


@pytest.mark.parametrize("name", ["auth_failed_oauth_expired", "auth_failed_api_key"])
def test_the_first_authentication_retry_asks_to_stop(name: str) -> None:
    classifier = StreamClassifier()
    answers = [classifier.feed(line) for line in lines_of(name)]
    first_retry = next(i for i, line in enumerate(lines_of(name)) if "api_retry" in line)
    assert answers.index(True) == first_retry
    # What the runner sees after stopping the CLI there:
    verdict = classify(lines_of(name)[: first_retry + 1], exit_code=-15)
    assert verdict.outcome is Outcome.AUTH_FAILED
    assert "error_status=401 error=authentication_failed attempt=1" in verdict.evidence


@pytest.mark.parametrize(
    "name",
    [
        "server_error_recovered",
        "server_error_exhausted",
        "overloaded_exhausted",
        "bare_429_recovered",
        "bare_429_exhausted",
        "usage_429_api_key",
    ],
)
def test_retried_errors_never_wall_and_never_ask_to_stop(name: str) -> None:
    classifier = StreamClassifier()
    assert not any(classifier.feed(line) for line in lines_of(name))
    verdict = classifier.verdict(MANIFEST[name]["exitCode"])
    assert verdict.outcome is not Outcome.WALLED
    assert verdict.window is None and verdict.resets_at is None


def test_server_error_text_mentioning_rate_limit_is_still_a_failure() -> None:
    assert "rate limit" in "\n".join(lines_of("server_error_exhausted"))
    verdict = classify(lines_of("server_error_exhausted"), exit_code=1)
    assert verdict.outcome is Outcome.FAILED
    assert "500" in verdict.evidence


def test_rejected_event_without_reset_is_only_a_throttle() -> None:
    rejected = [e for e in events_of("bare_429_exhausted") if e["type"] == "rate_limit_event"]
    assert rejected and all("resetsAt" not in e["rate_limit_info"] for e in rejected)  # type: ignore[operator]
    assert classify(lines_of("bare_429_exhausted"), exit_code=1).outcome is Outcome.THROTTLED


def test_completed_run_reports_turns_cost_and_utilization() -> None:
    [result] = [e for e in events_of("completed_oauth") if e["type"] == "result"]
    verdict = classify(lines_of("completed_oauth"), exit_code=0)
    assert verdict.turns == result["num_turns"] == 1
    assert verdict.cost_usd == result["total_cost_usd"]
    assert set(verdict.utilization) == {"five_hour", "seven_day"}
    assert verdict.session_id == result["session_id"]


def test_completed_stream_without_its_result_line_is_a_failure() -> None:
    lines = [line for line in lines_of("completed_oauth") if '"type":"result"' not in line]
    verdict = classify(lines, exit_code=0)
    assert verdict.outcome is Outcome.FAILED
    assert "without a result" in verdict.detail


def test_stop_by_signal_before_any_result_is_a_failure_naming_the_signal() -> None:
    lines = lines_of("completed_oauth")[:1]  # only the init line
    verdict = classify(lines, exit_code=-15, interrupted="SIGTERM")
    assert verdict.outcome is Outcome.FAILED
    assert "SIGTERM" in verdict.detail


def test_missing_conversation_is_a_failure_with_the_cli_reason() -> None:
    verdict = classify(lines_of("resume_missing"), exit_code=1)
    assert verdict.outcome is Outcome.FAILED
    assert "error_during_execution" in verdict.detail


def test_utilization_is_clamped_and_window_names_are_checked() -> None:
    event = {
        "type": "rate_limit_event",
        "rate_limit_info": {
            "status": "allowed_warning",
            "rateLimitType": "five_hour",
            "utilization": 0.91,
            "unifiedWindows": {
                "seven_day": {"utilization": 1.7, "resetsAt": 1, "status": "rejected"},
                "monthly_credit": {"utilization": -0.2, "resetsAt": 1},
                "Bad Name!": {"utilization": 0.5, "resetsAt": 1},
                "seven_day_opus": {"utilization": "high"},
            },
        },
    }
    classifier = StreamClassifier()
    classifier.feed(json.dumps(event))
    assert classifier.utilization == {"seven_day": 1.0, "monthly_credit": 0.0, "five_hour": 0.91}
    assert classifier.wall is None  # allowed_warning is not a wall


def test_window_names_are_open_ended_data() -> None:
    event = {
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": 1795000000, "rateLimitType": "xyz_9"},
    }
    verdict = classify([json.dumps(event)], exit_code=1)
    assert (verdict.outcome, verdict.window) == (Outcome.WALLED, "xyz_9")


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (1795433267, "2026-11-23T11:27:47Z"),
        (0, None),
        (-5, None),
        (True, None),
        ("1795433267", None),
        (10**20, None),
        (float("nan"), None),
    ],
)
def test_rfc3339(epoch: object, expected: str | None) -> None:
    assert rfc3339(epoch) == expected


def test_line_splitter_joins_chunks_and_bounds_long_lines() -> None:
    splitter = LineSplitter(limit=8)
    out = splitter.feed(b'{"a"') + splitter.feed(b":1}\nxxxxxxxxxxxx") + splitter.feed(b"yy\nz")
    out += splitter.flush()
    assert out == [(b'{"a":1}', False), (b"xxxxxxxx", True), (b"z", False)]
    assert splitter.flush() == []


def _credit_info(name: str) -> dict[str, object]:
    [event] = [e for e in events_of(name) if e["type"] == "rate_limit_event"]
    info = event["rate_limit_info"]
    assert isinstance(info, dict)
    return info


def test_spent_credits_wall_on_the_credits_window_until_the_refresh_time() -> None:
    info = _credit_info("credits_spent_oauth")
    assert info["rateLimitType"] == "overage" and info["overageDisabledReason"] == "out_of_credits"

    verdict = classify(lines_of("credits_spent_oauth"), exit_code=1)

    assert verdict.window == CREDITS_WINDOW
    assert verdict.resets_at == rfc3339(info["overageResetsAt"])
    assert "out_of_credits" in verdict.detail and "out_of_credits" in verdict.evidence
    assert "You're out of usage credits" in verdict.evidence  # the CLI's own words follow


def test_spent_credits_without_a_refresh_time_still_wall_without_one() -> None:
    info = _credit_info("credits_spent_no_reset_oauth")
    assert "resetsAt" not in info and "overageResetsAt" not in info

    verdict = classify(lines_of("credits_spent_no_reset_oauth"), exit_code=1)

    assert (verdict.outcome, verdict.window, verdict.resets_at) == (
        Outcome.WALLED,
        CREDITS_WINDOW,
        None,
    )
    assert "no refresh time" in verdict.detail


def test_a_model_that_needs_credits_is_its_own_wall_naming_the_seat_reason() -> None:
    assert _credit_info("credits_model_required_oauth")["errorCode"] == "credits_required"

    verdict = classify(lines_of("credits_model_required_oauth"), exit_code=1)

    assert (verdict.window, verdict.resets_at) == (MODEL_CREDITS_WINDOW, None)
    assert "seat_tier_level_disabled" in verdict.detail
    assert "requires usage credits" in verdict.evidence


@pytest.mark.parametrize(
    "name", ["credits_spent_oauth", "credits_spent_no_reset_oauth", "credits_model_required_oauth"]
)
def test_credit_walls_survive_a_cut_stream_through_the_error_message(name: str) -> None:
    """Without the rate_limit_event the assistant message's api_error_params decide alike."""
    kept = [line for line in lines_of(name) if '"rate_limit_event"' not in line]
    assert classify(kept, exit_code=1).window == classify(lines_of(name), exit_code=1).window


@pytest.mark.parametrize(
    "name", ["credits_spent_oauth", "credits_spent_no_reset_oauth", "credits_model_required_oauth"]
)
def test_credit_walls_encode_and_parse_as_the_operator_reads_them(name: str) -> None:
    verdict = classify(lines_of(name), exit_code=1)
    message = TerminationMessage(
        Outcome.WALLED, window=verdict.window, resets_at=verdict.resets_at, detail=verdict.detail
    )
    read = parse(encode(message)).message
    assert read is not None and (read.window, read.resets_at) == (verdict.window, verdict.resets_at)


def test_a_plan_wall_without_a_reset_is_still_refused_by_the_contract() -> None:
    with pytest.raises(ValueError, match="resetsAt"):
        encode(TerminationMessage(Outcome.WALLED, window="five_hour"))
    with pytest.raises(ValueError, match="window"):
        encode(TerminationMessage(Outcome.WALLED))


def test_a_plan_window_claim_with_credits_off_stays_a_plan_wall() -> None:
    """ "You've hit your 5-hour limit" with overage disabled: the five_hour reset frees it."""
    info = {
        "status": "rejected",
        "resetsAt": 1795430453,
        "rateLimitType": "five_hour",
        "overageStatus": "rejected",
        "overageDisabledReason": "out_of_credits",
    }
    verdict = classify([json.dumps({"type": "rate_limit_event", "rate_limit_info": info})])
    assert (verdict.window, verdict.resets_at) == ("five_hour", rfc3339(1795430453))


@pytest.mark.parametrize(
    "info",
    [
        {"status": "rejected", "rateLimitType": "overage", "overageStatus": "allowed",
         "overageDisabledReason": "out_of_credits"},
        {"status": "rejected", "rateLimitType": "overage", "overageStatus": "rejected"},
        {"status": "allowed", "overageStatus": "rejected", "overageDisabledReason": "x",
         "errorCode": "credits_required"},
        {"status": "rejected", "overageStatus": "rejected", "overageDisabledReason": "BAD NAME"},
        {"status": "rejected", "rateLimitType": "overage", "overageStatus": "rejected",
         "overageDisabledReason": "fetch_error"},
    ],
)  # fmt: skip
def test_half_a_credit_signal_is_no_credit_wall(info: dict[str, object]) -> None:
    line = json.dumps({"type": "rate_limit_event", "rate_limit_info": info})
    result = json.dumps({"type": "result", "subtype": "success", "is_error": True,
                         "api_error_status": 429, "result": "limited"})  # fmt: skip
    verdict = classify([line, result], exit_code=1)
    assert verdict.outcome is Outcome.THROTTLED and verdict.window is None


def test_credits_required_for_a_model_the_cli_does_not_list_is_still_model_credits() -> None:
    """The CLI's text then reads like a spent credit ("Your seat type doesn't include usage
    credits") and its error message drops errorCode; the event keeps it, and decides."""
    name = "credits_seat_required_oauth"
    [message] = [e for e in events_of(name) if e["type"] == "assistant"]
    params = message["api_error_params"]
    assert isinstance(params, dict) and "errorCode" not in params["rate_limit_info"]

    verdict = classify(lines_of(name), exit_code=1)

    assert (verdict.window, verdict.resets_at) == (MODEL_CREDITS_WINDOW, None)
    assert "Your seat type doesn't include usage credits" in verdict.evidence
    cut = [line for line in lines_of(name) if '"rate_limit_event"' not in line]
    assert classify(cut, exit_code=1).window == CREDITS_WINDOW  # the cautious reading


def test_an_api_keys_spent_balance_walls_on_credits_without_a_reset() -> None:
    name = "credits_balance_too_low_api_key"
    assert not [e for e in events_of(name) if e["type"] == "rate_limit_event"]

    verdict = classify(lines_of(name), exit_code=1)

    assert (verdict.window, verdict.resets_at) == (CREDITS_WINDOW, None)
    assert verdict.evidence.startswith("assistant error=billing_error api_error_status=400")
    assert "Credit balance is too low" in verdict.evidence


def test_the_balance_result_alone_is_a_plain_failure() -> None:
    """Only the CLI's own error kind decides, never the words of a result."""
    kept = [
        line for line in lines_of("credits_balance_too_low_api_key") if '"assistant"' not in line
    ]
    assert classify(kept, exit_code=1).outcome is Outcome.FAILED


REASONS = ["out_of_credits", "org_level_disabled", "org_level_disabled_until",
           "seat_tier_level_disabled", "seat_tier_zero_credit_limit", "member_level_disabled",
           "member_zero_credit_limit", "group_zero_credit_limit", "org_service_level_disabled",
           "overage_not_provisioned", "unknown"]  # fmt: skip
PLAN_CLAIMS = ["five_hour", "seven_day", "seven_day_opus", "seven_day_sonnet",
               "seven_day_overage_included"]  # fmt: skip


@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize("claim", [None, "overage", *PLAN_CLAIMS])
@pytest.mark.parametrize("required", [False, True])
def test_credit_wall_table(reason: str, claim: str | None, required: bool) -> None:
    info: dict[str, object] = {"status": "rejected", "overageStatus": "rejected",
                               "overageDisabledReason": reason}  # fmt: skip
    if claim is not None:
        info["rateLimitType"] = claim
    if required:
        info["errorCode"] = "credits_required"
    wall = credit_wall(info)
    if required:
        assert wall is not None and wall.window == MODEL_CREDITS_WINDOW
    elif claim in PLAN_CLAIMS:
        assert wall is None  # the plan window's own wall decides
    else:
        assert wall is not None and wall.window == CREDITS_WINDOW
    if wall is not None:
        assert wall.reason == reason and wall.resets_at is None
        assert f"reason={reason}" in wall.evidence


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"overageResetsAt": 1797872073, "resetsAt": 1795430453}, 1797872073),
        ({"resetsAt": 1795430453}, 1795430453),
        ({"overageResetsAt": 1797872073}, 1797872073),
        ({"overageResetsAt": "soon", "resetsAt": True}, None),
        ({"overageResetsAt": -5}, None),
    ],
)
def test_credit_wall_refresh_time_prefers_the_credit_lanes_own(
    times: dict[str, object], expected: int | None
) -> None:
    base = {"status": "rejected", "overageStatus": "rejected",
            "overageDisabledReason": "out_of_credits", "rateLimitType": "overage"}  # fmt: skip
    info = {**base, **times}
    wall = credit_wall(info)
    assert wall is not None
    assert wall.resets_at == (rfc3339(expected) if expected else None)
