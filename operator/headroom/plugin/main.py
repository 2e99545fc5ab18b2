"""`kubectl headroom`: flags as kubectl users expect them, one subcommand per job."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from headroom.plugin import commands
from headroom.plugin.cluster import Cluster, Target, connect, context_namespace
from headroom.plugin.errors import PluginError

DESCRIPTION = (
    "Headroom at a glance: accounts, sessions and why they are where they are. It writes "
    "only a drill's annotations and spec.paused of a ClaudeAccount, and never reads Secrets."
)


ACCOUNT_HELP = "NAME (a ClaudeAccount of the namespace) or cca/NAME (a ClusterClaudeAccount)"
CONNECTION_FLAGS = (
    (("-n", "--namespace"), "namespace (default: the context's)"),
    (("--context",), "kubeconfig context (default: the current one)"),
    (("--kubeconfig",), "kubeconfig file (default: KUBECONFIG, else ~/.kube/config)"),
)


def connection_flags(p: argparse.ArgumentParser, default: str | None) -> None:
    for names, text in CONNECTION_FLAGS:
        p.add_argument(*names, default=default, help=text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl headroom", description=DESCRIPTION)
    connection_flags(p, None)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("status", help="accounts, their windows and resets; sessions; the queue")
    drill = sub.add_parser(
        "drill", help="treat an account as walled for a while: its sessions move"
    )
    drill.add_argument("account", help=ACCOUNT_HELP)
    drill.add_argument(
        "--for", dest="duration", help="how long, 1s to 24h (default: the operator's)"
    )
    drill.add_argument(
        "--wait",
        type=float,
        default=15,
        help="seconds to wait for the operator to start it (0: none)",
    )
    pause = sub.add_parser("pause", help="place no new sessions on an account")
    pause.add_argument("account", help=ACCOUNT_HELP)
    sub.add_parser("resume", help="undo pause").add_argument("account", help=ACCOUNT_HELP)
    why = sub.add_parser("why", help="a session's conditions, last outcome, swaps and Events")
    why.add_argument("session")
    logs = sub.add_parser("logs", help="the log of a session's current attempt")
    logs.add_argument("session")
    logs.add_argument("-c", "--container", default=commands.AGENT_CONTAINER)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int, help="only the last N lines")
    # Written after the subcommand too (`kubectl headroom status -n agents`), as with kubectl;
    # SUPPRESS keeps a value given before the subcommand.
    for child in sub.choices.values():
        connection_flags(child, argparse.SUPPRESS)
    return p


def action(args: argparse.Namespace, ns: str) -> Callable[[Cluster], Awaitable[str]]:
    if args.command == "status":
        return lambda c: commands.status(c, ns)
    if args.command == "why":
        return lambda c: commands.why(c, ns, args.session)
    if args.command == "drill":
        return lambda c: commands.drill(c, ns, args.account, args.duration, args.wait)
    if args.command in {"pause", "resume"}:
        return lambda c: commands.pause(c, ns, args.account, args.command == "pause")
    return lambda c: logs(c, ns, args)


async def logs(cluster: Cluster, namespace: str, args: argparse.Namespace) -> str:
    await commands.logs(cluster, namespace, args.session, args.container, args.follow, args.tail)
    return ""


async def run(args: argparse.Namespace) -> str:
    target = Target(args.kubeconfig, args.context, args.namespace)
    job = action(args, context_namespace(target))
    cluster = await connect(target)
    try:
        return await job(cluster)
    finally:
        await cluster.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        sys.stdout.write(asyncio.run(run(args)))
    except PluginError as exc:
        print(f"kubectl headroom {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
