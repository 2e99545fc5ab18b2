"""Failover for real: walls, dead credentials, an exhausted pool and a 500 storm, each caused
in the stand-in and observed by the real CLI inside containers on a real node."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.e2e import MARKER, SMALL_WINDOWS, Fleet
from tests.support.operator import OperatorProcess, wait_for

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 180  # failure bounds for real CLI runs on a shared 2-core machine
STALL_SECONDS = 10  # how long the stand-in holds a request so a test can act mid-run


def _termination(fleet: Fleet, pod_name: str) -> tuple[int, dict[str, Any]] | None:
    """Exit code and termination message of a pod, as the kubelet reported them."""
    pod = fleet.scene.pod(pod_name)
    if pod is None or not pod.status.container_statuses:
        return None
    term = pod.status.container_statuses[0].state.terminated
    if term is None:
        return None
    return term.exit_code, json.loads(term.message)


def _held_mid_run(fleet: Fleet, session: str, account: str) -> None:
    """Wait until the session runs on `account` and its request sits stalled in the stand-in."""
    wait_for(
        f"{session} mid-run on {account}",
        lambda: (
            fleet.scene.status("agentsessions", session).get("account") == account
            and fleet.in_flight() >= 1
        ),
        timeout=RUN_TIMEOUT,
    )


def test_window_fills_mid_session_and_the_conversation_resumes_on_another_account(
    fleet: Fleet,
) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    sandbox.inject("stall", credential="alice", seconds=STALL_SECONDS)
    scene.session("migrate", prompt=f"Remember the word {MARKER}, then say done.")
    _held_mid_run(fleet, "migrate", "alice")
    first = scene.status("agentsessions", "migrate")
    assert first["attempt"] == 1 and first["phase"] == "Running"
    sandbox.fill_window("alice", "five_hour", reset_in_seconds=3600)

    done = scene.wait_phase("agentsessions", "migrate", "Succeeded", timeout=RUN_TIMEOUT)
    conversation = done["claudeSessionId"]
    assert conversation == first["claudeSessionId"]
    assert done["account"] == "bob" and done["attempt"] == 2
    assert [(s["from"], s["to"], s["reason"], s.get("window")) for s in done["swaps"]] == [
        ("alice", "bob", "Walled", "five_hour")
    ]
    # The stalled request met the full window: the CLI saw a structured wall under alice.
    on_alice = fleet.requests(credential="alice")
    assert [(r["result"], r["stalledSeconds"]) for r in on_alice] == [
        ("rejected", STALL_SECONDS)
    ], on_alice
    assert on_alice[0]["session"] == conversation and on_alice[0]["window"] == "five_hour"
    # bob got the same conversation, history included: --resume, not a blank start.
    on_bob = fleet.requests(credential="bob")
    assert on_bob and {r["result"] for r in on_bob} == {"ok"}
    assert {r["session"] for r in on_bob} == {conversation}
    assert all(r["markerInHistory"] for r in on_bob), on_bob
    # The walled pod ended as the runner said (exit 75, outcome walled): the operator deletes
    # that pod once the next one exists, so its record in status is what remains of it.
    walled, finished = done["attempts"]
    assert (walled["attempt"], walled["account"], walled["outcome"]) == (1, "alice", "walled")
    assert walled["podName"] == f"migrate-{first['attempt']}"
    assert (finished["account"], finished["outcome"]) == ("bob", "completed")
    account = scene.status("claudeaccounts", "alice")
    assert account["phase"] == "Walled"
    assert account["lastSignal"]["type"] == "walled"
    assert account["lastSignal"]["window"] == "five_hour"
    assert any("five_hour" in m for m in fleet.events("Walled"))
    assert scene.status("claudeaccounts", "bob")["phase"] == "Available"


def test_expired_credential_blocks_the_account_without_cascading_until_the_secret_changes(
    fleet: Fleet, operator: OperatorProcess
) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    sandbox.expire("alice")  # the highest-priority account: the first placements go there
    names = ["s0", "s1", "s2"]
    for name in names:
        scene.session(name)
    wait_for(
        "alice AuthFailed",
        lambda: (
            scene.condition("claudeaccounts", "alice", "CredentialsValid").get("status") == "False"
        ),
        timeout=RUN_TIMEOUT,
    )
    for name in names:
        status = scene.wait_phase("agentsessions", name, "Succeeded", timeout=RUN_TIMEOUT)
        assert status["account"] in ("bob", "carol")
        assert status.get("failures", 0) == 0, status  # a 401 is not the session's failure
    assert scene.status("claudeaccounts", "alice")["phase"] == "AuthFailed"
    # The runner stopped each alice pod at its first 401 (no ten retries), and no pod was
    # placed on alice after it was blocked: at most maxSessions of them, one request each.
    unauthorized = fleet.requests(credential="alice")
    assert unauthorized and {r["result"] for r in unauthorized} == {"unauthorized"}
    alice_pods = scene.core.list_namespaced_pod(
        scene.ns, label_selector="headroom.dev/account=alice"
    ).items
    assert 1 <= len(unauthorized) <= 2 and len(alice_pods) <= 2, (unauthorized, alice_pods)
    moved = [s for s in (scene.status("agentsessions", n) for n in names) if s.get("swaps")]
    assert moved and all(s["swaps"][0]["reason"] == "AuthFailed" for s in moved)
    assert len(moved) == len(unauthorized)
    # Nothing cascaded: the other accounts stayed usable and no session piled up pods.
    for name in ("bob", "carol", "team-api"):
        assert scene.status("claudeaccounts", name)["phase"] == "Available", name
    assert len(scene.core.list_namespaced_pod(scene.ns).items) <= len(names) + len(moved)

    # A new token, in the stand-in and in the user's Secret: the account is used again.
    fleet.tokens["alice-old"] = fleet.tokens["alice"]
    fleet.tokens["alice"] = fleet.tokens["alice"] + "-rotated"
    sandbox.add_credential("alice", "oauth", fleet.tokens["alice"], SMALL_WINDOWS, "alice@e2e")
    scene.secret("alice-claude", {"token": fleet.tokens["alice"]})
    scene.wait_phase("claudeaccounts", "alice", "Available", timeout=120)
    scene.session("s3")
    after = scene.wait_phase("agentsessions", "s3", "Succeeded", timeout=RUN_TIMEOUT)
    assert after["account"] == "alice" and not after.get("swaps")
    assert fleet.requests(credential="alice", session=after["claudeSessionId"], result="ok")

    # Neither token reached the operator's log, an Event or an account's status.
    visible = operator.log_text() + "".join(f"{e.reason} {e.message}" for e in scene.events())
    visible += json.dumps([scene.status("claudeaccounts", a) for a in ("alice", "bob")])
    assert fleet.leaked(visible) == []


def test_exhausted_pool_waits_for_a_reset_and_only_fallback_sessions_use_the_api_key(
    fleet: Fleet,
) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    for name in ("alice", "bob"):
        sandbox.fill_window(name, "five_hour", reset_in_seconds=3600)
    # carol (lowest priority, reached last) fills while the first session's request is held,
    # so its reset comes a known, short time after the whole pool is exhausted.
    sandbox.inject("stall", credential="carol", seconds=STALL_SECONDS)
    scene.session(
        "with-fallback",
        prompt=f"Remember {MARKER}.",
        fallback={"accountSelector": {"matchLabels": {"type": "api-key"}}},
    )
    _held_mid_run(fleet, "with-fallback", "carol")
    # Long enough to see the others wait on a busy machine; the test waits it out.
    reset_seconds = 45
    sandbox.fill_window("carol", "five_hour", reset_in_seconds=reset_seconds)
    scene.wait_phase("claudeaccounts", "carol", "Walled", timeout=reset_seconds)
    for name in ("alice", "bob"):
        assert scene.status("claudeaccounts", name)["phase"] == "Walled"

    # Sessions without a fallback wait, with no pod at all, until the earliest reset.
    for name in ("waits-1", "waits-2"):
        scene.session(name)
    for name in ("waits-1", "waits-2"):
        waiting = scene.wait_phase("agentsessions", name, "Waiting", timeout=reset_seconds)
        assert scene.condition("agentsessions", name, "Scheduled")["reason"] == "NoHeadroom"
        until = datetime.fromisoformat(waiting["waitingUntil"].replace("Z", "+00:00"))
        assert 0 < (until - datetime.now(UTC)).total_seconds() <= reset_seconds + 2, waiting
        assert not waiting.get("podName")
    fell_back = scene.wait_phase("agentsessions", "with-fallback", "Succeeded", RUN_TIMEOUT)
    assert fell_back["account"] == "team-api" and fell_back["authPath"] == "fallback"
    assert [s["to"] for s in fell_back["swaps"]] == ["bob", "carol", "team-api"]
    assert fleet.requests(credential="team-api", result="ok")

    # carol's window resets in the stand-in; the operator wakes both sessions on its own.
    for name in ("waits-1", "waits-2"):
        done = scene.wait_phase("agentsessions", name, "Succeeded", timeout=RUN_TIMEOUT)
        assert done["account"] == "carol" and done["authPath"] == "primary", done
        assert not done.get("swaps")
    # The API key served the fallback session and nobody else.
    assert {r["session"] for r in fleet.requests(credential="team-api")} == {
        fell_back["claudeSessionId"]
    }


def test_server_error_storm_saying_rate_limit_is_not_a_wall(fleet: Fleet) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    # More 500s ("upstream rate limit exceeded") than the CLI retries: the first attempt fails.
    sandbox.inject("server_error", count=3, credential="alice")
    scene.session("storm")
    done = scene.wait_phase("agentsessions", "storm", "Succeeded", timeout=RUN_TIMEOUT)
    assert done["account"] == "alice" and done["attempt"] == 2, done
    assert not done.get("swaps")
    on_alice = fleet.requests(credential="alice")
    assert [r["result"] for r in on_alice] == ["server_error"] * 3 + ["ok"], on_alice
    assert not [r for r in sandbox.requests() if r["credential"] != "alice"]
    first = _termination(fleet, "storm-1")
    if first is not None:
        code, message = first
        assert code == 1 and message["outcome"] == "failed", message
    account = scene.status("claudeaccounts", "alice")
    assert account["phase"] == "Available" and not account.get("walledUntil")
    assert (account.get("lastSignal") or {}).get("type") != "walled"
    assert not fleet.events("Walled")
