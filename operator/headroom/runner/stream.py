"""Classify Claude Code's stream-json output into a run outcome. Pure: lines in, verdict out.

The rules, as measured on the CLI 2.1.330 against the stand-in (docs/runner.md has the exact
lines):

- `{"type":"system","subtype":"api_retry","error_status":401,"error":"authentication_failed"}`
  -> auth_failed, and the runner stops the CLI at this first retry (it would retry ten times).
- `{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":N,
  "rateLimitType":"five_hour",...}}` -> walled, with window and reset time.
- the same event on the usage-credit lane (`overageStatus: rejected` with an
  `overageDisabledReason`, claim `overage` or none) -> walled on window `credits`, with the
  refresh time if the event has one; with `errorCode: credits_required` -> walled on
  `model_credits` (only the requested model needs credits the account lacks); an assistant
  error message with `error: billing_error` (an API key's spent balance) -> walled on
  `credits` without a reset.
- a rejected event whose rateLimitType is a per-model weekly window (`seven_day_opus`,
  `seven_day_sonnet`) is a wall on that window like any other; the operator decides that it
  holds only for that model (headroom.core.models).
- `status: allowed_warning` with `surpassedThreshold` (top level for its rateLimitType, and
  per window in unifiedWindows) -> `warnings`, whatever the outcome; a later status of the
  same window clears it.
- the same event without `resetsAt` (the CLI's summary of exhausted bare 429s), or a result
  with `api_error_status: 429` -> throttled: a limit without a reset time is only suspected.
- a result with `is_error: false` -> completed; any other ending -> failed. 500 and 529 never
  make a wall, whatever their text says.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from headroom.contract.termination import CREDITS_WINDOW, MODEL_CREDITS_WINDOW, Outcome

WINDOW_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
MAX_UTILIZATION_ENTRIES = 16  # the termination schema's limit
MAX_LINE_BYTES = 8 * 1024 * 1024  # longer lines are counted, not parsed


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    window: str | None = None
    resets_at: str | None = None  # RFC 3339, UTC
    utilization: dict[str, float] = field(default_factory=dict)
    warnings: dict[str, float] = field(default_factory=dict)  # window -> surpassed threshold
    evidence: str = ""  # raw signal text; the caller scrubs secrets and shortens it
    detail: str = ""
    turns: int | None = None
    cost_usd: float | None = None
    session_id: str | None = None
    duration_seconds: float | None = None
    summary: str = ""  # the final answer of a completed run; the caller scrubs it
    structured_output: Any = None  # the answer matching --json-schema, when one was given


@dataclass(frozen=True)
class Wall:
    window: str
    resets_at: str | None  # None only for a credit wall whose refresh time is not known
    evidence: str
    reason: str | None = None  # why credits cannot pay (overageDisabledReason)


@dataclass
class StreamClassifier:
    """Feed it every stdout line of the CLI; ask for the verdict once the CLI is gone."""

    session_id: str | None = None
    utilization: dict[str, float] = field(default_factory=dict)
    warnings: dict[str, float] = field(default_factory=dict)
    wall: Wall | None = None
    auth_failure: str | None = None
    throttle: str | None = None
    last_retry: str | None = None
    result: dict[str, Any] | None = None
    lines: int = 0
    malformed: int = 0
    oversized: int = 0

    def feed(self, line: str | bytes, truncated: bool = False) -> bool:
        """Take one line. True means: stop the CLI now (it is retrying a dead credential)."""
        self.lines += 1
        if truncated or len(line) > MAX_LINE_BYTES:
            self.oversized += 1
            return False
        text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
        if not text.strip():
            return False
        try:
            event = json.loads(text)
        except (ValueError, RecursionError):
            self.malformed += 1
            return False
        if not isinstance(event, dict):
            self.malformed += 1
            return False
        kind = event.get("type")
        if kind == "system":
            return self._system(event)
        if kind == "rate_limit_event":
            self._rate_limit(event.get("rate_limit_info"))
        elif kind == "assistant":
            self._assistant(event)
        elif kind == "result":
            self.result = event
        return False

    def _system(self, event: dict[str, Any]) -> bool:
        subtype = event.get("subtype")
        if subtype == "init" and isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
        if subtype != "api_retry":
            return False
        status, error = event.get("error_status"), event.get("error")
        summary = f"api_retry error_status={status} error={error} attempt={event.get('attempt')}"
        self.last_retry = summary
        if error == "authentication_failed" or status == 401:
            if self.auth_failure is None:
                self.auth_failure = summary
            return True
        return False

    def _rate_limit(self, info: Any) -> None:
        if not isinstance(info, dict):
            self.malformed += 1
            return
        self._windows(info)
        if info.get("status") != "rejected":
            return
        credit = credit_wall(info)
        if credit is not None:
            self.wall = self.wall or credit
            return
        resets_at = rfc3339(info.get("resetsAt"))
        window = _window_name(info)
        summary = (
            f"rate_limit_event status=rejected rateLimitType={info.get('rateLimitType')} "
            f"resetsAt={info.get('resetsAt')}"
        )
        if resets_at is not None and window is not None:
            if self.wall is None:
                self.wall = Wall(window, resets_at, summary)
        elif self.throttle is None:
            # Measured: after bare 429s exhaust the retries, the CLI emits a rejected event
            # with no reset and no window. That is a suspicion, not a wall.
            self.throttle = summary

    def _assistant(self, event: dict[str, Any]) -> None:
        """The CLI's synthetic error message carries the same rate-limit info; use it when the
        rate_limit_event is missing."""
        params = event.get("api_error_params")
        info = params.get("rate_limit_info") if isinstance(params, dict) else None
        if isinstance(info, dict) and self.wall is None:
            self._rate_limit(info)
        if event.get("error") == "billing_error" and self.wall is None:
            # Measured: an API key whose prepaid balance is spent (a 400 "credit balance is
            # too low") comes back as the CLI's error kind billing_error, with no reset.
            status = event.get("api_error_status")
            summary = f"assistant error=billing_error api_error_status={status}"
            self.wall = Wall(CREDITS_WINDOW, None, summary, "billing_error")

    def _windows(self, info: dict[str, Any]) -> None:
        windows = info.get("unifiedWindows")
        entries: list[tuple[Any, Any]] = []
        if isinstance(windows, dict):
            entries += [
                (name, value.get("utilization"))
                for name, value in windows.items()
                if isinstance(value, dict)
            ]
        entries.append((info.get("rateLimitType"), info.get("utilization")))
        for name, value in entries:
            if _is_window(name) and (number := _fraction(value)) is not None:
                _bounded_put(self.utilization, name, number)
        self._warnings(info, windows if isinstance(windows, dict) else {})

    def _warnings(self, info: dict[str, Any], windows: dict[str, Any]) -> None:
        """Measured on 2.1.330: a window past a threshold comes as `status: allowed_warning`
        with `surpassedThreshold`, at the top (its rateLimitType) and in unifiedWindows; the
        latest status of a window decides, so a later allowed or rejected one clears it."""
        states: list[tuple[Any, Any, Any]] = [
            (name, w.get("status"), w.get("surpassedThreshold"))
            for name, w in windows.items()
            if isinstance(w, dict)
        ]
        states.append(
            (info.get("rateLimitType"), info.get("status"), info.get("surpassedThreshold"))
        )
        for name, status, threshold in states:
            if not _is_window(name) or not isinstance(status, str):
                continue
            if status != "allowed_warning":
                self.warnings.pop(name, None)
            elif (number := _fraction(threshold)) is not None:
                _bounded_put(self.warnings, name, number)

    def verdict(self, exit_code: int | None = None, interrupted: str | None = None) -> Verdict:
        """The outcome, once the CLI has exited (`exit_code`) or was stopped (`interrupted`
        names why, e.g. "SIGTERM")."""
        common: dict[str, Any] = {
            "utilization": dict(self.utilization),
            "warnings": dict(self.warnings),
            "turns": _count(self.result, "num_turns"),
            "cost_usd": _money(self.result, "total_cost_usd"),
            "session_id": self.session_id,
            "duration_seconds": _seconds(self.result, "duration_ms"),
        }
        result, text = self.result, _result_text(self.result)
        if self.auth_failure is not None:
            return Verdict(
                Outcome.AUTH_FAILED,
                evidence=self.auth_failure,
                detail="The API refused the credential (401 authentication_failed); the runner "
                "stopped Claude Code at its first retry.",
                **common,
            )
        succeeded = result is not None and result.get("subtype") == "success"
        if succeeded and result is not None and result.get("is_error") is False:
            return Verdict(
                Outcome.COMPLETED,
                evidence=text,
                detail="The run finished.",
                summary=text,
                structured_output=result.get("structured_output"),
                **common,
            )
        if self.wall is not None:
            return Verdict(
                Outcome.WALLED,
                window=self.wall.window,
                resets_at=self.wall.resets_at,
                evidence=self.wall.evidence + (f": {text}" if text else ""),
                detail=_wall_detail(self.wall),
                **common,
            )
        status = result.get("api_error_status") if result else None
        if result is not None and (
            status == 401 or result.get("api_error_type") == "authentication_error"
        ):
            return Verdict(
                Outcome.AUTH_FAILED,
                evidence=f"result api_error_status={status}: {text}",
                detail="The API refused the credential (401).",
                **common,
            )
        if status == 429 or (self.throttle is not None and result is not None):
            return Verdict(
                Outcome.THROTTLED,
                evidence=f"result api_error_status={status}: {text}" if result else "",
                detail="The API limited the run without saying when the limit resets; "
                "suspected, not a wall.",
                **common,
            )
        if interrupted:
            return Verdict(
                Outcome.FAILED,
                evidence=self.last_retry or "",
                detail=f"Stopped by {interrupted} before Claude Code reported a result.",
                **common,
            )
        if result is not None:
            reason = result.get("subtype") if result.get("subtype") != "success" else None
            return Verdict(
                Outcome.FAILED,
                evidence=text or str(reason or ""),
                detail=f"Claude Code ended with an error ({reason or f'status {status}'}): "
                f"{text}".strip(),
                **common,
            )
        return Verdict(
            Outcome.FAILED,
            evidence=self.last_retry or "",
            detail=f"Claude Code exited (code {exit_code}) without a result; "
            f"{self.lines} lines, {self.malformed} unreadable, {self.oversized} oversized.",
            **common,
        )


def classify(
    lines: Iterable[str | bytes], exit_code: int | None = None, interrupted: str | None = None
) -> Verdict:
    classifier = StreamClassifier()
    for line in lines:
        classifier.feed(line)
    return classifier.verdict(exit_code, interrupted)


@dataclass
class LineSplitter:
    """Cut a byte stream into lines without ever holding more than `limit` bytes of one line:
    a runaway line is reported as truncated instead of filling memory."""

    limit: int = MAX_LINE_BYTES
    _buffer: bytearray = field(default_factory=bytearray)
    _overflow: bool = False

    def feed(self, chunk: bytes) -> list[tuple[bytes, bool]]:
        lines: list[tuple[bytes, bool]] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            self._take(piece)
            if end < 0:
                return lines
            lines.append((bytes(self._buffer), self._overflow))
            self._buffer.clear()
            self._overflow = False
            start = end + 1

    def flush(self) -> list[tuple[bytes, bool]]:
        if not self._buffer and not self._overflow:
            return []
        line = (bytes(self._buffer), self._overflow)
        self._buffer.clear()
        self._overflow = False
        return [line]

    def _take(self, piece: bytes) -> None:
        room = self.limit - len(self._buffer)
        if len(piece) > room:
            self._overflow = True
            piece = piece[: max(0, room)]
        self._buffer += piece


def _is_window(name: Any) -> bool:
    return isinstance(name, str) and WINDOW_NAME.match(name) is not None


def _fraction(value: Any) -> float | None:
    """A reported 0..1 number, clamped; None for anything else (booleans, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return min(1.0, max(0.0, float(value)))


def _bounded_put(table: dict[str, float], name: str, value: float) -> None:
    """Keep at most the termination schema's number of windows (the first ones seen)."""
    if name in table or len(table) < MAX_UTILIZATION_ENTRIES:
        table[name] = value


def rfc3339(epoch: Any) -> str | None:
    """Epoch seconds (as the CLI reports `resetsAt`) to RFC 3339 UTC; None if not a time."""
    if isinstance(epoch, bool) or not isinstance(epoch, int | float) or epoch <= 0:
        return None
    try:
        moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def credit_wall(info: dict[str, Any]) -> Wall | None:
    """A rejection on usage credits rather than on a plan window, or None.

    Measured on 2.1.330: a model that needs credits carries `errorCode: credits_required`
    (from the error body); a spent credit carries `overageStatus: rejected` and an
    `overageDisabledReason` with the claim `overage` or none. A plan window's claim
    (five_hour, ...) stays a plan wall even when credits are off too: its reset is what
    frees the account."""
    reason = info.get("overageDisabledReason")
    reason = reason if isinstance(reason, str) and WINDOW_NAME.match(reason) else None
    summary = (
        f"rate_limit_event status=rejected credits reason={reason} "
        f"claim={info.get('rateLimitType')} overageStatus={info.get('overageStatus')}"
    )
    if info.get("errorCode") == "credits_required":
        return Wall(MODEL_CREDITS_WINDOW, None, summary + " errorCode=credits_required", reason)
    if info.get("overageStatus") != "rejected" or reason in (None, "fetch_error"):
        # fetch_error: the service could not read the credit's state (the CLI waits and
        # retries on it), which says nothing about the credit: no credit wall.
        return None
    if info.get("rateLimitType") not in (None, "overage"):
        return None
    refresh = rfc3339(info.get("overageResetsAt")) or rfc3339(info.get("resetsAt"))
    return Wall(CREDITS_WINDOW, refresh, f"{summary} resetsAt={info.get('resetsAt')}", reason)


def _wall_detail(wall: Wall) -> str:
    why = f" ({wall.reason})" if wall.reason else ""
    if wall.window == MODEL_CREDITS_WINDOW:
        return (
            f"The requested model needs usage credits the account lacks{why}; other models "
            "are not refused."
        )
    if wall.window == CREDITS_WINDOW:
        until = f"until {wall.resets_at}" if wall.resets_at else "with no refresh time given"
        return f"The account's usage credit is spent{why}, {until}."
    return f"The {wall.window} usage window is exhausted until {wall.resets_at}."


def _window_name(info: dict[str, Any]) -> str | None:
    claim = info.get("rateLimitType")
    if isinstance(claim, str) and WINDOW_NAME.match(claim):
        return claim
    windows = info.get("unifiedWindows")
    if isinstance(windows, dict):
        for name, value in windows.items():
            rejected = isinstance(value, dict) and value.get("status") == "rejected"
            if rejected and isinstance(name, str) and WINDOW_NAME.match(name):
                return name
    return None


def _result_text(result: dict[str, Any] | None) -> str:
    """The final answer; an error ending (a spent budget, structured output refused) has no
    answer but lists `errors`, the first of which says why."""
    text = result.get("result") if result else None
    if isinstance(text, str):
        return text
    errors = result.get("errors") if result else None
    if isinstance(errors, list) and errors and isinstance(errors[0], str):
        return errors[0]
    return ""


def _count(result: dict[str, Any] | None, key: str) -> int | None:
    value = result.get(key) if result else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _money(result: dict[str, Any] | None, key: str) -> float | None:
    value = result.get(key) if result else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value < 0 or value == float("inf"):
        return None
    return round(float(value), 6)


def _seconds(result: dict[str, Any] | None, key: str) -> float | None:
    milliseconds = _money(result, key)
    return None if milliseconds is None else round(milliseconds / 1000, 3)
