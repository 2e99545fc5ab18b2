"""Prometheus metrics. Labels are bounded: namespace, account, window, phase, reason, outcome,
kind, resource. Never a session name: sessions are unbounded, accounts are a handful. Window
names come from untrusted termination messages, so they pass through `window_label`, which
caps how many distinct names ever become labels.

Names here are a contract with manifests/ (PrometheusRule) and docs: add, never rename.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from prometheus_client import REGISTRY, Gauge, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from headroom.core.accounts import AccountPhase
from headroom.core.reasons import MoveReason
from headroom.core.session import SessionPhase
from headroom.reconcilers.clock import Clock, system_clock

# Label values come from the core's enums, so a phase or reason the core gains is a label.
PHASES = tuple(AccountPhase)
SESSION_PHASES = tuple(SessionPhase)
# Why a session moved; anything else (a failure's own cause) is "Other".
SWAP_REASONS = frozenset(MoveReason)
MAX_WINDOW_LABELS = 16
_WINDOW_NAME = re.compile(r"^[a-z0-9_]{1,40}$")

# --- per account ----------------------------------------------------------------------------

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
window_warning = Gauge(
    "headroom_account_window_warning",
    "1 while a usage window is past a warning threshold (allowed_warning) and has not reset, "
    "else 0",
    ["namespace", "account", "window"],
)
walls = PromCounter(
    "headroom_account_walls_total",
    "Walls recorded on the account",
    ["namespace", "account", "window"],
)
usage_reads = PromCounter(
    "headroom_usage_reads_total",
    "Reads of the plan usage endpoint (GET /api/oauth/usage), by result: ok, rate_limited, "
    "denied, unauthorized, failed",
    ["namespace", "account", "result"],
)
auth_failures = PromCounter(
    "headroom_account_auth_failures_total",
    "Startup 401s that blocked the account",
    ["namespace", "account"],
)

# --- per fleet ------------------------------------------------------------------------------

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
    "From the walled pod's termination to the replacement pod's creation on another account "
    "(moves that had to wait for headroom are in headroom_waiting_seconds instead)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
waiting_total = PromCounter("headroom_waits_total", "Times a session had to wait for headroom")
waiting_seconds = Histogram(
    "headroom_waiting_seconds",
    "How long a session waited for headroom before it was placed again",
    buckets=(1, 5, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 24 * 3600),
)
waiting_oldest = Gauge(
    "headroom_waiting_oldest_seconds",
    "Age of the longest wait among sessions waiting for headroom now (0 if none wait)",
    ["namespace"],
)
reconcile_errors = PromCounter(
    "headroom_reconcile_errors_total", "Reconcile passes that failed and were retried", ["kind"]
)
writes_refused = PromCounter(
    "headroom_writes_refused_total",
    "Writes the API server refused as they were (400, 403, 422), by resource and the "
    "server's reason",
    ["resource", "reason"],
)
operator_active = Gauge(
    "headroom_operator_active",
    "1 while this replica is the one acting (standalone, or the live peer with the highest "
    "priority); 0 while it stands by",
)


class _WindowResets(Collector):
    """Seconds until each window resets, computed at scrape time: a gauge set when the account
    was last reconciled would count down only in steps, and lie in between.

    Prometheus metrics are process-wide (one registry), so this collector is too; the
    startup handler points `clock` at the Runtime's, the time every reconcile reads."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock
        self._resets: dict[tuple[str, str, str], float | None] = {}

    def set(self, namespace: str, account: str, window: str, resets_at: float | None) -> None:
        self._resets[(namespace, account, window)] = resets_at

    def forget(self, namespace: str, account: str) -> None:
        for key in [k for k in self._resets if k[:2] == (namespace, account)]:
            del self._resets[key]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock().timestamp()
        left = GaugeMetricFamily(
            "headroom_account_window_reset_seconds",
            "Seconds until the window resets (0 if unknown or past)",
            labels=["namespace", "account", "window"],
        )
        at = GaugeMetricFamily(
            "headroom_account_window_resets_at_timestamp_seconds",
            "When the window resets, as a Unix time (absent if unknown)",
            labels=["namespace", "account", "window"],
        )
        for labels, resets_at in sorted(self._resets.items()):
            left.add_metric(list(labels), max(0.0, resets_at - now) if resets_at else 0.0)
            if resets_at:
                at.add_metric(list(labels), resets_at)
        yield left
        yield at


window_resets = _WindowResets()
REGISTRY.register(window_resets)
_window_labels: set[str] = set()
_account_windows: dict[tuple[str, str], set[str]] = {}
_session_namespaces: set[str] = set()


def window_label(name: str | None) -> str:
    """A window name fit to be a label value: well-formed, and one of at most
    MAX_WINDOW_LABELS distinct names per process (a hostile agent cannot grow the series)."""
    if not name:
        return "unknown"
    if name in _window_labels:
        return name
    if not _WINDOW_NAME.match(name) or len(_window_labels) >= MAX_WINDOW_LABELS:
        return "other"
    _window_labels.add(name)
    return name


def swap_reason(reason: str | None) -> str:
    return reason if reason in SWAP_REASONS else "Other"


# --- recorders called by the reconcilers ----------------------------------------------------


def attempt_ended(outcome: str) -> None:
    attempts.labels(outcome).inc()


def failover_latency(seconds: float) -> None:
    failover_seconds.observe(max(0.0, seconds))


def waiting_started() -> None:
    waiting_total.inc()


def waiting_ended(seconds: float) -> None:
    waiting_seconds.observe(max(0.0, seconds))


def swapped(namespace: str, reason: str | None) -> None:
    swaps.labels(namespace, swap_reason(reason)).inc()


def wall(namespace: str, account: str, window: str | None) -> None:
    label = window_label(window)
    _account_windows.setdefault((namespace, account), set()).add(label)
    walls.labels(namespace, account, label).inc()


USAGE_READ_RESULTS = frozenset({"ok", "rate_limited", "denied", "unauthorized", "failed"})


def usage_read(namespace: str, account: str, result: str) -> None:
    label = result if result in USAGE_READ_RESULTS else "failed"
    usage_reads.labels(namespace, account, label).inc()


def auth_failure(namespace: str, account: str) -> None:
    auth_failures.labels(namespace, account).inc()


def reconcile_error(kind: str) -> None:
    reconcile_errors.labels(kind).inc()


# The resources the operator writes and the reasons the API server gives a refusal: both
# label sets stay bounded whatever a server (or a webhook behind it) answers.
WRITTEN_RESOURCES = frozenset(
    {
        "agentsessions",
        "agentsessions/status",
        "claudeaccounts/status",
        "clusterclaudeaccounts/status",
        "pods",
        "persistentvolumeclaims",
        "secrets",
        "events",
    }
)
REFUSAL_REASONS = frozenset({"Invalid", "BadRequest", "Forbidden"})


def write_refused(resource: str, reason: str) -> None:
    writes_refused.labels(
        resource if resource in WRITTEN_RESOURCES else "other",
        reason if reason in REFUSAL_REASONS else "Other",
    ).inc()


def set_account(
    namespace: str, account: str, phase: AccountPhase, active: int, max_sessions: int
) -> None:
    for p in PHASES:
        account_phase.labels(namespace, account, p).set(1 if p == phase else 0)
    account_active.labels(namespace, account).set(active)
    account_max.labels(namespace, account).set(max_sessions)


def set_windows(
    namespace: str,
    account: str,
    windows: Iterable[tuple[str, float, datetime | None]],
    warned: Iterable[str] = (),
) -> None:
    """(name, utilization, resets_at) per usage window the account's status names; `warned`:
    the names of those past a warning threshold now."""
    seen = _account_windows.setdefault((namespace, account), set())
    warned_labels = {window_label(name) for name in warned}
    for name, utilization, resets_at in windows:
        label = window_label(name)
        seen.add(label)
        window_utilization.labels(namespace, account, label).set(utilization)
        window_warning.labels(namespace, account, label).set(1 if label in warned_labels else 0)
        window_resets.set(namespace, account, label, resets_at.timestamp() if resets_at else None)


def forget_account(namespace: str, account: str) -> None:
    """The account was deleted: drop its series so dashboards do not show a ghost."""
    for p in PHASES:
        _remove(account_phase, namespace, account, p)
    for gauge in (account_active, account_max, auth_failures):
        _remove(gauge, namespace, account)
    for result in USAGE_READ_RESULTS:
        _remove(usage_reads, namespace, account, result)
    for window in _account_windows.pop((namespace, account), set()):
        _remove(window_utilization, namespace, account, window)
        _remove(window_warning, namespace, account, window)
        _remove(walls, namespace, account, window)
    window_resets.forget(namespace, account)


def _remove(metric: Gauge | PromCounter, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set: nothing to drop
        metric.remove(*labels)


def set_session_phases(counts: Mapping[str, Counter[str]]) -> None:
    # A namespace whose last session went away still gets zeros, not its last counts.
    _session_namespaces.update(counts)
    for namespace in sorted(_session_namespaces):
        by_phase = counts.get(namespace, Counter())
        for phase in SESSION_PHASES:
            sessions.labels(namespace, phase).set(by_phase.get(phase, 0))


def set_waiting(oldest_since: Mapping[str, datetime | None], now: datetime) -> None:
    for namespace, since in oldest_since.items():
        waiting_oldest.labels(namespace).set(
            max(0.0, (now - since).total_seconds()) if since else 0.0
        )
