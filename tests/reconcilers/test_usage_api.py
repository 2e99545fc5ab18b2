"""The operator's usage client against the stand-in's endpoint (in-process): each answer
becomes a value, and none of them, nor a failure, carries the token."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from headroom.anthropic.usage import Denied, Failed, RateLimited, Report, Unauthorized, UsageApi
from headroom.core.usage import parse_report
from headroom_dev.sandbox.config import parse_config
from headroom_dev.sandbox.server import create_app
from headroom_dev.sandbox.usage import USAGE

OAUTH = "sk-ant-oat01-usage-api-test"
SETUP = "sk-ant-oat01-usage-api-setup-token"
NOW = 1_795_400_000.0
CONFIG = parse_config({"credentials": [
    {"name": "login", "kind": "oauth", "secret": OAUTH,
     "windows": [{"name": "five_hour", "capacity": 4}, {"name": "seven_day", "capacity": 10}]},
    {"name": "setup", "kind": "oauth", "secret": SETUP},
]})  # fmt: skip


@pytest.fixture
async def server() -> Any:
    app = create_app(CONFIG, lambda: NOW)
    async with TestServer(app) as test_server:
        yield test_server


async def test_answers_of_the_stand_in_become_values(server: TestServer) -> None:
    base = str(server.make_url(""))
    api = UsageApi(base)
    try:
        first = await api.read(OAUTH)
        assert isinstance(first, Report)
        windows = {w.name: w.utilization for w in parse_report(first.doc)}
        assert windows == {"five_hour": 0.0, "seven_day": 0.0}
        limited = await api.read(OAUTH)
        assert limited == RateLimited(retry_after=60.0)
        server.app[USAGE].scopes["setup"] = ("user:inference",)
        assert await api.read(SETUP) == Denied("permission_error")
        assert await api.read("sk-ant-oat01-nobody") == Unauthorized()
    finally:
        await api.close()


async def test_no_answer_is_a_failure_that_names_no_token() -> None:
    api = UsageApi("http://127.0.0.1:9", timeout=2)  # the discard port: nothing listens
    try:
        answer = await api.read(OAUTH)
    finally:
        await api.close()
    assert isinstance(answer, Failed) and OAUTH not in repr(answer)


def test_a_report_is_untrusted_input() -> None:
    doc = {
        "five_hour": {"utilization": "lots", "resets_at": "2026-12-01T12:00:00Z"},
        "seven_day": {"utilization": 250, "resets_at": "not a time"},
        "seven_day_opus": {"utilization": -5},
        "seven_day_sonnet": None,
        "other": {"utilization": 50},
    }
    found = {w.name: (w.utilization, w.resets_at) for w in parse_report(doc)}
    assert found == {"seven_day": (1.0, None), "seven_day_opus": (0.0, None)}
    assert parse_report(["not", "a", "report"]) == ()


async def test_a_body_in_many_chunks_is_read_whole_and_a_huge_one_refused() -> None:
    from aiohttp import web

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        size = int(request.query.get("pad", "0"))
        body = b'{"five_hour": {"utilization": 42, "resets_at": null}, "pad": "' + b"x" * size
        for start in range(0, len(body), 7):
            await response.write(body[start : start + 7])
        await response.write(b'"}')
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/api/oauth/usage", chunked)
    async with TestServer(app) as test_server:
        api = UsageApi(str(test_server.make_url("")))
        try:
            small = await api.read(OAUTH)
            assert isinstance(small, Report)
            assert [w.utilization for w in parse_report(small.doc)] == [0.42]
            api.url += "?pad=100000"
            assert await api.read(OAUTH) == Failed("body_too_large")
        finally:
            await api.close()
