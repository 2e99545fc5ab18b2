"""Pure parts of the runner: the pod environment, the start decision, the command line, the
credentials copy and the termination message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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
    assert argv[-1] == settings.resume_prompt  # not the original task again


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
