"""A dev PVC provisioner: StorageClass `headroom-local` (the cluster's default) backed by
hostPath directories under one local root.

For each Pending claim of that class it creates a PersistentVolume `pvc-<claim uid>` with a
claimRef, and kube-controller-manager binds the two. A Released volume (its claim deleted)
loses its directory and is deleted: reclaimPolicy Delete. Two watches and no polling, so it
is cheap enough to run beside every local operator; several provisioners may run at once
(PV names are deterministic, so only one create wins)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from headroom_dev.provisioner.kube import ApiException, Kube, log

JSON = dict[str, Any]
CLASS = "headroom-local"
PROVISIONER = "headroom.dev/local"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
MARKER = ".headroom-volumes"  # in the root: only directories beside it are ever deleted
ORPHAN_AGE = 600.0  # a directory without a volume this old is a leftover of a gone cluster


class Provisioner:
    def __init__(self, kube: Kube, root: Path, default: bool = True) -> None:
        self.kube = kube
        self.root = root.resolve()
        self.default = default

    def ensure_class(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / MARKER).touch()
        annotations = {DEFAULT_CLASS: "true"} if self.default else {}
        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": CLASS, "annotations": annotations},
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        if not self.kube.create(self.kube.storage.create_storage_class, body) and self.default:
            patch = {"metadata": {"annotations": annotations}}
            self.kube.call(self.kube.storage.patch_storage_class, CLASS, patch)

    def run_claims(self, stop: threading.Event) -> None:
        core = self.kube.core
        for kind, obj in self.kube.list_watch(
            core.list_persistent_volume_claim_for_all_namespaces, stop
        ):
            claims = obj if kind == "SYNC" else [] if kind == "DELETED" else [obj]
            for claim in claims:
                try:
                    self.provision(claim)
                except Exception as exc:
                    log.warning("provisioning %s failed: %s", _name(claim), exc)

    def run_volumes(self, stop: threading.Event) -> None:
        first = True
        for kind, obj in self.kube.list_watch(self.kube.core.list_persistent_volume, stop):
            if kind == "SYNC":
                if first:
                    self.remove_orphans(obj)
                    first = False
                volumes = obj
            else:
                volumes = [obj] if kind != "DELETED" else []
            for volume in volumes:
                try:
                    self.reclaim(volume)
                except Exception as exc:
                    log.warning("reclaiming %s failed: %s", volume["metadata"]["name"], exc)

    def wants(self, claim: JSON) -> bool:
        spec = claim.get("spec") or {}
        if (claim.get("status") or {}).get("phase") != "Pending" or spec.get("volumeName"):
            return False
        if claim["metadata"].get("deletionTimestamp"):
            return False
        cls = spec.get("storageClassName")
        return cls == CLASS or (cls is None and self.default)

    def provision(self, claim: JSON) -> None:
        if not self.wants(claim):
            return
        meta, spec = claim["metadata"], claim["spec"]
        path = self.root / meta["uid"]
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # like local-path provisioners: any pod user may write
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": f"pvc-{meta['uid']}",
                "annotations": {PROVISIONED_BY: PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": CLASS,
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        if self.kube.create(self.kube.core.create_persistent_volume, volume):
            log.info("provisioned %s at %s", _name(claim), path)

    def reclaim(self, volume: JSON) -> None:
        meta, spec = volume["metadata"], volume.get("spec") or {}
        if (meta.get("annotations") or {}).get(PROVISIONED_BY) != PROVISIONER:
            return
        if (volume.get("status") or {}).get("phase") != "Released":
            return
        if spec.get("persistentVolumeReclaimPolicy") != "Delete" or meta.get("deletionTimestamp"):
            return
        self.remove_dir(Path((spec.get("hostPath") or {}).get("path", "")), spec)
        try:
            self.kube.call(self.kube.core.delete_persistent_volume, meta["name"])
            log.info("deleted released volume %s", meta["name"])
        except ApiException as exc:
            if exc.status != 404:
                raise

    @staticmethod
    def remove_dir(path: Path, spec: JSON) -> None:
        """Only a directory this provisioner family made: named after its claim's uid, in
        a root that carries the marker file. Anything else is left alone."""
        claim_uid = (spec.get("claimRef") or {}).get("uid")
        if path.name and path.name == claim_uid and (path.parent / MARKER).is_file():
            shutil.rmtree(path, ignore_errors=True)

    def remove_orphans(self, volumes: list[JSON]) -> None:
        """Directories whose volume is gone (the cluster was recreated, or the provisioner
        was not running when the claim was deleted)."""
        used = {((v.get("spec") or {}).get("hostPath") or {}).get("path") for v in volumes}
        for path in self.root.iterdir():
            if path.name == MARKER or str(path) in used or not path.is_dir():
                continue
            if time.time() - path.stat().st_mtime > ORPHAN_AGE:
                log.info("removing orphaned volume directory %s", path)
                shutil.rmtree(path, ignore_errors=True)


def _name(claim: JSON) -> str:
    return f"{claim['metadata'].get('namespace')}/{claim['metadata'].get('name')}"
