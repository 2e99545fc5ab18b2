"""metav1.Condition lists: set a condition, keeping lastTransitionTime when status is unchanged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from headroom.contract.crd import CONDITION_MESSAGE_CHARS

JSON = dict[str, Any]


def set_conditions(
    current: Iterable[Mapping[str, Any]] | None,
    updates: Iterable[tuple[str, bool, str, str]],
    generation: int,
    now: str,
) -> list[JSON]:
    """Apply (type, status, reason, message) updates to a condition list."""
    by_type: dict[str, JSON] = {c["type"]: dict(c) for c in current or [] if "type" in c}
    for kind, ok, reason, message in updates:
        status = "True" if ok else "False"
        old = by_type.get(kind)
        changed = old is None or old.get("status") != status
        by_type[kind] = {
            "type": kind,
            "status": status,
            "observedGeneration": generation,
            "lastTransitionTime": now if changed or old is None else old["lastTransitionTime"],
            "reason": reason,
            "message": message[:CONDITION_MESSAGE_CHARS],
        }
    return sorted(by_type.values(), key=lambda c: c["type"])


def same_conditions(a: Iterable[Mapping[str, Any]] | None, b: Iterable[Mapping[str, Any]]) -> bool:
    return sorted(map(_key, a or [])) == sorted(map(_key, b))


def _key(c: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(c.get(k, "")) for k in ("type", "status", "reason", "message", "observedGeneration")
    )
