"""The one Runtime of this operator process, created at start-up (see `main`)."""

from __future__ import annotations

from typing import Any

from headroom.reconcilers.runtime import Runtime

_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def runtime(**indexes: Any) -> Runtime:
    """The Runtime, with kopf's live indexes attached on first use."""
    if _runtime is None:
        raise RuntimeError("the operator's runtime is not installed yet")
    if "claudeaccounts_index" in indexes and "agent_pods_index" in indexes:
        _runtime.attach(indexes["claudeaccounts_index"], indexes["agent_pods_index"])
    # Background tasks start from the first handler, not from the startup hook: tasks inherit
    # the handler's context, which kopf needs for posting Events.
    _runtime.start_background()
    return _runtime


def installed() -> Runtime | None:
    """The Runtime if the operator has started (for filters that run before handlers)."""
    return _runtime
