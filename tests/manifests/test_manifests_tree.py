"""The install tree as kustomize renders it (no cluster): CRDs by reference, a hardened
operator whose arguments are real flags, RBAC shaped for least privilege, an agent
NetworkPolicy that selects exactly the pods the operator builds, the kind overlay."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.manifests import MANIFESTS, REPO, Rendered, find, with_components

from headroom import validate
from headroom.controllers.main import parse_args, settings_from
from headroom.kube import agent_pod

CRD_DIR = REPO / "crds"


def operator_container(docs: Rendered) -> dict[str, Any]:
    deployment = find(docs, "Deployment", "headroom-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_crds_are_the_files_in_crds_not_copies(rendered: Rendered) -> None:
    copies = [p for p in MANIFESTS.rglob("*.yaml") if "headroom.dev" in p.name]
    assert copies == []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        source = yaml.safe_load(path.read_text())
        built = find(rendered, "CustomResourceDefinition", source["metadata"]["name"])
        built_labels = dict(built["metadata"].get("labels") or {})
        assert built_labels.pop("app.kubernetes.io/part-of") == "headroom"
        assert built_labels == (source["metadata"].get("labels") or {})
        assert built["spec"] == source["spec"]


def test_the_tree_holds_what_an_install_needs(rendered: Rendered) -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered)
    assert kinds == sorted([
        "CustomResourceDefinition/agentsessions.headroom.dev",
        "CustomResourceDefinition/claudeaccounts.headroom.dev",
        "CustomResourceDefinition/clusterclaudeaccounts.headroom.dev",
        "CustomResourceDefinition/kopfpeerings.kopf.dev",
        "CustomResourceDefinition/clusterkopfpeerings.kopf.dev",
        "Namespace/headroom-system", "Namespace/agents",
        "ServiceAccount/headroom-operator", "ClusterRole/headroom-operator",
        "ClusterRoleBinding/headroom-operator", "Role/headroom-operator",
        "RoleBinding/headroom-operator", "Deployment/headroom-operator",
        "Role/headroom-operator-cluster-accounts", "RoleBinding/headroom-operator-cluster-accounts",
        "ClusterRole/headroom-edit", "ClusterRole/headroom-view",
        "Service/headroom-operator-metrics", "PodDisruptionBudget/headroom-operator",
        "NetworkPolicy/headroom-agents", "NetworkPolicy/headroom-operator",
    ])  # fmt: skip


def test_operator_pod_is_hardened(rendered: Rendered) -> None:
    pod = find(rendered, "Deployment", "headroom-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == "headroom-operator"
    container = operator_container(rendered)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    # The operator image runs as the same non-root user (images/operator/Dockerfile).
    assert "USER 10001:10001" in (REPO / "images" / "operator" / "Dockerfile").read_text()
    assert pod["securityContext"]["runAsUser"] == 10001


def test_operator_arguments_are_real_flags_and_match_the_tree(rendered: Rendered) -> None:
    container = operator_container(rendered)
    args = parse_args(container["args"])
    settings_from(args)  # every value parses, not only the flag names
    assert args.namespace == ["agents"] and not args.all_namespaces
    assert args.peering == "headroom"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.metrics_port == ports["metrics"]
    liveness = re.fullmatch(r"http://0\.0\.0\.0:(\d+)(/\S+)", args.liveness)
    assert liveness is not None
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert (ports[get["port"]], get["path"]) == (int(liveness[1]), liveness[2])
    # The watched namespace is where the Role, RoleBinding and NetworkPolicy are.
    for kind, name in (("Role", "headroom-operator"), ("RoleBinding", "headroom-operator"),
                       ("NetworkPolicy", "headroom-agents")):  # fmt: skip
        assert find(rendered, kind, name)["metadata"]["namespace"] == "agents"
    # The Role lets the operator patch exactly the peering object it is told to use.
    role = find(rendered, "Role", "headroom-operator")
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert [r["resourceNames"] for r in named] == [[args.peering]]


def test_two_replicas_with_distinct_priorities_and_a_disruption_budget(rendered: Rendered) -> None:
    deployment = find(rendered, "Deployment", "headroom-operator")
    assert deployment["spec"]["replicas"] == 2
    # kopf pauses every replica that sees another with its own priority: they must differ.
    priorities = {parse_args(operator_container(rendered)["args"]).priority for _ in range(2)}
    assert len(priorities) == 2
    pdb = find(rendered, "PodDisruptionBudget", "headroom-operator")
    assert pdb["spec"]["minAvailable"] == 1
    # A replica that is not Ready may be evicted: it protects nothing and would block a drain.
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = find(rendered, "Service", "headroom-operator-metrics")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def rules(docs: Rendered, kind: str) -> list[dict[str, Any]]:
    return list(find(docs, kind, "headroom-operator")["rules"])


def test_rbac_is_least_privilege_in_shape(rendered: Rendered) -> None:
    everything = rules(rendered, "ClusterRole") + rules(rendered, "Role")
    for rule in everything:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
    # Cluster-wide: reads of cluster-scoped kinds, and the cluster accounts' status. Nothing
    # namespaced, and no other write.
    cluster_wide = {
        ("customresourcedefinitions", "list"), ("customresourcedefinitions", "watch"),
        ("namespaces", "list"), ("namespaces", "watch"),
        ("clusterclaudeaccounts", "get"), ("clusterclaudeaccounts", "list"),
        ("clusterclaudeaccounts", "watch"), ("clusterclaudeaccounts/status", "patch"),
    }  # fmt: skip
    for rule in find(rendered, "ClusterRole", "headroom-operator")["rules"]:
        assert {(r, v) for r in rule["resources"] for v in rule["verbs"]} <= cluster_wide, rule
    # The roles for people grant nothing of the operator's: no status, no cluster accounts.
    for name in ("headroom-edit", "headroom-view"):
        for rule in find(rendered, "ClusterRole", name)["rules"]:
            assert set(rule["resources"]) == {"agentsessions", "claudeaccounts"}
    # In the operator's namespace: the cluster accounts' Secrets are read, never written.
    system = find(rendered, "Role", "headroom-operator-cluster-accounts")
    for rule in system["rules"]:
        if "secrets" in rule["resources"]:
            assert set(rule["verbs"]) == {"get", "list", "watch"}
    granted = {
        (group, resource, verb)
        for rule in find(rendered, "Role", "headroom-operator")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # GitOps-safe: the custom resources themselves are never written, only their status. The
    # one delete is spec.ttlSecondsAfterFinished's, of a finished session (as Jobs are).
    for resource in ("claudeaccounts", "agentsessions"):
        for verb in ("create", "update", "patch", "delete", "deletecollection"):
            if (resource, verb) != ("agentsessions", "delete"):
                assert ("headroom.dev", resource, verb) not in granted
    # Secrets are patched and deleted by name (the operator's own); never updated wholesale
    # or deleted as a collection.
    for verb in ("update", "deletecollection"):
        assert ("", "secrets", verb) not in granted
    assert not any(r.startswith("pods/") for _, r, _ in granted)  # no exec, logs, eviction


def test_cluster_role_binding_and_role_binding_name_the_service_account(rendered: Rendered) -> None:
    account = find(rendered, "ServiceAccount", "headroom-operator")["metadata"]
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        binding = find(rendered, kind, "headroom-operator")
        assert binding["roleRef"]["name"] == "headroom-operator"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "Exists" and not present:
            return False
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def an_agent_pod() -> dict[str, Any]:
    from headroom.core.accounts import CredentialType

    session = {
        "apiVersion": "headroom.dev/v1alpha1", "kind": "AgentSession",
        "metadata": {"name": "s1", "namespace": "agents", "uid": "u-1"},
        "spec": {"prompt": "p"},
    }  # fmt: skip
    plan = agent_pod.Attempt(
        number=1, account="alice", credential_type=CredentialType.OAUTH_TOKEN,
        credential_key="token",
        claude_session_id="6f1c0000-0000-4000-8000-000000000000", expect_transcript=False,
        auth_path="primary", workspace_claim="s1-workspace",
    )  # fmt: skip
    return agent_pod.agent_pod(session, plan, agent_pod.PodSettings())


def test_network_policy_selects_agent_pods_and_only_them(rendered: Rendered) -> None:
    policy = find(rendered, "NetworkPolicy", "headroom-agents")["spec"]
    pod = an_agent_pod()
    assert selects(policy["podSelector"], pod["metadata"]["labels"])
    operator_labels = find(rendered, "Deployment", "headroom-operator")["spec"]["template"]
    assert not selects(policy["podSelector"], operator_labels["metadata"]["labels"])
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in policy  # nothing may connect to an agent
    ports = sorted((p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)]
    https = next(r for r in policy["egress"] if r["ports"] == [{"protocol": "TCP", "port": 443}])
    assert all("ipBlock" in peer for peer in https["to"])  # never 0.0.0.0/0
    assert all(peer["ipBlock"]["cidr"] not in {"0.0.0.0/0", "::/0"} for peer in https["to"])


def test_the_operators_network_policy_admits_its_ports_and_reaches_only_dns_and_the_api(
    rendered: Rendered,
) -> None:
    policy = find(rendered, "NetworkPolicy", "headroom-operator")
    deployment = find(rendered, "Deployment", "headroom-operator")
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    spec = policy["spec"]
    assert selects(spec["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert not selects(spec["podSelector"], an_agent_pod()["metadata"]["labels"])
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    named = {p["name"] for p in operator_container(rendered)["ports"]}
    admitted = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
    assert admitted == named == {"metrics", "health"}
    egress = sorted((p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"])
    assert egress == [("TCP", 53), ("TCP", 443), ("TCP", 6443), ("UDP", 53)]


def test_kind_overlay_runs_the_locally_built_images(
    kustomize: Callable[[Path], Rendered],
) -> None:
    docs = kustomize(MANIFESTS / "overlays" / "kind")
    container = operator_container(docs)
    assert container["image"] == "headroom:dev"
    assert container["imagePullPolicy"] == "Never"
    args = parse_args(container["args"])
    assert settings_from(args).pods.default_image == "headroom-agent:dev"
    # Same objects as the base otherwise.
    base = kustomize(MANIFESTS)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in base
    )
    kind_config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert kind_config["kind"] == "Cluster"
    assert kind_config["apiVersion"] == "kind.x-k8s.io/v1alpha4"


def test_components_render_with_the_base(
    kustomize: Callable[[Path], Rendered], tmp_path: Path
) -> None:
    overlay = with_components(tmp_path, MANIFESTS / "components" / "prometheus-rule")
    docs = kustomize(overlay)
    assert find(docs, "PrometheusRule", "headroom")["metadata"]["namespace"] == "headroom-system"
    monitor = find(docs, "ServiceMonitor", "headroom-operator")["spec"]
    service = find(docs, "Service", "headroom-operator-metrics")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_argocd_component_merges_the_lua_files_into_argocd_cm(
    kustomize: Callable[[Path], Rendered], tmp_path: Path
) -> None:
    install = tmp_path / "argocd"
    install.mkdir()
    (install / "argocd-cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\ndata: {url: x}\n"
    )
    (install / "kustomization.yaml").write_text("resources: [argocd-cm.yaml]\n")
    overlay = with_components(tmp_path, MANIFESTS / "argocd", base=install)
    (overlay / "kustomization.yaml").write_text(
        (overlay / "kustomization.yaml").read_text() + "namespace: argocd\n"
    )
    (cm,) = kustomize(overlay)
    lua = MANIFESTS / "argocd"
    assert cm["metadata"] == {"name": "argocd-cm", "namespace": "argocd"}
    assert cm["data"] == {
        "url": "x",
        "resource.customizations.health.headroom.dev_AgentSession":
            (lua / "health-agentsession.lua").read_text(),
        "resource.customizations.health.headroom.dev_ClaudeAccount":
            (lua / "health-claudeaccount.lua").read_text(),
        "resource.customizations.health.headroom.dev_ClusterClaudeAccount":
            (lua / "health-claudeaccount.lua").read_text(),
    }  # fmt: skip


def test_headroom_validate_accepts_the_whole_tree(capsys: pytest.CaptureFixture[str]) -> None:
    """The install tree, its samples and its components are what a GitOps repository holds."""
    code = validate.main([str(MANIFESTS)])
    out, err = capsys.readouterr()
    assert (code, out) == (0, ""), out
    assert "0 problem(s) in 7 object(s)" in err  # the samples; other kinds are skipped


def test_headroom_validate_reads_a_rendered_overlay_from_stdin(
    kubectl_path: str, tmp_path: Path
) -> None:
    """`kubectl kustomize overlay/ | headroom validate -`: what an overlay renders is checked,
    with the same field paths as the CRD tests' invalid cases."""
    import shutil
    import subprocess
    import sys

    from tests.crds.conftest import INVALID_CASES

    cases = [c for c in INVALID_CASES if c.check == "schema" and c.mode == "create"]
    assert len(cases) >= 10
    for case in cases:
        shutil.copy(case.path, tmp_path / case.path.name)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [c.path.name for c in cases]})
    )
    rendered = subprocess.run(
        [kubectl_path, "kustomize", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout
    done = subprocess.run(
        [sys.executable, "-m", "headroom", "validate", "-"],
        input=rendered, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("<stdin>: ") for line in lines)
    reported = {line.split(": ", 2)[1] for line in lines}
    assert reported == {c.field for c in cases}
    assert len(lines) == len(cases)
    assert "CEL" in done.stderr and "need an API server" in done.stderr
