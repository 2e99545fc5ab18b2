"""`GET /api/oauth/usage`: the plan utilization endpoint that Claude Code's `/usage` panel and
usage monitors read, served from the same windows that drive the stand-in's rate-limit
headers.

What the real endpoint does (tests/runner/data/usage_endpoint.json records the evidence):
an OAuth bearer with the `user:profile` scope gets `five_hour`, `seven_day`,
`seven_day_opus`, `seven_day_sonnet` (each `{utilization: 0-100, resets_at: ISO 8601}` or
null) and `extra_usage`; a token without that scope (what `claude setup-token` mints) gets
403 `permission_error`; the endpoint is strictly rate-limited per token (429). API keys have
no access to it. Polling it spends no model quota: nothing here charges a window.

Admin calls (JSON): `POST /_admin/usage {minIntervalSeconds}` sets the per-token rate limit;
`POST /_admin/credentials/{name}/scopes {scopes: [...]}` gives a credential other scopes
(`["user:inference"]` models a setup token); `POST /_admin/credentials/{name}/windows/{window}/use
{used}` sets how much of a window is spent.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from headroom_dev.sandbox import sse
from headroom_dev.sandbox.server import CLOCK, STATE, _finish, _now_iso, presented_secret
from headroom_dev.sandbox.state import Credential, fingerprint
from headroom_dev.sandbox.windows import Window

PATH = "/api/oauth/usage"
PROFILE_SCOPE = "user:profile"
# A `claude /login` token; `claude setup-token` mints only user:inference.
LOGIN_SCOPES = ("user:inference", "user:profile", "user:sessions:claude_code")
REPORTED_WINDOWS = ("five_hour", "seven_day", "seven_day_opus", "seven_day_sonnet")
DEFAULT_MIN_INTERVAL = 60.0  # the real limit is unpublished; monitors poll about once a minute
SCOPE_TEXT = "OAuth token does not meet scope requirement user:profile"
API_KEY_TEXT = "OAuth authentication is required for this endpoint"
RATE_LIMIT_TEXT = "Rate limited. Please try again later."


@dataclass
class UsageEndpoint:
    """The endpoint's own state: the per-token rate limit and each credential's scopes."""

    min_interval: float = DEFAULT_MIN_INTERVAL
    scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by credential name
    last_read: dict[str, float] = field(default_factory=dict)  # by token fingerprint

    def scopes_of(self, credential: Credential) -> tuple[str, ...]:
        return self.scopes.get(credential.name, LOGIN_SCOPES)

    def reset(self) -> None:
        self.min_interval = DEFAULT_MIN_INTERVAL
        self.scopes.clear()
        self.last_read.clear()


USAGE = web.AppKey("usage", UsageEndpoint)


def add_routes(app: web.Application) -> None:
    app[USAGE] = UsageEndpoint()
    app.router.add_get(PATH, usage)
    app.router.add_post("/_admin/usage", set_usage)
    app.router.add_post("/_admin/credentials/{name}/scopes", set_scopes)
    app.router.add_post("/_admin/credentials/{name}/windows/{window}/use", use_window)


async def usage(request: web.Request) -> web.Response:
    endpoint, state = request.app[USAGE], request.app[STATE]
    now = request.app[CLOCK]()
    request_id = "req_" + uuid.uuid4().hex[:24]
    scheme, secret = presented_secret(request)
    credential = state.find(secret) if secret else None
    entry: dict[str, Any] = {
        "at": _now_iso(),
        "method": request.method,
        "path": request.path_qs,
        "auth": scheme,
        "credential": credential.name if credential else None,
        "label": (credential.label or credential.name) if credential else None,
        "fingerprint": fingerprint(secret) if secret else None,
        "beta": request.headers.get("anthropic-beta"),
    }
    refusal = _refusal(endpoint, credential, scheme, secret, now, request_id)
    if refusal is not None:
        status, result, response = refusal
        return _finish(state, entry, status, result, response)
    assert credential is not None and secret is not None  # _refusal checked both
    endpoint.last_read[fingerprint(secret)] = now
    for window in credential.windows.values():
        window.roll(now)
    response = web.json_response(report(credential), headers={"request-id": request_id})
    return _finish(state, entry, 200, "usage", response)


def _refusal(
    endpoint: UsageEndpoint,
    credential: Credential | None,
    scheme: str,
    secret: str | None,
    now: float,
    request_id: str,
) -> tuple[int, str, web.Response] | None:
    """(status, result, response) when the request is not answered with a report. Order:
    authenticate, then the kind of credential and its scopes, then the rate limit (a 403
    does not count as a read)."""
    if credential is None or credential.expired or secret is None:
        text = "Invalid bearer token" if scheme == "bearer" else "invalid x-api-key"
        return 401, "unauthorized", _error(401, "authentication_error", text, request_id)
    if credential.kind != "oauth" or scheme != "bearer":
        return 403, "usage_forbidden", _error(403, "permission_error", API_KEY_TEXT, request_id)
    if PROFILE_SCOPE not in endpoint.scopes_of(credential):
        details = {"required_scopes": [PROFILE_SCOPE], "error_code": "oauth_scope_insufficient"}
        forbidden = _error(403, "permission_error", SCOPE_TEXT, request_id, details=details)
        return 403, "usage_forbidden", forbidden
    last = endpoint.last_read.get(fingerprint(secret))
    if last is not None and now - last < endpoint.min_interval:
        wait = max(1, math.ceil(endpoint.min_interval - (now - last)))
        limited = _error(429, "rate_limit_error", RATE_LIMIT_TEXT, request_id)
        limited.headers["retry-after"] = str(wait)
        return 429, "usage_rate_limited", limited
    return None


def report(credential: Credential) -> dict[str, Any]:
    """The endpoint's body: the four plan windows (null when the credential has none of that
    name) and extra usage, which the stand-in's subscriptions do not have enabled."""
    doc: dict[str, Any] = {name: None for name in REPORTED_WINDOWS}
    for name in REPORTED_WINDOWS:
        window = credential.windows.get(name)
        if window is not None:
            doc[name] = window_report(window)
    doc["extra_usage"] = {
        "is_enabled": False,
        "monthly_limit": None,
        "used_credits": None,
        "utilization": None,
    }
    return doc


def window_report(window: Window) -> dict[str, Any]:
    """Utilization in percent (0-100), as the endpoint reports it; reset time in ISO 8601."""
    resets_at = dt.datetime.fromtimestamp(window.resets_at, dt.UTC)
    return {
        "utilization": round(min(1.0, window.utilization) * 100, 2),
        "resets_at": resets_at.isoformat().replace("+00:00", "Z"),
    }


def _error(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    details: dict[str, Any] | None = None,
) -> web.Response:
    body = sse.error_body(error_type, message, request_id)
    if details is not None:
        body["error"]["details"] = details
    return web.json_response(body, status=status, headers={"request-id": request_id})


async def set_usage(request: web.Request) -> web.Response:
    doc = await _body(request)
    endpoint = request.app[USAGE]
    if "minIntervalSeconds" in doc:
        value = doc["minIntervalSeconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise _bad_request("minIntervalSeconds must be a number >= 0")
        endpoint.min_interval = float(value)
        endpoint.last_read.clear()
    return web.json_response({"minIntervalSeconds": endpoint.min_interval})


async def set_scopes(request: web.Request) -> web.Response:
    credential = _credential(request)
    scopes = (await _body(request)).get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise _bad_request("scopes must be a list of strings")
    request.app[USAGE].scopes[credential.name] = tuple(scopes)
    return web.json_response({"name": credential.name, "scopes": scopes})


async def use_window(request: web.Request) -> web.Response:
    """Set how much of a window is spent: {used: n} (at most its capacity)."""
    credential = _credential(request)
    window = credential.windows.get(request.match_info["window"])
    if window is None:
        raise _bad_request(f"credential has no window {request.match_info['window'][:64]}")
    used = (await _body(request)).get("used")
    if isinstance(used, bool) or not isinstance(used, int) or used < 0:
        raise _bad_request("used must be an integer >= 0")
    window.used = min(used, window.capacity)
    return web.json_response(window.view())


def _credential(request: web.Request) -> Credential:
    name = request.match_info["name"]
    credential = request.app[STATE].credentials.get(name)
    if credential is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no credential named {name[:64]}"}),
            content_type="application/json",
        )
    return credential


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        doc = await request.json()
    except ValueError:
        raise _bad_request("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise _bad_request("the body must be a JSON object")
    return doc


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
