"""Termination message: the one JSON object an agent pod leaves behind.

Pure functions; the schema is read once at import from the package data.
"""

from __future__ import annotations

import json
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

SCHEMA: dict[str, Any] = json.loads(
    resources.files("headroom.contract").joinpath("termination.schema.json").read_text("utf-8")
)
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
    evidence: str = ""
    detail: str = ""
    transcript: bool | None = None
    turns: int | None = None
    cost_usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"version": FORMAT_VERSION, "outcome": self.outcome.value}
        optional: dict[str, Any] = {
            "sessionId": self.session_id,
            "window": self.window,
            "resetsAt": self.resets_at,
            "utilization": self.utilization or None,
            "evidence": self.evidence or None,
            "detail": self.detail or None,
            "transcript": self.transcript,
            "turns": self.turns,
            "costUSD": self.cost_usd,
        }
        doc.update({k: v for k, v in optional.items() if v is not None})
        return doc


def schema_errors(doc: object) -> list[str]:
    """Every way `doc` breaks the schema, as `path: message` lines (empty when valid)."""
    errors = sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]


def encode(message: TerminationMessage) -> str:
    """Serialize a message, shrinking free text until it fits MAX_BYTES. Raises on a schema error,
    because a runner that writes an invalid message is a bug we want to see in its tests."""
    doc = message.to_json()
    problems = schema_errors(doc)
    if problems:
        raise ValueError("invalid termination message: " + "; ".join(problems))
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    while len(text.encode("utf-8")) >= MAX_BYTES and doc.get("detail"):
        doc["detail"] = doc["detail"][: max(0, len(doc["detail"]) // 2 - 1)] + "…"
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text


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
            evidence=doc.get("evidence", ""),
            detail=doc.get("detail", ""),
            transcript=doc.get("transcript"),
            turns=doc.get("turns"),
            cost_usd=doc.get("costUSD"),
        )
    )
