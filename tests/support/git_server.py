"""A real git server on loopback for tests: git's smart HTTP (`git http-backend` behind a small
HTTP server that checks a token, optionally over TLS) and, optionally, `git daemon` for
unauthenticated git://. Both serve the same directory of bare repositories.

    with GitServer(tmp_path / "git", token="s3cret") as server:
        server.create_repo("app", {"README.md": "hello\n"})
        url = server.url("app")              # http://127.0.0.1:<port>/app.git
        ...
        server.read_branch("app", "fix")     # {"README.md": "...", ...} after a push

`host` is the address to bind (127.0.0.1 by default; a bridge address lets pods reach it);
`advertise` is the host put in URLs (and in the TLS certificate), by default `host`.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

REALM = "headroom-test-git"
AUTHOR = {
    "GIT_AUTHOR_NAME": "Git Server Fixture",
    "GIT_AUTHOR_EMAIL": "fixture@git-server.invalid",
    "GIT_COMMITTER_NAME": "Git Server Fixture",
    "GIT_COMMITTER_EMAIL": "fixture@git-server.invalid",
}


def git_env(**extra: str) -> dict[str, str]:
    """An environment without the developer's git config: the fixture must behave the same on
    every machine (no url.insteadOf, no credential helpers, no hooks path)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **AUTHOR,
        **extra,
    }


def git(
    *args: str,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env=git_env(**(env or {})),
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


@dataclass(frozen=True)
class Request:
    """One request the HTTP server saw (for assertions such as "no token in any URL")."""

    method: str
    path: str
    authorized: bool


def free_port(host: str) -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class GitServer:
    """Bare repositories under `root`, served over smart HTTP(S) and optionally git://."""

    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        host: str = "127.0.0.1",
        advertise: str | None = None,
        tls: bool = False,
        daemon: bool = False,
    ) -> None:
        self.root = root
        self.token = token
        self.host = host
        self.advertise = advertise or host
        self.tls = tls
        self.requests: list[Request] = []
        self.ca_file: Path | None = None
        self._want_daemon = daemon
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self.http_port = 0
        self.daemon_port = 0

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> GitServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._start_http()
        if self._want_daemon:
            self._start_daemon()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._daemon is not None:
            # git daemon forks a child per connection: stop the whole group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._daemon.pid, signal.SIGTERM)
            self._daemon.wait(timeout=10)
            self._daemon = None

    def _start_http(self) -> None:
        handler = type("Handler", (_GitHandler,), {"server_state": self})
        family = _family(self.host)
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
        self._http = server_class((self.host, 0), handler)
        self._http.daemon_threads = True
        if self.tls:
            self._http.socket = self._tls_context().wrap_socket(self._http.socket, server_side=True)
        self.http_port = self._http.server_address[1]
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _tls_context(self) -> ssl.SSLContext:
        """A self-signed certificate for the advertised address; clients trust it through
        GIT_SSL_CAINFO=server.ca_file."""
        folder = Path(tempfile.mkdtemp(prefix="git-server-tls-"))
        key, cert = folder / "key.pem", folder / "cert.pem"
        kind = "IP" if _is_address(self.advertise) else "DNS"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
             f"/CN={self.advertise}", "-addext", f"subjectAltName={kind}:{self.advertise}",
             "-keyout", str(key), "-out", str(cert)],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.ca_file = cert
        return context

    def _start_daemon(self) -> None:
        for _ in range(5):  # the port is free when probed; retry if another process took it
            port = free_port(self.host)
            process = subprocess.Popen(
                ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
                 "--informative-errors", f"--base-path={self.root}", f"--listen={self.host}",
                 f"--port={port}", str(self.root)],
                env=git_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            if _wait_listening(self.host, port, process):
                self._daemon, self.daemon_port = process, port
                return
            process.kill()
            process.wait()
        raise RuntimeError("git daemon did not start")

    # -- URLs -------------------------------------------------------------------------------

    def url(self, name: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{_url_host(self.advertise)}:{self.http_port}/{name}.git"

    def git_url(self, name: str) -> str:
        if not self.daemon_port:
            raise RuntimeError("this GitServer was started without daemon=True")
        return f"git://{_url_host(self.advertise)}:{self.daemon_port}/{name}.git"

    # -- repositories -----------------------------------------------------------------------

    def bare(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def create_repo(self, name: str, files: dict[str, str], *, branch: str = "main") -> str:
        """A bare repository with one commit holding `files` on `branch` (its HEAD); returns
        the commit's SHA."""
        bare = self.bare(name)
        git("init", "--bare", "--quiet", f"--initial-branch={branch}", str(bare))
        # Pushes over git:// and anonymous HTTP too (http-backend otherwise wants REMOTE_USER).
        git("config", "http.receivepack", "true", cwd=bare)
        return self.commit(name, files, branch=branch, message="initial commit")

    def commit(
        self,
        name: str,
        files: dict[str, str],
        *,
        branch: str = "main",
        message: str = "change",
        parent: str | None = None,
    ) -> str:
        """A new commit on `branch` (created from `parent`, else its own tip) that writes
        `files` over the parent's tree. Built with plumbing: no work tree is needed."""
        bare = self.bare(name)
        parent = parent or self._tip(bare, branch)
        with tempfile.TemporaryDirectory(prefix="git-server-index-") as scratch:
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            if parent:
                git("read-tree", parent, cwd=bare, env=index)
            for path, text in files.items():
                blob = git("hash-object", "-w", "--stdin", cwd=bare, stdin=text.encode()).strip()
                entry = f"100644,{blob},{path}"
                git("update-index", "--add", "--cacheinfo", entry, cwd=bare, env=index)
            tree = git("write-tree", cwd=bare, env=index).strip()
        parents = ["-p", parent] if parent else []
        sha = git("commit-tree", tree, *parents, "-m", message, cwd=bare).strip()
        git("update-ref", f"refs/heads/{branch}", sha, cwd=bare)
        return sha

    def tag(self, name: str, tag: str, rev: str, *, annotated: bool = True) -> None:
        bare = self.bare(name)
        extra = ["-a", "-m", f"tag {tag}"] if annotated else []
        git("tag", *extra, tag, rev, cwd=bare)

    def _tip(self, bare: Path, branch: str) -> str | None:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"],
            cwd=bare, capture_output=True, env=git_env(), timeout=60, check=False,
        )  # fmt: skip
        return done.stdout.decode().strip() or None

    def branches(self, name: str) -> list[str]:
        out = git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.bare(name))
        return out.split()

    def read_branch(self, name: str, branch: str) -> dict[str, str]:
        """Every file at the tip of `branch`, path -> text (what a push delivered)."""
        bare, ref = self.bare(name), f"refs/heads/{branch}"
        paths = git("ls-tree", "-r", "--name-only", "-z", ref, cwd=bare).split("\0")
        return {p: git("show", f"{ref}:{p}", cwd=bare) for p in paths if p}

    def rev(self, name: str, rev: str) -> str:
        return git("rev-parse", rev, cwd=self.bare(name)).strip()

    # -- authentication ---------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        """`Bearer <token>`, or `Basic` with the token as password (any user name)."""
        if self.token is None:
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except ValueError:
                return False
            return hmac.compare_digest(decoded.partition(":")[2].encode(), self.token.encode())
        return False


def _is_address(host: str) -> bool:
    try:
        socket.inet_pton(_family(host), host)
    except OSError:
        return False
    return True


def _wait_listening(host: str, port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class _GitHandler(BaseHTTPRequestHandler):
    """Checks the token, then hands the request to `git http-backend` as a CGI script."""

    server_state: GitServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test output is for the test

    def _serve(self) -> None:
        state = self.server_state
        ok = state.authorized(self.headers.get("Authorization"))
        state.requests.append(Request(self.command, self.path, ok))
        body = self._body()
        if not ok:
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        output = self._backend(body)
        self._relay(output)

    def _body(self) -> bytes:
        # git sends large request bodies chunked; http-backend wants a plain CONTENT_LENGTH.
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _backend(self, body: bytes) -> bytes:
        path, _, query = self.path.partition("?")
        env = git_env(
            GIT_PROJECT_ROOT=str(self.server_state.root),
            GIT_HTTP_EXPORT_ALL="1",
            REQUEST_METHOD=self.command,
            PATH_INFO=path,
            QUERY_STRING=query,
            CONTENT_TYPE=self.headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(len(body)),
            REMOTE_ADDR=self.client_address[0],
            REMOTE_USER="git",
            GIT_PROTOCOL=self.headers.get("Git-Protocol", ""),
            HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""),
        )
        done = subprocess.run(
            ["git", "http-backend"], input=body, capture_output=True, env=env, timeout=120,
            check=False,
        )  # fmt: skip
        return done.stdout

    def _relay(self, output: bytes) -> None:
        head, sep, payload = output.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = output.partition(b"\n\n")
        status, headers = (200, []) if sep else (500, [])
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
