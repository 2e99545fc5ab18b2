"""The kinds the plugin reads. Accounts are a list of kinds, each rendered as its own section
of `status` and named on the command line as kubectl names objects (`cca/shared-max`), so
that another kind of account is one more entry here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headroom import API_VERSION, GROUP
from headroom.plugin.errors import PluginError


@dataclass(frozen=True)
class Kind:
    name: str  # as `kubectl get` spells it
    plural: str
    namespaced: bool = True
    short: str = ""  # the CRD's short name
    api_version: str = API_VERSION

    def spellings(self) -> set[str]:
        """Every way `kubectl get` accepts the kind, in lower case."""
        names = {self.name.lower(), self.plural} | ({self.short} if self.short else set())
        return names | {f"{n}.{GROUP}" for n in names}


CLAUDE_ACCOUNT = Kind("ClaudeAccount", "claudeaccounts", short="ca")
CLUSTER_CLAUDE_ACCOUNT = Kind(
    "ClusterClaudeAccount", "clusterclaudeaccounts", namespaced=False, short="cca"
)
AGENT_SESSION = Kind("AgentSession", "agentsessions", short="ags")

ACCOUNT_KINDS: tuple[Kind, ...] = (CLAUDE_ACCOUNT, CLUSTER_CLAUDE_ACCOUNT)


def account_ref(text: str) -> tuple[Kind, str]:
    """`alice` (a ClaudeAccount of the namespace), `ca/alice`, or `cca/shared-max` and
    `ClusterClaudeAccount/shared-max` (the form status.account uses)."""
    if "/" not in text:
        return CLAUDE_ACCOUNT, text
    prefix, _, name = text.partition("/")
    for kind in ACCOUNT_KINDS:
        if prefix.lower() in kind.spellings() and name:
            return kind, name
    forms = " or ".join(f"{k.name}/NAME" for k in ACCOUNT_KINDS)
    raise PluginError(f"{text!r} names no account: write NAME, {forms}")


@dataclass(frozen=True)
class Listing:
    """The objects of one kind, or why they could not be read (not installed, not allowed):
    one kind that cannot be listed still leaves the others to show."""

    kind: Kind
    items: tuple[dict[str, Any], ...] = ()
    problem: str = ""
