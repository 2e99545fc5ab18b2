"""Credentials and settings for the stand-in, from a JSON/YAML file, flags, or an admin call.

A credential document:

    {"name": "alice", "kind": "oauth" | "api_key", "secret": "...", "secretEnv": "VAR",
     "label": "alice@example", "windows": [{"name": "five_hour", "capacity": 100,
     "unit": "requests" | "tokens", "periodSeconds": 18000, "resetsAt": <epoch>,
     "resetInSeconds": 600, "used": 0}],
     "script": [...steps...]}

`script` makes the stand-in's model play those steps for this credential's requests (see
`headroom_dev.sandbox.script`); a script given for a session through the admin API wins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headroom_dev.sandbox.script import Script, ScriptError, parse_script
from headroom_dev.sandbox.state import Credential, Kind, SandboxState
from headroom_dev.sandbox.windows import Unit, Window

KINDS: dict[str, Kind] = {
    "oauth": "oauth",
    "oauthtoken": "oauth",
    "oauth_token": "oauth",
    "api_key": "api_key",
    "apikey": "api_key",
}
DEFAULT_WINDOWS: tuple[tuple[str, int], ...] = (("five_hour", 1000), ("seven_day", 10000))


class ConfigError(ValueError):
    """A bad credential or window document. Messages never contain a secret."""


@dataclass(frozen=True)
class WindowSpec:
    name: str
    capacity: int = 1000
    unit: Unit = "requests"
    period_seconds: int | None = None
    resets_at: int | None = None
    reset_in_seconds: int | None = None
    used: int = 0  # how much of the window is spent already (a warning from the start)

    def build(self, now: float) -> Window:
        resets_at = self.resets_at
        if resets_at is None and self.reset_in_seconds is not None:
            resets_at = int(now) + self.reset_in_seconds
        window = Window.create(
            self.name, now, self.capacity, self.unit, self.period_seconds, resets_at
        )
        window.used = self.used
        return window


@dataclass(frozen=True)
class CredentialSpec:
    name: str
    kind: Kind
    secret: str = field(repr=False)
    label: str = ""
    windows: tuple[WindowSpec, ...] = ()
    script: Script | None = None

    def build(self, now: float) -> Credential:
        specs = self.windows or tuple(WindowSpec(n, c) for n, c in DEFAULT_WINDOWS)
        return Credential(
            name=self.name,
            kind=self.kind,
            secret=self.secret,
            label=self.label,
            windows={spec.name: spec.build(now) for spec in specs},
            script=self.script,
        )


@dataclass(frozen=True)
class SandboxConfig:
    credentials: tuple[CredentialSpec, ...] = ()
    marker: str = ""
    reply: str = "Done."

    def build_state(self, now: float) -> SandboxState:
        return SandboxState(
            credentials={spec.name: spec.build(now) for spec in self.credentials},
            marker=self.marker,
            reply=self.reply,
        )


def parse_window(doc: Any) -> WindowSpec:
    if not isinstance(doc, Mapping):
        raise ConfigError("a window must be an object")
    name = _name(doc.get("name"), "window")
    unit = doc.get("unit", "requests")
    if unit not in ("requests", "tokens"):
        raise ConfigError(f"window {name}: unit must be requests or tokens")
    return WindowSpec(
        name=name,
        capacity=_int(doc.get("capacity", 1000), f"window {name}: capacity", minimum=1),
        unit=unit,
        period_seconds=_optional_int(doc.get("periodSeconds"), f"window {name}: periodSeconds"),
        resets_at=_optional_int(doc.get("resetsAt"), f"window {name}: resetsAt"),
        reset_in_seconds=_optional_int(doc.get("resetInSeconds"), f"window {name}: resetInSeconds"),
        used=_optional_int(doc.get("used"), f"window {name}: used") or 0,
    )


def parse_credential(doc: Any, env: Mapping[str, str] = os.environ) -> CredentialSpec:
    if not isinstance(doc, Mapping):
        raise ConfigError("a credential must be an object")
    name = _name(doc.get("name"), "credential")
    kind = KINDS.get(str(doc.get("kind", "")).lower().replace("-", "_"))
    if kind is None:
        raise ConfigError(f"credential {name}: kind must be oauth or api_key")
    secret = doc.get("secret")
    if secret is None and doc.get("secretEnv"):
        secret = env.get(str(doc["secretEnv"]))
        if secret is None:
            raise ConfigError(f"credential {name}: environment variable {doc['secretEnv']} unset")
    if not isinstance(secret, str) or len(secret) < 8:
        raise ConfigError(f"credential {name}: secret must be a string of 8 characters or more")
    windows = doc.get("windows", [])
    if not isinstance(windows, list):
        raise ConfigError(f"credential {name}: windows must be a list")
    label = doc.get("label", "")
    return CredentialSpec(
        name=name,
        kind=kind,
        secret=secret,
        label=str(label),
        windows=tuple(parse_window(w) for w in windows),
        script=parse_credential_script(doc.get("script"), name),
    )


def parse_credential_script(doc: Any, credential: str) -> Script | None:
    if doc is None:
        return None
    try:
        return parse_script(doc)
    except ScriptError as exc:
        raise ConfigError(f"credential {credential}: script: {exc}") from None


def parse_config(doc: Any, env: Mapping[str, str] = os.environ) -> SandboxConfig:
    if doc is None:
        return SandboxConfig()
    if not isinstance(doc, Mapping):
        raise ConfigError("the configuration must be an object")
    credentials = doc.get("credentials", [])
    if not isinstance(credentials, list):
        raise ConfigError("credentials must be a list")
    specs = tuple(parse_credential(c, env) for c in credentials)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError("credential names must be unique")
    return SandboxConfig(
        credentials=specs,
        marker=str(doc.get("marker", "")),
        reply=str(doc.get("reply", SandboxConfig.reply)),
    )


def load_file(path: Path) -> Any:
    text = path.read_text("utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    import yaml  # only when a YAML file is given: keeps the start fast

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 253:
        raise ConfigError(f"a {what} needs a name (1-253 characters)")
    return value


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{what} must be a number >= {minimum}")
    return int(value)


def _optional_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)
