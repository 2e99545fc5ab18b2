"""The real Claude Code CLI against a scripted stand-in: the scripted model's tool calls run for
real in the CLI's working directory (Bash, Write, Read, Edit, an MCP tool), each tool result
comes back and is checked, a wall between two tool calls moves the session to another
credential that carries on, and --json-schema / --max-budget-usd end runs as the CLI does."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from scripted_cli import OAUTH_ALICE, OAUTH_BOB, ClaudeRunner
from tests.support.mcp_server import MCP_SERVER

from headroom_dev.sandbox.client import SandboxProcess, start_sandbox
from headroom_dev.sandbox.script import FAILURE_PREFIX

pytestmark = pytest.mark.cli

SESSION = "5c71b7ed-0000-4000-8000-00000000c1a0"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def two_accounts(sandbox: SandboxProcess) -> None:
    sandbox.add_credential("alice", "oauth", OAUTH_ALICE)
    sandbox.add_credential("bob", "oauth", OAUTH_BOB)


def tools(result_events: list[dict[str, Any]]) -> list[str]:
    return [
        block["name"]
        for event in result_events
        if event.get("type") == "assistant"
        for block in event["message"]["content"]
        if block.get("type") == "tool_use"
    ]


def test_bash_write_read_and_edit_run_in_the_working_directory(
    sandbox: SandboxProcess, claude: ClaudeRunner
) -> None:
    two_accounts(sandbox)
    notes = claude.work / "notes.md"
    sandbox.script_session(
        SESSION,
        [
            {
                "text": "Looking around.",
                "tools": [
                    {
                        "name": "Bash",
                        "input": {"command": "pwd && echo made > made.txt && echo ok"},
                        "expect": {"contains": [str(claude.work), "ok"]},
                    }
                ],
            },
            {
                "tools": [
                    {"name": "Write", "input": {"file_path": str(notes), "content": "alpha\n"}},
                    {
                        "name": "Bash",
                        "input": {"command": "cat made.txt"},
                        "expect": {"matches": "^made$"},
                    },
                ]
            },
            {
                "tools": [
                    {
                        "name": "Read",
                        "input": {"file_path": str(notes)},
                        "expect": {"contains": "alpha"},
                    }
                ]
            },
            {
                "tools": [
                    {
                        "name": "Edit",
                        "input": {
                            "file_path": str(notes),
                            "old_string": "alpha",
                            "new_string": "beta",
                        },
                    }
                ]
            },
            {
                "tools": [
                    {
                        "name": "Bash",
                        "input": {"command": "exit 3"},
                        "expect": {"isError": True, "contains": "Exit code 3"},
                    }
                ]
            },
            {"text": "All done."},
        ],
    )
    run = claude.run("--session-id", SESSION)
    assert run.returncode == 0, run.describe()
    assert (claude.work / "made.txt").read_text() == "made\n"
    assert notes.read_text() == "beta\n"
    assert run.result["subtype"] == "success" and run.result["result"] == "All done."
    assert tools(run.events) == ["Bash", "Write", "Bash", "Read", "Edit", "Bash"]
    checks = sandbox.tool_results()
    assert [(c["seq"], c["step"], c["tool"], c["ok"]) for c in checks] == [
        (2, 0, "Bash", True),
        (3, 1, "Write", True),
        (3, 1, "Bash", True),
        (4, 2, "Read", True),
        (5, 3, "Edit", True),
        (6, 4, "Bash", True),
    ], checks
    assert checks[0]["content"] == f"{claude.work}\nok"
    assert checks[-1]["isError"] is True
    requests = sandbox.requests()
    assert [r["script"]["step"] for r in requests] == [0, 1, 2, 3, 4, 5]
    assert {(r["session"], r["credential"]) for r in requests} == {(SESSION, "alice")}


def test_a_failed_expectation_ends_the_run_with_a_text_saying_so(
    sandbox: SandboxProcess, claude: ClaudeRunner
) -> None:
    two_accounts(sandbox)
    sandbox.script_session(
        SESSION,
        [
            {
                "tools": [
                    {
                        "name": "Bash",
                        "input": {"command": "echo nope"},
                        "expect": {"contains": "yes"},
                    }
                ]
            },
            {"tools": [{"name": "Bash", "input": {"command": "touch never.txt"}}]},
            {"text": "All done."},
        ],
    )
    run = claude.run("--session-id", SESSION)
    assert run.returncode == 0, run.describe()
    assert run.result["result"].startswith(FAILURE_PREFIX)
    assert "step 0 Bash #0: does not contain 'yes'" in run.result["result"]
    assert not (claude.work / "never.txt").exists()
    [check] = sandbox.tool_results()
    assert check["ok"] is False and check["content"] == "nope"
    assert check["failures"] == ["does not contain 'yes'"]


def test_an_mcp_tool_is_called_by_its_cli_name(
    sandbox: SandboxProcess, claude: ClaudeRunner, tmp_path: Path
) -> None:
    two_accounts(sandbox)
    server = tmp_path / "shout_server.py"
    server.write_text(MCP_SERVER)
    mcp_config = tmp_path / "mcp.json"
    mcp_config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "shout": {"type": "stdio", "command": sys.executable, "args": [str(server)]}
                }
            }
        )
    )
    sandbox.script_session(
        SESSION,
        [
            {
                "tools": [
                    {
                        "name": "mcp__shout__shout",
                        "input": {"text": "quiet words"},
                        "expect": {"contains": "QUIET WORDS"},
                    }
                ]
            },
            {"text": "Shouted."},
        ],
    )
    run = claude.run(
        "--session-id", SESSION, "--mcp-config", str(mcp_config), "--strict-mcp-config"
    )
    assert run.returncode == 0, run.describe()
    [init] = [e for e in run.events if e.get("subtype") == "init"]
    assert {"name": "shout", "status": "connected", "source": "dynamic"} in init["mcp_servers"]
    assert run.result["result"] == "Shouted."
    [check] = sandbox.tool_results()
    assert check["tool"] == "mcp__shout__shout" and check["ok"], check


def test_a_wall_between_two_tool_calls_moves_the_session_which_carries_on(
    sandbox: SandboxProcess, claude: ClaudeRunner
) -> None:
    two_accounts(sandbox)
    sandbox.script_session(
        SESSION,
        [
            {"tools": [{"name": "Bash", "input": {"command": "echo before-the-wall > work.txt"}}]},
            {"wall": {"window": "five_hour", "resetInSeconds": 3600}},
            {
                "tools": [
                    {
                        "name": "Bash",
                        "input": {"command": "cat work.txt"},
                        "expect": {"contains": "before-the-wall"},
                    }
                ]
            },
            {"text": "Finished after the move."},
        ],
    )
    walled = claude.run("--session-id", SESSION, oauth_token=OAUTH_ALICE)
    assert walled.returncode == 1, walled.describe()
    limits = [e["rate_limit_info"] for e in walled.events if e["type"] == "rate_limit_event"]
    assert [i["status"] for i in limits] == ["allowed", "rejected"]  # after the first answer
    assert limits[-1]["rateLimitType"] == "five_hour"
    assert tools(walled.events) == ["Bash"]
    resumed = claude.run(
        "--resume",
        SESSION,
        oauth_token=OAUTH_BOB,
        prompt="Continue the task from where you left off.",
    )
    assert resumed.returncode == 0, resumed.describe()
    assert resumed.result["result"] == "Finished after the move."
    requests = sandbox.requests()
    assert [(r["credential"], r["status"], r["script"]["step"]) for r in requests] == [
        ("alice", 200, 0),
        ("alice", 429, 2),
        ("bob", 200, 2),
        ("bob", 200, 3),
    ]
    assert requests[1]["script"]["wallsFired"] == [{"step": 1, "window": "five_hour"}]
    checks = [(c["credential"], c["step"], c["ok"]) for c in sandbox.tool_results()]
    assert checks == [("alice", 0, True), ("bob", 0, True), ("bob", 2, True)]


def test_a_run_killed_mid_tool_resumes_with_the_failed_check_reported(
    sandbox: SandboxProcess, claude: ClaudeRunner
) -> None:
    """A pod stopped while a tool runs: on --resume the CLI sends the killed tool's result as
    an error and may put in its own "No response requested." assistant message. That filler
    is not a turn, and the killed tool is a failed check, said in the final answer."""
    two_accounts(sandbox)
    sandbox.script_session(
        SESSION,
        [
            {"tools": [{"name": "Bash", "input": {"command": "echo started > log; sleep 60"}}]},
            {"text": "never"},
        ],
    )
    process = claude.start("--session-id", SESSION)
    deadline = time.monotonic() + 60
    while not (claude.work / "log").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)
    process.communicate(timeout=60)
    resumed = claude.run(
        "--resume",
        SESSION,
        oauth_token=OAUTH_BOB,
        prompt="Continue the task from where you left off.",
    )
    assert resumed.result["result"].startswith(FAILURE_PREFIX), resumed.describe()
    assert "step 0 Bash #0: is_error was true" in resumed.result["result"]
    last = sandbox.requests()[-1]
    assert (last["credential"], last["script"]["turn"], last["script"]["failed"]) == (
        "bob",
        1,
        True,
    )
    # Which result depends on whether the CLI wrote the killed tool's result before it exited
    # (both seen with 2.1.330); either way it is an error.
    [check] = sandbox.tool_results()
    assert check["isError"] is True, check
    assert check["content"] == "Exit code 137" or check["content"].startswith(
        "[Tool call interrupted: the session ended before this call's result was recorded"
    ), check


def test_a_credential_script_from_the_config_file(tmp_path: Path, claude_bin: str) -> None:
    config = {
        "credentials": [
            {
                "name": "carol",
                "kind": "APIKey",
                "secretEnv": "CAROL_KEY",
                "script": {
                    "steps": [
                        {
                            "tools": [
                                {
                                    "name": "Write",
                                    "input": {
                                        "file_path": "from-config.txt",
                                        "content": "configured\n",
                                    },
                                }
                            ]
                        },
                        {"text": "Wrote it."},
                    ]
                },
            }
        ]
    }
    path = tmp_path / "sandbox.yaml"
    path.write_text(yaml.safe_dump(config))
    key = "sk-ant-api03-SCRIPTEDcarolKEY00000"
    with start_sandbox("--config", str(path), env={"CAROL_KEY": key}) as sandbox:
        runner = ClaudeRunner(claude_bin, sandbox.url, tmp_path / "carol")
        run = runner.run(api_key=key)
        assert run.returncode == 0, run.describe()
        assert run.result["result"] == "Wrote it."
        assert (runner.work / "from-config.txt").read_text() == "configured\n"
        [check] = sandbox.tool_results()
        assert check["credential"] == "carol" and check["ok"]
        assert sandbox.requests()[0]["script"]["source"] == "credential"


def test_structured_output_fills_the_result_event(
    sandbox: SandboxProcess, claude: ClaudeRunner
) -> None:
    two_accounts(sandbox)
    sandbox.script_session(
        SESSION,
        [
            {"tools": [{"name": "Bash", "input": {"command": "echo 42"}}]},
            {"structuredOutput": {"answer": "42"}},
        ],
    )
    run = claude.run("--session-id", SESSION, "--json-schema", json.dumps(SCHEMA))
    assert run.returncode == 0, run.describe()
    assert run.result["subtype"] == "success" and run.result["is_error"] is False
    assert run.result["structured_output"] == {"answer": "42"}
    assert json.loads(run.result["result"]) == {"answer": "42"}
    # The CLI ends at the StructuredOutput call: no request carries its result.
    assert len(sandbox.requests()) == 2
    assert [c["tool"] for c in sandbox.tool_results()] == ["Bash"]


def test_structured_output_the_schema_refuses_is_a_failed_check(
    sandbox: SandboxProcess, claude: ClaudeRunner
) -> None:
    two_accounts(sandbox)
    sandbox.script_session(SESSION, [{"structuredOutput": {"answer": 42}}, {"text": "never"}])
    run = claude.run("--session-id", SESSION, "--json-schema", json.dumps(SCHEMA))
    assert "structured_output" not in run.result
    assert run.result["result"].startswith(FAILURE_PREFIX)
    [check] = sandbox.tool_results()
    assert check["tool"] == "StructuredOutput" and check["isError"] is True
    assert "does not match required schema" in check["content"]


def test_max_budget_ends_the_run_at_the_answer_that_spends_it(
    sandbox: SandboxProcess, claude: ClaudeRunner
) -> None:
    two_accounts(sandbox)
    # Reported usage sets the cost the CLI computes: a million input tokens is more than a
    # dollar on any model, a thousand a fraction of a cent.
    sandbox.script_session(
        SESSION,
        [
            {
                "tools": [{"name": "Bash", "input": {"command": "echo one >> log.txt"}}],
                "usage": {"inputTokens": 1000},
            },
            {
                "tools": [{"name": "Bash", "input": {"command": "echo two >> log.txt"}}],
                "usage": {"inputTokens": 1_000_000},
            },
            {"text": "never"},
        ],
    )
    run = claude.run("--session-id", SESSION, "--max-budget-usd", "1")
    assert run.returncode == 1, run.describe()
    result = run.result
    assert result["subtype"] == "error_max_budget_usd" and result["is_error"] is True
    assert result["terminal_reason"] == "budget_exhausted"
    assert result["errors"] == ["Reached maximum budget ($1)"]
    assert result["total_cost_usd"] > 1 and "result" not in result
    # The answer that spent the budget ends the run: the CLI may already have started its
    # tool (it runs tools while the answer streams), but never reports or sends its result.
    results = [b for e in run.events if e["type"] == "user" for b in e["message"]["content"]]
    assert [b["tool_use_id"].split("_")[1] for b in results] == ["sbx0"]
    assert (claude.work / "log.txt").read_text().startswith("one\n")
    assert len(sandbox.requests()) == 2
