"""The operator's one source of wall-clock time.

The core takes `now` as an argument; everything else (reconcilers, wake-ups, timers, peering,
the metrics computed at scrape time) reads the Runtime's clock, which defaults to this one,
so a test chooses the time everywhere at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
