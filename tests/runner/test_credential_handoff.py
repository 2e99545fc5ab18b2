"""The account's credential reaches Claude Code on a pipe only: staged by the `credential`
init container, read and unlinked by the runner, never in a variable of Claude Code's
environment (or of its tools'). The last tests run the pinned CLI against the stand-in."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_pods import Pod

from headroom.contract import pod as c
from headroom.core.accounts import CredentialType
from headroom.runner import credential
from headroom_dev.sandbox.client import SandboxProcess

TOKEN = "sk-ant-oat01-handoff-test-7b1d"
KEY = "sk-ant-api03-handoff-test-90ce"


def staged(tmp_path: Path, value: str, kind: str = "OAuthToken") -> dict[str, str]:
    path = tmp_path / "credential" / "value"
    path.parent.mkdir(exist_ok=True)
    path.write_text(value + "\n")
    return {c.STAGED_CREDENTIAL: str(path), c.STAGED_CREDENTIAL_TYPE: kind}


# -- the pieces --------------------------------------------------------------------------------


def test_a_staged_credential_is_read_once_and_unlinked(tmp_path: Path) -> None:
    env = staged(tmp_path, TOKEN)
    held = credential.take(env)
    assert held == credential.Credential(CredentialType.OAUTH_TOKEN, TOKEN)
    assert not Path(env[c.STAGED_CREDENTIAL]).exists()
    assert TOKEN not in repr(held)


@pytest.mark.parametrize(
    ("kind", "content", "says"),
    [
        ("OAuthToken", "  \n", "is empty"),
        ("Bearer", TOKEN, "HEADROOM_STAGED_CREDENTIAL_TYPE is 'Bearer'"),
        ("CredentialsFile", TOKEN, "not handed over by file"),
    ],
)
def test_an_unusable_staged_credential_is_an_error_that_never_shows_the_value(
    tmp_path: Path, kind: str, content: str, says: str
) -> None:
    with pytest.raises(credential.CredentialError, match=says) as raised:
        credential.take(staged(tmp_path, content, kind))
    assert TOKEN not in str(raised.value)


def test_a_missing_staged_file_names_the_path(tmp_path: Path) -> None:
    env = {c.STAGED_CREDENTIAL: str(tmp_path / "gone"), c.STAGED_CREDENTIAL_TYPE: "APIKey"}
    with pytest.raises(credential.CredentialError, match="gone"):
        credential.take(env)


def test_outside_a_pod_the_usual_variable_is_taken() -> None:
    held = credential.take({c.API_KEY_ENV: KEY, c.OAUTH_TOKEN_ENV: ""})
    assert held == credential.Credential(CredentialType.API_KEY, KEY)
    assert credential.take({c.OAUTH_TOKEN_ENV: ""}) is None


def test_hand_over_leaves_no_credential_variable_and_puts_the_value_on_a_pipe() -> None:
    env = {
        c.OAUTH_TOKEN_ENV: TOKEN,
        c.API_KEY_ENV: "from-an-envFrom-source",
        c.AUTH_TOKEN_ENV: "",
        c.API_KEY_FD_ENV: "9",
        c.STAGED_CREDENTIAL: "/var/run/headroom/credential/value",
        "PATH": "/usr/bin",
    }
    child, fd = credential.hand_over(credential.Credential(CredentialType.OAUTH_TOKEN, TOKEN), env)
    try:
        assert child == {"PATH": "/usr/bin", c.OAUTH_TOKEN_FD_ENV: str(fd)}
        assert stat.S_ISFIFO(os.fstat(fd).st_mode) and os.get_inheritable(fd)
        assert os.read(fd, 1024) == TOKEN.encode() + b"\n"
        assert os.read(fd, 1024) == b""  # the write end is closed: read to the end, then empty
    finally:
        os.close(fd)
    assert credential.hand_over(None, env) == ({"PATH": "/usr/bin"}, -1)


def test_the_init_container_stages_the_key_with_owner_only_access(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_text(KEY)
    target = tmp_path / "staged"
    env = {c.CREDENTIAL_SOURCE: str(source), c.STAGED_CREDENTIAL: str(target)}
    assert credential.stage_main([], env) == 0
    assert target.read_text() == KEY
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_the_init_container_fails_naming_no_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {c.CREDENTIAL_SOURCE: str(tmp_path / "none"), c.STAGED_CREDENTIAL: str(tmp_path / "x")}
    assert credential.stage_main([], env) == 1
    assert "cannot stage the credential" in capsys.readouterr().err
    assert credential.stage_main([], {}) == 1


def test_the_runner_is_undumpable_once_it_holds_the_credential() -> None:
    """prctl(PR_SET_DUMPABLE, 0) in a child process (this test process stays as it is): its
    /proc entries turn root's, which a tool of the same user cannot read."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what /proc/self/status then says
        os.close(read_end)
        ok = credential.forbid_dumping()
        owner = os.stat("/proc/self/environ").st_uid
        os.write(write_end, f"{ok} {owner}".encode())
        os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 64).decode().split()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer == ["True", "0"]


# -- with the pinned CLI -------------------------------------------------------------------------


def holders_probe(secret: str) -> str:
    """A Bash command: every process whose environment holds `secret` (its command line),
    then how many there are."""
    return (
        f"n=0; for f in /proc/[0-9]*/environ; do grep -qaF -- '{secret}' $f 2>/dev/null"
        " && n=$((n+1)) && echo holder: $(tr -c '[:print:]' ' ' < ${f%environ}cmdline);"
        " done; echo holders=$n"
    )


@pytest.mark.cli
# Explicit ids: pytest puts a test's id in PYTEST_CURRENT_TEST, which every process started
# during the test inherits (the stand-in's environment would then hold the value).
@pytest.mark.parametrize(("kind", "secret", "sandbox_kind"), [
    pytest.param("OAuthToken", TOKEN, "oauth", id="oauth"),
    pytest.param("APIKey", KEY, "api_key", id="api-key"),
])  # fmt: skip
def test_claude_code_authenticates_from_the_pipe_and_no_process_environment_holds_it(
    kind: str,
    secret: str,
    sandbox_kind: str,
    sandbox: SandboxProcess,
    make_pod: Callable[..., Pod],
    tmp_path: Path,
) -> None:
    sandbox.add_credential("alice", sandbox_kind, secret)
    # A Bash call of the scripted agent counts the processes whose environment holds the
    # value (the runner's, Claude Code's, the tool's own shell): none may.
    probe = holders_probe(secret)
    sandbox.script_credential(
        "alice",
        [
            {"tools": [{"name": "Bash", "input": {"command": probe},
                        "expect": {"contains": "holders=0"}}]},
            {"text": "Probed."},
        ],
    )  # fmt: skip
    pod = make_pod()
    env = staged(tmp_path, secret, kind)
    run = pod.run({}, HEADROOM_PERMISSION_MODE="bypassPermissions", IS_SANDBOX="1", **env)
    assert run.message["outcome"] == "completed", run.describe()
    assert not Path(env[c.STAGED_CREDENTIAL]).exists()
    (check,) = sandbox.tool_results()
    assert check["ok"], {k: check.get(k) for k in ("content", "reason", "expect", "ok")} | check
    requests = [r for r in sandbox.requests() if str(r["path"]).startswith("/v1/messages")]
    assert requests and {r["credential"] for r in requests} == {"alice"}


@pytest.mark.cli
def test_the_probe_finds_a_credential_that_is_in_an_environment(
    sandbox: SandboxProcess, make_pod: Callable[..., Pod]
) -> None:
    """The control: given the token in a variable (outside a pod), the runner's own
    environment holds it, and the same probe says so. (Claude Code's still does not.)"""
    sandbox.add_credential("alice", "oauth", TOKEN)
    sandbox.script_credential(
        "alice",
        [
            {"tools": [{"name": "Bash", "input": {"command": holders_probe(TOKEN)},
                        "expect": {"contains": "holders=1"}}]},
            {"text": "Probed."},
        ],
    )  # fmt: skip
    run = make_pod().run(
        {c.OAUTH_TOKEN_ENV: TOKEN}, HEADROOM_PERMISSION_MODE="bypassPermissions", IS_SANDBOX="1"
    )
    assert run.message["outcome"] == "completed", run.describe()
    (check,) = sandbox.tool_results()
    assert check["ok"] and "headroom agent" in check["content"], check
