"""Fixture objects as the operator writes them, at a fixed `now`, for the plugin's views."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.operator import OperatorProcess, Scene

NOW = datetime(2026, 12, 1, 16, 0, 0, tzinfo=UTC)
NS = "agents"
JSON = dict[str, Any]


def at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready(status: str, reason: str, message: str, since: float = -600) -> JSON:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": at(since),
    }


def account(name: str, max_sessions: int = 2, **status: Any) -> JSON:
    return {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": "ClaudeAccount",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"credentials": {"secretRef": {"name": f"{name}-claude"}, "type": "OAuthToken"},
                 "maxSessions": max_sessions},
        "status": status,
    }  # fmt: skip


def session(name: str, created: float = -3600, **status: Any) -> JSON:
    return {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": "AgentSession",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": at(created)},
        "spec": {"prompt": f"task for {name}"},
        "status": status,
    }


@pytest.fixture
def accounts() -> list[JSON]:
    """One account of every phase, in no particular order."""
    return [
        account(
            "bob",
            phase="Walled",
            activeSessions=0,
            walledUntil=at(2 * 3600 + 13 * 60),
            windows=[
                {"name": "five_hour", "utilization": 1.0, "resetsAt": at(2 * 3600 + 13 * 60)},
            ],
            conditions=[
                ready("False", "UsageLimitReached",
                      f"usage limit reached (five_hour); resets at {at(2 * 3600 + 13 * 60)}"),
            ],
        ),
        account(
            "alice",
            phase="Available",
            activeSessions=1,
            windows=[
                {"name": "seven_day", "utilization": 0.1, "resetsAt": at(4 * 86400 + 2 * 3600)},
                {"name": "five_hour", "utilization": 0.42, "resetsAt": at(3 * 3600 + 12 * 60)},
            ],
            conditions=[ready("True", "Available", "ready for new sessions")],
        ),
        account(
            "carol",
            max_sessions=1,
            phase="Walled",
            activeSessions=0,
            drill={"value": "x", "startedAt": at(-30), "until": at(90)},
            conditions=[
                ready("False", "Drill",
                      f"a failover drill treats the account as walled until {at(90)}"),
            ],
        ),
        account(
            "team-api",
            max_sessions=4,
            phase="Paused",
            activeSessions=1,
            conditions=[ready("False", "Paused", "spec.paused is true: no new sessions")],
        ),
        account(
            "dave-with-a-rather-long-account-name",
            phase="AuthFailed",
            activeSessions=0,
            conditions=[
                ready("False", "AuthenticationFailed",
                      "the API rejected these credentials (401); replace the Secret's content "
                      "to retry"),
            ],
        ),
    ]  # fmt: skip


@pytest.fixture
def sessions() -> list[JSON]:
    return [
        session("fix-flaky-test", phase="Running", account="alice", attempt=2),
        session("docs-pass", phase="Running", account="team-api", attempt=1),
        session(
            "refactor-io",
            phase="Waiting",
            waitingSince=at(-12 * 60),
            waitingUntil=at(2 * 3600 + 13 * 60),
            waitingMessage="no eligible account has headroom; bob resets first",
            conditions=[ready("False", "NoHeadroom", "no eligible account has headroom")],
        ),
        session(
            "bump-deps",
            phase="Pending",
            retryAt=at(45),
            conditions=[ready("False", "BackingOff", "retrying after a failed attempt")],
        ),
        session("brand-new", created=-5),
        session("done-1", phase="Succeeded"),
        session("broken", phase="Failed"),
    ]


@pytest.fixture
def moved_session() -> JSON:
    """A session that was walled on bob, moved to alice and runs there."""
    return session(
        "fix-flaky-test",
        phase="Running",
        account="alice",
        authPath="primary",
        attempt=2,
        podName="fix-flaky-test-2",
        swapCount=1,
        swaps=[{"from": "bob", "to": "alice", "at": at(-300), "reason": "Walled",
                "window": "five_hour"}],
        lastOutcome={
            "outcome": "walled",
            "at": at(-301),
            "podName": "fix-flaky-test-1",
            "detail": "Claude Code reported the usage limit of the five_hour window; the "
                      "session moves to another account and resumes its conversation",
            "evidence": "Claude usage limit reached. Your limit will reset at 6:13pm",
            "window": "five_hour",
            "resetsAt": at(2 * 3600 + 13 * 60),
        },
        conditions=[
            ready("True", "Running", "agent pod fix-flaky-test-2 is running on alice", -290),
            {"type": "Scheduled", "status": "True", "reason": "Placed",
             "message": "placed on alice (primary): highest priority, most headroom",
             "lastTransitionTime": at(-299)},
            {"type": "Completed", "status": "False", "reason": "NotFinished",
             "message": "", "lastTransitionTime": at(-3600)},
        ],
    )  # fmt: skip


@pytest.fixture
def events() -> list[JSON]:
    def event(reason: str, message: str, seconds: float, kind: str = "Normal") -> JSON:
        return {"type": kind, "reason": reason, "message": message,
                "lastTimestamp": at(seconds), "count": 1}  # fmt: skip

    return [
        event("Swapped", "moved from bob to alice: walled (five_hour)", -300, "Warning"),
        event("Placed", "placed on bob (primary)", -3500),
        event("Walled", "bob hit its five_hour limit; resets at 18:13Z", -301, "Warning"),
        event("Placed", "placed on alice (primary)", -299),
    ]


class FakeKube:
    """The operator's Kube client as the plugin uses it: objects by API path, every request
    recorded. `after_patch` lets a test play the operator answering a write."""

    def __init__(self, objects: dict[str, JSON]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str, Any, list[tuple[str, str]]]] = []
        self.after_patch: Any = None
        self.log = b""

    async def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "", query: Any = None
    ) -> JSON | None:
        self.calls.append((method, path, body, list(query or [])))
        if method == "PATCH":
            if self.after_patch is not None:
                self.after_patch(self.objects[path], body)
            return self.objects[path]
        return self.objects.get(path)

    async def stream(self, path: str, query: list[tuple[str, str]]) -> Any:
        self.calls.append(("GET", path, None, query))
        yield self.log

    async def close(self) -> None:
        pass


ACCOUNTS = "/apis/headroom.dev/v1alpha1/namespaces/agents/claudeaccounts"
SESSIONS = "/apis/headroom.dev/v1alpha1/namespaces/agents/agentsessions"


@pytest.fixture
def kube(accounts: list[JSON], sessions: list[JSON], moved_session: JSON) -> FakeKube:
    objects: dict[str, JSON] = {
        ACCOUNTS: {"items": accounts},
        SESSIONS: {"items": sessions},
        f"{SESSIONS}/fix-flaky-test": moved_session,
        "/api/v1/namespaces/agents/events": {"items": []},
        "/apis/headroom.dev/v1alpha1/clusterclaudeaccounts": {"items": []},
    }
    for item in [*accounts, *sessions]:
        plural = ACCOUNTS if item["kind"] == "ClaudeAccount" else SESSIONS
        objects.setdefault(f"{plural}/{item['metadata']['name']}", item)
    return FakeKube(objects)


# --- the plugin through the real kubectl, against the test cluster -----------------------


@pytest.fixture
def scene(k8s: Any, namespace: str) -> Scene:
    return Scene(k8s, namespace)


@pytest.fixture
def operator(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(kubeconfig, namespace, tmp_path / "operator").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def plugin_path(kubectl_path: str) -> str:
    """PATH with the installed kubectl-headroom script and the built kubectl, and nothing
    else that could hold a kubectl plugin."""
    script = Path(sys.executable).parent / "kubectl-headroom"
    if not script.is_file():
        pytest.fail(f"{script} is missing: run `make venv` (it installs the console script)")
    return os.pathsep.join([str(script.parent), str(Path(kubectl_path).parent), "/usr/bin", "/bin"])


class Plugin:
    """`kubectl headroom ...` as a person types it, in an 80-column terminal."""

    def __init__(self, kubectl: str, path: str, kubeconfig: Path, namespace: str) -> None:
        self.kubectl = kubectl
        self.env = {"PATH": path, "KUBECONFIG": str(kubeconfig), "COLUMNS": "80",
                    "HOME": os.environ.get("HOME", "/tmp")}  # fmt: skip
        self.namespace = namespace

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl_itself("headroom", *args, ok=ok)

    def kubectl_itself(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.kubectl, *args]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if ok and done.returncode != 0:
            raise AssertionError(f"{cmd} exited {done.returncode}:\n{done.stderr}{done.stdout}")
        return done

    def as_user(self, kubeconfig: Path) -> Plugin:
        return Plugin(self.kubectl, self.env["PATH"], kubeconfig, self.namespace)


@pytest.fixture
def plugin(kubectl_path: str, plugin_path: str, kubeconfig: Path, namespace: str) -> Plugin:
    return Plugin(kubectl_path, plugin_path, kubeconfig, namespace)
