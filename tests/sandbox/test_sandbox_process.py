"""`headroom-dev sandbox-api` as a process: it starts quickly, announces the port it picked,
reads credentials from a YAML/JSON file (secrets from the environment), and refuses a bad
configuration without printing the secret."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from headroom_dev.sandbox.client import SandboxError, start_sandbox

CANARY = "canary-sandbox-config-secret-2718"


def test_port_zero_is_announced_on_stdout_and_in_the_port_file(tmp_path: Path) -> None:
    with start_sandbox() as sandbox:
        port = int(sandbox.url.rsplit(":", 1)[1])
        assert port > 0
        assert json.loads(sandbox.log().splitlines()[0]) == {"port": port, "url": sandbox.url}
        with urllib.request.urlopen(sandbox.url + "/_admin/health") as response:  # noqa: S310
            assert json.loads(response.read()) == {"ok": True}
    assert sandbox.process.returncode == 0  # SIGTERM stops it cleanly


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_credentials_from_a_file_with_the_secret_from_the_environment(
    tmp_path: Path, suffix: str
) -> None:
    config = {
        "marker": "ZEBRA",
        "credentials": [
            {"name": "alice", "kind": "OAuthToken", "secretEnv": "ALICE_TOKEN",
             "label": "alice@example", "windows": [{"name": "five_hour", "capacity": 5}]},
            {"name": "bob", "kind": "APIKey", "secret": "sk-ant-api03-inline-0000"},
        ],
    }  # fmt: skip
    path = tmp_path / f"sandbox{suffix}"
    path.write_text(yaml.safe_dump(config) if suffix == ".yaml" else json.dumps(config))
    with start_sandbox("--config", str(path), env={"ALICE_TOKEN": CANARY}) as sandbox:
        credentials = {c["name"]: c for c in sandbox.credentials()}
        assert credentials["alice"]["kind"] == "oauth"
        assert credentials["alice"]["label"] == "alice@example"
        assert [w["capacity"] for w in credentials["alice"]["windows"]] == [5]
        assert credentials["bob"]["kind"] == "api_key"
        assert {w["name"] for w in credentials["bob"]["windows"]} == {"five_hour", "seven_day"}
        assert sandbox.state()["marker"] == "ZEBRA"
        assert CANARY not in sandbox.log()


def test_credentials_from_flags(tmp_path: Path) -> None:
    with start_sandbox("--oauth-token", f"alice={CANARY}", "--api-key", "bob=sk-ant-api03-x-0000",
                       "--marker", "M", "--reply", "Hello.") as sandbox:  # fmt: skip
        assert [c["name"] for c in sandbox.credentials()] == ["alice", "bob"]
        assert sandbox.state()["reply"] == "Hello."


def test_bad_configuration_exits_2_without_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    bad = {"credentials": [{"name": "x", "kind": "nope", "secret": CANARY}]}
    path.write_text(yaml.safe_dump(bad))
    done = subprocess.run(
        [sys.executable, "-m", "headroom_dev", "sandbox-api", "--port", "0", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "kind must be oauth or api_key" in done.stderr
    assert CANARY not in done.stdout + done.stderr
    with pytest.raises(SandboxError), start_sandbox("--config", str(path)):
        pass


def test_unreadable_yaml_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("credentials: [ {name: x\n")
    done = subprocess.run(
        [sys.executable, "-m", "headroom_dev", "sandbox-api", "--port", "0", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "not valid YAML" in done.stderr
