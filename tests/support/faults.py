"""Fault-injection scenarios shared by `make test` (short) and `make bench` (long).

`kill_during_failovers`: a stream of walled pods (a kubelet's report, written as
`Scene.finish_pod` does), with the operator SIGKILLed at random points of it and restarted.
Everything random comes from one seeded RNG; the seed is printed so a failure reproduces with
HEADROOM_FAULT_SEED=<seed>.
"""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from tests.support.operator import OperatorProcess, Scene, in_seconds, wait_for
from tests.support.pod_history import PodHistory

from headroom.contract.termination import Outcome

FINISHED = ("Succeeded", "Failed")


def liveness_ok(operator: OperatorProcess) -> bool:
    """kopf's liveness endpoint (the URL given with --liveness) answers 200."""
    url = operator.extra[operator.extra.index("--liveness") + 1]
    assert url.startswith("http://127.0.0.1:"), url
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (checked above)
            return bool(response.status == 200)
    except OSError:
        return False


def fault_seed() -> int:
    """HEADROOM_FAULT_SEED to replay a run, otherwise a fresh one (printed by the caller)."""
    given = os.environ.get("HEADROOM_FAULT_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


@dataclass
class KillPlan:
    accounts: int = 4
    max_sessions: int = 2
    sessions: int = 6
    failovers: int = 24
    kills: int = 4
    # Walls reset soon, so the pool keeps turning over and sessions keep moving.
    reset_seconds: tuple[float, float] = (4.0, 12.0)
    settle_timeout: float = 180.0


@dataclass
class KillReport:
    seed: int
    failovers: int = 0
    kills: int = 0
    raced: int = 0  # pods that were gone before we could report them (not counted)
    kill_points: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def line(self, history: PodHistory) -> str:
        return (
            f"seed={self.seed} failovers={self.failovers} kills={self.kills} "
            f"raced={self.raced} elapsed={self.elapsed:.1f}s; {history.summary()}; "
            f"kill points: {', '.join(self.kill_points)}"
        )


def make_pool(scene: Scene, plan: KillPlan) -> dict[str, int]:
    limits = {}
    for i in range(plan.accounts):
        name = f"acct-{i}"
        scene.account(name, max_sessions=plan.max_sessions)
        limits[name] = plan.max_sessions
    return limits


Scenes = Scene | Sequence[Scene]


def scenes_of(scenes: Scenes) -> list[Scene]:
    """One namespace's scene, or several whose sessions share cluster accounts."""
    return [scenes] if isinstance(scenes, Scene) else list(scenes)


# A fault injected at a kill point instead of the operator's crash: (rng, failover number) ->
# a label for the report. It returns once the cluster answers again.
Fault = Callable[[random.Random, int], str]


def kill_during_failovers(
    scenes: Scenes,
    operator: OperatorProcess,
    history: PodHistory,
    plan: KillPlan,
    seed: int,
    fault: Fault | None = None,
    **session_spec: Any,
) -> KillReport:
    """Drive the stream; returns once every failover was reported (the checks are separate).
    With several scenes the sessions are dealt among their namespaces, named uniquely. At each
    kill point the operator is SIGKILLed and restarted, or `fault` runs instead."""
    rng = random.Random(seed)  # noqa: S311  (a replayable test schedule, not a secret)
    report = KillReport(seed)
    started = time.monotonic()
    spread = scenes_of(scenes)
    # Kill points are failover indexes; a kill lands a random fraction of a second after the
    # walled report(s), i.e. while the operator reads, places, creates or records.
    kill_after = set(rng.sample(range(1, plan.failovers), plan.kills))
    for i in range(plan.sessions):
        scene = spread[i % len(spread)]
        name = f"s{i}" if len(spread) == 1 else f"t{i % len(spread)}-s{i}"
        scene.session(name, failover={"maxSwaps": 1000, "cooldown": "0s"}, **session_spec)
    finished: set[str] = set()
    while report.failovers < plan.failovers:
        running = wait_for(
            "a Running session with a live pod",
            lambda: _running_pods(spread, history, finished),
            timeout=120,
        )
        burst = rng.sample(running, min(len(running), rng.randint(1, 3)))
        for scene, pod in burst:
            if report.failovers >= plan.failovers:
                break
            finished.add(pod)
            if not _report_walled(scene, pod, rng.uniform(*plan.reset_seconds)):
                report.raced += 1
                continue
            report.failovers += 1
            if report.failovers in kill_after and fault is not None:
                report.kill_points.append(fault(rng, report.failovers))
                report.kills += 1
            elif report.failovers in kill_after:
                report.kill_points.append(_crash(operator, history, rng, report.failovers))
                report.kills += 1
                time.sleep(rng.uniform(0.0, 1.0))  # down for a moment, as a crash-looping pod
                operator.start()
        time.sleep(rng.uniform(0.0, 0.3))
    report.elapsed = time.monotonic() - started
    return report


def _crash(operator: OperatorProcess, history: PodHistory, rng: random.Random, n: int) -> str:
    """SIGKILL the operator at one of three kinds of moment; returns a label for the report:
    - `created`: from the watch thread, the instant the next agent pod appears (the operator
      has created it and is about to record it in the session's status);
    - `soon`: within a quarter second (the failover's writes are under way);
    - `later`: anywhere in the next 1.5 s."""
    kind = rng.choice(["created", "soon", "later"])
    if kind == "created":
        armed = threading.Event()
        armed.set()

        def kill_on_create(event: str, _: Any) -> None:
            if event == "ADDED" and armed.is_set():
                armed.clear()
                operator.kill()

        history.on_event = kill_on_create
        try:
            deadline = time.monotonic() + 10
            while operator.alive() and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            history.on_event = None
        if operator.alive():  # no pod was created in time (e.g. the session waits)
            operator.kill()
            return f"#{n}:created(timeout)"
        return f"#{n}:created"
    delay = rng.uniform(0.0, 0.25 if kind == "soon" else 1.5)
    time.sleep(delay)
    operator.kill()
    return f"#{n}+{delay:.2f}s"


def operator_log_counts(operator: OperatorProcess) -> dict[str, int]:
    """How often the restarted operators took the crash-recovery paths, and any traceback."""
    text = operator.log_text()
    return {
        "adopted pods (created, not recorded)": text.count("adopting pod"),
        "tracebacks": text.count("Traceback"),
    }


def _running_pods(
    scenes: list[Scene], history: PodHistory, finished: set[str]
) -> list[tuple[Scene, str]]:
    live = history.live()
    pods = []
    for scene in scenes:
        for s in scene.sessions():
            status = s.get("status") or {}
            pod = status.get("podName")
            if status.get("phase") == "Running" and pod in live and pod not in finished:
                pods.append((scene, pod))
    return sorted(pods, key=lambda found: found[1])


def _report_walled(scene: Scene, pod: str, reset_in: float) -> bool:
    try:
        scene.finish_pod(
            pod,
            Outcome.WALLED,
            window="five_hour",
            resets_at=in_seconds(reset_in),
            utilization={"five_hour": 1.0},
            evidence="You've hit your 5-hour limit",
        )
    except client.ApiException as exc:
        if exc.status in (404, 409):  # deleted under us (e.g. a drill or a cleanup)
            return False
        raise
    return True


# --- the checks -------------------------------------------------------------------------------


def session_states(scenes: Scenes, history: PodHistory) -> dict[str, str]:
    """Per session: 'ok:<phase>' when its state is coherent with the live pods, else why not."""
    live = history.live()
    by_session: dict[str, list[str]] = {}
    for pod in live.values():
        by_session.setdefault(pod.session, []).append(pod.name)
    verdict: dict[str, str] = {}
    for s in (s for scene in scenes_of(scenes) for s in scene.sessions()):
        name, status = s["metadata"]["name"], s.get("status") or {}
        phase, pods = status.get("phase"), sorted(by_session.get(name, []))
        if phase == "Running" and pods == [status.get("podName")]:
            verdict[name] = "ok:Running"
        elif phase == "Waiting" and not pods:
            verdict[name] = "ok:Waiting"
        elif phase in FINISHED and not pods:
            verdict[name] = f"ok:{phase}"
        else:
            verdict[name] = f"phase={phase} podName={status.get('podName')} live={pods}"
    return verdict


def settled(scenes: Scenes, history: PodHistory, want: set[str]) -> dict[str, str] | None:
    states = session_states(scenes, history)
    return states if all(v in want for v in states.values()) else None


def assert_history_clean(
    scenes: Scenes, history: PodHistory, *, allow_relist: bool = False
) -> None:
    def listed() -> list[client.V1Pod]:
        return [
            pod
            for scene in scenes_of(scenes)
            for pod in scene.core.list_namespaced_pod(
                scene.ns, label_selector="app.kubernetes.io/managed-by=headroom"
            ).items
        ]

    wait_for(
        "the pod watch to catch up with a fresh list",
        lambda: history.caught_up_with(listed()),
        timeout=30,
    )
    assert allow_relist or not history.relists, history.relists
    assert not history.violations, [f"event {v.event}: {v.what}" for v in history.violations[:20]]


def active_sessions_match_live_pods(scene: Scene, history: PodHistory, accounts: Any) -> bool:
    live = history.live().values()
    for name in accounts:
        count = sum(1 for p in live if p.account == name)
        if scene.status("claudeaccounts", name).get("activeSessions") != count:
            return False
    return True
