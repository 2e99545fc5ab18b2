"""AgentSession reconciliation: one pass brings one session one step closer to done.

A pass reads the session and its current pod as the watches last delivered them, lets the
pure core decide, and writes in crash-safe order: account effects, then the next pod (named by
attempt, so a repeat after a crash, or after a decision on a stale copy, finds it and adopts
it), then the session's status. That write carries the resourceVersion the pass read: if the
session changed meanwhile, the server refuses it and the pass runs again on a fresh read.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from headroom.contract import crd
from headroom.contract import pod as contract
from headroom.contract.scrub import scrub, snippet
from headroom.core import running, task
from headroom.core import session as machine
from headroom.core.accounts import Account, ref_key
from headroom.core.durations import format_time, later, parse_time
from headroom.core.outcome import (
    AttemptEnd,
    ContainerExit,
    classify,
    classify_clone,
    classify_staging,
)
from headroom.core.placement import AccountScope, NoHeadroom, Placed, Request, place
from headroom.core.reasons import EvictionReason, FinishReason
from headroom.core.session import SessionPhase
from headroom.kube import agent_pod, manifests
from headroom.kube.client import KubeConflict, KubeError
from headroom.reconcilers import credentials, effects, metrics, pod_state, refusals, session_status
from headroom.reconcilers.conditions import set_conditions
from headroom.reconcilers.runtime import Runtime, retry_delay

log = logging.getLogger("headroom.session")
JSON = dict[str, Any]
PREDECESSOR_RECHECK = timedelta(seconds=5)


class StaleSession(Exception):
    """The session changed after the pass read it: its status write was refused."""


class Pass:
    """One reconcile pass over one session. Accumulates a status patch written once."""

    def __init__(self, rt: Runtime, body: JSON) -> None:
        self.rt = rt
        self.body = body
        self.meta = body["metadata"]
        self.spec = body.get("spec") or {}
        self.status: JSON = dict(body.get("status") or {})
        self.ns: str = self.meta["namespace"]
        self.name: str = self.meta["name"]
        self.key = (self.ns, self.name)
        self.patch: JSON = {}
        self.conditions: list[tuple[str, bool, str, str]] = []
        self.now = rt.clock()
        self.limits = task.Limits()
        # The finished pod of the attempt just replaced: deleted after the status write, so
        # the session shows its new pod without waiting for a delete (the slowest call of a
        # failover under load). A crash in between leaves only a finished pod behind, which
        # the session's ownerReference still cleans up with the session.
        self.superseded_pod: str | None = None
        # Events and metrics of what this pass decided, posted once its status write went
        # through: a pass whose write is refused is tried again, and must not repeat them.
        self._recorded: list[Callable[[], None]] = []
        # The Event of the decision to move on, until the pass knows whether it also starts
        # the next attempt: then that attempt's one Event says both (a failover posts one).
        self._move_event: tuple[Callable[[], None], str] | None = None

    # -- status helpers ----------------------------------------------------------------

    def set(self, **fields: Any) -> None:
        """Stage status fields; unchanged values are not written (no write, no event, no loop)."""
        for key, value in fields.items():
            if self.status.get(key) != value or (key not in self.status and value is not None):
                self.patch[key] = value
                self.status[key] = value

    def condition(self, kind: str, ok: bool, reason: str, message: str) -> None:
        self.conditions.append((kind, ok, reason, message))

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """An Event about the session, posted when the pass's status is written."""
        self._recorded.append(partial(self.rt.event, self.body, reason, message, warning=warning))

    def after_write(self, record: Callable[..., None], *args: Any) -> None:
        """A metric of the pass's decision, counted when the pass's status is written."""
        self._recorded.append(partial(record, *args))

    async def flush(self) -> None:
        generation = int(self.meta.get("generation", 1))
        if self.status.get("observedGeneration") != generation:
            self.set(observedGeneration=generation)
        before = (self.body.get("status") or {}).get("conditions")
        # A write that goes through ends an earlier refusal: its condition goes too.
        merged = refusals.without_rejection(
            set_conditions(before, self.conditions, generation, format_time(self.now))
        )
        if merged != (before or []):
            self.patch["conditions"] = merged
        recorded, self._recorded = self._recorded, []
        if self.patch:
            version = str(self.meta.get("resourceVersion") or "")
            try:
                written = await self.rt.kube.patch_session_status(
                    self.ns, self.name, self.patch, version
                )
            except KubeConflict as exc:
                self.rt.sessions.drop(self.ns, self.name)
                raise StaleSession(self.key) from exc
            except KubeError as exc:
                if not exc.refused_write:
                    raise
                write = partial(self.rt.kube.patch_session_status, self.ns, self.name)
                rejected = await refusals.record_rejected(self.rt, self.body, exc, write, self.now)
                self._own_write(rejected)
                raise
            self._own_write(written)
            self.patch = {}
        for record in recorded:
            record()

    def _own_write(self, written: JSON | None) -> None:
        """Note the resourceVersion of this pass's write: its watch event starts no pass, and
        the session as written is what the next pass reads."""
        if written:
            version = (written.get("metadata") or {}).get("resourceVersion", "")
            self.rt.own_session_writes[self.key] = (version, int(self.meta.get("generation", 1)))
            self.rt.sessions.put(written)
            self.meta = {**self.meta, "resourceVersion": version}

    def _phase(self) -> SessionPhase:
        return SessionPhase(self.status.get("phase") or SessionPhase.PENDING)

    # -- the pass --------------------------------------------------------------------------

    async def run(self) -> None:
        if self._phase().finished:
            self.rt.ledger.assign(self.key, None)
            self.rt.waiting[self.ns].pop(self.name, None)
            await self._expire_when_due()
            return
        try:
            policy = session_status.policy_of(self.spec)
            self.limits = task.limits_of(self.spec)
            task.repos_of(self.spec)
        except (ValueError, OverflowError) as exc:  # never crash-loop on a spec
            await self._finish(SessionPhase.FAILED, FinishReason.INVALID_SPEC, str(exc))
            await self.flush()
            return
        if not self.status.get("claudeSessionId") and not await self._begin_conversation():
            await self.flush()
            return

        if await self._follow_current_pod(policy):
            await self.flush()
            return
        await self._start_next_attempt()
        await self.flush()
        if self.superseded_pod:
            await self.rt.kube.delete(self.ns, "pods", self.superseded_pod)

    async def _begin_conversation(self) -> bool:
        """Choose the conversation before the first pod; kept for the session's life, so every
        attempt on every account resumes it. A continueFrom session takes its predecessor's
        conversation and workspace once that one has finished. False: not yet."""
        follows = (self.spec.get("continueFrom") or {}).get("name")
        fields: JSON = {"phase": SessionPhase.PENDING, "attempt": 0, "swapCount": 0}
        if follows:
            taken = await self._take_over(follows)
            if taken is None:
                return False
            fields.update(taken)
        else:
            fields["claudeSessionId"] = str(uuid.uuid4())
        self.set(**fields)
        self.condition("Scheduled", False, "Placing", "choosing an account")
        self.condition("Ready", False, "Placing", "choosing an account")
        self.condition("Completed", False, "NotFinished", "the session has not finished")
        return True

    async def _take_over(self, follows: str) -> JSON | None:
        before = await self.rt.kube.get_session(self.ns, follows)
        status = (before or {}).get("status") or {}
        phase = SessionPhase(status.get("phase") or SessionPhase.PENDING)
        if before is None or not phase.finished:
            reason = "PredecessorNotFound" if before is None else "PredecessorRunning"
            message = (
                f"waiting for AgentSession {follows} to exist"
                if before is None
                else f"waiting for AgentSession {follows} to finish (it is {phase.value})"
            )
            self.set(phase=SessionPhase.PENDING)
            self.condition("Scheduled", False, reason, message)
            self.condition("Ready", False, reason, message)
            self.rt.wakeups.at(("session", self.ns, self.name), self.now + PREDECESSOR_RECHECK)
            return None
        if not status.get("claudeSessionId") or not status.get("transcript"):
            await self._finish(
                SessionPhase.FAILED,
                FinishReason.PREDECESSOR_HAS_NO_CONVERSATION,
                f"AgentSession {follows} finished without a conversation to continue",
            )
            return None
        claim = status.get("workspaceClaim") or manifests.workspace_claim_name(follows)
        if not await self._share_claim(claim):
            await self._finish(
                SessionPhase.FAILED,
                FinishReason.PREDECESSOR_WORKSPACE_GONE,
                f"the workspace {claim} of AgentSession {follows} no longer exists",
            )
            return None
        self.event(
            "Continues",
            f"continues conversation {status['claudeSessionId']} of {follows} on its workspace",
        )
        return {
            "claudeSessionId": status["claudeSessionId"],
            "transcript": True,
            "workspaceClaim": claim,
            "reposCloned": bool(status.get("reposCloned")),
        }

    async def _share_claim(self, claim: str) -> bool:
        """Make this session an owner of the workspace too, so that it outlives the
        predecessor (a TTL, a deletion) for as long as this session needs it."""
        pvc = await self.rt.kube.get(self.ns, "persistentvolumeclaims", claim)
        if pvc is None:
            return False
        owners = list((pvc.get("metadata") or {}).get("ownerReferences") or [])
        if any(o.get("uid") == self.meta["uid"] for o in owners):
            return True
        mine = {**manifests.owner_reference(self.body), "controller": False}
        try:
            await self.rt.kube.patch(
                self.ns,
                "persistentvolumeclaims",
                claim,
                {"metadata": {"ownerReferences": [*owners, mine]}},
            )
        except KubeError as exc:
            if exc.refused_write:
                await self._claim_refused(f"could not become an owner of workspace {claim}", exc)
            raise
        return True

    async def _claim_refused(self, what: str, exc: KubeError) -> None:
        """The server refused a write of the workspace claim: without it no pod can start, so
        status says why before the pass gives up (reconcile() retries after the longest
        backoff; an administrator may change the policy, a quota or RBAC meanwhile)."""
        reason, message = (
            "WorkspaceClaimRefused",
            f"{what}: {exc.status} {exc.reason}: {exc.message}",
        )
        self.set(phase=SessionPhase.PENDING)
        self.condition("Scheduled", False, reason, message)
        self.condition("Ready", False, reason, message)
        known = (self.body.get("status") or {}).get("conditions") or []
        kept = message[: crd.CONDITION_MESSAGE_CHARS]  # as the condition holds it
        if not any(c.get("reason") == reason and c.get("message") == kept for c in known):
            self.event(reason, message, warning=True)  # once per new refusal
        await self.flush()

    async def _expire_when_due(self) -> None:
        """spec.ttlSecondsAfterFinished: delete the finished session, as Jobs are."""
        try:
            ttl = task.limits_of(self.spec).ttl
        except ValueError:
            return
        finished = parse_time(self.status.get("finishedAt"))
        if ttl is None or finished is None:
            return
        due = finished + ttl
        if due > self.now:
            self.rt.wakeups.at(("session", self.ns, self.name), due)
            return
        log.info("session %s/%s: deleting, %ss after it finished", self.ns, self.name, ttl)
        await self.rt.kube.delete_session(self.ns, self.name)

    async def _follow_current_pod(self, policy: machine.FailoverPolicy) -> bool:
        """Handle the current attempt's pod. True when nothing more is to be done now."""
        pod_name = self.status.get("podName")
        adopted = await self._adopt_newer_pod()
        if adopted is not None:
            pod_name = adopted
        if not pod_name:
            return False
        pod = await self.rt.read_pod(self.ns, pod_name)
        clone = pod_state.clone_exit(pod) if pod is not None else None
        if clone is not None and clone.exit_code == 0 and not self.status.get("reposCloned"):
            self.set(reposCloned=True)
        cloned = clone is None or clone.exit_code == 0
        staging = pod_state.init_exit(pod, contract.CREDENTIAL_CONTAINER) if pod else None
        staged = staging is None or staging.exit_code == 0
        state = pod_state.container_exit(pod) if pod is not None else None
        if state is True and cloned and staged:
            assert pod is not None
            return await self._while_running(pod)
        if self.status.get("lastOutcome", {}).get("podName") == pod_name:
            return False  # this attempt's end is already recorded; go on to the next step
        if pod_state.lost_node(pod) is not None and not self.status.get("evictionReason"):
            # Ended by the loss of its node (seen only now, e.g. after a restart): read as
            # that eviction, not as the agent's failure.
            self.set(evictionReason=EvictionReason.NODE_LOST.value)
        if not staged:
            assert staging is not None
            end = classify_staging(staging)
        elif not cloned:
            assert clone is not None
            end = classify_clone(clone)
        else:
            end = classify(state if isinstance(state, ContainerExit) else None)
        terminated_at = pod_state.terminated_at(pod) or self.now
        # A pod already gone (deleted for a timeout or a drill) tells nothing: the attempt then
        # counts from when its pod was created.
        started_at = (
            pod_state.started_at(pod)
            or parse_time(self.status.get("attemptStartedAt"))
            or terminated_at
        )
        await self._apply_end(pod_name, end, policy, started_at, terminated_at)
        return self._phase().finished

    async def _adopt_newer_pod(self) -> str | None:
        """After a crash between creating a pod and recording it, the pod exists with a higher
        attempt number than status says. Adopt it instead of creating another."""
        attempt = int(self.status.get("attempt", 0))
        newer = [p for p in self.rt.live_pods(self.ns, self.name) if p.attempt > attempt]
        if not newer:
            return None
        pod = max(newer, key=lambda p: p.attempt)
        log.info("adopting pod %s/%s created before a restart", self.ns, pod.name)
        self.rt.ledger.assign(self.key, ref_key(self.ns, pod.account))
        self._record_start(
            pod.account, pod.name, pod.attempt, self.status.get("authPath", "primary")
        )
        return pod.name

    async def _while_running(self, pod: JSON) -> bool:
        account_name = self.status.get("account") or ""
        self.rt.ledger.assign(self.key, ref_key(self.ns, account_name))
        if self._phase() is not SessionPhase.RUNNING:
            self.set(phase=SessionPhase.RUNNING, waitingUntil=None, retryAt=None)
        problem = pod_state.start_problem(pod)
        if problem is not None:
            self.condition("Ready", False, problem[0], problem[1])
        self._note_lost_node(pod)
        # spec.timeout counts running time over all attempts: past it the pod is stopped and
        # its end finishes the session.
        decision = running.while_running(
            self.limits,
            session_status.totals_of(self.status),
            pod_state.started_at(pod) or parse_time((pod.get("status") or {}).get("startTime")),
            self.rt.roster.by_ref(self.ns, account_name),
            stopping=bool((pod.get("metadata") or {}).get("deletionTimestamp")),
            now=self.now,
        )
        if decision.recheck_at is not None:
            self.rt.wakeups.at(("session", self.ns, self.name), decision.recheck_at)
        if decision.stop is not None:
            await self._evict(pod["metadata"]["name"], decision.stop, account_name)
        return True

    def _note_lost_node(self, pod: JSON) -> None:
        """A pod the control plane removes because its node is lost is still live (never two
        pods for one session): the session waits for the API server to remove it, says so,
        and reads its end as an eviction."""
        node = pod_state.lost_node(pod)
        if node is None:
            return
        name = pod["metadata"]["name"]
        message = (
            f"node {node} of pod {name} is lost; the session is placed again once the API "
            "server has removed the pod (the node's kubelet confirms, the node is deleted, "
            "or it is tainted node.kubernetes.io/out-of-service)"
        )
        self.condition("Ready", False, "NodeLost", message)
        if not self.status.get("evictionReason"):
            self.set(evictionReason=EvictionReason.NODE_LOST.value)
            self.event("NodeLost", message, warning=True)

    async def _evict(self, pod_name: str, why: EvictionReason, account: str) -> None:
        """Stop the running pod; its end, in a later pass, is read as this eviction."""
        self.set(evictionReason=why.value)
        await self.rt.kube.delete(self.ns, "pods", pod_name)
        if why is EvictionReason.TIMED_OUT:
            message = f"stopping pod {pod_name}: spec.timeout reached"
            self.event("TimedOut", message, warning=True)
        else:
            message = f"drill on {account}: stopping pod {pod_name} to move the session"
            self.event("Evicting", message)

    async def _apply_end(
        self,
        pod_name: str,
        end: AttemptEnd,
        policy: machine.FailoverPolicy,
        started_at: datetime,
        terminated_at: datetime,
    ) -> None:
        # A termination message is untrusted input: scrub before it reaches status or Events.
        end = replace(end, detail=scrub(end.detail), evidence=snippet(end.evidence))
        progress = session_status.progress_of(self.status)
        eviction = self.status.get("evictionReason")
        seconds = max(0.0, (terminated_at - started_at).total_seconds())
        totals = session_status.totals_of(self.status).plus(end.turns, end.cost_usd, seconds)
        decision = machine.after_end(
            progress,
            end,
            eviction,
            policy,
            self.rt.settings.retry,
            task.over_limits(self.limits, totals),
            self.now,
        )
        account = self.rt.roster.by_ref(self.ns, progress.account or "")
        if decision.effect is not None and account is not None:
            # A cluster account's signal may come from any namespace: say which.
            who = f"{self.ns}/{self.name}" if account.cluster else self.name
            model = self.spec.get("model")
            await effects.apply(self.rt, account, decision.effect, who, end, self.now, model)
        elif account is not None and (end.utilization or end.warnings):
            await effects.record_windows(self.rt, account, end, self.now)
        # The attempt is over: its slot is free until the next placement.
        self.rt.ledger.assign(self.key, None)
        self.rt.mark_account_dirty(*ref_key(self.ns, progress.account or ""))
        p = decision.progress
        self.set(
            lastOutcome=session_status.last_outcome(end, eviction, pod_name, self.now),
            suspicions=p.suspicions,
            failures=p.failures,
            transcript=p.transcript,
            podTerminatedAt=format_time(terminated_at),
            evictionReason=None,
            totals=session_status.totals_json(totals),
            attempts=session_status.attempt_records(
                self.status, pod_name, end, eviction, started_at, terminated_at
            ),
        )
        self.after_write(metrics.attempt_ended, session_status.outcome_of(end, eviction))
        step = decision.step
        if isinstance(step, machine.Finish):
            self.set(result=session_status.finished_result(end, step, totals))
            await self._finish(step.phase, step.reason, step.message)
            return
        self.set(
            pendingMove=machine.PendingMove.of(step).to_status(),
            retryAt=format_time(step.not_before) if step.not_before else None,
        )
        # Not ready until the next attempt runs; a placement in this same pass says Running.
        self.condition("Ready", False, step.reason, step.message)
        self.event(step.reason, step.message, warning=step.leave)
        self._move_event = (self._recorded[-1], step.message)

    def _folded_move(self) -> str:
        """The decision to move, taken out of the pass's Events for the start's own to say."""
        if self._move_event is None:
            return ""
        record, message = self._move_event
        self._recorded.remove(record)
        self._move_event = None
        return f" after: {message}"

    async def _finish(self, phase: SessionPhase, reason: str, message: str) -> None:
        ok = phase is SessionPhase.SUCCEEDED
        self.set(
            phase=phase.value,
            retryAt=None,
            waitingUntil=None,
            waitingSince=None,
            pendingMove=None,
            finishedAt=format_time(self.now),
        )
        if not self.status.get("result"):
            totals = session_status.totals_of(self.status)
            self.set(result=session_status.failed_result(reason, message, totals))
        self.condition("Completed", True, reason, message)
        self.condition("Ready", ok, reason, message)
        held = self.rt.ledger.holder(self.key)
        self.rt.ledger.assign(self.key, None)
        self.rt.waiting[self.ns].pop(self.name, None)
        self.event(reason, message, warning=not ok)
        self.rt.wake_waiting(held[0] if held is not None else self.ns)
        await credentials.remove(self.rt, self.body, self.status)
        if self.limits.ttl is not None:
            self.rt.wakeups.at(("session", self.ns, self.name), self.now + self.limits.ttl)

    async def _start_next_attempt(self) -> None:
        stop = task.over_limits(self.limits, session_status.totals_of(self.status))
        if stop is not None:
            await self._finish(SessionPhase.FAILED, stop.reason, stop.message)
            return
        retry_at = parse_time(self.status.get("retryAt"))
        if retry_at is not None and retry_at > self.now:
            self.rt.wakeups.at(("session", self.ns, self.name), retry_at)
            if self._phase() is not SessionPhase.PENDING:
                self.set(phase=SessionPhase.PENDING)
            self.condition(
                "Scheduled", False, "BackingOff", f"next attempt at {format_time(retry_at)}"
            )
            return
        request = self._request()
        async with self.rt.placement_lock(self.ns, request.may_use_cluster_accounts):
            self.rt.seed_ledger()
            self.rt.ledger.assign(self.key, None)
            accounts = self.rt.roster.for_sessions_of(self.ns)
            choice = place(accounts, self.rt.ledger.load(accounts), request, self.now)
            if isinstance(choice, Placed):
                self.rt.ledger.assign(self.key, ref_key(self.ns, choice.account))
        if isinstance(choice, NoHeadroom):
            await self._wait(choice)
            return
        account = next(a for a in accounts if a.ref == choice.account)
        await self._create_pod(account, choice)

    def _request(self) -> Request:
        fallback = self.spec.get("fallback")
        request = machine.next_request(
            self.spec.get("accountSelector"),
            (fallback or {}).get("accountSelector", {}) if fallback is not None else None,
            self.status.get("account"),
            machine.PendingMove.from_status(self.status.get("pendingMove")),
            self.spec.get("model"),
        )
        return replace(
            request,
            scope=AccountScope(self.spec.get("accountScope", crd.ACCOUNT_SCOPE)),
            fallback_scope=AccountScope((fallback or {}).get("accountScope", crd.ACCOUNT_SCOPE)),
            namespace=self.ns,
            namespace_labels=self.rt.namespace_labels(self.ns),
        )

    async def _wait(self, choice: NoHeadroom) -> None:
        was_waiting = self._phase() is SessionPhase.WAITING
        since = parse_time(self.status.get("waitingSince")) if was_waiting else None
        since = since or self.now
        stop = task.waited_too_long(self.limits, since, self.now)
        if stop is not None:
            await self._finish(
                SessionPhase.FAILED, stop.reason, f"{stop.message}: {choice.message}"
            )
            return
        if self.limits.wait_timeout is not None:
            self.rt.wakeups.at(
                ("session", self.ns, self.name), later(since, self.limits.wait_timeout)
            )
        self.rt.waiting[self.ns].setdefault(self.name, self.now)
        until = format_time(choice.earliest_reset) if choice.earliest_reset else None
        self.set(phase=SessionPhase.WAITING, waitingUntil=until, waitingSince=format_time(since))
        self.condition("Scheduled", False, "NoHeadroom", choice.message)
        self.condition("Ready", False, "NoHeadroom", choice.message)
        if choice.earliest_reset is not None:
            self.rt.wakeups.at(("session", self.ns, self.name), choice.earliest_reset)
        if not was_waiting:
            self.after_write(metrics.waiting_started)  # once per wait, not per changed message
        message = choice.message[: crd.WAITING_MESSAGE_CHARS]
        if not was_waiting or self.status.get("waitingMessage") != message:
            self.set(waitingMessage=message)
            self.event("NoHeadroom", choice.message, warning=True)

    async def _create_pod(self, account: Account, choice: Placed) -> None:
        progress = session_status.progress_of(self.status)
        attempt = machine.next_attempt(progress)
        totals = session_status.totals_of(self.status)
        left = task.seconds_left(self.limits, totals)
        claim = self.status.get("workspaceClaim") or manifests.workspace_claim_name(self.name)
        plan = agent_pod.Attempt(
            number=attempt,
            account=account.ref,
            credential_secret=credentials.secret_for(self.name, account),
            credential_type=account.credential_type,
            credential_key=account.credential_key,
            claude_session_id=self.status["claudeSessionId"],
            expect_transcript=progress.transcript,
            auth_path=choice.auth_path.value,
            workspace_claim=claim,
            clone_repos=not self.status.get("reposCloned"),
            budget_left_usd=task.budget_left(self.limits, totals.cost_usd),
            # The kubelet's own deadline backs the operator's timer up: a minute later.
            deadline_seconds=int(left) + 60 if left is not None else None,
        )
        later_attempt = attempt > 1 or bool(self.spec.get("continueFrom"))
        if later_attempt and not await self.rt.claim_usable(self.ns, claim):
            # The conversation and the agent's files were on it: a new claim would start
            # the next attempt blank (and a pod on a missing claim waits for ever).
            await self._finish(
                SessionPhase.FAILED,
                FinishReason.WORKSPACE_LOST,
                f"the workspace claim {claim} is gone: the conversation and the agent's files"
                " were on it, so the session does not start over",
            )
            return
        if attempt == 1 and not self.spec.get("continueFrom"):
            workspace = self.spec.get("workspace") or {}
            manifest = manifests.workspace_claim(
                self.body,
                workspace.get("size", crd.WORKSPACE_SIZE),
                workspace.get("storageClassName"),
            )
            try:
                await self.rt.kube.create(self.ns, "persistentvolumeclaims", manifest)
            except KubeError as exc:
                if exc.refused_write:
                    self.rt.ledger.assign(self.key, None)
                    name = manifest["metadata"]["name"]
                    await self._claim_refused(f"could not create workspace claim {name}", exc)
                raise
        if account.cluster and not await self._stage_credential(account):
            return
        pod = agent_pod.agent_pod(self.body, plan, self.rt.settings.pods)
        name = pod["metadata"]["name"]
        try:
            created = await self.rt.kube.create(self.ns, "pods", pod)
        except KubeError as exc:
            self.rt.ledger.assign(self.key, None)
            self.set(phase=SessionPhase.PENDING)
            self.condition(
                "Scheduled", False, "PodCreateFailed", f"could not create pod {name}: {exc.message}"
            )
            self.event(
                "PodCreateFailed",
                f"could not create pod {name}: {exc.message}",
                warning=True,
            )
            # Write why before giving up the pass: reconcile() then retries soon, or after
            # the longest backoff when the server refuses the pod as it is (retry_delay).
            await self.flush()
            raise
        account_name, auth_path = account.ref, choice.auth_path.value
        if not created:  # made by a pass that crashed before recording it: adopt as is
            existing = await self.rt.kube.get(self.ns, "pods", name) or {}
            ann = (existing.get("metadata") or {}).get("annotations") or {}
            account_name = ann.get(contract.ANN_ACCOUNT, account_name)
            auth_path = ann.get(contract.ANN_AUTH_PATH, auth_path)
            self.rt.ledger.assign(self.key, ref_key(self.ns, account_name))
        self._record_start(account_name, name, attempt, auth_path)
        self.set(workspaceClaim=claim)
        if left is not None:
            # A running pod's own status changes start no pass: the timer checks the timeout.
            self.rt.wakeups.at(("session", self.ns, self.name), later(self.now, left))
        # Previous attempts' pods are finished; keep only the current one.
        self.superseded_pod = self.status.get("previousPod")

    async def _stage_credential(self, account: Account) -> bool:
        try:
            await credentials.stage(self.rt, self.body, account)
        except credentials.CredentialUnavailable as exc:
            self.rt.ledger.assign(self.key, None)
            self.set(phase=SessionPhase.PENDING)
            message = f"the credential of {account.ref} cannot be read: {exc}"
            self.condition("Scheduled", False, "CredentialUnavailable", message)
            retry = self.now + self.rt.settings.retry.base_backoff
            self.rt.wakeups.at(("session", self.ns, self.name), retry)
            return False
        return True

    def _record_start(self, account_name: str, pod_name: str, attempt: int, auth_path: str) -> None:
        progress = session_status.progress_of(self.status)
        after = machine.record_swap(progress, account_name, self.now, attempt)
        move = machine.PendingMove.from_status(self.status.get("pendingMove"))
        fields: JSON = {
            "phase": SessionPhase.RUNNING,
            "account": account_name,
            "podName": pod_name,
            "previousPod": self.status.get("podName")
            if self.status.get("podName") != pod_name
            else None,
            "attempt": after.attempt,
            "attemptStartedAt": format_time(self.now),
            "authPath": auth_path,
            "swapCount": after.swap_count,
            "suspicions": after.suspicions,
            "waitingUntil": None,
            "waitingSince": None,
            "waitingMessage": None,
            "retryAt": None,
            "pendingMove": None,
        }
        if machine.is_swap(progress, account_name):
            reason = machine.swap_reason(move)
            fields["swaps"] = session_status.swap_records(
                self.status, account_name, reason, self.now
            )
            fields["lastSwapAt"] = format_time(self.now)
            self.after_write(metrics.swapped, self.ns, reason)
            terminated = parse_time(self.status.get("podTerminatedAt"))
            if terminated is not None and self.name not in self.rt.waiting[self.ns]:
                # A move that had to wait for headroom is waiting time, not failover latency.
                self.after_write(metrics.failover_latency, (self.now - terminated).total_seconds())
            self.event(
                "Swapped",
                f"moved from {progress.account} to {account_name} ({reason}); "
                f"attempt {attempt} resumes conversation {self.status.get('claudeSessionId')}"
                + self._folded_move(),
            )
            effects.drill_progress(self.rt, ref_key(self.ns, progress.account or ""), self.now)
        else:
            verb = "resumes" if progress.transcript else "starts"
            self.event(
                "Placed",
                f"attempt {attempt} on {account_name} ({auth_path}) {verb} conversation "
                f"{self.status.get('claudeSessionId')}" + self._folded_move(),
            )
        self.set(**fields)
        waited_since = self.rt.waiting[self.ns].pop(self.name, None)
        if waited_since is not None:
            self.after_write(metrics.waiting_ended, (self.now - waited_since).total_seconds())
        self.rt.mark_account_dirty(*ref_key(self.ns, account_name))
        self.condition(
            "Scheduled",
            True,
            "Placed",
            f"attempt {attempt} runs on {account_name} ({auth_path} credentials)",
        )
        self.condition("Ready", True, "Running", f"the agent runs on {account_name}")


async def reconcile(rt: Runtime, namespace: str, name: str, *, watched: bool = False) -> None:
    """One pass. `watched`: started by a watch event, so the session as the watches (or
    this operator's own last write) delivered it will do; a timer reads the API server."""
    await rt.pods_synced.wait()  # until then the ledger and the pods to adopt are unknown
    async with rt.lock("session", namespace, name):
        try:
            # The read is inside the retry too: a wake-up whose read failed (API server down)
            # was dropped, and the session waited forever (tests/faults).
            cached = rt.sessions.get(namespace, name) if watched else None
            body = cached or await rt.kube.get_session(namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                forget(rt, namespace, name)
                return
            try:
                await Pass(rt, body).run()
            except StaleSession:
                # Decided on a copy the session has since left behind: once more on a fresh
                # read (a second conflict is an API error, retried soon, like any other).
                await _run_fresh(rt, namespace, name)
        except KubeError as exc:
            metrics.reconcile_error("AgentSession")
            if exc.refused_write:
                metrics.write_refused(exc.resource, exc.reason)
            # A write refused as it is gets the same answer on the next try: come back after
            # the longest backoff (an administrator may change RBAC, a quota, a policy), not
            # in a tight loop. Anything else may pass soon.
            delay = retry_delay(rt, exc)
            log.warning("session %s/%s: API error %s; retry in %s", namespace, name, exc, delay)
            if exc.refused:
                # Nothing the pass decided was recorded, its own timers neither (the backoff
                # of a failed attempt re-armed on every try): the one retry is this one.
                rt.wakeups.cancel(("session", namespace, name))
            rt.wakeups.at(("session", namespace, name), rt.clock() + delay)
        except Exception:  # kopf (or the wake-up loop) retries; count it on the way out
            metrics.reconcile_error("AgentSession")
            raise


async def _run_fresh(rt: Runtime, namespace: str, name: str) -> None:
    body = await rt.kube.get_session(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        forget(rt, namespace, name)
        return
    rt.sessions.put(body)
    try:
        await Pass(rt, body).run()
    except StaleSession as stale:
        raise KubeConflict(409, "the session changed twice during one pass", "Conflict") from stale


def forget(rt: Runtime, namespace: str, name: str) -> None:
    holder = rt.ledger.holder((namespace, name))
    rt.ledger.assign((namespace, name), None)
    rt.waiting[namespace].pop(name, None)
    rt.wakeups.cancel(("session", namespace, name))
    rt.own_session_writes.pop((namespace, name), None)
    rt.staged_credentials.pop((namespace, name), None)
    rt.sessions.drop(namespace, name)
    rt.forget_lock("session", namespace, name)  # one lock per live session, not per ever-seen
    if holder is not None:
        rt.mark_account_dirty(*holder)
        rt.wake_waiting(namespace)
