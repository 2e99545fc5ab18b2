"""Helpers for `make run` (hack/run.sh) and the live demos (`make demo-wall`, `make demo-drill`).

    python hack/demo.py sandbox-config manifests/samples/accounts.yaml   # stand-in credentials
    python hack/demo.py git-repo DIR/demo-app.git  # the demo repository (a bare one)
    python hack/demo.py repo-session NAME          # a session on it, scripted in the stand-in
    python hack/demo.py wall     # a repository session; its window fills between two tool calls
    python hack/demo.py drill    # a new session; its account is drilled mid-run

The demos talk to what `make run` started (it writes .local/run/env.json): the stand-in's
admin API and the cluster through kubectl. They print every kubectl command they run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from headroom_dev.sandbox.client import SandboxClient, SandboxError

REPO = Path(__file__).resolve().parent.parent
RUN_ENV = REPO / ".local" / "run" / "env.json"
MARKER = "PELICAN"  # the stand-in answers "I remember PELICAN" when it sees it in history
HOLD_SECONDS = 8  # how long the stand-in holds the demo session's first request
WALL_RESET_SECONDS = 180
TYPE_TO_KIND = {"OAuthToken": "oauth", "APIKey": "api_key"}
DEFAULT_KEY = {"OAuthToken": "token", "APIKey": "apiKey"}


BROKEN = "def add(a, b):\n    return a - b\n"
# Claude Code's Bash tool keeps its working directory between calls: no `cd` in the steps.
REPO_STEPS: list[dict[str, Any]] = [
    {"text": "Let me look.", "tools": [{"name": "Bash", "input": {
        "command": "git -C demo-app log --oneline -1 && cat demo-app/calc.py"},
        "expect": {"contains": "return a - b"}}]},
    {"text": "Found it: add() subtracts.", "tools": [{"name": "Bash", "input": {
        "command": "sed -i 's/a - b/a + b/' demo-app/calc.py"
                   " && git -C demo-app commit -qam 'Fix add()' && echo wip > demo-app/NOTES.txt"
                   " && git -C demo-app log --oneline -1"},
        "expect": {"contains": "Fix add()"}}]},
    # The account's window fills here, between two tool calls: the next request is refused.
    {"wall": {"window": "five_hour", "resetInSeconds": WALL_RESET_SECONDS}},
    {"text": "Checking my earlier work.", "tools": [{"name": "Bash", "input": {
        "command": "git -C demo-app log --format=%s -1; cat demo-app/NOTES.txt"},
        "expect": {"contains": "Fix add()\nwip"}}]},
    {"text": "Pushing.", "tools": [{"name": "Bash", "input": {
        "command": "git -C demo-app push -q origin HEAD 2>&1; echo pushed $?"},
        "expect": {"contains": "pushed 0"}}]},
    {"text": "Fixed add() in calc.py (commit 'Fix add()') and pushed the work branch."},
]  # fmt: skip


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def git_repo(bare: Path) -> None:
    """The demo repository: a bare one with a bug to fix, pushable over git://."""
    work = bare.parent / (bare.name + ".init")
    git("init", "-q", "--initial-branch=main", str(work))
    (work / "calc.py").write_text(BROKEN)
    (work / "README.md").write_text("A tiny library with a bug: add() subtracts.\n")
    git("add", ".", cwd=work)
    git("-c", "user.name=demo", "-c", "user.email=demo@example.invalid",
        "commit", "-qm", "initial commit", cwd=work)  # fmt: skip
    git("clone", "-q", "--bare", str(work), str(bare))
    git("config", "daemon.receivepack", "true", cwd=bare)
    subprocess.run(["rm", "-rf", str(work)], check=True)


def repo_session(name: str, git_url: str, sandbox: SandboxClient, *, wall: bool) -> dict[str, Any]:
    """An AgentSession that clones the demo repository, with its scripted agent registered in
    the stand-in under a word its prompt holds (before the operator picks its id). `wall`:
    the account's window fills between the commit and the next tool call."""
    word = f"[{name}]"
    steps = REPO_STEPS if wall else [s for s in REPO_STEPS if "wall" not in s]
    sandbox.script_prompt(word, steps)
    return {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": "AgentSession",
        "metadata": {"name": name},
        "spec": {
            "prompt": f"Remember the word {MARKER}. Fix add() in calc.py and push {word}",
            "accountSelector": {"matchLabels": {"tier": "max"}},
            "fallback": {"accountSelector": {"matchLabels": {"type": "api-key"}}},
            "repos": [{"url": git_url + "/demo-app.git", "branch": f"fix/{name}"}],
            "claude": {"permissionMode": "bypassPermissions"},
        },
    }


def sandbox_config(samples: Path) -> dict[str, Any]:
    """Stand-in credentials for every sample account, with the tokens of the sample Secrets."""
    docs = [d for d in yaml.safe_load_all(samples.read_text()) if d]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    credentials = []
    for account in (d for d in docs if d["kind"] == "ClaudeAccount"):
        creds = account["spec"]["credentials"]
        kind = TYPE_TO_KIND.get(creds["type"])
        if kind is None:
            continue  # CredentialsFile accounts need a refresh chain the stand-in does not play
        secret = secrets[creds["secretRef"]["name"]]
        key = creds.get("key") or DEFAULT_KEY[creds["type"]]
        credentials.append(
            {
                "name": account["metadata"]["name"],
                "kind": kind,
                "secret": secret["stringData"][key],
                "label": f"{account['metadata']['name']}@example",
            }
        )
    return {"marker": MARKER, "reply": "Done.", "credentials": credentials}


class Demo:
    def __init__(self) -> None:
        if not RUN_ENV.exists():
            sys.exit("`make run` is not running (no .local/run/env.json): start it first")
        env = json.loads(RUN_ENV.read_text())
        self.ns: str = env["namespace"]
        self.kubectl_cmd = [env["kubectl"], "--kubeconfig", env["kubeconfig"], "-n", self.ns]
        self.sandbox = SandboxClient(env["sandbox_url"])
        self.git_url: str = env.get("git_url", "")
        try:
            self.sandbox.call("GET", "/_admin/health")
        except (SandboxError, OSError) as exc:
            sys.exit(f"the stand-in API of `make run` does not answer ({exc}): is it running?")
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[demo {time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    def kubectl(self, *args: str, quiet: bool = False) -> str:
        if not quiet:
            self.say("$ kubectl -n " + self.ns + " " + " ".join(args))
        for _ in range(3):  # the shared local cluster may be briefly busy
            done = subprocess.run(
                [*self.kubectl_cmd, *args], capture_output=True, text=True, check=False
            )
            if done.returncode == 0:
                return done.stdout
            time.sleep(1)
        sys.exit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")

    def status(self, session: str) -> dict[str, Any]:
        body = json.loads(self.kubectl("get", "agentsession", session, "-o", "json", quiet=True))
        return body.get("status") or {}

    def wait(self, what: str, probe: Any, timeout: float = 180) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.3)
        sys.exit(f"gave up waiting for {what} after {timeout:.0f}s; see `kubectl get events`")

    def apply(self, manifest: dict[str, Any]) -> None:
        subprocess.run(
            [*self.kubectl_cmd, "apply", "-f", "-"], input=json.dumps(manifest), text=True,
            check=True, capture_output=True,
        )  # fmt: skip

    def wall(self) -> None:
        """A session clones the demo repository; its scripted agent fixes the bug and
        commits, the account's window fills between two tool calls, and the resumed agent on
        another account finds the commit (and an uncommitted file) and pushes."""
        name = "demo-" + datetime.now(UTC).strftime("%H%M%S")
        self.say(f"creating AgentSession {name}: clone demo-app, fix add(), commit, push")
        self.apply(repo_session(name, self.git_url, self.sandbox, wall=True))
        first = self.wait(f"{name} placed", lambda: (s := self.status(name)).get("account") and s)
        self.say(f"{name} runs on {first['account']}; the window fills after its commit")
        self.follow(name)
        self.summary(name, first["account"])
        bare = RUN_ENV.parent / "git" / "demo-app.git"
        pushed = git("-C", str(bare), "log", "--format=%h %s", "-1", f"fix/{name}").strip()
        fixed = git("-C", str(bare), "show", f"fix/{name}:calc.py")
        self.say(f"branch fix/{name} on the git server: {pushed}")
        print("    " + fixed.replace("\n", "\n    ").rstrip())
        answer = self.status(name).get("result", {}).get("summary")
        self.say(f"the agent's answer (status.result.summary): {answer}")

    def drill(self) -> None:
        """A new session; its account is drilled while Claude Code waits on an answer."""
        name = "demo-" + datetime.now(UTC).strftime("%H%M%S")
        oauth = [c["name"] for c in self.sandbox.credentials() if c["kind"] == "oauth"]
        # Hold the new session's first request in the stand-in, whichever account it gets,
        # so the drill lands while Claude Code is mid-run.
        for credential in oauth:
            self.sandbox.inject("stall", credential=credential, seconds=HOLD_SECONDS)
        manifest = {
            "apiVersion": "headroom.dev/v1alpha1",
            "kind": "AgentSession",
            "metadata": {"name": name},
            "spec": {
                "prompt": f"Remember the word {MARKER}, then tidy up the README.",
                "accountSelector": {"matchLabels": {"tier": "max"}},
                # When every subscription is walled (say, after a few demos in a row), the
                # API-key account takes over instead of a wait for the next reset.
                "fallback": {"accountSelector": {"matchLabels": {"type": "api-key"}}},
            },
        }
        self.say(f"creating AgentSession {name} (prompt mentions {MARKER})")
        self.apply(manifest)
        self.wait(
            f"{name} mid-run",
            lambda: (
                self.status(name).get("account") and self.sandbox.state().get("inFlight", 0) >= 1
            ),
        )
        self.sandbox.call("DELETE", "/_admin/faults")
        first = self.status(name)
        account = first["account"]
        self.say(
            f"{name} runs on {account} (pod {first['podName']}); Claude Code is waiting on "
            "its first answer"
        )
        self.kubectl("annotate", "--overwrite", "claudeaccount", account,
                     f"headroom.dev/drill={name}")  # fmt: skip
        self.follow(name)
        self.summary(name, account)

    def follow(self, name: str) -> None:
        seen = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            s = self.status(name)
            now = (s.get("phase"), s.get("account"), s.get("podName"))
            if now != seen:
                seen = now
                swaps = len(s.get("swaps") or [])
                self.say(
                    f"{name}: phase={s.get('phase')} account={s.get('account')} "
                    f"pod={s.get('podName')} attempt={s.get('attempt')} swaps={swaps}"
                )
            if s.get("phase") in ("Succeeded", "Failed"):
                return
            time.sleep(0.3)
        sys.exit(f"{name} did not finish within 5 minutes; see `kubectl get events`")

    def summary(self, name: str, first_account: str) -> None:
        s = self.status(name)
        for swap in s.get("swaps") or []:
            self.say(
                f"swap: {swap['from']} -> {swap['to']} ({swap['reason']}"
                f"{', window ' + swap['window'] if swap.get('window') else ''})"
            )
        self.say(f"what the stand-in API saw for conversation {s.get('claudeSessionId')}:")
        for r in self.sandbox.requests():
            if r.get("session") == s.get("claudeSessionId"):
                print(
                    f"    {r['credential']:>8}  {r['status']}  {r['result']:<9} "
                    f"earlier turns mention {MARKER}: {r['markerInHistory']}"
                )
        account = json.loads(
            self.kubectl("get", "claudeaccount", first_account, "-o", "json", quiet=True)
        ).get("status", {})
        self.say(f"{first_account} is now {account.get('phase')}")
        print(self.kubectl("get", "headroom"))
        events = self.kubectl("get", "events", "--sort-by=.lastTimestamp", quiet=True)
        print("\n".join(line for line in events.splitlines() if name in line))
        if s.get("phase") != "Succeeded" or not s.get("swaps"):
            sys.exit(f"{name} ended {s.get('phase')} with {len(s.get('swaps') or [])} swaps")
        self.say(f"{name} moved off {first_account} and finished on {s['account']}")


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "sandbox-config":
        print(json.dumps(sandbox_config(Path(argv[1])), indent=2))
        return 0
    if len(argv) == 2 and argv[0] == "git-repo":
        git_repo(Path(argv[1]))
        return 0
    if len(argv) == 2 and argv[0] == "repo-session":
        env = json.loads(RUN_ENV.read_text())
        sandbox = SandboxClient(env["sandbox_url"])
        manifest = repo_session(argv[1], env["git_url"], sandbox, wall=False)
        print(json.dumps(manifest))
        return 0
    if argv == ["wall"]:
        Demo().wall()
        return 0
    if argv == ["drill"]:
        Demo().drill()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
