"""`headroom-dev sandbox-api` in-process: the Messages API answers, usage windows and their
headers, injected faults, 401 shapes, and the admin API. A settable clock stands in for time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from headroom_dev.sandbox.config import SandboxConfig, parse_config
from headroom_dev.sandbox.server import create_app

NOW = 1_795_400_000.0
OAUTH = "sk-ant-oat01-sandbox-test-oauth"
KEY = "sk-ant-api03-sandbox-test-key"
CANARY = "canary-secret-value-31415926"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


CONFIG = parse_config(
    {
        "marker": "ZEBRA",
        "credentials": [
            {
                "name": "alice",
                "kind": "oauth",
                "secret": OAUTH,
                "label": "alice@example",
                "windows": [
                    {"name": "five_hour", "capacity": 3},
                    {"name": "seven_day", "capacity": 100, "resetInSeconds": 86400},
                ],
            },
            {"name": "bob", "kind": "api_key", "secret": KEY,
             "windows": [{"name": "five_hour", "capacity": 2}]},
        ],
    }
)  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(clock: Clock) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(CONFIG, clock))) as test_client:
        yield test_client


def body(stream: bool = True, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1000,
        "stream": stream,
        "messages": messages or [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


async def ask(
    client: TestClient[Any, Any],
    secret: str | None = OAUTH,
    bearer: bool = True,
    **kwargs: Any,
) -> Any:
    headers = {}
    if secret is not None:
        headers = {"Authorization": f"Bearer {secret}"} if bearer else {"x-api-key": secret}
    return await client.post("/v1/messages?beta=true", json=body(**kwargs), headers=headers)


async def admin(client: TestClient[Any, Any], method: str, path: str, doc: Any = None) -> Any:
    response = await client.request(method, "/_admin" + path, json=doc)
    return response.status, await response.json()


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_streamed_answer_has_the_messages_api_shape(client: TestClient[Any, Any]) -> None:
    response = await ask(client)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    events = sse_events(await response.text())
    names = [name for name, _ in events]
    assert names == [
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["role"] == "assistant" and start["model"] == "claude-sonnet-4-5"
    assert start["usage"]["input_tokens"] > 0
    delta = events[5][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] >= 1
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "Done."}


async def test_non_streaming_answer_and_count_tokens(client: TestClient[Any, Any]) -> None:
    response = await ask(client, stream=False)
    doc = await response.json()
    assert doc["type"] == "message" and doc["content"] == [{"type": "text", "text": "Done."}]
    assert doc["stop_reason"] == "end_turn"
    counted = await client.post(
        "/v1/messages/count_tokens", json=body(), headers={"x-api-key": KEY}
    )
    assert counted.status == 200 and (await counted.json())["input_tokens"] > 0


async def test_successes_carry_allowed_headers_with_utilization(
    client: TestClient[Any, Any],
) -> None:
    response = await ask(client)
    headers = response.headers
    assert headers["anthropic-ratelimit-unified-status"] == "allowed"
    assert headers["anthropic-ratelimit-unified-5h-status"] == "allowed"
    utilization = float(headers["anthropic-ratelimit-unified-5h-utilization"])
    assert utilization == pytest.approx(1 / 3, abs=1e-3)
    assert int(headers["anthropic-ratelimit-unified-5h-reset"]) == int(NOW) + 5 * 3600
    assert int(headers["anthropic-ratelimit-unified-7d-reset"]) == int(NOW) + 86400
    assert headers["anthropic-ratelimit-unified-representative-claim"] == "five_hour"
    second = await ask(client)
    assert second.headers["anthropic-ratelimit-unified-status"] == "allowed"
    assert float(second.headers["anthropic-ratelimit-unified-5h-utilization"]) > 0.6


async def test_warning_past_the_threshold(client: TestClient[Any, Any]) -> None:
    await admin(client, "POST", "/credentials", {
        "name": "carol", "kind": "oauth", "secret": "sk-ant-oat01-carol-0000",
        "windows": [{"name": "five_hour", "capacity": 10}],
    })  # fmt: skip
    for _ in range(8):
        response = await ask(client, "sk-ant-oat01-carol-0000")
    assert response.headers["anthropic-ratelimit-unified-status"] == "allowed_warning"
    assert response.headers["anthropic-ratelimit-unified-5h-status"] == "allowed_warning"


async def test_full_window_answers_429_rejected_with_reset_and_claim(
    client: TestClient[Any, Any],
) -> None:
    status, _ = await admin(
        client, "POST", "/credentials/alice/windows/five_hour/fill", {"resetsAt": 1795412345}
    )
    assert status == 200
    response = await ask(client)
    assert response.status == 429
    headers = response.headers
    assert headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-reset"] == "1795412345"
    assert headers["anthropic-ratelimit-unified-representative-claim"] == "five_hour"
    assert headers["anthropic-ratelimit-unified-5h-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-5h-utilization"] == "1.0"
    assert headers["anthropic-ratelimit-unified-7d-status"] == "allowed"
    assert int(headers["retry-after"]) == 1795412345 - int(NOW)
    doc = await response.json()
    assert doc["type"] == "error" and doc["error"]["type"] == "rate_limit_error"
    assert doc["request_id"] == headers["request-id"]


async def test_window_fills_by_use_and_resets_when_its_time_comes(
    client: TestClient[Any, Any], clock: Clock
) -> None:
    statuses = [(await ask(client)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    clock.now += 5 * 3600  # the five_hour window rolls over by itself
    assert (await ask(client)).status == 200


async def test_the_binding_window_is_the_one_that_resets_last(
    client: TestClient[Any, Any],
) -> None:
    await admin(client, "POST", "/credentials/alice/windows/five_hour/fill", {})
    await admin(client, "POST", "/credentials/alice/windows/seven_day/fill", {})
    response = await ask(client)
    assert response.headers["anthropic-ratelimit-unified-representative-claim"] == "seven_day"


async def test_any_window_name_can_be_filled(client: TestClient[Any, Any]) -> None:
    status, view = await admin(
        client, "POST", "/credentials/alice/windows/monthly_credit/fill", {"resetInSeconds": 60}
    )
    assert status == 200
    assert [w["name"] for w in view["windows"]][-1] == "monthly_credit"
    response = await ask(client)
    assert response.headers["anthropic-ratelimit-unified-representative-claim"] == "monthly_credit"
    assert response.headers["anthropic-ratelimit-unified-monthly_credit-status"] == "rejected"


async def test_reset_windows_lets_requests_through_again(client: TestClient[Any, Any]) -> None:
    await admin(client, "POST", "/credentials/alice/windows/five_hour/fill", {})
    assert (await ask(client)).status == 429
    await admin(client, "POST", "/credentials/alice/windows/reset", {"window": "five_hour"})
    assert (await ask(client)).status == 200


async def test_api_key_limits_use_the_standard_headers(client: TestClient[Any, Any]) -> None:
    first = await ask(client, KEY, bearer=False)
    assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert "anthropic-ratelimit-unified-status" not in first.headers
    await ask(client, KEY, bearer=False)
    limited = await ask(client, KEY, bearer=False)
    assert limited.status == 429
    assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert int(limited.headers["retry-after"]) > 0
    assert "anthropic-ratelimit-unified-status" not in limited.headers


async def test_token_windows_count_tokens(client: TestClient[Any, Any]) -> None:
    await admin(client, "POST", "/credentials", {
        "name": "tok", "kind": "oauth", "secret": "sk-ant-oat01-tokens-0000",
        "windows": [{"name": "five_hour", "capacity": 50, "unit": "tokens"}],
    })  # fmt: skip
    big = [{"role": "user", "content": "x" * 400}]  # about 100 tokens: over the capacity
    assert (await ask(client, "sk-ant-oat01-tokens-0000", messages=big)).status == 200
    assert (await ask(client, "sk-ant-oat01-tokens-0000")).status == 429


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "x-api-key header is required"),
        ({"x-api-key": "sk-ant-api03-unknown-0000"}, "invalid x-api-key"),
        ({"Authorization": "Bearer sk-ant-oat01-unknown-0000"}, "Invalid bearer token"),
    ],
)
async def test_unknown_credentials_get_anthropic_401(
    client: TestClient[Any, Any], headers: dict[str, str], message: str
) -> None:
    response = await client.post("/v1/messages?beta=true", json=body(), headers=headers)
    assert response.status == 401
    doc = await response.json()
    assert doc == {
        "type": "error",
        "error": {"type": "authentication_error", "message": message},
        "request_id": response.headers["request-id"],
    }


async def test_expired_credentials_get_401_until_revived(client: TestClient[Any, Any]) -> None:
    status, view = await admin(client, "POST", "/credentials/alice/expire")
    assert status == 200 and view["expired"] is True
    response = await ask(client)
    assert response.status == 401
    doc = await response.json()
    assert doc["error"]["type"] == "authentication_error"
    assert "OAuth token has expired" in doc["error"]["message"]
    await admin(client, "POST", "/credentials/bob/expire")
    keyed = await ask(client, KEY, bearer=False)
    assert (await keyed.json())["error"]["message"] == "invalid x-api-key"
    await admin(client, "POST", "/credentials/alice/revive")
    assert (await ask(client)).status == 200


async def test_injected_faults_answer_in_order_then_stop(client: TestClient[Any, Any]) -> None:
    await admin(client, "POST", "/faults", {"kind": "server_error", "count": 2})
    await admin(client, "POST", "/faults", {"kind": "overloaded", "count": 1})
    await admin(client, "POST", "/faults", {"kind": "rate_limit", "count": 1, "retryAfter": 0})
    answers = [await ask(client) for _ in range(5)]
    assert [a.status for a in answers] == [500, 500, 529, 429, 200]
    server_error = await answers[0].json()
    assert server_error["error"]["type"] == "api_error"
    assert "rate limit" in server_error["error"]["message"]
    assert (await answers[2].json())["error"]["type"] == "overloaded_error"
    bare = answers[3]
    assert bare.headers["retry-after"] == "0"
    assert (await bare.json())["error"]["type"] == "rate_limit_error"
    assert not [h for h in bare.headers if h.startswith("anthropic-ratelimit-unified")]
    assert (await admin(client, "GET", "/faults"))[1] == {"faults": []}


async def test_faults_can_target_one_credential(client: TestClient[Any, Any]) -> None:
    await admin(client, "POST", "/faults", {"kind": "overloaded", "count": 1, "credential": "bob"})
    assert (await ask(client)).status == 200
    assert (await ask(client, KEY, bearer=False)).status == 529


async def test_stall_holds_the_request_and_counts_it_in_flight(
    client: TestClient[Any, Any],
) -> None:
    await admin(client, "POST", "/faults", {"kind": "stall", "seconds": 0.3})
    pending = asyncio.ensure_future(ask(client))
    for _ in range(100):
        if (await admin(client, "GET", "/state"))[1]["inFlight"] == 1:
            break
        await asyncio.sleep(0.01)
    assert (await admin(client, "GET", "/state"))[1]["inFlight"] == 1
    assert (await pending).status == 200
    assert (await admin(client, "GET", "/state"))[1]["inFlight"] == 0


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "meteor"},
        {"kind": "stall", "count": 0},
        {"kind": "rate_limit", "retryAfter": "soon"},
        {"kind": "overloaded", "credential": "nobody"},
    ],
)
async def test_bad_fault_requests_are_refused(
    client: TestClient[Any, Any], doc: dict[str, Any]
) -> None:
    status, answer = await admin(client, "POST", "/faults", doc)
    assert status == 400 and answer["error"]


async def test_requests_are_recorded_with_label_and_marker_never_the_secret(
    client: TestClient[Any, Any],
) -> None:
    history = [
        {"role": "user", "content": [{"type": "text", "text": "remember ZEBRA"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": "continue"}]},
    ]
    merged = [  # the CLI merges an unanswered prompt with the next one
        {"role": "user", "content": [{"type": "text", "text": "remember ZEBRA"},
                                     {"type": "text", "text": "continue"}]},
    ]  # fmt: skip
    fresh = [{"role": "user", "content": "say ZEBRA"}]
    for messages in (history, merged, fresh):
        await ask(client, messages=messages)
    await client.post("/v1/messages?beta=true", json=body(), headers={"x-api-key": CANARY})
    status, doc = await admin(client, "GET", "/requests")
    assert status == 200
    records = doc["requests"]
    assert [r["markerInHistory"] for r in records[:3]] == [True, True, False]
    assert [r["markerPresent"] for r in records[:3]] == [True, True, True]
    assert records[0]["messages"] == 3
    assert records[0]["credential"] == "alice" and records[0]["label"] == "alice@example"
    assert records[0]["fingerprint"].startswith("sha256:")
    assert records[3]["credential"] is None and records[3]["status"] == 401
    assert CANARY not in json.dumps(records) and OAUTH not in json.dumps(records)
    later = (await admin(client, "GET", f"/requests?since={records[1]['seq']}"))[1]
    assert [r["seq"] for r in later["requests"]] == [r["seq"] for r in records[2:]]


async def test_admin_views_never_show_secrets(client: TestClient[Any, Any]) -> None:
    status, view = await admin(
        client, "POST", "/credentials", {"name": "c", "kind": "oauth", "secret": CANARY}
    )
    assert status == 201 and "secret" not in view
    for path in ("/credentials", "/state"):
        assert CANARY not in json.dumps((await admin(client, "GET", path))[1])


@pytest.mark.parametrize(
    "doc",
    [
        {"name": "x", "kind": "oauth"},
        {"name": "x", "kind": "password", "secret": CANARY},
        {"kind": "oauth", "secret": CANARY},
        {"name": "x", "kind": "oauth", "secret": CANARY, "windows": [{"name": "w", "capacity": 0}]},
        {"name": "x", "kind": "oauth", "secret": CANARY, "windows": [{"name": "w", "unit": "$"}]},
    ],
)
async def test_bad_credentials_are_refused_without_echoing_the_secret(
    client: TestClient[Any, Any], doc: dict[str, Any]
) -> None:
    response = await client.post("/_admin/credentials", json=doc)
    assert response.status == 400
    assert CANARY not in await response.text()


async def test_reset_returns_to_the_starting_configuration(client: TestClient[Any, Any]) -> None:
    await admin(client, "POST", "/credentials", {"name": "extra", "kind": "oauth",
                                                 "secret": "sk-ant-oat01-extra-000"})  # fmt: skip
    await admin(client, "POST", "/credentials/alice/expire")
    await admin(client, "POST", "/faults", {"kind": "overloaded", "count": 3})
    await admin(client, "POST", "/settings", {"marker": "OTHER", "reply": "changed"})
    await ask(client)
    await admin(client, "POST", "/reset", {})
    state = (await admin(client, "GET", "/state"))[1]
    assert [c["name"] for c in state["credentials"]] == ["alice", "bob"]
    assert not any(c["expired"] for c in state["credentials"])
    assert state["faults"] == [] and state["marker"] == "ZEBRA" and state["reply"] == "Done."
    assert (await admin(client, "GET", "/requests"))[1] == {"requests": []}


async def test_unknown_paths_are_404_and_recorded(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/oauth/profile")
    assert response.status == 404
    assert (await response.json())["error"]["type"] == "not_found_error"
    records = (await admin(client, "GET", "/requests"))[1]["requests"]
    assert records[-1]["result"] == "not_found"


async def test_unknown_credential_admin_calls_are_404(client: TestClient[Any, Any]) -> None:
    status, doc = await admin(client, "POST", "/credentials/nobody/expire")
    assert status == 404 and "nobody" in doc["error"]


def test_empty_configuration_is_valid() -> None:
    assert parse_config(None) == SandboxConfig()
