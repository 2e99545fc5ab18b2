"""The Helm chart as helm renders it (no cluster): `helm lint --strict`, a values schema with
teeth, copies of the kustomize tree's CRDs, RBAC rules, alerts and dashboard that cannot
drift (hack/chart/sync.py, `make chart`), RBAC rules and an operator Deployment equal to the
kustomize tree's, and values that reach the objects they name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.manifests import MANIFESTS, REPO, Rendered, find
from tests.support.tools import CHART, Helm

from headroom.controllers.main import build_parser, parse_args, settings_from

SYNC = REPO / "hack" / "chart" / "sync.py"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount")
# The optional objects, on: what the dry runs and the third-party checks see too.
ALL_ON = [
    "--set", "prometheusRule.enabled=true", "--set", "serviceMonitor.enabled=true",
    "--set", "dashboard.enabled=true",
]  # fmt: skip


def sync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SYNC), *args], capture_output=True, text=True, check=False
    )


def test_the_chart_copies_are_their_sources() -> None:
    done = sync("--check")
    assert done.returncode == 0, done.stdout + done.stderr
    crds = sorted(p.name for p in (CHART / "crds").iterdir())
    assert crds == sorted([*(p.name for p in (REPO / "crds").glob("*.yaml")),
                           "kopf.dev-peerings.yaml"])  # fmt: skip


def copy_of_the_repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for part in ("crds", "manifests", "charts"):
        shutil.copytree(REPO / part, root / part)
    return root


def test_a_new_crd_and_a_new_rule_fail_the_check_until_make_chart(
    tmp_path: Path, helm: Helm
) -> None:
    """What a new kind brings: a file in crds/, a rule in manifests/base/rbac.yaml, a new RBAC
    file of roles for people. Each fails the check, each reaches the chart through the sync."""
    root = copy_of_the_repository(tmp_path)
    source = yaml.safe_load((root / "crds" / "claudeaccounts.headroom.dev.yaml").read_text())
    source["metadata"]["name"] = "clusterexamples.headroom.dev"
    source["spec"]["scope"] = "Cluster"
    source["spec"]["names"] = {"kind": "ClusterExample", "plural": "clusterexamples",
                               "singular": "clusterexample"}  # fmt: skip
    new_crd = root / "crds" / "clusterexamples.headroom.dev.yaml"
    new_crd.write_text(yaml.safe_dump(source))
    rbac = root / "manifests" / "base" / "rbac.yaml"
    rbac.write_text(rbac.read_text().replace(
        "  resources: [namespaces]\n  verbs: [list, watch]\n",
        "  resources: [namespaces]\n  verbs: [list, watch]\n"
        "- apiGroups: [headroom.dev]\n  resources: [clusterexamples]\n"
        "  verbs: [get, list, watch]\n",
    ))  # fmt: skip

    # A new file of roles for people (as the aggregated user roles are).
    (root / "manifests" / "base" / "rbac-examples.yaml").write_text(yaml.safe_dump({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "headroom-examples-view",
                     "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["headroom.dev"], "resources": ["clusterexamples"],
                   "verbs": ["get", "list", "watch"]}],
    }))  # fmt: skip

    done = sync("--check", "--root", str(root))
    assert done.returncode == 1
    assert "charts/headroom/crds/clusterexamples.headroom.dev.yaml: missing" in done.stdout
    assert "charts/headroom/files/rbac.yaml: differs" in done.stdout
    assert "charts/headroom/files/rbac-examples.yaml: missing" in done.stdout

    assert sync("--root", str(root)).returncode == 0
    assert sync("--check", "--root", str(root)).returncode == 0
    chart = root / "charts" / "headroom"
    assert (chart / "crds" / new_crd.name).read_bytes() == new_crd.read_bytes()
    rendered = helm.template(chart=chart)
    role = find(rendered, "ClusterRole", "headroom-operator")
    assert {"apiGroups": ["headroom.dev"], "resources": ["clusterexamples"],
            "verbs": ["get", "list", "watch"]} in role["rules"]  # fmt: skip
    people = find(rendered, "ClusterRole", "headroom-examples-view")
    assert people["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    bound = {d["roleRef"]["name"] for d in rendered if "roleRef" in d}
    assert "headroom-examples-view" not in bound  # bound by aggregation, not to the operator

    new_crd.unlink()  # a CRD removed from crds/ leaves a stale copy behind: also drift
    done = sync("--check", "--root", str(root))
    assert "clusterexamples.headroom.dev.yaml: stale" in done.stdout


def test_helm_lint_strict(helm: Helm) -> None:
    done = helm("lint", "--strict", str(CHART), *ALL_ON)
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout, done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCount=two", "replicaCount"),
        ("watchNamespaces=null", "watchNamespaces"),
        ("watchNamespaces[0]=Not_A_Namespace", "watchNamespaces"),
        ("agents.permissionMode=yolo", "permissionMode"),
        ("networkPolicy.agents.anthropicCIDRs[0]=anywhere", "anthropicCIDRs"),
        ("replicas=3", "replicas"),  # a misspelt key is an error, not ignored
        ("usage.pollInterval=every minute", "pollInterval"),
        ("usage.baseURL=api.anthropic.com", "baseURL"),
    ],
)
def test_the_values_schema_refuses_bad_values(helm: Helm, setting: str, complaint: str) -> None:
    done = helm("template", "headroom", str(CHART), "--set", setting, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr
    assert complaint in done.stderr


def test_the_schema_offers_exactly_the_operators_choices() -> None:
    """Enumerations in values.schema.json are the flags' own choices, read from the parser."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    choices = {a.dest: a.choices for a in build_parser()._actions if a.choices}
    modes = schema["properties"]["agents"]["properties"]["permissionMode"]["enum"]
    assert sorted(modes) == sorted(["", *choices["agent_permission_mode"]])
    assert sorted(schema["properties"]["logFormat"]["enum"]) == sorted(choices["log_format"])


def rbac_objects(docs: Rendered) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Kind, namespace and name -> the object's RBAC content (labels aside)."""
    out = {}
    for doc in docs:
        if doc["kind"] in RBAC_KINDS:
            meta = doc["metadata"]
            body = {k: doc[k] for k in ("rules", "roleRef", "subjects", "aggregationRule")
                    if k in doc}  # fmt: skip
            # Aggregation labels fold a role into the built-in admin, edit and view roles.
            labels = meta.get("labels") or {}
            body["aggregation"] = {k: v for k, v in labels.items()
                                   if k.startswith("rbac.authorization.k8s.io/")}  # fmt: skip
            out[(doc["kind"], meta.get("namespace", ""), meta["name"])] = body
    return out


def test_rbac_is_the_kustomize_trees_rule_for_rule(helm: Helm, kustomized: Rendered) -> None:
    """With its defaults (release headroom in headroom-system, watching agents) the chart's
    ServiceAccount, roles and bindings are those of manifests/base/rbac.yaml: a rule added to
    either without the other fails here."""
    chart = rbac_objects(helm.template())
    tree = rbac_objects(kustomized)
    assert sorted(chart) == sorted(tree)
    for key, body in tree.items():
        assert chart[key] == body, key


def test_rbac_follows_the_namespaces_and_the_peering_name(helm: Helm, kustomized: Rendered) -> None:
    """Release hr in ops, serving team-a and team-b with peering object fleet: each role of the
    kustomize tree appears under the release's name, a role of the watched namespace once per
    served namespace, a role of the operator's namespace in ops, rules unchanged but for the
    peering name."""
    docs = helm.template("--set", "watchNamespaces={team-a,team-b}", "--set",
                         "peering.name=fleet", release="hr", namespace="ops")  # fmt: skip
    moved = {"": [""], "agents": ["team-a", "team-b"], "headroom-system": ["ops"]}
    expected = {}
    for (kind, ns, name), body in rbac_objects(kustomized).items():
        if kind == "ServiceAccount":
            continue
        for where in moved[ns]:
            expected[(kind, where, name.replace("headroom-", "hr-", 1))] = body
    got = rbac_objects(docs)
    got.pop(("ServiceAccount", "ops", "hr-operator"))
    assert sorted(got) == sorted(expected)
    assert {ns for _, ns, _ in got} == {"", "team-a", "team-b", "ops"}
    for key, body in got.items():
        for subject in body.get("subjects", []):
            assert subject == {"kind": "ServiceAccount", "name": "hr-operator", "namespace": "ops"}
        if "roleRef" in body:
            assert body["roleRef"]["name"] == key[2]
            assert expected[key]["roleRef"]["name"].replace("headroom-", "hr-", 1) == key[2]
        source = expected[key].get("rules", [])
        for rule, original in zip(body.get("rules", []), source, strict=True):
            if original.get("resourceNames"):
                assert rule == {**original, "resourceNames": ["fleet"]}
            else:
                assert rule == original
    container = operator_container(docs, "hr-operator")
    args = parse_args(container["args"])
    assert args.namespace == ["team-a", "team-b"] and args.peering == "fleet"
    policies = {d["metadata"]["namespace"]: d["metadata"]["name"]
                for d in docs if d["kind"] == "NetworkPolicy"}  # fmt: skip
    assert policies == {"team-a": "hr-agents", "team-b": "hr-agents", "ops": "hr-operator"}


def operator_container(docs: Rendered, name: str = "headroom-operator") -> dict[str, Any]:
    (container,) = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_deployment_is_the_kustomize_trees(helm: Helm, kustomized: Rendered) -> None:
    """The same operator: arguments, probes, ports, resources, security context, strategy.
    Only the labels differ (the chart adds the release's)."""
    chart = find(helm.template(), "Deployment", "headroom-operator")["spec"]
    tree = find(kustomized, "Deployment", "headroom-operator")["spec"]
    chart_container = operator_container(helm.template())
    chart_container.pop("imagePullPolicy")  # the kustomize tree leaves it to the default
    assert chart_container == operator_container(kustomized)
    for key in ("replicas", "strategy"):
        assert chart[key] == tree[key], key
    pod, tree_pod = chart["template"]["spec"], tree["template"]["spec"]
    for key in ("serviceAccountName", "securityContext", "volumes", "enableServiceLinks",
                "terminationGracePeriodSeconds"):  # fmt: skip
        assert pod[key] == tree_pod[key], key
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert (
        term[0]["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == chart["selector"]["matchLabels"]
    )


def test_the_pod_selectors_and_policies_match_the_kustomize_tree(
    helm: Helm, kustomized: Rendered
) -> None:
    docs = helm.template()
    labels = find(docs, "Deployment", "headroom-operator")["spec"]["template"]["metadata"]
    assert "app.kubernetes.io/managed-by" not in labels["labels"]  # that marks agent pods
    for kind, name in (("NetworkPolicy", "headroom-agents"), ("NetworkPolicy", "headroom-operator"),
                       ("PodDisruptionBudget", "headroom-operator")):  # fmt: skip
        chart, tree = find(docs, kind, name)["spec"], find(kustomized, kind, name)["spec"]
        if kind != "NetworkPolicy" or name != "headroom-agents":
            # the chart's selector adds the release's instance label
            chart_selector = chart.pop("selector", None) or chart.pop("podSelector")
            tree_selector = tree.pop("selector", None) or tree.pop("podSelector")
            assert tree_selector["matchLabels"].items() <= chart_selector["matchLabels"].items()
            assert chart_selector["matchLabels"].items() <= labels["labels"].items()
        assert chart == tree, (kind, name)
    service = find(docs, "Service", "headroom-operator-metrics")
    assert service["spec"]["selector"].items() <= labels["labels"].items()


def test_every_operator_value_reaches_a_real_flag(helm: Helm) -> None:
    docs = helm.template(
        "--set", "agents.image=registry.example/agent:1", "--set", "agents.permissionMode=plan",
        "--set", "agents.anthropicBaseURL=https://gateway.example", "--set", "peering.lifetime=40",
        "--set", "extraArgs={--max-failures=5}", "--set", "logFormat=plain",
        "--set", "image.tag=9.9.9", "--set", "metrics.port=9100",
    )  # fmt: skip
    container = operator_container(docs)
    args = parse_args(container["args"])
    settings = settings_from(args)  # every value parses
    assert settings.pods.default_image == "registry.example/agent:1"
    assert settings.pods.permission_mode == "plan"
    assert settings.pods.anthropic_base_url == "https://gateway.example"
    assert (args.peering_lifetime, args.max_failures, args.log_format) == (40, 5, "plain")
    assert container["image"] == "ghcr.io/headroom-dev/headroom:9.9.9"
    assert args.metrics_port == 9100 == container["ports"][0]["containerPort"]
    service = find(docs, "Service", "headroom-operator-metrics")
    assert service["spec"]["ports"][0]["port"] == 9100


def test_live_usage_values_reach_their_flags_and_open_https_egress(helm: Helm) -> None:
    default = helm.template()
    assert not [a for a in operator_container(default)["args"] if "usage" in a]
    off = helm.template("--set", "usage.pollInterval=0")  # --set makes it the number 0
    assert operator_container(off)["args"] == operator_container(default)["args"]
    docs = helm.template("--set", "usage.pollInterval=1m",
                         "--set", "usage.baseURL=https://usage.example")  # fmt: skip
    settings = settings_from(parse_args(operator_container(docs)["args"]))
    assert settings.usage_poll_interval == timedelta(minutes=1)
    assert settings.usage_base_url == "https://usage.example"
    egress = find(docs, "NetworkPolicy", "headroom-operator")["spec"]["egress"]
    assert {"ports": [{"protocol": "TCP", "port": 443}]} in egress
    before = find(default, "NetworkPolicy", "headroom-operator")["spec"]["egress"]
    assert len(egress) == len(before) + 1


def test_one_replica_has_no_disruption_budget(helm: Helm) -> None:
    """minAvailable 1 of one replica would block every node drain."""
    kinds = {d["kind"] for d in helm.template("--set", "replicaCount=1")}
    assert "PodDisruptionBudget" not in kinds
    assert "PodDisruptionBudget" in {d["kind"] for d in helm.template()}


def test_the_optional_objects_carry_the_kustomize_components(helm: Helm) -> None:
    docs = helm.template(*ALL_ON, "--set", "dashboard.namespace=monitoring")
    rule = find(docs, "PrometheusRule", "headroom-operator")
    source = yaml.safe_load(
        (MANIFESTS / "components" / "prometheus-rule" / "prometheusrule.yaml").read_text()
    )
    assert rule["spec"] == source["spec"]
    dashboard = find(docs, "ConfigMap", "headroom-operator-dashboard")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    source_json = (MANIFESTS / "components" / "grafana-dashboard" / "headroom.json").read_text()
    assert json.loads(dashboard["data"]["headroom.json"]) == json.loads(source_json)
    monitor = find(docs, "ServiceMonitor", "headroom-operator")["spec"]
    service = find(docs, "Service", "headroom-operator-metrics")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    off = {d["kind"] for d in helm.template()}
    assert not off & {"PrometheusRule", "ServiceMonitor", "ConfigMap"}


def test_the_crds_helm_installs_are_crds_and_kopfs_peering(helm: Helm) -> None:
    """What `helm install` creates from crds/ (`--include-crds` renders exactly that; `helm
    show crds` joins the files without document separators, so it is not parsed here)."""
    shown = [d for d in helm.template("--include-crds") if d["kind"] == "CustomResourceDefinition"]
    expected = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]
    expected += [d for d in yaml.safe_load_all((MANIFESTS / "kopf" / "peering-crds.yaml")
                                               .read_text()) if d]  # fmt: skip
    key = lambda d: d["metadata"]["name"]  # noqa: E731
    assert len(shown) == len(expected) >= 4
    assert sorted(shown, key=key) == sorted(expected, key=key)


def test_the_packaged_chart_renders_as_the_directory(helm: Helm, tmp_path: Path) -> None:
    """What a chart repository would publish (`helm package`) holds the copies themselves,
    not links to files outside the chart: it renders exactly as the directory does."""
    done = helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("headroom-*.tgz")
    assert str(archive) in done.stdout
    packaged = helm.template("--include-crds", *ALL_ON, chart=archive)
    assert packaged == helm.template("--include-crds", *ALL_ON)
    assert len(packaged) > 15
