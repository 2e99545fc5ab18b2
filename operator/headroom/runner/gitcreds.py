"""The repo-local git config that lets git (and later the agent's own `git push`) authenticate
with a credential mounted as a file, without the credential ever being a git argument, an
environment variable, a URL or a config value. Pure functions: no I/O."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Literal
from urllib.parse import urlsplit

# Forges accept any user name with a token as the password; this one is what GitHub documents
# for app tokens. A user name in the repository URL wins over it (the helper leaves it alone).
TOKEN_USERNAME = "x-access-token"


@dataclass(frozen=True)
class Credentials:
    kind: Literal["token", "ssh"]
    file: PurePosixPath
    known_hosts: PurePosixPath | None = None


def credential_scope(url: str) -> str:
    """`scheme://host[:port]`: the helper answers only for the repository's own server, so
    a redirect or a submodule elsewhere never receives the token."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"


def credential_helper(token_file: PurePath) -> str:
    """A shell credential helper that reads the token from the mounted file when git asks.

    The token exists only inside the shell that git starts for the helper and on the pipe back
    to git: `cat` gets the path as its argument, `printf` is a shell builtin (no exec, so the
    token is in no process's argv), and store/erase requests are ignored, so nothing writes it
    anywhere. The Secret can rotate under a running agent: every request reads the file again.
    """
    path = shlex.quote(str(token_file))
    return (
        '!f() { test "$1" = get || return 0; u=; '
        "while IFS= read -r l; do case $l in username=?*) u=1;; esac; done; "
        f"t=$(cat {path}) || return 1; "
        f'test -n "$u" || echo username={TOKEN_USERNAME}; '
        "printf 'password=%s\\n' \"$t\"; }; f"
    )


def ssh_command(credentials: Credentials) -> str:
    """core.sshCommand for a mounted private key: only that key, never a prompt, and the
    server's key checked against the mounted known hosts when there are some."""
    parts = [
        "ssh",
        "-i",
        shlex.quote(str(credentials.file)),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
    ]
    if credentials.known_hosts is not None:
        known = shlex.quote(str(credentials.known_hosts))
        parts += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
    else:
        # Without known hosts there is nothing to check against: trust on first use, which
        # BatchMode would otherwise turn into a refusal.
        parts += ["-o", "StrictHostKeyChecking=accept-new"]
    return " ".join(parts)


def repo_config(url: str, credentials: Credentials | None) -> list[tuple[str, str]]:
    """The (key, value) pairs to write into the clone's .git/config, in order."""
    if credentials is None:
        return []
    if credentials.kind == "ssh":
        return [("core.sshCommand", ssh_command(credentials))]
    scope = credential_scope(url)
    return [
        # An empty helper first discards helpers from system or user config (a `store`
        # helper there would be handed the token to write to disk).
        (f"credential.{scope}.helper", ""),
        (f"credential.{scope}.helper", credential_helper(credentials.file)),
    ]
