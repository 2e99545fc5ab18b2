"""Per-model weekly windows, warnings and models that need credits: the mapping in
headroom.core.models, and what placement and the session machine make of it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.contract.termination import Outcome
from headroom.core.accounts import (
    Account,
    AccountPhase,
    CredentialType,
    ModelCredit,
    Window,
    account_state,
)
from headroom.core.models import (
    DEFAULT_MODEL,
    MODEL_SCOPED_WINDOWS,
    blocked_for,
    draws_on,
    families,
    model_key,
    model_limits,
    model_windows,
    warned,
)
from headroom.core.outcome import AttemptEnd
from headroom.core.placement import NoHeadroom, Placed, Request, place
from headroom.core.reasons import MoveReason
from headroom.core.session import (
    FailoverPolicy,
    PendingMove,
    Progress,
    Reschedule,
    RetryPolicy,
    WallAccount,
    WallModel,
    after_attempt,
    next_request,
)
from headroom.core.windows import merged_windows, window_from_status

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
RESET = NOW + timedelta(days=3)
OPUS, SONNET = "seven_day_opus", "seven_day_sonnet"
OAUTH, KEY, FILE = (
    CredentialType.OAUTH_TOKEN,
    CredentialType.API_KEY,
    CredentialType.CREDENTIALS_FILE,
)

# Every spelling a session may give, per credential type: the per-model windows it draws on.
# Default (no model): Sonnet for a bare OAuth token and Opus for an API key (both recorded in
# tests/runner/data: the init line's model), either for a credentials file (its subscription
# type decides, and the operator does not read the file).
MAPPING: list[tuple[str | None, frozenset[str], frozenset[str], frozenset[str]]] = [
    # model, OAuthToken, APIKey, CredentialsFile
    (None, frozenset({SONNET}), frozenset({OPUS}), frozenset({OPUS, SONNET})),
    ("", frozenset({SONNET}), frozenset({OPUS}), frozenset({OPUS, SONNET})),
    ("default", frozenset({SONNET}), frozenset({OPUS}), frozenset({OPUS, SONNET})),
    (" Default ", frozenset({SONNET}), frozenset({OPUS}), frozenset({OPUS, SONNET})),
    ("opus", frozenset({OPUS}), frozenset({OPUS}), frozenset({OPUS})),
    ("opus[1m]", frozenset({OPUS}), frozenset({OPUS}), frozenset({OPUS})),
    ("claude-opus-5-5", frozenset({OPUS}), frozenset({OPUS}), frozenset({OPUS})),
    ("claude-opus-4-8[1m]", frozenset({OPUS}), frozenset({OPUS}), frozenset({OPUS})),
    ("CLAUDE-OPUS-4-1", frozenset({OPUS}), frozenset({OPUS}), frozenset({OPUS})),
    ("best", frozenset({OPUS}), frozenset({OPUS}), frozenset({OPUS})),
    ("sonnet", frozenset({SONNET}), frozenset({SONNET}), frozenset({SONNET})),
    ("sonnet[1m]", frozenset({SONNET}), frozenset({SONNET}), frozenset({SONNET})),
    ("claude-sonnet-5-5", frozenset({SONNET}), frozenset({SONNET}), frozenset({SONNET})),
    ("claude-sonnet-4-6", frozenset({SONNET}), frozenset({SONNET}), frozenset({SONNET})),
    ("opusplan", frozenset({OPUS, SONNET}), frozenset({OPUS, SONNET}), frozenset({OPUS, SONNET})),
    ("haiku", frozenset(), frozenset(), frozenset()),
    ("claude-haiku-4-5", frozenset(), frozenset(), frozenset()),
    ("fable", frozenset(), frozenset(), frozenset()),
    ("claude-fable-5-1", frozenset(), frozenset(), frozenset()),
    ("claude-mythos-5-2", frozenset(), frozenset(), frozenset()),
    ("opusish", frozenset(), frozenset(), frozenset()),  # not the opus family
    ("my-custom-sonnet", frozenset(), frozenset(), frozenset()),
]
CREDENTIALS = (OAUTH, KEY, FILE)
WINDOWS = ("five_hour", "seven_day", "credits", "overage", OPUS, SONNET)


@pytest.mark.parametrize(
    ("model", "credential", "expected"),
    [
        (model, credential, expected[i])
        for model, *expected in MAPPING
        for i, credential in enumerate(CREDENTIALS)
    ],
)
def test_the_windows_each_model_draws_on(
    model: str | None, credential: CredentialType, expected: frozenset[str]
) -> None:
    assert model_windows(model, credential) == expected
    assert families(model, credential) == {w.removeprefix("seven_day_") for w in expected}
    for window in WINDOWS:  # every request draws on the windows that are not per model
        assert draws_on(window, model, credential) == (
            window not in MODEL_SCOPED_WINDOWS or window in expected
        )


def test_the_mapping_covers_every_credential_type_and_both_model_windows() -> None:
    assert set(CREDENTIALS) == set(CredentialType)
    assert {OPUS, SONNET} == MODEL_SCOPED_WINDOWS


@pytest.mark.parametrize(
    ("model", "key"),
    [
        (None, DEFAULT_MODEL),
        ("", DEFAULT_MODEL),
        ("Opus[1m]", "opus"),
        (" claude-Fable-5-1 ", "claude-fable-5-1"),
    ],
)
def test_model_key(model: str | None, key: str) -> None:
    assert model_key(model) == key


# --- placement: eligibility by model -----------------------------------------------------


def acct(name: str, **fields: Any) -> Account:
    return Account(namespace="ns", name=name, credentials_hash="sha256:" + name, **fields)


def walled_on(window: str, until: datetime = RESET) -> tuple[Window, ...]:
    return (Window(window, "rejected", 1.0, until),)


def request(model: str | None, **fields: Any) -> Request:
    return Request(selector={}, model=model, namespace="ns", **fields)


@pytest.mark.parametrize(
    ("model", "credential"), list(itertools.product([m for m, *_ in MAPPING], CREDENTIALS))
)
@pytest.mark.parametrize("window", [OPUS, SONNET])
def test_a_per_model_wall_keeps_off_exactly_the_sessions_of_that_model(
    model: str | None, credential: CredentialType, window: str
) -> None:
    walled = acct("a-walled", windows=walled_on(window), credential_type=credential)
    other = acct("b-other", credential_type=credential, priority=-1)  # ranks below if eligible
    # The account stays Available: the wall is only for some models.
    assert account_state(walled, NOW).phase is AccountPhase.AVAILABLE
    choice = place([walled, other], {}, request(model), NOW)
    needs = window in model_windows(model, credential)
    assert isinstance(choice, Placed) and choice.account == ("b-other" if needs else "a-walled")

    alone = place([walled], {}, request(model), NOW)
    if needs:
        assert isinstance(alone, NoHeadroom) and alone.earliest_reset == RESET
        assert f"a-walled reached its {window} limit until 2026-12-04T12:00:00Z" in alone.message
    else:
        assert isinstance(alone, Placed)


def test_a_per_model_wall_that_has_reset_holds_nothing() -> None:
    account = acct("a", windows=walled_on(OPUS, NOW - timedelta(seconds=1)))
    assert blocked_for(account, "opus", NOW) is None
    assert model_limits(account, NOW) == []


def test_model_limits_name_each_window_and_its_reset() -> None:
    account = acct("a", windows=walled_on(OPUS) + walled_on(SONNET, NOW + timedelta(days=1)))
    assert model_limits(account, NOW) == [
        "seven_day_opus (Opus models) until 2026-12-04T12:00:00Z",
        "seven_day_sonnet (Sonnet models) until 2026-12-02T12:00:00Z",
    ]


# --- placement: models that need credits the account lacks -------------------------------


def credit(
    model: str, hash_: str = "sha256:a", retry: timedelta = timedelta(hours=1)
) -> ModelCredit:
    return ModelCredit(model, NOW - timedelta(minutes=5), NOW + retry, hash_)


@pytest.mark.parametrize(
    ("recorded", "model", "avoided"),
    [
        ("claude-fable-5-1", "claude-fable-5-1", True),
        ("claude-fable-5-1", "Claude-Fable-5-1[1m]", True),  # the same model, spelled otherwise
        ("claude-fable-5-1", "opus", False),
        ("claude-fable-5-1", None, False),
        (DEFAULT_MODEL, None, True),
        (DEFAULT_MODEL, "default", True),
        (DEFAULT_MODEL, "sonnet", False),
    ],
)
def test_a_model_that_needs_credits_keeps_off_only_its_sessions(
    recorded: str, model: str | None, avoided: bool
) -> None:
    lacking = acct("a", model_credits=(credit(recorded),))
    choice = place([lacking, acct("b", priority=-1)], {}, request(model), NOW)
    assert isinstance(choice, Placed) and choice.account == ("b" if avoided else "a")
    alone = place([lacking], {}, request(model), NOW)
    assert isinstance(alone, NoHeadroom) == avoided
    if avoided:
        assert isinstance(alone, NoHeadroom) and "a lacks the usage credits" in alone.message
        assert alone.earliest_reset is None  # a recheck, not a reset: nothing frees it by itself


def test_a_model_credits_record_ends_with_its_recheck_or_a_new_credential() -> None:
    expired = acct("a", model_credits=(credit("opus", retry=timedelta(0)),))
    replaced = acct("a", model_credits=(credit("opus", hash_="sha256:old"),))
    for account in (expired, replaced):
        assert blocked_for(account, "opus", NOW) is None
        assert model_limits(account, NOW) == []


# --- placement: the warning tier ---------------------------------------------------------


def warned_on(window: str, resets: datetime | None = RESET) -> tuple[Window, ...]:
    return (Window(window, "allowed_warning", 0.86, resets, warning=True, surpassed_threshold=0.8),)


def test_a_warned_account_is_chosen_only_when_no_unwarned_one_has_room() -> None:
    # The warned one ranks first otherwise (priority, headroom): the tier comes before that.
    hot = acct("a-hot", priority=10, windows=warned_on("five_hour"), max_sessions=5)
    cool = acct("b-cool", max_sessions=1)
    chosen = place([hot, cool], {}, request(None), NOW)
    assert isinstance(chosen, Placed) and chosen.account == "b-cool"
    full = {"b-cool": 1}
    chosen = place([hot, cool], full, request(None), NOW)
    assert isinstance(chosen, Placed) and chosen.account == "a-hot"


def test_a_prefer_on_a_warned_account_yields_to_an_unwarned_one() -> None:
    hot = acct("a-hot", windows=warned_on("five_hour"))
    cool = acct("b-cool")
    chosen = place([hot, cool], {}, request(None, prefer="a-hot"), NOW)
    assert isinstance(chosen, Placed) and chosen.account == "b-cool"
    alone = place([hot], {}, request(None, prefer="a-hot"), NOW)
    assert isinstance(alone, Placed) and alone.account == "a-hot"


@pytest.mark.parametrize(
    ("window", "model", "counts"),
    [
        ("five_hour", "haiku", True),
        ("seven_day", "opus", True),
        (OPUS, "opus", True),
        (OPUS, "sonnet", False),  # a warning on a window the session does not draw on
        (SONNET, None, True),  # an OAuth token's default is Sonnet
        (OPUS, None, False),
    ],
)
def test_a_warning_counts_only_on_a_window_the_session_draws_on(
    window: str, model: str | None, counts: bool
) -> None:
    account = acct("a", windows=warned_on(window))
    assert warned(account, model, NOW) == counts


def test_a_warning_on_a_window_that_has_reset_no_longer_counts() -> None:
    assert not warned(acct("a", windows=warned_on("five_hour", NOW)), None, NOW)
    assert warned(acct("a", windows=warned_on("five_hour", None)), None, NOW)


ACCOUNTS = st.lists(
    st.tuples(st.booleans(), st.integers(0, 2), st.integers(1, 2), st.integers(-1, 1)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None, database=None)
@given(specs=ACCOUNTS)
def test_warned_is_chosen_only_when_no_unwarned_eligible_account_has_room(
    specs: list[tuple[bool, int, int, int]],
) -> None:
    accounts = [
        acct(
            f"acct-{i}",
            windows=warned_on("five_hour") if hot else (),
            max_sessions=cap,
            priority=prio,
        )
        for i, (hot, _, cap, prio) in enumerate(specs)
    ]
    load = {f"acct-{i}": used for i, (_, used, _, _) in enumerate(specs)}
    choice = place(accounts, load, request(None), NOW)
    room = [a for a in accounts if load[a.name] < a.max_sessions]
    cool_room = [a for a in room if not a.windows]
    if not room:
        assert isinstance(choice, NoHeadroom)
        return
    assert isinstance(choice, Placed)
    chosen = next(a for a in accounts if a.name == choice.account)
    assert bool(chosen.windows) == (not cool_room)


# --- the session machine -----------------------------------------------------------------

POLICY, RETRY = FailoverPolicy(), RetryPolicy()


@pytest.mark.parametrize("window", sorted(MODEL_SCOPED_WINDOWS))
def test_a_per_model_wall_moves_the_session_without_walling_the_account(window: str) -> None:
    end = AttemptEnd(Outcome.WALLED, window=window, resets_at=RESET, evidence="e")
    decision = after_attempt(Progress(attempt=1, account="a"), end, POLICY, RETRY, NOW)
    assert decision.effect == WallModel("a", window, RESET, "e")
    assert isinstance(decision.step, Reschedule) and decision.step.leave
    assert decision.step.reason == MoveReason.MODEL_WALLED
    assert "still runs sessions of other models" in decision.step.message


def test_a_plan_wide_weekly_wall_still_walls_the_account() -> None:
    end = AttemptEnd(Outcome.WALLED, window="seven_day", resets_at=RESET)
    decision = after_attempt(Progress(attempt=1, account="a"), end, POLICY, RETRY, NOW)
    assert isinstance(decision.effect, WallAccount)


def test_the_next_request_carries_the_sessions_model() -> None:
    move = PendingMove(MoveReason.MODEL_WALLED, "m", leave=True)
    req = next_request({}, None, "a", move, "opus")
    assert (req.model, req.avoid, req.prefer) == ("opus", "a", None)


# --- what an attempt's end writes to status.windows --------------------------------------


def test_a_warning_is_recorded_on_its_window_and_cleared_by_a_later_plain_report() -> None:
    account = acct("a", windows=(Window("seven_day", "allowed", 0.2),))
    end = AttemptEnd(
        Outcome.COMPLETED,
        utilization={"five_hour": 0.86, "seven_day": 0.3},
        warnings={"five_hour": 0.8},
    )
    written = {w["name"]: w for w in merged_windows(account, end, NOW)}
    assert written["five_hour"]["warning"] is True
    assert written["five_hour"]["surpassedThreshold"] == 0.8
    assert written["five_hour"]["status"] == "allowed_warning"
    assert "warning" not in written["seven_day"]
    read = Account("ns", "a", windows=tuple(window_from_status(w) for w in written.values()))
    assert warned(read, None, NOW)

    later = AttemptEnd(Outcome.COMPLETED, utilization={"five_hour": 0.1})
    rewritten = {w["name"]: w for w in merged_windows(read, later, NOW)}
    assert "warning" not in rewritten["five_hour"] and rewritten["five_hour"]["status"] == "allowed"


def test_a_per_model_wall_is_recorded_as_a_rejected_window_with_its_reset() -> None:
    end = AttemptEnd(Outcome.WALLED, window=OPUS, resets_at=RESET)
    [entry] = merged_windows(acct("a"), end, NOW)
    assert (entry["name"], entry["status"], entry["resetsAt"]) == (
        OPUS,
        "rejected",
        "2026-12-04T12:00:00Z",
    )
    read = acct("a", windows=(window_from_status(entry),))
    assert blocked_for(read, "opus", NOW) is not None and blocked_for(read, "sonnet", NOW) is None


def test_a_usage_reading_keeps_a_warning_in_the_same_period_and_the_windows_it_did_not_read() -> (
    None
):
    from headroom.core.usage import ReportedWindow, merged_usage_windows

    weekly = Window(
        "seven_day", "allowed_warning", 0.6, RESET, warning=True, surpassed_threshold=0.5
    )
    account = acct("a", windows=(*warned_on("five_hour"), weekly))
    report = (ReportedWindow("five_hour", 0.9, RESET),)
    written = {w["name"]: w for w in merged_usage_windows(account, report, NOW)}
    assert (written["five_hour"]["warning"], written["five_hour"]["surpassedThreshold"]) == (
        True,
        0.8,
    )
    assert written["five_hour"]["utilization"] == 0.9
    assert written["seven_day"]["warning"] is True  # not in this reading: kept as it was
    reset = (ReportedWindow("five_hour", 0.1, RESET + timedelta(hours=5)),)  # a new period
    renewed = {w["name"]: w for w in merged_usage_windows(account, reset, NOW)}
    assert "warning" not in renewed["five_hour"] and renewed["five_hour"]["status"] == "allowed"
