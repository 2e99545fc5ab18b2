"""Account state: the phase derived from spec, credentials, walls and drills at a given `now`,
when a blocked account frees up by itself, and the headroom placement ranks by."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.core.accounts import (
    DEFAULT_KEY,
    Account,
    AccountPhase,
    CredentialType,
    NamespaceAdmission,
    Window,
    account_state,
    admitted,
    first_holder,
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


# --- the two kinds: refs, admission, duplicates ---------------------------------------------


def test_a_ref_names_each_kind_so_that_they_cannot_collide() -> None:
    from headroom.core.accounts import account_ref, describe, ref_key

    assert account_ref("team-a", "max-1") == "max-1"
    assert account_ref("", "max-1") == "ClusterClaudeAccount/max-1"
    assert ref_key("team-a", "max-1") == ("team-a", "max-1")
    assert ref_key("team-a", "ClusterClaudeAccount/max-1") == ("", "max-1")
    assert describe(("team-a", "max-1")) == "ClaudeAccount team-a/max-1"
    assert describe(("", "max-1")) == "ClusterClaudeAccount max-1"
    for namespace in ("team-a", ""):
        account = Account(namespace, "max-1")
        assert ref_key("team-a", account.ref) == account.key
        assert account.cluster is (namespace == "")


ADMISSION = [
    ("by name", NamespaceAdmission(names=frozenset({"team-a"})), "team-a", {}, True),
    ("another name", NamespaceAdmission(names=frozenset({"team-a"})), "team-b", {}, False),
    ("by label", NamespaceAdmission(selector={"matchLabels": {"pool": "x"}}), "t", {"pool": "x"},
     True),
    ("label differs", NamespaceAdmission(selector={"matchLabels": {"pool": "x"}}), "t",
     {"pool": "y"}, False),
    ("empty selector admits all", NamespaceAdmission(selector={}), "anyone", {}, True),
    ("no selector, no names", NamespaceAdmission(), "anyone", {}, False),
    ("either admits", NamespaceAdmission(frozenset({"a"}), {"matchLabels": {"p": "1"}}), "b",
     {"p": "1"}, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("admission", "namespace", "labels", "admits"),
    [c[1:] for c in ADMISSION],
    ids=[c[0] for c in ADMISSION],
)
def test_allowed_namespaces(
    admission: NamespaceAdmission, namespace: str, labels: dict[str, str], admits: bool
) -> None:
    cluster = Account("", "shared", admits=admission)
    assert admitted(cluster, namespace, labels) is admits


def test_a_claude_account_serves_only_its_own_namespace() -> None:
    assert admitted(Account("team-a", "x"), "team-a", {})
    assert not admitted(Account("team-a", "x"), "team-b", {})
    assert not admitted(Account("", "x"), "team-a", {})  # no allowedNamespaces: nobody


T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def holder(namespace: str, name: str, digest: str | None, age: int) -> Account:
    return Account(namespace, name, credentials_hash=digest, created=T0 + timedelta(seconds=age))


def test_the_older_object_holds_a_credential_the_later_is_the_duplicate() -> None:
    older = holder("team-a", "max", "sha256:1", 0)
    later = holder("", "shared", "sha256:1", 5)
    other = holder("team-b", "api", "sha256:2", -10)
    assert first_holder(older, [later, other]) is None
    assert first_holder(later, [older, other]) == older


def test_same_age_breaks_ties_by_kind_then_namespace_then_name() -> None:
    cluster = holder("", "z", "sha256:1", 0)
    team = holder("team-a", "a", "sha256:1", 0)
    assert first_holder(team, [cluster]) == cluster
    assert first_holder(cluster, [team]) is None
    b = holder("team-b", "a", "sha256:1", 0)
    assert first_holder(b, [team]) == team


def test_an_unknown_hash_is_never_a_duplicate() -> None:
    assert first_holder(holder("a", "x", None, 5), [holder("b", "y", None, 0)]) is None


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "a", "b"]),
            st.sampled_from(["x", "y"]),
            st.sampled_from(["sha256:1", "sha256:2", None]),
            st.integers(0, 3),
        ),
        unique_by=lambda t: (t[0], t[1]),
        max_size=6,
    )
)
def test_each_credential_has_exactly_one_holder(
    objects: list[tuple[str, str, str | None, int]],
) -> None:
    accounts = [holder(*o) for o in objects]
    for digest in {"sha256:1", "sha256:2"}:
        same = [a for a in accounts if a.credentials_hash == digest]
        firsts = [a for a in same if first_holder(a, [o for o in accounts if o != a]) is None]
        assert len(firsts) == (1 if same else 0)
        for account in same:
            first = first_holder(account, [o for o in accounts if o != account])
            assert first is None or first.credentials_hash == digest


def test_a_duplicate_takes_no_sessions_and_says_whose_credential_it_holds() -> None:
    state = account_state(
        Account("", "shared", credentials_hash="sha256:1", duplicate_of="ClaudeAccount a/max"), T0
    )
    assert state.phase is AccountPhase.DUPLICATE
    assert state.reason == "DuplicateCredential"
    assert "ClaudeAccount a/max" in state.message
