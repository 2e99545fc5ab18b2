"""The operator's Prometheus endpoint after a real scenario: walls, a 401, a swap chain,
waiting, a wake-up, refused pods and a deleted account. Every number a dashboard or an alert
reads must have moved, every metric the Grafana dashboard names must be in the scrape, and no
label may carry a session name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families
from tests.support import dashboard
from tests.support.operator import OperatorProcess, Scene, in_seconds, wait_for

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(operator: OperatorProcess) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(operator.metrics()):
        for s in family.samples:
            if s.name.startswith("headroom_"):
                samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def eventually(
    operator: OperatorProcess, what: str, check: Callable[[Samples], bool], timeout: float = 40
) -> Samples:
    """The session-phase gauges refresh every few seconds: wait for the scrape to agree."""

    def probe() -> Samples | None:
        samples = scrape(operator)
        return samples if check(samples) else None

    return wait_for(what, probe, timeout)


def test_metrics_move_with_walls_auth_failures_swaps_and_waiting(
    scene: Scene, operator: OperatorProcess
) -> None:
    ns = scene.ns
    scene.account("alice", priority=5, max_sessions=2)
    scene.account("bob", priority=3, max_sessions=2)
    scene.account("carol", max_sessions=1)
    s1 = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    scene.wait_running(scene.session("s2")["metadata"]["name"], attempt=1)
    assert s1["account"] == "alice"

    # A wall with a reset time: alice is Walled, s1 swaps to bob.
    scene.finish_pod(
        s1["podName"],
        Outcome.WALLED,
        window="five_hour",
        resets_at=in_seconds(3600),
        utilization={"five_hour": 1.0, "seven_day": 0.4},
        evidence="You've hit your 5-hour limit",
    )
    s1 = scene.wait_running("s1", attempt=2)
    assert s1["account"] == "bob"
    scene.wait_phase("claudeaccounts", "alice", "Walled")
    # A startup 401 on bob: bob is AuthFailed, s1 swaps again, to carol.
    scene.finish_pod(s1["podName"], Outcome.AUTH_FAILED, evidence="401 authentication_failed")
    s1 = scene.wait_running("s1", attempt=3)
    assert s1["account"] == "carol"
    scene.wait_phase("claudeaccounts", "bob", "AuthFailed")

    m = eventually(
        operator,
        "account metrics",
        lambda m: (
            value(m, "headroom_account_phase", namespace=ns, account="bob", phase="AuthFailed") == 1
            and value(m, "headroom_account_active_sessions", namespace=ns, account="carol") == 1
        ),
    )
    phase = {
        a: {
            p
            for p in ("Available", "Walled", "AuthFailed", "Paused", "Unknown")
            if value(m, "headroom_account_phase", namespace=ns, account=a, phase=p) == 1
        }
        for a in ("alice", "bob", "carol")
    }
    assert phase == {"alice": {"Walled"}, "bob": {"AuthFailed"}, "carol": {"Available"}}
    assert value(m, "headroom_account_max_sessions", namespace=ns, account="alice") == 2
    assert (
        value(m, "headroom_account_walls_total", namespace=ns, account="alice", window="five_hour")
        == 1
    )
    assert value(m, "headroom_account_auth_failures_total", namespace=ns, account="bob") == 1
    five_hour = {"namespace": ns, "account": "alice", "window": "five_hour"}
    assert value(m, "headroom_account_window_utilization", **five_hour) == 1.0
    assert (
        value(m, "headroom_account_window_utilization", **{**five_hour, "window": "seven_day"})
        == 0.4
    )
    left = value(m, "headroom_account_window_reset_seconds", **five_hour)
    assert left is not None and 3000 < left <= 3600, left
    assert value(m, "headroom_account_window_resets_at_timestamp_seconds", **five_hour)
    assert value(m, "headroom_swaps_total", namespace=ns, reason="Walled") == 1
    assert value(m, "headroom_swaps_total", namespace=ns, reason="AuthFailed") == 1
    assert value(m, "headroom_failover_latency_seconds_count") == 2
    assert value(m, "headroom_attempts_total", outcome="walled") == 1
    assert value(m, "headroom_attempts_total", outcome="auth_failed") == 1
    assert value(m, "headroom_operator_active") == 1

    # The scrape counts down between reconciles (computed when scraped, not when written).
    later = wait_for(
        "reset seconds to count down",
        lambda: (
            (v := value(scrape(operator), "headroom_account_window_reset_seconds", **five_hour))
            is not None
            and v < left - 1.5
            and v
        ),
    )
    assert later < left

    # No headroom anywhere (alice walled, bob AuthFailed, carol full): two sessions wait.
    for name in ("s3", "s4"):
        scene.session(name)
        scene.wait_phase("agentsessions", name, "Waiting")
    m = eventually(
        operator,
        "waiting gauges",
        lambda m: (
            value(m, "headroom_sessions", namespace=ns, phase="Waiting") == 2
            and (value(m, "headroom_waiting_oldest_seconds", namespace=ns) or 0) > 0
        ),
    )
    assert value(m, "headroom_sessions", namespace=ns, phase="Running") == 2
    assert (value(m, "headroom_waits_total") or 0) >= 2
    assert value(m, "headroom_pool_available_accounts", namespace=ns) == 1  # carol, but full
    assert value(m, "headroom_waiting_seconds_count") in (None, 0)

    # s1 completes: its slot on carol goes to the longest waiting session.
    scene.finish_pod(s1["podName"], Outcome.COMPLETED, turns=3, cost_usd=0.1)
    scene.wait_phase("agentsessions", "s1", "Succeeded")
    # Whichever waiter reconciles first takes the slot (no strict FIFO): the other waits on.
    placed, still_waiting = wait_for(
        "one waiter placed",
        lambda: next(
            (
                (n, o)
                for n, o in (("s3", "s4"), ("s4", "s3"))
                if scene.status("agentsessions", n).get("phase") == "Running"
            ),
            None,
        ),
    )
    running = scene.status("agentsessions", placed)
    assert running["account"] == "carol"
    m = eventually(
        operator,
        "a finished wait",
        lambda m: (
            value(m, "headroom_waiting_seconds_count") == 1
            and value(m, "headroom_sessions", namespace=ns, phase="Succeeded") == 1
        ),
    )
    assert value(m, "headroom_sessions", namespace=ns, phase="Waiting") == 1
    assert value(m, "headroom_attempts_total", outcome="completed") == 1
    assert value(m, "headroom_reconcile_errors_total", kind="AgentSession") in (None, 0)

    # The namespace refuses new pods (a quota): placing the other waiter fails, and counts.
    scene.core.create_namespaced_resource_quota(
        ns,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="no-more-pods"),
            spec=client.V1ResourceQuotaSpec(hard={"pods": "0"}),
        ),
    )
    scene.finish_pod(running["podName"], Outcome.COMPLETED, turns=1, cost_usd=0.01)
    m = eventually(
        operator,
        "reconcile errors",
        lambda m: (value(m, "headroom_reconcile_errors_total", kind="AgentSession") or 0) >= 1,
    )
    refused = eventually(
        operator,
        "the refused pod counted",
        lambda m: bool(
            value(m, "headroom_writes_refused_total", resource="pods", reason="Forbidden")
        ),
    )
    assert value(refused, "headroom_writes_refused_total", resource="pods", reason="Forbidden")
    assert scene.condition("agentsessions", still_waiting, "Scheduled")["reason"] in (
        "PodCreateFailed",
        "NoHeadroom",  # between retries the refused slot may show as taken
    )

    # Every metric the Grafana dashboard's panels and variables read is in this scrape, the
    # operator's real output after walls, a 401, swaps, waits and a refused pod.
    scraped = {metric for metric, _ in m}
    for panel, used in dashboard.metrics(dashboard.load()).items():
        assert used and used <= scraped, (panel, used - scraped)

    # Label cardinality: session names never appear; every label is from the bounded set.
    names = {"s1", "s2", "s3", "s4"}
    bounded = {"namespace", "account", "window", "phase", "reason", "outcome", "kind", "le",
               "resource"}  # fmt: skip
    for (metric, labels), _ in m.items():
        assert {k for k, _ in labels} <= bounded, metric
        assert not names & {v for _, v in labels}, (metric, labels)

    # A deleted account leaves no ghost series behind.
    scene.custom.delete_namespaced_custom_object(
        "headroom.dev", "v1alpha1", ns, "claudeaccounts", "bob"
    )
    eventually(operator, "bob's series dropped", lambda m: not _series_of(m, "bob"))


def _series_of(samples: Samples, account: str) -> list[Any]:
    return [key for key in samples if ("account", account) in key[1]]
