"""Go-style duration strings ("90s", "5m", "1h30m") as used in AgentSession.spec.failover."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError naming the text when it is not one."""
    if text in {"0", ""}:
        if text == "":
            raise ValueError("empty duration")
        return timedelta(0)
    pos, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"{text!r} is not a duration like 90s, 5m or 1h30m")
    try:
        # The CRD's pattern allows 31 digits; timedelta stops near 2.7 million years (and a
        # float of 400 digits is infinite). Callers catch ValueError, so say it that way.
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 timestamp (as Kubernetes writes it) to an aware datetime; None stays None."""
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """An aware datetime as Kubernetes' RFC 3339 form, second precision, in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def later(when: datetime, delay: timedelta | float) -> datetime:
    """`when + delay` (a timedelta, or seconds), saturating at the end of datetime's range:
    a timeout the CRD admits (millions of hours) must mean "never", not an OverflowError in
    the middle of a pass that has already created its pod."""
    try:
        step = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
        return when + step
    except OverflowError:
        return datetime.max.replace(tzinfo=when.tzinfo or UTC)
