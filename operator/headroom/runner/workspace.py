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


def file_values(paths: list[Path]) -> list[str]:
    """The contents of secret files (a token, a key), stripped, for scrubbing; every line
    too, so a multi-line secret is caught even when only a part of it is printed."""
    found: list[str] = []
    for path in paths:
        try:
            text = path.read_text("utf-8", errors="replace").strip()
        except OSError:
            continue
        found += [text, *(line.strip() for line in text.splitlines())]
    return [s for s in found if len(s) >= 8]


def files_under(root: Path) -> list[Path]:
    """Regular files below `root`; a mounted Secret's `..data` links lead to the same files."""
    try:
        return [p for p in root.rglob("*") if p.is_file() and "..data" not in p.parts]
    except OSError:
        return []


def prompt_recorded(config_dir: Path, session_id: str, prompt: str) -> bool:
    """Whether the transcript holds `prompt` as a message of the user."""
    for transcript in (config_dir / "projects").glob(f"*/{session_id}.jsonl"):
        try:
            lines = transcript.read_text("utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if any(_user_text(line) == prompt.strip() for line in lines):
            return True
    return False


def _user_text(line: str) -> str | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    message = entry.get("message") if isinstance(entry, dict) else None
    if not isinstance(message, dict) or message.get("role") != "user":
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        texts = [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ]
        return "".join(texts).strip()
    return None
