"""The agent pod builder (pure): operator-wide pod settings reach the runner's environment."""

from __future__ import annotations

from typing import Any

import pytest

from headroom.controllers.main import parse_args
from headroom.core.accounts import CredentialType
from headroom.kube import manifests

SESSION: dict[str, Any] = {
    "apiVersion": "headroom.dev/v1alpha1",
    "kind": "AgentSession",
    "metadata": {"name": "s1", "namespace": "agents", "uid": "u-1"},
    "spec": {"prompt": "p"},
}
ATTEMPT = manifests.Attempt(
    number=1,
    account="alice",
    credential_type=CredentialType.OAUTH_TOKEN,
    credential_key="token",
    claude_session_id="6f1c0000-0000-4000-8000-000000000000",
    expect_transcript=False,
    auth_path="primary",
)


def env_of(settings: manifests.PodSettings) -> dict[str, Any]:
    pod = manifests.agent_pod(SESSION, ATTEMPT, settings)
    (container,) = pod["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_permission_mode_flag_reaches_the_runner() -> None:
    settings = manifests.PodSettings(permission_mode="bypassPermissions")
    assert env_of(settings)["HEADROOM_PERMISSION_MODE"] == "bypassPermissions"


def test_no_permission_mode_keeps_the_cli_default() -> None:
    assert "HEADROOM_PERMISSION_MODE" not in env_of(manifests.PodSettings())


def test_operator_flag_accepts_only_modes_the_cli_knows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--agent-permission-mode", "yolo"])
    assert "--agent-permission-mode" in capsys.readouterr().err
