"""The floor client's pieces and the table's ratios, without a cluster (the floor itself runs
in `make bench`)."""

from __future__ import annotations

import ssl
from collections import Counter
from typing import Any

from tests.bench.cluster import client_of
from tests.bench.failover import FloorResult, RunResult, Window
from tests.bench.floor import Floor, ended, replacement, status_patch
from tests.bench.report import summary_table

from headroom.contract.pod import ANN_ACCOUNT, ANN_SESSION, LABEL_ATTEMPT
from headroom.kube.transport import USER_AGENT


def pod(name: str = "s-00001-2", attempt: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "bench-100",
            "uid": "u-1",
            "resourceVersion": "42",
            "creationTimestamp": "2026-12-01T00:00:00Z",
            "managedFields": [{"manager": "x"}],
            "labels": {LABEL_ATTEMPT: str(attempt), "app.kubernetes.io/managed-by": "headroom"},
            "annotations": {ANN_SESSION: "s-00001", ANN_ACCOUNT: "acct-07"},
            "ownerReferences": [{"kind": "AgentSession", "name": "s-00001", "uid": "s-u"}],
        },
        "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "agent", "image": "i"}]},
        "status": status or {"phase": "Running"},
    }


def test_the_replacement_is_the_ended_pod_as_the_next_attempt() -> None:
    old = pod(phase="Failed")
    new = replacement(old, 3)
    assert new["metadata"]["name"] == "s-00001-3"
    assert new["metadata"]["labels"][LABEL_ATTEMPT] == "3"
    for server_field in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        assert server_field not in new["metadata"]
    assert "status" not in new and "nodeName" not in new["spec"]
    assert new["spec"]["containers"] == old["spec"]["containers"]
    assert new["metadata"]["ownerReferences"] == old["metadata"]["ownerReferences"]
    assert old["metadata"]["name"] == "s-00001-2"  # the watched object is left as it was


def test_status_patch_records_the_swap_as_the_operator_does() -> None:
    old = pod()
    patch = status_patch(old, replacement(old, 3), 3)["status"]
    assert patch["phase"] == "Running" and patch["attempt"] == 3
    assert patch["podName"] == "s-00001-3" and patch["previousPod"] == "s-00001-2"
    assert patch["account"] == "acct-07"
    assert {c["type"] for c in patch["conditions"]} == {"Scheduled", "Ready"}


def test_only_a_pod_that_ended_starts_a_failover_and_only_once() -> None:
    floor = Floor("https://127.0.0.1:1", ssl.create_default_context(), {})
    started: list[str] = []
    floor.start = lambda p: started.append(p["metadata"]["name"])  # type: ignore[method-assign]
    terminated = {"containerStatuses": [{"state": {"terminated": {"exitCode": 75}}}]}
    assert not ended(pod())
    assert ended(pod(**terminated)) and ended(pod(phase="Failed"))

    def feed(kind: str, obj: dict[str, Any]) -> None:
        floor.event({"type": kind, "object": obj})

    feed("ADDED", pod("s-00002-1", 1))
    feed("MODIFIED", pod())
    assert started == []
    going = pod("s-00003-2", **terminated)
    going["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:01Z"
    feed("MODIFIED", going)
    feed("DELETED", pod("s-00004-2", phase="Failed"))
    assert started == []
    feed("MODIFIED", pod(**terminated))
    feed("MODIFIED", pod(phase="Failed", **terminated))  # the same pod, later
    assert started == ["s-00001-2"]


def row(floor: FloorResult | None) -> RunResult:
    window = Window(60.0, Counter(), Counter({"operator": 250}), Counter())
    return RunResult(
        n=100, k=25, accounts=50, max_sessions=3, setup_seconds=1, settle_seconds=1,
        to_pod_created=[1.0] * 24 + [4.0], to_session_running=[1.0] * 25,
        to_pod_running=[1.0] * 25, failover_seconds=1, cpu_failover=0.5, cpu_total=2.0,
        rss_peak_mb=130, rss_idle_mb=120, idle=window, failover=window, floor=floor,
    )  # fmt: skip


def test_the_table_gives_ratios_to_the_floor() -> None:
    floor_window = Window(5.0, Counter(), Counter({"floor": 75}), Counter())
    floor = FloorResult([0.5] * 24 + [1.0], [0.6] * 25, 1.0, 0.2, floor_window)
    line = summary_table([row(floor)]).splitlines()[-1]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "0.50 / 1.00 / 1.00"  # the floor's p50 / p99 / max
    assert cells[4] == "2.0x / 4.0x"  # operator ÷ floor, p50 and p99
    assert cells[7] == "20.0"  # operator CPU ms per failover: 0.5 s / 25
    assert cells[9].endswith("/ 10.0 / 3.0")  # requests per failover: operator, floor
    assert cells[10] == "3.3x"
    no_floor = summary_table([row(None)]).splitlines()[-1]
    assert "| - | - |" in no_floor


def test_requests_are_told_apart_by_user_agent() -> None:
    def who(agent: str) -> str:
        return client_of({"userAgent": agent})

    assert who("headroom-bench/floor") == "floor"
    assert who("headroom-bench/recorder") == "benchmark"
    # The operator's two clients: kopf's, and headroom.kube's transport.
    assert who("kopf/1.38.0") == "operator"
    assert who(USER_AGENT) == "operator"
    assert who("Python/3.11 aiohttp/3.14.5") == "Python"  # a client that did not say who it is
    assert who("kube-scheduler/v1.36.3 (linux/amd64) kubernetes/abc/scheduler") == "kube-scheduler"
