"""`headroom-dev sandbox-api`: start the stand-in and say where it listens.

    headroom-dev sandbox-api [--config FILE] [--host 127.0.0.1] [--port 0] [--port-file PATH]
                         [--oauth-token NAME=SECRET]... [--api-key NAME=SECRET]...
                         [--marker WORD] [--reply TEXT] [--quiet]

Once listening it prints one JSON line, {"port": N, "url": "http://HOST:N"}, on stdout and
writes the same to --port-file if given, so a caller that asked for port 0 can find it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from headroom_dev.sandbox.config import (
    ConfigError,
    CredentialSpec,
    SandboxConfig,
    load_file,
    parse_config,
    parse_credential,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="headroom-dev sandbox-api",
        description="Serve a local stand-in for the Anthropic Messages API.",
    )
    parser.add_argument("--config", type=Path, help="JSON or YAML file with credentials")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help='write {"port": N, "url": ...} here')
    parser.add_argument(
        "--oauth-token",
        action="append",
        default=[],
        metavar="NAME=SECRET",
        help="add an OAuth-token credential (visible in the process list: prefer --config "
        "with secretEnv outside tests)",
    )
    parser.add_argument("--api-key", action="append", default=[], metavar="NAME=SECRET")
    parser.add_argument("--marker", help="word whose presence in earlier turns is recorded")
    parser.add_argument("--reply", help="the text every answer carries")
    parser.add_argument("--quiet", action="store_true", help="log only warnings")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> SandboxConfig:
    config = parse_config(load_file(args.config)) if args.config else SandboxConfig()
    extra: list[CredentialSpec] = []
    for kind, values in (("oauth", args.oauth_token), ("api_key", args.api_key)):
        for value in values:
            name, sep, secret = value.partition("=")
            if not sep:
                raise ConfigError(f"--{kind.replace('_', '-')} takes NAME=SECRET")
            extra.append(parse_credential({"name": name, "kind": kind, "secret": secret}))
    names = [c.name for c in (*config.credentials, *extra)]
    if len(set(names)) != len(names):
        raise ConfigError("credential names must be unique")
    return SandboxConfig(
        credentials=(*config.credentials, *extra),
        marker=args.marker if args.marker is not None else config.marker,
        reply=args.reply if args.reply is not None else config.reply,
    )


async def serve(config: SandboxConfig, host: str, port: int, port_file: Path | None) -> None:
    from aiohttp import web

    from headroom_dev.sandbox.server import create_app

    # Bind first, so the port we announce is the one already listening.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    # A stalled answer must not hold up shutdown: tests stop the server between sessions.
    await web.SockSite(runner, sock, shutdown_timeout=1.0).start()
    announce(host, bound, port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def announce(host: str, port: int, port_file: Path | None) -> None:
    shown = f"[{host}]" if ":" in host else host
    line = json.dumps({"port": port, "url": f"http://{shown}:{port}"})
    if port_file is not None:
        partial = port_file.with_name(port_file.name + ".partial")
        partial.write_text(line + "\n", "utf-8")
        os.replace(partial, port_file)  # readers never see a half-written file
    print(line, flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s sandbox-api %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = build_config(args)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"headroom-dev sandbox-api: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(serve(config, args.host, args.port, args.port_file))
        except OSError as exc:
            print(
                f"headroom-dev sandbox-api: cannot listen on {args.host}:{args.port}: {exc}",
                file=sys.stderr,
            )
            return 1
    return 0
