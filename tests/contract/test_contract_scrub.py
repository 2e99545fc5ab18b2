"""Scrubbing: no credential reaches a log, an Event, a status field or a termination message."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from headroom.contract.scrub import REDACTED, scrub, snippet

FAST = settings(max_examples=100, deadline=None, database=None)
API_KEY = "sk-ant-api03-AbCdEf_123-XyZ"
OAUTH = "sk-ant-oat01-Qw3rTy_uiop-ASDF"
OPAQUE = "tok_9f8e7d6c5b4a"  # not Anthropic-shaped: only the surrounding syntax gives it away
GITHUB = "ghp_0123456789abcdefABCDEF0123456789abcd"
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n"
    "-----END OPENSSH PRIVATE KEY-----"
)

REMOVED: list[tuple[str, str, str]] = [
    ("api-key-alone", API_KEY, API_KEY),
    ("oauth-token-in-sentence", f"the token {OAUTH} was rejected", OAUTH),
    ("token-in-url", f"https://x.test/?key={API_KEY}&a=1", API_KEY),
    ("token-in-json", f'{{"key": "{API_KEY}"}}', API_KEY),
    ("bearer-header", f"Authorization: Bearer {OPAQUE}", OPAQUE),
    ("bearer-header-lowercase", f"authorization: bearer {OPAQUE}", OPAQUE),
    ("bearer-header-no-space", f"Authorization:Bearer  {OPAQUE}", OPAQUE),
    ("authorization-equals", f"authorization={OPAQUE}", OPAQUE),
    ("x-api-key-header", f"x-api-key: {OPAQUE}", OPAQUE),
    ("x-api-key-capitalised", f"X-Api-Key={OPAQUE}", OPAQUE),
    ("x-api-key-in-curl", f'curl -H "x-api-key: {OPAQUE}" https://api', OPAQUE),
    ("env-api-key", f"ANTHROPIC_API_KEY={OPAQUE}", OPAQUE),
    ("env-api-key-spaced", f"ANTHROPIC_API_KEY = {OPAQUE}", OPAQUE),
    ("env-oauth-token", f"CLAUDE_CODE_OAUTH_TOKEN: {OPAQUE}", OPAQUE),
    ("env-auth-token", f"export ANTHROPIC_AUTH_TOKEN={OPAQUE}", OPAQUE),
    ("env-lowercase", f"anthropic_api_key={OPAQUE}", OPAQUE),
    ("credentials-access-token", f'{{"accessToken": "{OPAQUE}"}}', OPAQUE),
    ("credentials-refresh-token", f'{{"refreshToken":"{OPAQUE}","x":1}}', OPAQUE),
    ("two-tokens", f"{API_KEY} and {OAUTH}", OAUTH),
    # Repository credentials (spec.repos): Git hosts' token formats and private keys.
    ("github-classic-token", f"push to https://x-access-token:{GITHUB}@github.com", GITHUB),
    ("github-fine-grained", "fatal: github_pat_11AAAAAAA0abcdefghijklmnop_rest", "github_pat_11"),
    ("gitlab-token", "token glpat-AbCdEfGhIjKlMnOpQrStUv rejected", "glpat-AbCd"),
    ("ssh-private-key", f"key:\n{PRIVATE_KEY}\nend", "b3BlbnNzaC1rZXk"),
    ("ssh-private-key-cut", PRIVATE_KEY[:60], "b3BlbnNzaC1rZXk"),
]


@pytest.mark.parametrize(("text", "secret"), [pytest.param(*r[1:], id=r[0]) for r in REMOVED])
def test_credential_shapes_are_removed(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned
    assert REDACTED in cleaned
    assert secret not in snippet(text)


@pytest.mark.parametrize(
    "text",
    [
        "API Error: Request rejected (429) · rate limited",
        "You've hit your 5-hour limit · resets 9:36am (UTC)",
        '{"type":"system","subtype":"api_retry","error_status":401,"error":"authentication_failed"}',
        "authorization failed for this account",
        "sk-ant is the prefix of Anthropic keys",
        "the x-api-key header was missing",
        "see gh_pages and ghp_short",
    ],
    ids=[
        "api-error",
        "limit-text",
        "retry-event",
        "auth-word",
        "prefix-only",
        "header-name-only",
        "git-words",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert scrub(text) == text


def test_header_keeps_its_name_so_the_reader_knows_what_was_there() -> None:
    assert scrub(f"Authorization: Bearer {OPAQUE}") == f"Authorization: {REDACTED}"
    assert scrub(f"x-api-key: {OPAQUE}") == f"x-api-key: {REDACTED}"
    assert scrub(f"ANTHROPIC_API_KEY={OPAQUE}") == f"ANTHROPIC_API_KEY={REDACTED}"


GIVEN: list[tuple[str, str, list[str], str]] = [
    ("value-anywhere", "prefixhunter2-secretsuffix", ["hunter2-secret"], f"prefix{REDACTED}suffix"),
    ("every-occurrence", "abcdefg abcdefg", ["abcdefg"], f"{REDACTED} {REDACTED}"),
    ("regex-characters-literal", "x a.b*c+d?(e) y", ["a.b*c+d?(e)"], f"x {REDACTED} y"),
    ("longest-first", "abcdefghij", ["abcdef", "abcdefghij"], REDACTED),
    ("empty-values-ignored", "keep me", ["", ""], "keep me"),
    ("several-values", "one111111 two222222", ["one111111", "two222222"], f"{REDACTED} {REDACTED}"),
]


@pytest.mark.parametrize(
    ("text", "secrets", "expected"), [pytest.param(*r[1:], id=r[0]) for r in GIVEN]
)
def test_given_secret_values_are_removed(text: str, secrets: list[str], expected: str) -> None:
    assert scrub(text, secrets) == expected


def test_secrets_may_be_any_iterable() -> None:
    assert scrub("hunter2-secret", (s for s in ["hunter2-secret"])) == REDACTED


# --- snippet ----------------------------------------------------------------------------------


def test_snippet_flattens_whitespace() -> None:
    assert snippet("  a\n\tb   c \r\n") == "a b c"


def test_snippet_keeps_short_text_whole() -> None:
    assert snippet("x" * 120) == "x" * 120


def test_snippet_caps_at_120_characters() -> None:
    cut = snippet("y" * 500)
    assert len(cut) == 120
    assert cut == "y" * 119 + "…"


def test_snippet_honours_a_custom_limit() -> None:
    assert snippet("abcdefghij", limit=5) == "abcd…"


@pytest.mark.parametrize("pad", range(100, 121), ids=lambda n: f"cut-{120 - n}-into-key")
def test_snippet_scrubs_before_cutting(pad: int) -> None:
    # Wherever the 120-character cut falls on a key, no piece of it survives: cutting first
    # would leave a stub too short to look like a key, or no longer equal to the given value.
    secret = "hunter2-supersecret-value"
    assert "sk-ant" not in snippet("z" * pad + " " + API_KEY + " tail")
    assert "hunter2" not in snippet("z" * pad + " " + secret + " tail", [secret])


# --- known leaks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f'ANTHROPIC_API_KEY="{OPAQUE}"',
        f"export CLAUDE_CODE_OAUTH_TOKEN='{OPAQUE}'",
        f'env: {{"ANTHROPIC_AUTH_TOKEN": "{OPAQUE}"}}',
    ],
    ids=["double-quoted", "single-quoted", "json-env"],
)
def test_quoted_env_assignments_are_scrubbed(text: str) -> None:
    assert OPAQUE not in scrub(text)


@pytest.mark.parametrize(
    "text",
    [
        f'{{"Authorization": "Bearer {OPAQUE}"}}',
        f"{{'x-api-key': '{OPAQUE}'}}",
        f"<CIMultiDict('Authorization': 'Bearer {OPAQUE}')>",
    ],
    ids=["json-authorization", "dict-x-api-key", "multidict-repr"],
)
def test_headers_printed_as_mappings_are_scrubbed(text: str) -> None:
    assert OPAQUE not in scrub(text)


def test_authorization_with_another_scheme_is_scrubbed() -> None:
    assert "dXNlcjpwYXNzd29yZA" not in scrub("Authorization: Basic dXNlcjpwYXNzd29yZA==")


# --- properties -------------------------------------------------------------------------------

TOKEN_CHARS = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
TOKENS = st.text(TOKEN_CHARS, min_size=6, max_size=60)


@FAST
@given(
    before=st.text(max_size=200),
    secret=TOKENS,
    after=st.text(max_size=200),
    times=st.integers(1, 3),
)
def test_a_given_secret_never_survives(before: str, secret: str, after: str, times: int) -> None:
    # A secret spelled inside the marker itself ("redact") would be a false alarm, not a leak.
    assume(secret not in REDACTED)
    text = before + (secret + after) * times
    assert secret not in scrub(text, [secret])
    assert secret not in snippet(text, [secret], limit=10_000)


@FAST
@given(
    before=st.text(max_size=100),
    body=st.text(TOKEN_CHARS, min_size=4, max_size=80),
    after=st.text(max_size=100),
)
def test_anthropic_shaped_keys_never_survive(before: str, body: str, after: str) -> None:
    key = "sk-ant-" + body
    assert key not in scrub(before + key + after)


@FAST
@given(
    header=st.sampled_from(
        [
            "Authorization: Bearer ",
            "authorization=",
            "x-api-key: ",
            "X-API-KEY=",
            "ANTHROPIC_API_KEY=",
            "CLAUDE_CODE_OAUTH_TOKEN: ",
        ]
    ),
    token=TOKENS,
    before=st.text(max_size=80),
    after=st.sampled_from(["", " ", "\n", ",", ";", '"', "'"]).flatmap(
        lambda sep: st.text(max_size=40).map(lambda tail: sep + tail if tail else sep)
    ),
)
def test_header_and_env_values_never_survive(
    header: str, token: str, before: str, after: str
) -> None:
    assume(token not in REDACTED and token not in header and token not in before + after)
    text = f"{before} {header}{token}{after}"
    assert token not in scrub(text)


# --- every shape a credential is printed in ----------------------------------------------------

NAMES = [
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_AUTH_TOKEN",
    "x-api-key",
    "accessToken",
    "refreshToken",
    "Authorization",
]
# How logs, shells, .env files, JSON dumps, Python reprs and pod specs print NAME and VALUE.
SHAPES = [
    "{n}={v}",
    "{n}: {v}",
    "{n} = {v}",
    '{n}="{v}"',
    "{n}='{v}'",
    "export {n}='{v}'",
    '{{"{n}": "{v}"}}',
    '{{"{n}":"{v}"}}',
    "{{'{n}': '{v}'}}",
    "<CIMultiDict('{n}': '{v}')>",
    '{{\\"{n}\\": \\"{v}\\"}}',
    '{{"name": "{n}", "value": "{v}"}}',
    "- name: {n}\n  value: {v}",
    "curl -H '{n}: {v}' https://api.example",
]
SCHEMES = ["", "Bearer ", "bearer ", "Basic ", "Token ", "Bearer  "]


def _random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def printed_credentials(draw: st.DrawFn) -> tuple[str, str]:
    name = _random_case(draw, draw(st.sampled_from(NAMES)))
    token = draw(TOKENS | TOKENS.map(lambda t: t + "==") | TOKENS.map(lambda t: "a.b/c+" + t))
    scheme = draw(st.sampled_from(SCHEMES)) if name.lower() == "authorization" else ""
    shape = draw(st.sampled_from(SHAPES))
    return shape.format(n=name, v=scheme + token), token


@settings(max_examples=300, deadline=None, database=None)
@given(
    printed=printed_credentials(),
    before=st.text(max_size=60),
    after=st.sampled_from(["", " ", "\n", ",", ";", ")", "}"]).flatmap(
        lambda sep: st.text(max_size=40).map(lambda tail: sep + tail)
    ),
)
def test_a_canary_never_survives_any_printed_shape(
    printed: tuple[str, str], before: str, after: str
) -> None:
    text, token = printed
    assume(token not in REDACTED and token not in before + after)
    cleaned = scrub(before + " " + text + after)
    assert token not in cleaned
    assert REDACTED in cleaned
    assert token not in snippet(before + " " + text + after, limit=10_000)


def test_a_mapping_keeps_its_shape_so_the_reader_knows_what_was_there() -> None:
    assert scrub(f'{{"Authorization": "Bearer {OPAQUE}"}}') == f'{{"Authorization": "{REDACTED}"}}'
    assert scrub(f"{{'x-api-key': '{OPAQUE}'}}") == f"{{'x-api-key': '{REDACTED}'}}"
    assert scrub(f'ANTHROPIC_API_KEY="{OPAQUE}"') == f'ANTHROPIC_API_KEY="{REDACTED}"'
    assert scrub(f"Authorization: Basic {OPAQUE}") == f"Authorization: {REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        f"GITHUB_TOKEN={OPAQUE}",
        f'export AWS_SECRET_ACCESS_KEY="{OPAQUE}"',
        f'{{"DB_PASSWORD": "{OPAQUE}"}}',
        f"- name: NPM_TOKEN\n  value: {OPAQUE}",
        f"SERVICE_API_KEY: '{OPAQUE}'",
    ],
    ids=["github-token", "aws-secret", "json-password", "pod-env-yaml", "service-api-key"],
)
def test_other_secret_named_env_variables_are_scrubbed(text: str) -> None:
    # An agent's tools carry credentials of their own; they leak through the same stderr.
    assert OPAQUE not in scrub(text)


@pytest.mark.parametrize(
    "text",
    [
        '"usage":{"input_tokens":5,"output_tokens":7,"cache_read_input_tokens":0}',
        "MAX_TOKENS=100 TOKEN_LIMIT=5",
        "the GITHUB_TOKEN is missing",
        "- name: GH_TOKEN\n  valueFrom: {secretKeyRef: {name: gh, key: token}}",
    ],
    ids=["usage-json", "not-secret-names", "name-in-prose", "secret-ref"],
)
def test_secret_names_without_a_value_are_kept(text: str) -> None:
    assert scrub(text) == text
