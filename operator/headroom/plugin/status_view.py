"""`kubectl headroom status`: accounts with their phase, windows and resets; sessions by
phase; who is waiting and until when."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from headroom.plugin.kinds import Kind, Listing
from headroom.plugin.text import Column, ago, clock, table, until, wrap

JSON = dict[str, Any]
# The order a person reads the lifecycle in; phases not listed come after, by name.
SESSION_PHASES = ("Running", "Pending", "Waiting", "Succeeded", "Failed")
NAME_COLUMN = 63  # the longest name the CRDs allow; narrowed to fit the terminal
ACCOUNT_COLUMNS = (
    Column("NAME", NAME_COLUMN),
    Column("PHASE", 10),
    Column("ACTIVE", 6, right=True),
    Column("WINDOW", 16),
    Column("USED", 4, right=True),
    Column("RESETS IN", 24),
)
QUEUE_COLUMNS = (
    Column("NAME", NAME_COLUMN),
    Column("PHASE", 7),
    Column("REASON", 18),
    Column("FOR", 6, right=True),
    Column("WAKES IN", 24),
)
DETAIL_INDENT = "    "


def condition(obj: Mapping[str, Any], kind: str) -> JSON:
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def render_status(
    namespace: str,
    accounts: Sequence[Listing],
    sessions: Sequence[JSON],
    now: datetime,
    width: int = 80,
) -> str:
    lines = wrap(f"Namespace {namespace}, at {clock(now, now)}", width, "")
    for listing in accounts:
        if listing.problem:
            lines.append(f"{section_title(listing.kind)}: not shown")
            lines += wrap(listing.problem, width, DETAIL_INDENT)
        else:
            lines += account_section(listing.kind, listing.items, now, width)
        lines.append("")
    lines += session_section(sessions, now, width)
    return "\n".join(lines) + "\n"


def section_title(kind: Kind) -> str:
    return kind.name + "s" + ("" if kind.namespaced else " (cluster-wide)")


def account_section(kind: Kind, accounts: Sequence[JSON], now: datetime, width: int) -> list[str]:
    title = section_title(kind)
    if not accounts:
        return [f"{title}: none"]
    available = sum(1 for a in accounts if phase_of(a) == "Available")
    lines = [f"{title}: {len(accounts)}, {available} available"]
    rows: list[list[str]] = []
    details: dict[int, str] = {}
    for account in sorted(accounts, key=lambda a: str(a["metadata"]["name"])):
        detail = unavailable_because(account)
        rows += account_rows(account, now)
        if detail:
            details[len(rows) - 1] = detail
    header, *body = table(ACCOUNT_COLUMNS, rows, width)
    lines.append(header)
    for index, line in enumerate(body):
        lines.append(line)
        if index in details:
            lines += wrap(details[index], width, DETAIL_INDENT)
    return lines


def phase_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "Unknown")


def account_rows(account: JSON, now: datetime) -> list[list[str]]:
    """The account's row, then one row per further usage window under it."""
    status = account.get("status") or {}
    spec = account.get("spec") or {}
    sessions = f"{status.get('activeSessions', 0)}/{spec.get('maxSessions', 1)}"
    windows = sorted(status.get("windows") or [], key=lambda w: str(w.get("name")))
    cells = [str(account["metadata"]["name"]), phase_of(account), sessions]
    if not windows:
        walled = status.get("walledUntil") or (status.get("drill") or {}).get("until")
        return [[*cells, "", "", until(walled, now) if phase_of(account) == "Walled" else ""]]
    rows = []
    for window in windows:
        used = window.get("utilization")
        percent = "" if used is None else f"{round(float(used) * 100)}%"
        if window.get("warning"):  # past a warning threshold: placement's last choice
            percent += "!"
        rows.append(
            [*cells, str(window.get("name", "")), percent, until(window.get("resetsAt"), now)]
        )
        cells = ["", "", ""]
    return rows


def unavailable_because(account: JSON) -> str:
    """For an account that takes no sessions, or not for some models: the operator's own
    sentence saying why."""
    if phase_of(account) == "Available":
        limited = condition(account, "ModelLimited")
        if limited.get("status") == "True":
            return f"{limited.get('reason', '')}: {limited.get('message', '')}"
        return ""
    ready = condition(account, "Ready")
    reason, message = ready.get("reason", ""), ready.get("message", "")
    if not (reason or message):
        return "no status yet: is the operator running and watching this namespace?"
    return f"{reason}: {message}" if reason and message else str(reason or message)


def session_section(sessions: Sequence[JSON], now: datetime, width: int) -> list[str]:
    counts = Counter(phase_of(s) if s.get("status") else "Pending" for s in sessions)
    order = [p for p in SESSION_PHASES if counts[p]] + sorted(set(counts) - set(SESSION_PHASES))
    summary = ", ".join(f"{counts[p]} {p}" for p in order)
    lines = [f"AgentSessions: {len(sessions)}"]
    lines += wrap(summary, width, DETAIL_INDENT)
    queue = [s for s in sessions if not_placed(s)]
    if not queue:
        return lines
    lines += ["", "Not running yet:"]
    rows = [queue_row(s, now) for s in sorted(queue, key=queue_order)]
    lines += table(QUEUE_COLUMNS, rows, width)
    return lines


def not_placed(session: JSON) -> bool:
    return phase_of(session) in {"Waiting", "Pending"} or not session.get("status")


def queue_order(session: JSON) -> tuple[str, str]:
    """Who has waited longest first."""
    return (waiting_since(session), str(session["metadata"]["name"]))


def waiting_since(session: JSON) -> str:
    status = session.get("status") or {}
    return str(status.get("waitingSince") or session["metadata"].get("creationTimestamp") or "")


def queue_row(session: JSON, now: datetime) -> list[str]:
    """Waiting: since when and until the first reset; Pending: the retry time, if any."""
    status = session.get("status") or {}
    reason = condition(session, "Ready").get("reason") or ("Placing" if status else "NotSeenYet")
    since = waiting_since(session)
    wake = status.get("waitingUntil") or status.get("retryAt")
    return [
        str(session["metadata"]["name"]),
        phase_of(session) if status else "Pending",
        str(reason),
        ago(since, now),
        until(wake, now),
    ]
