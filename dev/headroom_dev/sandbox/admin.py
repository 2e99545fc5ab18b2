"""`/_admin/...`: how tests, demos and drills steer the stand-in. JSON in, JSON out; no
answer ever carries a secret (credentials appear by name, label and fingerprint)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from headroom_dev.sandbox import credits
from headroom_dev.sandbox.config import ConfigError, WindowSpec, parse_credential
from headroom_dev.sandbox.script import Script, ScriptError, parse_script
from headroom_dev.sandbox.server import CLOCK, CONFIG, STATE
from headroom_dev.sandbox.state import FAULT_KINDS, Credential, Fault, SandboxState
from headroom_dev.sandbox.usage import USAGE


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_admin/health", health)
    app.router.add_get("/_admin/state", show_state)
    app.router.add_post("/_admin/reset", reset)
    app.router.add_post("/_admin/settings", settings)
    app.router.add_get("/_admin/credentials", list_credentials)
    app.router.add_post("/_admin/credentials", add_credential)
    app.router.add_post("/_admin/credentials/{name}/expire", expire)
    app.router.add_post("/_admin/credentials/{name}/revive", revive)
    app.router.add_post("/_admin/credentials/{name}/windows/reset", reset_windows)
    app.router.add_post("/_admin/credentials/{name}/credits/spend", spend_credits)
    app.router.add_post("/_admin/credentials/{name}/credits/refill", refill_credits)
    app.router.add_post("/_admin/credentials/{name}/windows/{window}/fill", fill_window)
    app.router.add_post("/_admin/faults", add_fault)
    app.router.add_get("/_admin/faults", list_faults)
    app.router.add_delete("/_admin/faults", clear_faults)
    app.router.add_get("/_admin/requests", list_requests)
    app.router.add_delete("/_admin/requests", clear_requests)
    app.router.add_get("/_admin/tool-results", list_tool_results)
    app.router.add_get("/_admin/scripts", list_scripts)
    for path in (
        "/_admin/sessions/{session}/script",
        "/_admin/credentials/{name}/script",
        "/_admin/prompts/{word}/script",
    ):
        app.router.add_put(path, set_script)
        app.router.add_post(path, set_script)
        app.router.add_get(path, show_script)
        app.router.add_delete(path, delete_script)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def show_state(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "marker": state.marker,
            "reply": state.reply,
            "credentials": [c.view() for c in state.credentials.values()],
            "faults": [f.view() for f in state.faults],
            "requests": state.sequence,
            "inFlight": state.in_flight,
        }
    )


async def reset(request: web.Request) -> web.Response:
    """Back to the configuration the server started with: credentials, windows, no faults,
    no recorded requests."""
    request.app[STATE].restore(request.app[CONFIG].build_state(request.app[CLOCK]()))
    request.app[USAGE].reset()
    return web.json_response({"ok": True})


async def settings(request: web.Request) -> web.Response:
    doc = await _body(request)
    state = request.app[STATE]
    if "marker" in doc:
        state.marker = str(doc["marker"])
    if "reply" in doc:
        state.reply = str(doc["reply"])
    return web.json_response({"marker": state.marker, "reply": state.reply})


async def list_credentials(request: web.Request) -> web.Response:
    return web.json_response(
        {"credentials": [c.view() for c in request.app[STATE].credentials.values()]}
    )


async def add_credential(request: web.Request) -> web.Response:
    """Add or replace a credential: {name, kind, secret|secretEnv, label?, windows?}."""
    try:
        spec = parse_credential(await _body(request))
    except ConfigError as exc:
        raise _bad_request(str(exc)) from None
    credential = spec.build(request.app[CLOCK]())
    request.app[STATE].credentials[spec.name] = credential
    return web.json_response(credential.view(), status=201)


async def expire(request: web.Request) -> web.Response:
    credential = _credential(request)
    credential.expired = True
    return web.json_response(credential.view())


async def revive(request: web.Request) -> web.Response:
    credential = _credential(request)
    credential.expired = False
    return web.json_response(credential.view())


async def fill_window(request: web.Request) -> web.Response:
    """Exhaust one window: {resetsAt?: epoch, resetInSeconds?: n, capacity?: n}. A window the
    credential does not have yet is created, so drills can fill any window name."""
    credential = _credential(request)
    doc = await _body(request)
    name, now = request.match_info["window"], request.app[CLOCK]()
    try:
        resets_at = credits.optional_int(doc, "resetsAt")
        reset_in = credits.optional_int(doc, "resetInSeconds")
        if resets_at is None and reset_in is not None:
            resets_at = int(now) + reset_in
        window = credential.windows.get(name)
        if window is None:
            spec = WindowSpec(name, capacity=credits.optional_int(doc, "capacity") or 1)
            window = credential.windows[name] = spec.build(now)
    except (ConfigError, ValueError) as exc:
        raise _bad_request(str(exc)) from None
    window.fill(resets_at)
    return web.json_response(credential.view())


async def spend_credits(request: web.Request) -> web.Response:
    """The credential's usage credit is spent: {resetsAt?, resetInSeconds?, model?, reason?}
    (no reset given: the 429 names no refresh time; `model`: only requests for it)."""
    credential = _credential(request)
    doc = await _body(request)
    try:
        credential.credits = credits.parse(doc, request.app[CLOCK]())
    except ValueError as exc:
        raise _bad_request(str(exc)) from None
    return web.json_response(credential.view())


async def refill_credits(request: web.Request) -> web.Response:
    credential = _credential(request)
    credential.credits = None
    return web.json_response(credential.view())


async def reset_windows(request: web.Request) -> web.Response:
    """Empty every window of a credential, or only {window: name}."""
    credential = _credential(request)
    doc = await _body(request)
    now = request.app[CLOCK]()
    for name, window in credential.windows.items():
        if doc.get("window") in (None, name):
            window.reset(now)
    return web.json_response(credential.view())


async def add_fault(request: web.Request) -> web.Response:
    """Queue faults: {kind: server_error|overloaded|rate_limit|stall, count, credential?,
    retryAfter?, seconds?, message?}. Each request answered by a fault uses up one."""
    doc = await _body(request)
    state = request.app[STATE]
    kind = doc.get("kind")
    if kind not in FAULT_KINDS:
        raise _bad_request(f"kind must be one of {', '.join(FAULT_KINDS)}")
    credential = doc.get("credential")
    if credential is not None and credential not in state.credentials:
        raise _bad_request(f"no credential named {credential}")
    try:
        fault = Fault(
            kind=kind,
            remaining=int(doc.get("count", 1)),
            credential=credential,
            retry_after=float(doc.get("retryAfter", 1)),
            seconds=float(doc.get("seconds", 5)),
            message=str(doc.get("message", "")),
        )
    except (TypeError, ValueError):
        raise _bad_request("count, retryAfter and seconds must be numbers") from None
    if fault.remaining < 1 or fault.retry_after < 0 or fault.seconds < 0:
        raise _bad_request("count must be >= 1; retryAfter and seconds >= 0")
    state.faults.append(fault)
    return web.json_response(fault.view(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [f.view() for f in request.app[STATE].faults]})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.json_response({"ok": True})


async def list_requests(request: web.Request) -> web.Response:
    """Recorded requests, oldest first; `?since=N` returns those after sequence number N."""
    state: SandboxState = request.app[STATE]
    since = _since(request)
    return web.json_response({"requests": [r for r in state.records if r["seq"] > since]})


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].records.clear()
    return web.json_response({"ok": True})


async def list_tool_results(request: web.Request) -> web.Response:
    """Every checked tool_result of recorded requests after `?since=N`, flattened, each with
    the request's seq, session and credential."""
    since = _since(request)
    results = [
        {"seq": r["seq"], "session": r.get("session"), "credential": r.get("credential"), **c}
        for r in request.app[STATE].records
        if r["seq"] > since
        for c in r.get("toolResults", [])
    ]
    return web.json_response({"toolResults": results})


async def list_scripts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "sessions": {k: v.view() for k, v in state.scripts.sessions.items()},
            "prompts": {k: v.view() for k, v in state.scripts.prompts.items()},
            "credentials": {
                c.name: c.script.view() for c in state.credentials.values() if c.script
            },
            "wallsFired": [{"script": k, "step": i} for k, i in sorted(state.scripts.fired)],
        }
    )


async def set_script(request: web.Request) -> web.Response:
    """Give a session (by Claude Code session id) or a credential a script: the steps list
    or {steps: [...]}. Replacing a script forgets which of its walls already fired."""
    try:
        script = parse_script(await _json(request))
    except ScriptError as exc:
        raise _bad_request(f"script: {exc}") from None
    state = request.app[STATE]
    if "session" in request.match_info:
        state.scripts.set_session(request.match_info["session"], script)
    elif "word" in request.match_info:
        state.scripts.set_prompt(request.match_info["word"], script)
    else:
        credential = _credential(request)
        credential.script = script
        state.scripts.forget(f"credential:{credential.name}")
    return web.json_response(script.view(), status=201)


async def show_script(request: web.Request) -> web.Response:
    script = _script(request)
    if script is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "no script"}), content_type="application/json"
        )
    return web.json_response(script.view())


async def delete_script(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if "session" in request.match_info:
        key = request.match_info["session"].lower()
        state.scripts.sessions.pop(key, None)
        state.scripts.forget(f"session:{key}")
    elif "word" in request.match_info:
        state.scripts.prompts.pop(request.match_info["word"], None)
    else:
        credential = _credential(request)
        credential.script = None
        state.scripts.forget(f"credential:{credential.name}")
    return web.json_response({"ok": True})


def _script(request: web.Request) -> Script | None:
    if "session" in request.match_info:
        return request.app[STATE].scripts.sessions.get(request.match_info["session"].lower())
    if "word" in request.match_info:
        return request.app[STATE].scripts.prompts.get(request.match_info["word"])
    return _credential(request).script


def _since(request: web.Request) -> int:
    try:
        return int(request.query.get("since", "0"))
    except ValueError:
        raise _bad_request("since must be an integer") from None


def _credential(request: web.Request) -> Credential:
    name = request.match_info["name"]
    credential = request.app[STATE].credentials.get(name)
    if credential is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no credential named {name[:64]}"}),
            content_type="application/json",
        )
    return credential


async def _json(request: web.Request) -> Any:
    """Any JSON document (a script may be a bare list)."""
    try:
        return await request.json()
    except ValueError:
        raise _bad_request("the body is not JSON") from None


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
