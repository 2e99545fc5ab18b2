"""A no-op "diff base" for kopf, because no Headroom handler needs one.

For every watch event of every watched kind, kopf deep-copies the object twice (to build the
"essence" that change handlers such as on.update diff against, then to strip its progress
fields), even when no such handler exists. Headroom reacts to events only (on.event, index),
so the copies were pure cost: in the failover benchmark's first profile they were the largest
single item, about a fifth of the operator's busy samples (docs/benchmarks.md). `install`
keeps kopf's default whenever a handler that does depend on it (on.create/update/resume/
delete/field, daemons, timers) is registered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf


class NoDiffBase(kopf.DiffBaseStorage):
    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def needs_diffbase(registry: kopf.OperatorRegistry) -> bool:
    """True if any registered handler depends on kopf's change detection."""
    # kopf has no public accessor for these registries; they are stable across 1.3x-1.45.
    changing = list(registry._changing.get_all_handlers())
    spawning = list(registry._spawning.get_all_handlers())
    return bool(changing or spawning)


def install(settings: kopf.OperatorSettings, registry: kopf.OperatorRegistry) -> bool:
    """Use NoDiffBase unless a handler needs the real one; True if installed."""
    if needs_diffbase(registry):
        return False
    settings.persistence.diffbase_storage = NoDiffBase()
    return True
