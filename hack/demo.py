"""Helpers for `make run` (hack/run.sh) and the live demos (`make demo-wall`, `make demo-drill`).

    python hack/demo.py sandbox-config manifests/samples/accounts.yaml   # stand-in credentials
    python hack/demo.py wall     # a new session; its account's window fills mid-run
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

from headroom.sandbox.client import SandboxClient, SandboxError

REPO = Path(__file__).resolve().parent.parent
RUN_ENV = REPO / ".local" / "run" / "env.json"
MARKER = "PELICAN"  # the stand-in answers "I remember PELICAN" when it sees it in history
HOLD_SECONDS = 8  # how long the stand-in holds the demo session's first request
WALL_RESET_SECONDS = 180
TYPE_TO_KIND = {"OAuthToken": "oauth", "APIKey": "api_key"}
DEFAULT_KEY = {"OAuthToken": "token", "APIKey": "apiKey"}


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

    def run(self, how: str) -> None:
        name = "demo-" + datetime.now(UTC).strftime("%H%M%S")
        oauth = [c["name"] for c in self.sandbox.credentials() if c["kind"] == "oauth"]
        # Hold the new session's first request in the stand-in, whichever account it gets,
        # so the wall (or drill) lands while Claude Code is mid-run.
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
        subprocess.run(
            [*self.kubectl_cmd, "apply", "-f", "-"], input=json.dumps(manifest), text=True,
            check=True, capture_output=True,
        )  # fmt: skip
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
        if how == "wall":
            self.say(f"filling {account}'s five_hour window in the stand-in (resets in 3 min)")
            self.sandbox.fill_window(account, "five_hour", reset_in_seconds=WALL_RESET_SECONDS)
        else:
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
    if len(argv) == 1 and argv[0] in ("wall", "drill"):
        Demo().run(argv[0])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
