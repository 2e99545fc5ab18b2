"""The CRDs on a real kube-apiserver: every invalid manifest is refused with a message that
names the field (and the same field `headroom validate` names offline), every sample and
valid edge case is accepted, defaults are filled in, the kubectl experience works."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from headroom import validate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
SAMPLES = REPO / "manifests" / "samples"

# How the API server names a field in a refusal: a validation error list ("spec.x: Required
# value", "* spec.x: Invalid value: ..."), strict decoding ('unknown field "spec.x"') or
# server-side apply ("typed patch object (...): .spec.x: field not declared in schema" or
# ": .spec.x: expected string, got ..."). "<nil>: ... some validation
# rules were not checked" names no field and is left out.
_INVALID = re.compile(
    r"(?:^|is invalid: |\* )([A-Za-z][\w.\[\]/-]*): (?:Invalid value|Required value|"
    r"Unsupported value|Too long|Too many|Forbidden|Duplicate value)",
    re.MULTILINE,
)
_UNKNOWN = re.compile(r'unknown field "([^"]+)"')
_TYPED_PATCH = re.compile(r"typed patch object \([^)]*\): \.([\w.\[\]/-]+): ")


def server_paths(message: str) -> set[str]:
    return {m for rx in (_INVALID, _UNKNOWN, _TYPED_PATCH) for m in rx.findall(message)}


def offline_paths(path: Path) -> set[str]:
    kinds = validate.load_kinds(CRD_DIR)
    return {p.path for p in validate.check_file(path, kinds, validate.Tally())}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def shared_namespace(kubectl: Any) -> Iterator[str]:
    """One namespace for the many refusals: nothing is stored by a refused create."""
    name = f"t-crds-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "headroom.dev/test=true")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("verb", ["create", "apply"])
def test_invalid_manifest_is_refused_naming_the_field(
    kubectl: Any, shared_namespace: str, invalid_case: Any, verb: str
) -> None:
    ns = shared_namespace
    write = {
        "create": ("create", "-n", ns, "-f", "-"),
        "apply": ("apply", "--server-side", "-n", ns, "-f", "-"),
    }[verb]
    last = invalid_case.documents[-1]
    if invalid_case.mode == "update":
        # Same verb family for both steps: create then replace, or apply then apply (one field
        # manager, so server-side apply sees a change, not a conflict).
        kubectl(*write, input=invalid_case.documents[0])
        if verb == "create":
            write = ("replace", "-n", ns, "-f", "-")
    try:
        done = kubectl(*write, input=last, check=False)
        assert done.returncode != 0, f"accepted: {done.stdout}"
        refused = server_paths(done.stderr)
        assert invalid_case.field in refused, done.stderr
        # Offline and server agree: same paths for schema cases, none for CEL ones.
        expected_offline = refused if invalid_case.check == "schema" else set()
        assert offline_paths(invalid_case.path) == expected_offline, done.stderr
        if invalid_case.check == "cel":
            assert refused == {invalid_case.field}, done.stderr
    finally:
        if invalid_case.mode == "update":
            kubectl("delete", "-n", ns, "-f", "-", "--wait=false", input=last, check=False)


def test_valid_edge_cases_are_accepted(kubectl: Any, namespace: str, valid_file: Path) -> None:
    done = kubectl("apply", "--server-side", "-n", namespace, "-f", str(valid_file), check=False)
    assert done.returncode == 0, done.stderr
    assert offline_paths(valid_file) == set()


# --- the samples ---------------------------------------------------------------------------


def sample_objects() -> list[dict[str, Any]]:
    files = yaml.safe_load((SAMPLES / "kustomization.yaml").read_text())["resources"]
    return [d for f in files for d in documents(SAMPLES / f)]


@pytest.fixture(scope="module")
def samples(kubectl: Any) -> Iterator[str]:
    """A namespace with `kubectl apply -k manifests/samples` applied (asserted clean)."""
    name = f"t-samples-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "headroom.dev/test=true")
    done = kubectl("apply", "-k", str(SAMPLES), "-n", name, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # no warnings either
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def get(kubectl: Any, ns: str, kind: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(kubectl("get", kind, name, "-n", ns, "-o", "json").stdout)
    return loaded


def test_every_sample_applies_cleanly_and_reapplies_unchanged(kubectl: Any, samples: str) -> None:
    again = kubectl("apply", "-k", str(SAMPLES), "-n", samples)
    lines = again.stdout.strip().splitlines()
    assert len(lines) == len(sample_objects())
    # Our objects are unchanged (the immutability rules do not block an idempotent apply).
    # Secrets written with stringData always read "configured" with client-side apply.
    ours = [line for line in lines if ".headroom.dev/" in line]
    assert len(ours) == 6 and all(line.endswith(" unchanged") for line in ours), again.stdout


def test_get_headroom_lists_both_kinds(kubectl: Any, samples: str) -> None:
    listed = set(kubectl("get", "headroom", "-n", samples, "-o", "name").stdout.split())
    ours = {
        f"{d['kind'].lower()}.headroom.dev/{d['metadata']['name']}"
        for d in sample_objects()
        if d["apiVersion"].startswith("headroom.dev/")
    }
    assert listed == ours
    assert {n.split("/")[0] for n in listed} == {
        "claudeaccount.headroom.dev",
        "agentsession.headroom.dev",
    }
    for short in ("ca", "ags"):
        assert kubectl("get", short, "-n", samples, "-o", "name").stdout.strip()


def test_defaults_are_filled_in(kubectl: Any, samples: str) -> None:
    plain = get(kubectl, samples, "agentsession", "fix-flaky-test")["spec"]
    assert plain["failover"] == {"cooldown": "5m", "confirmations": 2, "maxSwaps": 20}
    assert plain["workspace"] == {"size": "1Gi"}
    custom = get(kubectl, samples, "agentsession", "migrate-schema")["spec"]
    assert custom["failover"] == {"cooldown": "15m", "confirmations": 3, "maxSwaps": 5}
    team = get(kubectl, samples, "claudeaccount", "team-api")["spec"]
    assert (team["maxSessions"], team["priority"], team["paused"]) == (10, 0, False)
    # The key is defaulted by the operator per type, not by the schema (one default per type).
    assert "key" not in team["credentials"]


def test_mutable_fields_can_change(kubectl: Any, samples: str) -> None:
    patch = {"spec": {"maxTurns": 50, "accountSelector": {"matchLabels": {"tier": "pro"}}}}
    kubectl("patch", "agentsession", "upgrade-deps", "-n", samples, "--type=merge",
            "-p", json.dumps(patch))  # fmt: skip
    kubectl("patch", "claudeaccount", "alice", "-n", samples, "--type=merge",
            "-p", '{"spec": {"maxSessions": 3, "paused": true}}')  # fmt: skip
    assert get(kubectl, samples, "agentsession", "upgrade-deps")["spec"]["maxTurns"] == 50
    assert get(kubectl, samples, "claudeaccount", "alice")["spec"]["maxSessions"] == 3


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("field", "crd_name", "schema_path"),
    [
        ("agentsession.spec.failover", "agentsessions", ["spec", "failover"]),
        ("claudeaccount.spec.credentials", "claudeaccounts", ["spec", "credentials"]),
        ("agentsession.status", "agentsessions", ["status"]),
        ("agentsession.spec.claude", "agentsessions", ["spec", "claude"]),
        ("agentsession.spec.podTemplate.spec", "agentsessions", ["spec", "podTemplate", "spec"]),
    ],
)
def test_explain_prints_the_descriptions(
    kubectl: Any, field: str, crd_name: str, schema_path: list[str]
) -> None:
    crd = yaml.safe_load((CRD_DIR / f"{crd_name}.headroom.dev.yaml").read_text())
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in schema_path:
        node = node["properties"][part]
    shown = _words(kubectl("explain", field).stdout)
    assert _words(node["description"]) in shown
    for name, child in node["properties"].items():
        assert f"{name} <" in shown, name
        # kubectl wraps long text; compare the first words of every field's description.
        assert " ".join(_words(child["description"]).split()[:6]) in shown, name


# --- status, printer columns, conditions ---------------------------------------------------


def create(kubectl: Any, ns: str, doc: dict[str, Any]) -> None:
    kubectl("create", "-n", ns, "-f", "-", input=json.dumps(doc))


def session(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": "AgentSession",
        "metadata": {"name": name},
        "spec": {"prompt": "hello"},
    }


def account(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": "ClaudeAccount",
        "metadata": {"name": name},
        "spec": {"credentials": {"secretRef": {"name": "s"}, "type": "OAuthToken"}},
    }


def ready(status: str, reason: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": "",
            "lastTransitionTime": "2026-11-23T12:00:00Z"}  # fmt: skip


def patch_status(kubectl: Any, ns: str, kind: str, name: str, status: dict[str, Any]) -> Any:
    return kubectl("patch", kind, name, "-n", ns, "--subresource=status", "--type=merge",
                   "-p", json.dumps({"status": status}), check=False)  # fmt: skip


def table(kubectl: Any, ns: str, kind: str, name: str, *extra: str) -> dict[str, str]:
    header, row = kubectl("get", kind, name, "-n", ns, *extra).stdout.strip().splitlines()
    # Columns are separated by runs of 2+ spaces; values here contain no double spaces.
    return dict(zip(re.split(r"\s{2,}", header), re.split(r"\s{2,}", row), strict=True))


def test_session_printer_columns(kubectl: Any, namespace: str) -> None:
    create(kubectl, namespace, session("columns"))
    status = {"phase": "Waiting", "account": "alice", "swapCount": 3, "attempt": 4,
              "authPath": "fallback", "conditions": [ready("False", "NoHeadroom")],
              "totals": {"turns": 12, "costUSD": 0.75, "durationSeconds": 61.5}}  # fmt: skip
    done = patch_status(kubectl, namespace, "agentsession", "columns", status)
    assert done.returncode == 0, done.stderr
    shown = table(kubectl, namespace, "agentsession", "columns")
    assert list(shown) == ["NAME", "PHASE", "ACCOUNT", "SWAPS", "AGE"]
    assert (shown["PHASE"], shown["ACCOUNT"], shown["SWAPS"]) == ("Waiting", "alice", "3")
    wide = table(kubectl, namespace, "agentsession", "columns", "-o", "wide")
    assert (wide["ATTEMPT"], wide["PATH"], wide["REASON"]) == ("4", "fallback", "NoHeadroom")
    assert wide["COST"] == "0.75"


def test_account_printer_columns(kubectl: Any, namespace: str) -> None:
    create(kubectl, namespace, account("columns"))
    status = {"phase": "Walled", "activeSessions": 1, "walledUntil": "2026-11-23T14:00:00Z",
              "conditions": [ready("False", "Walled")]}  # fmt: skip
    assert patch_status(kubectl, namespace, "claudeaccount", "columns", status).returncode == 0
    shown = table(kubectl, namespace, "claudeaccount", "columns")
    assert list(shown) == ["NAME", "PHASE", "ACTIVE", "MAX", "RESETS", "AGE"]
    assert [shown[c] for c in ("PHASE", "ACTIVE", "MAX", "RESETS")] == [
        "Walled", "1", "1", "2026-11-23T14:00:00Z"]  # fmt: skip
    wide = table(kubectl, namespace, "claudeaccount", "columns", "-o", "wide")
    assert (wide["TYPE"], wide["PRIORITY"], wide["REASON"]) == ("OAuthToken", "0", "Walled")


@pytest.mark.parametrize(
    ("kind", "status", "field"),
    [
        ("agentsession", {"phase": "Sleeping"}, "status.phase"),
        ("agentsession", {"authPath": "secondary"}, "status.authPath"),
        ("agentsession", {"swaps": [{"from": "a", "to": "b"}] * 21}, "status.swaps"),
        ("agentsession", {"lastOutcome": {"evidence": "x" * 121}}, "status.lastOutcome.evidence"),
        ("agentsession", {"result": {"outcome": "done"}}, "status.result.outcome"),
        ("agentsession", {"conditions": [{"type": "Ready", "status": "True"}]},
         "status.conditions[0].reason"),
        ("agentsession", {"retryAt": "soon"}, "status.retryAt"),
        ("claudeaccount", {"windows": [{"name": "five_hour", "utilization": 1.5}]},
         "status.windows[0].utilization"),
        ("claudeaccount", {"lastSignal": {"evidence": "y" * 121}}, "status.lastSignal.evidence"),
        ("claudeaccount", {"phase": "Broken"}, "status.phase"),
        ("agentsession", {"result": {"summary": "z" * 4097}}, "status.result.summary"),
        ("agentsession", {"attempts": [{"attempt": 1}] * 21}, "status.attempts"),
        ("agentsession", {"attempts": [{"outcome": "exploded"}]}, "status.attempts[0].outcome"),
        ("agentsession", {"totals": {"costUSD": -0.5}}, "status.totals.costUSD"),
        ("agentsession", {"finishedAt": "yesterday"}, "status.finishedAt"),
        ("agentsession", {"reposCloned": "yes"}, "status.reposCloned"),
    ],
    ids=["phase", "authPath", "too-many-swaps", "long-evidence", "result-outcome",
         "condition-shape", "retryAt", "utilization", "signal-evidence", "account-phase",
         "long-summary", "too-many-attempts", "attempt-outcome", "negative-cost", "finishedAt",
         "reposCloned"],
)  # fmt: skip
def test_status_subresource_refuses_bad_status(
    kubectl: Any, namespace: str, kind: str, status: dict[str, Any], field: str
) -> None:
    create(kubectl, namespace, session("s") if kind == "agentsession" else account("s"))
    done = patch_status(kubectl, namespace, kind, "s", status)
    assert done.returncode != 0
    assert field in server_paths(done.stderr), done.stderr


def test_session_status_keeps_the_result_and_history(kubectl: Any, namespace: str) -> None:
    create(kubectl, namespace, session("finished"))
    structured = {"fixed": True, "files": ["a.py"], "nested": {"score": 0.5}}
    status = {"phase": "Succeeded", "workspaceClaim": "finished-workspace", "reposCloned": True,
              "finishedAt": "2026-11-23T14:00:00Z", "waitingSince": "2026-11-23T12:00:00Z",
              "totals": {"turns": 12, "costUSD": 0.75, "durationSeconds": 61.5},
              "attempts": [{"attempt": 1, "podName": "finished-1", "account": "alice",
                            "outcome": "walled", "startedAt": "2026-11-23T12:00:00Z",
                            "finishedAt": "2026-11-23T12:30:00Z", "durationSeconds": 1800.0,
                            "turns": 7, "costUSD": 0.5}] * 20,
              "result": {"outcome": "completed", "reason": "Completed", "turns": 12,
                         "costUSD": 0.75, "durationSeconds": 61.5, "summary": "s" * 4096,
                         "structuredOutput": structured}}  # fmt: skip
    done = patch_status(kubectl, namespace, "agentsession", "finished", status)
    assert done.returncode == 0, done.stderr
    stored = get(kubectl, namespace, "agentsession", "finished")["status"]
    assert stored == status  # nothing pruned, structuredOutput kept as written


def test_status_is_written_only_through_the_subresource(kubectl: Any, namespace: str) -> None:
    create(kubectl, namespace, session("gitops"))
    kubectl("patch", "agentsession", "gitops", "-n", namespace, "--type=merge",
            "-p", '{"status": {"phase": "Running"}}')  # fmt: skip
    assert "status" not in get(kubectl, namespace, "agentsession", "gitops")
    assert patch_status(kubectl, namespace, "agentsession", "gitops",
                        {"phase": "Running"}).returncode == 0  # fmt: skip
    assert get(kubectl, namespace, "agentsession", "gitops")["status"] == {"phase": "Running"}


def test_kubectl_wait_for_ready(kubectl: Any, namespace: str) -> None:
    create(kubectl, namespace, session("waited"))
    assert patch_status(kubectl, namespace, "agentsession", "waited",
                        {"conditions": [ready("True", "Running")]}).returncode == 0  # fmt: skip
    kubectl("wait", "--for=condition=Ready", "agentsession/waited", "-n", namespace,
            "--timeout=20s")  # fmt: skip
