"""The `headroom` command. Each subcommand lives in its own module, imported only when used,
so `headroom agent` inside an agent pod never loads the operator (and vice versa)."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help). Each module exposes `main(argv: list[str]) -> int`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": (
        "headroom.controllers.main",
        "run the operator (kopf) against the current cluster",
    ),
    "agent": ("headroom.runner.main", "run Claude Code inside an agent pod and report the outcome"),
    "clone": (
        "headroom.runner.clone",
        "init container of an agent pod: clone the session's repositories once",
    ),
    "sandbox-api": ("headroom.sandbox.main", "serve a local stand-in for the Anthropic API"),
    "validate": ("headroom.validate", "check manifests offline against the CRD schemas"),
    "executor": ("headroom.executor.main", "dev/test only: run pods bound to a local node"),
}


def usage() -> str:
    lines = ["usage: headroom <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"headroom: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
