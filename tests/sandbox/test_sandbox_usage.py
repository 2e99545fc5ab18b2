"""The stand-in's `GET /api/oauth/usage`, in-process: the report comes from the same windows as
the rate-limit headers, the per-token rate limit answers 429 with retry-after, and tokens
without the profile scope (a setup token) and API keys get 403."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from tests.sandbox.test_sandbox_api import KEY, NOW, OAUTH, admin, ask, client, clock  # noqa: F401

BEARER = {"Authorization": f"Bearer {OAUTH}", "anthropic-beta": "oauth-2025-04-20"}


async def read(client: TestClient[Any, Any], headers: dict[str, str] | None = None) -> Any:  # noqa: F811
    return await client.get("/api/oauth/usage", headers=BEARER if headers is None else headers)


async def test_the_report_follows_the_windows_that_drive_the_headers(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    assert (await ask(client)).status == 200  # one request of five_hour's 3
    response = await read(client)
    assert response.status == 200
    doc = await response.json()
    assert doc["five_hour"]["utilization"] == 33.33
    assert doc["seven_day"] == {"utilization": 1.0, "resets_at": "2026-11-24T02:13:20Z"}
    assert doc["seven_day_opus"] is None and doc["seven_day_sonnet"] is None
    assert doc["extra_usage"]["is_enabled"] is False
    _, records = await admin(client, "GET", "/requests")
    last = records["requests"][-1]
    assert (last["result"], last["credential"], last["beta"]) == ("usage", "alice",
                                                                  "oauth-2025-04-20")  # fmt: skip
    assert OAUTH not in str(records)


async def test_reading_usage_spends_no_quota(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    await admin(client, "POST", "/usage", {"minIntervalSeconds": 0})
    for _ in range(5):
        assert (await read(client)).status == 200
    _, state = await admin(client, "GET", "/credentials")
    alice = next(c for c in state["credentials"] if c["name"] == "alice")
    assert all(w["used"] == 0 for w in alice["windows"])


async def test_a_second_read_within_the_interval_is_429_with_retry_after(
    client: TestClient[Any, Any],  # noqa: F811
    clock: Any,  # noqa: F811
) -> None:
    assert (await read(client)).status == 200
    clock.now = NOW + 20
    limited = await read(client)
    assert limited.status == 429 and limited.headers["retry-after"] == "40"
    assert (await limited.json())["error"]["type"] == "rate_limit_error"
    clock.now = NOW + 60
    assert (await read(client)).status == 200


async def test_a_token_without_the_profile_scope_gets_403_every_time(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    status, _ = await admin(client, "POST", "/credentials/alice/scopes",
                            {"scopes": ["user:inference"]})  # fmt: skip
    assert status == 200
    for _ in range(2):  # a 403 is not a read: no 429 follows it
        response = await read(client)
        assert response.status == 403
        error = (await response.json())["error"]
        assert error["type"] == "permission_error"
        assert error["message"] == "OAuth token does not meet scope requirement user:profile"
        assert error["details"]["required_scopes"] == ["user:profile"]
    assert (await ask(client)).status == 200  # the same token still does inference


async def test_api_keys_and_unknown_tokens_are_refused(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    assert (await read(client, {"x-api-key": KEY})).status == 403
    assert (await read(client, {"Authorization": f"Bearer {KEY}"})).status == 403
    assert (await read(client, {"Authorization": "Bearer sk-ant-oat01-nobody"})).status == 401
    assert (await read(client, {})).status == 401


async def test_use_sets_a_windows_utilization_and_reset_restores_the_endpoint(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    status, window = await admin(client, "POST", "/credentials/alice/windows/five_hour/use",
                                 {"used": 2})  # fmt: skip
    assert status == 200 and window["utilization"] == 0.6667
    await admin(client, "POST", "/credentials/alice/scopes", {"scopes": []})
    await admin(client, "POST", "/reset")
    response = await read(client)
    assert response.status == 200
    assert (await response.json())["five_hour"]["utilization"] == 0.0
    status, _ = await admin(client, "POST", "/credentials/alice/windows/nope/use", {"used": 1})
    assert status == 400
