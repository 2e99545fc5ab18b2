"""Pure parts of the executor: $(VAR) expansion, path mapping, exit codes, messages."""

from __future__ import annotations

from pathlib import Path

from headroom.executor.envvars import ConfigError, expand, resolve
from headroom.executor.paths import Bind, Mount, PathMap
from headroom.executor.status import MAX_MESSAGE_BYTES, exit_code, termination_message


def test_expand_follows_kubernetes_rules() -> None:
    defined = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", defined) == "1-two"
    assert expand("$(MISSING) stays", defined) == "$(MISSING) stays"
    assert expand("$$(A) is escaped", defined) == "$(A) is escaped"
    assert expand("cost $5 $", defined) == "cost $5 $"
    assert expand("$(A", defined) == "$(A"


def test_resolve_uses_earlier_variables_and_reports_missing_keys() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {}}
    container = {
        "env": [
            {"name": "X", "value": "x"},
            {"name": "Y", "value": "$(X)/$(Z)"},
            {"name": "Z", "value": "z"},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]
    }
    env = resolve(container, pod, lambda kind, ns, name: {"k": "v"}, "127.0.0.1")
    assert env == {"X": "x", "Y": "x/$(Z)", "Z": "z", "N": "ns", "S": "v"}
    try:
        resolve(container, pod, lambda kind, ns, name: None, "127.0.0.1")
    except ConfigError as exc:
        assert 'Secret "s" not found' in str(exc)
    else:
        raise AssertionError("a missing Secret must stop the container from starting")


def test_paths_translate_longest_mount_and_leave_other_values() -> None:
    paths = PathMap(
        [
            Mount("/workspace", Path("/pv/1"), "workspace"),
            Mount("/var/lib/claude", Path("/pods/u/volumes/config"), "config"),
            Mount("/var/lib/claude/projects", Path("/pv/1/.claude-projects"), "workspace"),
        ]
    )
    assert paths.translate("/workspace") == "/pv/1"
    assert paths.translate("/workspace/src/") == "/pv/1/src"
    assert paths.translate("/var/lib/claude/projects/x.jsonl") == "/pv/1/.claude-projects/x.jsonl"
    assert paths.translate("/var/lib/claude") == "/pods/u/volumes/config"
    assert paths.translate("/workspaces") == "/workspaces"  # a prefix, not a parent
    assert paths.translate("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert paths.translate("/workspace:/other") == "/workspace:/other"
    assert paths.nested_binds() == [
        Bind(Path("/pv/1/.claude-projects"), Path("/pods/u/volumes/config/projects"))
    ]


def test_signal_deaths_read_as_128_plus_signal() -> None:
    assert exit_code(3) == 3
    assert exit_code(-15) == 143
    assert exit_code(-9) == 137


def test_termination_message_keeps_the_last_4096_bytes(tmp_path: Path) -> None:
    message, log = tmp_path / "msg", tmp_path / "log"
    message.write_bytes(b"a" * 5000 + b"END")
    text = termination_message(str(message), str(log), "File", failed=True)
    assert len(text) == MAX_MESSAGE_BYTES and text.endswith("END")
    message.write_bytes(b"")
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(200)))
    fallback = termination_message(str(message), str(log), "FallbackToLogsOnError", failed=True)
    assert fallback.endswith("line 199\n") and "line 119\n" not in fallback
    assert termination_message(str(message), str(log), "File", failed=True) == ""
