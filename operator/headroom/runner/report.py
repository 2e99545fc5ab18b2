"""Turn a verdict into the termination message, write it where the kubelet reads it, and
print it on stdout as well (the only report left if the file cannot be written)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from headroom.contract.scrub import scrub, snippet
from headroom.contract.termination import (
    EXIT_CODES,
    Outcome,
    TerminationMessage,
    encode,
    parse,
)
from headroom.runner.stream import Verdict

DETAIL_LIMIT = 1024
SUMMARY_LIMIT = 4096


def message_for(
    verdict: Verdict, session_id: str | None, transcript: bool, secrets: Iterable[str]
) -> TerminationMessage:
    secrets = list(secrets)
    detail = " ".join(scrub(verdict.detail, secrets).split())
    if len(detail) > DETAIL_LIMIT:
        detail = detail[: DETAIL_LIMIT - 1] + "…"
    return TerminationMessage(
        outcome=verdict.outcome,
        session_id=session_id,
        window=verdict.window,
        resets_at=verdict.resets_at,
        utilization=dict(verdict.utilization),
        warnings=dict(verdict.warnings),
        evidence=snippet(verdict.evidence, secrets) if verdict.evidence else "",
        detail=detail,
        transcript=transcript,
        turns=verdict.turns,
        cost_usd=verdict.cost_usd,
        duration_seconds=verdict.duration_seconds,
        summary=_bounded(scrub(verdict.summary, secrets), SUMMARY_LIMIT),
        structured_output=scrub_json(verdict.structured_output, secrets),
    )


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub_json(value: Any, secrets: list[str]) -> Any:
    """Every string in a JSON value scrubbed (keys too): the agent may have echoed a secret."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {scrub(str(k), secrets): scrub_json(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v, secrets) for v in value]
    return value


def render(message: TerminationMessage) -> str:
    """The JSON text; a message that breaks the schema is a runner bug, reported as such
    rather than crashing without a report."""
    try:
        return encode(message)
    except ValueError as exc:
        fallback = TerminationMessage(
            outcome=Outcome.FAILED,
            session_id=message.session_id,
            detail=f"the runner built an invalid termination message: {str(exc)[:600]}",
            transcript=message.transcript,
        )
        return encode(fallback)


def deliver(text: str, path: Path) -> None:
    try:
        path.write_text(text, "utf-8")
    except OSError as exc:
        print(f"headroom agent: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
    print(text, flush=True)


def exit_code(text: str) -> int:
    """The contract's exit code for a rendered message (read back the way the operator will)."""
    parsed = parse(text).message
    return EXIT_CODES[parsed.outcome] if parsed else EXIT_CODES[Outcome.FAILED]
