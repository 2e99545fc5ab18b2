"""The whole chain: `headroom operator` creates agent pods, `headroom-dev executor` runs them as
local processes (the real runner wrapping the real Claude Code CLI), and the CLI talks to
`headroom-dev sandbox-api`, the only stand-in. Nothing else is simulated: no test writes a pod
status; every termination message is the one the runner wrote.

Each test gets its own namespace, operator and stand-in (three OAuth accounts with small
windows and one API key, tokens unique to the test); the executor and its node are shared by
the session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.claude_cli import PINNED_CLI_VERSION
from tests.support.e2e import (
    CLI_MAX_RETRIES,
    MARKER,
    OAUTH_ACCOUNTS,
    Fleet,
)
from tests.support.executor import CLAUDE_BIN, ExecutorProcess, ProvisionerProcess
from tests.support.executor import volume_provisioner as volume_provisioner
from tests.support.operator import OperatorProcess, Scene

from headroom_dev.sandbox.client import SandboxProcess, start_sandbox


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether the test (or its setup) failed, so teardown can print the logs that
    explain it."""
    report = yield
    if report.when in ("setup", "call") and report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """The pinned CLI the executor puts on the pods' PATH. Missing is a failure, never a skip."""
    claude = CLAUDE_BIN / "claude"
    if not claude.exists():
        pytest.fail(f"Claude Code CLI not found at {claude}: run `make claude-cli`", pytrace=False)
    version = subprocess.run(
        [str(claude), "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    if PINNED_CLI_VERSION not in version.stdout:
        pytest.fail(
            f"{claude} is {version.stdout.strip()!r} (exit {version.returncode}), "
            f"not the pinned {PINNED_CLI_VERSION}",
            pytrace=False,
        )
    return claude


@pytest.fixture(scope="session")
def e2e_executor(
    kubeconfig: Path,
    volume_provisioner: ProvisionerProcess,
    claude_cli: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExecutorProcess]:
    """A node of its own (not the `executor` fixture's): its processes get fewer CLI retries."""
    base = tmp_path_factory.mktemp("e2e-executor")
    passed = {"CLAUDE_CODE_MAX_RETRIES": CLI_MAX_RETRIES}
    if os.geteuid() == 0:
        # The executor runs pods as its own user; as root the CLI refuses bypassPermissions
        # unless told it is sandboxed (a real node runs agents as uid 10001 instead).
        passed["IS_SANDBOX"] = "1"
    proc = ExecutorProcess(
        kubeconfig,
        base / "executor",
        extra=[arg for name in passed for arg in ("--pass-env", name)],
        env=passed,
        state_dir=base / "state",
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def stand_in() -> Iterator[SandboxProcess]:
    with start_sandbox("--marker", MARKER, "--reply", "Done.") as server:
        yield server


@pytest.fixture
def operator(
    kubeconfig: Path,
    namespace: str,
    e2e_executor: ExecutorProcess,
    stand_in: SandboxProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        kubeconfig,
        namespace,
        tmp_path / "operator",
        extra=[*e2e_executor.operator_flags(), "--anthropic-base-url", stand_in.url],
    ).start()
    try:
        yield proc
    finally:
        proc.stop()
        if request.node.stash.get(_FAILED, False):
            _dump(proc, e2e_executor, stand_in, namespace)


@pytest.fixture
def fleet(k8s: Any, namespace: str, stand_in: SandboxProcess, operator: OperatorProcess) -> Fleet:
    """alice, bob, carol (OAuth, tier=max, maxSessions 2) and team-api (APIKey, type=api-key),
    each Available before the test starts."""
    fleet = Fleet(Scene(k8s, namespace), stand_in)
    for name, priority in OAUTH_ACCOUNTS.items():
        fleet.oauth(name, priority)
    fleet.api_key("team-api")
    fleet.wait_available()
    return fleet


def _dump(
    operator: OperatorProcess, executor: ExecutorProcess, sandbox: SandboxProcess, ns: str
) -> None:
    print(f"===== operator log (namespace {ns}) =====")
    print(operator.log_text()[-12000:])
    print("===== executor log (tail) =====")
    print(executor.log_text()[-6000:])
    print("===== stand-in requests =====")
    for r in sandbox.requests():
        print({k: r.get(k) for k in ("seq", "credential", "status", "result", "session")})
    pods = executor.state_dir / executor.node_name / "pods"
    for log in sorted(pods.glob("*/container.log"), key=lambda p: p.stat().st_mtime)[-6:]:
        print(f"===== {log} =====")
        print(log.read_text(errors="replace")[-3000:])
