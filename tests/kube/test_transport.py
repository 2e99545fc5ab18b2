"""The operator's HTTP transport against a local HTTP server: what each request carries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from kubernetes_asyncio import client as k8s_client

from headroom.kube.client import Kube
from headroom.kube.transport import PROXY_VARIABLES, Transport

Seen = list[dict[str, Any]]


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Seen]]:
    seen: Seen = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "path": request.raw_path,
                "auth": request.headers.get("Authorization"),
                "agent": request.headers.get("User-Agent"),
                "type": request.headers.get("Content-Type"),
                "body": await request.text(),
            }
        )
        return web.json_response({"kind": "Pod", "metadata": {"name": "p"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def configuration(host: str, token: str | None) -> k8s_client.Configuration:
    config = k8s_client.Configuration(host=host)
    if token:
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
    return config


async def test_a_request_carries_the_token_the_body_and_the_query(
    server: tuple[str, Seen],
) -> None:
    host, seen = server
    kube = Kube(Transport(configuration(host, "t0ken")))
    try:
        assert await kube.create("ns", "pods", {"metadata": {"name": "p"}})
        await kube.list("ns", "pods", "a=b,c in (d)")
    finally:
        await kube.close()
    create, listing = seen
    assert (create["method"], create["path"]) == ("POST", "/api/v1/namespaces/ns/pods")
    assert create["auth"] == "Bearer t0ken"
    assert create["agent"] == "headroom-operator"  # how audit logs and the bench tell it
    assert json.loads(create["body"]) == {"metadata": {"name": "p"}}
    assert create["type"] == "application/json"
    path, query = listing["path"].split("?")
    assert path == "/api/v1/namespaces/ns/pods"
    assert parse_qs(query) == {"labelSelector": ["a=b,c in (d)"]}


async def test_a_refreshed_token_is_used_from_the_next_request_on(
    server: tuple[str, Seen],
) -> None:
    host, seen = server
    config = configuration(host, "old")

    def refresh(c: k8s_client.Configuration) -> None:
        c.api_key["BearerToken"] = "rotated"

    config.refresh_api_key_hook = refresh
    kube = Kube(Transport(config))
    try:
        await kube.get("ns", "pods", "p")
    finally:
        await kube.close()
    assert seen[0]["auth"] == "Bearer rotated"


async def test_without_a_token_no_authorization_is_sent(server: tuple[str, Seen]) -> None:
    host, seen = server
    kube = Kube(Transport(configuration(host, None)))
    try:
        await kube.get("ns", "pods", "p")
    finally:
        await kube.close()
    assert seen[0]["auth"] is None


@pytest.mark.parametrize(("variable", "trusted"), [("HTTPS_PROXY", True), ("NOTHING", False)])
async def test_the_environment_is_trusted_only_when_it_names_a_proxy(
    monkeypatch: pytest.MonkeyPatch, variable: str, trusted: bool
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "http://proxy.example:3128")
    transport = Transport(configuration("http://127.0.0.1:1", None))
    try:
        assert transport._session.trust_env is trusted
    finally:
        await transport.close()
