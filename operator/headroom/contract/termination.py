"""Termination message: the one JSON object an agent pod leaves behind.

Pure functions; the schema is read once at import from the package data.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any

import jsonschema

MAX_BYTES = 4096  # the kubelet truncates termination messages beyond this
FORMAT_VERSION = 1


class Outcome(StrEnum):
    COMPLETED = "completed"
    WALLED = "walled"
    AUTH_FAILED = "auth_failed"
    THROTTLED = "throttled"
    FAILED = "failed"


EXIT_CODES: dict[Outcome, int] = {
    Outcome.COMPLETED: 0,
    Outcome.WALLED: 75,
    Outcome.AUTH_FAILED: 77,
    Outcome.THROTTLED: 69,
    Outcome.FAILED: 1,
}

# Walls on usage credits rather than on a plan window. `credits`: the account's usage credit is
# spent (its refresh time may be unknown). `model_credits`: the requested model needs credits
# the account lacks; other models still run there, so this one does not wall the account.
CREDITS_WINDOW = "credits"
MODEL_CREDITS_WINDOW = "model_credits"

SCHEMA: dict[str, Any] = json.loads(
    resources.files("headroom.contract").joinpath("termination.schema.json").read_text("utf-8")
)
DETAIL_MAX_CHARS: int = SCHEMA["properties"]["detail"]["maxLength"]
_VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


@dataclass(frozen=True)
class TerminationMessage:
    outcome: Outcome
    session_id: str | None = None
    window: str | None = None
    resets_at: str | None = None
    utilization: dict[str, float] = field(default_factory=dict)
    # Windows past a warning threshold (allowed_warning) -> the threshold they surpassed.
    warnings: dict[str, float] = field(default_factory=dict)
    evidence: str = ""
    detail: str = ""
    transcript: bool | None = None
    turns: int | None = None
    cost_usd: float | None = None
    duration_seconds: float | None = None
    summary: str = ""
    structured_output: Any = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"version": FORMAT_VERSION, "outcome": self.outcome.value}
        optional: dict[str, Any] = {
            "sessionId": self.session_id,
            "window": self.window,
            "resetsAt": self.resets_at,
            "utilization": self.utilization or None,
            "warnings": self.warnings or None,
            "evidence": self.evidence or None,
            "detail": self.detail or None,
            "transcript": self.transcript,
            "turns": self.turns,
            "costUSD": self.cost_usd,
            "durationSeconds": self.duration_seconds,
            "summary": self.summary or None,
            "structuredOutput": self.structured_output,
        }
        doc.update({k: v for k, v in optional.items() if v is not None})
        return doc


def schema_errors(doc: object) -> list[str]:
    """Every way `doc` breaks the schema, as `path: message` lines (empty when valid).

    Also every NaN or infinity: JSON has no such numbers, yet Python's json reads and writes
    them and the schema's minimum/maximum let them through (every comparison with NaN is
    false). One in `utilization` or `costUSD` would make decisions depend on window order and
    could not be written back to the API server."""
    errors = sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))
    # Non-finite numbers first: they are the root cause of any bound they also break.
    found = [(path, f"{value!r} is not a finite number") for path, value in _non_finite(doc, [])]
    if isinstance(doc, dict) and "structuredOutput" in doc:
        found += [
            (["structuredOutput"], f"{value!r} is not a finite number")
            for value in _deep_non_finite(doc["structuredOutput"], MAX_DEPTH)
        ]
    found += [(list(e.absolute_path), e.message) for e in errors]
    return [f"{'.'.join(str(p) for p in path) or '<root>'}: {why}" for path, why in found]


def _non_finite(value: object, path: list[str | int]) -> Iterator[tuple[list[str | int], float]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif len(path) >= 2 or path == ["structuredOutput"]:
        # Numbers sit at most at utilization.<window> or warnings.<window>; structuredOutput
        # is walked apart.
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, [*path, str(key)])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, [*path, index])


MAX_DEPTH = 64  # deeper structured output is refused rather than walked


def _deep_non_finite(value: object, depth: int) -> Iterator[object]:
    if depth <= 0:
        yield "structured output nested too deep"
    elif isinstance(value, float) and not math.isfinite(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _deep_non_finite(item, depth - 1)
    elif isinstance(value, list):
        for item in value:
            yield from _deep_non_finite(item, depth - 1)


def encode(message: TerminationMessage) -> str:
    """Serialize a message in fewer than MAX_BYTES bytes. Raises ValueError on a schema error,
    because a runner that writes an invalid message is a bug we want to see in its tests.

    A valid message always encodes: a long `detail` is cut (ending in "…"); the fields the
    schema does not bound (a `resetsAt` with a long fraction, a `turns` beyond int64) are
    shortened or dropped if the message would not fit otherwise, and `detail` says so."""
    doc = message.to_json()
    problems = schema_errors(doc)
    if problems:
        raise ValueError("invalid termination message: " + "; ".join(problems))
    text = _dumps(doc)
    if text is not None and _fits(text):
        return text
    text = _fit_answer(doc)
    if text is not None:
        return text
    return _shrink(doc)


def _fit_answer(doc: dict[str, Any]) -> str | None:
    """The answer gives way first: the summary is cut to what fits; structured output, which
    a program reads and so must stay whole, is dropped (and `detail` says so) only when it
    does not fit even beside an empty summary. None: still too long without both."""
    summary: str = doc.pop("summary", "")
    if "structuredOutput" in doc and not _fits(_dumps(doc)):
        del doc["structuredOutput"]
        note = " [structured output over the message size limit: see the pod log]"
        doc["detail"] = (doc.get("detail", "")[: DETAIL_MAX_CHARS - len(note)] + note).strip()
    if not _fits(_dumps(doc)):
        return None
    low, high, best = 0, len(summary), _dumps(doc)
    while low <= high:
        mid = (low + high) // 2
        cut = summary if mid >= len(summary) else summary[:mid] + "…"
        text = _dumps({**doc, "summary": cut} if cut else doc)
        if _fits(text):
            best, low = text, mid + 1
        else:
            high = mid - 1
    return best


def _dumps(doc: dict[str, Any]) -> str | None:
    try:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # an integer of thousands of digits: far too long anyway
        return None


def _fits(text: str | None) -> bool:
    return text is not None and len(text.encode("utf-8")) < MAX_BYTES


_LONG_FRACTION = re.compile(r"(?<=:\d\d\.\d{6})\d+")
_INT64_MAX = 2**63 - 1
# The order optional fields go in when even an empty detail does not fit: least useful first.
# Never `outcome`, `window`, `resetsAt` (a wall needs both) or `transcript` (decides resume).
_EXPENDABLE = ("warnings", "utilization", "costUSD", "turns", "sessionId", "evidence")


def _shrink(doc: dict[str, Any]) -> str:
    notes: list[str] = []
    reset = doc.get("resetsAt")
    if isinstance(reset, str) and _LONG_FRACTION.search(reset):
        # Microseconds are all the operator reads; the rest is noise that can fill 4 KiB.
        doc["resetsAt"] = _LONG_FRACTION.sub("", reset)
        notes.append("resetsAt cut to microseconds")
    if isinstance(doc.get("turns"), int) and doc["turns"] > _INT64_MAX:
        del doc["turns"]
        notes.append("turns dropped")
    detail: str = doc.pop("detail", "")
    for field_name in (None, *_EXPENDABLE):
        if field_name is not None:
            if doc.pop(field_name, None) is None:
                continue
            notes.append(f"{field_name} dropped")
        text = _fit_detail(doc, detail, notes)
        if text is not None:
            return text
    # Unreachable with MAX_BYTES at 4096 (what is left is a few hundred bytes at most); kept
    # so that encode returns a readable message under any limit: the required fields alone,
    # else a bare `failed` (never a wall the operator cannot read).
    bare = _dumps(doc)
    if bare is not None and _fits(bare):
        return bare
    failed = {"version": FORMAT_VERSION, "outcome": Outcome.FAILED.value}
    return json.dumps(failed, separators=(",", ":"))


def _fit_detail(doc: dict[str, Any], detail: str, notes: list[str]) -> str | None:
    """The message with as much of `detail` as fits (cut ones end in "…"), plus a note naming
    what else was shortened; None if it does not fit even without a detail."""
    note = f" [shortened to fit {MAX_BYTES} bytes: {'; '.join(notes)}]" if notes else ""
    limit = DETAIL_MAX_CHARS - len(note)

    def attempt(keep: int) -> str | None:
        cut = detail if keep >= len(detail) else detail[:keep] + "…"
        text = cut + note if cut else note.lstrip()
        return _dumps({**doc, "detail": text} if text else doc)

    whole = attempt(len(detail)) if len(detail) <= limit else None
    if _fits(whole):
        return whole
    # Binary search for the longest prefix that fits: a dozen encodings, never a loop.
    low, high, best = 0, min(len(detail), limit - 1), None
    while low <= high:
        mid = (low + high) // 2
        text = attempt(mid)
        if _fits(text):
            best, low = text, mid + 1
        else:
            high = mid - 1
    return best


@dataclass(frozen=True)
class ParseResult:
    """Either a message, or the reason there is none (a person-readable sentence)."""

    message: TerminationMessage | None
    problem: str = ""


def parse(text: str | None) -> ParseResult:
    """Read a termination message as the operator finds it in pod status. Never raises."""
    if text is None or not text.strip():
        return ParseResult(None, "the agent left no termination message")
    if len(text.encode("utf-8", errors="replace")) >= MAX_BYTES:
        return ParseResult(None, f"the termination message is {MAX_BYTES} bytes or more")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return ParseResult(None, f"the termination message is not JSON ({exc.msg})")
    except (ValueError, RecursionError):
        return ParseResult(None, "the termination message is not readable JSON")
    problems = schema_errors(doc)
    if problems:
        return ParseResult(None, "the termination message breaks its schema: " + problems[0][:200])
    return ParseResult(
        TerminationMessage(
            outcome=Outcome(doc["outcome"]),
            session_id=doc.get("sessionId"),
            window=doc.get("window"),
            resets_at=doc.get("resetsAt"),
            utilization=dict(doc.get("utilization", {})),
            warnings=dict(doc.get("warnings", {})),
            evidence=doc.get("evidence", ""),
            detail=doc.get("detail", ""),
            transcript=doc.get("transcript"),
            turns=doc.get("turns"),
            cost_usd=doc.get("costUSD"),
            duration_seconds=doc.get("durationSeconds"),
            summary=doc.get("summary", ""),
            structured_output=doc.get("structuredOutput"),
        )
    )
