"""What every kopf handler of this operator receives as `memo`: the flags it started with and,
from the startup handler on, the one Runtime of the process.

`main` builds the memo before kopf starts and hands it to `kopf.run(memo=...)`; kopf passes it
to the startup and cleanup handlers, to every event handler and index, and to the `when=`
filters. Nothing of the operator lives in module globals, so a test builds a memo of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self, cast

from headroom.reconcilers.runtime import (
    AccountsIndex,
    ClaimsIndex,
    Indexes,
    NamespacesIndex,
    PodsIndex,
    Runtime,
    Settings,
)


@dataclass(frozen=True)
class Peering:
    """The --peering flags, when the operator runs as one of several replicas."""

    name: str
    priority: int
    clusterwide: bool
    lifetime: int
    # The peering objects' namespaces (None: the cluster-wide one), checked before kopf starts.
    targets: tuple[str | None, ...] = ()


@dataclass
class OperatorMemo:
    settings: Settings
    identity: str
    peering: Peering | None = None
    runtime: Runtime | None = None  # set by the startup handler, which connects to the API
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __copy__(self) -> Self:
        # kopf gives each watched object a shallow copy of the operator's memo. One operator
        # has one Runtime, shared by every object whenever the object was first seen, so the
        # copy is the memo itself.
        return self

    def acting(self) -> Runtime:
        """The Runtime, for an event handler: its background tasks start with the first one,
        not from the startup hook, because tasks inherit the handler's context, which kopf
        needs for posting Events."""
        if self.runtime is None:
            raise RuntimeError("the operator's runtime is not installed yet")
        self.runtime.start_background()
        return self.runtime


def kopf_indexes(kwargs: Mapping[str, object], pods: PodsIndex) -> Indexes:
    """The live indexes of accounts, namespaces and workspace claims from a handler's keyword
    arguments, beside the agent pods' (which the operator's own watch keeps). kopf passes each
    index under its function's name, which its handler protocols cannot spell out: hence the
    casts, to the shapes the indexes in controllers/ return."""
    return Indexes(
        accounts=cast(AccountsIndex, kwargs["claudeaccounts_index"]),
        cluster_accounts=cast(AccountsIndex, kwargs["clusterclaudeaccounts_index"]),
        namespaces=cast(NamespacesIndex, kwargs["namespace_labels_index"]),
        pods=pods,
        claims=cast(ClaimsIndex, kwargs["workspace_claims_index"]),
    )
