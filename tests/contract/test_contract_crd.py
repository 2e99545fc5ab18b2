"""headroom.contract.crd against the CRDs themselves: every default the code applies is the
CRD's `default:`, and every cap the code cuts status values to fits the CRD's maxLength or
maxItems (one value over them and the API server refuses the whole status write)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from headroom.contract import crd
from headroom.core.durations import parse_duration
from headroom.core.session import FailoverPolicy
from headroom.reconcilers.conditions import set_conditions
from headroom.reconcilers.roster import account_from_body
from headroom.reconcilers.session_status import policy_of

CRDS = Path(__file__).resolve().parents[2] / "crds"
JSON = dict[str, Any]


def schema(kind: str) -> JSON:
    doc = yaml.safe_load((CRDS / f"{kind}.headroom.dev.yaml").read_text("utf-8"))
    (version,) = doc["spec"]["versions"]  # one version: a second one needs its own checks
    found: JSON = version["schema"]["openAPIV3Schema"]
    return found


def field(kind: str, path: str) -> JSON:
    """The schema of `path`, e.g. "status.conditions[].message"."""
    node = schema(kind)
    for part in path.split("."):
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        node = node["properties"][name]
        if is_list:
            node = node["items"]
    return node


SESSIONS, ACCOUNTS = "agentsessions", "claudeaccounts"

DEFAULTS = [
    (SESSIONS, "spec.failover.cooldown", crd.FAILOVER_COOLDOWN),
    (SESSIONS, "spec.failover.confirmations", crd.FAILOVER_CONFIRMATIONS),
    (SESSIONS, "spec.failover.maxSwaps", crd.FAILOVER_MAX_SWAPS),
    (SESSIONS, "spec.workspace.size", crd.WORKSPACE_SIZE),
    (ACCOUNTS, "spec.maxSessions", crd.ACCOUNT_MAX_SESSIONS),
    (ACCOUNTS, "spec.priority", crd.ACCOUNT_PRIORITY),
    (ACCOUNTS, "spec.paused", crd.ACCOUNT_PAUSED),
]


@pytest.mark.parametrize(("kind", "path", "value"), DEFAULTS, ids=[d[1] for d in DEFAULTS])
def test_each_default_is_the_crds(kind: str, path: str, value: object) -> None:
    default = field(kind, path)["default"]
    if isinstance(value, timedelta):  # the CRD writes a duration as text
        default = parse_duration(default)
    assert default == value
    assert type(default) is type(value)


def test_the_code_applies_the_defaults_when_a_field_is_absent() -> None:
    policy = policy_of({"prompt": "p"})
    assert policy == FailoverPolicy()
    assert (policy.cooldown, policy.confirmations, policy.max_swaps) == (
        crd.FAILOVER_COOLDOWN,
        crd.FAILOVER_CONFIRMATIONS,
        crd.FAILOVER_MAX_SWAPS,
    )
    account = account_from_body(
        {"metadata": {"namespace": "a", "name": "x"}, "spec": {"credentials": {}}}
    )
    assert (account.max_sessions, account.priority, account.paused) == (
        crd.ACCOUNT_MAX_SESSIONS,
        crd.ACCOUNT_PRIORITY,
        crd.ACCOUNT_PAUSED,
    )


CHARS = [
    (SESSIONS, "status.conditions[].message", crd.CONDITION_MESSAGE_CHARS),
    (ACCOUNTS, "status.conditions[].message", crd.CONDITION_MESSAGE_CHARS),
    (SESSIONS, "status.lastOutcome.detail", crd.DETAIL_CHARS),
    (SESSIONS, "status.result.detail", crd.DETAIL_CHARS),
    (SESSIONS, "status.pendingMove.message", crd.DETAIL_CHARS),
    (SESSIONS, "status.waitingMessage", crd.WAITING_MESSAGE_CHARS),
    (SESSIONS, "status.result.summary", crd.SUMMARY_CHARS),
    (SESSIONS, "status.lastOutcome.evidence", crd.EVIDENCE_CHARS),
    (ACCOUNTS, "status.lastSignal.evidence", crd.EVIDENCE_CHARS),
    # maxLength may be read as bytes: a character of UTF-8 takes up to 4.
    (ACCOUNTS, "status.drill.value", 4 * crd.DRILL_VALUE_CHARS),
]


@pytest.mark.parametrize(("kind", "path", "cap"), CHARS, ids=[f"{k}:{p}" for k, p, _ in CHARS])
def test_each_string_cap_fits_the_crd(kind: str, path: str, cap: int) -> None:
    assert cap <= field(kind, path)["maxLength"]


ITEMS = [
    (SESSIONS, "status.swaps", crd.SWAP_RECORDS),
    (SESSIONS, "status.attempts", crd.ATTEMPT_RECORDS),
    (ACCOUNTS, "status.windows", crd.WINDOW_RECORDS),
]


@pytest.mark.parametrize(("kind", "path", "cap"), ITEMS, ids=[f"{k}:{p}" for k, p, _ in ITEMS])
def test_each_list_cap_fits_the_crd(kind: str, path: str, cap: int) -> None:
    assert cap <= field(kind, path)["maxItems"]


def test_a_start_problem_fits_in_a_condition_message() -> None:
    # "container <name>: <message>": a container name is at most 63 characters.
    assert len("container : ") + 63 + crd.START_PROBLEM_CHARS <= crd.CONDITION_MESSAGE_CHARS


def test_a_long_condition_message_is_cut_to_the_cap() -> None:
    (cond,) = set_conditions(None, [("Ready", False, "X", "m" * 40000)], 1, "now")
    assert len(cond["message"]) == crd.CONDITION_MESSAGE_CHARS
