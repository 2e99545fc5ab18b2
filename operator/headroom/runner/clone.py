"""`headroom clone`: the init container of an agent pod. Puts every repository of the session
on the workspace once, then never touches it again.

Reads HEADROOM_REPOS (a JSON list, see `parse_repos`), HEADROOM_WORKDIR and
HEADROOM_TERMINATION_LOG. A repository whose path exists is kept as it is: a later attempt (a
swap, a retry) must find the earlier attempt's uncommitted work, so nothing is fetched, reset
or re-cloned. A new clone is made in a staging directory on the same filesystem and renamed
into place, so a clone killed half way never leaves a half clone at the final path.

Credentials reach git only through the repo-local config of `headroom.runner.gitcreds`, which
names the mounted file; the token itself is read here only to scrub it from what is printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from headroom.contract import pod
from headroom.contract.scrub import scrub
from headroom.contract.termination import Outcome, TerminationMessage
from headroom.core import task
from headroom.runner import report
from headroom.runner.gitcreds import Credentials, repo_config

TIMEOUT_ENV = pod.CLONE_TIMEOUT_SECONDS
DEFAULT_TIMEOUT_SECONDS = 600.0  # per git command; a stuck server must not hold the pod forever
GIT_MESSAGE_CHARS = 600  # of git's own error output in the detail (its end: the fatal line)
STAGING_PREFIX = "clone-"
# Top-level workspace entries that belong to Headroom, never to a repository.
RESERVED_TOP = frozenset({pod.STATE_SUBDIR, pod.PROJECTS_SUBPATH})
HTTP_SCHEMES = frozenset({"http", "https"})
URL_SCHEMES = frozenset({*HTTP_SCHEMES, "ssh", "git", "file"})
# Variables git may see. Proxies and CA bundles are the pod's business; everything else
# (credentials, GIT_* overrides, the repository list itself) stays out.
PASS_ENV = (
    "PATH", "HOME", "TMPDIR", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
)  # fmt: skip
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:")
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_BAD_NAME = re.compile(r"[\x00-\x20\x7f]")

USAGE = """usage: headroom clone

The init container of an agent pod: clones each repository of HEADROOM_REPOS onto the
workspace unless its path already exists, writes the termination message and exits 0
(completed) or 1 (failed, detail "RepoCloneFailed: ..."). Environment only, no flags."""


class CloneError(Exception):
    """A sentence for the termination message; scrubbed before it is written."""


class Interrupted(BaseException):
    """SIGTERM (the pod is being deleted): stop git, clean up, still report."""


@dataclass(frozen=True)
class RepoSpec:
    index: int
    url: str
    ref: str | None
    path: str
    depth: int | None
    branch: str | None
    credentials: Credentials | None

    @property
    def label(self) -> str:
        return f"repos[{self.index}] ({self.url})"


# -- entry points ----------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if argv:
        print(USAGE, file=sys.stderr if argv[0] not in {"-h", "--help"} else sys.stdout)
        return 0 if argv[0] in {"-h", "--help"} else 2
    signal.signal(signal.SIGTERM, _interrupt)
    return run(dict(os.environ))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def run(env: Mapping[str, str]) -> int:
    """Clone what is missing and report; the exit code of the termination message."""
    secrets = _env_secrets(env)
    log_path = Path(env.get(pod.TERMINATION_LOG) or pod.TERMINATION_MESSAGE_PATH)
    try:
        repos = parse_repos(env.get(pod.REPOS, ""), env.get(pod.GIT_CREDENTIALS_ENV))
        secrets += credential_secrets(repos)
        summary = place_all(repos, env)
    except CloneError as exc:
        return finish(_failure(str(exc), secrets), log_path)
    except OSError as exc:  # a full or read-only workspace: still a report, not a traceback
        return finish(_failure(f"workspace error: {exc}", secrets), log_path)
    except Interrupted:
        reason = "stopped by SIGTERM before every repository was in place"
        return finish(_failure(reason, secrets), log_path)
    return finish(TerminationMessage(outcome=Outcome.COMPLETED, detail=summary), log_path)


def _failure(reason: str, secrets: list[str]) -> TerminationMessage:
    detail = pod.CLONE_FAILED_PREFIX + " ".join(scrub(reason, secrets).split())
    if len(detail) > report.DETAIL_LIMIT:
        detail = detail[: report.DETAIL_LIMIT - 1] + "…"
    return TerminationMessage(outcome=Outcome.FAILED, detail=detail)


def finish(message: TerminationMessage, path: Path) -> int:
    text = report.render(message)
    try:
        path.write_text(text, "utf-8")
    except OSError as exc:
        log(f"cannot write {path}: {exc.strerror or exc}")
    print(text, flush=True)  # the only report left if the file cannot be written
    return report.exit_code(text)


def log(message: str) -> None:
    print(f"headroom clone: {message}", file=sys.stderr, flush=True)


# -- the repository list ---------------------------------------------------------------------


def parse_repos(text: str, credentials_root: str | None = None) -> list[RepoSpec]:
    """HEADROOM_REPOS: `[{"url", "ref", "path", "depth", "branch", "credentials":
    null | {"kind": "token"|"ssh", "file", "knownHosts"}}]`. Unset or empty: nothing to do."""
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CloneError(f"{pod.REPOS} is not JSON ({exc})") from None
    if not isinstance(doc, list):
        raise CloneError(f"{pod.REPOS} must be a JSON list")
    root = PurePosixPath(credentials_root or pod.GIT_CREDENTIALS_DIR)
    return [_repo(index, item, root) for index, item in enumerate(doc)]


def _repo(index: int, item: Any, root: PurePosixPath) -> RepoSpec:
    where = f"{pod.REPOS}[{index}]"
    if not isinstance(item, dict):
        raise CloneError(f"{where} must be an object")
    url = _string(item, "url", where)
    if url is None:
        raise CloneError(f"{where}.url is required")
    check_url(url, where)
    depth = item.get("depth")
    if depth is not None and (type(depth) is not int or depth < 1):
        raise CloneError(f"{where}.depth must be a positive integer")
    spec = RepoSpec(
        index=index,
        url=url,
        ref=_name(item, "ref", where),
        path=_string(item, "path", where) or default_path(url),
        depth=depth,
        branch=_name(item, "branch", where),
        credentials=_credentials(item.get("credentials"), f"{where}.credentials", root),
    )
    _check_transport(spec, where)
    return spec


def _string(item: dict[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise CloneError(f"{where}.{key} must be a non-empty string")
    return value


def _name(item: dict[str, Any], key: str, where: str) -> str | None:
    """A ref or branch: never an option to git, never whitespace or control characters."""
    value = _string(item, key, where)
    if value is not None and (value.startswith("-") or _BAD_NAME.search(value)):
        raise CloneError(f"{where}.{key} {value!r} is not a valid git name")
    return value


def _credentials(value: Any, where: str, root: PurePosixPath) -> Credentials | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("kind") not in {"token", "ssh"}:
        raise CloneError(f"{where} must be an object with kind token or ssh")
    file = _string(value, "file", where)
    if file is None:
        raise CloneError(f"{where}.file is required")
    known = _string(value, "knownHosts", where)
    return Credentials(
        kind=value["kind"],
        file=_credential_path(file, root, f"{where}.file"),
        known_hosts=_credential_path(known, root, f"{where}.knownHosts") if known else None,
    )


def _credential_path(path: str, root: PurePosixPath, where: str) -> PurePosixPath:
    """Relative paths are under the credentials mount; nothing may climb out of it."""
    if ".." in PurePosixPath(path).parts:
        raise CloneError(f"{where} must not contain '..'")
    return PurePosixPath(path) if path.startswith("/") else root / path


def transport(url: str) -> str:
    """http, ssh, git or file; "" for what git should never be asked to open."""
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme in HTTP_SCHEMES:
            return "http"
        return scheme if scheme in URL_SCHEMES else ""
    if _SCP_LIKE.match(url):
        return "ssh"
    # Plain paths are the file transport; `transport::address` (e.g. ext::, which runs a
    # command) is not a URL at all.
    return "file" if url.startswith("/") and "::" not in url else ""


def check_url(url: str, where: str) -> None:
    if url.startswith("-") or _BAD_NAME.search(url) or not transport(url):
        raise CloneError(f"{where}.url must be an https, http, ssh, git or file URL")
    if "://" in url:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise CloneError(f"{where}.url is not a valid URL") from None
        if parts.password is not None:
            # Never echoed: the password is exactly what must not be printed.
            raise CloneError(
                f"{where}.url carries a password; give the token as credentials instead"
            )


def _check_transport(spec: RepoSpec, where: str) -> None:
    kind, creds = transport(spec.url), spec.credentials
    if creds is not None and creds.kind == "token" and kind != "http":
        raise CloneError(f"{where}: a token authenticates https or http URLs only")
    if creds is not None and creds.kind == "ssh" and kind != "ssh":
        raise CloneError(f"{where}: an ssh key authenticates ssh URLs only")


def default_path(url: str) -> str:
    """The repository's name, as `git clone` would choose it (the operator's rule)."""
    return f"{pod.WORKSPACE}/{task.default_path(url)}"


def target_path(root: Path, path: str, where: str) -> Path:
    """Where a repository goes. Paths are container paths under /workspace (or relative to
    it); they are re-rooted at HEADROOM_WORKDIR, which is /workspace in a pod and a scratch
    directory when the runner runs outside one (its own tests). `..` is refused outright
    rather than normalized."""
    given = PurePosixPath(path)
    relative = given
    for base in (PurePosixPath(pod.WORKSPACE), PurePosixPath(root)):
        if given.is_absolute() and given.is_relative_to(base):
            relative = given.relative_to(base)
            break
    problem = ""
    if relative.is_absolute():
        problem = f"must be under {pod.WORKSPACE}"
    elif ".." in relative.parts or ".." in given.parts:
        problem = "must not contain '..'"
    elif not relative.parts:
        problem = "must name a directory inside the workspace, not the workspace itself"
    elif relative.parts[0] in RESERVED_TOP or ".git" in relative.parts:
        problem = f"must not be inside {relative.parts[0]!r}, which Headroom or git owns"
    if problem:
        raise CloneError(f"{where}.path {path!r} {problem}")
    return root.joinpath(*relative.parts)


def credential_secrets(repos: Sequence[RepoSpec]) -> list[str]:
    """Token values, read only so that they can be scrubbed from git's messages."""
    found: list[str] = []
    for spec in repos:
        creds = spec.credentials
        if creds is not None and creds.kind == "token":
            with contextlib.suppress(OSError, UnicodeDecodeError):
                found += [Path(creds.file).read_text("utf-8").strip()]
    return [value for value in found if value]


def _env_secrets(env: Mapping[str, str]) -> list[str]:
    names = env.get(pod.SCRUB_ENV, "").split(",")
    return [env[name] for name in (n.strip() for n in names) if name and env.get(name)]


# -- placing repositories --------------------------------------------------------------------


def place_all(repos: Sequence[RepoSpec], env: Mapping[str, str]) -> str:
    """Every repository in place, in order; a sentence saying what was done."""
    if not repos:
        return "no repositories to clone"
    root = Path(env.get(pod.WORKDIR) or pod.WORKSPACE)
    targets = [target_path(root, spec.path, f"{pod.REPOS}[{spec.index}]") for spec in repos]
    if len(set(targets)) != len(targets):
        raise CloneError(f"two entries of {pod.REPOS} share one path")
    if not root.is_dir():
        raise CloneError(f"workspace {root} is not a directory (is the volume mounted?)")
    git = Git(git_environment(env), _timeout(env))
    staging = prepare_staging(root)
    cloned = 0
    for spec, target in zip(repos, targets, strict=True):
        if os.path.lexists(target):
            log(f"kept existing {spec.path}")
            continue
        log(place(spec, target, root, staging, git))
        cloned += 1
    noun = "repository" if len(repos) == 1 else "repositories"
    return f"{len(repos)} {noun} in place ({cloned} cloned, {len(repos) - cloned} kept)"


def prepare_staging(root: Path) -> Path:
    """The staging directory, emptied of clones an earlier, killed attempt left behind (one
    pod per session: nothing else is cloning into it)."""
    staging = root / pod.STATE_SUBDIR
    try:
        staging.mkdir(exist_ok=True)
        for stale in staging.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
    except OSError as exc:
        raise CloneError(f"cannot prepare {staging}: {exc.strerror or exc}") from None
    return staging


def place(spec: RepoSpec, target: Path, root: Path, staging: Path, git: Git) -> str:
    """Clone into staging, then rename into place; the progress line."""
    _check_parent(target, root, spec)
    scratch = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=staging))
    try:
        work = scratch / "repo"
        described = clone(spec, work, git)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            work.rename(target)
        except OSError as exc:
            raise CloneError(f"{spec.label}: cannot move the clone to {spec.path}: "
                             f"{exc.strerror or exc}") from None  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return f"cloned {spec.url} at ref {described} into {spec.path}"


def _check_parent(target: Path, root: Path, spec: RepoSpec) -> None:
    """A symlink on the way (left by an agent) must not carry the clone out of the
    workspace: the nearest existing ancestor has to resolve inside it."""
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.resolve().is_relative_to(root.resolve()):
        raise CloneError(f"{spec.label}: path {spec.path} leads out of the workspace")


# -- git -------------------------------------------------------------------------------------


def clone(spec: RepoSpec, work: Path, git: Git) -> str:
    """Clone, check out `ref`, create the work branch; "<ref> (<short sha>)"."""
    config = [f"--config={key}={value}" for key, value in repo_config(spec.url, spec.credentials)]
    depth = [f"--depth={spec.depth}"] if spec.depth else []
    sha = spec.ref if spec.ref and _FULL_SHA.match(spec.ref) else None
    if sha:
        # --branch takes only branch and tag names; a commit is fetched by itself.
        git.run(spec, "clone", "--no-checkout", *config, *depth, "--", spec.url, str(work))
        if not git.succeeds("cat-file", "-e", f"{sha}^{{commit}}", cwd=work):
            git.run(spec, "fetch", *depth, "origin", sha, cwd=work)
        git.run(spec, "-c", "advice.detachedHead=false", "checkout", "--detach", sha, cwd=work)
    else:
        branch = [f"--branch={spec.ref}"] if spec.ref else []
        git.run(spec, "-c", "advice.detachedHead=false", "clone", *config, *depth, *branch,
                "--", spec.url, str(work))  # fmt: skip
    # Before the work branch exists: the remote's default branch, for the progress line.
    checked_out = git.run(spec, "rev-parse", "--abbrev-ref", "HEAD", cwd=work).strip()
    if spec.branch:
        git.run(spec, "checkout", "-B", spec.branch, cwd=work)
    # The agent's first `git push` of a new work branch needs no -u to find origin.
    git.run(spec, "config", "push.autoSetupRemote", "true", cwd=work)
    short = git.run(spec, "rev-parse", "--short", "HEAD", cwd=work).strip()
    where = f" on work branch {spec.branch}" if spec.branch else ""
    return f"{spec.ref} ({short}){where}" if spec.ref else f"HEAD ({checked_out} {short}){where}"


def git_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment: no credentials, no GIT_* overrides, no prompts, no user config
    (the home directory is not ours to trust), only the transports a repository URL may use,
    and English messages for the termination detail."""
    child = {name: env[name] for name in PASS_ENV if env.get(name)}
    child.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    child.setdefault("HOME", tempfile.gettempdir())
    child.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ALLOW_PROTOCOL=":".join(sorted(URL_SCHEMES)),
        LC_ALL="C",
        LANG="C",
    )
    return child


def _timeout(env: Mapping[str, str]) -> float:
    raw = env.get(TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        value = 0.0
    if not value > 0:
        raise CloneError(f"{TIMEOUT_ENV} must be a positive number of seconds")
    return value


@dataclass(frozen=True)
class Git:
    """Runs git with the scrubbed environment, a timeout, and its own process group, so a
    timeout or a SIGTERM stops git's helpers (remote-https, index-pack) as well."""

    env: Mapping[str, str]
    timeout: float

    def run(self, spec: RepoSpec, *args: str, cwd: Path | None = None) -> str:
        code, out, err = self._call(args, cwd)
        if code != 0:
            verb = next(a for a in args if not a.startswith("-") and "=" not in a)
            why = f"exit {code}" if code is not None else f"timed out after {self.timeout:g} s"
            raise CloneError(f"{spec.label}: git {verb} failed ({why}): {git_message(err)}")
        return out

    def succeeds(self, *args: str, cwd: Path | None = None) -> bool:
        return self._call(args, cwd)[0] == 0

    def _call(self, args: Sequence[str], cwd: Path | None) -> tuple[int | None, str, str]:
        try:
            process = subprocess.Popen(
                ["git", *args], cwd=cwd, env=dict(self.env), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise CloneError(f"cannot run git: {exc.strerror or exc}") from None
        with _stopped_on_exit(process):
            try:
                out, err = process.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                out, err = process.communicate()
                return None, _text(out), _text(err)
        return process.returncode, _text(out), _text(err)


@contextlib.contextmanager
def _stopped_on_exit(process: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:  # interrupted (SIGTERM) while git ran
            _kill_group(process)
            process.wait()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def git_message(stderr: str) -> str:
    """git's own words, without progress and hints, ending with the fatal line."""
    lines = [line.rsplit("\r", 1)[-1].strip() for line in stderr.splitlines()]
    kept = [line for line in lines if line and not line.startswith(("hint:", "Cloning into"))]
    text = " ".join(" ".join(kept).split()) or "(git printed nothing)"
    return text if len(text) <= GIT_MESSAGE_CHARS else "…" + text[-(GIT_MESSAGE_CHARS - 1) :]


# -- later attempts --------------------------------------------------------------------------


def refresh_credentials(env: Mapping[str, str]) -> list[str]:
    """Point each clone's credential config at this pod's mounted files: the agent's own
    `git push` in a later attempt must read the credential of this attempt's mount. Called
    by the agent runner before Claude Code starts; returns one problem line per repository
    that could not be updated (the run goes on: pushing is the agent's business)."""
    try:
        repos = parse_repos(env.get(pod.REPOS, ""), env.get(pod.GIT_CREDENTIALS_ENV))
    except CloneError as exc:
        return [str(exc)]
    root = Path(env.get(pod.WORKDIR) or pod.WORKSPACE)
    git = Git(git_environment(env), _timeout(env))
    problems = []
    for spec in repos:
        if spec.credentials is None:
            continue
        try:
            target = target_path(root, spec.path, f"{pod.REPOS}[{spec.index}]")
            if not (target / ".git").is_dir():
                continue
            for key, _ in repo_config(spec.url, spec.credentials)[:1]:
                git.succeeds("config", "--unset-all", key, cwd=target)
            for key, value in repo_config(spec.url, spec.credentials):
                git.run(spec, "config", "--add", key, value, cwd=target)
        except CloneError as exc:
            problems.append(str(exc))
    return problems
