"""`headroom-dev executor`: DEV/TEST ONLY. Runs the pods bound to one local Node as local
processes and provisions hostPath volumes, for the local control plane that has no kubelet.
See docs/executor.md."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

DESCRIPTION = """\
DEVELOPMENT AND TEST ONLY - never run this against a real cluster.

Stands in for a kubelet on the local control plane: registers a Node (label
headroom.dev/executor=true, taint headroom.dev/executor=true:NoSchedule), runs the init
containers and then the single container of every pod bound to it as local processes (env,
Secrets and volumes mapped to local directories; no isolation, no image) and reports pod
status as a kubelet does. Also a dev PVC provisioner: StorageClass headroom-local (default
class) backed by hostPath directories. See docs/executor.md."""


# Outside any git checkout on purpose: an agent whose workspace sat inside this repository
# would see (and could commit to) the Headroom repository itself. Shared by every clone, as
# the local cluster is.
CACHE = Path(
    os.environ.get("HEADROOM_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headroom"
)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="headroom-dev executor",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig (default: $KUBECONFIG, else .local/kubeconfig)",
    )
    p.add_argument("--node-name", default="headroom-local", help="Node to register and serve")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=CACHE / "executor",
        help="per-pod directories: logs, termination messages, emptyDirs (default: %(default)s)",
    )
    p.add_argument(
        "--volumes-root",
        type=Path,
        default=CACHE / "volumes",
        help="where the provisioner creates volume directories (default: %(default)s)",
    )
    p.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="extra directory to look up commands in (after the venv's bin)",
    )
    p.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="pass this variable of the executor's environment to every process",
    )
    p.add_argument("--cpu", default=None, help="node cpu capacity (default: host cpus)")
    p.add_argument("--memory", default=None, help="node memory capacity (default: host memory)")
    p.add_argument("--max-pods", default="32", help="node pod capacity")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="extra node label")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--provisioner-only",
        action="store_true",
        help="only run the PVC provisioner (no node, no pods)",
    )
    mode.add_argument(
        "--no-provisioner",
        action="store_true",
        help="only run pods (another process provisions volumes)",
    )
    p.add_argument(
        "--remove-node-on-exit",
        action="store_true",
        help="delete the Node when stopping (test sessions with throwaway nodes)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)  # fmt: skip


def default_kubeconfig() -> Path | None:
    if os.environ.get("KUBECONFIG"):
        return None  # the client reads $KUBECONFIG itself
    local = Path(".local/kubeconfig")
    return local if local.exists() else None


def warn_if_in_git_checkout(path: Path) -> None:
    """Claude Code looks for the enclosing git repository: a workspace inside a checkout
    would hand the agent that checkout (and its history) instead of an empty workspace."""
    resolved = path.resolve()
    for parent in (resolved, *resolved.parents):
        if (parent / ".git").exists():
            logging.getLogger("headroom_dev.executor").warning(
                "%s is inside the git checkout %s: agents would see that repository", path, parent
            )
            return


def can_bind() -> bool:
    probe = [sys.executable, "-m", "headroom_dev.executor.bindexec", "--probe"]
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        logging.getLogger("headroom_dev.executor").warning(
            "no private mount namespace here (%s): nested volume mounts will be emulated "
            "with symlinks", done.stderr.strip() or f"exit {done.returncode}",
        )  # fmt: skip
    return done.returncode == 0


def main(argv: list[str]) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s executor %(levelname)s %(message)s",
    )
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if sys.platform != "linux":
        print("headroom-dev executor runs on Linux only", file=sys.stderr)
        return 2

    from headroom_dev.executor.kube import Kube, log
    from headroom_dev.executor.node import NodeAgent, NodeSpec
    from headroom_dev.executor.pods import PodManager, Settings
    from headroom_dev.executor.provisioner import Provisioner

    kube = Kube(args.kubeconfig or default_kubeconfig())
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threads: list[threading.Thread] = []

    def spawn(name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        thread.start()
        threads.append(thread)

    if not args.no_provisioner:
        warn_if_in_git_checkout(args.volumes_root)
        provisioner = Provisioner(kube, args.volumes_root)
        provisioner.ensure_class()
        spawn("claims", provisioner.run_claims)
        spawn("volumes", provisioner.run_volumes)
        log.info("provisioning StorageClass headroom-local under %s", provisioner.root)

    node = manager = None
    if not args.provisioner_only:
        warn_if_in_git_checkout(args.state_dir)
        venv_bin = str(Path(sys.prefix) / "bin")
        search = [
            venv_bin,
            *(str(Path(p).resolve()) for p in args.path),
            *os.environ.get("PATH", "").split(os.pathsep),
        ]
        spec = NodeSpec(name=args.node_name, pods=args.max_pods,
                        labels=dict(kv.split("=", 1) for kv in args.label))  # fmt: skip
        if args.cpu:
            spec.cpu = args.cpu
        if args.memory:
            spec.memory = args.memory
        node = NodeAgent(kube, spec)
        node.register()
        settings = Settings(
            node=args.node_name,
            state_dir=(args.state_dir / args.node_name).resolve(),
            search_path=[d for d in dict.fromkeys(search) if d],
            pass_env={k: os.environ[k] for k in args.pass_env if k in os.environ},
            can_bind=can_bind(),
        )
        manager = PodManager(kube, settings)
        spawn("node", node.heartbeat)
        spawn("pods", manager.run)
        log.info("serving pods of node %s (state in %s)", args.node_name, settings.state_dir)

    while not stop.wait(1.0):
        pass
    if manager is not None:
        manager.shutdown()
    if node is not None and args.remove_node_on_exit:
        node.remove()
        log.info("node %s removed", args.node_name)
    return 0
