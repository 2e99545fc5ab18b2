"""The plugin's views rendered from fixture objects: what a person reads in an 80-column
terminal."""

from __future__ import annotations

from typing import Any

from tests.plugin.conftest import NOW, NS, account, at

from headroom.plugin.kinds import CLAUDE_ACCOUNT, CLUSTER_CLAUDE_ACCOUNT, Listing
from headroom.plugin.status_view import render_status
from headroom.plugin.text import Column, span, table
from headroom.plugin.why_view import render_why

JSON = dict[str, Any]

STATUS = """\
Namespace agents, at 16:00Z
ClaudeAccounts: 5, 1 available
NAME                   PHASE       ACTIVE  WINDOW     USED  RESETS IN
alice                  Available      1/2  five_hour   42%  3h12m (19:12Z)
                                           seven_day   10%  4d2h (Dec 05 18:00Z)
bob                    Walled         0/2  five_hour  100%  2h13m (18:13Z)
    UsageLimitReached: usage limit reached (five_hour); resets at
    2026-12-01T18:13:00Z
carol                  Walled         0/1                   1m (16:01Z)
    Drill: a failover drill treats the account as walled until
    2026-12-01T16:01:30Z
dave-with-a-rather-l…  AuthFailed     0/2
    AuthenticationFailed: the API rejected these credentials (401); replace the
    Secret's content to retry
team-api               Paused         1/4
    Paused: spec.paused is true: no new sessions

AgentSessions: 7
    2 Running, 2 Pending, 1 Waiting, 1 Succeeded, 1 Failed

Not running yet:
NAME         PHASE    REASON        FOR  WAKES IN
bump-deps    Pending  BackingOff  1h00m  45s (16:00Z)
refactor-io  Waiting  NoHeadroom    12m  2h13m (18:13Z)
brand-new    Pending  NotSeenYet     5s
"""


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_status_shows_the_pool_at_a_glance(accounts: list[JSON], sessions: list[JSON]) -> None:
    text = render_status(NS, [Listing(CLAUDE_ACCOUNT, tuple(accounts))], sessions, NOW, width=80)
    assert text == STATUS
    assert widest(text) <= 80


def test_a_wider_terminal_keeps_long_names_whole(
    accounts: list[JSON], sessions: list[JSON]
) -> None:
    text = render_status(NS, [Listing(CLAUDE_ACCOUNT, tuple(accounts))], sessions, NOW, width=120)
    assert "dave-with-a-rather-long-account-name  AuthFailed" in text
    assert widest(text) <= 120


def test_a_narrow_terminal_still_gets_lines_that_fit(
    accounts: list[JSON], sessions: list[JSON]
) -> None:
    text = render_status(NS, [Listing(CLAUDE_ACCOUNT, tuple(accounts))], sessions, NOW, width=60)
    assert widest(text) <= 60
    assert "alice" in text and "refactor-io" in text


def test_an_empty_namespace_says_so() -> None:
    text = render_status(NS, [Listing(CLAUDE_ACCOUNT)], [], NOW)
    assert text == "Namespace agents, at 16:00Z\nClaudeAccounts: none\n\nAgentSessions: 0\n"


def test_an_account_the_operator_has_not_seen_says_what_to_check() -> None:
    fresh = account("erin")
    fresh.pop("status")
    text = render_status(NS, [Listing(CLAUDE_ACCOUNT, (fresh,))], [], NOW)
    assert "erin" in text and "Unknown" in text
    assert "is the operator running and watching this namespace?" in text


def test_every_account_kind_gets_its_own_section(accounts: list[JSON]) -> None:
    shared = account("shared-pool", phase="Available", activeSessions=0)
    shared["metadata"].pop("namespace")
    listings = [Listing(CLAUDE_ACCOUNT, (accounts[0],)), Listing(CLUSTER_CLAUDE_ACCOUNT, (shared,))]
    text = render_status(NS, listings, [], NOW)
    assert "\nClaudeAccounts: 1, 0 available\n" in text
    assert "\nClusterClaudeAccounts (cluster-wide): 1, 1 available\n" in text
    assert text.index("bob") < text.index("shared-pool")


def test_a_kind_that_cannot_be_listed_says_why_and_the_rest_still_shows(
    accounts: list[JSON],
) -> None:
    refused = Listing(
        CLUSTER_CLAUDE_ACCOUNT,
        problem="GET /apis/headroom.dev/v1alpha1/clusterclaudeaccounts failed: 403 Forbidden: "
        'clusterclaudeaccounts.headroom.dev is forbidden: User "jo" cannot list resource',
    )
    text = render_status(NS, [Listing(CLAUDE_ACCOUNT, tuple(accounts)), refused], [], NOW)
    assert "\nClaudeAccounts: 5, 1 available\n" in text
    assert "\nClusterClaudeAccounts (cluster-wide): not shown\n    GET /apis/" in text
    assert widest(text) <= 80


WHY = """\
AgentSession fix-flaky-test in namespace agents
  phase     Running on alice, primary path, attempt 2, 1 swap
  pod       fix-flaky-test-2

Conditions
  TYPE       STATUS  REASON       SINCE
  Ready      True    Running         4m
      agent pod fix-flaky-test-2 is running on alice
  Scheduled  True    Placed          4m
      placed on alice (primary): highest priority, most headroom
  Completed  False   NotFinished  1h00m

Last outcome
  walled, 5m ago, pod fix-flaky-test-1, window five_hour, resets in 2h13m
  (18:13Z)
      Claude Code reported the usage limit of the five_hour window; the session
      moves to another account and resumes its conversation
      evidence: Claude usage limit reached. Your limit will reset at 6:13pm

Swaps
  AT      FROM  TO     REASON
  15:55Z  bob   alice  Walled (five_hour)

Events, oldest first
  AGE  TYPE     REASON
  58m  Normal   Placed
      placed on bob (primary)
   5m  Warning  Walled
      bob hit its five_hour limit; resets at 18:13Z
   5m  Warning  Swapped
      moved from bob to alice: walled (five_hour)
   4m  Normal   Placed (x3)
      placed on alice (primary)
"""


def test_why_tells_the_story_of_a_moved_session(moved_session: JSON, events: list[JSON]) -> None:
    events[-1]["count"] = 3
    text = render_why(moved_session, events, NOW, width=80)
    assert text == WHY
    assert widest(text) <= 80


def test_why_for_a_waiting_session_says_until_when() -> None:
    waiting: JSON = {
        "metadata": {"name": "refactor-io", "namespace": NS},
        "status": {
            "phase": "Waiting",
            "swapCount": 0,
            "waitingSince": at(-720),
            "waitingUntil": at(7980),
            "waitingMessage": "no eligible account has headroom; bob resets first",
        },
    }
    text = render_why(waiting, [], NOW)
    assert "  waiting   12m, wakes in 2h13m (18:13Z)\n" in text
    assert "            no eligible account has headroom; bob resets first\n" in text
    assert "  no attempt has ended yet\n" in text
    assert "Swaps\n  none\n" in text
    assert "none (Events expire after an hour by default)" in text


def test_why_for_a_finished_session_gives_its_result() -> None:
    done: JSON = {
        "metadata": {"name": "x", "namespace": NS},
        "status": {
            "phase": "Failed",
            "account": "bob",
            "attempt": 3,
            "result": {"reason": "RetriesExhausted", "turns": 12, "costUSD": 1.5,
                       "detail": "3 attempts in a row failed"},
        },
    }  # fmt: skip
    text = render_why(done, [], NOW)
    assert "  phase     Failed on bob, attempt 3, 0 swaps\n" in text
    assert "  result    RetriesExhausted, 12 turns, $1.50\n" in text
    assert "            3 attempts in a row failed\n" in text


def test_spans_read_as_two_units() -> None:
    from datetime import timedelta

    seen = [span(timedelta(seconds=s)) for s in (0, 59, 60, 3599, 3600, 3660, 86400 * 2 + 3600)]
    assert seen == ["0s", "59s", "1m", "59m", "1h00m", "1h01m", "2d1h"]


def test_a_table_cuts_what_does_not_fit_and_says_so() -> None:
    columns = (Column("NAME", 30), Column("NOTE", 40))
    lines = table(columns, [["a" * 30, "b" * 40]], width=40)
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].endswith("…")


def test_events_of_one_second_keep_the_order_they_were_written_in(moved_session: JSON) -> None:
    def event(reason: str, version: str) -> JSON:
        return {"type": "Normal", "reason": reason, "message": reason.lower(),
                "lastTimestamp": at(-2), "metadata": {"resourceVersion": version}}  # fmt: skip

    shuffled = [event("Swapped", "1203"), event("Placed", "987"), event("Walled", "1100")]
    text = render_why(moved_session, shuffled, NOW)
    assert text.index("placed") < text.index("walled") < text.index("swapped")


def test_conditions_read_ready_scheduled_completed(moved_session: JSON) -> None:
    moved_session["status"]["conditions"].reverse()
    text = render_why(moved_session, [], NOW)
    assert text.index("  Ready ") < text.index("  Scheduled ") < text.index("  Completed ")


def test_an_available_account_shows_its_per_model_limits_and_warnings() -> None:
    limited = account(
        "erin",
        phase="Available",
        activeSessions=0,
        windows=[
            {"name": "five_hour", "status": "allowed_warning", "utilization": 0.86,
             "warning": True, "surpassedThreshold": 0.8, "resetsAt": at(3600)},
            {"name": "seven_day_opus", "status": "rejected", "utilization": 1.0,
             "resetsAt": at(3 * 86400)},
        ],
        conditions=[
            {"type": "Ready", "status": "True", "reason": "Available", "message": "ready"},
            {"type": "ModelLimited", "status": "True", "reason": "ModelLimitReached",
             "message": "sessions of these models avoid the account, others still run there:"
                        " seven_day_opus (Opus models) until 2026-12-04T16:00:00Z"},
        ],
    )  # fmt: skip
    text = render_status(NS, [Listing(CLAUDE_ACCOUNT, (limited,))], [], NOW, width=100)
    assert "five_hour       86%!" in text
    assert "ModelLimitReached: sessions of these models avoid the account" in text
    assert "seven_day_opus (Opus models) until 2026-12-04T16:00:00Z" in text
