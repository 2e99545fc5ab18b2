"""The namespace and context the plugin picks, as kubectl would: the flag, else the context's
namespace, else `default`; KUBECONFIG may list several files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from headroom.plugin.cluster import Target, context_namespace
from headroom.plugin.errors import PluginError


def kubeconfig(path: Path, current: str, contexts: dict[str, str | None]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": current,
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {"name": name, "context": {"cluster": "c", "user": "u"}
                     | ({"namespace": ns} if ns else {})}
                    for name, ns in contexts.items()
                ],
            }
        )
    )  # fmt: skip
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return kubeconfig(tmp_path / "config", "ops", {"ops": "agents", "bare": None})


def test_the_flag_wins(config: Path) -> None:
    assert context_namespace(Target(str(config), None, "team-a")) == "team-a"


def test_else_the_current_contexts_namespace(config: Path) -> None:
    assert context_namespace(Target(str(config), None, None)) == "agents"


def test_else_default(config: Path) -> None:
    assert context_namespace(Target(str(config), "bare", None)) == "default"


def test_an_unknown_context_is_named(config: Path) -> None:
    with pytest.raises(PluginError, match="context 'nope' is not in the kubeconfig"):
        context_namespace(Target(str(config), "nope", None))


def test_kubeconfig_may_list_several_files(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = kubeconfig(tmp_path / "other", "ops", {"team-b": "b-agents"})
    monkeypatch.setenv("KUBECONFIG", f"{config}:{other}")
    assert context_namespace(Target(None, "team-b", None)) == "b-agents"
    assert context_namespace(Target(None, None, None)) == "agents"  # the first file's current
