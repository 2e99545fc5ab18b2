"""What the stand-in knows: credentials with their usage windows, injected faults, and the
record of every request. Plain data and decisions; the HTTP layer lives in `server.py`."""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from headroom_dev.sandbox.credits import CreditsSpent
from headroom_dev.sandbox.script import Script, Scripts
from headroom_dev.sandbox.windows import Window, binding_window, draws_on

Kind = Literal["api_key", "oauth"]
FaultKind = Literal["server_error", "overloaded", "rate_limit", "stall"]
FAULT_KINDS: tuple[FaultKind, ...] = ("server_error", "overloaded", "rate_limit", "stall")
MAX_RECORDS = 10_000


def fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a secret, safe to log."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


@dataclass
class Credential:
    name: str
    kind: Kind
    secret: str = field(repr=False)
    label: str = ""
    windows: dict[str, Window] = field(default_factory=dict)
    expired: bool = False
    script: Script | None = None  # plays the model for this credential's requests
    credits: CreditsSpent | None = None  # its usage credit is spent (a 429 until cleared)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.secret)

    def windows_for(self, model: str) -> list[Window]:
        """The windows a request for `model` draws on (a per-model weekly window only for its
        own model family)."""
        return [w for w in self.windows.values() if draws_on(w.name, model)]

    def view(self) -> dict[str, Any]:
        """Everything about the credential except the secret itself."""
        return {
            "name": self.name,
            "kind": self.kind,
            "label": self.label or self.name,
            "fingerprint": self.fingerprint,
            "expired": self.expired,
            "windows": [w.view() for w in self.windows.values()],
            "scripted": self.script is not None,
            "creditsSpent": self.credits.view() if self.credits else None,
        }


@dataclass
class Fault:
    kind: FaultKind
    remaining: int
    credential: str | None = None  # None: whichever credential asks next
    retry_after: float = 1.0  # for rate_limit: the `retry-after` seconds to send
    seconds: float = 5.0  # for stall: how long to hold the request before answering
    message: str = ""

    def view(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "credential": self.credential,
            "retryAfter": self.retry_after,
            "seconds": self.seconds,
            "message": self.message,
        }


# What to do with one API request, decided before any byte of the answer is written.
@dataclass(frozen=True)
class Unauthorized:
    message: str


@dataclass(frozen=True)
class Injected:
    fault: Fault


@dataclass(frozen=True)
class Rejected:
    window: Window


@dataclass(frozen=True)
class Allowed:
    pass


Decision = Unauthorized | Injected | Rejected | Allowed


@dataclass
class SandboxState:
    credentials: dict[str, Credential] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    records: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_RECORDS))
    marker: str = ""
    reply: str = "Done."
    sequence: int = 0
    in_flight: int = 0  # API requests being answered right now (a stalled one counts)
    scripts: Scripts = field(default_factory=Scripts)  # per session; fired walls

    def restore(self, fresh: SandboxState) -> None:
        """Take over another state's contents; the sequence keeps counting so `since=N`
        queries stay meaningful across resets."""
        self.credentials, self.faults = fresh.credentials, fresh.faults
        self.marker, self.reply = fresh.marker, fresh.reply
        self.scripts = Scripts()
        self.records.clear()

    def script_for(
        self, credential: Credential, session: str | None, task: str = ""
    ) -> tuple[str, Script] | None:
        """(key, script) that plays this request: the session's, else the one whose word the
        task holds (its walls fire once per conversation), else the credential's."""
        if session and session.lower() in self.scripts.sessions:
            return f"session:{session.lower()}", self.scripts.sessions[session.lower()]
        by_prompt = self.scripts.for_prompt(task) if task else None
        if by_prompt is not None:
            return f"{by_prompt[0]}:{(session or '').lower()}", by_prompt[1]
        if credential.script is not None:
            return f"credential:{credential.name}", credential.script
        return None

    def find(self, secret: str) -> Credential | None:
        for credential in self.credentials.values():
            if credential.secret == secret:
                return credential
        return None

    def decide(
        self, credential: Credential | None, scheme: str, now: float, model: str = ""
    ) -> Decision:
        """Anthropic's order: authenticate, then (our additions) injected faults, then the
        usage windows."""
        if credential is None:
            if scheme == "x-api-key":
                return Unauthorized("invalid x-api-key")
            if scheme == "bearer":
                return Unauthorized("Invalid bearer token")
            return Unauthorized("x-api-key header is required")
        if credential.expired:
            if credential.kind == "oauth":
                return Unauthorized(
                    "OAuth token has expired. Please obtain a new token or refresh your "
                    "existing token."
                )
            return Unauthorized("invalid x-api-key")
        fault = self.take_fault(credential.name)
        if fault is not None:
            return Injected(fault)
        return self.decide_windows(credential, now, model)

    def decide_windows(
        self, credential: Credential, now: float, model: str = ""
    ) -> Rejected | Allowed:
        for window in credential.windows.values():
            window.roll(now)
        blocked = binding_window(credential.windows_for(model))
        return Rejected(blocked) if blocked is not None else Allowed()

    def take_fault(self, credential: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.credential in (None, credential):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.sequence += 1
        entry = {"seq": self.sequence, **entry}
        self.records.append(entry)
        return entry


def marker_presence(messages: list[Any], marker: str) -> tuple[bool, bool]:
    """(marker in an earlier turn, marker anywhere in the messages).

    The new prompt is the last text block of the last user message; everything else is the
    history the CLI sent along. (Measured: when the previous answer was an API error, the CLI
    merges the old and the new prompt into one user message, as separate text blocks.)
    """
    if not marker:
        return False, False
    blocks: list[tuple[int, str]] = []  # (message index, text), in order
    for index, message in enumerate(messages):
        if isinstance(message, dict):
            blocks += [(index, text) for text in _texts(message.get("content"))]
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    prompt_at = max((n for n, (i, _) in enumerate(blocks) if users and i == users[-1]), default=-1)
    earlier = any(marker in text for n, (_, text) in enumerate(blocks) if n != prompt_at)
    return earlier, any(marker in text for _, text in blocks)


def _texts(content: Any) -> list[str]:
    """The text of each content block (tool results and thinking included), in order."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            for key in ("text", "thinking", "content"):
                value = block.get(key)
                if isinstance(value, str):
                    texts.append(value)
                elif isinstance(value, list):
                    texts.append("\n".join(_texts(value)))
    return texts
