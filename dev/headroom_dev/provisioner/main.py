"""`headroom-dev provisioner`: DEV/TEST ONLY. Provisions the local cluster's claims as
hostPath volumes under one directory of this machine (StorageClass headroom-local, the
cluster's default). A real node's kubelet mounts them; in a real cluster a CSI driver does
this job instead."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

DESCRIPTION = """\
DEVELOPMENT AND TEST ONLY - never run this against a real cluster.

Creates StorageClass headroom-local (the default class) and a hostPath PersistentVolume for
each Pending claim of it, under --volumes-root; deletes a Released volume and its directory.
The volumes are only usable by a node on this machine (hack/node)."""

# Outside any git checkout on purpose: an agent whose workspace sat inside this repository
# would see (and could commit to) the Headroom repository itself. Shared by every clone, as
# the local cluster is.
CACHE = Path(
    os.environ.get("HEADROOM_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headroom"
)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="headroom-dev provisioner",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig (default: $KUBECONFIG, else .local/kubeconfig)",
    )
    p.add_argument(
        "--volumes-root",
        type=Path,
        default=CACHE / "volumes",
        help="where volume directories are created (default: %(default)s)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def default_kubeconfig() -> Path | None:
    if os.environ.get("KUBECONFIG"):
        return None  # the client reads $KUBECONFIG itself
    local = Path(".local/kubeconfig")
    return local if local.exists() else None


def inside_git_checkout(path: Path) -> Path | None:
    """Claude Code looks for the enclosing git repository: a workspace inside a checkout
    would hand the agent that checkout (and its history) instead of an empty workspace."""
    resolved = path.resolve()
    return next((p for p in (resolved, *resolved.parents) if (p / ".git").exists()), None)


def main(argv: list[str]) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s provisioner %(levelname)s %(message)s",
    )
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from headroom_dev.provisioner.kube import Kube, log
    from headroom_dev.provisioner.provisioner import Provisioner

    checkout = inside_git_checkout(args.volumes_root)
    if checkout is not None:
        print(f"{args.volumes_root} is inside the git checkout {checkout}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    provisioner = Provisioner(Kube(args.kubeconfig or default_kubeconfig()), args.volumes_root)
    provisioner.ensure_class()
    for name, target in (("claims", provisioner.run_claims), ("volumes", provisioner.run_volumes)):
        threading.Thread(target=target, args=(stop,), name=name, daemon=True).start()
    log.info("provisioning StorageClass headroom-local under %s", provisioner.root)
    while not stop.wait(1.0):
        pass
    return 0
