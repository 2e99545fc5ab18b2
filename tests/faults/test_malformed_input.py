"""A flood of malformed termination messages and objects the CRDs admit but that make no sense.

The operator must not crash (same PID, liveness answers), must record each with a clear reason
in status and Events, never treat garbage as a wall, and still place a normal session after.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from tests.support.faults import liveness_ok
from tests.support.operator import Scene, in_seconds, wait_for

from headroom.contract.termination import Outcome, TerminationMessage, encode

pytestmark = pytest.mark.integration

CANARY = "sk-ant-oat01-CANARY-malformed-3b7e11"
WALL = encode(
    TerminationMessage(
        Outcome.WALLED, window="five_hour", resets_at="2030-01-01T00:00:00Z", transcript=True
    )
)

# (id, raw termination message, exit code, fragment the recorded reason must contain)
FAILED_MESSAGES: list[tuple[str, str | None, int, str]] = [
    ("garbage", f"hello there, Bearer {CANARY}", 1, "not JSON"),
    ("huge", "A" * 100_000, 75, "4096 bytes or more"),
    ("empty", "", 75, "no termination message"),
    ("absent", None, 137, "no termination message"),
    ("nan-utilization",
     '{"version":1,"outcome":"walled","window":"five_hour",'
     '"resetsAt":"2030-01-01T00:00:00Z","utilization":{"five_hour":NaN}}', 75, "finite"),
    ("infinite-cost", '{"version":1,"outcome":"completed","costUSD":1e999}', 0, "finite"),
    ("wrong-types", '{"version":1,"outcome":"walled","window":5,"resetsAt":123}', 75, "schema"),
    ("wrong-version", '{"version":"1","outcome":["walled"]}', 75, "schema"),
    ("json-null", "null", 75, "schema"),
    ("json-list", "[1,2,3]", 75, "schema"),
    ("truncated", WALL[: len(WALL) // 2], 75, "not JSON"),
    ("binary", "\x00\x01\x02\xff\xfe\x7f\x1b[31m\ud7ff\u0085" + "".join(map(chr, range(1, 32))),
     75, "not JSON"),
    ("deep-nesting", "[" * 1500 + "]" * 1500, 75, "not readable JSON"),
    ("impossible-date",
     '{"version":1,"outcome":"walled","window":"five_hour","resetsAt":"2030-02-30T00:00:00Z"}',
     75, "reset time"),
    ("exit-code-mismatch", WALL, 0, "not trusted"),
    ("duplicate-keys", '{"version":1,"outcome":"walled","outcome":"failed"}', 75, "not trusted"),
    ("unknown-field", '{"version":1,"outcome":"completed","extra":{"deep":[1,2]}}', 0, "schema"),
]  # fmt: skip

# Valid by the contract's schema but out of range for the status fields they end up in
# (result.turns is an int32 in the CRD): the session must still finish and say what it dropped.
ODD_COMPLETIONS: list[tuple[str, str]] = [
    ("turns-beyond-int32", '{"version":1,"outcome":"completed","turns":3000000000,"costUSD":1.5}'),
    ("turns-as-float", '{"version":1,"outcome":"completed","turns":1e300}'),
    ("huge-cost", '{"version":1,"outcome":"completed","turns":3,"costUSD":1e308}'),
]


def _events_for(scene: Scene, name: str) -> list[client.CoreV1Event]:
    return [e for e in scene.events() if e.involved_object.name == name]


def test_flood_of_malformed_termination_messages(scene: Scene, operator) -> None:
    pid = operator.proc.pid
    wait_for("liveness endpoint", lambda: liveness_ok(operator), timeout=60)
    scene.account("alice", priority=5, max_sessions=40)
    scene.account("bob", max_sessions=40)
    cases = {f"m-{case_id}": case for case_id, *case in FAILED_MESSAGES}
    odd = {f"c-{case_id}": raw for case_id, raw in ODD_COMPLETIONS}
    for name in [*cases, *odd]:
        scene.session(name)
    first = {name: scene.wait_running(name, attempt=1, timeout=60) for name in [*cases, *odd]}
    assert {s["account"] for s in first.values()} == {"alice"}

    # The flood: every pod ends at once, each with its own kind of garbage.
    for name, (raw, code, _) in cases.items():
        scene.finish_pod(first[name]["podName"], None, exit_code=code, raw_message=raw)
    for name, raw in odd.items():
        scene.finish_pod(first[name]["podName"], None, exit_code=0, raw_message=raw)

    for name, (_, _, fragment) in cases.items():
        again = scene.wait_running(name, attempt=2, timeout=90)
        last = again["lastOutcome"]
        assert last["outcome"] == "failed", (name, last)
        assert last["podName"] == first[name]["podName"]
        assert fragment in last["detail"], (name, last["detail"])
        # garbage is never a wall: retried in place, no swap
        assert (again["account"], again["swapCount"], again["failures"]) == ("alice", 0, 1), name
        wait_for(
            f"an AttemptFailed event for {name}",
            lambda n=name, f=fragment: [
                e for e in _events_for(scene, n) if e.reason == "AttemptFailed" and f in e.message
            ],
        )
    for name in odd:
        done = scene.wait_phase("agentsessions", name, "Succeeded", timeout=90)
        assert done["result"]["outcome"] == "completed", (name, done)
    assert scene.status("agentsessions", "c-huge-cost")["result"]["costUSD"] == 1e308
    assert scene.status("agentsessions", "c-turns-beyond-int32")["result"].get("turns") is None
    assert scene.status("claudeaccounts", "alice")["phase"] == "Available"
    assert scene.status("claudeaccounts", "bob").get("lastSignal") is None

    # A normal session is still placed and finishes.
    scene.session("normal")
    s = scene.wait_running("normal", attempt=1)
    scene.finish_pod(s["podName"], Outcome.COMPLETED, turns=4, cost_usd=0.25)
    assert scene.wait_phase("agentsessions", "normal", "Succeeded")["result"]["turns"] == 4

    assert operator.alive() and operator.proc.pid == pid
    assert liveness_ok(operator)
    everything = json.dumps([scene.sessions(), [e.to_dict() for e in scene.events()]], default=str)
    assert CANARY not in everything and CANARY not in operator.log_text()


def test_semantically_invalid_objects_are_recorded_not_crashed_on(scene: Scene, operator) -> None:
    pid = operator.proc.pid
    wait_for("liveness endpoint", lambda: liveness_ok(operator), timeout=60)
    scene.account("alice", max_sessions=5)

    # A selector that matches nothing: the session waits and says why.
    scene.session("nomatch", accountSelector={"matchLabels": {"tier": "no-such-tier"}})
    scene.wait_phase("agentsessions", "nomatch", "Waiting")
    cond = scene.condition("agentsessions", "nomatch", "Scheduled")
    assert cond["reason"] == "NoHeadroom"
    assert "no ClaudeAccount matches" in cond["message"]
    # A fallback that matches nothing either, with a primary selector excluding everything.
    scene.session(
        "nofallback",
        accountSelector={"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
        fallback={"accountSelector": {"matchLabels": {"type": "none"}}},
    )
    scene.wait_phase("agentsessions", "nofallback", "Waiting")

    # Accounts whose credentials are missing or empty: conditions, not crashes.
    other = {"tier": "other"}
    scene.custom.create_namespaced_custom_object(
        "headroom.dev", "v1alpha1", scene.ns, "claudeaccounts",
        {"apiVersion": "headroom.dev/v1alpha1", "kind": "ClaudeAccount",
         "metadata": {"name": "ghost", "labels": other},
         "spec": {"credentials": {"secretRef": {"name": "ghost-claude"}, "type": "OAuthToken"}}},
    )  # fmt: skip
    scene.secret("hollow-claude", {"token": "   "})
    scene.custom.create_namespaced_custom_object(
        "headroom.dev", "v1alpha1", scene.ns, "claudeaccounts",
        {"apiVersion": "headroom.dev/v1alpha1", "kind": "ClaudeAccount",
         "metadata": {"name": "hollow", "labels": other},
         "spec": {"credentials": {"secretRef": {"name": "hollow-claude"}, "type": "OAuthToken"}}},
    )  # fmt: skip
    for name, reason in (("ghost", "SecretNotFound"), ("hollow", "EmptyCredential")):
        cond = wait_for(
            f"{name} CredentialsValid=False",
            lambda n=name: (
                (c := scene.condition("claudeaccounts", n, "CredentialsValid")).get("status")
                == "False"
                and c
            ),
        )
        assert cond["reason"] == reason, cond

    # Nonsense drill annotations: longer than status can hold, multi-line, odd characters.
    scene.account("carol", labels=other)
    odd_value = "drill\n" + "ü" * 400 + "\t{not: json}"
    scene.patch("claudeaccounts", "carol", {"metadata": {"annotations": {
        "headroom.dev/drill": odd_value}}})  # fmt: skip
    drill = wait_for(
        "carol's drill recorded",
        lambda: (
            scene.status("claudeaccounts", "carol").get("drill", {}).get("completedAt")
            and scene.status("claudeaccounts", "carol")["drill"]
        ),
    )
    # recorded as a short one-line excerpt that status can hold, and started exactly once
    assert drill["value"].startswith("drill üü") and len(drill["value"].encode()) <= 253
    assert scene.status("claudeaccounts", "carol")["phase"] == "Walled"
    started = [e for e in _events_for(scene, "carol") if e.reason == "DrillStarted"]
    assert len(started) == 1, [e.message for e in started]

    # A stray pod that claims to be ours with an unreadable attempt label.
    scene.core.create_namespaced_pod(
        scene.ns,
        client.V1Pod(
            metadata=client.V1ObjectMeta(
                name="stray",
                labels={"app.kubernetes.io/managed-by": "headroom", "headroom.dev/attempt": "abc"},
                annotations={"headroom.dev/session": "nomatch", "headroom.dev/account": "alice"},
            ),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="agent", image="none")],
                node_selector={"headroom.dev/test-node": "none"},
            ),
        ),
    )
    wait_for(
        "the stray pod noted and ignored",
        lambda: "attempt label 'abc' is not a number" in operator.log_text(),
    )
    scene.finish_pod("stray", None, exit_code=1, raw_message="{")

    # A session with the longest name the CRD admits.
    long_name = "l" * 63
    scene.session(long_name)
    s = scene.wait_running(long_name, attempt=1)
    assert len(s["podName"]) <= 63

    # After all that, a normal session is placed, walled and moved as usual.
    scene.account("dave", priority=-1)
    scene.session("normal")
    s = scene.wait_running("normal", attempt=1)
    assert s["account"] == "alice"
    scene.finish_pod(s["podName"], Outcome.WALLED, window="five_hour", resets_at=in_seconds(600))
    assert scene.wait_running("normal", attempt=2)["account"] == "dave"
    assert scene.status("agentsessions", "nomatch")["phase"] == "Waiting"
    assert operator.alive() and operator.proc.pid == pid
    assert liveness_ok(operator)
    assert "Traceback" not in operator.log_text()
