"""Plain-text layout for an 80-column terminal: times relative to now, tables whose cells
are cut to fit, and wrapped messages."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from headroom.core.durations import parse_time

ELLIPSIS = "…"
GAP = "  "
# A name cut shorter than this is hard to recognise: free text gives way first.
NAME_FLOOR = 16


def span(delta: timedelta) -> str:
    """A duration in its two largest units: 45s, 12m, 3h05m, 4d2h."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def clock(at: datetime, now: datetime) -> str:
    """A UTC time of day (Z, as in RFC 3339), with the date when it is not today's."""
    at = at.astimezone(now.tzinfo)
    if at.date() == now.date():
        return at.strftime("%H:%MZ")
    return at.strftime("%b %d %H:%MZ")


def until(value: str | None, now: datetime) -> str:
    """'2h13m (18:05Z)' for a future RFC 3339 time, 'passed (18:05Z)' for a past one."""
    at = parse_time(value)
    if at is None:
        return ""
    if at <= now:
        return f"passed ({clock(at, now)})"
    return f"{span(at - now)} ({clock(at, now)})"


def ago(value: str | None, now: datetime) -> str:
    at = parse_time(value)
    return "" if at is None else span(now - at)


def cut(text: str, width: int) -> str:
    """One line of at most `width` characters; a cut ends in an ellipsis."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    return line[: max(0, width - 1)] + ELLIPSIS


def wrap(text: str, width: int, indent: str) -> list[str]:
    """A message as lines of `width` characters, each starting with `indent`."""
    return textwrap.wrap(
        " ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent
    )


@dataclass(frozen=True)
class Column:
    title: str
    most: int  # the widest this column may grow; the last column takes what is left
    right: bool = False  # numbers line up on the right


def table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """Rows under a header, each column as wide as its widest cell (within `most`), the
    whole line within `width`; cells too long for their column are cut."""
    widths = [
        min(col.most, max([len(col.title), *(len(row[i]) for row in rows)]))
        for i, col in enumerate(columns)
    ]
    fit(widths, columns, width - len(GAP) * (len(columns) - 1))
    lines = []
    for cells in [[col.title for col in columns], *rows]:
        parts = []
        for col, size, cell in zip(columns, widths, cells, strict=True):
            text = cut(cell, size)
            parts.append(text.rjust(size) if col.right else text.ljust(size))
        lines.append(GAP.join(parts).rstrip())
    return lines


def fit(widths: list[int], columns: Sequence[Column], room: int) -> None:
    """Narrow columns until the row fits in `room` characters: the first column (names)
    down to NAME_FLOOR, then the last (free text) down to its title, then the names further."""
    last = len(columns) - 1
    for index, floor in ((0, NAME_FLOOR), (last, 0), (0, 0)):
        over = sum(widths) - room
        if over > 0:
            least = max(len(columns[index].title), min(floor, widths[index]))
            widths[index] = max(least, widths[index] - over)
