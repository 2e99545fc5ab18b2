"""Run `headroom operator` as a real subprocess against the test cluster, and drive a scene:
accounts, sessions, and agent pods finished the way a kubelet would report them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client

from headroom.contract.termination import EXIT_CODES, Outcome, TerminationMessage, encode

T = TypeVar("T")
GROUP, VERSION = "headroom.dev", "v1alpha1"
REPO = Path(__file__).resolve().parents[2]
# Agent pods in operator tests must not be picked up by kwok (which would mark them Running
# and fight the statuses the tests write as a kubelet would): steer them to no node at all.
NO_NODE = json.dumps({"headroom.dev/test-node": "none"})

FAST_FLAGS = [
    "--backoff", "1s", "--max-backoff", "2s", "--max-failures", "2",
    "--suspected-wall", "60s", "--drill-duration", "30s", "--min-wall", "1s",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll until `probe` returns something truthy. The timeout is a failure bound, not a
    performance claim: speed is measured by `make bench`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


@dataclass
class OperatorProcess:
    kubeconfig: Path
    namespace: str
    log_path: Path
    extra: list[str] = field(default_factory=list)
    verbose: bool = True  # the tests read kopf's debug lines when something fails
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self) -> OperatorProcess:
        self.metrics_port = free_port()
        log = self.log_path.with_suffix(f".{len(self.logs)}.log")
        self.logs.append(log)
        cmd = [
            sys.executable, "-m", "headroom", "operator", "-n", self.namespace,
            "--metrics-port", str(self.metrics_port), "--liveness", "",
            "--agent-node-selector", NO_NODE, *FAST_FLAGS, *self.extra,
        ]  # fmt: skip
        if self.verbose:
            cmd.append("--verbose")
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, as a crash or an OOM kill."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            return r.read().decode()


def terminated_status(code: int, message: str | None, reason: str | None = None) -> dict[str, Any]:
    """A pod status as a kubelet writes it when the agent container has exited with `code`."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    terminated: dict[str, Any] = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": now,
        "finishedAt": now,
    }
    if message is not None:
        terminated["message"] = message
    return {
        "phase": "Succeeded" if code == 0 else "Failed",
        "containerStatuses": [
            {
                "name": "agent",
                "image": "headroom-agent",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"terminated": terminated},
            }
        ],
    }


class Scene:
    """A namespace's worth of Headroom objects, read and written through the real API."""

    def __init__(
        self, api: client.ApiClient, namespace: str, session_env: dict[str, str] | None = None
    ) -> None:
        self.ns = namespace
        # Put into every session's spec.env (ahead of the test's own entries).
        self.session_env = [{"name": k, "value": v} for k, v in (session_env or {}).items()]
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    # --- objects ------------------------------------------------------------------------

    def secret(self, name: str, data: dict[str, str]) -> None:
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
        try:
            self.core.create_namespaced_secret(self.ns, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(name, self.ns, body)

    def account(
        self,
        name: str,
        *,
        token: str | None = None,
        kind: str = "OAuthToken",
        max_sessions: int = 2,
        priority: int = 0,
        labels: dict[str, str] | None = None,
        ready: bool = True,
        **spec: Any,
    ) -> dict[str, Any]:
        """Create an account and its Secret; by default wait until the operator verified it,
        so tests place sessions on a known roster."""
        key = {"OAuthToken": "token", "APIKey": "apiKey", "CredentialsFile": "credentials.json"}[
            kind
        ]
        self.secret(f"{name}-claude", {key: token or f"fake-{name}-token"})
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClaudeAccount",
            "metadata": {"name": name, "labels": labels or {"tier": "max"}},
            "spec": {
                "credentials": {"secretRef": {"name": f"{name}-claude"}, "type": kind},
                "maxSessions": max_sessions,
                "priority": priority,
                **spec,
            },
        }
        created = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "claudeaccounts", body
        )
        if ready:
            self.wait_phase("claudeaccounts", name, "Available")
        return created

    def session(self, name: str, **spec: Any) -> dict[str, Any]:
        if self.session_env:
            spec["env"] = [*self.session_env, *spec.get("env", [])]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentSession",
            "metadata": {"name": name},
            "spec": {
                "prompt": f"task for {name}",
                "accountSelector": {"matchLabels": {"tier": "max"}},
                **spec,
            },
        }
        return self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "agentsessions", body
        )

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return self.get(plural, name).get("status") or {}

    def sessions(self) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "agentsessions")[
            "items"
        ]

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name, patch)

    def condition(self, plural: str, name: str, kind: str) -> dict[str, Any]:
        for c in self.status(plural, name).get("conditions") or []:
            if c["type"] == kind:
                return c
        return {}

    # --- waiting --------------------------------------------------------------------------

    def wait_phase(self, plural: str, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(
            f"{plural}/{name} phase {phase}",
            lambda: (s := self.status(plural, name)).get("phase") == phase and s,
            timeout,
        )

    def wait_running(
        self, name: str, *, attempt: int | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            s = self.status("agentsessions", name)
            if s.get("phase") != "Running" or not s.get("podName"):
                return None
            if attempt is not None and s.get("attempt") != attempt:
                return None
            return s

        return wait_for(f"session {name} Running (attempt {attempt})", probe, timeout)

    # --- pods -------------------------------------------------------------------------------

    def pod(self, name: str) -> client.V1Pod | None:
        try:
            return self.core.read_namespaced_pod(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def live_pods(self) -> list[client.V1Pod]:
        pods = self.core.list_namespaced_pod(
            self.ns, label_selector="app.kubernetes.io/managed-by=headroom"
        ).items
        return [p for p in pods if not _terminated(p) and p.metadata.deletion_timestamp is None]

    def finish_pod(
        self,
        pod_name: str,
        outcome: Outcome | None,
        *,
        exit_code: int | None = None,
        raw_message: str | None = None,
        reason: str | None = None,
        **fields: Any,
    ) -> None:
        """Report the agent container as terminated, exactly where a kubelet writes it."""
        if raw_message is None and outcome is not None:
            fields.setdefault("transcript", True)
            raw_message = encode(TerminationMessage(outcome=outcome, **fields))
        code = exit_code if exit_code is not None else (EXIT_CODES[outcome] if outcome else 1)
        status = terminated_status(code, raw_message, reason)
        self.core.patch_namespaced_pod_status(pod_name, self.ns, {"status": status})

    def current_pod(self, session: str) -> str:
        return str(self.status("agentsessions", session)["podName"])

    def events(self) -> list[client.CoreV1Event]:
        return self.core.list_namespaced_event(self.ns).items


def _terminated(pod: client.V1Pod) -> bool:
    if pod.status and pod.status.phase in ("Succeeded", "Failed"):
        return True
    return any(
        cs.state and cs.state.terminated
        for cs in (pod.status.container_statuses or [])
        if pod.status
    )


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_kubeconfig(kubectl: Any, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig for the ServiceAccount: a TokenRequest token, the admin's server and CA."""
    token = kubectl("create", "token", account, "-n", namespace, "--duration=2h").stdout.strip()
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        # In a pod the ServiceAccount's namespace is the default one (where kopf posts the
        # Events of cluster-scoped objects); so it is here.
        "contexts": [
            {"name": "sa", "context": {"cluster": "c", "user": account, "namespace": namespace}}
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
