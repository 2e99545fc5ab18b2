"""A pod's volumes as local directories.

emptyDir, Secret, ConfigMap, downwardAPI and projected volumes live in the pod's own
directory, shared by all its containers (init containers included) until the pod is over; a
PVC is the hostPath directory of its bound PersistentVolume, so its data outlives the pod
exactly as a claim's does. Each container's volumeMounts (with subPath) become `Mount`s from
container paths to local paths, its termination message file too."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from headroom_dev.executor.envvars import ConfigError, expand, field_value
from headroom_dev.executor.paths import Bind, Mount, PathMap, normalise

JSON = dict[str, Any]
DEFAULT_MESSAGE_PATH = "/dev/termination-log"
SCRATCH = ("emptyDir", "secret", "configMap", "downwardAPI", "projected")


class MountError(Exception):
    """A volume cannot be set up yet (kubelet: FailedMount, the pod keeps waiting); retried."""


class Sources(Protocol):
    def object(self, kind: str, namespace: str, name: str) -> JSON | None: ...

    def claim_dir(self, namespace: str, claim: str) -> Path: ...

    def token(self, pod: JSON, audience: str | None, seconds: int) -> str: ...


@dataclass
class Volumes:
    dirs: dict[str, Path]  # volume name -> local directory
    scratch: list[Path]  # per-pod volume directories, removed when the pod is over


@dataclass
class Layout:
    """One container's view: its mounts, nested binds and termination message file."""

    paths: PathMap
    binds: list[Bind]
    message_file: Path

    def all_binds(self) -> list[Bind]:
        """Nested mounts first (deepest first), then the mounts placed under the directories
        that hold them: a recursive bind of a mount then carries the mounts nested in it."""
        return [*self.binds, *self.paths.ancestor_binds()]


def prepare_volumes(pod: JSON, pod_dir: Path, sources: Sources, ip: str) -> Volumes:
    """Every volume of the pod, set up once before its first container (as the kubelet
    mounts all of a pod's volumes before it starts any container)."""
    volumes = Volumes({}, [])
    for volume in pod["spec"].get("volumes") or []:
        try:
            volumes.dirs[volume["name"]] = _volume(volume, pod, pod_dir, sources, ip, volumes)
        except ConfigError as exc:
            for path in volumes.scratch:  # no Secret material left behind while it waits
                shutil.rmtree(path, ignore_errors=True)
            raise MountError(
                f'MountVolume.SetUp failed for volume "{volume["name"]}" : {exc}'
            ) from exc
    return volumes


def _volume(
    volume: JSON, pod: JSON, pod_dir: Path, sources: Sources, ip: str, volumes: Volumes
) -> Path:
    kind = next((k for k in volume if k != "name"), "")
    if kind in SCRATCH:
        local = pod_dir / "volumes" / str(volume["name"])
        shutil.rmtree(local, ignore_errors=True)  # a retry starts clean
        local.mkdir(parents=True)
        local.chmod(0o777)  # kubelet creates emptyDirs world-writable
        volumes.scratch.append(local)
        if kind != "emptyDir":
            _write(local, _files(kind, volume[kind], pod, sources, ip))
        return local
    if kind == "persistentVolumeClaim":
        return sources.claim_dir(pod["metadata"]["namespace"], volume[kind]["claimName"])
    if kind == "hostPath":
        local = Path(volume[kind]["path"])
        if volume[kind].get("type") == "DirectoryOrCreate":
            local.mkdir(parents=True, exist_ok=True)
        return local
    raise ConfigError(f"volume type {kind!r} is not supported by the dev executor")


def container_layout(
    container: JSON, volumes: Volumes, env: dict[str, str], message_file: Path, rootfs: Path
) -> Layout:
    """The container's mounts; `message_file` (its own, created empty) is mounted at its
    terminationMessagePath, as the kubelet mounts a fresh file per container; `rootfs`
    holds the directories that contain mount points only (see PathMap.local)."""
    mounts = []
    for m in container.get("volumeMounts") or []:
        if m["name"] not in volumes.dirs:
            raise ConfigError(f"volumeMount {m['name']!r} names no volume of the pod")
        sub = m.get("subPath") or expand(m.get("subPathExpr", ""), env)
        local = volumes.dirs[m["name"]] / sub if sub else volumes.dirs[m["name"]]
        if sub and not local.exists():
            local.mkdir(parents=True)  # the kubelet creates a missing subPath directory
        mounts.append(Mount(normalise(m["mountPath"]), local, m["name"]))

    message_file.parent.mkdir(parents=True, exist_ok=True)
    message_file.write_bytes(b"")
    message_file.chmod(0o666)
    message_path = container.get("terminationMessagePath") or DEFAULT_MESSAGE_PATH
    mounts.append(Mount(normalise(message_path), message_file, "termination-log"))
    paths = PathMap(mounts, rootfs)
    return Layout(paths, paths.nested_binds(), message_file)


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
    for kind in ("secret", "configMap"):
        if kind in source:
            return _object_files(kind, source[kind], pod, sources, mode)
    if "downwardAPI" in source:
        return _downward_files(source["downwardAPI"], pod, ip, mode)
    if "serviceAccountToken" in source:
        spec = source["serviceAccountToken"]
        token = sources.token(pod, spec.get("audience"), spec.get("expirationSeconds", 3600))
        return {spec["path"]: (token.encode(), mode)}
    raise ConfigError(f"projected source {sorted(source)} is not supported by the executor")


# kubelet's volume plugins' words for a key that `items` names and the object lacks.
_MISSING_KEY = {
    "secret": "references non-existent secret key: {}",
    "configMap": "configmap references non-existent config key: {}",
}


def _object_files(kind: str, spec: JSON, pod: JSON, sources: Sources, mode: int) -> Files:
    """A Secret's or ConfigMap's keys as files: all of them, or only `items` (key -> path,
    optional mode). `optional` tolerates a missing object (empty volume) or key (no file)."""
    ns = pod["metadata"]["namespace"]
    obj = sources.object("Secret" if kind == "secret" else "ConfigMap", ns, spec["name"])
    if obj is None:
        if spec.get("optional"):
            return {}
        raise ConfigError(f'{kind.lower()} "{spec["name"]}" not found')
    data = _object_data(kind, obj)
    items = spec.get("items") or [{"key": k, "path": k} for k in data]
    files = {}
    for item in items:
        if item["key"] in data:
            files[item["path"]] = (data[item["key"]], item.get("mode", mode))
        elif not spec.get("optional"):
            raise ConfigError(_MISSING_KEY[kind].format(item["key"]))
    return files


def _object_data(kind: str, obj: JSON) -> dict[str, bytes]:
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _downward_files(spec: JSON, pod: JSON, ip: str, mode: int) -> Files:
    files = {}
    for item in spec.get("items") or []:
        if "fieldRef" not in item:
            raise ConfigError("downwardAPI resourceFieldRef is not supported by the executor")
        path = item["fieldRef"]["fieldPath"]
        if path in ("metadata.labels", "metadata.annotations"):
            value = _format_map(pod["metadata"].get(path.split(".")[1]) or {})
        else:
            value = field_value(pod, path, ip)
        files[item["path"]] = (value.encode(), item.get("mode", mode))
    return files


def _format_map(values: dict[str, str]) -> str:
    """kubelet's fieldpath.FormatMap: sorted `key="value"` lines, no final newline."""
    return "\n".join(f"{k}={json.dumps(values[k], ensure_ascii=False)}" for k in sorted(values))


def _write(root: Path, files: Files) -> None:
    for rel, (content, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
