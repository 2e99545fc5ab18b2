"""Remove credentials from text before it reaches a log, an Event, a status field or a
termination message."""

from __future__ import annotations

import re
from collections.abc import Iterable

from headroom.contract.crd import EVIDENCE_CHARS

# Names whose value is a credential: HTTP headers, the agent's environment variables and the
# fields of a .credentials.json. Matched case-insensitively and anywhere (MY_ANTHROPIC_API_KEY
# too): scrubbing a word too many is harmless, missing one is a leak.
_HEADER = r"authorization"
_NAMES = (
    r"x-api-key|anthropic_api_key|claude_code_oauth_token|anthropic_auth_token"
    r"|accesstoken|refreshtoken"
)
# A quote, possibly escaped (`\"` in JSON printed inside JSON).
_Q = r"""(?:\\?["'])"""
# Everything between a name and its value, in every shape seen in logs:
#   NAME=v  NAME: v  NAME = "v"  export NAME='v'  {"NAME": "v"}  {'NAME': 'v'}
#   CIMultiDict('NAME': 'v')  {"name": "NAME", "value": "v"}  - name: NAME\n  value: v
# (the last two: a pod's env entry, as JSON and as YAML)
_BETWEEN = rf"{_Q}?(?:\s*(?:,\s*)?{_Q}?value{_Q}?)?\s*[:=]\s*{_Q}?"
REDACTED = "[redacted]"
# The value itself ends at whitespace, a quote, a backslash, a separator or a closing bracket;
# one an earlier pattern already redacted is left alone (no "[redacted]]").
_VALUE = rf"""(?!{re.escape(REDACTED)})[^\s"'\\,;)}}\]>]+"""
# An Authorization value may start with a scheme (Bearer, Basic, Digest, ...): both go.
_SCHEME = r"(?:[a-z][\w-]*\s+)?"

# Any other environment variable named like a secret (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY,
# DB_PASSWORD): an agent's tools carry their own credentials. Upper case only, so JSON fields
# such as "input_tokens" and prose stay as they are.
_ENV_SECRET = (
    r"\b[A-Z][A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY)\b"
)

# Repository credentials a session's agent works with (spec.repos): the token formats of the
# common Git hosts, and a private key block (cut at the end of the text when it is truncated).
_GIT_TOKENS = (
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{20,})"
)
_PRIVATE_KEY = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)"

_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}"),
    re.compile(_GIT_TOKENS),
    re.compile(_PRIVATE_KEY, re.DOTALL),
    re.compile(rf"(?i)((?:{_HEADER}){_BETWEEN}){_SCHEME}{_VALUE}"),
    re.compile(rf"(?i)((?:{_NAMES}){_BETWEEN}){_VALUE}"),
    re.compile(rf"({_ENV_SECRET}{_BETWEEN}){_VALUE}"),
]


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret value and every credential-shaped token in `text`."""
    for value in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + REDACTED, text)
    return text


def snippet(text: str, secrets: Iterable[str] = (), limit: int = EVIDENCE_CHARS) -> str:
    """A one-line, scrubbed excerpt of at most `limit` characters, for evidence fields."""
    flat = " ".join(scrub(text, secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
