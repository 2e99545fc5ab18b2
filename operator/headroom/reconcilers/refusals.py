"""A status write the API server refuses as it is (400, 403 or 422: a value outside the CRD's
bounds, an admission policy, RBAC) gets the same answer on every try. Retrying it is left to
reconcile()'s one rule (after the longest backoff); this module makes the refusal visible on
the object itself, with what the server does accept: the object's conditions with
`StatusWriteRejected` added, or, if even that is refused, that one condition alone. An Event
says so once per new refusal, and headroom_writes_refused_total counts every refused write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from headroom.contract.scrub import scrub
from headroom.core.durations import format_time
from headroom.kube.client import KubeError
from headroom.reconcilers.conditions import same_conditions, set_conditions
from headroom.reconcilers.runtime import Runtime

log = logging.getLogger("headroom")
JSON = dict[str, Any]
REJECTED = "StatusWriteRejected"
# A condition reason must be CamelCase-like (the CRD's pattern); the server's reason is one
# (Invalid, Forbidden, BadRequest) unless a proxy or webhook made up something else.
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
StatusWrite = Callable[[JSON], Awaitable[JSON | None]]


def rejection(exc: KubeError) -> tuple[str, str]:
    """(reason, message) of the StatusWriteRejected condition for a refused status write."""
    reason = exc.reason if _REASON.match(exc.reason or "") else "Refused"
    message = scrub(
        f"the API server refused the status write ({exc.status} {exc.reason}): {exc.message}; "
        "only this condition was recorded, the write is tried again after the longest backoff"
    )
    return reason, message


def without_rejection(conditions: Iterable[Mapping[str, Any]] | None) -> list[JSON]:
    """The conditions once a status write went through: the refusal is over."""
    return [dict(c) for c in conditions or [] if c.get("type") != REJECTED]


async def record_rejected(
    rt: Runtime,
    body: Mapping[str, Any],
    exc: KubeError,
    write: StatusWrite,
    now: datetime,
) -> JSON | None:
    """Record on `body` that its status write was refused. Returns the object as written, or
    None when nothing new was written (the same refusal is on record already, or the server
    refuses even the condition)."""
    reason, message = rejection(exc)
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation", 1))
    current = (body.get("status") or {}).get("conditions")
    stamp = format_time(now)
    merged = set_conditions(current, [(REJECTED, True, reason, message)], generation, stamp)
    if same_conditions(current, merged):
        return None  # an earlier pass recorded this very refusal: no write, no second Event
    rt.event(body, REJECTED, message, warning=True)
    alone = set_conditions(None, [(REJECTED, True, reason, message)], generation, stamp)
    for conditions in (merged, alone):
        try:
            return await write({"conditions": conditions})
        except KubeError as again:
            if not again.refused_write:
                raise
            log.warning(
                "%s/%s: even the %s condition was refused: %s",
                meta.get("namespace"),
                meta.get("name"),
                REJECTED,
                again,
            )
    return None
