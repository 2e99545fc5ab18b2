"""The termination message: the one JSON object an agent pod leaves behind."""

from __future__ import annotations

import json
import types
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.contract import termination
from headroom.contract.termination import (
    EXIT_CODES,
    FORMAT_VERSION,
    MAX_BYTES,
    Outcome,
    TerminationMessage,
    encode,
    parse,
    schema_errors,
)

SID = "6f1c2a3b-1111-4222-8333-444455556666"
RESET = "2026-11-23T14:00:00Z"
FAST = settings(max_examples=100, deadline=None, database=None)
CLEF = "𝄞"  # 4 bytes in UTF-8: the worst case for the byte limit


def test_exit_codes_match_the_brief() -> None:
    assert EXIT_CODES == {
        Outcome.COMPLETED: 0,
        Outcome.WALLED: 75,
        Outcome.AUTH_FAILED: 77,
        Outcome.THROTTLED: 69,
        Outcome.FAILED: 1,
    }
    assert FORMAT_VERSION == 1
    assert MAX_BYTES == 4096


def test_to_json_omits_empty_fields_but_keeps_false_and_zero() -> None:
    doc = TerminationMessage(Outcome.COMPLETED, transcript=False, turns=0, cost_usd=0.0).to_json()
    assert doc == {
        "version": 1,
        "outcome": "completed",
        "transcript": False,
        "turns": 0,
        "costUSD": 0.0,
    }


def test_to_json_uses_the_contract_field_names() -> None:
    message = TerminationMessage(
        Outcome.WALLED,
        session_id=SID,
        window="five_hour",
        resets_at=RESET,
        utilization={"five_hour": 1.0},
        evidence="limit",
        detail="walled",
        transcript=True,
        turns=3,
        cost_usd=0.25,
    )
    assert set(message.to_json()) == {
        "version",
        "outcome",
        "sessionId",
        "window",
        "resetsAt",
        "utilization",
        "evidence",
        "detail",
        "transcript",
        "turns",
        "costUSD",
    }


# --- encode -----------------------------------------------------------------------------------

WINDOWS = st.from_regex(r"\A[a-z0-9_]{1,63}\Z")
TIMESTAMPS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))


@st.composite
def messages(draw: st.DrawFn) -> TerminationMessage:
    outcome = draw(st.sampled_from(list(Outcome)))
    walled = outcome is Outcome.WALLED
    return TerminationMessage(
        outcome=outcome,
        session_id=draw(st.one_of(st.none(), st.uuids().map(str))),
        window=draw(WINDOWS) if walled else draw(st.one_of(st.none(), WINDOWS)),
        resets_at=draw(TIMESTAMPS) if walled else draw(st.one_of(st.none(), TIMESTAMPS)),
        utilization=draw(st.dictionaries(WINDOWS, st.floats(0, 1), max_size=16)),
        evidence=draw(st.text(max_size=120)),
        detail=draw(st.text(max_size=1024)),
        transcript=draw(st.one_of(st.none(), st.booleans())),
        turns=draw(st.one_of(st.none(), st.integers(0, 10**6))),
        cost_usd=draw(st.one_of(st.none(), st.floats(0, 1e6))),
    )


@FAST
@given(message=messages())
def test_encode_round_trips_through_parse(message: TerminationMessage) -> None:
    text = encode(message)
    assert len(text.encode("utf-8")) < MAX_BYTES
    assert schema_errors(json.loads(text)) == []
    parsed = parse(text).message
    assert parsed is not None
    if parsed.detail != message.detail:  # shrunk to fit: a shorter prefix, marked as cut
        assert parsed.detail.endswith("…")
        assert message.detail.startswith(parsed.detail[:-1])
    assert parsed == replace(message, detail=parsed.detail)


def test_encode_shrinks_a_long_detail_under_the_limit() -> None:
    message = TerminationMessage(
        Outcome.WALLED,
        session_id=SID,
        window="w" * 63,
        resets_at=RESET,
        utilization={f"{i:02d}" + "u" * 61: 0.123456789012345 for i in range(16)},
        evidence=CLEF * 120,
        detail=CLEF * 1024,
    )
    text = encode(message)
    assert len(text.encode("utf-8")) < MAX_BYTES
    parsed = parse(text).message
    assert parsed is not None
    assert parsed.detail.endswith("…")
    assert 0 < len(parsed.detail) < 1024
    assert parsed.evidence == CLEF * 120  # only the detail is cut
    assert parsed.utilization == message.utilization


def test_encode_leaves_a_detail_that_fits_alone() -> None:
    message = TerminationMessage(Outcome.FAILED, detail="x" * 1024)
    assert parse(encode(message)).message == message


def _invalid(**fields: Any) -> TerminationMessage:
    base: dict[str, Any] = {"outcome": Outcome.WALLED, "window": "five_hour", "resets_at": RESET}
    base.update(fields)
    return TerminationMessage(**base)


INVALID = [
    ("walled-without-window", _invalid(window=None), "window"),
    ("walled-without-reset", _invalid(resets_at=None), "resetsAt"),
    ("window-with-capitals", _invalid(window="Five_Hour"), "window"),
    ("window-too-long", _invalid(window="w" * 64), "window"),
    ("reset-not-rfc3339", _invalid(resets_at="tomorrow 2pm"), "resetsAt"),
    ("reset-without-zone", _invalid(resets_at="2026-11-23T14:00:00"), "resetsAt"),
    ("session-id-not-uuid", _invalid(session_id="session-1"), "sessionId"),
    ("session-id-uppercase", _invalid(session_id=SID.upper()), "sessionId"),
    ("utilization-above-one", _invalid(utilization={"five_hour": 1.01}), "utilization"),
    ("utilization-negative", _invalid(utilization={"five_hour": -0.1}), "utilization"),
    ("utilization-bad-name", _invalid(utilization={"Five Hour": 0.5}), "utilization"),
    (
        "utilization-too-many",
        _invalid(utilization={f"w{i}": 0.1 for i in range(17)}),
        "utilization",
    ),
    ("evidence-over-120", _invalid(evidence="e" * 121), "evidence"),
    ("detail-over-1024", _invalid(detail="d" * 1025), "detail"),
    ("turns-negative", _invalid(turns=-1), "turns"),
    ("cost-negative", _invalid(cost_usd=-0.01), "costUSD"),
]


@pytest.mark.parametrize(
    ("message", "field"), [pytest.param(*row[1:], id=row[0]) for row in INVALID]
)
def test_encode_rejects_invalid_messages(message: TerminationMessage, field: str) -> None:
    with pytest.raises(ValueError, match="invalid termination message") as caught:
        encode(message)
    assert field in str(caught.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"utilization": {"five_hour": float("nan")}},
        {"cost_usd": float("nan")},
        {"cost_usd": float("inf")},
    ],
    ids=["nan-utilization", "nan-cost", "infinite-cost"],
)
def test_encode_rejects_non_finite_numbers(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        encode(TerminationMessage(Outcome.COMPLETED, **fields))


@pytest.mark.parametrize("with_detail", [True, False], ids=["with-detail", "without-detail"])
def test_encode_never_returns_an_oversized_message_nor_hangs(
    with_detail: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    def counted_dumps(*args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls > 100:
            raise RuntimeError("encode is looping without end")
        return json.dumps(*args, **kwargs)

    monkeypatch.setattr(termination, "json", types.SimpleNamespace(dumps=counted_dumps))
    message = _invalid(
        resets_at="2026-11-23T14:00:00." + "0" * 4100 + "Z", detail="x" if with_detail else ""
    )
    try:
        text = encode(message)
    except ValueError:
        return  # refusing is fine
    assert len(text.encode("utf-8")) < MAX_BYTES


# --- parse ------------------------------------------------------------------------------------


def _sized(size: int) -> str:
    """A valid message of exactly `size` bytes."""
    base = json.dumps({"version": 1, "outcome": "failed", "detail": ""})
    pad = size - len(base.encode())
    text = json.dumps(
        {"version": 1, "outcome": "failed", "detail": CLEF * (pad // 4) + "x" * (pad % 4)},
        ensure_ascii=False,
    )
    assert len(text.encode()) == size
    return text


PROBLEMS = [
    ("none", None, "no termination message"),
    ("empty", "", "no termination message"),
    ("whitespace", " \n ", "no termination message"),
    ("at-the-byte-limit", _sized(MAX_BYTES), "4096 bytes or more"),
    ("far-over-the-limit", "x" * 100_000, "4096 bytes or more"),
    ("plain-text", "walled", "not JSON"),
    ("truncated", '{"version": 1, "outcome": "wal', "not JSON"),
    ("deeply-nested", "[" * 1500 + "]" * 1500, "not"),
    ("array", "[]", "schema"),
    ("wrong-version", '{"version": 2, "outcome": "completed"}', "version"),
    ("unknown-outcome", '{"version": 1, "outcome": "paused"}', "outcome"),
    ("extra-field", '{"version": 1, "outcome": "completed", "x": 1}', "schema"),
    ("walled-bare", '{"version": 1, "outcome": "walled"}', "schema"),
]


@pytest.mark.parametrize(
    ("text", "problem"), [pytest.param(*row[1:], id=row[0]) for row in PROBLEMS]
)
def test_parse_reports_a_readable_problem(text: str | None, problem: str) -> None:
    result = parse(text)
    assert result.message is None
    assert problem in result.problem
    assert len(result.problem) < 300


def test_parse_accepts_a_message_just_under_the_limit() -> None:
    result = parse(_sized(MAX_BYTES - 1))
    assert result.message is not None
    assert result.problem == ""


@pytest.mark.parametrize(
    "text",
    [
        '{"version": 1, "outcome": "completed", "costUSD": NaN}',
        '{"version": 1, "outcome": "completed", "costUSD": Infinity}',
        '{"version": 1, "outcome": "completed", "costUSD": 1e400}',
        '{"version": 1, "outcome": "completed", "utilization": {"five_hour": NaN}}',
    ],
    ids=["nan-cost", "infinite-cost", "overflowing-cost", "nan-utilization"],
)
def test_parse_rejects_non_finite_numbers(text: str) -> None:
    assert parse(text).message is None


@FAST
@given(
    text=st.one_of(
        st.text(max_size=500), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
    )
)
def test_parse_never_raises(text: str) -> None:
    result = parse(text)
    assert (result.message is None) is bool(result.problem)


def test_schema_errors_name_the_path() -> None:
    errors = schema_errors({"version": 1, "outcome": "completed", "utilization": {"five_hour": 2}})
    assert len(errors) == 1
    assert errors[0].startswith("utilization.five_hour: ")
    assert schema_errors({"version": 1, "outcome": "completed"}) == []
    assert schema_errors([])[0].startswith("<root>: ")
