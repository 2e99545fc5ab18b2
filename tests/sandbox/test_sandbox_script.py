"""Scripted agents in-process: the stand-in answers with the turn the conversation has reached
(tool_use streamed as the real API streams it), checks the tool results it is sent, fills a
window at a wall, and takes scripts per session (admin API) or per credential (config)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from headroom_dev.sandbox.config import ConfigError, parse_config
from headroom_dev.sandbox.script import FAILURE_PREFIX, ScriptError, parse_script
from headroom_dev.sandbox.server import create_app

NOW = 1_795_400_000.0
ALICE = "sk-ant-oat01-script-test-alice"
BOB = "sk-ant-oat01-script-test-bobby"
SESSION = "5e55104e-0000-4000-8000-0000000000a1"

SCRIPT: list[dict[str, Any]] = [
    {
        "text": "Looking.",
        "tools": [
            {"name": "Bash", "input": {"command": "ls"}, "expect": {"contains": "README"}},
            {"name": "Read", "input": {"file_path": "/w/README"}, "expect": {"isError": None}},
        ],
    },
    {"wall": {"window": "five_hour", "resetInSeconds": 600, "credential": "alice"}},
    {"tools": [{"name": "Write", "input": {"file_path": "/w/x", "content": "x" * 200}}]},
    {"text": "Done with the task."},
]


def config(credential_script: Any = None) -> Any:
    alice: dict[str, Any] = {"name": "alice", "kind": "oauth", "secret": ALICE}
    if credential_script is not None:
        alice["script"] = credential_script
    return parse_config({"credentials": [alice, {"name": "bob", "kind": "oauth", "secret": BOB}]})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(config(), lambda: NOW))) as test_client:
        yield test_client


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def result(tool_use_id: str, content: Any, is_error: bool | None = None) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    return block if is_error is None else {**block, "is_error": is_error}


async def ask(
    client: TestClient[Any, Any],
    messages: list[dict[str, Any]],
    secret: str = ALICE,
    session: str | None = SESSION,
    stream: bool = True,
    tools: list[str] | None = None,
) -> Any:
    headers = {"Authorization": f"Bearer {secret}"}
    if session is not None:
        headers["X-Claude-Code-Session-Id"] = session
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "stream": stream,
        "messages": messages,
        "tools": [{"name": n} for n in tools or ["Bash"]],
    }
    return await client.post("/v1/messages?beta=true", json=body, headers=headers)


async def answer(client: TestClient[Any, Any], messages: list[dict[str, Any]], **kw: Any) -> Any:
    """The non-streamed answer: the assistant message to put into the next request."""
    response = await ask(client, messages, stream=False, **kw)
    assert response.status == 200, await response.text()
    return await response.json()


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def put_script(client: TestClient[Any, Any], script: Any, path: str = "") -> Any:
    path = path or f"/_admin/sessions/{SESSION}/script"
    return await client.put(path, json=script)


async def records(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    doc = await (await client.get("/_admin/requests")).json()
    found: list[dict[str, Any]] = doc["requests"]
    return found


async def test_tool_use_streams_as_the_real_api_streams_it(client: TestClient[Any, Any]) -> None:
    assert (await put_script(client, SCRIPT)).status == 201
    response = await ask(client, [user(text("go"))])
    assert response.status == 200
    events = sse_events(await response.text())
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use", "tool_use"]
    assert [b["name"] for b in starts[1:]] == ["Bash", "Read"]
    assert all(b["input"] == {} and b["id"].startswith("toolu_sbx0_") for b in starts[1:])
    for index, expected in ((1, {"command": "ls"}), (2, {"file_path": "/w/README"})):
        deltas = [d for n, d in events if n == "content_block_delta"]
        pieces = [d["delta"] for d in deltas if d["index"] == index]
        assert {p["type"] for p in pieces} == {"input_json_delta"}
        assert json.loads("".join(p["partial_json"] for p in pieces)) == expected
    assert names.count("content_block_stop") == 3
    [delta] = [d for n, d in events if n == "message_delta"]
    assert delta["delta"]["stop_reason"] == "tool_use"
    [entry] = await records(client)
    assert entry["script"]["step"] == 0 and entry["toolUses"] == ["Bash", "Read"]


async def test_long_tool_input_arrives_in_several_pieces(client: TestClient[Any, Any]) -> None:
    await put_script(client, SCRIPT)
    first = await answer(client, [user(text("go"))])
    ids = [b["id"] for b in first["content"] if b["type"] == "tool_use"]
    history = [user(text("go")), first, user(result(ids[0], "README\n"), result(ids[1], "hi"))]
    # alice walls here (tested below); bob goes on with step 2, the Write.
    response = await ask(client, history, secret=BOB)
    events = sse_events(await response.text())
    pieces = [d for n, d in events if n == "content_block_delta"]
    assert len(pieces) > 3 and pieces[0]["delta"]["partial_json"] == ""


async def test_position_comes_from_the_conversation_and_results_are_checked(
    client: TestClient[Any, Any],
) -> None:
    await put_script(client, SCRIPT)
    first = await answer(client, [user(text("go"))], secret=BOB)
    assert [b["type"] for b in first["content"]] == ["text", "tool_use", "tool_use"]
    assert first["stop_reason"] == "tool_use"
    bash, read = (b["id"] for b in first["content"][1:])
    results = user(result(bash, "README\nsrc", False), result(read, [text("hi")], True))
    second = await answer(client, [user(text("go")), first, results], secret=BOB)
    assert [b["name"] for b in second["content"]] == ["Write"]
    write = second["content"][0]["id"]
    history = [user(text("go")), first, results, second, user(result(write, "File created"))]
    third = await answer(client, history, secret=BOB)
    assert third["content"] == [text("Done with the task.")] and third["stop_reason"] == "end_turn"
    entries = await records(client)
    assert [e["script"]["step"] for e in entries] == [0, 2, 3]
    checks = [c for e in entries for c in e["toolResults"]]
    assert [(c["step"], c["tool"], c["ok"]) for c in checks] == [
        (0, "Bash", True),
        (0, "Read", True),
        (2, "Write", True),
    ]
    assert checks[0]["content"] == "README\nsrc" and checks[1]["isError"] is True
    tool_results = (await (await client.get("/_admin/tool-results")).json())["toolResults"]
    assert [(t["seq"], t["credential"], t["tool"]) for t in tool_results] == [
        (2, "bob", "Bash"),
        (2, "bob", "Read"),
        (3, "bob", "Write"),
    ]


async def test_a_failed_check_is_answered_with_a_text_and_stays_failed(
    client: TestClient[Any, Any],
) -> None:
    await put_script(client, SCRIPT)
    first = await answer(client, [user(text("go"))], secret=BOB)
    bash, read = (b["id"] for b in first["content"][1:])
    history = [user(text("go")), first, user(result(bash, "nothing here"), result(read, "x"))]
    failed = await answer(client, history, secret=BOB)
    [block] = failed["content"]
    assert block["text"].startswith(FAILURE_PREFIX)
    assert "step 0 Bash #0: does not contain 'README'" in block["text"]
    assert failed["stop_reason"] == "end_turn"
    later = await answer(client, [*history, failed, user(text("Continue."))], secret=BOB)
    assert later["content"] == [block]  # never carries on past a failure
    entries = await records(client)
    assert [e["script"]["failed"] for e in entries] == [False, True, True]
    assert entries[1]["toolResults"][0]["failures"] == ["does not contain 'README'"]


async def test_the_cli_filler_after_a_killed_run_is_no_turn(
    client: TestClient[Any, Any],
) -> None:
    await put_script(client, SCRIPT)
    first = await answer(client, [user(text("go"))], secret=BOB)
    bash, read = (b["id"] for b in first["content"][1:])
    filler = {"role": "assistant", "content": [text("No response requested.")]}
    history = [
        user(text("go")),
        first,
        user(result(bash, "README"), result(read, "x")),
        filler,
        user(text("Continue.")),
    ]
    moved = await answer(client, history, secret=BOB)
    assert [b["name"] for b in moved["content"]] == ["Write"]
    entry = (await records(client))[-1]
    assert entry["script"]["turn"] == 1 and [c["ok"] for c in entry["toolResults"]] == [True] * 2


async def test_a_missing_tool_result_fails_the_check(client: TestClient[Any, Any]) -> None:
    await put_script(client, SCRIPT)
    first = await answer(client, [user(text("go"))], secret=BOB)
    bash = first["content"][1]["id"]
    failed = await answer(
        client, [user(text("go")), first, user(result(bash, "README"))], secret=BOB
    )
    assert "Read #1: no tool_result came back" in failed["content"][0]["text"]


async def test_a_wall_fills_the_window_once_then_the_session_goes_on_elsewhere(
    client: TestClient[Any, Any],
) -> None:
    await put_script(client, SCRIPT)
    first = await answer(client, [user(text("go"))])
    bash, read = (b["id"] for b in first["content"][1:])
    history = [user(text("go")), first, user(result(bash, "README"), result(read, "x"))]
    walled = await ask(client, history)
    assert walled.status == 429
    assert walled.headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert walled.headers["anthropic-ratelimit-unified-representative-claim"] == "five_hour"
    assert walled.headers["anthropic-ratelimit-unified-reset"] == str(int(NOW) + 600)
    moved = await answer(
        client, [*history[:2], user(*history[2]["content"], text("Continue."))], secret=BOB
    )
    assert [b["name"] for b in moved["content"]] == ["Write"]
    entries = await records(client)
    assert entries[1]["result"] == "rejected" and entries[1]["window"] == "five_hour"
    assert entries[1]["script"]["wallsFired"] == [{"step": 1, "window": "five_hour"}]
    assert all(c["ok"] for c in entries[1]["toolResults"])  # checked even when rejected
    assert entries[2]["script"]["wallsFired"] == []
    fired = (await (await client.get("/_admin/scripts")).json())["wallsFired"]
    assert fired == [{"script": f"session:{SESSION}", "step": 1}]


async def test_a_wall_for_another_credential_lets_requests_through(
    client: TestClient[Any, Any],
) -> None:
    await put_script(client, [{"wall": {"credential": "bob"}}, {"text": "Hi."}])
    assert (await answer(client, [user(text("go"))]))["content"] == [text("Hi.")]
    assert (await ask(client, [user(text("go"))], secret=BOB)).status == 429


async def test_structured_output_is_the_structured_output_tool(
    client: TestClient[Any, Any],
) -> None:
    await put_script(client, [{"structuredOutput": {"answer": "42"}}])
    offered = await answer(client, [user(text("go"))], tools=["Bash", "StructuredOutput"])
    [block] = offered["content"]
    assert block["type"] == "tool_use" and block["name"] == "StructuredOutput"
    assert block["input"] == {"answer": "42"} and offered["stop_reason"] == "tool_use"
    missing = await answer(client, [user(text("go"))], tools=["Bash"])
    assert "offered no StructuredOutput tool" in missing["content"][0]["text"]


async def test_usage_can_be_set_per_step(client: TestClient[Any, Any]) -> None:
    await put_script(
        client, [{"text": "costly", "usage": {"inputTokens": 123456, "outputTokens": 7}}]
    )
    doc = await answer(client, [user(text("go"))])
    assert doc["usage"]["input_tokens"] == 123456 and doc["usage"]["output_tokens"] == 7


async def test_a_used_up_script_answers_the_usual_reply(client: TestClient[Any, Any]) -> None:
    await put_script(client, [{"text": "Only answer."}])
    first = await answer(client, [user(text("go"))])
    again = await answer(client, [user(text("go")), first, user(text("more"))])
    assert again["content"] == [text("Done.")]
    assert (await records(client))[1]["script"]["exhausted"] is True


async def test_session_id_comes_from_metadata_without_the_header(
    client: TestClient[Any, Any],
) -> None:
    await put_script(client, [{"text": "From metadata."}])
    body = {
        "model": "m",
        "max_tokens": 10,
        "stream": False,
        "messages": [user(text("go"))],
        "metadata": {"user_id": json.dumps({"device_id": "d", "session_id": SESSION})},
    }
    response = await client.post(
        "/v1/messages", json=body, headers={"Authorization": f"Bearer {ALICE}"}
    )
    assert (await response.json())["content"] == [text("From metadata.")]
    assert (await records(client))[0]["session"] == SESSION


async def test_unscripted_sessions_keep_the_usual_reply(client: TestClient[Any, Any]) -> None:
    await put_script(client, [{"text": "Scripted."}])
    doc = await answer(client, [user(text("go"))], session="another-session")
    assert doc["content"] == [text("Done.")]
    assert "script" not in (await records(client))[0]


async def test_session_script_admin_calls(client: TestClient[Any, Any]) -> None:
    path = f"/_admin/sessions/{SESSION.upper()}/script"
    assert (await client.put(path, json={"steps": [{"text": "a"}]})).status == 201
    shown = await (await client.get(f"/_admin/sessions/{SESSION}/script")).json()
    assert shown["steps"][0]["kind"] == "text" and shown["steps"][0]["text"] == "a"
    listed = await (await client.get("/_admin/scripts")).json()
    assert list(listed["sessions"]) == [SESSION] and listed["credentials"] == {}
    assert (await client.delete(path)).status == 200
    assert (await client.get(path)).status == 404
    bad = await client.put(path, json=[{"tools": [{"name": "Bash", "expect": {"contain": "x"}}]}])
    assert bad.status == 400 and "unknown contain" in (await bad.json())["error"]


async def test_credential_script_admin_calls_and_reset(client: TestClient[Any, Any]) -> None:
    path = "/_admin/credentials/alice/script"
    assert (await client.put(path, json=[{"text": "As alice."}])).status == 201
    assert (await answer(client, [user(text("go"))], session=None))["content"] == [
        text("As alice.")
    ]
    view = await (await client.get("/_admin/credentials")).json()
    assert [c["scripted"] for c in view["credentials"]] == [True, False]
    await put_script(client, [{"text": "As the session."}])
    assert (await answer(client, [user(text("go"))]))["content"] == [text("As the session.")]
    await client.post("/_admin/reset")
    assert (await client.get(f"/_admin/sessions/{SESSION}/script")).status == 404
    assert (await client.get(path)).status == 404  # not in the starting configuration
    nobody = await client.put("/_admin/credentials/nobody/script", json=[{"text": "x"}])
    assert nobody.status == 404


async def test_a_prompt_script_plays_for_conversations_whose_task_holds_its_word(
    client: TestClient[Any, Any],
) -> None:
    """A demo gives a session its script before the operator chose the conversation's id."""
    path = "/_admin/prompts/demo-42/script"
    script = [{"wall": {"window": "five_hour", "resetInSeconds": 600, "credential": "alice"}},
              {"text": "Scripted by prompt."}]  # fmt: skip
    assert (await client.put(path, json=script)).status == 201
    other = await answer(client, [user(text("another task"))], session="s-other")
    assert other["content"] == [text("Done.")]
    task = user(text("<system-reminder>x</system-reminder>"), text("Fix it [demo-42]"))
    refused = await ask(client, [task], session="s-1", stream=False)
    assert refused.status == 429  # the wall, on this conversation's first request
    moved = await answer(client, [task], secret=BOB, session="s-1")
    assert moved["content"] == [text("Scripted by prompt.")]
    # A second conversation with the same word meets its own wall (once per conversation),
    # on a window that was emptied again in between.
    assert (await client.post("/_admin/credentials/alice/windows/reset")).status == 200
    assert (await ask(client, [task], session="s-1", stream=False)).status == 200
    assert (await ask(client, [task], session="s-2", stream=False)).status == 429
    listed = await (await client.get("/_admin/scripts")).json()
    assert list(listed["prompts"]) == ["demo-42"]
    assert (await client.delete(path)).status == 200 and (await client.get(path)).status == 404


async def test_credential_script_from_the_configuration() -> None:
    app = create_app(config([{"text": "Configured."}]), lambda: NOW)
    async with TestClient(TestServer(app)) as client:
        doc = await answer(client, [user(text("go"))], session=None)
        assert doc["content"] == [text("Configured.")]
        doc = await answer(client, [user(text("go"))], secret=BOB, session=None)
        assert doc["content"] == [text("Done.")]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "non-empty list"),
        ({"steps": [{"text": "x"}], "extra": 1}, "only steps"),
        ([{"usage": {"inputTokens": 1}}], "needs text, tools, structuredOutput or wall"),
        ([{"tools": [{"input": {}}]}], "needs a name"),
        ([{"tools": [{"name": "Bash", "input": "ls"}]}], "input must be an object"),
        ([{"tools": [{"name": "Bash", "expect": {"matches": "("}}]}], "not a regex"),
        ([{"tools": [{"name": "Bash", "expect": {"isError": "no"}}]}], "isError must be"),
        ([{"structuredOutput": [1]}], "must be an object"),
        ([{"wall": {"window": ""}}], "wall.window"),
        ([{"wall": True, "text": "x"}], "unknown text"),
        ([{"text": "x", "usage": {"inputTokens": -1}}], "inputTokens must be a number"),
    ],
)
def test_bad_scripts_are_refused_with_the_reason(doc: Any, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_script(doc)


def test_a_bad_credential_script_names_the_credential() -> None:
    with pytest.raises(ConfigError, match="credential alice: script: step 0"):
        config([{"nope": 1}])
