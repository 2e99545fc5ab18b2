"""What the e2e tests share: the fleet of accounts as both the cluster and the stand-in know it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.support.operator import Scene

from headroom_dev.sandbox.client import SandboxProcess

MARKER = "PELICAN-8823"  # the word the stand-in looks for in a conversation's history
# Fewer CLI retries than the default ten, so a 500 storm outlasts them in seconds, not
# minutes. Walls and 401s never retry (the runner stops at the first 401).
CLI_MAX_RETRIES = "2"
OAUTH_ACCOUNTS = {"alice": 30, "bob": 20, "carol": 10}  # name -> priority
SMALL_WINDOWS = [
    {"name": "five_hour", "capacity": 40, "unit": "requests", "periodSeconds": 18000},
    {"name": "seven_day", "capacity": 400, "unit": "requests", "periodSeconds": 604800},
]


@dataclass
class Fleet:
    """Accounts as both sides know them: ClaudeAccounts + Secrets, and the stand-in's records."""

    scene: Scene
    sandbox: SandboxProcess
    tokens: dict[str, str] = field(default_factory=dict)

    def oauth(self, name: str, priority: int, max_sessions: int = 2) -> None:
        self.tokens[name] = f"sk-ant-oat01-e2e-{name}-{uuid.uuid4().hex}"
        self.sandbox.add_credential(name, "oauth", self.tokens[name], SMALL_WINDOWS, f"{name}@e2e")
        self.scene.account(
            name, token=self.tokens[name], priority=priority, max_sessions=max_sessions, ready=False
        )

    def api_key(self, name: str) -> None:
        self.tokens[name] = f"sk-ant-api03-e2e-{name}-{uuid.uuid4().hex}"
        self.sandbox.add_credential(name, "api_key", self.tokens[name], label=f"{name}@e2e")
        self.scene.account(
            name,
            token=self.tokens[name],
            kind="APIKey",
            labels={"type": "api-key"},
            max_sessions=10,
            ready=False,
        )

    def wait_available(self, timeout: float = 120) -> None:
        """Every account verified by the operator (slow when the machine is busy)."""
        for name in self.tokens:
            self.scene.wait_phase("claudeaccounts", name, "Available", timeout=timeout)

    def requests(self, **match: Any) -> list[dict[str, Any]]:
        """Requests the stand-in recorded whose fields equal `match`."""
        return [
            r
            for r in self.sandbox.requests()
            if all(r.get(key) == value for key, value in match.items())
        ]

    def events(self, reason: str) -> list[str]:
        """The messages of the namespace's Events with this reason."""
        return [e.message for e in self.scene.events() if e.reason == reason]

    def in_flight(self) -> int:
        """Requests the stand-in is answering right now (a stalled one counts)."""
        return int(self.sandbox.state()["inFlight"])

    def leaked(self, text: str) -> list[str]:
        """The names of the accounts whose secret appears in `text`."""
        return [name for name, token in self.tokens.items() if token in text]
