"""Pure rules behind HA and metrics: who leads from a peering record, what kopf's discovery
must show, and the guards that keep label cardinality bounded. No cluster needed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from headroom.controllers import main as operator_main
from headroom.controllers.peering import is_active, literal_namespaces, peering_problem
from headroom.reconcilers import metrics

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_window_labels() -> Iterator[None]:
    """The window-label budget is per process: give each test its own."""
    saved = set(metrics._window_labels)
    metrics._window_labels.clear()
    yield
    metrics._window_labels.clear()
    metrics._window_labels.update(saved)


def record(priority: int, seen_ago: float = 0.0, lifetime: int = 60) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat(),
    }


@pytest.mark.parametrize(
    ("others", "active"),
    [
        ({}, True),
        ({"b": record(5)}, True),  # lower priority: we lead
        ({"b": record(20)}, False),  # higher priority and alive: we stand by
        ({"b": record(10)}, False),  # same priority: kopf pauses both
        ({"b": record(20, seen_ago=61)}, True),  # its lifetime ran out (SIGKILLed)
        ({"b": record(20, seen_ago=5, lifetime=6)}, False),
        ({"b": record(20, seen_ago=7, lifetime=6)}, True),
        ({"b": {"priority": "x", "lastseen": "garbage"}}, False),  # unreadable: stand by
    ],
)
def test_leadership_follows_kopfs_rule(others: dict[str, object], active: bool) -> None:
    assert is_active({"me": record(10), **others}, "me", 10, NOW) is active


def test_no_leadership_before_the_own_keepalive_is_recorded() -> None:
    assert is_active({}, "me", 10, NOW) is False
    assert is_active({"b": record(1)}, "me", 10, NOW) is False


def test_peering_problem_names_the_missing_kind_and_the_fix() -> None:
    served = {"resources": [{"name": "kopfpeerings"}, {"name": "clusterkopfpeerings"}]}
    assert peering_problem(served, clusterwide=False) is None
    assert peering_problem(served, clusterwide=True) is None
    namespaced_only = {"resources": [{"name": "kopfpeerings"}]}
    problem = peering_problem(namespaced_only, clusterwide=True)
    assert problem is not None and "clusterkopfpeerings.kopf.dev" in problem
    missing = peering_problem(None, clusterwide=False)
    assert missing is not None
    assert "kopfpeerings.kopf.dev" in missing and "manifests/kopf/peering-crds.yaml" in missing


def test_only_literal_namespaces_get_a_peering_object() -> None:
    assert literal_namespaces(["agents", "team-*", "!kube-system", "a,b", "ops"]) == [
        "agents",
        "ops",
    ]


def test_auto_priority_is_random_and_positive() -> None:
    drawn = {operator_main._priority("auto") for _ in range(20)}
    assert len(drawn) > 1 and min(drawn) >= 1
    assert operator_main._priority("42") == 42


def test_window_labels_are_bounded_whatever_the_agents_report() -> None:
    assert metrics.window_label(None) == "unknown"
    assert metrics.window_label("five_hour") == "five_hour"
    assert metrics.window_label("Robert'); DROP") == "other"
    assert metrics.window_label("x" * 41) == "other"
    labels = {metrics.window_label(f"w{i}") for i in range(100)}
    assert len(labels) == metrics.MAX_WINDOW_LABELS  # five_hour took one; + "other"
    assert "other" in labels
    assert metrics.window_label("five_hour") == "five_hour"  # known names keep their label


def test_swap_reasons_are_a_closed_set() -> None:
    assert metrics.swap_reason("Walled") == "Walled"
    assert metrics.swap_reason("some text an attacker chose") == "Other"
    assert metrics.swap_reason(None) == "Other"


def test_reset_seconds_are_computed_when_scraped_and_forgotten_with_the_account() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=120)
    metrics.set_windows("ns-unit", "acct", [("five_hour", 0.5, soon), ("seven_day", 0.1, None)])
    labels = {"namespace": "ns-unit", "account": "acct", "window": "five_hour"}
    left = REGISTRY.get_sample_value("headroom_account_window_reset_seconds", labels)
    assert left is not None and 100 < left <= 120
    unknown = {**labels, "window": "seven_day"}
    assert REGISTRY.get_sample_value("headroom_account_window_reset_seconds", unknown) == 0
    assert (
        REGISTRY.get_sample_value("headroom_account_window_resets_at_timestamp_seconds", unknown)
        is None
    )
    metrics.set_account("ns-unit", "acct", "Walled", 1, 2)
    metrics.wall("ns-unit", "acct", "five_hour")
    metrics.forget_account("ns-unit", "acct")
    for name in (
        "headroom_account_window_reset_seconds",
        "headroom_account_window_utilization",
        "headroom_account_walls_total",
    ):
        assert REGISTRY.get_sample_value(name, labels) is None, name
    phase = {"namespace": "ns-unit", "account": "acct", "phase": "Walled"}
    assert REGISTRY.get_sample_value("headroom_account_phase", phase) is None


def test_session_phase_gauges_drop_to_zero_when_a_namespace_empties() -> None:
    from collections import Counter

    metrics.set_session_phases({"ns-phases": Counter({"Running": 3})})
    metrics.set_session_phases({})
    running = {"namespace": "ns-phases", "phase": "Running"}
    assert REGISTRY.get_sample_value("headroom_sessions", running) == 0
