"""Helpers for tests of the install tree (manifests/): render with kustomize, find objects,
build scratch overlays."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
Rendered = list[dict[str, Any]]


def kustomize_dir(kubectl_path: str, directory: Path) -> Rendered:
    done = subprocess.run(
        [kubectl_path, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(docs: Rendered, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def with_components(tmp_path: Path, *components: Path, base: Path = MANIFESTS / "base") -> Path:
    """A scratch overlay: the base plus components (kustomize wants relative paths)."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    rel = [os.path.relpath(c, overlay) for c in components]
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [os.path.relpath(base, overlay)], "components": rel})
    )
    return overlay
