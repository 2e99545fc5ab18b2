"""An account's usage windows as its status records them, and what an attempt's end teaches.

The reconcilers write `merged_windows()` to a ClaudeAccount's `status.windows` and read them
back with `window_from_status()`; the quota simulator calls the same two functions, so it
learns from a termination message exactly what the operator learns, without importing the
reconcilers (and kopf) to do it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from headroom.contract.crd import MODEL_CREDIT_RECORDS, WINDOW_RECORDS
from headroom.core.accounts import Account, ModelCredit, Window
from headroom.core.durations import format_time, parse_time
from headroom.core.outcome import AttemptEnd

JSON = dict[str, Any]


def window_from_status(entry: Mapping[str, Any]) -> Window:
    """One entry of a ClaudeAccount's `status.windows`."""
    return Window(
        name=entry["name"],
        status=entry.get("status", ""),
        utilization=float(entry.get("utilization", 0.0)),
        resets_at=parse_time(entry.get("resetsAt")),
        observed_at=parse_time(entry.get("observedAt")),
        warning=bool(entry.get("warning", False)),
        surpassed_threshold=_number(entry.get("surpassedThreshold")),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def model_credits_from_status(entries: Any) -> tuple[ModelCredit, ...]:
    """A ClaudeAccount's `status.modelCredits` (entries the reconcilers wrote)."""
    found = []
    for entry in entries if isinstance(entries, list) else []:
        learned, retry = parse_time(entry.get("learnedAt")), parse_time(entry.get("retryAt"))
        if entry.get("model") and learned is not None and retry is not None:
            hash_ = entry.get("credentialsHash") or None
            found.append(ModelCredit(str(entry["model"]), learned, retry, hash_))
    return tuple(found)


def model_credits_status(credits: Iterable[ModelCredit]) -> list[JSON]:
    """The inverse of model_credits_from_status: one entry per model, the latest learned."""
    latest: dict[str, ModelCredit] = {}
    for credit in credits:
        if credit.model not in latest or latest[credit.model].learned_at < credit.learned_at:
            latest[credit.model] = credit
    return [
        {
            "model": c.model,
            "learnedAt": format_time(c.learned_at),
            "retryAt": format_time(c.retry_at),
            **({"credentialsHash": c.credentials_hash} if c.credentials_hash else {}),
        }
        for c in sorted(latest.values(), key=lambda c: c.model)
    ][:MODEL_CREDIT_RECORDS]


def merged_windows(account: Account, end: AttemptEnd, now: datetime) -> list[JSON]:
    """The account's windows updated with what this attempt reported (names are open-ended).
    A window the attempt reported is warned exactly when the attempt said allowed_warning."""
    by_name: dict[str, JSON] = {w.name: window_status(w) for w in account.windows}
    for name, utilization in end.utilization.items():
        entry = by_name.setdefault(name, {"name": name})
        entry.update(
            status="allowed", utilization=round(float(utilization), 4), observedAt=format_time(now)
        )
        entry.pop("warning", None)
        entry.pop("surpassedThreshold", None)
    for name, threshold in end.warnings.items():
        entry = by_name.setdefault(name, {"name": name, "utilization": float(threshold)})
        entry.update(
            status="allowed_warning",
            warning=True,
            surpassedThreshold=round(float(threshold), 4),
            observedAt=format_time(now),
        )
    if end.window and end.resets_at:
        entry = by_name.setdefault(end.window, {"name": end.window, "utilization": 1.0})
        entry.update(
            status="rejected", resetsAt=format_time(end.resets_at), observedAt=format_time(now)
        )
        entry["utilization"] = max(float(entry.get("utilization", 1.0)), 1.0)
        entry.pop("warning", None)
        entry.pop("surpassedThreshold", None)
    return sorted(by_name.values(), key=lambda w: w["name"])[:WINDOW_RECORDS]


def window_status(w: Window) -> JSON:
    """One Window as a `status.windows` entry."""
    entry: JSON = {"name": w.name, "status": w.status, "utilization": w.utilization}
    if w.resets_at:
        entry["resetsAt"] = format_time(w.resets_at)
    if w.observed_at:
        entry["observedAt"] = format_time(w.observed_at)
    if w.warning:
        entry["warning"] = True
        if w.surpassed_threshold is not None:
            entry["surpassedThreshold"] = w.surpassed_threshold
    return entry
