"""`headroom agent`: prepare, run Claude Code, classify, report, exit with the contract code.

Reads only the environment (the pod contract); see docs/runner.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from headroom.contract import pod as c
from headroom.contract.scrub import scrub
from headroom.contract.termination import Outcome
from headroom.runner import clone, credential, report, workspace
from headroom.runner.process import StopSwitch, install_signal_handlers, run_cli
from headroom.runner.settings import (
    CREDENTIAL_ENV,
    ClaudeOptions,
    RunnerSettings,
    SettingsError,
    session_id_of,
    settings_from_env,
    termination_log_path,
)
from headroom.runner.stream import StreamClassifier, Verdict

# Beyond this a prompt goes through stdin: one exec argument is limited to 128 KiB on Linux.
MAX_ARGUMENT_BYTES = 100_000
USAGE = """usage: headroom agent

Runs Claude Code inside an agent pod as the pod contract says (environment only, no flags),
writes the termination message and exits with its code: completed 0, walled 75,
auth_failed 77, throttled 69, failed 1. See docs/runner.md."""


def main(argv: list[str]) -> int:
    if argv and argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0
    return asyncio.run(run(dict(os.environ)))


async def run(env: Mapping[str, str]) -> int:
    secrets = [env[name] for name in CREDENTIAL_ENV if env.get(name)]
    switch = StopSwitch(grace_seconds=10)
    install_signal_handlers(switch)
    try:
        held = credential.take(env)
        settings = settings_from_env(env)
    except (SettingsError, credential.CredentialError) as exc:
        verdict = Verdict(Outcome.FAILED, detail=f"Bad pod environment: {exc}.")
        return finish(verdict, session_id_of(env), False, termination_log_path(env), secrets)
    if held is not None:
        secrets.append(held.value)
        credential.forbid_dumping()
    switch.grace_seconds = settings.stop_grace_seconds
    secrets += secret_values(settings, env)
    verdict = await attempt(settings, env, switch, secrets, held)
    transcript = workspace.transcript_exists(settings.config_dir, settings.session_id)
    return finish(verdict, settings.session_id, transcript, settings.termination_log, secrets)


async def attempt(
    settings: RunnerSettings,
    env: Mapping[str, str],
    switch: StopSwitch,
    secrets: list[str],
    held: credential.Credential | None = None,
) -> Verdict:
    problem = prepare(settings)
    if problem:
        return Verdict(Outcome.FAILED, detail=problem)
    start = workspace.choose_start(
        workspace.transcript_exists(settings.config_dir, settings.session_id),
        settings.expect_transcript,
    )
    if start is workspace.Start.MISSING:
        return Verdict(
            Outcome.FAILED,
            detail="Resume found no conversation: an earlier attempt reported a transcript for "
            f"session {settings.session_id}, but none is under "
            f"{settings.config_dir}/projects. Not starting a blank conversation.",
        )
    for problem in clone.refresh_credentials(env):
        log(f"git credentials not refreshed: {scrub(problem, secrets)}")
    argv, stdin_text = command(settings, start)
    log(
        f"attempt {settings.attempt}: "
        f"{'--resume' if start is workspace.Start.RESUME else '--session-id'} "
        f"{settings.session_id} in {settings.workdir}"
    )
    classifier = StreamClassifier()
    child_env, credential_fd = credential.hand_over(held, env)
    child_env[c.CONFIG_DIR_ENV] = str(settings.config_dir)
    child_env.setdefault(c.NO_NONESSENTIAL_TRAFFIC_ENV, "1")
    cli = await run_cli(
        argv,
        child_env,
        settings.workdir,
        classifier,
        switch,
        scrub=lambda text: scrub(text, secrets),
        stdin_text=stdin_text,
        pass_fd=credential_fd,
    )
    if cli.start_error:
        return Verdict(Outcome.FAILED, detail=cli.start_error)
    verdict = classifier.verdict(cli.exit_code, cli.interrupted)
    if verdict.outcome is Outcome.FAILED and cli.stderr_tail.strip():
        tail = " ".join(cli.stderr_tail.split())[-300:]
        verdict = dataclasses.replace(verdict, detail=f"{verdict.detail} stderr: {tail}")
    return verdict


def secret_values(settings: RunnerSettings, env: Mapping[str, str]) -> list[str]:
    """Values that are secret besides the account's credential: scrubbed from every line."""
    found = [env[name] for name in settings.scrub_env if env.get(name)]
    if settings.credentials_file is not None:
        found += workspace.credential_values(settings.credentials_file)
    found += workspace.file_values([*settings.repo_credential_files])
    if settings.scrub_dir is not None:
        found += workspace.file_values(workspace.files_under(settings.scrub_dir))
    mcp = settings.claude.mcp_config
    if mcp is not None and settings.claude.mcp_config_secret:
        found += workspace.credential_values(mcp)
    return found


def prepare(settings: RunnerSettings) -> str:
    """Set up the config dir and credentials; a sentence describing the problem, or ""."""
    if not settings.workdir.is_dir():
        return f"{c.WORKDIR} {settings.workdir} is not a directory (is the workspace mounted?)."
    try:
        workspace.prepare_config_dir(settings.config_dir)
    except OSError as exc:
        return f"{c.CONFIG_DIR_ENV} {settings.config_dir} is not writable: {exc.strerror or exc}."
    if settings.credentials_file is not None:
        try:
            workspace.install_credentials_file(settings.credentials_file, settings.config_dir)
        except OSError as exc:
            return (
                f"Cannot copy {c.CREDENTIALS_FILE} {settings.credentials_file}: "
                f"{exc.strerror or exc}."
            )
    return ""


def command(settings: RunnerSettings, start: workspace.Start) -> tuple[list[str], str | None]:
    argv = [settings.claude_bin, "-p", "--output-format", "stream-json", "--verbose"]
    if start is workspace.Start.RESUME:
        argv += ["--resume", settings.session_id]
        prompt = resume_message(settings)
    else:
        argv += ["--session-id", settings.session_id]
        prompt = settings.prompt
    if settings.model:
        argv += ["--model", settings.model]
    if settings.max_turns:
        argv += ["--max-turns", str(settings.max_turns)]
    if settings.permission_mode:
        argv += ["--permission-mode", settings.permission_mode]
    argv += claude_flags(settings.claude)
    if len(prompt.encode("utf-8")) > MAX_ARGUMENT_BYTES:
        return argv, prompt
    return [*argv, "--", prompt], None


def resume_message(settings: RunnerSettings) -> str:
    """The task itself while the conversation does not hold it yet (a session continuing an
    earlier one brings a new prompt; so does a first attempt stopped before its prompt was
    recorded), else the plain request to carry on."""
    if workspace.prompt_recorded(settings.config_dir, settings.session_id, settings.prompt):
        return settings.resume_prompt
    return settings.prompt


def claude_flags(options: ClaudeOptions) -> list[str]:
    """spec.claude as Claude Code's own options. Tool lists come last among the variadic
    options and each rule is one argument, so a rule with spaces ("Bash(git *)") stays whole."""
    flags: list[str] = []
    texts = (
        ("--append-system-prompt", options.append_system_prompt),
        ("--system-prompt", options.system_prompt),
        ("--effort", options.effort),
        ("--fallback-model", options.fallback_model),
    )
    for flag, value in texts:
        if value:
            flags += [flag, value]
    if options.max_budget_usd is not None:
        flags += ["--max-budget-usd", f"{options.max_budget_usd:.6f}"]
    if options.settings is not None:
        flags += ["--settings", json.dumps(options.settings, separators=(",", ":"))]
    if options.output_schema is not None:
        flags += ["--json-schema", json.dumps(options.output_schema, separators=(",", ":"))]
    if options.mcp_config is not None:
        flags += ["--strict-mcp-config", "--mcp-config", str(options.mcp_config)]
    if options.allowed_tools:
        flags += ["--allowedTools", *options.allowed_tools]
    if options.disallowed_tools:
        flags += ["--disallowedTools", *options.disallowed_tools]
    return flags


def finish(
    verdict: Verdict,
    session_id: str | None,
    transcript: bool,
    path: os.PathLike[str] | str,
    secrets: list[str],
) -> int:
    text = report.render(report.message_for(verdict, session_id, transcript, secrets))
    report.deliver(text, Path(path))
    return report.exit_code(text)


def log(message: str) -> None:
    print(f"headroom agent: {message}", file=sys.stderr, flush=True)
