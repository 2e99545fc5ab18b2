"""Usage windows and the rate-limit headers Anthropic derives from them.

Pure: every function takes `now` (epoch seconds) instead of reading the clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Unit = Literal["requests", "tokens"]

# The CLI (2.1.330) reads per-window headers under these short names; any other window name
# is sent under its own name, and the CLI then reports it only as the representative claim.
HEADER_ABBREVIATIONS = {
    "five_hour": "5h",
    "seven_day": "7d",
    "seven_day_overage_included": "7d_oi",
    "overage": "overage",
}
DEFAULT_PERIOD_SECONDS = {"five_hour": 5 * 3600, "seven_day": 7 * 86400}
FALLBACK_PERIOD_SECONDS = 3600
WARNING_UTILIZATION = 0.8  # Anthropic starts sending allowed_warning past a threshold
UNIFIED = "anthropic-ratelimit-unified-"
# Weekly windows that only requests for one model family draw on (the 2.1.330 bundle names
# them "Opus limit" and "Sonnet limit"); every other window counts every request.
MODEL_SCOPED = {"seven_day_opus": "opus", "seven_day_sonnet": "sonnet"}


def draws_on(window: str, model: str) -> bool:
    """Whether a request for `model` (the request body's model id) counts against `window`."""
    family = MODEL_SCOPED.get(window)
    return family is None or family in model.lower()


@dataclass
class Window:
    name: str
    capacity: int
    resets_at: int
    period_seconds: int
    unit: Unit = "requests"
    used: int = 0

    @classmethod
    def create(
        cls,
        name: str,
        now: float,
        capacity: int = 1000,
        unit: Unit = "requests",
        period_seconds: int | None = None,
        resets_at: int | None = None,
    ) -> Window:
        period = period_seconds or DEFAULT_PERIOD_SECONDS.get(name, FALLBACK_PERIOD_SECONDS)
        return cls(
            name=name,
            capacity=max(1, capacity),
            unit=unit,
            period_seconds=period,
            resets_at=resets_at if resets_at is not None else int(now) + period,
        )

    def roll(self, now: float) -> None:
        """Start a fresh window once the reset time has passed, as the real service does."""
        if now >= self.resets_at:
            self.used = 0
            self.resets_at = int(now) + self.period_seconds

    def reset(self, now: float) -> None:
        self.used = 0
        self.resets_at = int(now) + self.period_seconds

    def fill(self, resets_at: int | None = None) -> None:
        self.used = self.capacity
        if resets_at is not None:
            self.resets_at = resets_at

    def charge(self, tokens: int) -> None:
        self.used += 1 if self.unit == "requests" else max(0, tokens)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.capacity

    @property
    def utilization(self) -> float:
        return round(self.used / self.capacity, 4)

    @property
    def status(self) -> str:
        if self.exhausted:
            return "rejected"
        return "allowed_warning" if self.utilization >= WARNING_UTILIZATION else "allowed"

    def view(self) -> dict[str, object]:
        return {
            "name": self.name,
            "capacity": self.capacity,
            "unit": self.unit,
            "used": self.used,
            "utilization": self.utilization,
            "status": self.status,
            "resetsAt": self.resets_at,
            "periodSeconds": self.period_seconds,
        }


def binding_window(windows: list[Window]) -> Window | None:
    """The exhausted window that keeps the account blocked longest, if any is exhausted."""
    exhausted = [w for w in windows if w.exhausted]
    return max(exhausted, key=lambda w: w.resets_at) if exhausted else None


def unified_headers(windows: list[Window], rejected: Window | None) -> dict[str, str]:
    """`anthropic-ratelimit-unified-*` headers for a subscription (OAuth) credential."""
    headers: dict[str, str] = {}
    for window in windows:
        prefix = UNIFIED + HEADER_ABBREVIATIONS.get(window.name, window.name) + "-"
        headers[prefix + "status"] = window.status
        headers[prefix + "utilization"] = _number(window.utilization)
        headers[prefix + "reset"] = str(window.resets_at)
        if window.exhausted:
            headers[prefix + "surpassed-threshold"] = "1.0"
        elif window.status == "allowed_warning":
            # What the CLI turns into an allowed_warning rate_limit_event (it ignores the
            # overall status's allowed_warning and reads the per-window threshold instead).
            headers[prefix + "surpassed-threshold"] = _number(WARNING_UTILIZATION)
    claim = rejected or (max(windows, key=lambda w: w.utilization) if windows else None)
    if rejected is not None:
        headers[UNIFIED + "status"] = "rejected"
    elif any(w.status == "allowed_warning" for w in windows):
        headers[UNIFIED + "status"] = "allowed_warning"
    else:
        headers[UNIFIED + "status"] = "allowed"
    if claim is not None:
        headers[UNIFIED + "reset"] = str(claim.resets_at)
        headers[UNIFIED + "representative-claim"] = claim.name
    return headers


def standard_headers(windows: list[Window], now: float) -> dict[str, str]:
    """API keys get the per-organization `anthropic-ratelimit-requests-*` family instead."""
    requests = [w for w in windows if w.unit == "requests"]
    tokens = [w for w in windows if w.unit == "tokens"]
    headers: dict[str, str] = {}
    for family, group in (("requests", requests), ("tokens", tokens)):
        if not group:
            continue
        tightest = min(group, key=lambda w: w.capacity - w.used)
        headers[f"anthropic-ratelimit-{family}-limit"] = str(tightest.capacity)
        headers[f"anthropic-ratelimit-{family}-remaining"] = str(
            max(0, tightest.capacity - tightest.used)
        )
        headers[f"anthropic-ratelimit-{family}-reset"] = _rfc3339(tightest.resets_at)
    return headers


def seconds_until(epoch: int, now: float) -> int:
    return max(1, int(epoch - now))


def _number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"


def _rfc3339(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
