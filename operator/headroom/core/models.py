"""Which usage windows a session's model draws on, and what an account can no longer run.

What this is based on (Claude Code 2.1.330, hack/claude-code; the recordings are in
tests/runner/data):

- The plan's weekly per-model windows are `seven_day_opus` and `seven_day_sonnet`: the CLI's
  rateLimitType enum lists them, and it names them "Opus limit" and "Sonnet limit". A
  rejection on one stops only requests for that family: `--model opus` walls on
  seven_day_opus (walled_seven_day_opus_oauth), while a Sonnet run on the same account
  completes (seven_day_opus_full_sonnet_runs_oauth). The CLI does not switch model by itself.
- Every other window (five_hour, seven_day, the credit lane, ...) counts every request.
- Without --model the CLI picks its default from the credential. A subscription token given
  as CLAUDE_CODE_OAUTH_TOKEN carries no subscription type, so the default is Sonnet (recorded:
  claude-sonnet-5-5); an API key defaults to Opus (claude-opus-5-5; API keys report no
  per-model windows anyway); a credentials file names its subscription type, and the CLI
  defaults Max, and Pro, Team or Enterprise unless only Sonnet is entitled, to Opus. The
  operator never parses that file, so a CredentialsFile account's default counts as both.
- Aliases (the CLI's list): sonnet, opus, haiku, fable, best (the Fable default when enabled,
  else Opus: counted as Opus), each with an optional [1m]; opusplan is Opus while planning
  and Sonnet otherwise, so it draws on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from headroom.core.accounts import Account, CredentialType, ModelCredit

# Model family -> the weekly window only that family draws on.
MODEL_WINDOWS = {"opus": "seven_day_opus", "sonnet": "seven_day_sonnet"}
MODEL_SCOPED_WINDOWS = frozenset(MODEL_WINDOWS.values())
FAMILY_NAMES = {"opus": "Opus", "sonnet": "Sonnet"}
DEFAULT_MODEL = "default"  # how status records a session that names no model

_DEFAULT_FAMILIES = {
    CredentialType.OAUTH_TOKEN: frozenset({"sonnet"}),
    CredentialType.API_KEY: frozenset({"opus"}),
    CredentialType.CREDENTIALS_FILE: frozenset({"opus", "sonnet"}),
}
_ALIASES = {"best": frozenset({"opus"}), "opusplan": frozenset({"opus", "sonnet"})}


def model_key(model: str | None) -> str:
    """A session's spec.model as the account's records name it: trimmed, lower case, without
    the CLI's [1m] context suffix; DEFAULT_MODEL when it names none."""
    text = (model or "").strip().lower()
    text = text.removesuffix("[1m]").strip()
    return text if text and text != DEFAULT_MODEL else DEFAULT_MODEL


def families(model: str | None, credential_type: CredentialType) -> frozenset[str]:
    """The model families (of MODEL_WINDOWS) a session with this spec.model runs on, on an
    account with this credential type. Haiku, Fable and unknown models: none."""
    key = model_key(model)
    if key == DEFAULT_MODEL:
        return _DEFAULT_FAMILIES[credential_type]
    if key in _ALIASES:
        return _ALIASES[key]
    name = key.removeprefix("claude-")
    return frozenset(f for f in MODEL_WINDOWS if name == f or name.startswith(f + "-"))


def model_windows(model: str | None, credential_type: CredentialType) -> frozenset[str]:
    """The per-model windows the session draws on (besides the ones every request does)."""
    return frozenset(MODEL_WINDOWS[f] for f in families(model, credential_type))


def draws_on(window: str, model: str | None, credential_type: CredentialType) -> bool:
    """Whether a session's requests count against `window` on such an account."""
    return window not in MODEL_SCOPED_WINDOWS or window in model_windows(model, credential_type)


def live_model_credits(account: Account, now: datetime) -> list[ModelCredit]:
    return [
        c
        for c in account.model_credits
        if c.retry_at > now and c.credentials_hash == account.credentials_hash
    ]


def model_walls(account: Account, now: datetime) -> list[tuple[str, datetime]]:
    """The per-model windows walled at `now`, with their reset times (status.windows entries
    rejected on a per-model window whose reset is still ahead)."""
    return sorted(
        (w.name, w.resets_at)
        for w in account.windows
        if w.name in MODEL_SCOPED_WINDOWS
        and w.status == "rejected"
        and w.resets_at is not None
        and w.resets_at > now
    )


@dataclass(frozen=True)
class ModelBlock:
    """Why an account cannot serve one session's model now."""

    message: str
    until: datetime | None  # when it ends by itself (a window's reset); None: a recheck


def blocked_for(account: Account, model: str | None, now: datetime) -> ModelBlock | None:
    """Why the account cannot take a session of this model, or None if it can."""
    key = model_key(model)
    for credit in live_model_credits(account, now):
        if credit.model == key:
            what = "its default model" if key == DEFAULT_MODEL else key
            return ModelBlock(f"lacks the usage credits {what} needs", None)
    needed = model_windows(model, account.credential_type)
    walls = [(w, t) for w, t in model_walls(account, now) if w in needed]
    if not walls:
        return None
    window, until = max(walls, key=lambda wall: wall[1])
    return ModelBlock(f"reached its {window} limit until {_clock(until)}", until)


def warned(account: Account, model: str | None, now: datetime) -> bool:
    """A window the session draws on is past a warning threshold (allowed_warning) and has not
    reset since: the account still runs it, but is the last choice."""
    return any(
        w.warning
        and (w.resets_at is None or w.resets_at > now)
        and draws_on(w.name, model, account.credential_type)
        for w in account.windows
    )


def model_limits(account: Account, now: datetime) -> list[str]:
    """Every per-model limit the account holds now, as phrases for its status."""
    limits = [
        f"{window} ({_family_of(window)} models) until {_clock(until)}"
        for window, until in model_walls(account, now)
    ]
    limits += [
        f"{c.model if c.model != DEFAULT_MODEL else 'the default model'} needs usage credits "
        f"(learned {_clock(c.learned_at)}, checked again {_clock(c.retry_at)} or when the "
        "Secret changes)"
        for c in live_model_credits(account, now)
    ]
    return limits


def _family_of(window: str) -> str:
    return next(FAMILY_NAMES[f] for f, w in MODEL_WINDOWS.items() if w == window)


def _clock(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
