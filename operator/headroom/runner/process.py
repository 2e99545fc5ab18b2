"""Run the Claude Code CLI, feed its stdout to the classifier as it arrives, and stop it when
the classifier says so or when the pod is asked to stop (SIGTERM is forwarded)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from headroom.runner.stream import LineSplitter, StreamClassifier

STDERR_TAIL_BYTES = 4096
CHUNK = 64 * 1024
DRAIN_SECONDS = 5.0  # after the CLI exits, a tool it left behind may still hold its pipes


@dataclass
class CliRun:
    exit_code: int | None = None
    interrupted: str | None = None  # the signal that made us stop it, e.g. "SIGTERM"
    stopped_for_auth: bool = False
    stderr_tail: str = ""
    start_error: str = ""


class StopSwitch:
    """One place that knows whether and why the CLI must stop, reachable from the signal
    handlers before the CLI even exists."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.reason: str | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._signalled = False

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._signal_process()

    def attach(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        if self.reason is not None:
            self._signal_process()

    def _signal_process(self) -> None:
        process = self.process
        if process is None or process.returncode is not None or self._signalled:
            return
        self._signalled = True
        _signal_group(process.pid, signal.SIGTERM)
        asyncio.get_running_loop().call_later(self.grace_seconds, self._kill)

    def _kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            _signal_group(self.process.pid, signal.SIGKILL)


async def run_cli(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    classifier: StreamClassifier,
    switch: StopSwitch,
    scrub: Callable[[str], str],
    stdin_text: str | None = None,
    echo: TextIO = sys.stdout,
    pass_fd: int = -1,
) -> CliRun:
    """`pass_fd`: a descriptor the child inherits under the same number (the credential's
    pipe); closed here once the child has it, or was not started."""
    run = CliRun()
    try:
        if switch.reason is not None:
            run.interrupted = switch.reason
            return run
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin_text is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: stopping it stops its tools too
            pass_fds=(pass_fd,) if pass_fd >= 0 else (),
        )
    except OSError as exc:
        run.start_error = f"cannot start {argv[0]}: {exc.strerror or exc}"
        return run
    finally:
        if pass_fd >= 0:
            os.close(pass_fd)
    switch.attach(process)
    if stdin_text is not None and process.stdin is not None:
        with contextlib.suppress(ConnectionError):
            process.stdin.write(stdin_text.encode("utf-8"))
            await process.stdin.drain()
        process.stdin.close()

    def on_auth_failure() -> None:
        run.stopped_for_auth = True
        switch.request("authentication_failed")

    pumps = [
        asyncio.create_task(_pump_stdout(process, classifier, on_auth_failure, scrub, echo)),
        asyncio.create_task(_pump_stderr(process, run, scrub)),
    ]
    run.exit_code = await process.wait()
    _, pending = await asyncio.wait(pumps, timeout=DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    if switch.reason is not None and not run.stopped_for_auth:
        run.interrupted = switch.reason
    return run


async def _pump_stdout(
    process: asyncio.subprocess.Process,
    classifier: StreamClassifier,
    on_auth_failure: Callable[[], None],
    scrub: Callable[[str], str],
    echo: TextIO,
) -> None:
    assert process.stdout is not None
    splitter = LineSplitter()
    while True:
        chunk = await process.stdout.read(CHUNK)
        lines = splitter.feed(chunk) if chunk else splitter.flush()
        for line, truncated in lines:
            if classifier.feed(line, truncated):
                on_auth_failure()
            # Pod logs keep the conversation for people; scrubbed like everything we print.
            shown = (
                "<line over the size limit, not shown>"
                if truncated
                else line.decode("utf-8", errors="replace")
            )
            echo.write(scrub(shown) + "\n")
        echo.flush()
        if not chunk:
            return


async def _pump_stderr(
    process: asyncio.subprocess.Process, run: CliRun, scrub: Callable[[str], str]
) -> None:
    assert process.stderr is not None
    splitter = LineSplitter(limit=STDERR_TAIL_BYTES)
    tail = ""
    while True:
        chunk = await process.stderr.read(CHUNK)
        # Whole lines only: a secret cut in two by a chunk boundary would escape the scrub.
        for line, _ in splitter.feed(chunk) if chunk else splitter.flush():
            text = scrub(line.decode("utf-8", errors="replace"))
            sys.stderr.write(text + "\n")
            tail = (tail + text + "\n")[-STDERR_TAIL_BYTES:]
        sys.stderr.flush()
        run.stderr_tail = tail
        if not chunk:
            return


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def install_signal_handlers(switch: StopSwitch) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, switch.request, signal.Signals(signum).name)
