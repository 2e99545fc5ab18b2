"""The termination message at its limits: any valid message encodes in fewer than 4096 bytes,
quickly, and reads back; nothing that is not finite JSON is ever written or read."""

from __future__ import annotations

import json
import math
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from headroom.contract import termination
from headroom.contract.termination import (
    MAX_BYTES,
    Outcome,
    TerminationMessage,
    encode,
    parse,
    schema_errors,
)
from headroom.core.durations import parse_time

FAST = settings(max_examples=150, deadline=None, database=None)
WINDOWS = st.from_regex(r"\A[a-z0-9_]{1,63}\Z")


# Worst cases for the byte count: 4-byte characters and control characters JSON escapes as
# \u00XX (6 bytes for one character).
def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=max_size),
        st.text(st.sampled_from(["𝄞", "\x01", '"', "\\", "é", "x"]), max_size=max_size),
    )


@st.composite
def resets(draw: st.DrawFn) -> str:
    """RFC 3339 as the schema's pattern allows it: any number of fraction digits, any offset."""
    base = draw(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
    ).strftime("%Y-%m-%dT%H:%M:%S")
    digits = draw(st.one_of(st.none(), st.integers(1, 9), st.integers(10, 6000)))
    fraction = "" if digits is None else "." + draw(st.sampled_from("0123456789")) * digits
    zone = draw(st.sampled_from(["Z", "+00:00", "+02:00", "-05:30"]))
    return base + fraction + zone


@st.composite
def any_message(draw: st.DrawFn) -> TerminationMessage:
    """Every message the schema accepts, the pathological ones included."""
    outcome = draw(st.sampled_from(list(Outcome)))
    walled = outcome is Outcome.WALLED
    return TerminationMessage(
        outcome=outcome,
        session_id=draw(st.one_of(st.none(), st.uuids().map(str))),
        window=draw(WINDOWS) if walled else draw(st.one_of(st.none(), WINDOWS)),
        resets_at=draw(resets()) if walled else draw(st.one_of(st.none(), resets())),
        utilization=draw(
            st.dictionaries(WINDOWS, st.floats(0, 1, allow_subnormal=True), max_size=16)
        ),
        warnings=draw(st.dictionaries(WINDOWS, st.floats(0, 1, allow_subnormal=True), max_size=16)),
        evidence=draw(_text(120)),
        detail=draw(_text(1024)),
        transcript=draw(st.one_of(st.none(), st.booleans())),
        turns=draw(
            st.one_of(st.none(), st.integers(0, 10**6), st.integers(0, 10**5000), st.just(2**63))
        ),
        cost_usd=draw(st.one_of(st.none(), st.floats(0, 1.7e308))),
    )


@contextmanager
def counted_encodings(limit: int) -> Iterator[list[int]]:
    """Fail if encode serializes more than `limit` times: proof it cannot loop."""
    calls = [0]

    def dumps(*args: Any, **kwargs: Any) -> str:
        calls[0] += 1
        if calls[0] > limit:
            raise AssertionError(f"encode serialized more than {limit} times")
        return json.dumps(*args, **kwargs)

    with mock.patch.object(termination, "json", types.SimpleNamespace(dumps=dumps)):
        yield calls


def _plain_size(message: TerminationMessage) -> int | None:
    try:
        return len(
            json.dumps(message.to_json(), separators=(",", ":"), ensure_ascii=False).encode()
        )
    except ValueError:  # an integer too long to print
        return None


@FAST
@given(message=any_message())
def test_any_valid_message_encodes_under_the_limit_and_reads_back(
    message: TerminationMessage,
) -> None:
    with counted_encodings(80) as calls:
        text = encode(message)
    event(f"encodings: {'1' if calls[0] == 1 else '2-20' if calls[0] <= 20 else '21-80'}")
    assert len(text.encode("utf-8")) < MAX_BYTES
    assert schema_errors(json.loads(text)) == []
    parsed = parse(text).message
    assert parsed is not None
    size = _plain_size(message)
    if size is not None and size < MAX_BYTES:
        event("fits as it is")
        assert parsed == message
        return
    event("shortened")
    # What the operator decides on survives: the outcome, the wall, whether to resume.
    assert (parsed.outcome, parsed.window, parsed.transcript) == (
        message.outcome,
        message.window,
        message.transcript,
    )
    if message.resets_at is not None:
        assert parsed.resets_at is not None
        assert parse_time(parsed.resets_at) == parse_time(message.resets_at)
    # Every change is marked: a cut detail ends in "…", anything else is named in detail.
    note = "[shortened to fit 4096 bytes: "
    changed = replace(parsed, detail=message.detail) != message
    if changed:
        assert note in parsed.detail
    if parsed.detail != message.detail and note not in parsed.detail:
        assert parsed.detail.endswith("…")
        assert message.detail.startswith(parsed.detail[:-1])


HUGE_RESET = "2026-11-23T14:00:00." + "7" * 5000 + "Z"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"resets_at": HUGE_RESET}, "resetsAt cut to microseconds"),
        ({"turns": 10**5000}, "turns dropped"),
        ({"turns": 10**4000}, "turns dropped"),
    ],
    ids=["long-fraction", "turns-beyond-printing", "turns-of-4000-digits"],
)
def test_unbounded_fields_are_shortened_and_named(fields: dict[str, Any], says: str) -> None:
    message = TerminationMessage(
        Outcome.WALLED,
        window="five_hour",
        resets_at="2026-11-23T14:00:00Z",
        detail="the window is full",
        transcript=True,
    )
    message = replace(message, **fields)
    parsed = parse(encode(message)).message
    assert parsed is not None
    assert parsed.detail == f"the window is full [shortened to fit 4096 bytes: {says}]"
    assert parsed.transcript is True
    if "resets_at" in fields:
        assert parsed.resets_at == "2026-11-23T14:00:00.777777Z"


@pytest.mark.parametrize("limit", [90, 160, 260, 400, 700, 1200])
def test_a_smaller_limit_drops_the_least_useful_fields_first(
    limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ladder beyond `detail` cannot be reached at 4096 bytes with a valid message; a
    # smaller limit shows the order it drops fields in and that the result still fits.
    monkeypatch.setattr(termination, "MAX_BYTES", limit)
    message = TerminationMessage(
        Outcome.WALLED,
        session_id="6f1c2a3b-1111-4222-8333-444455556666",
        window="five_hour",
        resets_at="2026-11-23T14:00:00Z",
        utilization={f"window_{i}": 0.5 for i in range(16)},
        warnings={f"window_{i}": 0.75 for i in range(16)},
        evidence="You've hit your 5-hour limit · resets 2pm (UTC)",
        detail="d" * 300,
        transcript=True,
        turns=7,
        cost_usd=0.25,
    )
    text = encode(message)
    assert len(text.encode()) < limit
    parsed = parse(text).message
    assert parsed is not None
    order = ["warnings", "utilization", "costUSD", "turns", "sessionId", "evidence"]
    kept = [
        parsed.warnings != {},
        parsed.utilization != {},
        parsed.cost_usd is not None,
        parsed.turns is not None,
        parsed.session_id is not None,
        parsed.evidence != "",
    ]
    # Once a field is dropped, every field before it in the order is dropped too.
    assert kept == sorted(kept), dict(zip(order, kept, strict=True))
    if parsed.outcome is Outcome.WALLED:
        assert (parsed.window, parsed.resets_at) == ("five_hour", "2026-11-23T14:00:00Z")
        assert parsed.transcript is True
    else:  # not even the wall's required fields fit: a bare failed, never a wall unread
        assert limit < 120 and parsed.outcome is Outcome.FAILED


# --- non-finite numbers -------------------------------------------------------------------------

NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


@FAST
@given(
    where=st.sampled_from(["costUSD", "utilization", "warnings"]),
    value=NON_FINITE,
    window=WINDOWS,
)
def test_non_finite_numbers_are_never_read(where: str, value: float, window: str) -> None:
    doc: dict[str, Any] = {"version": 1, "outcome": "completed"}
    doc[where] = {window: value} if where != "costUSD" else value
    text = json.dumps(doc)  # Python writes NaN/Infinity, which is not JSON
    result = parse(text)
    assert result.message is None
    assert "not a finite number" in result.problem


@FAST
@given(cost=st.one_of(NON_FINITE, st.just(math.inf)), window=WINDOWS, value=NON_FINITE)
def test_non_finite_numbers_are_never_written(cost: float, window: str, value: float) -> None:
    for fields in (
        {"cost_usd": cost},
        {"utilization": {window: value}},
        {"warnings": {window: value}},
    ):
        with pytest.raises(ValueError, match="not a finite number"):
            encode(TerminationMessage(Outcome.COMPLETED, **fields))


def test_a_number_too_large_for_a_float_is_not_read() -> None:
    assert parse('{"version":1,"outcome":"completed","costUSD":1e999}').message is None
    assert parse(f'{{"version":1,"outcome":"completed","costUSD":{math.pi}}}').message is not None


def test_utc_reset_instant_is_kept_when_cut() -> None:
    message = TerminationMessage(
        Outcome.WALLED,
        window="seven_day",
        resets_at="2026-11-23T16:00:00.123456789" + "9" * 5000 + "+02:00",
    )
    parsed = parse(encode(message)).message
    assert parsed is not None and parsed.resets_at is not None
    assert parse_time(parsed.resets_at) == datetime(2026, 11, 23, 14, 0, 0, 123456, tzinfo=UTC)
