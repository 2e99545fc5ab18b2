"""The pinned Claude Code CLI the tests run: its version and where `make claude-cli` puts it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PINNED_CLI_VERSION = "2.1.330"  # hack/claude-code/package.json
DEFAULT_CLAUDE_BIN = REPO / "hack" / "claude-code" / "node_modules" / ".bin" / "claude"


def pinned_claude_bin() -> str:
    """$HEADROOM_CLAUDE_BIN, else hack/claude-code's npm install, checked to be the pinned
    version. Missing or another version is a failure, never a skip."""
    configured = os.environ.get("HEADROOM_CLAUDE_BIN") or str(DEFAULT_CLAUDE_BIN)
    found = shutil.which(configured)
    if found is None:
        pytest.fail(
            f"Claude Code CLI not found at {configured}. Run `make claude-cli` "
            "(npm ci --prefix hack/claude-code --no-audit --no-fund) or set HEADROOM_CLAUDE_BIN."
        )
    version = subprocess.run(
        [found, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    if PINNED_CLI_VERSION not in version:
        pytest.fail(f"{found} is {version.strip()!r}, not the pinned {PINNED_CLI_VERSION}")
    return found
