"""Live usage end to end: the operator (a real process on the kwok cluster) reads the stand-in's
`GET /api/oauth/usage` for the accounts its sessions run on. The utilization the stand-in
holds shows in the account's status.windows and in the metrics within the poll interval;
a token without the user:profile scope gets condition UsageReadable=False after exactly one
read, and is not read again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.operator.test_ha import LIFETIME, PEERING_FLAGS, kopf_peering_crd  # noqa: F401
from tests.support.operator import OperatorProcess, Scene, wait_for

from headroom_dev.sandbox.client import SandboxClient, SandboxProcess, start_sandbox

pytestmark = pytest.mark.integration

LOGIN = "sk-ant-oat01-live-usage-login"
SETUP = "sk-ant-oat01-live-usage-setup"
INTERVAL = 2.0  # the operator's --usage-poll-interval in seconds


@pytest.fixture
def stand_in() -> Iterator[SandboxProcess]:
    with start_sandbox() as server:
        yield server


@pytest.fixture
def polling_operator(
    kubeconfig: Path, namespace: str, tmp_path: Path, stand_in: SandboxProcess
) -> Iterator[OperatorProcess]:
    flags = ["--anthropic-base-url", stand_in.url, "--usage-poll-interval", f"{INTERVAL:g}s"]
    proc = OperatorProcess(kubeconfig, namespace, tmp_path / "operator", extra=flags).start()
    try:
        yield proc
    finally:
        proc.stop()


def usage_reads(sandbox: SandboxClient, credential: str) -> list[dict[str, Any]]:
    reads = [r for r in sandbox.requests() if r["path"].startswith("/api/oauth/usage")]
    return [r for r in reads if r["credential"] == credential]


def five_hour(scene: Scene, account: str) -> float | None:
    for window in scene.status("claudeaccounts", account).get("windows") or []:
        if window["name"] == "five_hour":
            return float(window["utilization"])
    return None


def gauge(operator: OperatorProcess, name: str, **labels: str) -> float | None:
    """A sample's value; None while the metrics endpoint is not up yet (a slow start)."""
    try:
        text = operator.metrics()
    except URLError:
        return None
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_status_follows_the_endpoint_and_a_setup_token_is_read_once(
    scene: Scene, stand_in: SandboxProcess, polling_operator: OperatorProcess
) -> None:
    sandbox = SandboxClient(stand_in.url)
    sandbox.set_usage_limit(1)  # the stand-in's per-token limit, under the poll interval
    sandbox.add_credential("login", "oauth", LOGIN, windows=[
        {"name": "five_hour", "capacity": 4}, {"name": "seven_day", "capacity": 100}])  # fmt: skip
    sandbox.add_credential("setup", "oauth", SETUP)
    sandbox.set_scopes("setup", ["user:inference"])  # what `claude setup-token` mints
    sandbox.use_window("login", "five_hour", 2)

    scene.account("login", token=LOGIN, labels={"tier": "max"})
    scene.account("setup", token=SETUP, labels={"tier": "setup"})
    scene.wait_running(scene.session("on-login")["metadata"]["name"])
    scene.wait_running(
        scene.session("on-setup", accountSelector={"matchLabels": {"tier": "setup"}})["metadata"][
            "name"
        ]
    )

    wait_for("five_hour at 0.5", lambda: five_hour(scene, "login") == 0.5, timeout=4 * INTERVAL)
    sandbox.use_window("login", "five_hour", 3)  # the account's use moves on
    wait_for("five_hour at 0.75", lambda: five_hour(scene, "login") == 0.75, timeout=4 * INTERVAL)
    metric = "headroom_account_window_utilization"
    wait_for("the utilization gauge", lambda: gauge(
        polling_operator, metric, namespace=scene.ns, account="login", window="five_hour"
    ) == 0.75, timeout=2 * INTERVAL)  # fmt: skip
    reads = usage_reads(sandbox, "login")
    assert all(r["status"] == 200 and r["beta"] == "oauth-2025-04-20" for r in reads)

    condition = wait_for(
        "UsageReadable=False",
        lambda: (
            (c := scene.condition("claudeaccounts", "setup", "UsageReadable"))
            and c["status"] == "False"
            and c
        ),
        timeout=4 * INTERVAL,
    )
    assert condition["reason"] == "UsageNotPermitted"
    assert scene.status("claudeaccounts", "setup")["phase"] == "Available"
    reasons = [e.reason for e in scene.events() if e.involved_object.name == "setup"]
    assert "UsageNotPermitted" in reasons
    wait_for("five more intervals", lambda: len(usage_reads(sandbox, "login")) >= len(reads) + 3,
             timeout=8 * INTERVAL)  # fmt: skip
    denied = usage_reads(sandbox, "setup")
    assert [r["status"] for r in denied] == [403]  # one read, never a second
    log = polling_operator.log_text()
    assert LOGIN not in log and SETUP not in log


def test_only_the_active_replica_reads_usage(
    kopf_peering_crd: None,  # noqa: F811
    kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    scene: Scene,
    stand_in: SandboxProcess,
) -> None:
    sandbox = SandboxClient(stand_in.url)
    sandbox.set_usage_limit(1)
    sandbox.add_credential("login", "oauth", LOGIN)
    flags = ["--anthropic-base-url", stand_in.url, "--usage-poll-interval", f"{INTERVAL:g}s",
             *PEERING_FLAGS]  # fmt: skip
    leader = OperatorProcess(kubeconfig, namespace, tmp_path / "leader",
                             extra=[*flags, "--priority", "200"]).start()  # fmt: skip
    standby = OperatorProcess(kubeconfig, namespace, tmp_path / "standby",
                              extra=[*flags, "--priority", "100"]).start()  # fmt: skip
    try:
        scene.account("login", token=LOGIN)
        scene.wait_running(scene.session("busy")["metadata"]["name"])
        reads = "headroom_usage_reads_total"
        wait_for("the leader's reads", lambda: (gauge(leader, reads, result="ok") or 0) >= 2,
                 timeout=6 * INTERVAL)  # fmt: skip
        assert not gauge(standby, reads, result="ok")
        leader.kill()  # the standby takes over once the leader's keep-alive is too old
        wait_for("the new leader's reads", lambda: (gauge(standby, reads, result="ok") or 0) >= 1,
                 timeout=LIFETIME + 30)  # fmt: skip
    finally:
        leader.stop()
        standby.stop()
