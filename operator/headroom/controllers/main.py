"""`headroom operator`: flags, kopf settings, and the background tasks of the Runtime."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

import kopf
from prometheus_client import start_http_server

from headroom.anthropic.usage import DEFAULT_BASE_URL as DEFAULT_USAGE_BASE_URL
from headroom.anthropic.usage import UsageApi
from headroom.controllers import accounts as _accounts  # noqa: F401  (registers handlers)
from headroom.controllers import peering
from headroom.controllers import sessions as _sessions  # noqa: F401  (registers handlers)
from headroom.controllers.memo import OperatorMemo, Peering, kopf_indexes
from headroom.core.accounts import Account, AccountPhase, account_state
from headroom.core.durations import parse_duration
from headroom.core.session import RetryPolicy
from headroom.kube import diffbase
from headroom.kube.agent_pod import PodSettings
from headroom.kube.client import Kube
from headroom.reconcilers import account as account_reconciler
from headroom.reconcilers import cluster_secrets, metrics, pod_watch, usage
from headroom.reconcilers import session as session_reconciler
from headroom.reconcilers.runtime import Runtime, Settings

log = logging.getLogger("headroom")


def build_parser() -> argparse.ArgumentParser:
    """The flags of `headroom operator` (the Helm chart's values schema offers their choices)."""
    p = argparse.ArgumentParser(prog="headroom operator", description=__doc__)
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs like team-* work)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    p.add_argument(
        "--metrics-port", type=int, default=8000, help="Prometheus metrics port (0: off)"
    )
    p.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="kopf liveness endpoint URL ('' to disable)",
    )
    p.add_argument(
        "--peering",
        default="",
        help="kopf peering object name for HA ('' = standalone); replicas sharing it need "
        "distinct priorities, and the cluster needs kopf's peering CRD (manifests/kopf/)",
    )
    p.add_argument(
        "--priority",
        type=_priority,
        default=0,
        help="peering priority of this replica: the live replica with the highest one acts; "
        "'auto' picks a random one (for identical replicas of one Deployment)",
    )
    p.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        help="seconds a replica's keep-alive counts; a standby takes over this long after the "
        "active replica's last keep-alive",
    )
    p.add_argument(
        "--cluster-account-namespace",
        default=os.environ.get("POD_NAMESPACE") or Settings.cluster_account_namespace,
        help="namespace of the ClusterClaudeAccounts' credential Secrets (default: the "
        "operator's own, from POD_NAMESPACE, else headroom-system); the operator must watch it",
    )
    p.add_argument("--agent-image", default=PodSettings.default_image, help="default agent image")
    p.add_argument(
        "--anthropic-base-url",
        default=None,
        help="ANTHROPIC_BASE_URL for agent pods (a stand-in API in tests and demos)",
    )
    p.add_argument(
        "--usage-poll-interval",
        default="0",
        help="read each busy OAuth account's plan usage (GET /api/oauth/usage) at most this "
        "often, e.g. 1m ('0': off); one read per account, whatever its sessions",
    )
    p.add_argument(
        "--usage-base-url",
        default=None,
        help="where the usage endpoint lives (default: --anthropic-base-url if set, else "
        f"{DEFAULT_USAGE_BASE_URL})",
    )
    p.add_argument(
        "--agent-permission-mode",
        default=None,
        choices=[
            "acceptEdits",
            "auto",
            "bypassPermissions",
            "manual",
            "dontAsk",
            "plan",
        ],  # claude 2.1.330
        help="Claude Code --permission-mode for agents (unattended work usually needs "
        "bypassPermissions or acceptEdits); unset keeps the CLI's default",
    )
    p.add_argument("--agent-node-selector", default="{}", help="JSON nodeSelector for agent pods")
    p.add_argument("--agent-tolerations", default="[]", help="JSON tolerations for agent pods")
    p.add_argument(
        "--agent-cpu-request",
        default=PodSettings.cpu_request,
        help="CPU request of agent pods unless spec.resources says",
    )
    p.add_argument(
        "--agent-memory-request",
        default=PodSettings.memory_request,
        help="memory request of agent pods unless spec.resources says",
    )
    p.add_argument(
        "--agent-memory-limit",
        default=PodSettings.memory_limit,
        help="memory limit of agent pods unless spec.resources says (past it: OOM-killed)",
    )
    p.add_argument("--backoff", default="10s", help="first retry delay after a failed attempt")
    p.add_argument("--max-backoff", default="5m", help="longest retry delay")
    p.add_argument(
        "--max-failures", type=int, default=3, help="failed attempts in a row before Failed"
    )
    p.add_argument(
        "--suspected-wall",
        default="15m",
        help="how long a wall confirmed by repeated throttles (no reset time) lasts",
    )
    p.add_argument(
        "--credits-recheck",
        default="1h",
        help="how long a spent usage credit without a refresh time walls an account before it"
        " is tried again (sooner when its Secret changes)",
    )
    p.add_argument(
        "--min-wall",
        default="30s",
        help="shortest wall, even when the reported reset time is already past",
    )
    p.add_argument(
        "--drill-duration", default="2m", help="how long a drill treats an account as walled"
    )
    p.add_argument(
        "--log-format",
        choices=["plain", "json"],
        default="plain",
        help="json: one JSON object a line, for log pipelines",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug lines too, kopf's own (every handler's outcome) among them",
    )
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _priority(text: str) -> int:
    if text == "auto":
        # Same-priority peers all pause (kopf's rule), so identical replicas must differ.
        return secrets.randbelow(2**31 - 2) + 1
    return int(text)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        retry=RetryPolicy(
            base_backoff=parse_duration(args.backoff),
            max_backoff=parse_duration(args.max_backoff),
            max_failures=args.max_failures,
            suspected_wall=parse_duration(args.suspected_wall),
            credits_recheck=parse_duration(args.credits_recheck),
            min_wall=parse_duration(args.min_wall),
        ),
        pods=PodSettings(
            default_image=args.agent_image,
            anthropic_base_url=args.anthropic_base_url,
            permission_mode=args.agent_permission_mode,
            node_selector=dict(json.loads(args.agent_node_selector)),
            tolerations=tuple(json.loads(args.agent_tolerations)),
            cpu_request=args.agent_cpu_request,
            memory_request=args.agent_memory_request,
            memory_limit=args.agent_memory_limit,
        ),
        drill_duration=parse_duration(args.drill_duration),
        cluster_account_namespace=args.cluster_account_namespace,
        namespaces=() if args.all_namespaces else tuple(args.namespace),
        usage_poll_interval=parse_duration(args.usage_poll_interval),
        usage_base_url=args.usage_base_url or args.anthropic_base_url or DEFAULT_USAGE_BASE_URL,
    )


def memo_from(args: argparse.Namespace, peering_targets: Sequence[str | None] = ()) -> OperatorMemo:
    """Everything the handlers need from the command line, handed to kopf as its memo."""
    options = None
    if args.peering:
        options = Peering(
            name=args.peering,
            priority=args.priority,
            clusterwide=bool(args.all_namespaces),
            lifetime=args.peering_lifetime,
            targets=tuple(peering_targets),
        )
    return OperatorMemo(settings_from(args), peering.own_identity(), options)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: OperatorMemo, **kwargs: Any) -> None:
    configure_kopf(settings, memo)
    rt = Runtime(await Kube.connect(), memo.settings)
    pods = pod_watch.PodWatch(rt, memo.settings.namespaces)
    rt.pods_synced.clear()  # nothing is placed before the pods' first list
    # kopf's index objects are live: empty now, filled by its watches before any handler runs.
    rt.attach(kopf_indexes(kwargs, pods.live))
    if memo.peering is not None:
        rt.active.clear()  # stand by until the peering record says this replica leads
        memo.tasks.add(asyncio.create_task(_watch_leadership(rt, memo.identity, memo.peering)))
    else:
        metrics.operator_active.set(1)
    rt.reconcile_session = session_reconciler.reconcile
    rt.reconcile_account = account_reconciler.reconcile
    rt.background_jobs = [
        lambda _: pods.run(),
        _run_wakeups,
        _flush_accounts,
        _export_session_phases,
        cluster_secrets.watch,
    ]
    if rt.settings.usage_poll_interval > timedelta(0):
        rt.background_jobs.append(_poll_usage)
    metrics.window_resets.clock = rt.clock
    memo.runtime = rt
    log.info("headroom operator started; it needs no Claude account of its own")


def configure_kopf(settings: kopf.OperatorSettings, memo: OperatorMemo) -> None:
    settings.posting.level = logging.INFO
    # `kubectl describe` shows the component in its "From" column; the instance says which
    # replica wrote an Event (with HA, the one that led at the time).
    settings.posting.reporting_component = "headroom-operator"
    settings.posting.reporting_instance = memo.identity
    settings.posting.event_name_prefix = "headroom-"
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    diffbase.install(settings, kopf.get_default_registry())  # see headroom/kube/diffbase.py
    if memo.peering is not None:
        settings.peering.name = memo.peering.name
        settings.peering.priority = memo.peering.priority
        settings.peering.mandatory = True
        settings.peering.clusterwide = memo.peering.clusterwide
        settings.peering.lifetime = memo.peering.lifetime
    else:
        settings.peering.standalone = True


async def _watch_leadership(rt: Runtime, identity: str, options: Peering) -> None:
    await peering.watch_leadership(
        rt.kube,
        options.name,
        options.targets,
        identity,
        options.priority,
        rt.active,
        interval=min(5.0, max(1.0, options.lifetime / 4)),
        clock=rt.clock,
    )


@kopf.on.cleanup()
async def cleanup(memo: OperatorMemo, **_: Any) -> None:
    for task in memo.tasks:
        task.cancel()
    rt = memo.runtime
    if rt is not None:
        rt.stop_background()
        await rt.kube.close()


async def _poll_usage(rt: Runtime) -> None:
    api = UsageApi(rt.settings.usage_base_url)
    try:
        await usage.UsagePoller(rt, api, rt.settings.usage_poll_interval).run()
    finally:
        await api.close()


async def _run_wakeups(rt: Runtime) -> None:
    await rt.wakeups.run()


async def _flush_accounts(rt: Runtime) -> None:
    """Coalesce account status refreshes (activeSessions moves with every placement)."""
    while True:
        await asyncio.sleep(rt.settings.account_status_delay / 4)
        await rt.active.wait()  # a standby replica writes nothing
        for namespace, name in rt.due_accounts():
            if name:
                await account_reconciler.reconcile(rt, namespace, name, watched=True)


async def _export_session_phases(rt: Runtime) -> None:
    while True:
        counts: dict[str, Counter[str]] = {}
        for (namespace, _), phase in list(rt.session_phases.items()):
            counts.setdefault(namespace, Counter())[phase] += 1
        metrics.set_session_phases(counts)
        metrics.set_waiting(
            {ns: min(queue.values(), default=None) for ns, queue in rt.waiting.items()},
            rt.clock(),
        )
        available: Counter[str] = Counter()
        for namespace in {ns for ns, _ in rt.account_uids}:
            available[namespace] = sum(
                1 for a in rt.roster.accounts(namespace) if _is_available(rt, a)
            )
            metrics.available_accounts.labels(namespace).set(available[namespace])
        await asyncio.sleep(5)


def _is_available(rt: Runtime, account: Account) -> bool:
    return account_state(account, rt.clock()).phase is AccountPhase.AVAILABLE


class KopfChatter(logging.Filter):
    """Drops kopf's own informational lines ("Handler 'session_event' succeeded.", several
    per watch event), which would bury the operator's (Placed, Walled, Swapped, Completed).
    kopf's warnings and errors, and every line of the operator, pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith("kopf")


def configure_logging(verbose: bool, log_format: str) -> None:
    """kopf's handler on the root logger, plain or JSON; without -v, kopf's INFO lines are
    treated as debug lines and left out."""
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(KopfChatter())


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose, args.log_format)
    targets: list[str | None] = []
    if args.peering:
        # Without its CRD kopf would pause forever in silence: refuse to start instead.
        try:
            targets = asyncio.run(_prepare_peering(args))
        except peering.PeeringUnavailable as exc:
            log.error("cannot start with --peering=%s: %s", args.peering, exc)
            return 2
    memo = memo_from(args, targets)
    if memo.peering is not None:
        log.info(
            "peering %r as %s with priority %d (lifetime %ds)",
            memo.peering.name,
            memo.identity,
            memo.peering.priority,
            memo.peering.lifetime,
        )
    if args.metrics_port:
        start_http_server(args.metrics_port)
    kopf.run(
        clusterwide=args.all_namespaces,
        namespaces=list(args.namespace),
        liveness_endpoint=args.liveness or None,
        standalone=not args.peering,
        priority=args.priority,
        peering_name=args.peering or None,
        identity=cast(Any, memo.identity),  # kopf's Identity is a NewType over str, not exported
        memo=memo,
    )
    return 0


async def _prepare_peering(args: argparse.Namespace) -> list[str | None]:
    kube = await Kube.connect()
    try:
        return await peering.prepare(
            kube, args.peering, list(args.namespace), bool(args.all_namespaces)
        )
    finally:
        await kube.close()
