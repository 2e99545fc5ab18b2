"""The Messages API routes of the stand-in: authenticate, apply injected faults and usage
windows, answer with a streamed reply (the configured text, or the turn a script plays), and
record the request (never its secret)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from headroom_dev.sandbox import credits, sse
from headroom_dev.sandbox.config import SandboxConfig, WindowSpec
from headroom_dev.sandbox.script import Play, Wall, first_user_text, play
from headroom_dev.sandbox.state import (
    Allowed,
    Credential,
    Fault,
    Injected,
    Rejected,
    SandboxState,
    Unauthorized,
    fingerprint,
    marker_presence,
)
from headroom_dev.sandbox.windows import seconds_until, standard_headers, unified_headers

log = logging.getLogger("headroom_dev.sandbox")

STATE = web.AppKey("state", SandboxState)
CONFIG = web.AppKey("config", SandboxConfig)
Clock = Callable[[], float]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
MAX_BODY = 64 * 1024 * 1024  # a long conversation with tool results is large

SERVER_ERROR_TEXT = "Internal server error: upstream rate limit exceeded, please retry"
BARE_429_TEXT = "Number of request tokens has exceeded your per-minute rate limit"
USAGE_429_TEXT = "This request would exceed your account's rate limit. Please try again later."


def create_app(config: SandboxConfig, clock: Clock = time.time) -> web.Application:
    from headroom_dev.sandbox import admin, usage  # they import this module's keys

    app = web.Application(client_max_size=MAX_BODY)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[STATE] = config.build_state(clock())
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    admin.add_routes(app)
    usage.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def presented_secret(request: web.Request) -> tuple[str, str | None]:
    """(scheme, secret): Claude Code sends API keys as `x-api-key` and OAuth tokens as
    `Authorization: Bearer`."""
    key = request.headers.get("x-api-key")
    if key:
        return "x-api-key", key
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        return "bearer", authorization[7:].strip()
    return "none", None


async def messages(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.in_flight += 1
    try:
        return await _messages(request, state)
    finally:
        state.in_flight -= 1


async def _messages(request: web.Request, state: SandboxState) -> web.StreamResponse:
    now = request.app[CLOCK]()
    request_id = "req_" + uuid.uuid4().hex[:24]
    body, size = await _read_body(request)
    scheme, secret = presented_secret(request)
    credential = state.find(secret) if secret else None
    entry = _describe(request, body, size, state, scheme, secret, credential)
    if body is None:
        return _finish(
            state,
            entry,
            400,
            "invalid_request",
            _error(400, "invalid_request_error", "request body is not a JSON object", request_id),
        )
    played = _play_script(state, credential, body, entry, now)
    model = str(body.get("model") or "")
    decision = state.decide(credential, scheme, now, model)
    if isinstance(decision, Unauthorized):
        return _finish(
            state,
            entry,
            401,
            "unauthorized",
            _error(401, "authentication_error", decision.message, request_id),
        )
    assert credential is not None  # decide() authenticates first
    if isinstance(decision, Injected):
        fault = decision.fault
        if fault.kind != "stall":
            return _finish(state, entry, *_fault_response(fault, request_id))
        await asyncio.sleep(fault.seconds)
        now = request.app[CLOCK]()
        entry["stalledSeconds"] = fault.seconds
        decision = state.decide_windows(credential, now, model)
    spent = credential.credits
    if spent is not None and spent.applies(str(body.get("model") or "")):
        return _credits_spent(state, entry, credential, spent, request_id, now)
    if isinstance(decision, Rejected):
        window = decision.window
        windows = credential.windows_for(model)
        headers = {"retry-after": str(seconds_until(window.resets_at, now))}
        if credential.kind == "oauth":
            headers.update(unified_headers(windows, rejected=window))
        else:
            headers.update(standard_headers(windows, now))
        response = _error(429, "rate_limit_error", USAGE_429_TEXT, request_id, headers)
        entry["window"] = window.name
        entry["resetsAt"] = window.resets_at
        return _finish(state, entry, 429, "rejected", response)
    assert isinstance(decision, Allowed)
    reply = _reply(state, body, entry, played)
    return await _answer(request, credential, body, entry, request_id, now, reply)


def _credits_spent(
    state: SandboxState,
    entry: dict[str, Any],
    credential: Credential,
    spent: credits.CreditsSpent,
    request_id: str,
    now: float,
) -> web.Response:
    """The 429 of a spent usage credit, or for an API key the 400 of a spent balance (see
    `credits`); it outranks a full plan window, since the credit is what these requests
    draw on."""
    entry["credits"] = spent.view()
    if credential.kind == "api_key":
        balance = _error(400, "invalid_request_error", credits.BALANCE_TEXT, request_id)
        return _finish(state, entry, 400, "credits_spent", balance)
    windows = list(credential.windows.values())
    headers = {"request-id": request_id, **credits.headers(spent, windows, now)}
    response = web.json_response(credits.body(spent, request_id), status=429, headers=headers)
    return _finish(state, entry, 429, "credits_spent", response)


def _play_script(
    state: SandboxState,
    credential: Credential | None,
    body: dict[str, Any],
    entry: dict[str, Any],
    now: float,
) -> Play | None:
    """Which turn of a script answers, with the checks of the tool results the request
    carries (recorded even when the answer is an error). Walls due now fill the window
    before the windows are looked at, so this very request gets the real 429."""
    if credential is None or credential.expired:
        return None
    found = state.script_for(credential, entry["session"], first_user_text(body))
    if found is None:
        return None
    key, script = found
    played = play(script, key.split(":", 1)[0], body)
    entry["script"] = {**played.view(), "wallsFired": []}
    entry["toolResults"] = [check.view() for check in played.checks]
    for index in played.walls:
        wall = script.steps[index]
        assert isinstance(wall, Wall)
        if (key, index) in state.scripts.fired or wall.credential not in (None, credential.name):
            continue
        state.scripts.fired.add((key, index))
        _fill(credential, wall, now)
        entry["script"]["wallsFired"].append({"step": index, "window": wall.window})
    return played


def _fill(credential: Credential, wall: Wall, now: float) -> None:
    """Exhaust the wall's window; a window the credential lacks is created, as the admin
    call does."""
    window = credential.windows.get(wall.window)
    if window is None:
        window = credential.windows[wall.window] = WindowSpec(wall.window, capacity=1).build(now)
    window.fill(wall.resets_at if wall.resets_at is not None else int(now) + wall.reset_in_seconds)


def _reply(
    state: SandboxState, body: dict[str, Any], entry: dict[str, Any], played: Play | None
) -> sse.Reply:
    model = str(body.get("model") or "claude-sonnet-4-5")
    if played is not None and played.blocks:
        tokens = played.input_tokens if played.input_tokens is not None else entry["inputTokens"]
        return sse.Reply.from_blocks(model, list(played.blocks), tokens, played.output_tokens)
    text = state.reply
    if entry["markerInHistory"]:
        text += f" I remember {state.marker}."
    return sse.Reply.create(model, text, entry["inputTokens"])


async def _answer(
    request: web.Request,
    credential: Credential,
    body: dict[str, Any],
    entry: dict[str, Any],
    request_id: str,
    now: float,
    reply: sse.Reply,
) -> web.StreamResponse:
    state = request.app[STATE]
    windows = credential.windows_for(str(body.get("model") or ""))
    for window in windows:
        window.charge(reply.input_tokens + reply.output_tokens)
    headers = {"request-id": request_id}
    if credential.kind == "oauth":
        headers.update(unified_headers(windows, rejected=None))
    else:
        headers.update(standard_headers(windows, now))
    entry["outputTokens"] = reply.output_tokens
    entry["stopReason"] = reply.stop_reason
    entry["toolUses"] = [b["name"] for b in reply.content if b["type"] == "tool_use"]
    _record(state, entry, 200, "ok")
    if not body.get("stream"):
        return web.json_response(sse.message(reply), headers=headers)
    response = web.StreamResponse(
        headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        for event, data in sse.events(reply):
            await response.write(sse.encode(event, data))
        await response.write_eof()
    except ConnectionError:  # the CLI was stopped mid-answer; nothing left to tell it
        pass
    return response


async def count_tokens(request: web.Request) -> web.Response:
    state = request.app[STATE]
    request_id = "req_" + uuid.uuid4().hex[:24]
    body, size = await _read_body(request)
    scheme, secret = presented_secret(request)
    credential = state.find(secret) if secret else None
    entry = _describe(request, body, size, state, scheme, secret, credential)
    if credential is None or credential.expired:
        decision = state.decide(credential, scheme, request.app[CLOCK]())
        message = decision.message if isinstance(decision, Unauthorized) else "unauthorized"
        return _finish(
            state,
            entry,
            401,
            "unauthorized",
            _error(401, "authentication_error", message, request_id),
        )
    _record(state, entry, 200, "ok")
    return web.json_response({"input_tokens": entry["inputTokens"]})


async def not_found(request: web.Request) -> web.Response:
    state = request.app[STATE]
    request_id = "req_" + uuid.uuid4().hex[:24]
    entry = {"method": request.method, "path": request.path_qs, "at": _now_iso()}
    return _finish(
        state, entry, 404, "not_found", _error(404, "not_found_error", "Not found", request_id)
    )


def _fault_response(fault: Fault, request_id: str) -> tuple[int, str, web.Response]:
    if fault.kind == "server_error":
        message = fault.message or SERVER_ERROR_TEXT
        return 500, fault.kind, _error(500, "api_error", message, request_id)
    if fault.kind == "overloaded":
        return (
            529,
            fault.kind,
            _error(529, "overloaded_error", fault.message or "Overloaded", request_id),
        )
    headers = {"retry-after": _seconds_text(fault.retry_after)}
    return (
        429,
        fault.kind,
        _error(429, "rate_limit_error", fault.message or BARE_429_TEXT, request_id, headers),
    )


def _describe(
    request: web.Request,
    body: dict[str, Any] | None,
    size: int,
    state: SandboxState,
    scheme: str,
    secret: str | None,
    credential: Credential | None,
) -> dict[str, Any]:
    """The request as tests see it through /_admin/requests: who asked and what history it
    carried. The credential appears by name, label and fingerprint, never by value."""
    conversation = body.get("messages") if body else None
    conversation = conversation if isinstance(conversation, list) else []
    in_history, present = marker_presence(conversation, state.marker)
    return {
        "at": _now_iso(),
        "method": request.method,
        "path": request.path_qs,
        "auth": scheme,
        "credential": credential.name if credential else None,
        "label": (credential.label or credential.name) if credential else None,
        "fingerprint": fingerprint(secret) if secret else None,
        "session": session_id(request, body),
        "model": body.get("model") if body else None,
        "stream": bool(body.get("stream")) if body else False,
        "messages": len(conversation),
        "markerInHistory": in_history,
        "markerPresent": present,
        "inputTokens": max(1, size // 4),  # about four bytes a token
    }


def session_id(request: web.Request, body: dict[str, Any] | None) -> str | None:
    """The CLI's session id: the `X-Claude-Code-Session-Id` header, else the `session_id`
    inside `metadata.user_id` (a JSON string; 2.1.330 sends both on every request)."""
    header = request.headers.get("X-Claude-Code-Session-Id")
    if header:
        return header
    metadata = body.get("metadata") if body else None
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    try:
        found = json.loads(user_id).get("session_id") if isinstance(user_id, str) else None
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) and found else None


def _finish(
    state: SandboxState, entry: dict[str, Any], status: int, result: str, response: web.Response
) -> web.Response:
    _record(state, entry, status, result)
    return response


def _record(state: SandboxState, entry: dict[str, Any], status: int, result: str) -> None:
    entry = state.record({**entry, "status": status, "result": result})
    log.info(
        "%s %s -> %d %s credential=%s fingerprint=%s messages=%s marker=%s",
        entry.get("method"),
        entry.get("path"),
        status,
        result,
        entry.get("credential"),
        entry.get("fingerprint"),
        entry.get("messages"),
        entry.get("markerInHistory"),
    )


def _error(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        sse.error_body(error_type, message, request_id),
        status=status,
        headers={"request-id": request_id, **(headers or {})},
    )


async def _read_body(request: web.Request) -> tuple[dict[str, Any] | None, int]:
    raw = await request.read()
    try:
        doc = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None, len(raw)
    return (doc if isinstance(doc, dict) else None), len(raw)


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
