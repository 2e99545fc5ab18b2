"""`headroom clone` against a real git server on loopback (tests/support/git_server.py) and
the real git binary: refs, depth, work branches, idempotence, failures, and the token, which
must reach git only through the credential helper and appear nowhere else."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from tests.support.git_server import GitServer

from headroom.contract.termination import Outcome, TerminationMessage, parse
from headroom.runner import clone, gitcreds

FILES = {"README.md": "hello\n", "src/app.py": "print('v1')\n"}


@dataclass
class Workspace:
    """A pod's view: the workspace, the mounted token file, the termination log."""

    root: Path
    token_file: Path
    log: Path
    server: GitServer
    calls: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)

    def repo(self, name: str = "app", **fields: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "url": self.server.url(name),
            "ref": None,
            "path": f"/workspace/{name}",
            "depth": None,
            "branch": None,
            "credentials": {"kind": "token", "file": str(self.token_file), "knownHosts": None},
        }
        return {**entry, **fields}

    def env(self, repos: list[dict[str, Any]], **extra: str) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root.parent / "home"),
            "HEADROOM_REPOS": json.dumps(repos),
            "HEADROOM_WORKDIR": str(self.root),
            "HEADROOM_TERMINATION_LOG": str(self.log),
            "GIT_SSL_CAINFO": str(self.server.ca_file),
            **extra,
        }

    def run(self, *repos: dict[str, Any], **extra: str) -> tuple[int, TerminationMessage]:
        code = clone.run(self.env(list(repos), **extra))
        message = parse(self.log.read_text()).message
        assert message is not None
        return code, message


@pytest.fixture
def ws(
    tmp_path: Path, git_server: GitServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    root = tmp_path / "workspace"
    root.mkdir()
    (tmp_path / "home").mkdir()
    secret = tmp_path / "secret"
    secret.mkdir()
    token_file = secret / "token"
    assert git_server.token is not None
    token_file.write_text(git_server.token + "\n")  # Secrets often end in a newline
    git_server.create_repo("app", FILES)
    workspace = Workspace(root, token_file, tmp_path / "termination-log", git_server)
    real_popen = subprocess.Popen

    def recording_popen(args: Any, *rest: Any, **kwargs: Any) -> Any:
        workspace.calls.append((list(args), dict(kwargs.get("env") or {})))
        return real_popen(args, *rest, **kwargs)

    # Every process started while the test runs (clone's git and the server's http-backend):
    # none may carry the token in its arguments or environment.
    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    yield workspace


def git_in(repo: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def assert_no_token(ws: Workspace, token: str, *texts: str) -> None:
    """The token is in no output, no file of the workspace (any .git file included), no
    argument or environment of a started process, and no URL the server was asked for."""
    for text in texts:
        assert token not in text
    assert token not in ws.log.read_text()
    for path in ws.root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert token.encode() not in path.read_bytes(), path
    for argv, env in ws.calls:
        assert not any(token in arg for arg in argv), argv
        assert not any(token in value for value in env.values()), argv
    assert not any(token in request.path for request in ws.server.requests)


def staging_is_empty(ws: Workspace) -> bool:
    return not any((ws.root / ".headroom").glob("clone-*"))


# -- cloning -----------------------------------------------------------------------------------


def test_https_clone_with_token_from_file(ws: Workspace, capfd: pytest.CaptureFixture[str]) -> None:
    code, message = ws.run(ws.repo())

    assert (code, message.outcome) == (0, Outcome.COMPLETED)
    repo = ws.root / "app"
    assert (repo / "README.md").read_text() == "hello\n"
    assert git_in(repo, "remote", "get-url", "origin") == ws.server.url("app")
    assert any(r.authorized and "upload-pack" in r.path for r in ws.server.requests)
    out, err = capfd.readouterr()
    assert f"cloned {ws.server.url('app')} at ref HEAD" in err
    assert "into /workspace/app" in err
    assert staging_is_empty(ws)
    assert ws.server.token
    assert_no_token(ws, ws.server.token, out, err)


def test_clone_at_tag(ws: Workspace) -> None:
    first = ws.server.rev("app", "main")
    ws.server.commit("app", {"README.md": "later\n"})
    ws.server.tag("app", "v1.0", first)

    code, _ = ws.run(ws.repo(ref="v1.0"))

    assert code == 0
    repo = ws.root / "app"
    assert git_in(repo, "rev-parse", "HEAD") == first
    assert (repo / "README.md").read_text() == "hello\n"


@pytest.mark.parametrize("depth", [None, 1])
def test_clone_at_commit_sha_that_is_no_branch_tip(ws: Workspace, depth: int | None) -> None:
    first = ws.server.rev("app", "main")
    ws.server.commit("app", {"README.md": "second\n"})
    ws.server.commit("app", {"README.md": "third\n"})

    code, message = ws.run(ws.repo(ref=first, depth=depth))

    assert (code, message.detail) == (0, "1 repository in place (1 cloned, 0 kept)")
    repo = ws.root / "app"
    assert git_in(repo, "rev-parse", "HEAD") == first
    assert (repo / "README.md").read_text() == "hello\n"
    shallow = git_in(repo, "rev-parse", "--is-shallow-repository")
    assert shallow == ("true" if depth else "false")


def test_clone_with_depth(ws: Workspace) -> None:
    for n in range(3):
        ws.server.commit("app", {"count.txt": f"{n}\n"})

    code, _ = ws.run(ws.repo(depth=1))

    assert code == 0
    repo = ws.root / "app"
    assert git_in(repo, "rev-list", "--count", "HEAD") == "1"
    assert (repo / "count.txt").read_text() == "2\n"


def test_work_branch_is_created_from_ref(ws: Workspace, capfd: pytest.CaptureFixture[str]) -> None:
    base = ws.server.commit("app", {"feature.txt": "base\n"}, branch="develop")

    code, _ = ws.run(ws.repo(ref="develop", branch="fix/issue-7"))

    assert code == 0
    repo = ws.root / "app"
    assert git_in(repo, "symbolic-ref", "--short", "HEAD") == "fix/issue-7"
    assert git_in(repo, "rev-parse", "HEAD") == base
    assert "on work branch fix/issue-7" in capfd.readouterr().err


def test_clone_over_git_daemon_without_credentials(ws: Workspace) -> None:
    code, _ = ws.run(ws.repo(url=ws.server.git_url("app"), credentials=None, path="/workspace/g"))

    assert code == 0
    assert (ws.root / "g" / "src" / "app.py").read_text() == "print('v1')\n"


def test_clone_from_a_local_path(ws: Workspace) -> None:
    code, message = ws.run(ws.repo(url=str(ws.server.bare("app")), credentials=None))

    assert code == 0, message.detail
    assert (ws.root / "app" / "README.md").read_text() == "hello\n"


def test_server_can_bind_another_address(ws: Workspace, make_git_server: Any) -> None:
    """Agent pods may reach the fixture over a bridge address, not only 127.0.0.1."""
    other: GitServer = make_git_server(host="127.0.0.2")
    other.create_repo("app", FILES)

    code, message = ws.run(ws.repo(url=other.url("app"), credentials=None))

    assert code == 0, message.detail
    assert other.url("app").startswith("http://127.0.0.2:")
    assert other.requests


def test_several_repos_in_order_with_default_path(ws: Workspace) -> None:
    ws.server.create_repo("lib", {"lib.txt": "lib\n"})
    repos = [ws.repo(), {**ws.repo("lib"), "path": None}, ws.repo("lib", path="/workspace/x/y")]

    code, message = ws.run(*repos)

    assert code == 0, message.detail
    assert (ws.root / "lib" / "lib.txt").is_file()
    assert (ws.root / "x" / "y" / "lib.txt").is_file()


def test_no_repositories_is_completed(ws: Workspace) -> None:
    code, message = ws.run()

    assert (code, message.outcome, message.detail) == (
        0,
        Outcome.COMPLETED,
        "no repositories to clone",
    )


# -- idempotence -------------------------------------------------------------------------------


def test_second_run_keeps_existing_clone_untouched(
    ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    assert ws.run(ws.repo(branch="work"))[0] == 0
    repo = ws.root / "app"
    (repo / "README.md").write_text("uncommitted edit\n")
    (repo / "notes.txt").write_text("untracked\n")
    head = git_in(repo, "rev-parse", "HEAD")
    ws.server.commit("app", {"README.md": "upstream moved on\n"})
    before = len(ws.server.requests)
    capfd.readouterr()

    code, message = ws.run(ws.repo(branch="work"))

    assert (code, message.detail) == (0, "1 repository in place (0 cloned, 1 kept)")
    assert "kept existing /workspace/app" in capfd.readouterr().err
    assert (repo / "README.md").read_text() == "uncommitted edit\n"
    assert (repo / "notes.txt").read_text() == "untracked\n"
    assert git_in(repo, "rev-parse", "HEAD") == head
    assert git_in(repo, "rev-parse", "origin/main") == head  # never fetched
    assert len(ws.server.requests) == before  # the server was not even asked


def test_existing_path_of_any_kind_is_kept(ws: Workspace) -> None:
    (ws.root / "app").symlink_to(ws.root / "nowhere")  # even a dangling symlink

    code, _ = ws.run(ws.repo())

    assert code == 0
    assert (ws.root / "app").is_symlink()
    assert not ws.server.requests


def test_half_clone_left_by_a_killed_attempt_is_removed(ws: Workspace) -> None:
    stale = ws.root / ".headroom" / "clone-killed" / "repo"
    stale.mkdir(parents=True)
    (stale / "partial").write_text("x")

    assert ws.run(ws.repo())[0] == 0

    assert not (ws.root / ".headroom" / "clone-killed").exists()
    assert (ws.root / "app" / "README.md").is_file()


# -- failures ----------------------------------------------------------------------------------


def test_wrong_token_fails_with_gits_message_and_no_token_anywhere(
    ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    wrong = "hdrm-canary-wrong-0123456789abcdef"
    ws.token_file.write_text(wrong)

    code, message = ws.run(ws.repo())

    assert (code, message.outcome) == (1, Outcome.FAILED)
    assert message.detail.startswith("RepoCloneFailed: ")
    assert "git clone failed (exit 128): fatal: Authentication failed for" in message.detail
    assert not (ws.root / "app").exists()
    assert staging_is_empty(ws)
    out, err = capfd.readouterr()
    assert_no_token(ws, wrong, out, err)
    assert ws.server.token
    assert_no_token(ws, ws.server.token, out, err)


def test_bad_ref_fails_cleanly(ws: Workspace) -> None:
    code, message = ws.run(ws.repo(ref="no-such-branch"))

    assert code == 1
    assert message.detail.startswith("RepoCloneFailed: repos[0]")
    assert "Remote branch no-such-branch not found in upstream origin" in message.detail
    assert not (ws.root / "app").exists()
    assert staging_is_empty(ws)


def test_unknown_commit_fails_cleanly(ws: Workspace) -> None:
    code, message = ws.run(ws.repo(ref="0" * 40, depth=1))

    assert code == 1
    assert "git fetch failed" in message.detail
    assert "not our ref" in message.detail
    assert not (ws.root / "app").exists()


def test_a_failure_stops_at_that_repo_and_keeps_the_earlier_ones(ws: Workspace) -> None:
    repos = [ws.repo(), ws.repo(path="/workspace/bad", ref="nope"), ws.repo(path="/workspace/c")]

    code, message = ws.run(*repos)

    assert code == 1
    assert message.detail.startswith("RepoCloneFailed: repos[1]")
    assert (ws.root / "app").is_dir()
    assert not (ws.root / "bad").exists()
    assert not (ws.root / "c").exists()


@pytest.mark.parametrize(
    "path",
    [
        "/workspace/../etc/app",
        "../app",
        "app/../../x",
        "/etc/app",
        "/workspace",
        "/workspace/.headroom/app",
        "/workspace/.claude-projects/app",
        "/workspace/app/.git/x",
    ],
)
def test_path_outside_the_workspace_is_refused(ws: Workspace, path: str) -> None:
    code, message = ws.run(ws.repo(path=path))

    assert code == 1
    assert message.detail.startswith(f"RepoCloneFailed: HEADROOM_REPOS[0].path {path!r}")
    assert not ws.server.requests
    assert not [argv for argv, _ in ws.calls if argv[:1] == ["git"]]


def test_symlink_out_of_the_workspace_is_refused(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.root / "link").symlink_to(outside)

    code, message = ws.run(ws.repo(path="/workspace/link/app"))

    assert code == 1
    assert "leads out of the workspace" in message.detail
    assert not list(outside.iterdir())


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"url": "ext::sh -c touch% /tmp/pwned"},
            "url must be an https, http, ssh, git or file URL",
        ),
        ({"url": "--upload-pack=touch /tmp/x"}, "url must be an https"),
        ({"ref": "--upload-pack=x"}, "ref '--upload-pack=x' is not a valid git name"),
        ({"branch": "a b"}, "branch 'a b' is not a valid git name"),
        ({"depth": 0}, "depth must be a positive integer"),
        ({"url": "git@example.com:org/app.git"}, "a token authenticates https or http URLs only"),
    ],
)
def test_bad_entries_are_refused_before_git_runs(
    ws: Workspace, fields: dict[str, Any], expected: str
) -> None:
    code, message = ws.run(ws.repo(**fields))

    assert code == 1
    assert message.detail.startswith("RepoCloneFailed: HEADROOM_REPOS[0]")
    assert expected in message.detail
    assert not [argv for argv, _ in ws.calls if argv[:1] == ["git"]]


def test_password_in_url_is_refused_and_never_echoed(
    ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    password = "hdrm-canary-in-url-0123456789"
    url = ws.server.url("app").replace("://", f"://user:{password}@")

    code, message = ws.run(ws.repo(url=url))

    assert code == 1
    assert "carries a password" in message.detail
    out, err = capfd.readouterr()
    assert password not in out + err + ws.log.read_text()
    assert not ws.calls


@pytest.mark.parametrize(
    ("env_repos", "expected"),
    [
        ("not json", "HEADROOM_REPOS is not JSON"),
        ('{"url": "x"}', "HEADROOM_REPOS must be a JSON list"),
    ],
)
def test_unreadable_repo_list_fails(ws: Workspace, env_repos: str, expected: str) -> None:
    env = {**ws.env([]), "HEADROOM_REPOS": env_repos}

    assert clone.run(env) == 1
    message = parse(ws.log.read_text()).message
    assert message is not None
    assert message.detail.startswith(f"RepoCloneFailed: {expected}")


def test_two_repos_on_one_path_are_refused(ws: Workspace) -> None:
    code, message = ws.run(ws.repo(), ws.repo(path="app"))

    assert code == 1
    assert "share one path" in message.detail


def test_git_timeout_fails_with_a_clear_message(ws: Workspace) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/app.git"

        code, message = ws.run(ws.repo(url=url), HEADROOM_CLONE_TIMEOUT_SECONDS="1")

    assert code == 1
    assert "git clone failed (timed out after 1 s)" in message.detail
    assert staging_is_empty(ws)


def test_sigterm_stops_git_and_still_reports(ws: Workspace, tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/app.git"
        env = ws.env([ws.repo(url=url, credentials=None)], PYTHONPATH=os.pathsep.join(sys.path))
        code = "import sys; from headroom.runner.clone import main; sys.exit(main([]))"
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not _processes_naming(url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_naming(url), "git never started"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 1

    message = parse(ws.log.read_text()).message
    assert message is not None
    assert message.detail == (
        "RepoCloneFailed: stopped by SIGTERM before every repository was in place"
    )
    assert not _processes_naming(url)  # git and its helpers went with it
    assert staging_is_empty(ws)
    assert not (ws.root / "app").exists()


def _processes_naming(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text` (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


# -- pushing with the helper config alone --------------------------------------------------------


def test_push_of_a_new_branch_works_with_the_helper_config_alone(
    ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    assert ws.run(ws.repo(branch="agent/fix"))[0] == 0
    repo = ws.root / "app"
    (repo / "src" / "app.py").write_text("print('fixed')\n")
    # The agent container: its own environment, no token anywhere in it, no user config.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(ws.root.parent / "home"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSL_CAINFO": str(ws.server.ca_file),
        "GIT_AUTHOR_NAME": "Agent",
        "GIT_AUTHOR_EMAIL": "agent@example.invalid",
        "GIT_COMMITTER_NAME": "Agent",
        "GIT_COMMITTER_EMAIL": "agent@example.invalid",
    }
    for args in (["commit", "-qam", "fix"], ["push", "--quiet"]):
        done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    assert "agent/fix" in ws.server.branches("app")
    assert ws.server.read_branch("app", "agent/fix")["src/app.py"] == "print('fixed')\n"
    assert any(r.method == "POST" and "receive-pack" in r.path for r in ws.server.requests)
    assert git_in(repo, "remote", "get-url", "origin") == ws.server.url("app")
    assert ws.server.token
    out, err = capfd.readouterr()
    assert_no_token(ws, ws.server.token, out, err)


# -- the config it writes --------------------------------------------------------------------------


def test_repo_config_names_the_file_never_the_token(ws: Workspace) -> None:
    assert ws.run(ws.repo())[0] == 0
    repo = ws.root / "app"
    scope = f"https://127.0.0.1:{ws.server.http_port}"

    entries = git_in(repo, "config", "--local", "--list").splitlines()

    helper = gitcreds.credential_helper(ws.token_file)
    key = f"credential.{scope}.helper"
    assert [e for e in entries if e.startswith("credential.")] == [f"{key}=", f"{key}={helper}"]
    assert str(ws.token_file) in helper
    assert git_in(repo, "config", "--local", "push.autoSetupRemote") == "true"


def test_ssh_credentials_become_core_ssh_command() -> None:
    key = gitcreds.Credentials("ssh", file=PurePosixPath("/var/run/headroom/git/0/ssh-privatekey"))
    with_hosts = gitcreds.Credentials(
        "ssh", file=key.file, known_hosts=PurePosixPath("/var/run/headroom/git/0/known_hosts")
    )

    assert gitcreds.repo_config("git@github.com:o/r.git", with_hosts) == [
        (
            "core.sshCommand",
            "ssh -i /var/run/headroom/git/0/ssh-privatekey -o IdentitiesOnly=yes -o BatchMode=yes"
            " -o UserKnownHostsFile=/var/run/headroom/git/0/known_hosts"
            " -o StrictHostKeyChecking=yes",
        )
    ]
    assert gitcreds.ssh_command(key).endswith("-o StrictHostKeyChecking=accept-new")


def test_credential_scope_is_the_server_only() -> None:
    assert gitcreds.credential_scope("https://git.example.com/o/r.git") == "https://git.example.com"
    assert gitcreds.credential_scope("http://u@10.0.0.1:8080/r.git") == "http://10.0.0.1:8080"
    assert gitcreds.credential_scope("https://[::1]:9/r.git") == "https://[::1]:9"


def test_git_runs_with_a_minimal_environment(ws: Workspace) -> None:
    env = ws.env([ws.repo()], ANTHROPIC_API_KEY="sk-ant-canary", GIT_DIR="/elsewhere",
                 HEADROOM_SCRUB_ENV="ANTHROPIC_API_KEY")  # fmt: skip

    assert clone.run(env) == 0

    git_envs = [child for argv, child in ws.calls if argv[:1] == ["git"] and "clone" in argv]
    assert git_envs
    for child in git_envs:
        assert set(child) <= {*clone.PASS_ENV, "GIT_TERMINAL_PROMPT", "GIT_CONFIG_GLOBAL",
                              "GIT_ALLOW_PROTOCOL", "LC_ALL", "LANG"}  # fmt: skip
        assert child["GIT_TERMINAL_PROMPT"] == "0"
        assert "HEADROOM_REPOS" not in child


# -- every process, as the kernel saw it -------------------------------------------------------


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_token_is_in_no_process_argv_or_environment(ws: Workspace, tmp_path: Path) -> None:
    """`headroom clone` under strace -f: every execve of every process it starts (git,
    git-remote-https, the helper's shell, cat), with full argv and environment."""
    trace = tmp_path / "execve.trace"
    code = "import sys; from headroom.runner.clone import main; sys.exit(main([]))"
    env = ws.env([ws.repo(branch="work")], PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        ["strace", "-f", "-qq", "-v", "-s", "65536", "-e", "trace=execve", "-o", str(trace),
         sys.executable, "-c", code],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if "ptrace" in done.stderr and not trace.exists():
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")

    assert done.returncode == 0, done.stderr
    traced = trace.read_text(errors="replace")
    assert "git-remote-http" in traced  # the transport ran, so its argv and env are in the trace
    assert "cat " in traced or '"cat"' in traced  # so did the credential helper
    assert ws.server.token
    assert ws.server.token not in traced
    assert_no_token(ws, ws.server.token, done.stdout, done.stderr)


def test_help() -> None:
    assert clone.main(["--help"]) == 0
    assert clone.main(["--bogus"]) == 2
