"""What a person at a terminal sees, through the built kubectl: printer columns, `describe`,
and `kubectl wait` on the conditions the operator writes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.support.operator import OperatorProcess, Scene, in_seconds

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration


def table(text: str) -> list[dict[str, str]]:
    """kubectl's table output as rows keyed by header; cells are cut at the header's column
    starts, so empty cells (an account with no reset) stay empty instead of shifting."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def by_name(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["NAME"].rsplit("/", 1)[-1]: row for row in rows}


def test_kubectl_wait_for_ready_then_completed(
    scene: Scene, operator: OperatorProcess, kubectl: Any
) -> None:
    ns = scene.ns
    scene.account("alice")
    scene.session("x")
    ready = kubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=60s", "agentsession/x")
    assert ready.stdout.strip() == "agentsession.headroom.dev/x condition met"
    status = scene.status("agentsessions", "x")
    assert (status["phase"], status["account"]) == ("Running", "alice")

    scene.finish_pod(status["podName"], Outcome.COMPLETED, turns=7, cost_usd=0.42)
    done = kubectl("wait", "-n", ns, "--for=condition=Completed", "--timeout=60s", "ags/x")
    assert "condition met" in done.stdout
    kubectl("wait", "-n", ns, "--for=jsonpath={.status.phase}=Succeeded", "--timeout=30s", "ags/x")
    # A finished run stays Ready (reason Completed): `kubectl wait` scripts do not hang on it.
    kubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=10s", "ags/x")
    row = by_name(table(kubectl("get", "ags", "-n", ns, "-o", "wide").stdout))["x"]
    assert (row["PHASE"], row["ACCOUNT"], row["SWAPS"], row["REASON"]) == (
        "Succeeded",
        "alice",
        "0",
        "Completed",
    )


def test_kubectl_wait_times_out_while_a_session_waits_for_headroom(
    scene: Scene, operator: OperatorProcess, kubectl: Any
) -> None:
    ns = scene.ns
    scene.account("alice", max_sessions=1)
    scene.session("first")
    kubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=60s", "ags/first")
    scene.session("second")
    kubectl("wait", "-n", ns, "--for=condition=Ready=false", "--timeout=60s", "ags/second")
    scene.wait_phase("agentsessions", "second", "Waiting")
    stuck = kubectl(
        "wait", "-n", ns, "--for=condition=Ready", "--timeout=3s", "ags/second", check=False
    )
    assert stuck.returncode != 0
    assert "timed out" in stuck.stderr
    rows = by_name(table(kubectl("get", "ags", "-n", ns, "-o", "wide").stdout))
    assert (rows["second"]["PHASE"], rows["second"]["ACCOUNT"]) == ("Waiting", "")
    assert rows["second"]["REASON"] == "NoHeadroom"
    assert (rows["first"]["PHASE"], rows["first"]["REASON"]) == ("Running", "Running")
    described = kubectl("describe", "ags", "second", "-n", ns).stdout
    assert "alice is full (1/1)" in described  # the Scheduled condition says why it waits
    assert re.search(r"Warning\s+NoHeadroom\s+\S+\s+headroom-operator\s", described), described


def test_printer_columns_and_describe_after_a_swap(
    scene: Scene, operator: OperatorProcess, kubectl: Any
) -> None:
    ns = scene.ns
    scene.account("alice", priority=5)
    scene.account("bob")
    scene.session("x")
    first = scene.wait_running("x", attempt=1)
    reset = in_seconds(3600)
    scene.finish_pod(first["podName"], Outcome.WALLED, window="five_hour", resets_at=reset)
    scene.wait_running("x", attempt=2)
    scene.wait_phase("claudeaccounts", "alice", "Walled")
    scene.wait_phase("claudeaccounts", "bob", "Available")
    kubectl(
        "wait", "-n", ns, "--for=jsonpath={.status.activeSessions}=1", "--timeout=30s", "ca/bob"
    )
    # Accounts answer `kubectl wait` too: Ready while they take sessions, Walled while not.
    kubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=10s", "claudeaccount/bob")
    kubectl("wait", "-n", ns, "--for=condition=Walled", "--timeout=10s", "claudeaccount/alice")
    kubectl("wait", "-n", ns, "--for=condition=Ready=false", "--timeout=10s", "ca/alice")

    sessions = table(kubectl("get", "agentsessions", "-n", ns).stdout)
    assert list(sessions[0]) == ["NAME", "PHASE", "ACCOUNT", "SWAPS", "AGE"]
    assert {k: sessions[0][k] for k in ("NAME", "PHASE", "ACCOUNT", "SWAPS")} == {
        "NAME": "x",
        "PHASE": "Running",
        "ACCOUNT": "bob",
        "SWAPS": "1",
    }
    wide = table(kubectl("get", "ags", "-n", ns, "-o", "wide").stdout)[0]
    assert (wide["ATTEMPT"], wide["PATH"], wide["REASON"]) == ("2", "primary", "Running")

    accounts = table(kubectl("get", "claudeaccounts", "-n", ns).stdout)
    assert list(accounts[0]) == ["NAME", "PHASE", "ACTIVE", "MAX", "RESETS", "AGE"]
    rows = by_name(accounts)
    assert [rows["alice"][k] for k in ("PHASE", "ACTIVE", "MAX", "RESETS")] == [
        "Walled",
        "0",
        "2",
        reset,  # an absolute time, not kubectl's "<invalid>" for a future date column
    ]
    assert [rows["bob"][k] for k in ("PHASE", "ACTIVE", "MAX", "RESETS")] == [
        "Available",
        "1",
        "2",
        "",
    ]
    wide_accounts = by_name(table(kubectl("get", "ca", "-n", ns, "-o", "wide").stdout))
    assert wide_accounts["alice"]["REASON"] == "UsageLimitReached"
    assert wide_accounts["alice"]["TYPE"] == "OAuthToken"

    listed = kubectl("get", "headroom", "-n", ns, "-o", "name").stdout.split()
    # The category also lists cluster accounts (cluster-scoped), which belong to no namespace.
    both = [n for n in listed if not n.startswith("clusterclaudeaccount.")]
    assert sorted(both) == [
        "agentsession.headroom.dev/x",
        "claudeaccount.headroom.dev/alice",
        "claudeaccount.headroom.dev/bob",
    ]

    session = kubectl("describe", "agentsession", "x", "-n", ns).stdout
    for line in (
        r"Phase:\s+Running",
        r"Account:\s+bob",
        r"Swap Count:\s+1",
        r"Message:\s+attempt 2 runs on bob \(primary credentials\)",
        r"From:\s+alice",
        r"Reason:\s+Walled",
        r"Window:\s+five_hour",
    ):
        assert re.search(line, session), (line, session)
    events = session.split("\nEvents:", 1)[1]
    for reason in ("Placed", "Swapped"):
        assert re.search(rf"Normal\s+{reason}\s+\S+\s+headroom-operator\s", events), events
    assert "moved from alice to bob (Walled)" in events

    account = kubectl("describe", "claudeaccount", "alice", "-n", ns).stdout
    assert re.search(rf"Walled Until:\s+{reset}", account), account
    assert re.search(r"Type:\s+Walled", account)
    assert "Secret 'alice-claude' key 'token' is present" in account
    assert "fake-alice-token" not in account  # the credential itself never shows
    account_events = account.split("\nEvents:", 1)[1]
    assert re.search(r"Warning\s+Walled\s+\S+\s+headroom-operator\s", account_events)
