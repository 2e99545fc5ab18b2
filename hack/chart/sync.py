#!/usr/bin/env python3
"""Copies into the Helm chart (charts/headroom) the files it shares with the kustomize tree,
which stay their one source: the CRDs, kopf's peering CRDs, the RBAC files
(manifests/base/rbac*.yaml), the alerts and the Grafana dashboard. Helm reads nothing outside
a chart's directory, so the chart carries copies; `make chart` writes them and the chart
tests run `--check`, which fails on a copy that is missing, differs or has no source any more
(a CRD added to crds/ or an RBAC file added to manifests/base/ is missing until `make chart`
runs).

    hack/chart/sync.py [--check] [--root DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = Path("charts/headroom")
# Directories of the chart that hold only copies: anything else in them is stale.
COPY_DIRS = (CHART / "crds", CHART / "files")


def pairs(root: Path) -> dict[Path, Path]:
    """Chart copy -> source, relative to root."""
    out = {
        CHART / "crds" / p.name: p.relative_to(root) for p in sorted((root / "crds").glob("*.yaml"))
    }
    out[CHART / "crds" / "kopf.dev-peerings.yaml"] = Path("manifests/kopf/peering-crds.yaml")
    # The operator's roles and bindings, and the users' aggregated roles: every RBAC file.
    for path in sorted((root / "manifests" / "base").glob("rbac*.yaml")):
        out[CHART / "files" / path.name] = path.relative_to(root)
    rule = Path("manifests/components/prometheus-rule/prometheusrule.yaml")
    out[CHART / "files" / "prometheusrule.yaml"] = rule
    dashboard = Path("manifests/components/grafana-dashboard/headroom.json")
    out[CHART / "files" / "headroom.json"] = dashboard
    return out


def problems(root: Path) -> list[str]:
    expected = pairs(root)
    found = []
    for copy, source in expected.items():
        if not (root / copy).exists():
            found.append(f"{copy}: missing (copy of {source})")
        elif (root / copy).read_bytes() != (root / source).read_bytes():
            found.append(f"{copy}: differs from {source}")
    for directory in COPY_DIRS:
        for path in sorted((root / directory).glob("*")):
            if path.relative_to(root) not in expected:
                found.append(f"{path.relative_to(root)}: stale (no source)")
    return found


def sync(root: Path) -> None:
    expected = pairs(root)
    for directory in COPY_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)
        for path in (root / directory).glob("*"):
            if path.relative_to(root) not in expected:
                path.unlink()
    for copy, source in expected.items():
        (root / copy).write_bytes((root / source).read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="report drift, change nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    if not args.check:
        sync(args.root)
        return 0
    found = problems(args.root)
    for line in found:
        print(line)
    if found:
        print("the chart's copies drifted from their sources: run `make chart`", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
