"""Start a pod's process with its nested volume mounts bind-mounted, in a private mount
namespace of its own (nothing is mounted on the host; the mounts vanish with the process).

    python -m headroom_dev.executor.bindexec SRC DST [SRC DST ...] -- PROGRAM [ARGS...]
    python -m headroom_dev.executor.bindexec --probe

As root this needs only a new mount namespace; otherwise it maps the current user to itself
in a new user namespace (where the kernel allows unprivileged user namespaces), so the
process keeps its own uid. `--probe` exits 0 when binding works on this machine.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_private_mounts() -> None:
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    else:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUSER), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    # Our binds must not propagate back to the host's mount namespace.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def bind(source: str, target: str) -> None:
    if os.path.isfile(source) and not os.path.exists(target):
        Path(target).touch()
    _check(
        _libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None),
        f"bind {source} -> {target}",
    )


def probe() -> int:
    with tempfile.TemporaryDirectory(prefix="headroom-bind-probe-") as tmp:
        source, target = Path(tmp, "source"), Path(tmp, "target")
        source.mkdir()
        target.mkdir()
        (source / "seen").touch()
        pid = os.fork()
        if pid == 0:  # the probe's own namespace dies with this child
            try:
                enter_private_mounts()
                bind(str(source), str(target))
                os._exit(0 if (target / "seen").exists() else 1)
            except OSError as exc:
                print(exc, file=sys.stderr)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        return 0 if os.waitstatus_to_exitcode(status) == 0 else 1


def main(argv: list[str]) -> int:
    if argv == ["--probe"]:
        return probe()
    split = argv.index("--")
    pairs, program = argv[:split], argv[split + 1 :]
    try:
        enter_private_mounts()
        for source, target in zip(pairs[::2], pairs[1::2], strict=True):
            bind(source, target)
    except OSError as exc:
        print(f"headroom-dev executor: cannot emulate nested mounts: {exc}", file=sys.stderr)
        return 126
    os.execv(program[0], program)  # noqa: S606 - replacing ourselves is the point
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
