"""Go-style durations (spec.failover.cooldown, operator flags) and Kubernetes timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.core.durations import format_time, later, parse_duration, parse_time

# The pattern the AgentSession CRD puts on spec.failover.cooldown (maxLength 32).
CRD_PATTERN = re.compile(r"^(0|([0-9]+(\.[0-9]+)?(h|m|s|ms))+)$")

VALID = [
    ("0", timedelta(0)),
    ("0s", timedelta(0)),
    ("90s", timedelta(seconds=90)),
    ("5m", timedelta(minutes=5)),
    ("2h", timedelta(hours=2)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
    ("1h0m0s", timedelta(hours=1)),
    ("500ms", timedelta(milliseconds=500)),
    ("1s500ms", timedelta(seconds=1, milliseconds=500)),
    ("1.5h", timedelta(minutes=90)),
    ("0.5s", timedelta(milliseconds=500)),
    ("2.25m", timedelta(seconds=135)),
    ("10m10m", timedelta(minutes=20)),  # Go accepts repeated units and so do we
    ("30s1h", timedelta(hours=1, seconds=30)),  # any order, as in Go
    ("007s", timedelta(seconds=7)),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid_durations(text: str, expected: timedelta) -> None:
    assert CRD_PATTERN.match(text), "the CRD must accept what the operator accepts"
    assert parse_duration(text) == expected


INVALID = [
    "",
    "5",
    "00",
    "m",
    "-5m",
    "+5m",
    "5 m",
    " 5m",
    "5m ",
    "5M",
    "5min",
    "1d",
    "1w",
    "100us",
    "100ns",
    ".5h",
    "5.m",
    "1.5.5h",
    "1h-30m",
    "5m!",
    "five minutes",
    "PT5M",
]


@pytest.mark.parametrize("text", INVALID, ids=[repr(t) for t in INVALID])
def test_invalid_durations_raise_value_error_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="duration") as caught:
        parse_duration(text)
    if text:
        assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["9" * 31 + "h", "99999999999999999s", "1" + "0" * 30 + "m"],
    ids=["31-digit-hours", "17-digit-seconds", "31-digit-minutes"],
)
def test_huge_duration_the_crd_accepts_raises_value_error(text: str) -> None:
    assert CRD_PATTERN.match(text) and len(text) <= 32
    with pytest.raises(ValueError):
        parse_duration(text)


@settings(max_examples=100, deadline=None, database=None)
@given(
    parts=st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["h", "m", "s", "ms"])),
        min_size=1,
        max_size=4,
    )
)
def test_sums_of_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    unit = {"h": 3600_000, "m": 60_000, "s": 1000, "ms": 1}
    expected_ms = sum(n * unit[u] for n, u in parts)
    assert parse_duration(text) == timedelta(milliseconds=expected_ms)


# --- timestamps ---------------------------------------------------------------------------------

TIMES = [
    ("utc-z", "2026-11-23T14:00:00Z", datetime(2026, 11, 23, 14, tzinfo=UTC)),
    ("offset", "2026-11-23T16:00:00+02:00", datetime(2026, 11, 23, 14, tzinfo=UTC)),
    ("negative-offset", "2026-11-23T09:00:00-05:00", datetime(2026, 11, 23, 14, tzinfo=UTC)),
    ("fraction", "2026-11-23T14:00:00.5Z", datetime(2026, 11, 23, 14, 0, 0, 500000, tzinfo=UTC)),
    ("naive-read-as-utc", "2026-11-23T14:00:00", datetime(2026, 11, 23, 14, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(*r[1:], id=r[0]) for r in TIMES])
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


@pytest.mark.parametrize("text", [None, ""], ids=["none", "empty"])
def test_parse_time_of_nothing_is_none(text: str | None) -> None:
    assert parse_time(text) is None


@pytest.mark.parametrize("text", ["tomorrow", "2026-02-30T00:00:00Z", "2026-11-23T25:00:00Z"])
def test_parse_time_rejects_garbage_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 11, 23, 14, 0, 0, tzinfo=UTC), "2026-11-23T14:00:00Z"),
        (
            datetime(2026, 11, 23, 16, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-23T14:00:00Z",
        ),
        (datetime(2026, 11, 23, 14, 0, 0, 999999, tzinfo=UTC), "2026-11-23T14:00:00Z"),
    ],
    ids=["utc", "converted-to-utc", "fraction-dropped"],
)
def test_format_time(value: datetime, text: str) -> None:
    assert format_time(value) == text


@settings(max_examples=100, deadline=None, database=None)
@given(
    value=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_format_then_parse_round_trips_to_the_second(value: datetime) -> None:
    text = format_time(value)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)
    assert parse_time(text) == value.replace(microsecond=0)
    assert format_time(parse_time(text)) == text  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.from_regex(CRD_PATTERN, fullmatch=True).filter(lambda t: len(t) <= 32))
def test_whatever_the_crd_accepts_parses_or_raises_value_error(text: str) -> None:
    # Callers (policy_of, flag parsing) catch ValueError only: no other exception may escape.
    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert repr(text) in str(exc)
    else:
        assert value >= timedelta(0)


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        (90, datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)),
        (timedelta(hours=1), datetime(2026, 1, 1, 1, tzinfo=UTC)),
        (46205620174675.852, datetime.max.replace(tzinfo=UTC)),  # a spec.timeout, fuzzed
        (timedelta(days=999_999_999), datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_later_saturates_at_the_end_of_time(delay: timedelta | float, expected: datetime) -> None:
    assert later(datetime(2026, 1, 1, tzinfo=UTC), delay) == expected
