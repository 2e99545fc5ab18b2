"""The pure pieces of a session pass: reading an agent pod's state (pod_state) and the status
records a pass writes (session_status). JSON in, JSON out, within the CRD's bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from headroom.contract import crd
from headroom.contract.termination import Outcome
from headroom.core import task
from headroom.core.outcome import AttemptEnd, ContainerExit
from headroom.core.session import Finish, SessionPhase
from headroom.reconcilers import pod_state, session_status

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T = "2026-12-01T12:00:00Z"
T_MINUS_40 = "2026-12-01T11:59:20Z"
WALLED = AttemptEnd(
    Outcome.WALLED, detail="limit", evidence="hit", window="five_hour", resets_at=NOW, turns=3
)


def pod(*statuses: dict[str, Any], phase: str = "Running", init: Any = ()) -> dict[str, Any]:
    return {
        "status": {
            "phase": phase,
            "containerStatuses": list(statuses),
            "initContainerStatuses": init,
        }
    }


def agent(**state: Any) -> dict[str, Any]:
    return {"name": "agent", "state": state}


# --- pod_state ------------------------------------------------------------------------------


def test_the_agent_containers_end_or_that_it_still_runs() -> None:
    ended = agent(terminated={"exitCode": 75, "reason": "Error", "message": "m"})
    assert pod_state.container_exit(pod(ended, phase="Failed")) == ContainerExit(75, "Error", "m")
    assert pod_state.container_exit(pod(agent(running={}))) is True
    assert pod_state.container_exit(pod(phase="Failed")) is None  # evicted before it started


def test_the_clone_init_containers_end() -> None:
    clone = {"name": "clone", "state": {"terminated": {"exitCode": 0}}}
    assert pod_state.clone_exit(pod(init=[clone])) == ContainerExit(0, "", None)
    assert pod_state.clone_exit(pod()) is None


def test_a_container_that_cannot_start_names_its_reason_scrubbed_and_short() -> None:
    waiting = agent(waiting={"reason": "ErrImagePull", "message": "x" * 5000})
    reason, message = pod_state.start_problem(pod(waiting)) or ("", "")
    assert reason == "ErrImagePull" and message.startswith("container agent: ")
    assert len(message) <= len("container agent: ") + crd.START_PROBLEM_CHARS
    assert pod_state.start_problem(pod(agent(waiting={"reason": "ContainerCreating"}))) is None


def test_when_the_agent_started_and_stopped() -> None:
    ended = agent(terminated={"startedAt": T_MINUS_40, "finishedAt": T})
    assert pod_state.started_at(pod(ended)) == NOW - timedelta(seconds=40)
    assert pod_state.terminated_at(pod(ended)) == NOW
    assert pod_state.started_at(pod(agent(running={"startedAt": T}))) == NOW
    assert pod_state.started_at(None) is None and pod_state.terminated_at(None) is None


# --- session_status: records ----------------------------------------------------------------


@pytest.mark.parametrize(("eviction", "outcome"), [(None, "walled"), ("Drill", "evicted")])
def test_the_last_outcome(eviction: str | None, outcome: str) -> None:
    assert session_status.last_outcome(WALLED, eviction, "s1-1", NOW) == {
        "outcome": outcome,
        "at": T,
        "podName": "s1-1",
        "detail": "limit",
        "evidence": "hit",
        "window": "five_hour",
        "resetsAt": T,
    }


def test_an_attempt_record_drops_what_it_cannot_hold_and_keeps_the_newest() -> None:
    status = {"attempt": 7, "account": "alice", "attempts": [{"attempt": i} for i in range(30)]}
    end = AttemptEnd(Outcome.FAILED, turns=2**40)  # out of int32: left out, not refused
    records = session_status.attempt_records(
        status, "s1-7", end, None, NOW - timedelta(seconds=1.5), NOW
    )
    assert len(records) == crd.ATTEMPT_RECORDS
    assert records[-1] == {
        "attempt": 7,
        "podName": "s1-7",
        "account": "alice",
        "outcome": "failed",
        "startedAt": "2026-12-01T11:59:58Z",
        "finishedAt": T,
        "durationSeconds": 1.5,
    }


def test_the_result_of_a_finished_session() -> None:
    end = AttemptEnd(Outcome.COMPLETED, summary="done", structured_output={"rows": ["x" * 17000]})
    step = Finish(SessionPhase.SUCCEEDED, "Completed", "the run finished")
    result = session_status.finished_result(end, step, task.Totals(3, 0.5, 40.0))
    assert result["detail"].startswith("the run finished (structured output of")
    assert "structuredOutput" not in result
    assert (result["outcome"], result["reason"], result["summary"]) == (
        "completed",
        "Completed",
        "done",
    )
    assert (result["turns"], result["costUSD"], result["durationSeconds"]) == (3, 0.5, 40.0)


def test_the_result_of_a_session_that_failed_between_attempts() -> None:
    result = session_status.failed_result("InvalidSpec", "x" * 2000, task.Totals())
    assert result["outcome"] == "failed" and result["reason"] == "InvalidSpec"
    assert len(result["detail"]) == crd.DETAIL_CHARS


def test_a_swap_record_names_the_window_that_walled_the_account() -> None:
    status = {
        "account": "alice",
        "lastOutcome": {"window": "five_hour"},
        "swaps": [{"to": str(i)} for i in range(25)],
    }
    swaps = session_status.swap_records(status, "bob", "Walled", NOW)
    assert len(swaps) == crd.SWAP_RECORDS
    assert swaps[-1] == {
        "from": "alice",
        "to": "bob",
        "at": T,
        "reason": "Walled",
        "window": "five_hour",
    }
    plain = session_status.swap_records({"account": "alice"}, "bob", "Drill", NOW)
    assert plain == [{"from": "alice", "to": "bob", "at": T, "reason": "Drill"}]
