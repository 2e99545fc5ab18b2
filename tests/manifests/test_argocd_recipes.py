"""Every recipe docs/argocd.md gives for adding the health checks to `argocd-cm`, run as
written (read from the document's code blocks), with the kubectl built for the tests and its
embedded kustomize: into a kustomization that installs Argo CD, and into the live ConfigMap
of a running cluster."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.manifests import MANIFESTS, REPO, kustomize_dir

DOC = REPO / "docs" / "argocd.md"
LUA = MANIFESTS / "argocd"


def _keys() -> dict[str, Path]:
    """The argocd-cm keys the component sets and the Lua file of each, from its generator."""
    component = yaml.safe_load((LUA / "kustomization.yaml").read_text())
    (generator,) = component["configMapGenerator"]
    pairs = (entry.split("=", 1) for entry in generator["files"])
    return {key: LUA / path for key, path in pairs}


KEYS = _keys()
# What Argo CD's install.yaml holds for argocd-cm: no namespace (its kustomization sets one),
# Argo CD's labels, and settings of its own that the recipes must keep.
ARGOCD_CM: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "argocd-cm",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    },
    "data": {"url": "https://argocd.example", "admin.enabled": "false"},
}


def blocks(language: str) -> list[str]:
    """The fenced code blocks of the argocd-cm section, in the document's order."""
    text = DOC.read_text()
    section = text[text.index("### Adding them to `argocd-cm`") :]
    section = section[: section.index("\n## ")]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def expected_data() -> dict[str, str]:
    return {**ARGOCD_CM["data"], **{k: p.read_text() for k, p in KEYS.items()}}


def test_the_component_in_the_kustomization_that_installs_argocd(
    kubectl_path: str, tmp_path: Path
) -> None:
    """The first recipe, with a local stand-in for Argo CD's install.yaml (no download)."""
    recipe = next(b for b in blocks("yaml") if "components:" in b)
    kustomization = yaml.safe_load(recipe)
    (remote,) = kustomization["resources"]
    assert remote.startswith("https://raw.githubusercontent.com/argoproj/argo-cd/")
    (component,) = kustomization["components"]
    assert component == "<path or remote URL of this repository>/manifests/argocd"
    (tmp_path / "install.yaml").write_text(yaml.safe_dump(ARGOCD_CM))
    kustomization["resources"] = ["install.yaml"]
    kustomization["components"] = [os.path.relpath(LUA, tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    (config_map,) = kustomize_dir(kubectl_path, tmp_path)
    assert config_map["metadata"]["namespace"] == "argocd"
    assert config_map["metadata"]["labels"] == ARGOCD_CM["metadata"]["labels"]
    assert config_map["data"] == expected_data()


def test_a_live_configmap_as_the_resource_is_what_kustomize_refuses(
    kubectl_path: str, tmp_path: Path
) -> None:
    """Why the second recipe renders onto a stub: the live object carries its namespace, and
    the component's generator then finds nothing to merge into. Should kustomize ever accept
    it, this test says so and the recipe can become simpler."""
    live = {**ARGOCD_CM, "metadata": {**ARGOCD_CM["metadata"], "namespace": "argocd"}}
    (tmp_path / "argocd-cm.yaml").write_text(yaml.safe_dump(live))
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": ["argocd-cm.yaml"], "components": [os.path.relpath(LUA, tmp_path)]}
    ))  # fmt: skip
    done = subprocess.run([kubectl_path, "kustomize", str(tmp_path)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode != 0
    assert 'Name:\\"argocd-cm\\", Namespace:\\"\\"' in done.stderr, done.stderr
    assert "does not exist; cannot merge or replace" in done.stderr


def run_recipe(recipe: str, kubectl_path: str, kubeconfig: Path, namespace: str,
               workdir: Path) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The shell recipe as a user runs it, with its placeholders filled in: this repository,
    a scratch directory, the test's namespace, and `kubectl` the built one on the cluster."""
    assert "/path/to/headroom" in recipe and "/tmp/argocd-cm" in recipe
    assert recipe.count("-n argocd") == 1
    script = (
        recipe.replace("/path/to/headroom", str(REPO))
        .replace("/tmp/argocd-cm", str(workdir))
        .replace("-n argocd", f"-n {namespace}")
    )
    shim = f'kubectl() {{ "{kubectl_path}" --kubeconfig "{kubeconfig}" "$@"; }}\n'
    return subprocess.run(["bash", "-euo", "pipefail", "-c", shim + script],
                          capture_output=True, text=True, check=False)  # fmt: skip


@pytest.mark.integration
def test_the_live_configmap_recipe_on_a_cluster(
    kubectl: Any, kubectl_path: str, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    (recipe,) = blocks("sh")
    live = {**ARGOCD_CM, "metadata": {**ARGOCD_CM["metadata"], "namespace": namespace}}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(live))  # as Argo CD's install does
    # One key already there with an old script, written by another field manager.
    stale = next(iter(KEYS))
    kubectl("patch", "configmap", "argocd-cm", "-n", namespace, "--type=merge",
            "-p", yaml.safe_dump({"data": {stale: "-- an older script\n"}}))  # fmt: skip

    for run in range(2):  # the first install, then a repeat (an upgrade)
        done = run_recipe(recipe, kubectl_path, kubeconfig, namespace, tmp_path / str(run))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "configmap/argocd-cm patched" in done.stdout, done.stdout
        got = yaml.safe_load(
            kubectl("get", "configmap", "argocd-cm", "-n", namespace, "-o", "yaml").stdout
        )
        assert got["data"] == expected_data()
        assert got["metadata"]["labels"] == ARGOCD_CM["metadata"]["labels"]


@pytest.mark.integration
def test_a_server_side_apply_of_the_stub_would_drop_argocds_settings(
    kubectl: Any, namespace: str
) -> None:
    """Why the recipe patches instead of `kubectl apply --server-side`: kubectl hands the
    fields of a client-side apply to the server-side manager first, and the stub lacks them."""
    live = {**ARGOCD_CM, "metadata": {**ARGOCD_CM["metadata"], "namespace": namespace}}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(live))
    stub = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": namespace},
            "data": {k: p.read_text() for k, p in KEYS.items()}}  # fmt: skip
    kubectl("apply", "--server-side", "--field-manager=headroom", "-f", "-",
            input=yaml.safe_dump(stub))  # fmt: skip
    got = yaml.safe_load(
        kubectl("get", "configmap", "argocd-cm", "-n", namespace, "-o", "yaml").stdout
    )
    assert set(got["data"]) == set(KEYS)  # url and admin.enabled are gone
