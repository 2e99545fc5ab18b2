"""JSON schemas for `kubeconform -strict`, generated here, never downloaded: the built-in
kinds from Kubernetes's own OpenAPI document at the version the local cluster runs, the
Prometheus Operator's kinds from its CRDs, Headroom's and kopf's kinds from crds/ and
manifests/kopf/. Both Go modules come from the module cache (hack/kubeconform/build.sh
fetched them), read with GOPROXY=off.

Strict means what kubeconform's own strict schemas mean: an object schema that lists its
properties admits no others (`additionalProperties: false`), unless it says otherwise or
keeps unknown fields (x-kubernetes-preserve-unknown-fields)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]
INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
# Kubernetes serialises these as strings, but YAML writers may give numbers (cpu: 1).
SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    },
}


def _env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def module_dir(module: str, version: str) -> Path:
    """Where the Go module cache holds module@version; fails rather than download."""
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True, text=True, env=env, cwd=REPO / "hack" / "kubeconform", check=False,
    )  # fmt: skip
    info = json.loads(done.stdout or "{}")
    if done.returncode != 0 or "Dir" not in info:
        raise RuntimeError(
            f"{module}@{version} is not in the Go module cache (run `make kubeconform`): "
            f"{info.get('Error') or done.stderr}"
        )
    return Path(info["Dir"])


def sources() -> tuple[Path, list[Path]]:
    """Kubernetes's swagger.json and the CRD files the schemas come from."""
    kube = _env(REPO / "hack" / "cluster" / "versions.env")["KUBERNETES_VERSION"]
    prom = _env(REPO / "hack" / "kubeconform" / "schema-sources.env")
    swagger = module_dir("k8s.io/kubernetes", kube) / "api" / "openapi-spec" / "swagger.json"
    operator = module_dir(
        "github.com/prometheus-operator/prometheus-operator", prom["PROMETHEUS_OPERATOR_VERSION"]
    )
    crds = [*sorted((REPO / "crds").glob("*.yaml")), REPO / "manifests/kopf/peering-crds.yaml"]
    crds += [
        operator / "example" / "prometheus-operator-crd" / f"monitoring.coreos.com_{plural}.yaml"
        for plural in ("prometheusrules", "servicemonitors")
    ]
    return swagger, crds


def file_name(api_version: str, kind: str) -> str:
    """kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json: deployment-apps-v1.json,
    service-v1.json, agentsession-headroom-v1alpha1.json."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix.lower()}.json"


def _strict(schema: JSON) -> JSON:
    """Closes every object schema that lists properties, recursively (CRD dialect)."""
    out = dict(schema)
    if out.get("x-kubernetes-int-or-string"):
        return {**INT_OR_STRING, **{k: v for k, v in out.items() if k.startswith("description")}}
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [_strict(s) for s in out[key]]
    return out


class Kubernetes:
    """The built-in kinds of one swagger.json, each made standalone ($refs inlined)."""

    def __init__(self, swagger: Path) -> None:
        self.definitions: dict[str, JSON] = json.loads(swagger.read_text())["definitions"]
        self.kinds: dict[tuple[str, str], str] = {}
        for name, schema in self.definitions.items():
            if not name.startswith("io.k8s."):
                continue
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                api = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                self.kinds.setdefault((api, gvk["kind"]), name)

    def standalone(self, name: str) -> JSON:
        return self._inline(self.definitions[name], (name,))

    def _inline(self, schema: JSON, seen: tuple[str, ...]) -> JSON:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name in SPECIAL:
                return SPECIAL[name]
            if name in seen:  # a recursive type (JSONSchemaProps): anything below
                return {}
            return self._inline(self.definitions[name], (*seen, name))
        out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
        if out.get("format") == "int-or-string":
            return INT_OR_STRING
        if "properties" in out:
            out["properties"] = {k: self._inline(v, seen) for k, v in out["properties"].items()}
            out.setdefault("additionalProperties", False)
        for key in ("items", "additionalProperties"):
            if isinstance(out.get(key), dict):
                out[key] = self._inline(out[key], seen)
        return out


def crd_schemas(path: Path, object_meta: JSON) -> dict[tuple[str, str], JSON]:
    """(apiVersion, kind) -> schema for every served version of the CRDs in a file."""
    out = {}
    for crd in (d for d in yaml.safe_load_all(path.read_text()) if d):
        spec = crd["spec"]
        for version in spec["versions"]:
            api = f"{spec['group']}/{version['name']}"
            schema = _strict(version["schema"]["openAPIV3Schema"])
            props = schema.setdefault("properties", {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props["metadata"] = object_meta  # what the API server applies to every object
            schema.setdefault("additionalProperties", False)
            out[(api, spec["names"]["kind"])] = schema
    return out


def write(docs: list[JSON], directory: Path) -> set[str]:
    """Writes a schema for each kind the documents use into directory (kubeconform's file
    names). Returns the file names; a kind with no source gets none, which kubeconform reports
    as an error (the tests never pass --ignore-missing-schemas)."""
    swagger, crds = sources()
    kube = Kubernetes(swagger)
    meta = kube.standalone("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    custom: dict[tuple[str, str], JSON] = {}
    for path in crds:
        custom.update(crd_schemas(path, meta))
    directory.mkdir(parents=True, exist_ok=True)
    written = set()
    for api, kind in {(d["apiVersion"], d["kind"]) for d in docs}:
        if (api, kind) in custom:
            schema = custom[(api, kind)]
        elif (api, kind) in kube.kinds:
            schema = kube.standalone(kube.kinds[(api, kind)])
        else:
            continue
        name = file_name(api, kind)
        (directory / name).write_text(json.dumps(schema))
        written.add(name)
    return written
