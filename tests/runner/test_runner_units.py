"""Pure parts of the runner: the pod environment, the start decision, the command line, the
credentials copy and the termination message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.support.claude_options import PASSED_THROUGH

from headroom.contract.termination import Outcome, parse
from headroom.runner import workspace
from headroom.runner.main import command
from headroom.runner.report import message_for, render
from headroom.runner.settings import SettingsError, settings_from_env
from headroom.runner.stream import Verdict
from headroom.runner.workspace import Start, choose_start

SESSION = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
BASE = {"HEADROOM_SESSION_ID": SESSION, "HEADROOM_PROMPT": "Fix the flaky test"}


def test_settings_defaults_follow_the_pod_contract() -> None:
    settings = settings_from_env({**BASE, "HOME": "/home/agent"})
    assert settings.workdir == Path("/workspace")
    assert settings.termination_log == Path("/dev/termination-log")
    assert settings.claude_bin == "claude"
    assert settings.config_dir == Path("/home/agent/.claude")
    assert (settings.attempt, settings.expect_transcript) == (1, False)
    assert settings.model is None and settings.max_turns is None


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"HEADROOM_SESSION_ID": ""}, "HEADROOM_SESSION_ID"),
        ({"HEADROOM_SESSION_ID": "not-a-uuid"}, "HEADROOM_SESSION_ID"),
        ({"HEADROOM_PROMPT": "  "}, "HEADROOM_PROMPT"),
        ({"HEADROOM_ATTEMPT": "two"}, "HEADROOM_ATTEMPT"),
        ({"HEADROOM_ATTEMPT": "0"}, "HEADROOM_ATTEMPT"),
        ({"HEADROOM_MAX_TURNS": "-1"}, "HEADROOM_MAX_TURNS"),
        ({"HEADROOM_EXPECT_TRANSCRIPT": "maybe"}, "HEADROOM_EXPECT_TRANSCRIPT"),
    ],
)
def test_settings_errors_name_the_variable(overrides: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        settings_from_env({**BASE, **overrides})


def test_session_id_is_normalized_to_lowercase() -> None:
    settings = settings_from_env({**BASE, "HEADROOM_SESSION_ID": SESSION.upper()})
    assert settings.session_id == SESSION


@pytest.mark.parametrize(
    ("exists", "expected", "start"),
    [
        (True, False, Start.RESUME),
        (True, True, Start.RESUME),
        (False, False, Start.NEW),
        (False, True, Start.MISSING),
    ],
)
def test_choose_start(exists: bool, expected: bool, start: Start) -> None:
    assert choose_start(exists, expected) is start


def test_command_for_a_new_and_a_resumed_session() -> None:
    env = {**BASE, "HEADROOM_MODEL": "claude-opus", "HEADROOM_MAX_TURNS": "200"}
    settings = settings_from_env(env)
    argv, stdin = command(settings, Start.NEW)
    assert argv == [
        "claude", "-p", "--output-format", "stream-json", "--verbose",
        "--session-id", SESSION, "--model", "claude-opus", "--max-turns", "200",
        "--", "Fix the flaky test",
    ]  # fmt: skip
    assert stdin is None
    argv, _ = command(settings, Start.RESUME)
    assert argv[5:7] == ["--resume", SESSION]
    assert argv[-1] == "Fix the flaky test"  # the conversation does not hold the task yet


REAL_PROMPT_LINE = (
    Path(__file__).parent / "data" / "transcripts" / "user_prompt.jsonl"
).read_text()


def _transcript(config_dir: Path, line: str) -> None:
    folder = config_dir / "projects" / "-workspace"
    folder.mkdir(parents=True)
    (folder / f"{SESSION}.jsonl").write_text(line)


def test_a_resume_sends_the_task_only_while_the_conversation_lacks_it(tmp_path: Path) -> None:
    """A session continuing another one (same conversation, new prompt) sends its prompt with
    --resume; once the prompt is recorded, later attempts only ask to carry on."""
    env = {**BASE, "CLAUDE_CONFIG_DIR": str(tmp_path)}
    _transcript(tmp_path, REAL_PROMPT_LINE)  # recorded by the real CLI: "Fix the flaky test"
    settings = settings_from_env(env)
    assert command(settings, Start.RESUME)[0][-1] == settings.resume_prompt
    follow_up = settings_from_env({**env, "HEADROOM_PROMPT": "Now also update the changelog"})
    assert command(follow_up, Start.RESUME)[0][-1] == "Now also update the changelog"


def test_claude_options_become_cli_flags_with_each_tool_rule_one_argument() -> None:
    options = {**PASSED_THROUGH, "maxBudgetUSD": 1.5}
    env = {
        **BASE,
        "HEADROOM_CLAUDE": json.dumps(options),
        "HEADROOM_MCP_CONFIG": "/var/run/headroom/mcp/mcp.json",
    }
    settings = settings_from_env(env)
    argv, _ = command(settings, Start.NEW)
    flags = argv[argv.index("--session-id") + 2 : argv.index("--")]
    assert flags == [
        "--append-system-prompt", "Be brief.", "--system-prompt", "You fix tests.",
        "--effort", "high", "--fallback-model", "claude-haiku",
        "--max-budget-usd", "1.500000",
        "--settings", '{"includeCoAuthoredBy":false}',
        "--json-schema", '{"type":"object"}',
        "--strict-mcp-config", "--mcp-config", "/var/run/headroom/mcp/mcp.json",
        "--allowedTools", "Bash(git *)", "Edit", "--disallowedTools", "WebFetch",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("not json", "HEADROOM_CLAUDE is not JSON"),
        ("[]", "HEADROOM_CLAUDE must be a JSON object"),
        ('{"allowedTools": "Edit"}', "HEADROOM_CLAUDE.allowedTools"),
        ('{"maxBudgetUSD": "5"}', "HEADROOM_CLAUDE.maxBudgetUSD"),
        ('{"settings": []}', "HEADROOM_CLAUDE.settings"),
    ],
)
def test_bad_claude_options_name_the_variable(raw: str, needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        settings_from_env({**BASE, "HEADROOM_CLAUDE": raw})


def test_secret_values_come_from_env_names_files_and_a_secret_mcp_config(tmp_path: Path) -> None:
    from headroom.runner.main import secret_values

    token = tmp_path / "git" / "0" / "secret"
    token.parent.mkdir(parents=True)
    token.write_text("ghp_repository_token_123\n")
    scrub_dir = tmp_path / "scrub" / "1"
    scrub_dir.mkdir(parents=True)
    (scrub_dir / "DB_URL").write_text("postgres://user:hunter22@db/app")
    mcp = tmp_path / "mcp.json"
    mcp.write_text(json.dumps({"mcpServers": {"x": {"env": {"KEY": "mcp-secret-value"}}}}))
    env = {
        **BASE,
        "GH_TOKEN": "gh-env-token-value",
        "HEADROOM_SCRUB_ENV": "GH_TOKEN",
        "HEADROOM_SCRUB_DIR": str(tmp_path / "scrub"),
        "HEADROOM_REPOS": json.dumps([{"url": "u", "credentials": {"file": str(token)}}]),
        "HEADROOM_CLAUDE": json.dumps({"mcpConfigSecret": True}),
        "HEADROOM_MCP_CONFIG": str(mcp),
    }
    found = secret_values(settings_from_env(env), env)
    for value in ("gh-env-token-value", "ghp_repository_token_123",
                  "postgres://user:hunter22@db/app", "mcp-secret-value"):  # fmt: skip
        assert value in found


def test_a_prompt_starting_with_dashes_stays_a_prompt_and_a_huge_one_goes_to_stdin() -> None:
    argv, _ = command(settings_from_env({**BASE, "HEADROOM_PROMPT": "--help"}), Start.NEW)
    assert argv[-2:] == ["--", "--help"]
    huge = "x" * 200_000
    argv, stdin = command(settings_from_env({**BASE, "HEADROOM_PROMPT": huge}), Start.NEW)
    assert stdin == huge and huge not in argv


def test_transcript_is_found_in_any_project_folder(tmp_path: Path) -> None:
    assert not workspace.transcript_exists(tmp_path, SESSION)
    folder = tmp_path / "projects" / "-workspace"
    folder.mkdir(parents=True)
    (folder / "other.jsonl").write_text("{}")
    assert not workspace.transcript_exists(tmp_path, SESSION)
    (folder / f"{SESSION}.jsonl").write_text("{}")
    assert workspace.transcript_exists(tmp_path, SESSION)


def test_credentials_file_copy_replaces_a_symlink_and_leaves_its_target_alone(
    tmp_path: Path,
) -> None:
    source = tmp_path / "secret" / "credentials.json"
    source.parent.mkdir()
    source.write_text('{"claudeAiOauth": {"accessToken": "new-access-token"}}')
    source.chmod(0o400)
    config = tmp_path / "config"
    config.mkdir()
    elsewhere = tmp_path / "shared-credentials.json"
    elsewhere.write_text("other pod's file")
    (config / ".credentials.json").symlink_to(elsewhere)

    workspace.install_credentials_file(source, config)

    copy = config / ".credentials.json"
    assert copy.is_file() and not copy.is_symlink()
    assert copy.read_text() == source.read_text()
    assert copy.stat().st_mode & 0o777 == 0o600
    assert elsewhere.read_text() == "other pod's file"
    assert workspace.credential_values(source) == ["new-access-token"]


def test_unwritable_config_dir_is_reported(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocked = Path("/proc/headroom-cannot-write-here")  # root writes anywhere else
    else:
        blocked = tmp_path / "ro"
        blocked.mkdir(mode=0o500)
    with pytest.raises(OSError):
        workspace.prepare_config_dir(blocked)


def test_message_scrubs_secrets_and_keeps_evidence_short() -> None:
    secret = "plain-canary-value-9f8e7d"
    verdict = Verdict(
        Outcome.WALLED,
        window="five_hour",
        resets_at="2026-11-23T14:00:00Z",
        evidence=f"rate_limit_event rejected for {secret} " + "e" * 300,
        detail=f"Authorization: Bearer sk-ant-oat01-abcdefgh and {secret}",
        utilization={"five_hour": 1.0},
    )
    text = render(message_for(verdict, SESSION, True, [secret]))
    assert secret not in text and "sk-ant-oat01-abcdefgh" not in text
    doc = json.loads(text)
    assert len(doc["evidence"]) <= 120
    parsed = parse(text).message
    assert parsed is not None and parsed.outcome is Outcome.WALLED
    assert parsed.resets_at == "2026-11-23T14:00:00Z"


def test_a_message_that_breaks_the_schema_becomes_a_failed_report() -> None:
    broken = Verdict(Outcome.WALLED)  # walled without window and resetsAt
    doc = json.loads(render(message_for(broken, SESSION, False, [])))
    assert doc["outcome"] == "failed"
    assert "invalid termination message" in doc["detail"]


def test_settings_cannot_replace_the_credential_or_the_pod_contract() -> None:
    settings = {
        "apiKeyHelper": "/bin/echo sk-elsewhere",
        "env": {"ANTHROPIC_BASE_URL": "http://collector", "HEADROOM_X": "1", "FOO": "bar"},
        "includeCoAuthoredBy": False,
    }
    parsed = settings_from_env({**BASE, "HEADROOM_CLAUDE": json.dumps({"settings": settings})})
    assert parsed.claude.settings == {"env": {"FOO": "bar"}, "includeCoAuthoredBy": False}
