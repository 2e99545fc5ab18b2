"""The `headroom` command. Each subcommand lives in its own module, imported only when used,
so `headroom agent` inside an agent pod never loads the operator (and vice versa).

Only what ships is listed here: the stand-in API, the dev volume provisioner and the simulator
live in the separate `headroom-dev` distribution (dev/), which reuses `dispatch` for its own
command."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping

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
    "credential": (
        "headroom.runner.credential",
        "init container of an agent pod: stage the account's credential for the runner",
    ),
    "validate": ("headroom.validate", "check manifests offline against the CRD schemas"),
}


def usage(prog: str = "headroom", table: Mapping[str, tuple[str, str]] = SUBCOMMANDS) -> str:
    lines = [f"usage: {prog} <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {text}" for name, (_, text) in table.items()]
    return "\n".join(lines)


def dispatch(prog: str, table: Mapping[str, tuple[str, str]], argv: list[str] | None) -> int:
    """Run the subcommand named by argv[0] from `table`, importing only its module."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage(prog, table))
        return 0
    name, rest = args[0], args[1:]
    if name not in table:
        print(f"{prog}: unknown command {name!r}\n\n{usage(prog, table)}", file=sys.stderr)
        return 2
    module = importlib.import_module(table[name][0])
    result: int = module.main(rest)
    return result


def main(argv: list[str] | None = None) -> int:
    return dispatch("headroom", SUBCOMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
