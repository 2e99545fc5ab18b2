"""A pod's volumes as local directories.

emptyDir, Secret, ConfigMap, downwardAPI and projected volumes live in the pod's own
directory; a PVC is the hostPath directory of its bound PersistentVolume, so its data
outlives the pod exactly as a claim's does. Each volumeMount (with its subPath) becomes a
`Mount` from the container path to a local path; the termination message file too."""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from headroom.executor.envvars import ConfigError, expand, field_value
from headroom.executor.paths import Bind, Mount, PathMap, normalise

JSON = dict[str, Any]
DEFAULT_MESSAGE_PATH = "/dev/termination-log"
SCRATCH = ("emptyDir", "secret", "configMap", "downwardAPI", "projected")


class Sources(Protocol):
    def object(self, kind: str, namespace: str, name: str) -> JSON | None: ...

    def claim_dir(self, namespace: str, claim: str) -> Path: ...

    def token(self, pod: JSON, audience: str | None, seconds: int) -> str: ...


@dataclass
class Layout:
    paths: PathMap
    binds: list[Bind]
    scratch: list[Path]  # per-pod volume directories, removed when the container ends
    message_file: Path


def prepare(pod: JSON, pod_dir: Path, sources: Sources, env: dict[str, str], ip: str) -> Layout:
    container = pod["spec"]["containers"][0]
    volume_dirs: dict[str, Path] = {}
    scratch: list[Path] = []
    for volume in pod["spec"].get("volumes") or []:
        kind = next((k for k in volume if k != "name"), "")
        if kind in SCRATCH:
            local = pod_dir / "volumes" / volume["name"]
            shutil.rmtree(local, ignore_errors=True)  # a retry starts clean
            local.mkdir(parents=True)
            local.chmod(0o777)  # kubelet creates emptyDirs world-writable
            scratch.append(local)
            if kind != "emptyDir":
                _write(local, _files(kind, volume[kind], pod, sources, ip))
        elif kind == "persistentVolumeClaim":
            ns = pod["metadata"]["namespace"]
            local = sources.claim_dir(ns, volume[kind]["claimName"])
        elif kind == "hostPath":
            local = Path(volume[kind]["path"])
            if volume[kind].get("type") == "DirectoryOrCreate":
                local.mkdir(parents=True, exist_ok=True)
        else:
            raise ConfigError(f"volume {volume['name']}: type {kind!r} is not supported")
        volume_dirs[volume["name"]] = local

    mounts = []
    for m in container.get("volumeMounts") or []:
        if m["name"] not in volume_dirs:
            raise ConfigError(f"volumeMount {m['name']!r} names no volume of the pod")
        sub = m.get("subPath") or expand(m.get("subPathExpr", ""), env)
        local = volume_dirs[m["name"]] / sub if sub else volume_dirs[m["name"]]
        if sub and not local.exists():
            local.mkdir(parents=True)  # the kubelet creates a missing subPath directory
        mounts.append(Mount(normalise(m["mountPath"]), local, m["name"]))

    message_file = pod_dir / "termination-log"
    message_file.write_bytes(b"")
    message_file.chmod(0o666)
    message_path = container.get("terminationMessagePath") or DEFAULT_MESSAGE_PATH
    mounts.append(Mount(normalise(message_path), message_file, "termination-log"))
    paths = PathMap(mounts)
    return Layout(paths, paths.nested_binds(), scratch, message_file)


Files = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)


def _files(kind: str, spec: JSON, pod: JSON, sources: Sources, ip: str) -> Files:
    """path -> (content, mode) for one Secret/ConfigMap/downwardAPI/projected volume."""
    mode = spec.get("defaultMode", 0o644)
    if kind == "projected":
        files: Files = {}
        for source in spec.get("sources") or []:
            files.update(_projection(source, pod, sources, ip, mode))
        return files
    if kind == "downwardAPI":
        return _projection({"downwardAPI": spec}, pod, sources, ip, mode)
    if kind == "secret":  # a secret volume names its Secret `secretName`, a projection `name`
        renamed = {**spec, "name": spec.get("secretName")}
        return _projection({"secret": renamed}, pod, sources, ip, mode)
    return _projection({kind: spec}, pod, sources, ip, mode)


def _projection(source: JSON, pod: JSON, sources: Sources, ip: str, mode: int) -> Files:
    ns = pod["metadata"]["namespace"]
    for kind in ("secret", "configMap"):
        if kind not in source:
            continue
        spec = source[kind]
        obj = sources.object("Secret" if kind == "secret" else "ConfigMap", ns, spec["name"])
        if obj is None:
            if spec.get("optional"):
                return {}
            raise ConfigError(f'{kind.lower()} "{spec["name"]}" not found')
        if kind == "secret":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        else:
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        items = spec.get("items") or [{"key": k, "path": k} for k in data]
        files = {}
        for item in items:
            if item["key"] not in data:
                if spec.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {item['key']} in {kind} {ns}/{spec['name']}")
            files[item["path"]] = (data[item["key"]], item.get("mode", mode))
        return files
    if "downwardAPI" in source:
        files = {}
        for item in source["downwardAPI"].get("items") or []:
            if "fieldRef" not in item:
                raise ConfigError("downwardAPI resourceFieldRef is not supported by the executor")
            value = field_value(pod, item["fieldRef"]["fieldPath"], ip)
            files[item["path"]] = (value.encode(), item.get("mode", mode))
        return files
    if "serviceAccountToken" in source:
        spec = source["serviceAccountToken"]
        token = sources.token(pod, spec.get("audience"), spec.get("expirationSeconds", 3600))
        return {spec["path"]: (token.encode(), mode)}
    raise ConfigError(f"projected source {sorted(source)} is not supported by the executor")


def _write(root: Path, files: Files) -> None:
    for rel, (content, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
