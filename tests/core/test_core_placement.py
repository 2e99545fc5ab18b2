"""Placement: the one function first placement and rescue both call.

Among matched accounts that are Available, not paused, not walled, with valid
credentials and below maxSessions: highest priority, then most headroom, then fewest active
sessions, then name. Deterministic. Fallback only when no primary account can take it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from headroom.core.accounts import (
    Account,
    AccountPhase,
    NamespaceAdmission,
    Window,
    account_state,
    headroom,
)
from headroom.core.placement import (
    AccountScope,
    AuthPath,
    NoHeadroom,
    Placed,
    Request,
    in_scope,
    place,
    schedulable,
)
from headroom.core.selectors import matches

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
SOON = NOW + timedelta(minutes=10)
LATER = NOW + timedelta(hours=2)
PAST = NOW - timedelta(minutes=1)
FAST = settings(max_examples=80, deadline=None, database=None)

ALL = Request(selector={})
MAX_TIER = {"matchLabels": {"tier": "max"}}
API_KEYS = {"matchLabels": {"type": "api-key"}}


def acct(name: str, **fields: Any) -> Account:
    fields.setdefault("credentials_hash", "sha256:" + name)
    fields.setdefault("max_sessions", 2)
    return Account("agents", name, **fields)


def used(utilization: float, resets_at: datetime | None = LATER) -> tuple[Window, ...]:
    return (Window("five_hour", "allowed", utilization, resets_at),)


# --- order ------------------------------------------------------------------------------------

ORDER: list[tuple[str, list[Account], dict[str, int], str]] = [
    (
        "priority-beats-headroom-and-load",
        [acct("a", priority=1), acct("b", priority=5, windows=used(0.9))],
        {"b": 1},
        "b",
    ),
    (
        "negative-priority-loses",
        [acct("a", priority=-1), acct("b", priority=0)],
        {},
        "b",
    ),
    (
        "headroom-per-session-beats-load",
        [acct("a", windows=used(0.5)), acct("b", windows=used(0.2))],
        {"b": 1},  # a: 0.5 for its one session; b: 0.8 shared by two = 0.4
        "a",
    ),
    (
        "much-more-headroom-beats-load",
        [acct("a", windows=used(0.7)), acct("b", windows=used(0.1))],
        {"b": 1},  # a: 0.3; b: 0.9 / 2 = 0.45
        "b",
    ),
    (
        "busy-account-with-headroom-left-loses-to-an-idle-one",
        [acct("a", max_sessions=5, windows=used(0.4)), acct("b", max_sessions=5)],
        {"b": 2},  # a: 0.6; b: 1.0 / 3 = 0.33
        "a",
    ),
    (
        "headroom-uses-the-fullest-live-window",
        [
            acct("a", windows=(*used(0.1), Window("seven_day", "allowed", 0.8, LATER))),
            acct("b", windows=used(0.5)),
        ],
        {},
        "b",
    ),
    (
        "headroom-ignores-windows-already-reset",
        [acct("a", windows=used(0.95, resets_at=PAST)), acct("b", windows=used(0.2))],
        {},
        "a",
    ),
    (
        "no-windows-means-full-headroom",
        [acct("a", windows=used(0.01)), acct("b")],
        {},
        "b",
    ),
    (
        "fewest-active-beats-name",
        [acct("a", max_sessions=5), acct("b", max_sessions=5)],
        {"a": 2, "b": 1},
        "b",
    ),
    ("name-breaks-ties", [acct("b"), acct("a"), acct("c")], {}, "a"),
    (
        "name-breaks-ties-with-equal-load-and-headroom",
        [acct("zed", windows=used(0.3)), acct("amy", windows=used(0.3))],
        {"zed": 1, "amy": 1},
        "amy",
    ),
]


@pytest.mark.parametrize(
    ("accounts", "load", "expected"), [pytest.param(*row[1:], id=row[0]) for row in ORDER]
)
def test_brief_order(accounts: list[Account], load: dict[str, int], expected: str) -> None:
    assert place(accounts, load, ALL, NOW) == Placed(expected, AuthPath.PRIMARY)


# --- every reason an account is skipped -------------------------------------------------------

SKIPS: list[tuple[str, dict[str, Any], dict[str, int], Request, bool, tuple[str, ...]]] = [
    ("healthy", {}, {}, ALL, True, ()),
    ("paused", {"paused": True}, {}, ALL, False, ("a is Paused",)),
    ("walled-until-future", {"walled_until": LATER}, {}, ALL, False, ("a is Walled",)),
    ("wall-expired-available-again", {"walled_until": PAST}, {}, ALL, True, ()),
    ("wall-ending-now-available", {"walled_until": NOW}, {}, ALL, True, ()),
    ("drill", {"drill_until": SOON}, {}, ALL, False, ("a is Walled", "drill")),
    ("drill-over", {"drill_until": PAST}, {}, ALL, True, ()),
    (
        "auth-failed-same-hash",
        {"auth_failed_hash": "sha256:a"},
        {},
        ALL,
        False,
        ("a is AuthFailed", "401"),
    ),
    ("auth-failed-healed-by-new-hash", {"auth_failed_hash": "sha256:old"}, {}, ALL, True, ()),
    (
        "credentials-missing",
        {"credentials_hash": None, "credentials_problem": "Secret alice-claude not found"},
        {},
        ALL,
        False,
        ("a is Unknown", "Secret alice-claude not found"),
    ),
    ("full", {"max_sessions": 2}, {"a": 2}, ALL, False, ("a is full (2/2)",)),
    ("over-full", {"max_sessions": 1}, {"a": 3}, ALL, False, ("a is full (3/1)",)),
    ("one-slot-left", {"max_sessions": 3}, {"a": 2}, ALL, True, ()),
    ("others-load-does-not-count", {"max_sessions": 1}, {"b": 9}, ALL, True, ()),
    (
        "label-mismatch",
        {"labels": {"tier": "pro"}},
        {},
        Request(selector=MAX_TIER),
        False,
        ("matches the session's accountSelector",),
    ),
    (
        "windows-exhausted-but-not-walled-still-placed",
        {"windows": used(1.0)},
        {},
        ALL,
        True,
        (),
    ),
]


@pytest.mark.parametrize(
    ("fields", "load", "request_", "placed", "says"),
    [pytest.param(*row[1:], id=row[0]) for row in SKIPS],
)
def test_skip_reasons(
    fields: dict[str, Any],
    load: dict[str, int],
    request_: Request,
    placed: bool,
    says: tuple[str, ...],
) -> None:
    only = acct("a", **fields)
    result = place([only], load, request_, NOW)
    if placed:
        assert result == Placed("a", AuthPath.PRIMARY)
        return
    assert isinstance(result, NoHeadroom)
    for fragment in says:
        assert fragment in result.message
    # A healthy, lower-ranked account is chosen instead of the skipped one.
    other = acct("z", priority=-5, labels={"tier": "max"})
    assert place([only, other], load, request_, NOW) == Placed("z", AuthPath.PRIMARY)


@pytest.mark.parametrize(
    ("fields", "load", "expected"),
    [
        pytest.param({}, {}, True, id="healthy"),
        pytest.param({"paused": True}, {}, False, id="paused"),
        pytest.param({"walled_until": LATER}, {}, False, id="walled"),
        pytest.param({"max_sessions": 1}, {"a": 1}, False, id="full"),
        pytest.param({"max_sessions": 1}, {"a": 0}, True, id="empty-slot"),
    ],
)
def test_schedulable(fields: dict[str, Any], load: dict[str, int], expected: bool) -> None:
    assert schedulable(acct("a", **fields), load, NOW) is expected


# --- avoid and prefer -------------------------------------------------------------------------

ROSTER = [acct("a", priority=10), acct("b", priority=5), acct("c", priority=1)]

AVOID_PREFER: list[tuple[str, list[Account], dict[str, int], Request, Placed | None]] = [
    ("avoid-best-takes-next", ROSTER, {}, Request({}, avoid="a"), Placed("b", AuthPath.PRIMARY)),
    (
        "avoid-unknown-name-ignored",
        ROSTER,
        {},
        Request({}, avoid="x"),
        Placed("a", AuthPath.PRIMARY),
    ),
    (
        "prefer-stays-on-lower-ranked",
        ROSTER,
        {},
        Request({}, prefer="c"),
        Placed("c", AuthPath.PRIMARY),
    ),
    ("prefer-best-stays", ROSTER, {}, Request({}, prefer="a"), Placed("a", AuthPath.PRIMARY)),
    (
        "prefer-full-falls-through",
        ROSTER,
        {"c": 2},
        Request({}, prefer="c"),
        Placed("a", AuthPath.PRIMARY),
    ),
    (
        "prefer-walled-falls-through",
        [*ROSTER[:2], acct("c", priority=1, walled_until=LATER)],
        {},
        Request({}, prefer="c"),
        Placed("a", AuthPath.PRIMARY),
    ),
    (
        "prefer-no-longer-matching-falls-through",
        [acct("a", labels={"tier": "max"}), acct("c", priority=9, labels={"tier": "pro"})],
        {},
        Request(MAX_TIER, prefer="c"),
        Placed("a", AuthPath.PRIMARY),
    ),
    (
        "prefer-unknown-falls-through",
        ROSTER,
        {},
        Request({}, prefer="x"),
        Placed("a", AuthPath.PRIMARY),
    ),
    (
        "avoid-wins-over-prefer",
        ROSTER,
        {},
        Request({}, avoid="c", prefer="c"),
        Placed("a", AuthPath.PRIMARY),
    ),
    # Leaving means "elsewhere first": with nothing else open the session goes back.
    (
        "avoid-the-only-account",
        [acct("a")],
        {},
        Request({}, avoid="a"),
        Placed("a", AuthPath.PRIMARY),
    ),
    (
        "avoid-only-open-one-in-pool",
        [acct("a"), acct("b", paused=True)],
        {},
        Request({}, avoid="a"),
        Placed("a", AuthPath.PRIMARY),
    ),
    (
        "avoid-full-only-account",
        [acct("a", max_sessions=1)],
        {"a": 1},
        Request({}, avoid="a"),
        None,
    ),
]


@pytest.mark.parametrize(
    ("accounts", "load", "request_", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in AVOID_PREFER],
)
def test_avoid_and_prefer(
    accounts: list[Account], load: dict[str, int], request_: Request, expected: Placed | None
) -> None:
    result = place(accounts, load, request_, NOW)
    if expected is None:
        assert isinstance(result, NoHeadroom)
    else:
        assert result == expected


# --- fallback ---------------------------------------------------------------------------------

MAXA = acct("max-a", priority=1, labels={"tier": "max"})
MAXB = acct("max-b", priority=1, labels={"tier": "max"})
KEY = acct("key", priority=100, labels={"type": "api-key"})  # ranks first if it were eligible
BOTH = acct("both", priority=0, labels={"tier": "max", "type": "api-key"})


def walled(account: Account, until: datetime = LATER) -> Account:
    return replace(account, walled_until=until)


FALLBACK: list[tuple[str, list[Account], dict[str, int], Request, object]] = [
    (
        "primary-available-fallback-unused",
        [MAXA, KEY],
        {},
        Request(MAX_TIER, API_KEYS),
        Placed("max-a", AuthPath.PRIMARY),
    ),
    (
        "primary-walled-uses-fallback",
        [walled(MAXA), walled(MAXB), KEY],
        {},
        Request(MAX_TIER, API_KEYS),
        Placed("key", AuthPath.FALLBACK),
    ),
    (
        "primary-full-uses-fallback",
        [MAXA, KEY],
        {"max-a": 2},
        Request(MAX_TIER, API_KEYS),
        Placed("key", AuthPath.FALLBACK),
    ),
    (
        # Leaving the only open primary account keeps the session in its own pool rather
        # than moving it to the paid fallback: fallback is for when no primary can take it.
        "primary-avoided-stays-primary",
        [MAXA, walled(MAXB), KEY],
        {},
        Request(MAX_TIER, API_KEYS, avoid="max-a"),
        Placed("max-a", AuthPath.PRIMARY),
    ),
    (
        "no-fallback-selector-waits",
        [walled(MAXA), KEY],
        {},
        Request(MAX_TIER),
        NoHeadroom,
    ),
    (
        "fallback-pool-exhausted-waits",
        [walled(MAXA), walled(KEY)],
        {},
        Request(MAX_TIER, API_KEYS),
        NoHeadroom,
    ),
    (
        "account-matching-both-is-primary",
        [walled(MAXA), BOTH, KEY],
        {},
        Request(MAX_TIER, API_KEYS),
        Placed("both", AuthPath.PRIMARY),
    ),
    (
        "account-matching-both-is-primary-even-if-only-in-fallback-rank",
        [BOTH],
        {},
        Request(MAX_TIER, API_KEYS),
        Placed("both", AuthPath.PRIMARY),
    ),
    (
        "fallback-ranked-by-brief-order",
        [walled(MAXA), KEY, acct("key2", priority=100, labels={"type": "api-key"})],
        {"key": 1},
        Request(MAX_TIER, API_KEYS),
        Placed("key2", AuthPath.FALLBACK),
    ),
    (
        "empty-fallback-selector-takes-any-other-account",
        [walled(MAXA), acct("plain")],
        {},
        Request(MAX_TIER, {}),
        Placed("plain", AuthPath.FALLBACK),
    ),
    (
        "prefer-fallback-when-still-no-primary",
        [walled(MAXA), KEY, acct("key2", priority=500, labels={"type": "api-key"})],
        {},
        Request(MAX_TIER, API_KEYS, prefer="key"),
        Placed("key", AuthPath.FALLBACK),
    ),
    (
        "prefer-primary-over-fallback",
        [MAXA, MAXB, KEY],
        {},
        Request(MAX_TIER, API_KEYS, prefer="max-b"),
        Placed("max-b", AuthPath.PRIMARY),
    ),
]


@pytest.mark.parametrize(
    ("accounts", "load", "request_", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in FALLBACK],
)
def test_fallback(
    accounts: list[Account], load: dict[str, int], request_: Request, expected: object
) -> None:
    result = place(accounts, load, request_, NOW)
    if expected is NoHeadroom:
        assert isinstance(result, NoHeadroom)
    else:
        assert result == expected


def unchecked(account: Account) -> Account:
    """An account created a moment ago: the operator has not read its Secret yet."""
    return replace(account, credentials_hash=None, credentials_checked=False)


CHECKING: list[tuple[str, list[Account], object]] = [
    ("only-primary-unchecked-waits-not-fallback", [unchecked(MAXA), KEY], NoHeadroom),
    (
        "another-primary-open-is-used",
        [unchecked(MAXA), MAXB, KEY],
        Placed("max-b", AuthPath.PRIMARY),
    ),
    (
        "checked-and-broken-primary-uses-fallback",
        [replace(MAXA, credentials_hash=None, credentials_problem="Secret alice not found"), KEY],
        Placed("key", AuthPath.FALLBACK),
    ),
    (
        "unchecked-but-paused-does-not-hold-the-session",
        [replace(unchecked(MAXA), paused=True), KEY],
        Placed("key", AuthPath.FALLBACK),
    ),
    ("unchecked-fallback-only-waits", [walled(MAXA), unchecked(KEY)], NoHeadroom),
]


@pytest.mark.parametrize(
    ("accounts", "expected"), [pytest.param(*row[1:], id=row[0]) for row in CHECKING]
)
def test_an_account_being_checked_is_waited_for(accounts: list[Account], expected: object) -> None:
    result = place(accounts, {}, Request(MAX_TIER, API_KEYS), NOW)
    if expected is NoHeadroom:
        assert isinstance(result, NoHeadroom)
        assert result.message.startswith("waiting for the operator to check")
        assert "has not checked" in result.message or "Unknown" in result.message
    else:
        assert result == expected


def test_prefer_does_not_keep_a_session_on_fallback_when_primary_has_room() -> None:
    result = place([MAXA, KEY], {}, Request(MAX_TIER, API_KEYS, prefer="key"), NOW)
    assert result == Placed("max-a", AuthPath.PRIMARY)


# --- no headroom ------------------------------------------------------------------------------


def test_no_headroom_names_the_earliest_reset_and_every_account() -> None:
    accounts = [
        acct("amy", walled_until=LATER),
        acct("bob", drill_until=SOON),
        acct("cat", paused=True, walled_until=NOW + timedelta(minutes=1)),  # paused: no reset
        acct("dan", auth_failed_hash="sha256:dan", walled_until=NOW + timedelta(minutes=2)),
        acct("eve", max_sessions=1),
    ]
    result = place(accounts, {"eve": 1}, ALL, NOW)
    assert isinstance(result, NoHeadroom)
    assert result.earliest_reset == SOON
    assert result.message.startswith("no account has headroom until 2026-11-23T12:10:00Z: ")
    for name, phase in [
        ("amy", "Walled"),
        ("bob", "Walled"),
        ("cat", "Paused"),
        ("dan", "AuthFailed"),
    ]:
        assert f"{name} is {phase}" in result.message
    assert "eve is full (1/1)" in result.message
    # Sorted by name, so the message is the same whatever order the roster arrives in.
    assert result.message.index("amy") < result.message.index("bob") < result.message.index("eve")


def test_no_headroom_earliest_reset_ends_both_drill_and_wall() -> None:
    accounts = [acct("a", drill_until=SOON, walled_until=LATER), acct("b", walled_until=LATER)]
    result = place(accounts, {}, ALL, NOW)
    assert isinstance(result, NoHeadroom)
    assert result.earliest_reset == LATER


def test_no_headroom_that_will_not_clear_by_itself() -> None:
    result = place([acct("a", paused=True), acct("b", max_sessions=1)], {"b": 1}, ALL, NOW)
    assert isinstance(result, NoHeadroom)
    assert result.earliest_reset is None
    assert "none will reset by itself" in result.message
    assert "a is Paused" in result.message
    assert "b is full (1/1)" in result.message


def test_no_headroom_counts_fallback_accounts() -> None:
    accounts = [
        walled(MAXA, LATER),
        walled(KEY, SOON),
        acct("unrelated", walled_until=PAST + timedelta(minutes=2)),
    ]
    result = place(accounts, {}, Request(MAX_TIER, API_KEYS), NOW)
    assert isinstance(result, NoHeadroom)
    assert result.earliest_reset == SOON
    assert "key is Walled" in result.message and "max-a is Walled" in result.message
    assert "unrelated" not in result.message


def test_no_headroom_names_an_account_matching_both_selectors_once() -> None:
    result = place([walled(BOTH), walled(KEY, SOON)], {}, Request(MAX_TIER, API_KEYS), NOW)
    assert isinstance(result, NoHeadroom)
    assert result.message.count("both is Walled") == 1


def test_no_headroom_ignores_accounts_outside_the_selector() -> None:
    accounts = [walled(MAXA, LATER), acct("pro", labels={"tier": "pro"}, walled_until=SOON)]
    result = place(accounts, {}, Request(MAX_TIER), NOW)
    assert isinstance(result, NoHeadroom)
    assert result.earliest_reset == LATER
    assert "pro" not in result.message


def test_no_headroom_message_shows_five_accounts_and_counts_the_rest() -> None:
    accounts = [acct(f"acct-{i:02d}", walled_until=LATER + timedelta(minutes=i)) for i in range(8)]
    result = place(list(reversed(accounts)), {}, ALL, NOW)
    assert isinstance(result, NoHeadroom)
    assert result.earliest_reset == LATER
    for i in range(5):
        assert f"acct-{i:02d} is Walled" in result.message
    for i in range(5, 8):
        assert f"acct-{i:02d}" not in result.message
    assert result.message.endswith("; and 3 more")


@pytest.mark.parametrize(
    ("accounts", "request_"),
    [
        pytest.param([], ALL, id="empty-roster"),
        pytest.param(
            [acct("a", labels={"tier": "pro"})], Request(MAX_TIER), id="selector-matches-none"
        ),
        pytest.param(
            [acct("a", labels={"tier": "pro"})],
            Request(MAX_TIER, API_KEYS),
            id="neither-selector-matches",
        ),
    ],
)
def test_no_account_matches(accounts: list[Account], request_: Request) -> None:
    result = place(accounts, {}, request_, NOW)
    assert result == NoHeadroom(None, "no ClaudeAccount matches the session's accountSelector")


# --- properties: determinism and the documented order, random rosters --------------------------

NAMES = [f"acct-{c}" for c in "abcdefgh"]
LABELS = st.fixed_dictionaries(
    {},
    optional={
        "tier": st.sampled_from(["max", "pro"]),
        "type": st.sampled_from(["api-key", "oauth"]),
    },
)
TIMES = st.one_of(st.none(), st.sampled_from([PAST, NOW, SOON, LATER]))


@st.composite
def accounts(draw: st.DrawFn, labels: st.SearchStrategy[dict[str, str]] = LABELS) -> list[Account]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1, max_size=len(NAMES)))
    roster = []
    for name in names:
        windows = tuple(
            Window(f"w{i}", "allowed", u, r)
            for i, (u, r) in enumerate(
                draw(
                    st.lists(
                        st.tuples(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), TIMES), max_size=2
                    )
                )
            )
        )
        hash_ = draw(st.sampled_from([None, "sha256:1", "sha256:2", "sha256:2", "sha256:2"]))
        roster.append(
            Account(
                "agents",
                name,
                labels=draw(labels),
                max_sessions=draw(st.integers(1, 3)),
                priority=draw(st.integers(-1, 2)),
                paused=draw(st.sampled_from([False, False, False, True])),
                credentials_hash=hash_,
                auth_failed_hash=draw(st.sampled_from([None, None, "sha256:1"])),
                walled_until=draw(st.sampled_from([None, None, None, PAST, NOW, SOON, LATER])),
                drill_until=draw(st.sampled_from([None, None, None, PAST, SOON])),
                windows=windows,
            )
        )
    return roster


SELECTORS = st.sampled_from(
    [{}, MAX_TIER, API_KEYS, {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}]
)
REQUESTS = st.builds(
    Request,
    selector=SELECTORS,
    fallback_selector=st.one_of(st.none(), SELECTORS, SELECTORS),
    avoid=st.one_of(st.none(), st.sampled_from(NAMES)),
    prefer=st.one_of(st.none(), st.sampled_from(NAMES)),
)
LOADS = st.dictionaries(st.sampled_from(NAMES), st.sampled_from([0, 0, 1, 1, 2, 3]))


@FAST
@given(roster=accounts(), load=LOADS, request_=REQUESTS, data=st.data())
def test_shuffled_roster_gives_the_same_answer(
    roster: list[Account], load: dict[str, int], request_: Request, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(roster))
    assert place(shuffled, load, request_, NOW) == place(roster, load, request_, NOW)


def _matches(selector: Mapping[str, Any] | None, account: Account) -> bool:
    return matches(selector, account.labels)


def _open(account: Account, load: dict[str, int]) -> bool:
    return (
        account_state(account, NOW).phase is AccountPhase.AVAILABLE
        and load.get(account.name, 0) < account.max_sessions
    )


def _usable_in(pool: list[Account], load: dict[str, int], request_: Request) -> list[Account]:
    """The accounts of one pool a session may take: the one it leaves only as a last resort."""
    open_ = [a for a in pool if _open(a, load)]
    return [a for a in open_ if a.name != request_.avoid] or open_


def _brief_key(account: Account, load: dict[str, int]) -> tuple[Any, ...]:
    sessions = load.get(account.name, 0)
    return (-account.priority, -headroom(account, NOW) / (sessions + 1), sessions, account.name)


@FAST
@given(roster=accounts(), load=LOADS, request_=REQUESTS)
def test_placement_follows_the_brief(
    roster: list[Account], load: dict[str, int], request_: Request
) -> None:
    """An independent reading of the placement order, checked against `place` on random rosters."""
    primary = [a for a in roster if _matches(request_.selector, a)]
    fallback = [
        a
        for a in roster
        if request_.fallback_selector is not None
        and a not in primary
        and _matches(request_.fallback_selector, a)
    ]
    usable_primary = _usable_in(primary, load, request_)
    usable_fallback = _usable_in(fallback, load, request_)
    result = place(roster, load, request_, NOW)
    event(f"result: {type(result).__name__} {getattr(result, 'auth_path', '')}")

    if not usable_primary and not usable_fallback:
        assert isinstance(result, NoHeadroom)
        resets = [
            max(t for t in (a.walled_until, a.drill_until) if t is not None and t > NOW)
            for a in primary + fallback
            if account_state(a, NOW).phase is AccountPhase.WALLED
        ]
        assert result.earliest_reset == (min(resets) if resets else None)
        for a in sorted(primary + fallback, key=lambda a: a.name)[:5]:
            assert a.name in result.message
        return

    assert isinstance(result, Placed)
    pool = usable_primary or usable_fallback
    names = {a.name for a in pool}
    path = AuthPath.PRIMARY if usable_primary else AuthPath.FALLBACK
    # `prefer` (retry in place) wins only inside the pool that is used: a session on a fallback
    # account goes back to a primary one as soon as one has room.
    if request_.prefer in names:
        assert result == Placed(request_.prefer, path)
    else:
        best = min(pool, key=lambda a: _brief_key(a, load))
        assert result == Placed(best.name, path)
    # The chosen account is never full, always Available, and the one being left only when
    # nothing else in its pool was open.
    chosen = next(a for a in roster if a.name == result.account)
    assert _open(chosen, load)
    if chosen.name == request_.avoid:
        assert names == {chosen.name}


SPLIT_LABELS = st.sampled_from(
    [{"tier": "max"}, {"tier": "max"}, {"type": "api-key"}, {"tier": "max", "type": "api-key"}]
)


@FAST
@given(
    roster=accounts(SPLIT_LABELS),
    load=LOADS,
    avoid=st.one_of(st.none(), st.sampled_from(NAMES)),
    prefer=st.one_of(st.none(), st.sampled_from(NAMES)),
)
def test_fallback_only_when_no_primary_can_take_it(
    roster: list[Account], load: dict[str, int], avoid: str | None, prefer: str | None
) -> None:
    request_ = Request(MAX_TIER, API_KEYS, avoid=avoid, prefer=prefer)
    result = place(roster, load, request_, NOW)
    primary_ok = _usable_in([a for a in roster if "tier" in a.labels], load, request_)
    fallback_ok = _usable_in([a for a in roster if "tier" not in a.labels], load, request_)
    event(f"result: {type(result).__name__} {getattr(result, 'auth_path', '')}")
    if prefer in {a.name for a in primary_ok}:
        assert result == Placed(prefer, AuthPath.PRIMARY)
    elif primary_ok:
        assert result == Placed(
            min(primary_ok, key=lambda a: _brief_key(a, load)).name, AuthPath.PRIMARY
        )
    elif prefer in {a.name for a in fallback_ok}:
        assert result == Placed(prefer, AuthPath.FALLBACK)
    elif fallback_ok:
        assert result == Placed(
            min(fallback_ok, key=lambda a: _brief_key(a, load)).name, AuthPath.FALLBACK
        )
    else:
        assert isinstance(result, NoHeadroom)


# --- cluster accounts: scope, admission, one ranking ------------------------------------------


def cluster(name: str, admits: frozenset[str] = frozenset({"agents"}), **fields: Any) -> Account:
    fields.setdefault("credentials_hash", "sha256:c-" + name)
    fields.setdefault("max_sessions", 2)
    return Account("", name, admits=NamespaceAdmission(names=admits), **fields)


def scoped(scope: AccountScope, **fields: Any) -> Request:
    return Request(selector={}, scope=scope, namespace="agents", **fields)


POOL = [acct("alice"), cluster("shared")]


def test_the_default_scope_is_the_namespaces_claude_accounts() -> None:
    placed = place([cluster("shared", priority=9), acct("alice")], {}, Request({}), NOW)
    assert placed == Placed("alice", AuthPath.PRIMARY)


def test_cluster_scope_uses_only_cluster_accounts_and_names_them_by_ref() -> None:
    placed = place(POOL, {}, scoped(AccountScope.CLUSTER), NOW)
    assert placed == Placed("ClusterClaudeAccount/shared", AuthPath.PRIMARY)


def test_all_ranks_both_kinds_under_the_same_rules() -> None:
    pool = [acct("alice", priority=1), cluster("shared", priority=2)]
    assert place(pool, {}, scoped(AccountScope.ALL), NOW).account == "ClusterClaudeAccount/shared"
    pool = [acct("alice", windows=used(0.1)), cluster("shared", windows=used(0.6))]
    assert place(pool, {}, scoped(AccountScope.ALL), NOW).account == "alice"


def test_a_claude_account_and_a_cluster_account_of_one_name_are_two_accounts() -> None:
    pool = [acct("twin", max_sessions=1), cluster("twin", max_sessions=1)]
    load = {"twin": 1}  # the ClaudeAccount is full; the cluster one is not
    placed = place(pool, load, scoped(AccountScope.ALL), NOW)
    assert placed == Placed("ClusterClaudeAccount/twin", AuthPath.PRIMARY)


def test_a_cluster_accounts_load_is_its_own_count() -> None:
    full = {"ClusterClaudeAccount/shared": 2}
    got = place([cluster("shared")], full, scoped(AccountScope.CLUSTER), NOW)
    assert isinstance(got, NoHeadroom)
    assert "ClusterClaudeAccount/shared is full (2/2)" in got.message


def test_a_namespace_not_admitted_is_told_which_account_and_why() -> None:
    got = place(
        [cluster("shared", admits=frozenset({"other"}))], {}, scoped(AccountScope.CLUSTER), NOW
    )
    assert isinstance(got, NoHeadroom)
    assert got.earliest_reset is None
    assert "ClusterClaudeAccount/shared does not admit namespace agents" in got.message
    assert "spec.allowedNamespaces" in got.message


def test_a_walled_account_not_admitted_promises_no_reset() -> None:
    walled = cluster("shared", admits=frozenset({"other"}), walled_until=LATER)
    got = place([walled], {}, scoped(AccountScope.CLUSTER), NOW)
    assert isinstance(got, NoHeadroom) and got.earliest_reset is None


def test_the_fallback_has_a_scope_of_its_own() -> None:
    request = Request(
        selector={},
        fallback_selector={},
        fallback_scope=AccountScope.CLUSTER,
        namespace="agents",
    )
    pool = [acct("alice", walled_until=LATER), cluster("shared")]
    assert place(pool, {}, request, NOW) == Placed("ClusterClaudeAccount/shared", AuthPath.FALLBACK)


def test_avoid_and_prefer_take_refs() -> None:
    pool = [cluster("a"), cluster("b")]
    request = scoped(AccountScope.CLUSTER, avoid="ClusterClaudeAccount/a")
    assert place(pool, {}, request, NOW).account == "ClusterClaudeAccount/b"
    request = scoped(AccountScope.CLUSTER, prefer="ClusterClaudeAccount/b")
    assert place(pool, {}, request, NOW).account == "ClusterClaudeAccount/b"


@pytest.mark.parametrize(
    ("scope", "fallback_scope", "has_fallback", "uses_cluster"),
    [
        (AccountScope.NAMESPACED, AccountScope.NAMESPACED, True, False),
        (AccountScope.NAMESPACED, AccountScope.CLUSTER, False, False),
        (AccountScope.NAMESPACED, AccountScope.CLUSTER, True, True),
        (AccountScope.CLUSTER, AccountScope.NAMESPACED, False, True),
        (AccountScope.ALL, AccountScope.NAMESPACED, False, True),
    ],
)
def test_who_takes_the_cluster_wide_placement_lock(
    scope: AccountScope, fallback_scope: AccountScope, has_fallback: bool, uses_cluster: bool
) -> None:
    request = Request(
        selector={},
        fallback_selector={} if has_fallback else None,
        scope=scope,
        fallback_scope=fallback_scope,
    )
    assert request.may_use_cluster_accounts is uses_cluster


@FAST
@given(
    admitted_names=st.sets(st.sampled_from(["agents", "other"])),
    scope=st.sampled_from(list(AccountScope)),
    load=st.integers(0, 3),
)
def test_placement_never_picks_what_scope_or_admission_excludes(
    admitted_names: set[str], scope: AccountScope, load: int
) -> None:
    pool = [acct("alice"), cluster("shared", admits=frozenset(admitted_names))]
    got = place(pool, {"alice": load, "ClusterClaudeAccount/shared": load}, scoped(scope), NOW)
    if isinstance(got, Placed):
        chosen = next(a for a in pool if a.ref == got.account)
        assert in_scope(chosen, scope)
        assert not chosen.cluster or "agents" in admitted_names
        assert load < chosen.max_sessions
