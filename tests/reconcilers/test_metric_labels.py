"""Metric label values come from the core's enums: the phases and move reasons a dashboard
sees are exactly those the core can decide, in the strings status has always carried."""

from __future__ import annotations

from collections import Counter

from prometheus_client import REGISTRY

from headroom.core.accounts import AccountPhase
from headroom.core.reasons import EvictionReason, MoveReason
from headroom.core.session import SWAP_REASON_UNKNOWN, SessionPhase
from headroom.reconcilers import metrics


def test_label_sets_are_the_enums() -> None:
    assert tuple(AccountPhase) == metrics.PHASES
    assert tuple(SessionPhase) == metrics.SESSION_PHASES
    assert frozenset(MoveReason) == metrics.SWAP_REASONS


def test_the_values_are_the_strings_status_and_dashboards_use() -> None:
    assert [p.value for p in AccountPhase] == [
        "Available",
        "Walled",
        "AuthFailed",
        "Paused",
        "Duplicate",
        "Unknown",
    ]
    assert [p.value for p in SessionPhase] == [
        "Pending",
        "Running",
        "Waiting",
        "Succeeded",
        "Failed",
    ]
    assert {r.value for r in MoveReason} == {
        "Walled",
        "ModelWalled",
        "CreditsSpent",
        "ModelNeedsCredits",
        "AuthFailed",
        "ThrottleConfirmed",
        "Throttled",
        "AttemptFailed",
        "Drill",
        "NodeLost",
        "Moved",
    }


def test_every_swap_the_core_can_explain_has_its_own_label() -> None:
    assert EvictionReason.DRILL in metrics.SWAP_REASONS
    assert SWAP_REASON_UNKNOWN in metrics.SWAP_REASONS
    assert metrics.swap_reason("RepoCloneFailed") == "Other"  # a cause, not a decision


def test_account_phase_series_are_one_per_enum_member() -> None:
    metrics.set_account("ns-labels", "acct", AccountPhase.WALLED, 1, 2)
    for phase in AccountPhase:
        labels = {"namespace": "ns-labels", "account": "acct", "phase": phase.value}
        want = 1.0 if phase is AccountPhase.WALLED else 0.0
        assert REGISTRY.get_sample_value("headroom_account_phase", labels) == want
    metrics.forget_account("ns-labels", "acct")


def test_session_phase_series_count_status_strings_under_enum_labels() -> None:
    """The watch hands over status.phase as a plain string: it counts under the enum's label."""
    metrics.set_session_phases({"ns-labels": Counter({"Running": 2, SessionPhase.WAITING: 1})})
    seen = {
        phase.value: REGISTRY.get_sample_value(
            "headroom_sessions", {"namespace": "ns-labels", "phase": phase.value}
        )
        for phase in SessionPhase
    }
    assert seen == {"Pending": 0, "Running": 2, "Waiting": 1, "Succeeded": 0, "Failed": 0}
