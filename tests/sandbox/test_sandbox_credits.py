"""The stand-in's spent usage credits, in-process: the 429's headers and body for the whole
account and for one model, refilling, and the admin call's checks."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from tests.sandbox.test_sandbox_api import NOW, admin, ask, body, client, clock  # noqa: F401

UNIFIED = "anthropic-ratelimit-unified-"


async def test_spent_credits_answer_429_on_the_overage_lane_with_refresh_time(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    status, view = await admin(client, "POST", "/credentials/alice/credits/spend",
                               {"resetInSeconds": 600})  # fmt: skip
    assert status == 200 and view["creditsSpent"]["resetsAt"] == int(NOW) + 600
    response = await ask(client)
    assert response.status == 429
    headers = response.headers
    assert headers[UNIFIED + "status"] == "rejected"
    assert headers[UNIFIED + "representative-claim"] == "overage"
    assert headers[UNIFIED + "overage-status"] == "rejected"
    assert headers[UNIFIED + "overage-disabled-reason"] == "out_of_credits"
    assert headers[UNIFIED + "reset"] == headers[UNIFIED + "overage-reset"] == str(int(NOW) + 600)
    assert headers["retry-after"] == "600"
    assert headers[UNIFIED + "5h-status"] == "allowed"  # the plan windows are not the wall
    doc = await response.json()
    assert doc["error"]["type"] == "rate_limit_error" and "details" not in doc["error"]
    _, records = await admin(client, "GET", "/requests")
    assert records["requests"][-1]["result"] == "credits_spent"


async def test_without_a_refresh_time_no_reset_header_is_sent(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    await admin(client, "POST", "/credentials/alice/credits/spend", {})
    response = await ask(client)
    assert response.status == 429
    for name in (UNIFIED + "reset", UNIFIED + "overage-reset", "retry-after"):
        assert name not in response.headers


async def test_model_scoped_credits_refuse_only_that_model_with_credits_required(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    await admin(client, "POST", "/credentials/alice/credits/spend",
                {"model": "claude-fable", "reason": "seat_tier_level_disabled"})  # fmt: skip
    assert (await ask(client)).status == 200  # claude-sonnet-4-5 is not refused
    fable = {**body(), "model": "claude-fable-5-1"}
    headers = {"Authorization": "Bearer sk-ant-oat01-sandbox-test-oauth"}
    response = await client.post("/v1/messages?beta=true", json=fable, headers=headers)
    assert response.status == 429
    assert UNIFIED + "representative-claim" not in response.headers
    assert response.headers[UNIFIED + "overage-disabled-reason"] == "seat_tier_level_disabled"
    details = (await response.json())["error"]["details"]
    assert details == {"error_code": "credits_required",
                       "disabled_reason": "seat_tier_level_disabled"}  # fmt: skip


async def test_refill_lets_requests_through_again(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    await admin(client, "POST", "/credentials/alice/credits/spend", {})
    status, view = await admin(client, "POST", "/credentials/alice/credits/refill", {})
    assert status == 200 and view["creditsSpent"] is None
    assert (await ask(client)).status == 200


async def test_bad_spend_requests_are_refused(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    for doc in ({"reason": "bogus"}, {"model": ""}, {"resetsAt": "soon"}, {"typo": 1}):
        status, answer = await admin(client, "POST", "/credentials/alice/credits/spend", doc)
        assert status == 400, doc
        assert "error" in answer


async def test_an_api_key_with_spent_credits_gets_the_balance_400(
    client: TestClient[Any, Any],  # noqa: F811
) -> None:
    await admin(client, "POST", "/credentials/bob/credits/spend", {})
    response = await ask(client, secret="sk-ant-api03-sandbox-test-key", bearer=False)
    assert response.status == 400
    assert not [h for h in response.headers if h.startswith(UNIFIED)]
    error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("Your credit balance is too low to access the Anthropic API")
