"""Account state: the phase derived from spec, credentials, walls and drills at a given `now`,
when a blocked account frees up by itself, and the headroom placement ranks by."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from headroom.core.accounts import (
    DEFAULT_KEY,
    Account,
    AccountPhase,
    CredentialType,
    Window,
    account_state,
    headroom,
    unavailable_until,
)

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
SOON = NOW + timedelta(minutes=10)
LATER = NOW + timedelta(hours=2)
PAST = NOW - timedelta(minutes=1)

HEALTHY = Account("agents", "alice", credentials_hash="sha256:aaa")

# Every condition that can block an account, in the precedence the phase must follow.
CONDITIONS: list[tuple[str, dict[str, object], AccountPhase, str]] = [
    ("paused", {"paused": True}, AccountPhase.PAUSED, "Paused"),
    ("no-credentials", {"credentials_hash": None}, AccountPhase.UNKNOWN, "CredentialsInvalid"),
    (
        "auth-failed",
        {"auth_failed_hash": "sha256:aaa"},
        AccountPhase.AUTH_FAILED,
        "AuthenticationFailed",
    ),
    ("drill", {"drill_until": SOON}, AccountPhase.WALLED, "Drill"),
    (
        "walled",
        {"walled_until": LATER, "wall_window": "five_hour"},
        AccountPhase.WALLED,
        "UsageLimitReached",
    ),
]


def _combinations() -> list[object]:
    rows: list[object] = []
    for flags in itertools.product((False, True), repeat=len(CONDITIONS)):
        changes: dict[str, object] = {}
        for on, (_, fields, _, _) in zip(flags, CONDITIONS, strict=True):
            if on:
                changes.update(fields)
        winner = next(
            (
                (phase, reason)
                for on, (_, _, phase, reason) in zip(flags, CONDITIONS, strict=True)
                if on
            ),
            (AccountPhase.AVAILABLE, "Available"),
        )
        name = "+".join(n for on, (n, *_) in zip(flags, CONDITIONS, strict=True) if on) or "healthy"
        rows.append(pytest.param(changes, *winner, id=name))
    return rows


@pytest.mark.parametrize(("changes", "phase", "reason"), _combinations())
def test_phase_precedence(changes: dict[str, object], phase: AccountPhase, reason: str) -> None:
    """Paused > Unknown > AuthFailed > Walled(drill) > Walled > Available, for all 32 mixes."""
    state = account_state(replace(HEALTHY, **changes), NOW)  # type: ignore[arg-type]
    assert (state.phase, state.reason) == (phase, reason)
    assert state.message


STATES = [
    ("healthy", {}, AccountPhase.AVAILABLE, ("ready",)),
    ("paused", {"paused": True}, AccountPhase.PAUSED, ("spec.paused",)),
    (
        "secret-missing-says-why",
        {"credentials_hash": None, "credentials_problem": "Secret agents/alice-claude not found"},
        AccountPhase.UNKNOWN,
        ("Secret agents/alice-claude not found",),
    ),
    (
        "secret-unreadable-default-message",
        {"credentials_hash": None},
        AccountPhase.UNKNOWN,
        ("could not be read",),
    ),
    (
        "auth-failed-same-hash",
        {"auth_failed_hash": "sha256:aaa"},
        AccountPhase.AUTH_FAILED,
        ("401", "replace the Secret"),
    ),
    (
        "auth-failed-healed-by-new-hash",
        {"auth_failed_hash": "sha256:old"},
        AccountPhase.AVAILABLE,
        (),
    ),
    (
        "auth-failed-while-secret-missing-is-unknown",
        {"auth_failed_hash": "sha256:aaa", "credentials_hash": None},
        AccountPhase.UNKNOWN,
        (),
    ),
    (
        "walled-until-future",
        {"walled_until": LATER, "wall_window": "five_hour"},
        AccountPhase.WALLED,
        ("five_hour", "2026-11-23T14:00:00Z"),
    ),
    (
        "walled-without-window-name",
        {"walled_until": LATER},
        AccountPhase.WALLED,
        ("2026-11-23T14:00:00Z",),
    ),
    ("wall-ends-exactly-now", {"walled_until": NOW}, AccountPhase.AVAILABLE, ()),
    ("wall-expired", {"walled_until": PAST}, AccountPhase.AVAILABLE, ()),
    (
        "drill-running",
        {"drill_until": SOON},
        AccountPhase.WALLED,
        ("drill", "2026-11-23T12:10:00Z"),
    ),
    ("drill-ends-exactly-now", {"drill_until": NOW}, AccountPhase.AVAILABLE, ()),
    ("drill-over", {"drill_until": PAST}, AccountPhase.AVAILABLE, ()),
    (
        "drill-over-wall-running",
        {"drill_until": PAST, "walled_until": LATER},
        AccountPhase.WALLED,
        ("usage limit",),
    ),
    (
        "windows-full-but-no-wall-is-available",
        {"windows": (Window("five_hour", "allowed", 1.0, LATER),)},
        AccountPhase.AVAILABLE,
        (),
    ),
]


@pytest.mark.parametrize(
    ("changes", "phase", "says"), [pytest.param(*row[1:], id=row[0]) for row in STATES]
)
def test_account_state(
    changes: dict[str, object], phase: AccountPhase, says: tuple[str, ...]
) -> None:
    state = account_state(replace(HEALTHY, **changes), NOW)  # type: ignore[arg-type]
    assert state.phase is phase
    for fragment in says:
        assert fragment in state.message


UNAVAILABLE = [
    ("available", {}, None),
    ("walled", {"walled_until": LATER}, LATER),
    ("drilled", {"drill_until": SOON}, SOON),
    ("drilled-and-walled-longer", {"drill_until": SOON, "walled_until": LATER}, LATER),
    ("walled-and-drilled-longer", {"drill_until": LATER, "walled_until": SOON}, LATER),
    ("drill-over-wall-running", {"drill_until": PAST, "walled_until": SOON}, SOON),
    ("wall-over-drill-running", {"drill_until": SOON, "walled_until": PAST}, SOON),
    ("both-over", {"drill_until": PAST, "walled_until": PAST}, None),
    ("paused-and-walled-never-by-itself", {"paused": True, "walled_until": LATER}, None),
    ("auth-failed-and-walled", {"auth_failed_hash": "sha256:aaa", "walled_until": LATER}, None),
    ("no-credentials-and-walled", {"credentials_hash": None, "walled_until": LATER}, None),
]


@pytest.mark.parametrize(
    ("changes", "until"), [pytest.param(*row[1:], id=row[0]) for row in UNAVAILABLE]
)
def test_unavailable_until(changes: dict[str, object], until: datetime | None) -> None:
    assert unavailable_until(replace(HEALTHY, **changes), NOW) == until  # type: ignore[arg-type]


def w(utilization: float, resets_at: datetime | None = LATER, name: str = "five_hour") -> Window:
    return Window(name, "allowed", utilization, resets_at)


HEADROOM = [
    ("no-windows-is-full-headroom", (), 1.0),
    ("one-window", (w(0.25),), 0.75),
    ("highest-utilization-wins", (w(0.25), w(0.6, name="seven_day")), 0.4),
    ("reset-window-ignored", (w(0.9, resets_at=PAST), w(0.2, name="seven_day")), 0.8),
    ("window-resetting-now-ignored", (w(0.9, resets_at=NOW),), 1.0),
    ("window-resetting-in-a-second-counts", (w(0.9, resets_at=NOW + timedelta(seconds=1)),), 0.1),
    ("window-without-reset-time-counts", (w(0.5, resets_at=None),), 0.5),
    ("all-windows-reset", (w(0.9, resets_at=PAST), w(1.0, resets_at=PAST, name="b")), 1.0),
    ("exhausted", (w(1.0),), 0.0),
    ("over-100-percent-clamped", (w(1.3),), 0.0),
]


@pytest.mark.parametrize(
    ("windows", "expected"), [pytest.param(*row[1:], id=row[0]) for row in HEADROOM]
)
def test_headroom(windows: tuple[Window, ...], expected: float) -> None:
    assert headroom(replace(HEALTHY, windows=windows), NOW) == pytest.approx(expected)


@pytest.mark.parametrize("kind", list(CredentialType), ids=[k.value for k in CredentialType])
def test_every_credential_type_has_a_default_key(kind: CredentialType) -> None:
    assert DEFAULT_KEY[kind]
