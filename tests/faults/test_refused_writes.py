"""Writes the real API server always refuses, and fuzzed input that may make it refuse.

A ValidatingAdmissionPolicy bound to the test's namespace denies three writes the operator
makes: a session status carrying a marker from a termination message, an account signal
carrying it as evidence, and a continueFrom session's ownerReference on its predecessor's
workspace claim. Each refusal must reach the object (StatusWriteRejected, or
WorkspaceClaimRefused), an Event and headroom_writes_refused_total; the rest of the pass is
written (the walled session still moves); and the operator does not spin: over a quiet
window no object changes and each refused session is retried at most once per --max-backoff.

Then hypothesis feeds termination messages, spec values and drill annotations to the same
operator: every example ends recorded, never in a crash or a write loop.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from kubernetes import client
from tests.support.faults import liveness_ok
from tests.support.operator import FAST_FLAGS, Scene, in_seconds, wait_for
from tests.support.refusals import (
    MARKER,
    refuses,
    refusing_policy,
    wait_condition,
    watch_quiet,
)

from headroom.contract.termination import EXIT_CODES, Outcome, TerminationMessage, encode

pytestmark = pytest.mark.integration

MAX_BACKOFF = float(FAST_FLAGS[FAST_FLAGS.index("--max-backoff") + 1].rstrip("s"))
QUIET_SECONDS = 12.0
GROUP, VERSION = "headroom.dev", "v1alpha1"


def _events(scene: Scene, name: str, reason: str) -> list[client.CoreV1Event]:
    return [e for e in scene.events() if e.involved_object.name == name and e.reason == reason]


def _refused_total(operator, resource: str) -> float:
    total = 0.0
    for line in operator.metrics().splitlines():
        if line.startswith("headroom_writes_refused_total{") and f'resource="{resource}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_refused_writes_are_recorded_and_never_spun_on(scene: Scene, operator, k8s) -> None:
    pid = operator.proc.pid
    wait_for("liveness endpoint", lambda: liveness_ok(operator), timeout=60)
    scene.account("alice", priority=5, max_sessions=5)
    scene.account("bob", max_sessions=5)
    with refusing_policy(k8s, scene.ns):
        for name in ("refused-status", "walls-refused", "predecessor"):
            scene.session(name)
        wait_for(
            "the policy in force",
            lambda: refuses(k8s, scene.ns, "bob", "predecessor"),
            timeout=60,
            interval=1,
        )
        first = {
            n: scene.wait_running(n, attempt=1)
            for n in ("refused-status", "walls-refused", "predecessor")
        }
        assert {s["account"] for s in first.values()} == {"alice"}

        # 1. A failed attempt whose detail the policy refuses in the session's status.
        failed = TerminationMessage(Outcome.FAILED, detail=f"tests broke: {MARKER}")
        scene.finish_pod(
            first["refused-status"]["podName"], None, exit_code=1, raw_message=encode(failed)
        )
        rejected = wait_condition(
            scene.custom, scene.ns, "agentsessions", "refused-status", "StatusWriteRejected"
        )
        assert rejected["status"] == "True" and MARKER in rejected["message"], rejected
        # The rest of status stayed as the server last accepted it.
        status = scene.status("agentsessions", "refused-status")
        assert (status["phase"], status["attempt"]) == ("Running", 1)
        assert status.get("lastOutcome") is None
        wait_for(
            "a StatusWriteRejected Event",
            lambda: _events(scene, "refused-status", "StatusWriteRejected"),
        )

        # 2. A wall whose evidence the policy refuses on the account: the session still moves.
        scene.finish_pod(
            first["walls-refused"]["podName"],
            Outcome.WALLED,
            window="five_hour",
            resets_at=in_seconds(3600),
            evidence=f"limit hit {MARKER}",
        )
        moved = scene.wait_running("walls-refused", attempt=2)
        assert moved["account"] == "bob", moved
        assert scene.wait_phase("claudeaccounts", "alice", "Walled")
        wait_for(
            "a StatusWriteRejected Event on alice",
            lambda: _events(scene, "alice", "StatusWriteRejected"),
        )
        assert "lastSignal" not in scene.status("claudeaccounts", "alice")

        # 3. continueFrom: the ownerReference on the predecessor's claim is refused.
        scene.finish_pod(first["predecessor"]["podName"], Outcome.COMPLETED, turns=1)
        scene.wait_phase("agentsessions", "predecessor", "Succeeded")
        scene.session("refused-heir", continueFrom={"name": "predecessor"})
        claim = wait_condition(
            scene.custom, scene.ns, "agentsessions", "refused-heir", "WorkspaceClaimRefused"
        )
        assert claim["status"] == "False" and "predecessor-workspace" in claim["message"], claim
        assert MARKER in claim["message"]
        assert scene.status("agentsessions", "refused-heir")["phase"] == "Pending"
        assert scene.pod("refused-heir-1") is None

        # Counted, by resource.
        assert _refused_total(operator, "agentsessions/status") >= 1
        assert _refused_total(operator, "claudeaccounts/status") >= 1
        assert _refused_total(operator, "persistentvolumeclaims") >= 1

        # No spin: nothing changes over a quiet window, retries at --max-backoff at most.
        events_before = len(scene.events())
        quiet = watch_quiet(k8s, scene.ns, operator, QUIET_SECONDS)
        print(
            f"\n[faults] quiet window {quiet.seconds}s: cpu {quiet.cpu_seconds:.2f}s, "
            f"retries refused-status={quiet.retries('refused-status')} "
            f"refused-heir={quiet.retries('refused-heir')}, changed={quiet.changed}"
        )
        assert quiet.changed == [], quiet.changed
        bound = QUIET_SECONDS / MAX_BACKOFF + 2
        for name in ("refused-status", "refused-heir"):
            assert 1 <= quiet.retries(name) <= bound, (name, quiet.retries(name))
        assert len(scene.events()) == events_before  # no Event per retry
        assert quiet.cpu_seconds < 0.3 * QUIET_SECONDS, quiet.cpu_seconds

    # The policy lifted: the refused writes now go through, and the conditions go.
    wait_for(
        "refused-status records its attempt",
        lambda: (
            (s := scene.status("agentsessions", "refused-status")).get("lastOutcome")
            and not [c for c in s["conditions"] if c["type"] == "StatusWriteRejected"]
        ),
        timeout=60,
    )
    assert scene.wait_running("refused-heir", attempt=1, timeout=60)["account"] == "bob"
    assert operator.alive() and operator.proc.pid == pid and liveness_ok(operator)
    assert "Traceback" not in operator.log_text()


# --- fuzzing -----------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
NUMBER = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.none())
SCHEMA_SHAPED = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 2, "1"]), "outcome": st.sampled_from([*Outcome, "x"])},
    optional={
        "detail": TEXT, "evidence": TEXT, "window": TEXT, "resetsAt": TEXT,
        "summary": TEXT, "turns": NUMBER, "costUSD": NUMBER, "durationSeconds": NUMBER,
        "utilization": st.dictionaries(TEXT, st.floats(allow_nan=False), max_size=4),
        "transcript": st.booleans(), "structuredOutput": st.recursive(
            st.none() | st.booleans() | NUMBER | TEXT,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
            max_leaves=10),
    },
)  # fmt: skip
MESSAGES = st.one_of(
    SCHEMA_SHAPED.map(lambda d: json.dumps(d, allow_nan=True)),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=5000),
    st.none(),
)
EXIT = st.one_of(st.sampled_from(sorted(set(EXIT_CODES.values()))), st.integers(0, 255))
DURATION = st.from_regex(r"[0-9]{1,20}(\.[0-9]{1,3})?(h|m|s|ms)", fullmatch=True)
SPECS = st.fixed_dictionaries(
    {"prompt": TEXT.filter(str.strip)},
    optional={
        "timeout": DURATION,
        "failover": st.fixed_dictionaries({}, optional={
            "cooldown": DURATION, "confirmations": st.integers(1, 10),
            "maxSwaps": st.integers(0, 1000)}),
        "workspace": st.fixed_dictionaries({"size": st.from_regex(
            r"[0-9]{1,12}(\.[0-9]{0,3})?([KMGTPE]i|[kMGTPE]|[eE][+-]?[0-9]{1,3})?",
            fullmatch=True).filter(lambda v: len(v) <= 32)}),
        "env": st.lists(st.fixed_dictionaries({
            "name": st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True).filter(
                lambda n: not n.startswith("HEADROOM_") and not n.startswith("CLAUDE_")),
            "value": TEXT}), max_size=3, unique_by=lambda e: e["name"]),
        "claude": st.fixed_dictionaries({}, optional={
            "systemPrompt": TEXT, "maxBudgetUSD": st.floats(0, 100000)}),
    },
)  # fmt: skip
DRILLS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=600)
EXAMPLES = int(os.environ.get("HEADROOM_FUZZ_EXAMPLES", "20"))
# Conditions that record a write the server refused (an operator bug for fuzzed input to
# find, but recorded, not spun on: the property under test).
REFUSALS = ("WorkspaceClaimRefused", "PodCreateFailed")


def _recorded(scene: Scene, name: str, pod: str) -> str | None:
    """How the end of `pod` was recorded: its lastOutcome, a finished session, a refusal."""
    status = scene.status("agentsessions", name)
    if (status.get("lastOutcome") or {}).get("podName") == pod:
        return f"outcome:{status['lastOutcome']['outcome']}"
    if status.get("phase") in ("Succeeded", "Failed"):
        return f"phase:{status['phase']}"
    for c in status.get("conditions") or []:
        if c["type"] == "StatusWriteRejected" or c["reason"] in REFUSALS:
            return f"refused:{c['type']}:{c['reason']}"
    return None


def test_fuzzed_input_never_crashes_or_spins_the_operator(scene: Scene, operator, k8s) -> None:
    pid = operator.proc.pid
    wait_for("liveness endpoint", lambda: liveness_ok(operator), timeout=60)
    scene.account("alice", max_sessions=200)
    scene.account("drilled", labels={"tier": "none"})
    seen: dict[str, int] = {}

    # No shrinking: each step of it is a round trip through the cluster; the failing example
    # is printed as generated.
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(spec=SPECS, message=MESSAGES, code=EXIT, drill=DRILLS)
    # Found by this test: a timeout of milliseconds re-armed its timer at once, for ever, while
    # the pod had not started (CPU, no writes); a timeout beyond int32 seconds refused the pod.
    @example(spec={"prompt": "p", "timeout": "1ms"}, message="{", code=1, drill="d")
    @example(spec={"prompt": "p", "timeout": "65162840h"}, message=None, code=0, drill="d")
    def one_example(spec: dict, message: str | None, code: int, drill: str) -> None:
        assert operator.alive() and operator.proc.pid == pid
        scene.patch(
            "claudeaccounts",
            "drilled",
            {"metadata": {"annotations": {"headroom.dev/drill": drill}}},
        )
        name = f"f-{uuid.uuid4().hex[:10]}"
        try:
            scene.session(name, **spec)
        except client.ApiException as exc:  # the CRD refuses it: the operator never sees it
            assert exc.status == 422, exc
            seen["refused at create"] = seen.get("refused at create", 0) + 1
            return

        def placed() -> str | None:
            status = scene.status("agentsessions", name)
            if status.get("phase") == "Running" and status.get("podName"):
                return "running"
            return _recorded(scene, name, "") or None

        if wait_for(f"{name} placed or recorded", placed, timeout=30) != "running":
            seen["finished before a pod"] = seen.get("finished before a pod", 0) + 1
            return
        pod = scene.status("agentsessions", name)["podName"]
        scene.finish_pod(pod, None, exit_code=code, raw_message=message)
        how = wait_for(
            f"{name}: the end of {pod} recorded", lambda: _recorded(scene, name, pod), timeout=30
        )
        seen[how] = seen.get(how, 0) + 1

    one_example()
    print(f"\n[faults] fuzzed {EXAMPLES} examples: {json.dumps(seen, sort_keys=True)}")
    # Let retries after failed attempts (1 s backoff) land, then watch a quiet window.
    wait_for("every fuzzed session settled", lambda: _settled(scene), timeout=90)
    quiet = watch_quiet(k8s, scene.ns, operator, QUIET_SECONDS)
    print(
        f"[faults] quiet window {quiet.seconds}s: cpu {quiet.cpu_seconds:.2f}s, "
        f"changed={quiet.changed}"
    )
    assert quiet.changed == [], quiet.changed
    assert quiet.cpu_seconds < 0.3 * QUIET_SECONDS, quiet.cpu_seconds
    drill = scene.status("claudeaccounts", "drilled").get("drill") or {}
    assert drill.get("value") and len(drill["value"].encode()) <= 253, drill
    assert operator.alive() and operator.proc.pid == pid and liveness_ok(operator)
    assert "Traceback" not in operator.log_text()


def _settled(scene: Scene) -> bool:
    """Every fuzzed session Running (a pod that never ends), finished, or refused."""
    for s in scene.sessions():
        status = s.get("status") or {}
        if status.get("phase") in ("Running", "Succeeded", "Failed", "Waiting"):
            continue
        if any(
            c["type"] == "StatusWriteRejected" or c["reason"] in REFUSALS
            for c in status.get("conditions") or []
        ):
            continue
        return False
    return True
