"""Which agent-pod watch events start a session pass: endings, and a container that cannot
start (its pod never ends, so without a pass the session's Ready condition never says why)."""

from __future__ import annotations

from typing import Any

from headroom.reconcilers.pod_watch import starts_a_pass


def event(status: dict[str, Any], type: str = "MODIFIED") -> bool:
    return starts_a_pass(type, {"metadata": {"name": "s1-1"}, "status": status})


def waiting(reason: str) -> dict[str, Any]:
    return {"phase": "Pending", "containerStatuses": [
        {"name": "agent", "state": {"waiting": {"reason": reason, "message": "x"}}}]}  # fmt: skip


def test_a_pod_that_runs_or_is_being_created_starts_no_pass() -> None:
    running = {
        "phase": "Running",
        "containerStatuses": [{"name": "agent", "state": {"running": {}}}],
    }
    assert not event(running)
    assert not event(waiting("ContainerCreating"))


def test_a_container_that_cannot_start_starts_a_pass() -> None:
    assert event(waiting("ErrImagePull"))
    assert event(waiting("CreateContainerConfigError"))


def test_an_ending_starts_a_pass() -> None:
    assert event({"phase": "Failed"})
    assert event({}, type="DELETED")
