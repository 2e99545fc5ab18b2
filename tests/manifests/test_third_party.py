"""Third-party checks of everything Headroom puts into a cluster: the kustomize tree with its
components and overlay, the samples, the Helm chart (defaults, and every optional object on)
and an agent pod built by the operator's own code (operator/headroom/kube/agent_pod.py).

- `kubeconform -strict` (built from its Go module) against schemas generated here from
  Kubernetes's OpenAPI document at the cluster's version, the Prometheus Operator's CRDs and
  crds/ (tests/support/schemas.py): no unknown field, no missing schema, no skipped object.
- checkov (PyPI) `--framework kubernetes`: every finding is fixed or listed in SKIPS with the
  reason it does not apply; a skip that no longer matches a finding fails too, so the list
  cannot go stale."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support import schemas
from tests.support.manifests import MANIFESTS, Rendered, with_components
from tests.support.tools import Helm

from headroom.core.accounts import CredentialType
from headroom.kube import agent_pod

COMPONENTS = [MANIFESTS / "components" / c for c in ("prometheus-rule", "grafana-dashboard")]
CHART_ALL_ON = [
    "--set", "prometheusRule.enabled=true", "--set", "serviceMonitor.enabled=true",
    "--set", "dashboard.enabled=true",
]  # fmt: skip

# (check, resource prefix as checkov names it, why it does not apply). Resource names are
# "Kind.namespace.name".
SKIPS: list[tuple[str, str, str]] = [
    (
        "CKV_K8S_43",
        "Deployment.headroom-system.headroom-operator",
        "Image by digest: releases are published as immutable version tags; a digest is the "
        "installer's choice (kustomize `images: digest`, or the chart's image.tag)",
    ),
    (
        "CKV_K8S_15",
        "Deployment.headroom-system.headroom-operator",
        "imagePullPolicy Always: the tag is a pinned release, so IfNotPresent runs the same "
        "image, and a replacement replica can start while the registry is down",
    ),
    (
        "CKV_K8S_38",
        "Deployment.headroom-system.headroom-operator",
        "Service account token mounted: the operator is a Kubernetes client; its token is its "
        "identity (least-privilege RBAC, tests/manifests/test_rbac.py)",
    ),
    (
        "CKV_K8S_43",
        "Pod.agents.s1-1",
        "Agent image by digest: the image is the operator's --agent-image or the session's "
        "spec.image, both the installer's to pin",
    ),
    (
        "CKV_K8S_8",
        "Pod.agents.s1-1",
        "Liveness probe: an agent pod is one attempt of a batch task (restartPolicy Never) that "
        "serves nothing; the operator watches its end and its deadline, not an endpoint",
    ),
    ("CKV_K8S_9", "Pod.agents.s1-1", "Readiness probe: no Service ever sends an agent pod traffic"),
    (
        "CKV_K8S_15",
        "Pod.agents.s1-1",
        "imagePullPolicy Always: as for the operator, agent images are pinned tags (a session's "
        "spec.image with a mutable tag gets Kubernetes's own default, Always for :latest)",
    ),
    (
        "CKV_K8S_11",
        "Pod.agents.s1-1",
        "CPU limit: CPU is compressible; a limit throttles an agent's builds and test runs while "
        "the node idles. The request reserves its share; memory, which is not compressible, is "
        "limited",
    ),
    (
        "CKV_K8S_35",
        "Pod.agents.s1-1",
        "A Secret in the environment: the session's own spec.env entry (the real-task sample's "
        "CI_READ_TOKEN), given to the agent's tools on purpose; the account's credential is in no "
        "variable (docs/operator-guide.md, the credential and the agent's tools)",
    ),
]


def an_agent_pod() -> dict[str, Any]:
    """The real-task sample's session (repositories, env from Secrets, resources, a pod
    template, MCP servers, output schema) as the operator builds its first attempt."""
    session = yaml.safe_load((MANIFESTS / "samples" / "real-task" / "session.yaml").read_text())
    session["metadata"] = {"name": "s1", "namespace": "agents", "uid": "u-1"}
    plan = agent_pod.Attempt(
        number=1, account="alice", credential_type=CredentialType.OAUTH_TOKEN,
        credential_key="token", claude_session_id="6f1c0000-0000-4000-8000-000000000000",
        expect_transcript=False, auth_path="primary", workspace_claim="s1-workspace",
    )  # fmt: skip
    return agent_pod.agent_pod(session, plan, agent_pod.PodSettings())


@pytest.fixture(scope="module")
def documents(
    kustomize: Callable[[Path], Rendered], helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Rendered]:
    """Source name -> the objects it renders."""
    overlay = with_components(tmp_path_factory.mktemp("components"), *COMPONENTS)
    return {
        "kustomize": kustomize(overlay),
        "kind-overlay": kustomize(MANIFESTS / "overlays" / "kind"),
        "samples": samples(kustomize, tmp_path_factory.mktemp("samples")),
        "chart": helm.template("--include-crds"),
        "chart-optional": helm.template(*CHART_ALL_ON),
        "agent-pod": [an_agent_pod()],
    }


def samples(kustomize: Callable[[Path], Rendered], directory: Path) -> Rendered:
    """The samples as the docs apply them: `kubectl apply -k manifests/samples -n agents`."""
    out = []
    for sample in (MANIFESTS / "samples", MANIFESTS / "samples" / "real-task"):
        scratch = directory / sample.name
        scratch.mkdir()
        (scratch / "kustomization.yaml").write_text(yaml.safe_dump(
            {"namespace": "agents", "resources": [os.path.relpath(sample, scratch)]}
        ))  # fmt: skip
        out += kustomize(scratch)
    return out


def write(docs: dict[str, Rendered], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, objects in docs.items():
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(objects))
        paths.append(path)
    return paths


def kubeconform(binary: Path, files: list[Path], schema_dir: Path) -> tuple[int, dict[str, Any]]:
    location = f"{schema_dir}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"
    done = subprocess.run(
        [str(binary), "-strict", "-summary", "-output", "json", "-schema-location", location,
         *map(str, files)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def test_kubeconform_strict_accepts_every_object(
    kubeconform_path: Path, documents: dict[str, Rendered], tmp_path: Path
) -> None:
    everything = [doc for docs in documents.values() for doc in docs]
    written = schemas.write(everything, tmp_path / "schemas")
    # One schema per kind in use: apps/v1 Deployment, the CRDs, monitoring.coreos.com, ...
    assert len(written) == len({(d["apiVersion"], d["kind"]) for d in everything})
    code, report = kubeconform(kubeconform_path, write(documents, tmp_path / "in"),
                               tmp_path / "schemas")  # fmt: skip
    problems = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert (code, problems) == (0, [])
    summary = report["summary"]
    assert summary == {"valid": len(everything), "invalid": 0, "errors": 0, "skipped": 0}


@pytest.mark.parametrize(
    ("case", "path", "value"),
    [
        ("an unknown field of a built-in kind", ("spec", "template", "spec", "hostNetwrk"), True),
        ("an unknown field of a CRD", ("spec", "maxSesions"), 3),
        ("a wrong type", ("spec", "replicas"), "two"),
    ],
)
def test_kubeconform_refuses_what_the_schemas_do_not_allow(
    kubeconform_path: Path,
    documents: dict[str, Rendered],
    tmp_path: Path,
    case: str,
    path: tuple[str, ...],
    value: object,
) -> None:
    kind = "ClaudeAccount" if "CRD" in case else "Deployment"
    doc = next(d for d in documents["kustomize"] + documents["samples"] if d["kind"] == kind)
    broken = json.loads(json.dumps(doc))
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    schemas.write([broken], tmp_path / "schemas")
    code, report = kubeconform(kubeconform_path, write({"broken": [broken]}, tmp_path / "in"),
                               tmp_path / "schemas")  # fmt: skip
    assert code == 1, case
    (result,) = report["resources"]
    assert result["status"] == "statusInvalid", result
    assert path[-1] in result["msg"], result["msg"]


@pytest.fixture(scope="module")
def checkov_report(
    checkov_path: Path, documents: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("checkov")
    write(documents, directory)
    # Offline: no download of checkov's guideline mappings or external checks.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    done = subprocess.run(
        [str(checkov_path), "--framework", "kubernetes", "-d", str(directory),
         "--skip-download", "-o", "json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: there are findings
    report = json.loads(done.stdout)
    assert report["check_type"] == "kubernetes"
    return dict(report["results"])


def skipped(check: dict[str, Any]) -> bool:
    return any(check["check_id"] == cid and check["resource"].startswith(res)
               for cid, res, _ in SKIPS)  # fmt: skip


def test_checkov_finds_nothing_outside_the_reasoned_skips(checkov_report: dict[str, Any]) -> None:
    findings = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({Path(c['file_path']).name})"
        for c in checkov_report["failed_checks"]
        if not skipped(c)
    ]
    assert findings == []


def test_every_skip_still_matches_a_finding(checkov_report: dict[str, Any]) -> None:
    """A skip whose finding went away is removed, not kept "just in case"."""
    for cid, res, _ in SKIPS:
        assert any(c["check_id"] == cid and c["resource"].startswith(res)
                   for c in checkov_report["failed_checks"]), (cid, res)  # fmt: skip


def test_checkov_checked_the_operator_and_the_agent_pod(checkov_report: dict[str, Any]) -> None:
    """It really ran: among the checks that pass are the ones this tree once failed (no
    readiness probe, no NetworkPolicy for the operator's pods) and the agent pod's hardening."""
    passed = {(c["check_id"], c["resource"]) for c in checkov_report["passed_checks"]}
    operator = "Deployment.headroom-system.headroom-operator"
    agent = "Pod.agents.s1-1"
    for check in ("CKV_K8S_9", "CKV_K8S_8", "CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28"):
        assert (check, operator) in passed, check
    for check in ("CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_28", "CKV_K8S_37"):
        assert (check, agent) in passed, check
    assert any(cid == "CKV2_K8S_6" and "headroom-system" in res for cid, res in passed)
    assert len(checkov_report["passed_checks"]) > 100
