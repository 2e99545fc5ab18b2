"""The `headroom-dev` command: the stand-ins that `make run`, the tests and the benchmarks use.

It shares the production command's dispatch, so each subcommand still imports only its own
module (the simulator never loads aiohttp, the stand-in API never loads the kube client)."""

from __future__ import annotations

import sys

from headroom.cli import dispatch

# subcommand -> (module, one-line help). Each module exposes `main(argv: list[str]) -> int`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sandbox-api": ("headroom_dev.sandbox.main", "serve a local stand-in for the Anthropic API"),
    "provisioner": (
        "headroom_dev.provisioner.main",
        "provision the local cluster's claims as hostPath volumes",
    ),
    "simulate": ("headroom_dev.sim.__main__", "compare placement policies on seeded traces"),
    "crdgen": ("headroom_dev.crdgen.main", "derive the ClusterClaudeAccount CRD from the other"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("headroom-dev", SUBCOMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
