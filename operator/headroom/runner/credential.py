"""The account's credential, kept away from the agent's tools.

Claude Code runs tools (Bash, a repository's test suite, MCP servers) as its own user, and a
tool can read any environment variable of the pod through /proc/<pid>/environ. So the token
or API key is never a variable of the agent container, and its Secret is not mounted there:

1. `headroom credential`, the pod's first init container, copies the runtime Secret's key
   onto a memory-backed volume shared with the agent container (`stage_main`);
2. the runner reads that file and unlinks it before Claude Code starts (`take`), and makes
   itself undumpable, so that its /proc entries (memory, descriptors) are root's;
3. Claude Code gets the value on a pipe it inherits, named by CLAUDE_CODE_OAUTH_TOKEN_FILE_
   DESCRIPTOR or CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR (`hand_over`); it reads the pipe to its
   end at start-up, before any tool runs, so the pipe is empty from then on.

Outside a pod (the runner's own tests, a developer's shell) the credential may come from the
usual variable instead; it is handed over the same way and left out of Claude Code's
environment."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from headroom.contract import pod as c
from headroom.core.accounts import CredentialType

ENV_OF_TYPE = {CredentialType.OAUTH_TOKEN: c.OAUTH_TOKEN_ENV, CredentialType.API_KEY: c.API_KEY_ENV}
FD_ENV_OF_TYPE = {
    CredentialType.OAUTH_TOKEN: c.OAUTH_TOKEN_FD_ENV,
    CredentialType.API_KEY: c.API_KEY_FD_ENV,
}
PR_SET_DUMPABLE = 4
MAX_BYTES = 64 * 1024  # far above any token; a pipe takes this much without a reader


class CredentialError(ValueError):
    """The staged credential is missing or unusable; the message says which and why."""


@dataclass(frozen=True)
class Credential:
    type: CredentialType
    value: str = field(repr=False)


def take(env: Mapping[str, str]) -> Credential | None:
    """The staged credential (read, then unlinked), else one from the usual variable, else
    None (a CredentialsFile account, or no credential at all)."""
    staged = env.get(c.STAGED_CREDENTIAL)
    if staged:
        return _take_staged(Path(staged), env.get(c.STAGED_CREDENTIAL_TYPE, ""))
    for kind, name in ENV_OF_TYPE.items():
        if env.get(name):
            return Credential(kind, env[name])
    return None


def _take_staged(path: Path, kind: str) -> Credential:
    try:
        credential_type = CredentialType(kind)
    except ValueError:
        raise CredentialError(f"{c.STAGED_CREDENTIAL_TYPE} is {kind!r}") from None
    if credential_type not in FD_ENV_OF_TYPE:
        raise CredentialError(f"{c.STAGED_CREDENTIAL_TYPE} {kind} is not handed over by file")
    try:
        raw = path.read_bytes()[:MAX_BYTES]
        path.unlink()
    except OSError as exc:
        raise CredentialError(f"{c.STAGED_CREDENTIAL} {path}: {exc.strerror or exc}") from None
    value = raw.decode("utf-8", errors="replace").strip()
    if not value:
        raise CredentialError(f"{c.STAGED_CREDENTIAL} {path} is empty")
    return Credential(credential_type, value)


def forbid_dumping() -> bool:
    """Make this process undumpable: its /proc/<pid>/{mem,environ,fd} become root's, out of
    reach of the tools that run as the same user. False where the call is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def hand_over(credential: Credential | None, env: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """Claude Code's environment (no credential variable in it, whatever the pod's sources
    said) and the read end of a pipe holding the credential (-1 without one). The caller
    passes that descriptor to the child and closes it after the start."""
    child = {k: v for k, v in env.items() if k not in c.CREDENTIAL_ENV}
    for name in (*FD_ENV_OF_TYPE.values(), c.STAGED_CREDENTIAL, c.STAGED_CREDENTIAL_TYPE):
        child.pop(name, None)
    if credential is None:
        return child, -1
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, credential.value.encode("utf-8") + b"\n")
    finally:
        os.close(write_end)
    os.set_inheritable(read_end, True)
    child[FD_ENV_OF_TYPE[credential.type]] = str(read_end)
    return child, read_end


USAGE = """usage: headroom credential

The first init container of an agent pod: copies the account's credential from the runtime
Secret (HEADROOM_CREDENTIAL_SOURCE, mounted in this container only) to the memory-backed
file HEADROOM_STAGED_CREDENTIAL, which the agent container's runner reads and unlinks.
Environment only, no flags."""


def stage_main(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    if argv and argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0
    env = os.environ if env is None else env
    source, target = env.get(c.CREDENTIAL_SOURCE), env.get(c.STAGED_CREDENTIAL)
    if not source or not target:
        print(f"{c.CREDENTIAL_SOURCE} and {c.STAGED_CREDENTIAL} must be set", file=sys.stderr)
        return 1
    try:
        value = Path(source).read_bytes()[:MAX_BYTES]
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(value)
    except OSError as exc:
        # The path only: never the value.
        print(f"cannot stage the credential: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


main = stage_main
