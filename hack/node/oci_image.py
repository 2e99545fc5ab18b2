#!/usr/bin/env python3
"""Packs a directory into a single-layer OCI image archive (an OCI image layout in a tar),
importable with `ctr -n k8s.io images import`. Used by hack/node/build.sh for the images no
registry can give here: the sandbox (pause) image and the node's busybox test image.

The output is reproducible: entries sorted, owned by root, mtime 0, gzip without a timestamp.

  oci_image.py --rootfs DIR --name docker.io/x/y:tag --out y.tar [--entrypoint JSON] [--cmd JSON]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path


def layer_tar(rootfs: Path) -> bytes:
    """The uncompressed layer: every path under rootfs, as root, mtime 0, in sorted order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(p for p in rootfs.rglob("*"))
        for path in paths:
            rel = path.relative_to(rootfs).as_posix()
            info = tar.gettarinfo(str(path), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            info.pax_headers = {}
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rootfs", type=Path, required=True)
    parser.add_argument("--name", required=True, help="full reference, e.g. docker.io/x/y:tag")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--entrypoint", default="null", help="JSON list")
    parser.add_argument("--cmd", default="null", help="JSON list")
    parser.add_argument("--env", action="append", default=[], help="NAME=value")
    args = parser.parse_args()

    raw = layer_tar(args.rootfs)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    compressed = gzip.compress(raw, compresslevel=6, mtime=0)
    layer_digest, layer = blob(compressed)

    image_config: dict[str, object] = {
        "Env": args.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "WorkingDir": "/",
    }
    if json.loads(args.entrypoint) is not None:
        image_config["Entrypoint"] = json.loads(args.entrypoint)
    if json.loads(args.cmd) is not None:
        image_config["Cmd"] = json.loads(args.cmd)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "hack/node/oci_image.py", "created": "1970-01-01T00:00:00Z"}],
        "created": "1970-01-01T00:00:00Z",
    }
    config_digest, config_bytes = blob(json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    manifest_digest, manifest_bytes = blob(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    # containerd names the imported image after this one ...
                    "io.containerd.image.name": args.name,
                    # ... and other tools after this one.
                    "org.opencontainers.image.ref.name": args.name,
                },
            }
        ],
    }

    partial = args.out.with_name(args.out.name + ".partial")
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in (
            (config_digest, config_bytes),
            (manifest_digest, manifest_bytes),
            (layer_digest, layer),
        ):
            add(tar, "blobs/sha256/" + digest.removeprefix("sha256:"), data)
    os.replace(partial, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
