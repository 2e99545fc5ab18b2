"""The runner's inputs: the environment the operator sets in every agent pod (the pod
contract in docs/runner.md). Pure parsing, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
DEFAULT_RESUME_PROMPT = "Continue the task from where you left off."
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


class SettingsError(ValueError):
    """The pod's environment breaks the contract; the message names the variable."""


@dataclass(frozen=True)
class RunnerSettings:
    session_id: str
    prompt: str
    resume_prompt: str
    attempt: int
    expect_transcript: bool
    workdir: Path
    config_dir: Path
    credentials_file: Path | None
    termination_log: Path
    claude_bin: str
    model: str | None
    max_turns: int | None
    permission_mode: str | None
    stop_grace_seconds: float


def termination_log_path(env: Mapping[str, str]) -> Path:
    """Known even when the rest of the environment is broken, so a bad pod still reports."""
    return Path(env.get("HEADROOM_TERMINATION_LOG") or "/dev/termination-log")


def session_id_of(env: Mapping[str, str]) -> str | None:
    try:
        return str(uuid.UUID(env.get("HEADROOM_SESSION_ID", "")))
    except ValueError:
        return None


def settings_from_env(env: Mapping[str, str]) -> RunnerSettings:
    session_id = session_id_of(env)
    if session_id is None:
        raise SettingsError("HEADROOM_SESSION_ID must be a UUID chosen by the operator")
    prompt = env.get("HEADROOM_PROMPT", "")
    if not prompt.strip():
        raise SettingsError("HEADROOM_PROMPT is empty")
    home = env.get("HOME") or "/home/agent"
    credentials_file = env.get("HEADROOM_CREDENTIALS_FILE")
    return RunnerSettings(
        session_id=session_id,
        prompt=prompt,
        resume_prompt=env.get("HEADROOM_RESUME_PROMPT") or DEFAULT_RESUME_PROMPT,
        attempt=_integer(env, "HEADROOM_ATTEMPT", default=1, minimum=1) or 1,
        expect_transcript=_boolean(env, "HEADROOM_EXPECT_TRANSCRIPT"),
        workdir=Path(env.get("HEADROOM_WORKDIR") or "/workspace"),
        config_dir=Path(env.get("CLAUDE_CONFIG_DIR") or f"{home}/.claude"),
        credentials_file=Path(credentials_file) if credentials_file else None,
        termination_log=termination_log_path(env),
        claude_bin=env.get("HEADROOM_CLAUDE_BIN") or "claude",
        model=env.get("HEADROOM_MODEL") or None,
        max_turns=_integer(env, "HEADROOM_MAX_TURNS", default=None, minimum=1),
        permission_mode=env.get("HEADROOM_PERMISSION_MODE") or None,
        stop_grace_seconds=float(
            _integer(env, "HEADROOM_STOP_GRACE_SECONDS", default=10, minimum=0) or 0
        ),
    )


def _integer(env: Mapping[str, str], name: str, default: int | None, minimum: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, not {raw[:40]!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


def _boolean(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw[:40]!r}")
