"""The operator's foreground log as a person reads it: its own lines (Placed, Completed, ...)
and not kopf's line per handler per watch event, unless -v asks for the debug lines; and
--log-format json for log pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.operator import OperatorProcess, Scene, wait_for

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

KOPF_HANDLER_LINE = "Handler 'session_event' succeeded."


def run_one_session(scene: Scene, operator: OperatorProcess) -> str:
    """An account, a session placed and completed; the operator's log once it said so."""
    operator.start()
    try:
        scene.account("alice")
        scene.session("x")
        status = scene.wait_running("x")
        scene.finish_pod(status["podName"], Outcome.COMPLETED, turns=3, cost_usd=0.1)
        scene.wait_phase("agentsessions", "x", "Succeeded")
        wait_for("the Completed line", lambda: "Completed " in operator.log_text())
    finally:
        operator.stop()
    return operator.log_text()


def test_the_default_log_has_the_operators_lines_and_not_kopfs_chatter(
    kubeconfig: Path, namespace: str, k8s: Any, tmp_path: Path
) -> None:
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "op", verbose=False)
    text = run_one_session(Scene(k8s, namespace), operator)
    assert f"Placed {namespace}/x: " in text
    assert f"Completed {namespace}/x: " in text
    assert f"Available {namespace}/alice: credentials verified" in text
    assert "Handler '" not in text and "succeeded." not in text, text
    assert "Activity '" not in text, text


def test_verbose_json_lines_carry_both_the_operators_and_kopfs(
    kubeconfig: Path, namespace: str, k8s: Any, tmp_path: Path
) -> None:
    operator = OperatorProcess(
        kubeconfig, namespace, tmp_path / "op", extra=["--log-format", "json"], verbose=True
    )
    text = run_one_session(Scene(k8s, namespace), operator)
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    messages = [str(r.get("message", "")) for r in records]
    assert any(m.startswith(f"Placed {namespace}/x: ") for m in messages)
    placed = next(r for r in records if str(r.get("message", "")).startswith("Placed "))
    assert (placed["reason"], placed["kind"], placed["object"], placed["severity"]) == (
        "Placed",
        "AgentSession",
        "x",
        "info",
    )
    assert any(KOPF_HANDLER_LINE in m for m in messages), messages[:20]
