"""`kubectl headroom why SESSION`: where a session is and how it got there, in one view:
its state, conditions, last outcome, swaps and Events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from headroom.core.durations import parse_time
from headroom.plugin.status_view import phase_of
from headroom.plugin.text import Column, ago, clock, table, until, wrap

JSON = dict[str, Any]
INDENT = "  "
MESSAGE_INDENT = "      "
CONDITION_COLUMNS = (
    Column("TYPE", 10),
    Column("STATUS", 7),
    Column("REASON", 28),
    Column("SINCE", 6, right=True),
)
SWAP_COLUMNS = (
    Column("AT", 13),
    Column("FROM", 20),
    Column("TO", 20),
    Column("REASON", 18),
)
EVENT_COLUMNS = (
    Column("AGE", 6, right=True),
    Column("TYPE", 7),
    Column("REASON", 30),
)


def render_why(session: JSON, events: Sequence[JSON], now: datetime, width: int = 80) -> str:
    meta = session["metadata"]
    lines = wrap(f"AgentSession {meta['name']} in namespace {meta.get('namespace', '')}", width, "")
    lines += summary(session, now, width)
    for title, section in (
        ("Conditions", conditions(session, now, width)),
        ("Last outcome", last_outcome(session, now, width)),
        ("Swaps", swaps(session, now, width)),
        ("Events, oldest first", event_lines(events, now, width)),
    ):
        lines += ["", title, *section]
    return "\n".join(lines) + "\n"


LABEL = 10


def field(label: str, value: str, width: int) -> list[str]:
    """A labelled value; a long one wraps under itself, not under the label."""
    first, *rest = wrap(value, width - len(INDENT) - LABEL, "") or [""]
    pad = " " * (len(INDENT) + LABEL)
    return [f"{INDENT}{label:<{LABEL}}{first}".rstrip(), *(pad + line for line in rest)]


def summary(session: JSON, now: datetime, width: int) -> list[str]:
    status = session.get("status") or {}
    if not status:
        return field("phase", "not seen by the operator yet", width)
    lines = field("phase", placement(status), width)
    if status.get("podName"):
        lines += field("pod", str(status["podName"]), width)
    if phase_of(session) == "Waiting":
        wake = until(status.get("waitingUntil"), now) or "an account frees up"
        lines += field("waiting", f"{ago(status.get('waitingSince'), now)}, wakes in {wake}", width)
        if status.get("waitingMessage"):
            lines += field("", str(status["waitingMessage"]), width)
    elif status.get("retryAt") and phase_of(session) == "Pending":
        lines += field("retry in", until(status["retryAt"], now), width)
    result = status.get("result") or {}
    if result:
        lines += field("result", result_line(result), width)
        if result.get("detail"):
            lines += field("", str(result["detail"]), width)
    return lines


def placement(status: JSON) -> str:
    phase = str(status.get("phase") or "Pending")
    parts = [phase]
    if status.get("account"):
        path = f", {status['authPath']} path" if status.get("authPath") else ""
        parts.append(f"on {status['account']}{path}")
    if status.get("attempt"):
        parts.append(f"attempt {status['attempt']}")
    count = int(status.get("swapCount") or 0)
    parts.append(f"{count} swap{'s' if count != 1 else ''}")
    return parts[0] + " " + ", ".join(parts[1:]) if len(parts) > 1 else phase


def result_line(result: JSON) -> str:
    parts = [str(result.get("reason", ""))]
    if result.get("turns") is not None:
        parts.append(f"{result['turns']} turns")
    if result.get("costUSD") is not None:
        parts.append(f"${float(result['costUSD']):.2f}")
    return ", ".join(p for p in parts if p)


CONDITION_ORDER = ("Ready", "Scheduled", "Completed")


def conditions(session: JSON, now: datetime, width: int) -> list[str]:
    """The conditions in the order a person asks: is it working, is it placed, is it done."""
    listed = (session.get("status") or {}).get("conditions") or []
    found = sorted(listed, key=lambda c: condition_rank(str(c.get("type", ""))))
    if not found:
        return [INDENT + "none yet"]
    rows = [
        [
            str(c.get("type", "")),
            str(c.get("status", "")),
            str(c.get("reason", "")),
            ago(c.get("lastTransitionTime"), now),
        ]
        for c in found
    ]
    header, *body = table(CONDITION_COLUMNS, rows, width - len(INDENT))
    lines = [INDENT + header]
    for line, entry in zip(body, found, strict=True):
        lines.append(INDENT + line)
        lines += wrap(str(entry.get("message") or ""), width, MESSAGE_INDENT)
    return lines


def condition_rank(kind: str) -> tuple[int, str]:
    known = kind in CONDITION_ORDER
    return (CONDITION_ORDER.index(kind) if known else len(CONDITION_ORDER), kind)


def last_outcome(session: JSON, now: datetime, width: int) -> list[str]:
    outcome = (session.get("status") or {}).get("lastOutcome") or {}
    if not outcome:
        return [INDENT + "no attempt has ended yet"]
    head = [str(outcome.get("outcome", "?"))]
    if outcome.get("at"):
        head.append(f"{ago(outcome['at'], now)} ago")
    if outcome.get("podName"):
        head.append(f"pod {outcome['podName']}")
    if outcome.get("window"):
        resets = until(outcome.get("resetsAt"), now)
        head.append(f"window {outcome['window']}" + (f", resets in {resets}" if resets else ""))
    lines = wrap(", ".join(head), width, INDENT)
    if outcome.get("detail"):
        lines += wrap(str(outcome["detail"]), width, MESSAGE_INDENT)
    if outcome.get("evidence"):
        lines += wrap(f"evidence: {outcome['evidence']}", width, MESSAGE_INDENT)
    return lines


def swaps(session: JSON, now: datetime, width: int) -> list[str]:
    status = session.get("status") or {}
    moves = status.get("swaps") or []
    if not moves:
        return [INDENT + "none"]
    rows = [
        [
            stamp(m.get("at"), now),
            str(m.get("from", "")),
            str(m.get("to", "")),
            str(m.get("reason", "")) + (f" ({m['window']})" if m.get("window") else ""),
        ]
        for m in moves
    ]
    lines = [INDENT + line for line in table(SWAP_COLUMNS, rows, width - len(INDENT))]
    shown, total = len(moves), int(status.get("swapCount") or len(moves))
    if total > shown:
        lines.append(f"{INDENT}(the last {shown} of {total})")
    return lines


def stamp(value: str | None, now: datetime) -> str:
    at = parse_time(value)
    return "" if at is None else clock(at, now)


def event_lines(events: Sequence[JSON], now: datetime, width: int) -> list[str]:
    if not events:
        return [INDENT + "none (Events expire after an hour by default)"]
    ordered = sorted(events, key=event_order)
    rows = [
        [ago(event_time(e), now), str(e.get("type", "")), str(e.get("reason", "")) + times(e)]
        for e in ordered
    ]
    header, *body = table(EVENT_COLUMNS, rows, width - len(INDENT))
    lines = [INDENT + header]
    for line, event in zip(body, ordered, strict=True):
        lines.append(INDENT + line)
        lines += wrap(str(event.get("message") or ""), width, MESSAGE_INDENT)
    return lines


def event_order(event: JSON) -> tuple[str, int]:
    """By time, which Events record to the second; within a second by resourceVersion, which
    the API server (etcd) raises with every write: several decisions share one second."""
    version = str(event.get("metadata", {}).get("resourceVersion") or "")
    return (event_time(event), int(version) if version.isdigit() else 0)


def event_time(event: JSON) -> str:
    series = event.get("series") or {}
    return str(
        event.get("lastTimestamp")
        or series.get("lastObservedTime")
        or event.get("eventTime")
        or event.get("metadata", {}).get("creationTimestamp")
        or ""
    )


def times(event: JSON) -> str:
    """' (x3)' for an Event the API server counted three times; nothing for one."""
    seen = int(event.get("count") or (event.get("series") or {}).get("count") or 1)
    return f" (x{seen})" if seen > 1 else ""
