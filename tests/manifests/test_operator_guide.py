"""docs/operator-guide.md stays true: every metric the operator exports is documented, every
runbook link of the alerts lands on a heading, every RBAC rule is in the RBAC table, and
every condition reason the operator writes has a troubleshooting row."""

from __future__ import annotations

import inspect
import re

from tests.manifests.test_alerts import alerts
from tests.support.manifests import REPO, Rendered, find
from tests.support.metric_names import exported

GUIDE = (REPO / "docs" / "operator-guide.md").read_text()
OPERATOR = REPO / "operator" / "headroom"


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_every_exported_metric_is_documented() -> None:
    documented = set(re.findall(r"^\| `(headroom_[a-z_]+)` \|", GUIDE, re.MULTILINE))
    families = set()
    for sample in exported():
        base = re.sub(r"_(bucket|sum|count)$", "", sample)
        families.add(base)
    assert families == documented


def test_every_runbook_link_lands_on_a_heading() -> None:
    headings = anchors(GUIDE)
    for name, rule in alerts().items():
        for link in re.findall(
            r"docs/operator-guide\.md#([a-z0-9-]+)", rule["annotations"]["runbook"]
        ):
            assert link in headings, f"{name}: #{link}"
        assert f"`{name}`" in GUIDE


def test_every_rbac_rule_is_in_the_table(rendered: Rendered) -> None:
    scopes = ("| cluster |", "| `agents` |", "| `headroom-system` |")
    rows = [line for line in GUIDE.splitlines() if line.startswith(scopes)]
    for kind, name in (("ClusterRole", "headroom-operator"), ("Role", "headroom-operator"),
                       ("Role", "headroom-operator-cluster-accounts")):  # fmt: skip
        for rule in find(rendered, kind, name)["rules"]:
            resources = ", ".join(rule["resources"])
            verbs = ", ".join(rule["verbs"])
            assert any(resources in row and f"| {verbs} |" in row for row in rows), rule


def condition_reasons() -> set[str]:
    """Every reason the operator writes into a condition, read from its source."""
    code = "\n".join(
        p.read_text()
        for p in [*(OPERATOR / "reconcilers").glob("*.py"), OPERATOR / "core" / "accounts.py",
                  OPERATOR / "core" / "session.py", OPERATOR / "core" / "task.py",
                  OPERATOR / "core" / "outcome.py"]
    )  # fmt: skip
    patterns = [
        r'condition\(\s*"\w+",\s*[\w.]+,\s*"(\w+)"',  # self.condition("Ready", False, "X", ...)
        r'AccountState\(\s*AccountPhase\.\w+,\s*"(\w+)"',  # account phases' Ready reasons
        r'key, "(\w+)"',  # credentials_of: CredentialsValid reasons, one per line
        r'SessionPhase\.\w+,\s*"(\w+)"(?!:)',  # how a session finished (not a dict key)
        r'"(\w+)" if auth_failed',
        r'AccountPhase\.WALLED else "(\w+)"',  # Walled=False
        r'cause or "(\w+)"',  # a failure's own reason, else the generic one
        r'Stop\(\s*"(\w+)"',  # limits the user set (TimedOut, BudgetExhausted, ...)
        r'CLONE_FAILED = "(\w+)"',
        r'reason = "(\w+)" if .* else "(\w+)"',  # continueFrom's waiting reasons
        r'^\s+"((?:Err|Image|Invalid|Create|Run)\w+)",$',  # kubelet waiting reasons copied
    ]
    found: set[str] = set()
    # credentials_of spreads one return over several lines: its CamelCase string literals.
    from headroom.reconcilers.account import credentials_of

    source = inspect.getsource(credentials_of)
    found |= set(re.findall(r'^\s+"([A-Z]\w+)",$', source, re.MULTILINE))
    for pattern in patterns:
        for match in re.findall(pattern, code, re.MULTILINE):
            found |= {m for m in (match if isinstance(match, tuple) else (match,)) if m}
    # The core's decisions: how a session finished (Completed), why it is placed again
    # (Ready); Moved only ever names a swap record, never a condition.
    from headroom.core.reasons import FinishReason, MoveReason

    found |= {r.value for r in FinishReason}
    found |= {r.value for r in MoveReason if r is not MoveReason.MOVED}
    return found


def test_every_condition_reason_has_a_troubleshooting_row() -> None:
    reasons = condition_reasons()
    # The reader works: the reasons of both kinds' main paths are among what it found.
    assert {
        "Placing",
        "NoHeadroom",
        "BackingOff",
        "PodCreateFailed",
        "Placed",
        "Running",
        "Completed",
        "RetriesExhausted",
        "SwapLimitReached",
        "InvalidSpec",
        "RepoCloneFailed",
        "TimedOut",
        "BudgetExhausted",
        "NoHeadroomTimeout",
        "PredecessorRunning",
        "PredecessorNotFound",
        "PredecessorHasNoConversation",
        "ErrImagePull",
        "CreateContainerConfigError",
        "Available",
        "UsageLimitReached",
        "Drill",
        "Paused",
        "AuthenticationFailed",
        "SecretNotFound",
        "KeyNotFound",
        "Unreadable",
        "EmptyCredential",
        "CredentialsInvalid",
    } <= reasons
    missing = [r for r in sorted(reasons) if f"`{r}`" not in GUIDE]
    assert missing == []
