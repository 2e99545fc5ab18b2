"""The kinds the plugin reads. Accounts are a list of kinds, each rendered as its own section
of `status`, so that another kind of account (say, one scoped to the cluster) is one more
entry here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headroom import API_VERSION


@dataclass(frozen=True)
class Kind:
    name: str  # as `kubectl get` spells it
    plural: str
    namespaced: bool = True
    api_version: str = API_VERSION


CLAUDE_ACCOUNT = Kind("ClaudeAccount", "claudeaccounts")
CLUSTER_CLAUDE_ACCOUNT = Kind("ClusterClaudeAccount", "clusterclaudeaccounts", namespaced=False)
AGENT_SESSION = Kind("AgentSession", "agentsessions")

ACCOUNT_KINDS: tuple[Kind, ...] = (CLAUDE_ACCOUNT, CLUSTER_CLAUDE_ACCOUNT)


@dataclass(frozen=True)
class Listing:
    """The objects of one kind, or why they could not be read (not installed, not allowed):
    one kind that cannot be listed still leaves the others to show."""

    kind: Kind
    items: tuple[dict[str, Any], ...] = ()
    problem: str = ""
