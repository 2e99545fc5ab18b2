"""The whole pool drained on purpose (the healer must not share the failure domain it heals).

Every account is walled or AuthFailed. The operator, which holds no Claude credential of its
own, keeps acting: sessions wait with NoHeadroom and the earliest reset, new sessions are still
accepted and recorded, and the waiting ones are woken by a rotated Secret and by a window reset
without anyone touching them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.faults import assert_history_clean, liveness_ok, settled
from tests.support.operator import Scene, in_seconds, wait_for

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

CLAUDE_CREDENTIAL_VARS = ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode(errors="replace").partition("=")[::2] for e in raw if e)


def _waiting(scene: Scene, names: list[str]) -> dict[str, dict] | None:
    states = {n: scene.status("agentsessions", n) for n in names}
    return states if all(s.get("phase") == "Waiting" for s in states.values()) else None


def test_drained_pool_still_places_waits_and_wakes(scene: Scene, operator, pod_history) -> None:
    pid = operator.proc.pid
    env = _environ(pid)
    assert not [v for v in CLAUDE_CREDENTIAL_VARS if env.get(v)], "the healer holds a credential"
    limits = {"alice": 2, "bob": 2, "carol": 2}
    scene.account("alice", max_sessions=2, priority=5)
    scene.account("bob", max_sessions=2, priority=3)
    scene.account("carol", max_sessions=2, token="old-carol-token")
    history = pod_history(limits)
    first = [f"s{i}" for i in range(6)]
    for name in first:
        scene.session(name)
    running = {n: scene.wait_running(n, attempt=1, timeout=60) for n in first}
    assert sorted(s["account"] for s in running.values()) == sorted(list(limits) * 2)

    # Drain: alice walls (resets soon), bob walls (resets late), carol's credentials die.
    alice_reset, bob_reset = in_seconds(35), in_seconds(3600)
    for s in running.values():
        if s["account"] == "carol":
            scene.finish_pod(s["podName"], Outcome.AUTH_FAILED, evidence="401 authentication")
        else:
            reset = alice_reset if s["account"] == "alice" else bob_reset
            scene.finish_pod(s["podName"], Outcome.WALLED, window="five_hour", resets_at=reset)
    waiting = wait_for("every session Waiting", lambda: _waiting(scene, first), timeout=60)
    for name, status in waiting.items():
        assert status["waitingUntil"] == alice_reset, (name, status)
        cond = scene.condition("agentsessions", name, "Scheduled")
        assert cond["reason"] == "NoHeadroom" and alice_reset in cond["message"], cond
    phases = {n: scene.status("claudeaccounts", n)["phase"] for n in limits}
    assert phases == {"alice": "Walled", "bob": "Walled", "carol": "AuthFailed"}
    assert not history.live(), history.live()

    # New work is still accepted and recorded while nothing can run.
    late = ["late-0", "late-1"]
    for name in late:
        scene.session(name)
    recorded = wait_for("new sessions Waiting", lambda: _waiting(scene, late), timeout=60)
    for name, status in recorded.items():
        assert status["claudeSessionId"] and status["waitingUntil"] == alice_reset
        wait_for(
            f"NoHeadroom event for {name}",
            lambda n=name: [
                e
                for e in scene.events()
                if e.involved_object.name == n and e.reason == "NoHeadroom"
            ],
        )
    assert not history.live()

    # Woken by a Secret change: carol's token is rotated; two waiting sessions go there.
    everyone = first + late
    scene.secret("carol-claude", {"token": "new-carol-token"})
    scene.wait_phase("claudeaccounts", "carol", "Available")
    on = wait_for(
        "two sessions placed on carol",
        lambda: (
            (a := _accounts_running(scene, everyone)).get("carol") == 2
            and sum(a.values()) == 2
            and a
        ),
        timeout=60,
    )
    assert on == {"carol": 2}

    # Woken by the window reset: alice takes two more, by itself, at the reset time.
    on = wait_for(
        "two more placed on alice after its reset",
        lambda: (a := _accounts_running(scene, everyone)).get("alice") == 2 and a,
        timeout=120,
    )
    assert on == {"carol": 2, "alice": 2}
    still = [n for n in everyone if scene.status("agentsessions", n)["phase"] == "Waiting"]
    assert len(still) == 4
    for name in still:
        assert scene.status("agentsessions", name)["waitingUntil"] == bob_reset
    wait_for(
        "coherent sessions",
        lambda: settled(scene, history, {"ok:Running", "ok:Waiting"}),
        timeout=60,
    )
    assert_history_clean(scene, history)
    assert operator.alive() and operator.proc.pid == pid and liveness_ok(operator)
    print(f"\n[faults] drained pool: {history.summary()}")


def _accounts_running(scene: Scene, names: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        status = scene.status("agentsessions", name)
        if status.get("phase") == "Running":
            counts[status["account"]] = counts.get(status["account"], 0) + 1
    return counts


def test_sessions_return_to_the_account_they_left_once_its_wall_resets(
    scene: Scene, operator, pod_history
) -> None:
    """Regression: a session that left a walled account avoided it even after its reset, and
    when no other account had room it waited with no reset left to wake it."""
    scene.account("alice", max_sessions=2, priority=5)
    scene.account("bob", max_sessions=1)
    history = pod_history({"alice": 2, "bob": 1})
    first = {}
    for name in ("s1", "s2", "s3"):
        first[name] = scene.wait_running(scene.session(name)["metadata"]["name"], attempt=1)
    assert [first[n]["account"] for n in ("s1", "s2", "s3")] == ["alice", "alice", "bob"]
    reset = in_seconds(8)
    for name in ("s1", "s2"):
        scene.finish_pod(
            first[name]["podName"], Outcome.WALLED, window="five_hour", resets_at=reset
        )
    waiting = wait_for("s1 and s2 Waiting", lambda: _waiting(scene, ["s1", "s2"]), timeout=60)
    assert {s["waitingUntil"] for s in waiting.values()} == {reset}
    for name in ("s1", "s2"):  # woken at the reset, back on alice: the only account with room
        back = scene.wait_running(name, attempt=2, timeout=60)
        assert back["account"] == "alice" and back["swapCount"] == 0, back
    assert_history_clean(scene, history)
