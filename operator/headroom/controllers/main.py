"""`headroom operator`: flags, kopf settings, and the background tasks of the Runtime."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import kopf
from prometheus_client import start_http_server

from headroom.controllers import accounts as _accounts  # noqa: F401  (registers handlers)
from headroom.controllers import sessions as _sessions  # noqa: F401  (registers handlers)
from headroom.controllers.context import install, installed
from headroom.core.accounts import Account, AccountPhase, account_state
from headroom.core.durations import parse_duration
from headroom.core.session import RetryPolicy
from headroom.kube.client import Kube, KubeError
from headroom.kube.manifests import PodSettings
from headroom.reconcilers import account as account_reconciler
from headroom.reconcilers import metrics
from headroom.reconcilers import session as session_reconciler
from headroom.reconcilers.runtime import Runtime, Settings

log = logging.getLogger("headroom")


def parse_args(argv: list[str]) -> argparse.Namespace:
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
        "--peering", default="", help="kopf peering object name for HA ('' = standalone)"
    )
    p.add_argument("--priority", type=int, default=0, help="peering priority of this replica")
    p.add_argument("--agent-image", default=PodSettings.default_image, help="default agent image")
    p.add_argument(
        "--anthropic-base-url",
        default=None,
        help="ANTHROPIC_BASE_URL for agent pods (a stand-in API in tests and demos)",
    )
    p.add_argument("--agent-node-selector", default="{}", help="JSON nodeSelector for agent pods")
    p.add_argument("--agent-tolerations", default="[]", help="JSON tolerations for agent pods")
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
        "--min-wall",
        default="30s",
        help="shortest wall, even when the reported reset time is already past",
    )
    p.add_argument(
        "--drill-duration", default="2m", help="how long a drill treats an account as walled"
    )
    p.add_argument("--log-format", choices=["plain", "json"], default="plain")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        retry=RetryPolicy(
            base_backoff=parse_duration(args.backoff),
            max_backoff=parse_duration(args.max_backoff),
            max_failures=args.max_failures,
            suspected_wall=parse_duration(args.suspected_wall),
            min_wall=parse_duration(args.min_wall),
        ),
        pods=PodSettings(
            default_image=args.agent_image,
            anthropic_base_url=args.anthropic_base_url,
            node_selector=dict(json.loads(args.agent_node_selector)),
            tolerations=tuple(json.loads(args.agent_tolerations)),
        ),
        drill_duration=parse_duration(args.drill_duration),
    )


_SETTINGS: Settings | None = None
_ARGS: argparse.Namespace | None = None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    assert _SETTINGS is not None and _ARGS is not None
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    if _ARGS.peering:
        settings.peering.name = _ARGS.peering
        settings.peering.priority = _ARGS.priority
        settings.peering.mandatory = True
        settings.peering.clusterwide = bool(_ARGS.all_namespaces)
    else:
        settings.peering.standalone = True
    kube = await Kube.connect()
    if _ARGS.peering:
        await _ensure_peerings(kube, _ARGS)
    rt = Runtime(kube, _SETTINGS)
    rt.reconcile_session = session_reconciler.reconcile
    rt.reconcile_account = account_reconciler.reconcile
    install(rt)
    rt.background_jobs = [_run_wakeups, _flush_accounts, _export_session_phases]
    log.info("headroom operator started; it needs no Claude account of its own")


async def _ensure_peerings(kube: Kube, args: argparse.Namespace) -> None:
    """kopf waits forever, paused, while its peering object is missing: make it. Namespace
    patterns (globs, negations) name no object to create; those need one made by hand."""
    exact = [ns for ns in args.namespace if not set(ns) & set("*?[]!,")]
    for namespace in [None] if args.all_namespaces else exact:
        where = namespace or "cluster-wide"
        try:
            if await kube.ensure_peering(namespace, args.peering):
                log.info("created kopf peering object %r (%s)", args.peering, where)
        except KubeError as exc:
            # 404: kopf's peering CRDs are not installed (manifests/kopf/peering-crds.yaml).
            log.error("cannot create kopf peering object %r (%s): %s", args.peering, where, exc)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    rt = installed()
    if rt is not None:
        rt.stop_background()
        await rt.kube.close()


async def _run_wakeups(rt: Runtime) -> None:
    await rt.wakeups.run()


async def _flush_accounts(rt: Runtime) -> None:
    """Coalesce account status refreshes (activeSessions moves with every placement)."""
    while True:
        await asyncio.sleep(rt.settings.account_status_delay)
        dirty, rt.dirty_accounts = rt.dirty_accounts, set()
        for namespace, name in sorted(dirty):
            if name:
                await account_reconciler.reconcile(rt, namespace, name)


async def _export_session_phases(rt: Runtime) -> None:
    while True:
        counts: dict[str, Counter[str]] = {}
        for (namespace, _), phase in list(rt.session_phases.items()):
            counts.setdefault(namespace, Counter())[phase] += 1
        metrics.set_session_phases(counts)
        available: Counter[str] = Counter()
        for namespace in {ns for ns, _ in rt.account_uids}:
            available[namespace] = sum(
                1 for a in rt.roster.accounts(namespace) if _is_available(rt, a)
            )
            metrics.available_accounts.labels(namespace).set(available[namespace])
        await asyncio.sleep(5)


def _is_available(rt: Runtime, account: Account) -> bool:
    return account_state(account, datetime.now(UTC)).phase is AccountPhase.AVAILABLE


def main(argv: list[str]) -> int:
    global _SETTINGS, _ARGS
    args = parse_args(argv)
    _ARGS, _SETTINGS = args, settings_from(args)
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
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
    )
    return 0
