"""`headroom validate` (no cluster): the same invalid manifests the API server tests use, and
the samples. Offline and server never disagree: every schema case is reported with the field
path the server names, and nothing is reported where the server accepts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from headroom import validate

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
SAMPLES = REPO / "manifests" / "samples"
INVALID = Path(__file__).resolve().parent / "invalid"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = validate.main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def reported_paths(lines: list[str]) -> set[str]:
    return {line.split(": ", 2)[1] for line in lines}


def test_invalid_case_reported_with_the_servers_field_path(
    invalid_case: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run(capsys, str(invalid_case.path))
    if invalid_case.check == "schema":
        assert code == 1, lines
        assert reported_paths(lines) == {invalid_case.field}, lines
        assert all(line.startswith(f"{invalid_case.path}: ") for line in lines)
    else:
        # A CEL rule: offline cannot see it and must not pretend to; it says so instead.
        assert (code, lines) == (0, []), lines
        assert "CEL" in err and "need an API server" in err


def test_there_are_enough_invalid_cases_of_both_kinds() -> None:
    cases = list(INVALID.glob("*.yaml"))
    assert len(cases) >= 20
    assert any(p.name.startswith("ca-") for p in cases) and any(
        p.name.startswith("as-") for p in cases
    )


def test_samples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(capsys, str(SAMPLES))
    assert (code, lines) == (0, [])
    assert "0 problem(s) in 7 object(s)" in err  # 3 accounts + 4 sessions; Secrets skipped


def test_valid_edge_cases_pass(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, str(valid_file))
    assert (code, lines) == (0, [])


def test_a_directory_reports_every_schema_case_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, str(INVALID))
    schema_cases = [p for p in INVALID.glob("*.yaml") if "# check: schema" in p.read_text()]
    assert code == 1
    assert sorted({line.split(": ", 1)[0] for line in lines}) == sorted(map(str, schema_cases))
    assert len(lines) == len(schema_cases)


def test_help_says_cel_needs_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        validate.main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "CEL rules" in text and "need an API server" in text
    assert "--crds" in text


def test_console_script_prints_file_path_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: headroom.dev/v1alpha1\nkind: AgentSession\nmetadata: {name: x}\n"
        "spec: {prompt: hi, maxTurns: 0}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "headroom", "validate", str(bad)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith(f"{bad}: spec.maxTurns: Invalid value: 0: ")
    assert "CEL" in done.stderr


def test_crds_flag_and_missing_crds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "crds"
    shutil.copytree(CRD_DIR, copy)
    code, lines, _ = run(capsys, "--crds", str(copy), str(INVALID / "as-missing-prompt.yaml"))
    assert (code, reported_paths(lines)) == (1, {"spec.prompt"})
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "--crds", str(empty), str(SAMPLES))
    assert code == 2 and "no CustomResourceDefinitions" in err
    code, _, err = run(capsys, str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in err


def test_crds_ship_with_the_package() -> None:
    from importlib import resources

    shipped = resources.files("headroom").joinpath("crds")
    names = sorted(p.name for p in shipped.iterdir() if p.name.endswith(".yaml"))
    assert names == sorted(p.name for p in CRD_DIR.glob("*.yaml"))
    for name in names:
        assert shipped.joinpath(name).read_text() == (CRD_DIR / name).read_text()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return str(path)


SESSION = "apiVersion: headroom.dev/v1alpha1\nkind: AgentSession\nmetadata: {name: s}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [unclosed\n", {"<file>"}),
        (SESSION + "spec: {prompt: a, prompt: b}\n", {"<file>"}),  # duplicate key, like kubectl
        ("apiVersion: headroom.dev/v1\nkind: AgentSession\nmetadata: {name: s}\n", {"kind"}),
        ("apiVersion: headroom.dev/v1alpha1\nkind: AgentSession\nspec: {prompt: a}\n",
         {"metadata.name"}),
        (SESSION + "spec: {prompt: a, model: null}\n", set()),  # the server prunes nulls
        (SESSION + "spec: {prompt: null}\n", {"spec.prompt"}),
        (SESSION + "spec: {prompt: a}\nstatus: {swaps: [{from: a, by: b}]}\n",
         {"status.swaps[0].by"}),
        (SESSION + "spec:\n  prompt: a\n  accountSelector:\n    matchExpressions:\n"
         "    - {key: k, operator: In, values: [ok, 'not ok']}\n",
         {"spec.accountSelector.matchExpressions[0].values[1]"}),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {x: y}\n", set()),
        ("apiVersion: v1\nkind: List\nitems:\n- " + SESSION.replace("\n", "\n  ") + "spec: {}\n",
         {"spec.prompt"}),
    ],
    ids=["yaml-error", "duplicate-key", "unserved-version", "no-name", "null-pruned",
         "null-required", "unknown-status-field", "selector-value", "other-kind", "list"],
)  # fmt: skip
def test_edge_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: set[str]
) -> None:
    code, lines, _ = run(capsys, write(tmp_path, text))
    assert reported_paths(lines) == expected, lines
    assert code == (1 if expected else 0)


# --- the translation of the Kubernetes OpenAPI subset ------------------------------------


def problems(schema: dict[str, Any], value: Any) -> list[tuple[str, str]]:
    root = {"type": "object", "properties": {"x": schema}}
    kind = validate.Kind("g/v", "K", root, validate._validator(root), 0)
    return validate.check_object({"metadata": {"name": "n"}, "x": value}, kind)


def test_translate_nullable_int_or_string_and_exclusive_bounds() -> None:
    assert problems({"type": "string", "nullable": True}, None) == []
    int_or_string = {"x-kubernetes-int-or-string": True}
    assert problems(int_or_string, 3) == [] and problems(int_or_string, "50%") == []
    assert [p for p, _ in problems(int_or_string, 1.5)] == ["x"]
    above_zero = {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert problems(above_zero, 0.1) == []
    assert problems(above_zero, 0) == [("x", "Invalid value: 0: should be greater than 0")]


def test_translate_list_types() -> None:
    as_set = {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    assert [p for p, _ in problems(as_set, ["a", "a"])] == ["x"]
    as_map = {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string"}},
        },
    }
    assert problems(as_map, [{"type": "A"}, {"type": "B"}]) == []
    assert [p for p, _ in problems(as_map, [{"type": "A"}, {"type": "A"}])] == ["x[1]"]


def test_translate_formats_and_preserved_fields() -> None:
    when = {"type": "string", "format": "date-time"}
    assert problems(when, "2026-11-23T14:00:00Z") == []
    assert problems(when, "2026-11-23T14:00:00.5+01:00") == []
    assert [p for p, _ in problems(when, "tomorrow")] == ["x"]
    assert [p for p, _ in problems(when, "2026-13-23T14:00:00Z")] == ["x"]
    free = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert problems(free, {"anything": {"goes": 1}}) == []
    closed = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert [p for p, _ in problems(closed, {"a": "1", "b": 2})] == ["x.b"]


# --- the CRDs themselves -----------------------------------------------------------------


def crd(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CRD_DIR / f"{name}.headroom.dev.yaml").read_text())
    return loaded


def schema_of(name: str) -> dict[str, Any]:
    found: dict[str, Any] = crd(name)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return found


def undescribed(node: dict[str, Any], path: str) -> list[str]:
    missing = [] if node.get("description") else [path]
    for key, child in node.get("properties", {}).items():
        if path in {"", "."} and key == "metadata":
            continue  # ObjectMeta is documented by Kubernetes itself
        missing += undescribed(child, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            missing += undescribed(node[key], f"{path}[{key}]")
    return missing


@pytest.mark.parametrize("name", ["claudeaccounts", "clusterclaudeaccounts", "agentsessions"])
def test_every_field_has_a_description(name: str) -> None:
    assert undescribed(schema_of(name), "") == []


def test_the_two_selectors_are_the_same_schema() -> None:
    spec = schema_of("agentsessions")["properties"]["spec"]["properties"]
    primary = dict(spec["accountSelector"])
    fallback = dict(spec["fallback"]["properties"]["accountSelector"])
    primary.pop("description"), fallback.pop("description")
    assert primary == fallback


# These field names are a contract with users, samples and outside checks.
CONTRACT = {
    "claudeaccounts": [
        "spec.credentials.secretRef.name", "spec.credentials.type", "spec.credentials.key",
        "spec.maxSessions", "spec.priority", "spec.paused", "status.phase",
        "status.activeSessions", "status.windows[].name", "status.windows[].status",
        "status.windows[].utilization", "status.windows[].resetsAt", "status.windows[].observedAt",
        "status.walledUntil", "status.walledHash", "status.lastSignal.type", "status.lastSignal.at",
        "status.lastSignal.session", "status.lastSignal.window", "status.lastSignal.evidence",
        "status.credentialsHash", "status.runtimeSecretName", "status.observedGeneration",
        "status.conditions[].type",
    ],
    "agentsessions": [
        "spec.prompt", "spec.accountSelector.matchLabels", "spec.fallback.accountSelector",
        "spec.image", "spec.model", "spec.maxTurns", "spec.workspace.size",
        "spec.workspace.storageClassName", "spec.failover.cooldown", "spec.failover.confirmations",
        "spec.failover.maxSwaps", "status.phase", "status.account", "status.claudeSessionId",
        "status.podName", "status.attempt", "status.swaps[].from", "status.swaps[].to",
        "status.swaps[].at", "status.swaps[].reason", "status.swaps[].window",
        "status.waitingUntil", "status.authPath", "status.result.turns", "status.result.costUSD",
        "status.result.outcome", "status.observedGeneration", "status.conditions[].type",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", ["claudeaccounts", "agentsessions"])
def test_contract_field_names_exist(name: str) -> None:
    for dotted in CONTRACT[name]:
        node = schema_of(name)
        for part in dotted.split("."):
            node = node["properties"][part.removesuffix("[]")]
            if part.endswith("[]"):
                node = node["items"]
        assert node.get("description"), dotted


@pytest.mark.parametrize(
    ("name", "short", "columns"),
    [
        ("claudeaccounts", "ca", ["Phase", "Active", "Max", "Resets", "Age"]),
        ("clusterclaudeaccounts", "cca", ["Phase", "Active", "Max", "Resets", "Age"]),
        ("agentsessions", "ags", ["Phase", "Account", "Swaps", "Age"]),
    ],
)
def test_names_and_default_columns(name: str, short: str, columns: list[str]) -> None:
    spec = crd(name)["spec"]
    scope = "Cluster" if name.startswith("cluster") else "Namespaced"
    assert spec["scope"] == scope and spec["group"] == "headroom.dev"
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["headroom"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    shown = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert shown == columns


def field_paths(node: dict[str, Any], path: str = "") -> list[str]:
    out = []
    for key, child in node.get("properties", {}).items():
        if not path and key in {"apiVersion", "kind", "metadata"}:
            continue
        here = f"{path}.{key}" if path else key
        out.append(here)
        is_list = "items" in child
        out += field_paths(child.get("items", child), here + "[]" * is_list)
    return out


@pytest.mark.parametrize("name", ["claudeaccounts", "clusterclaudeaccounts", "agentsessions"])
def test_docs_describe_every_field_and_column(name: str) -> None:
    docs = (REPO / "docs" / "api.md").read_text()
    # The fallback and namespace selectors are the same schema as accountSelector (tests above
    # and in test_cluster_account_crd.py), documented once.
    same = ("spec.fallback.accountSelector.", "spec.allowedNamespaces.selector.")
    paths = [p for p in field_paths(schema_of(name)) if not p.startswith(same)]
    assert [p for p in paths if f"`{p}`" not in docs] == []
    for column in crd(name)["spec"]["versions"][0]["additionalPrinterColumns"]:
        assert f"**{column['name'].upper()}**" in docs
