"""Prometheus metrics. Labels are bounded: namespace, account, window, phase, reason,
outcome. Never a session name (sessions are unbounded; accounts are a handful)."""

from __future__ import annotations

from collections import Counter

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

PHASES = ("Available", "Walled", "AuthFailed", "Paused", "Unknown")
SESSION_PHASES = ("Pending", "Running", "Waiting", "Succeeded", "Failed")

account_phase = Gauge(
    "headroom_account_phase",
    "1 for the account's current phase, 0 for the others",
    ["namespace", "account", "phase"],
)
account_active = Gauge(
    "headroom_account_active_sessions",
    "Sessions holding a slot on the account",
    ["namespace", "account"],
)
account_max = Gauge("headroom_account_max_sessions", "spec.maxSessions", ["namespace", "account"])
window_utilization = Gauge(
    "headroom_account_window_utilization",
    "Utilization of a usage window (0..1) as last reported",
    ["namespace", "account", "window"],
)
window_reset = Gauge(
    "headroom_account_window_reset_seconds",
    "Seconds until the window resets (0 if unknown or past)",
    ["namespace", "account", "window"],
)
walls = PromCounter(
    "headroom_account_walls_total",
    "Walls recorded on the account",
    ["namespace", "account", "window"],
)
auth_failures = PromCounter(
    "headroom_account_auth_failures_total",
    "Startup 401s that blocked the account",
    ["namespace", "account"],
)
available_accounts = Gauge(
    "headroom_pool_available_accounts", "Accounts in phase Available", ["namespace"]
)
sessions = Gauge("headroom_sessions", "Sessions by phase", ["namespace", "phase"])
swaps = PromCounter(
    "headroom_swaps_total", "Sessions moved to another account", ["namespace", "reason"]
)
attempts = PromCounter(
    "headroom_attempts_total", "Agent attempts that ended, by outcome", ["outcome"]
)
failover_seconds = Histogram(
    "headroom_failover_latency_seconds",
    "From the walled pod's termination to the replacement pod's creation",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
waiting_total = PromCounter("headroom_waits_total", "Times a session had to wait for headroom")
reconcile_errors = PromCounter(
    "headroom_reconcile_errors_total", "Reconcile passes that failed and were retried", ["kind"]
)


def attempt_ended(outcome: str) -> None:
    attempts.labels(outcome).inc()


def failover_latency(seconds: float) -> None:
    failover_seconds.observe(max(0.0, seconds))


def waiting_started() -> None:
    waiting_total.inc()


def reconcile_error(kind: str) -> None:
    reconcile_errors.labels(kind).inc()


def set_account(namespace: str, account: str, phase: str, active: int, max_sessions: int) -> None:
    for p in PHASES:
        account_phase.labels(namespace, account, p).set(1 if p == phase else 0)
    account_active.labels(namespace, account).set(active)
    account_max.labels(namespace, account).set(max_sessions)


def set_session_phases(counts: dict[str, Counter[str]]) -> None:
    for namespace, by_phase in counts.items():
        for phase in SESSION_PHASES:
            sessions.labels(namespace, phase).set(by_phase.get(phase, 0))
