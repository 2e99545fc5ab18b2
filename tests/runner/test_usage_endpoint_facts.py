"""The facts Headroom's usage poller and the stand-in's usage endpoint rest on, checked
against the pinned CLI: every bundle excerpt of data/usage_endpoint.json occurs exactly once
in its binary, and the recorded run (data/usage_endpoint.jsonl) says what the findings say."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.support.claude_cli import pinned_claude_bin

from headroom_dev.sandbox import usage

DATA = Path(__file__).resolve().parent / "data"
FACTS = json.loads((DATA / "usage_endpoint.json").read_text("utf-8"))
RECORDS = [json.loads(line) for line in (DATA / "usage_endpoint.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def bundle() -> bytes:
    """The pinned CLI's binary (the npm package's claude.exe behind the bin link)."""
    return Path(os.path.realpath(pinned_claude_bin())).read_bytes()


@pytest.mark.parametrize("name", sorted(FACTS["bundle"]))
def test_each_excerpt_occurs_once_in_the_pinned_cli(bundle: bytes, name: str) -> None:
    excerpt = FACTS["bundle"][name]["excerpt"].encode("utf-8")
    assert bundle.count(excerpt) == 1, name


def test_the_recorded_run_read_usage_from_the_oauth_host_not_the_base_url() -> None:
    debug = [r["text"] for r in RECORDS if r["source"] == "debug"]
    assert any("fetchUtilization: GET /api/oauth/usage (attempt 1)" in t for t in debug)
    assert any("Failed to load usage data: getaddrinfo ENOTFOUND api.anthropic.com" in t
               for t in debug)  # fmt: skip
    seen = [(r["method"], r["path"]) for r in RECORDS if r["source"] == "stand-in"]
    assert seen and all(not path.startswith("/api/oauth/usage") for _, path in seen)
    (answer,) = [r["line"] for r in RECORDS if r["source"] == "stdout"
                 and r["line"].get("type") == "control_response"]  # fmt: skip
    assert answer["response"]["response"]["rate_limits"] is None


def test_the_stand_ins_report_has_the_bundles_shape() -> None:
    """The stand-in answers with the windows the CLI's schema names, in its units."""
    shape = FACTS["bundle"]["windowShape"]["excerpt"]
    for name in usage.REPORTED_WINDOWS:
        assert f"{name}:e.nullish()" in shape
    extra = FACTS["bundle"]["extraUsage"]["excerpt"]
    credential: Any = _credential_with_half_used_five_hour()
    doc = usage.report(credential)
    assert doc["five_hour"]["utilization"] == 50.0  # percent, 0-100
    assert doc["five_hour"]["resets_at"].endswith("Z")
    assert doc["seven_day_opus"] is None
    for key in doc["extra_usage"]:
        assert f"{key}:" in extra


def test_the_stand_ins_403_is_the_public_one() -> None:
    public = json.loads(FACTS["public"]["403Body"])["error"]
    assert public["message"] == usage.SCOPE_TEXT
    assert public["details"]["error_code"] == "oauth_scope_insufficient"
    assert usage.PROFILE_SCOPE in FACTS["bundle"]["profileScopeName"]["excerpt"]


def _credential_with_half_used_five_hour() -> object:
    from headroom_dev.sandbox.state import Credential
    from headroom_dev.sandbox.windows import Window

    window = Window.create("five_hour", 1_795_400_000.0, capacity=4)
    window.used = 2
    return Credential("c", "oauth", "secret", windows={"five_hour": window})
