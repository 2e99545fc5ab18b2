"""Claude Code's environment inside the pod: the writable config dir, the copied credentials
file, and the transcript that decides between --session-id and --resume."""

from __future__ import annotations

import json
import os
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any

CREDENTIALS_NAME = ".credentials.json"


class Start(Enum):
    NEW = "new"  # --session-id: no conversation yet
    RESUME = "resume"  # --resume: the transcript is on the workspace
    MISSING = "missing"  # a conversation should exist but does not: never start blank


def choose_start(transcript_exists: bool, expect_transcript: bool) -> Start:
    """Claude Code refuses --session-id for an id that has a transcript, and --resume without
    one; a lost transcript must fail loudly rather than restart the task from nothing."""
    if transcript_exists:
        return Start.RESUME
    return Start.MISSING if expect_transcript else Start.NEW


def transcript_exists(config_dir: Path, session_id: str) -> bool:
    """`$CLAUDE_CONFIG_DIR/projects/<project>/<uuid>.jsonl`, in any project folder."""
    projects = config_dir / "projects"
    try:
        return any(p.is_file() for p in projects.glob(f"*/{session_id}.jsonl"))
    except OSError:
        return False


def prepare_config_dir(config_dir: Path) -> None:
    """Claude Code writes into its config dir; prove it is writable before starting it."""
    config_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=config_dir, prefix=".headroom-probe-"):
        pass


def install_credentials_file(source: Path, config_dir: Path) -> None:
    """Copy (never link) the mounted credentials into the config dir. Claude Code owns that
    file and rewrites it when it refreshes tokens; a symlink into a read-only Secret mount
    would break that, and a shared file would let two pods spend one refresh chain."""
    data = source.read_bytes()
    target = config_dir / CREDENTIALS_NAME
    fd, partial = tempfile.mkstemp(dir=config_dir, prefix=".credentials-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(partial, 0o600)
        os.replace(partial, target)  # replaces a symlink itself, never its target
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def credential_values(source: Path) -> list[str]:
    """Every string in a credentials file that could be a secret, so it can be scrubbed."""
    try:
        doc = json.loads(source.read_text("utf-8"))
    except (OSError, ValueError):
        return []
    found: list[str] = []
    _strings(doc, found)
    return [s for s in found if len(s) >= 8]


def _strings(node: Any, found: list[str]) -> None:
    if isinstance(node, str):
        found.append(node)
    elif isinstance(node, dict):
        for value in node.values():
            _strings(value, found)
    elif isinstance(node, list):
        for value in node:
            _strings(value, found)
