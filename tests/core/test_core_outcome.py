"""Classification of a finished agent container into the attempt's outcome.

The rule that matters most: anything not read with certainty is `failed`, never `walled`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from headroom.contract.termination import EXIT_CODES, MAX_BYTES, Outcome, parse
from headroom.core.outcome import AttemptEnd, ContainerExit, classify, classify_staging

SID = "6f1c2a3b-1111-4222-8333-444455556666"
RESET = "2026-11-23T14:00:00Z"
RESET_AT = datetime(2026, 11, 23, 14, 0, 0, tzinfo=UTC)
FAST = settings(max_examples=100, deadline=None, database=None)


def message(outcome: str, **fields: Any) -> str:
    doc: dict[str, Any] = {"version": 1, "outcome": outcome}
    if outcome == "walled":
        doc.update(window="five_hour", resetsAt=RESET)
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not None}, ensure_ascii=False)


WALLED = message("walled", evidence="You've hit your 5-hour limit")


def oversized() -> str:
    """A valid walled message of exactly MAX_BYTES bytes: the kubelet would have cut it."""
    base = message("walled", detail="")
    pad = MAX_BYTES - len(base.encode())
    text = message("walled", detail="𝄞" * (pad // 4) + "x" * (pad % 4))
    assert len(text.encode()) == MAX_BYTES
    return text


def just_fits() -> str:
    base = message("walled", detail="")
    pad = MAX_BYTES - 1 - len(base.encode())
    text = message("walled", detail="𝄞" * (pad // 4) + "x" * (pad % 4))
    assert len(text.encode()) == MAX_BYTES - 1
    return text


# --- everything uncertain is `failed` -----------------------------------------------------

FAILED: list[tuple[str, ContainerExit | None, tuple[str, ...]]] = [
    ("pod-gone", None, ("disappeared",)),
    ("no-message", ContainerExit(1, "Error", None), ("no termination message", "exit code 1")),
    ("no-message-exit-75", ContainerExit(75, "Error", None), ("no termination message",)),
    ("empty-message", ContainerExit(75, "Error", ""), ("no termination message",)),
    ("blank-message", ContainerExit(75, "Error", " \n\t "), ("no termination message",)),
    ("oom-killed-no-message", ContainerExit(137, "OOMKilled", None), ("OOMKilled", "137")),
    ("unknown-exit-code", ContainerExit(None, "", None), ("exit code None",)),
    ("oversized-walled", ContainerExit(75, "Error", oversized()), ("4096 bytes",)),
    (
        "cli-text-not-json",
        ContainerExit(75, "Error", "You've hit your 5-hour limit"),
        ("not JSON",),
    ),
    ("truncated-json", ContainerExit(75, "Error", WALLED[: len(WALLED) // 2]), ("not JSON",)),
    ("json-null", ContainerExit(75, "Error", "null"), ("schema",)),
    ("json-array", ContainerExit(75, "Error", f"[{WALLED}]"), ("schema",)),
    ("json-string", ContainerExit(75, "Error", json.dumps(WALLED)), ("schema",)),
    ("json-number", ContainerExit(75, "Error", "75"), ("schema",)),
    ("two-objects", ContainerExit(75, "Error", WALLED + WALLED), ("not JSON",)),
    ("version-2", ContainerExit(75, "Error", message("walled", version=2)), ("schema",)),
    ("version-as-string", ContainerExit(75, "Error", message("walled", version="1")), ("schema",)),
    (
        "version-missing",
        ContainerExit(75, "Error", json.dumps({"outcome": "completed"})),
        ("schema",),
    ),
    ("outcome-missing", ContainerExit(0, "Completed", json.dumps({"version": 1})), ("schema",)),
    ("outcome-capitalised", ContainerExit(75, "Error", message("Walled")), ("schema",)),
    ("outcome-unknown", ContainerExit(75, "Error", message("rate_limited")), ("schema",)),
    ("extra-field", ContainerExit(75, "Error", message("walled", pattern="x")), ("schema",)),
    (
        "walled-without-resets-at",
        ContainerExit(
            75, "Error", json.dumps({"version": 1, "outcome": "walled", "window": "five_hour"})
        ),
        ("schema",),
    ),
    (
        "walled-without-window",
        ContainerExit(
            75, "Error", json.dumps({"version": 1, "outcome": "walled", "resetsAt": RESET})
        ),
        ("schema",),
    ),
    (
        "resets-at-words",
        ContainerExit(75, "Error", message("walled", resetsAt="in 2 hours")),
        ("schema",),
    ),
    (
        "resets-at-epoch",
        ContainerExit(75, "Error", message("walled", resetsAt=1795442400)),
        ("schema",),
    ),
    (
        "resets-at-no-zone",
        ContainerExit(75, "Error", message("walled", resetsAt="2026-11-23T14:00:00")),
        ("schema",),
    ),
    (
        "resets-at-impossible-date",
        ContainerExit(75, "Error", message("walled", resetsAt="2026-02-30T00:00:00Z")),
        (),
    ),
    (
        "window-uppercase",
        ContainerExit(75, "Error", message("walled", window="FIVE_HOUR")),
        ("schema",),
    ),
    (
        "utilization-over-one",
        ContainerExit(75, "Error", message("walled", utilization={"five_hour": 1.5})),
        ("schema",),
    ),
    (
        "utilization-not-number",
        ContainerExit(75, "Error", message("walled", utilization={"five_hour": "99%"})),
        ("schema",),
    ),
    (
        "evidence-too-long",
        ContainerExit(75, "Error", message("walled", evidence="x" * 121)),
        ("schema",),
    ),
    (
        "session-id-not-uuid",
        ContainerExit(75, "Error", message("walled", sessionId="abc")),
        ("schema",),
    ),
    ("turns-negative", ContainerExit(0, "Completed", message("completed", turns=-1)), ("schema",)),
    (
        "cost-negative",
        ContainerExit(0, "Completed", message("completed", costUSD=-0.1)),
        ("schema",),
    ),
    (
        "transcript-as-string",
        ContainerExit(0, "Completed", message("completed", transcript="yes")),
        ("schema",),
    ),
    # A message that reads well but disagrees with the exit code is not trusted.
    ("walled-exit-1", ContainerExit(1, "Error", WALLED), ("walled but exited with 1",)),
    ("walled-exit-0", ContainerExit(0, "Completed", WALLED), ("exited with 0",)),
    ("walled-oom-killed", ContainerExit(137, "OOMKilled", WALLED), ("137 (OOMKilled)",)),
    ("walled-exit-77", ContainerExit(77, "Error", WALLED), ("exited with 77",)),
    ("walled-exit-69", ContainerExit(69, "Error", WALLED), ("exited with 69",)),
    ("walled-exit-negative", ContainerExit(-1, "Error", WALLED), ("exited with -1",)),
    (
        "completed-exit-1",
        ContainerExit(1, "Error", message("completed")),
        ("completed but exited with 1",),
    ),
    ("completed-oom-killed", ContainerExit(137, "OOMKilled", message("completed")), ("OOMKilled",)),
    (
        "auth-failed-exit-75",
        ContainerExit(75, "Error", message("auth_failed")),
        ("exited with 75",),
    ),
    ("throttled-exit-75", ContainerExit(75, "Error", message("throttled")), ("exited with 75",)),
    ("throttled-exit-1", ContainerExit(1, "Error", message("throttled")), ("exited with 1",)),
    ("failed-exit-0", ContainerExit(0, "Completed", message("failed")), ("exited with 0",)),
]


@pytest.mark.parametrize(
    ("container", "says"), [pytest.param(*row[1:], id=row[0]) for row in FAILED]
)
def test_uncertain_ends_are_failed_never_walled(
    container: ContainerExit | None, says: tuple[str, ...]
) -> None:
    end = classify(container)
    assert end.outcome is Outcome.FAILED
    assert end.resets_at is None
    assert end.detail
    for fragment in says:
        assert fragment in end.detail


OOM_KILLED_ENDS = [
    ("runner-killed", ContainerExit(137, "OOMKilled", None)),
    ("cli-killed-runner-reported", ContainerExit(1, "OOMKilled", message("failed"))),
    ("walled-report-untrusted", ContainerExit(137, "OOMKilled", WALLED)),
]


@pytest.mark.parametrize("container", [pytest.param(c, id=i) for i, c in OOM_KILLED_ENDS])
def test_a_failure_in_an_oom_killed_container_names_the_memory_limit(
    container: ContainerExit,
) -> None:
    end = classify(container)
    assert (end.outcome, end.cause) == (Outcome.FAILED, "OOMKilled")
    assert end.detail.startswith("out of memory: ") and end.resets_at is None


def test_what_the_runner_reported_in_an_oom_killed_container_stands_when_it_agrees() -> None:
    """A tool the kernel killed while the run went on to complete (or to meet a wall the API
    reported) leaves the runner's own report, whose exit code agrees, as it is."""
    completed = classify(ContainerExit(0, "OOMKilled", message("completed")))
    assert (completed.outcome, completed.cause) == (Outcome.COMPLETED, None)
    walled = classify(ContainerExit(75, "OOMKilled", WALLED))
    assert (walled.outcome, walled.cause) == (Outcome.WALLED, None)


def test_a_failure_without_oom_has_no_cause() -> None:
    assert classify(ContainerExit(1, "Error", message("failed"))).cause is None


def test_untrusted_report_keeps_evidence_and_transcript() -> None:
    text = message("walled", evidence="limit text", transcript=True)
    end = classify(ContainerExit(1, "Error", text))
    assert (end.outcome, end.evidence, end.transcript, end.window) == (
        Outcome.FAILED,
        "limit text",
        True,
        None,
    )


def test_message_just_under_the_limit_is_read() -> None:
    assert classify(ContainerExit(75, "Error", just_fits())).outcome is Outcome.WALLED


def test_walled_message_without_an_exit_code_is_not_trusted() -> None:
    assert classify(ContainerExit(None, "", WALLED)).outcome is Outcome.FAILED


# --- each valid outcome, parsed fully --------------------------------------------------------

VALID: list[tuple[str, ContainerExit, AttemptEnd]] = [
    (
        "completed",
        ContainerExit(
            0,
            "Completed",
            message(
                "completed",
                sessionId=SID,
                turns=41,
                costUSD=3.2,
                transcript=True,
                utilization={"five_hour": 0.42, "seven_day": 0.1},
                detail="the run finished",
            ),
        ),
        AttemptEnd(
            Outcome.COMPLETED,
            detail="the run finished",
            utilization={"five_hour": 0.42, "seven_day": 0.1},
            transcript=True,
            turns=41,
            cost_usd=3.2,
        ),
    ),
    (
        "completed-minimal",
        ContainerExit(0, "Completed", message("completed")),
        AttemptEnd(Outcome.COMPLETED),
    ),
    (
        "walled",
        ContainerExit(
            75,
            "Error",
            message(
                "walled",
                evidence="You've hit your 5-hour limit · resets 2pm (UTC)",
                utilization={"five_hour": 1.0},
                transcript=True,
                turns=7,
            ),
        ),
        AttemptEnd(
            Outcome.WALLED,
            evidence="You've hit your 5-hour limit · resets 2pm (UTC)",
            window="five_hour",
            resets_at=RESET_AT,
            utilization={"five_hour": 1.0},
            transcript=True,
            turns=7,
        ),
    ),
    (
        "walled-open-ended-window-and-offset",
        ContainerExit(
            75,
            "Error",
            message("walled", window="monthly_credit", resetsAt="2026-11-23T16:00:00.250+02:00"),
        ),
        AttemptEnd(
            Outcome.WALLED,
            window="monthly_credit",
            resets_at=datetime(2026, 11, 23, 16, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2))),
        ),
    ),
    (
        "auth-failed",
        ContainerExit(77, "Error", message("auth_failed", evidence="401 authentication_failed")),
        AttemptEnd(Outcome.AUTH_FAILED, evidence="401 authentication_failed"),
    ),
    (
        "throttled",
        ContainerExit(
            69, "Error", message("throttled", evidence="429 rate_limit", transcript=False)
        ),
        AttemptEnd(Outcome.THROTTLED, evidence="429 rate_limit", transcript=False),
    ),
    (
        "failed",
        ContainerExit(
            1, "Error", message("failed", detail="resume found no conversation", transcript=False)
        ),
        AttemptEnd(Outcome.FAILED, detail="resume found no conversation", transcript=False),
    ),
    (
        "surrounding-whitespace-is-fine",
        ContainerExit(0, "Completed", "\n  " + message("completed", turns=0) + "\n"),
        AttemptEnd(Outcome.COMPLETED, turns=0),
    ),
]


@pytest.mark.parametrize(
    ("container", "expected"), [pytest.param(*row[1:], id=row[0]) for row in VALID]
)
def test_valid_outcomes_are_read_fully(container: ContainerExit, expected: AttemptEnd) -> None:
    end = classify(container)
    assert end == expected
    assert end.utilization == expected.utilization  # excluded from ==, so compared here
    if end.resets_at is not None:
        assert end.resets_at.tzinfo is not None
        assert end.resets_at == expected.resets_at


def test_walled_reset_is_the_same_instant_in_any_offset() -> None:
    utc = classify(ContainerExit(75, "Error", message("walled", resetsAt="2026-11-23T14:00:00Z")))
    east = classify(
        ContainerExit(75, "Error", message("walled", resetsAt="2026-11-23T16:00:00+02:00"))
    )
    assert utc.resets_at == east.resets_at == RESET_AT


# --- fuzz: never raises; walled only from a valid message with exit code 75 ------------------

EXITS = st.one_of(
    st.sampled_from([*EXIT_CODES.values(), 2, 124, 126, 127, 137, 139, 143, 255]),
    st.integers(-(2**31), 2**31 - 1),
)
REASONS = st.sampled_from(["", "Error", "Completed", "OOMKilled", "ContainerCannotRun", "Weird"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
TIMESTAMPS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
# Shaped like the real thing, then sometimes broken in one place: reaches walled often.
WELL_FORMED = st.fixed_dictionaries(
    {"version": st.just(1), "outcome": st.sampled_from([o.value for o in Outcome])},
    optional={
        "window": st.sampled_from(["five_hour", "seven_day", "monthly_credit"]),
        "resetsAt": TIMESTAMPS,
        "sessionId": st.just(SID),
        "utilization": st.dictionaries(
            st.sampled_from(["five_hour", "seven_day"]), st.floats(0, 1), max_size=2
        ),
        "evidence": st.text(max_size=120),
        "detail": st.text(max_size=50),
        "transcript": st.booleans(),
        "turns": st.integers(0, 500),
        "costUSD": st.floats(0, 100),
    },
)
BREAKAGES: list[tuple[str, object]] = [
    ("version", 2),
    ("version", "1"),
    ("outcome", "Walled"),
    ("window", "Five Hour"),
    ("resetsAt", "soon"),
    ("resetsAt", 1795442400),
    ("resetsAt", "2026-02-30T00:00:00Z"),
    ("sessionId", "nope"),
    ("utilization", {"five_hour": 1.5}),
    ("evidence", "x" * 121),
    ("transcript", "yes"),
    ("turns", -1),
    ("costUSD", -1),
    ("extra", 1),
]
NEAR_MISS = st.builds(
    lambda doc, breakage: {**doc, **dict([breakage])} if breakage else doc,
    st.one_of(
        WELL_FORMED,
        st.builds(
            lambda doc, window, resets: {
                **doc,
                "outcome": "walled",
                "window": window,
                "resetsAt": resets,
            },
            WELL_FORMED,
            st.sampled_from(["five_hour", "seven_day"]),
            TIMESTAMPS,
        ),
    ),
    st.one_of(st.none(), st.sampled_from(BREAKAGES)),
)


def _check(container: ContainerExit) -> AttemptEnd:
    end = classify(container)
    event(f"outcome: {end.outcome.value}")
    parsed = parse(container.message).message
    if end.outcome is not Outcome.FAILED:
        assert parsed is not None and parsed.outcome is end.outcome
        assert container.exit_code == EXIT_CODES[end.outcome]
    if end.outcome is Outcome.WALLED:
        assert container.exit_code == 75
        assert end.resets_at is not None and end.window
    return end


@FAST
@given(text=st.text(max_size=300), code=EXITS, reason=REASONS)
def test_fuzz_random_text(text: str, code: int, reason: str) -> None:
    """Whatever a pod leaves behind: an unreadable message is `failed` and says why."""
    end = _check(ContainerExit(code, reason, text))
    if parse(text).message is None:
        assert end.outcome is Outcome.FAILED
        assert end.detail and f"exit code {code}" in end.detail, end


@FAST
@given(doc=JSON, code=EXITS, reason=REASONS)
def test_fuzz_random_json(doc: object, code: int, reason: str) -> None:
    """JSON that is not a termination message is `failed`, naming the problem; one that is
    (rarely generated) must agree with its exit code to count."""
    text = json.dumps(doc)
    end = _check(ContainerExit(code, reason, text))
    parsed = parse(text)
    if parsed.message is None:
        assert end.outcome is Outcome.FAILED
        assert parsed.problem and parsed.problem in end.detail, (parsed.problem, end.detail)


@FAST
@given(doc=NEAR_MISS, code=EXITS, reason=REASONS, matching=st.sampled_from([True, True, False]))
def test_fuzz_near_miss_messages(
    doc: dict[str, Any], code: int, reason: str, matching: bool
) -> None:
    if matching and doc["outcome"] in EXIT_CODES:
        code = EXIT_CODES[Outcome(doc["outcome"])]
    end = _check(ContainerExit(code, reason, json.dumps(doc)))
    # Completeness: a message the schema accepts, with its own exit code and a real calendar
    # date, is taken at its word. (An impossible date such as Feb 30 passes the schema's
    # pattern; classify calls that message unreadable, as tested above.)
    readable = parse(json.dumps(doc)).message is not None
    real_date = doc.get("resetsAt") != "2026-02-30T00:00:00Z"
    if matching and readable and real_date:
        assert end.outcome is Outcome(doc["outcome"])


def test_a_failed_credential_staging_is_failed_and_names_the_container() -> None:
    end = classify_staging(ContainerExit(1, "Error", None))
    assert end.outcome is Outcome.FAILED and end.resets_at is None
    assert "credential init container exited 1 (Error)" in end.detail
