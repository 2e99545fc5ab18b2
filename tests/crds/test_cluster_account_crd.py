"""The ClusterClaudeAccount CRD is derived from the ClaudeAccount CRD (headroom-dev crdgen):
the committed file is what the generator writes, and the two kinds differ only where a
cluster account must."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from headroom_dev.crdgen import main as crdgen

CRDS = Path(__file__).resolve().parents[2] / "crds"


def schema(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / f"{name}.headroom.dev.yaml").read_text("utf-8"))
    (version,) = doc["spec"]["versions"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return found


def test_the_committed_crd_is_the_generated_one() -> None:
    assert crdgen.TARGET.read_text("utf-8") == crdgen.generate(), (
        "crds/clusterclaudeaccounts.headroom.dev.yaml is stale: run `headroom-dev crdgen`"
    )
    assert crdgen.main(["--check"]) == 0


def test_the_kinds_differ_only_where_a_cluster_account_must() -> None:
    namespaced, cluster = schema("claudeaccounts"), schema("clusterclaudeaccounts")
    spec, cluster_spec = namespaced["properties"]["spec"], cluster["properties"]["spec"]
    extra = set(cluster_spec["properties"]) - set(spec["properties"])
    assert extra == {"allowedNamespaces"}
    for field, node in spec["properties"].items():
        if field != "credentials":
            assert cluster_spec["properties"][field] == node, field
    assert cluster_spec["required"] == [*spec["required"], "allowedNamespaces"]
    status = dict(namespaced["properties"]["status"]["properties"])
    del status["runtimeSecretName"]  # a cluster account's sessions each get their own copy
    assert cluster["properties"]["status"]["properties"] == status


def test_the_namespace_selector_is_the_sessions_selector_schema() -> None:
    sessions = schema("agentsessions")["properties"]["spec"]["properties"]["accountSelector"]
    cluster = schema("clusterclaudeaccounts")["properties"]["spec"]["properties"]
    selector = cluster["allowedNamespaces"]["properties"]["selector"]

    def bare(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: bare(v) for k, v in node.items() if k != "description"}
        return node

    assert bare(selector) == bare(sessions)
