"""The Argo CD health checks (manifests/argocd/*.lua), run by Lua 5.1 (the dialect of Argo
CD's gopher-lua) through lupa, on objects shaped as the operator writes them."""

from __future__ import annotations

from typing import Any

import pytest
from lupa import lua51
from tests.support.manifests import MANIFESTS

ARGOCD = MANIFESTS / "argocd"


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run the check the way Argo CD does: `obj` is a global table, the script returns hs."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute((ARGOCD / f"health-{kind}.lua").read_text())
    return str(hs["status"]), str(hs["message"])


def cond(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "observedGeneration": 1, "lastTransitionTime": "2026-11-23T12:00:00Z"}  # fmt: skip


def obj(kind: str, status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "agents", "generation": generation},
        "spec": {},
    }
    if status is not None:
        body["status"] = status
    return body


SESSION_CASES = [
    ("no status yet", None, 1, "Progressing", "Waiting for the operator to place the session"),
    ("status without phase", {"conditions": []}, 1, "Progressing", "Waiting for the operator"),
    ("spec changed, not yet observed",
     {"phase": "Running", "observedGeneration": 1}, 2, "Progressing", "observe generation 2"),
    ("observedGeneration missing",
     {"phase": "Running"}, 1, "Progressing", "observe generation 1"),
    ("pending, placing",
     {"phase": "Pending", "observedGeneration": 1,
      "conditions": [cond("Scheduled", "False", "Placing", "choosing an account")]},
     1, "Progressing", "Placing: choosing an account"),
    ("pending, backing off",
     {"phase": "Pending", "observedGeneration": 1,
      "conditions": [cond("Scheduled", "False", "BackingOff", "next attempt at 12:01")]},
     1, "Progressing", "BackingOff: next attempt at 12:01"),
    ("running",
     {"phase": "Running", "observedGeneration": 1, "account": "alice",
      "conditions": [cond("Ready", "True", "Running", "the agent runs on alice")]},
     1, "Healthy", "Running: the agent runs on alice"),
    ("running, no conditions", {"phase": "Running", "observedGeneration": 1, "account": "bob"},
     1, "Healthy", "The agent runs on bob"),
    ("waiting for headroom",
     {"phase": "Waiting", "observedGeneration": 1, "waitingUntil": "2026-11-23T14:00:00Z",
      "conditions": [cond("Ready", "False", "NoHeadroom", "no account has headroom; "
                          "earliest reset 14:00")]},
     1, "Suspended", "NoHeadroom: no account has headroom; earliest reset 14:00"),
    ("waiting, no conditions",
     {"phase": "Waiting", "observedGeneration": 1, "waitingUntil": "2026-11-23T14:00:00Z"},
     1, "Suspended", "until 2026-11-23T14:00:00Z"),
    ("succeeded",
     {"phase": "Succeeded", "observedGeneration": 1,
      "conditions": [cond("Completed", "True", "Completed", "the run finished"),
                     cond("Ready", "True", "Completed", "the run finished")]},
     1, "Healthy", "Completed: the run finished"),
    ("failed, retries exhausted",
     {"phase": "Failed", "observedGeneration": 1,
      "conditions": [cond("Ready", "False", "RetriesExhausted", "3 attempts in a row failed")]},
     1, "Degraded", "RetriesExhausted: 3 attempts in a row failed"),
    ("failed, swap limit",
     {"phase": "Failed", "observedGeneration": 1,
      "conditions": [cond("Ready", "False", "SwapLimitReached", "moved 20 times")]},
     1, "Degraded", "SwapLimitReached: moved 20 times"),
    ("unknown future phase", {"phase": "Hibernating", "observedGeneration": 1},
     1, "Progressing", "Phase Hibernating"),
]  # fmt: skip

ACCOUNT_CASES = [
    ("no status yet", None, 1, "Progressing", "Waiting for the operator to verify"),
    ("spec changed, not yet observed",
     {"phase": "Available", "observedGeneration": 2}, 3, "Progressing", "observe generation 3"),
    ("available",
     {"phase": "Available", "observedGeneration": 1,
      "conditions": [cond("Ready", "True", "Available", "ready for new sessions")]},
     1, "Healthy", "Available: ready for new sessions"),
    ("walled",
     {"phase": "Walled", "observedGeneration": 1, "walledUntil": "2026-11-23T14:00:00Z",
      "conditions": [cond("Ready", "False", "UsageLimitReached", "usage limit reached"),
                     cond("Walled", "True", "UsageLimitReached",
                          "usage limit reached (five_hour); resets at 14:00")]},
     1, "Suspended", "UsageLimitReached: usage limit reached (five_hour); resets at 14:00"),
    ("walled by a drill",
     {"phase": "Walled", "observedGeneration": 1,
      "conditions": [cond("Walled", "True", "Drill", "a failover drill treats the account "
                          "as walled until 12:02")]},
     1, "Suspended", "Drill: a failover drill"),
    ("walled, no conditions",
     {"phase": "Walled", "observedGeneration": 1, "walledUntil": "2026-11-23T14:00:00Z"},
     1, "Suspended", "Usage limit reached until 2026-11-23T14:00:00Z"),
    ("paused",
     {"phase": "Paused", "observedGeneration": 1,
      "conditions": [cond("Ready", "False", "Paused", "spec.paused is true: no new sessions")]},
     1, "Suspended", "Paused: spec.paused is true"),
    ("auth failed",
     {"phase": "AuthFailed", "observedGeneration": 1,
      "conditions": [cond("CredentialsValid", "False", "AuthenticationFailed",
                          "the API rejected these credentials (401)")]},
     1, "Degraded", "AuthenticationFailed: the API rejected these credentials (401)"),
    ("secret missing",
     {"phase": "Unknown", "observedGeneration": 1,
      "conditions": [cond("CredentialsValid", "False", "SecretNotFound",
                          "Secret 'alice-claude' was not found in namespace agents")]},
     1, "Degraded", "SecretNotFound: Secret 'alice-claude' was not found"),
    ("unknown, no conditions", {"phase": "Unknown", "observedGeneration": 1},
     1, "Degraded", "The credentials could not be read"),
    ("duplicate credential",
     {"phase": "Duplicate", "observedGeneration": 1,
      "conditions": [cond("DuplicateCredential", "True", "DuplicateCredential",
                          "holds the same credential as ClaudeAccount team-a/max-1")]},
     1, "Degraded", "DuplicateCredential: holds the same credential as ClaudeAccount team-a/max-1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "generation", "expected", "message"),
    [c[1:] for c in SESSION_CASES],
    ids=[c[0] for c in SESSION_CASES],
)
def test_agentsession_health(
    status: dict[str, Any] | None, generation: int, expected: str, message: str
) -> None:
    got, text = health("agentsession", obj("AgentSession", status, generation))
    assert got == expected
    assert message in text


@pytest.mark.parametrize(
    ("status", "generation", "expected", "message"),
    [c[1:] for c in ACCOUNT_CASES],
    ids=[c[0] for c in ACCOUNT_CASES],
)
@pytest.mark.parametrize("kind", ["ClaudeAccount", "ClusterClaudeAccount"])
def test_claudeaccount_health(
    status: dict[str, Any] | None, generation: int, expected: str, message: str, kind: str
) -> None:
    got, text = health("claudeaccount", obj(kind, status, generation))
    assert got == expected
    assert message in text


def test_every_phase_of_the_crds_is_covered() -> None:
    """A phase added to a CRD enum must get a deliberate health mapping (and a case here)."""
    import yaml

    from headroom.reconcilers.metrics import PHASES, SESSION_PHASES

    crds = MANIFESTS.parent / "crds"
    for plural, cases, known in (("agentsessions", SESSION_CASES, SESSION_PHASES),
                                 ("claudeaccounts", ACCOUNT_CASES, PHASES),
                                 ("clusterclaudeaccounts", ACCOUNT_CASES, PHASES)):  # fmt: skip
        crd = yaml.safe_load((crds / f"{plural}.headroom.dev.yaml").read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        enum = set(schema["properties"]["status"]["properties"]["phase"]["enum"])
        assert enum == set(known)
        covered = {(c[1] or {}).get("phase") for c in cases}
        assert enum <= covered, enum - covered


def test_only_argo_statuses_are_returned() -> None:
    allowed = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
    for kind, cases in (("agentsession", SESSION_CASES), ("claudeaccount", ACCOUNT_CASES)):
        for _, status, generation, _, _ in cases:
            got, text = health(kind, obj(kind, status, generation))
            assert got in allowed and text
