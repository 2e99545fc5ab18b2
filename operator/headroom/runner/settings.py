"""The runner's inputs: the environment the operator sets in every agent pod (the pod
contract in docs/runner.md). Pure parsing, no I/O."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headroom.contract import pod as c

CREDENTIAL_ENV = c.CREDENTIAL_ENV
DEFAULT_RESUME_PROMPT = "Continue the task from where you left off."
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


class SettingsError(ValueError):
    """The pod's environment breaks the contract; the message names the variable."""


@dataclass(frozen=True)
class ClaudeOptions:
    """spec.claude as the operator resolved it for this attempt (HEADROOM_CLAUDE)."""

    allowed_tools: tuple[str, ...] = ()
    disallowed_tools: tuple[str, ...] = ()
    append_system_prompt: str | None = None
    system_prompt: str | None = None
    settings: dict[str, Any] | None = None
    max_budget_usd: float | None = None
    output_schema: dict[str, Any] | None = None
    effort: str | None = None
    fallback_model: str | None = None
    mcp_config: Path | None = None
    mcp_config_secret: bool = False


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
    claude: ClaudeOptions = field(default_factory=ClaudeOptions)
    # Where secret values sit that are not credentials of the account: scrubbed from output.
    scrub_env: tuple[str, ...] = ()
    scrub_dir: Path | None = None
    repo_credential_files: tuple[Path, ...] = ()


def termination_log_path(env: Mapping[str, str]) -> Path:
    """Known even when the rest of the environment is broken, so a bad pod still reports."""
    return Path(env.get(c.TERMINATION_LOG) or c.TERMINATION_MESSAGE_PATH)


def session_id_of(env: Mapping[str, str]) -> str | None:
    try:
        return str(uuid.UUID(env.get(c.SESSION_ID, "")))
    except ValueError:
        return None


def settings_from_env(env: Mapping[str, str]) -> RunnerSettings:
    session_id = session_id_of(env)
    if session_id is None:
        raise SettingsError(f"{c.SESSION_ID} must be a UUID chosen by the operator")
    prompt = env.get(c.PROMPT, "")
    if not prompt.strip():
        raise SettingsError(f"{c.PROMPT} is empty")
    home = env.get(c.HOME_ENV) or c.HOME
    credentials_file = env.get(c.CREDENTIALS_FILE)
    return RunnerSettings(
        session_id=session_id,
        prompt=prompt,
        resume_prompt=env.get(c.RESUME_PROMPT) or DEFAULT_RESUME_PROMPT,
        attempt=_integer(env, c.ATTEMPT, default=1, minimum=1) or 1,
        expect_transcript=_boolean(env, c.EXPECT_TRANSCRIPT),
        workdir=Path(env.get(c.WORKDIR) or c.WORKSPACE),
        config_dir=Path(env.get(c.CONFIG_DIR_ENV) or f"{home}/.claude"),
        credentials_file=Path(credentials_file) if credentials_file else None,
        termination_log=termination_log_path(env),
        claude_bin=env.get(c.CLAUDE_BIN) or "claude",
        model=env.get(c.MODEL) or None,
        max_turns=_integer(env, c.MAX_TURNS, default=None, minimum=1),
        permission_mode=env.get(c.PERMISSION_MODE) or None,
        stop_grace_seconds=float(_integer(env, c.STOP_GRACE_SECONDS, default=10, minimum=0) or 0),
        claude=claude_options(env.get(c.CLAUDE_OPTIONS, ""), env.get(c.MCP_CONFIG, "")),
        scrub_env=tuple(n for n in env.get(c.SCRUB_ENV, "").split(",") if n),
        scrub_dir=Path(env[c.SCRUB_DIR]) if env.get(c.SCRUB_DIR) else None,
        repo_credential_files=repo_credential_files(
            env.get(c.REPOS, ""), Path(env.get(c.GIT_CREDENTIALS_ENV) or c.GIT_CREDENTIALS_DIR)
        ),
    )


def claude_options(raw: str, mcp_config: str = "") -> ClaudeOptions:
    doc = _json_object(raw, c.CLAUDE_OPTIONS) if raw.strip() else {}
    budget = doc.get("maxBudgetUSD")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float)):
        raise SettingsError(f"{c.CLAUDE_OPTIONS}.maxBudgetUSD must be a number")
    return ClaudeOptions(
        allowed_tools=_strings(doc, "allowedTools"),
        disallowed_tools=_strings(doc, "disallowedTools"),
        append_system_prompt=_text(doc, "appendSystemPrompt"),
        system_prompt=_text(doc, "systemPrompt"),
        settings=_own_settings(_object(doc, "settings")),
        max_budget_usd=float(budget) if budget is not None else None,
        output_schema=_object(doc, "outputSchema"),
        effort=_text(doc, "effort"),
        fallback_model=_text(doc, "fallbackModel"),
        mcp_config=Path(mcp_config) if mcp_config else None,
        mcp_config_secret=doc.get("mcpConfigSecret") is True,
    )


def _own_settings(settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """Settings without what would replace the account's credential or the pod contract's
    variables. The schema refuses them already; a cluster without its CEL rules still must
    not let settings send the account's token elsewhere."""
    if settings is None:
        return None
    kept = {k: v for k, v in settings.items() if k != "apiKeyHelper"}
    env = kept.get("env")
    if isinstance(env, dict):
        kept["env"] = {
            k: v
            for k, v in env.items()
            if not k.startswith(c.RESERVED_ENV_PREFIX) and k not in c.RESERVED_ENV
        }
    return kept


def repo_credential_files(raw: str, root: Path) -> tuple[Path, ...]:
    """The mounted git credentials of HEADROOM_REPOS: their contents are scrubbed too."""
    if not raw.strip():
        return ()
    try:
        repos = json.loads(raw)
    except ValueError:
        raise SettingsError(f"{c.REPOS} is not JSON") from None
    if not isinstance(repos, list):
        raise SettingsError(f"{c.REPOS} must be a JSON list")
    files = []
    for repo in repos:
        creds = repo.get("credentials") if isinstance(repo, dict) else None
        if isinstance(creds, dict) and isinstance(creds.get("file"), str):
            files.append(root / creds["file"])  # an absolute file stays itself
    return tuple(files)


def _json_object(raw: str, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise SettingsError(f"{name} is not JSON") from None
    if not isinstance(doc, dict):
        raise SettingsError(f"{name} must be a JSON object")
    return doc


def _strings(doc: dict[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{c.CLAUDE_OPTIONS}.{key} must be a list of strings")
    return tuple(value)


def _text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise SettingsError(f"{c.CLAUDE_OPTIONS}.{key} must be a string")
    return value or None


def _object(doc: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, dict):
        raise SettingsError(f"{c.CLAUDE_OPTIONS}.{key} must be an object")
    return value


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
