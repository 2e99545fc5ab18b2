"""The Grafana dashboard: one JSON file (the chart carries a copy, tests/chart), rendered by
its kustomize component as a ConfigMap for Grafana's sidecar, with a panel for each thing an
operator watches, every expression parsed by promtool (built from its Go module), and every
metric it names exported by the operator (tests/operator/test_metrics.py checks the names
against a live scrape)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml
from tests.support import dashboard
from tests.support.manifests import MANIFESTS, Rendered, find, with_components
from tests.support.metric_names import exported

COMPONENT = MANIFESTS / "components" / "grafana-dashboard"
# Title words -> what the panel is for; every one must exist.
REQUIRED = {
    "Pool capacity": "session slots and slots in use",
    "Available accounts": "accounts that take new sessions",
    "Walls by window": "walls per usage window",
    "Failover latency": "how fast walled sessions move",
    "Sessions by phase": "the fleet's sessions",
    "Waiting queue": "sessions waiting for headroom",
    "Auth failures": "401s per account",
    "Utilization per account and window": "each account's windows",
    "Resets": "when each window resets",
}


def test_the_component_is_a_configmap_for_grafanas_sidecar(
    kustomize: Callable[[Path], Rendered], tmp_path: Path
) -> None:
    docs = kustomize(with_components(tmp_path, COMPONENT))
    config_map = find(docs, "ConfigMap", "headroom-dashboard")
    assert config_map["metadata"]["namespace"] == "headroom-system"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"] == {"headroom.json": dashboard.DASHBOARD.read_text()}


def test_the_dashboard_has_its_panels_laid_out() -> None:
    board = dashboard.load()
    titles = [p["title"] for p in dashboard.panels(board)]
    assert set(REQUIRED) <= set(titles), set(REQUIRED) - set(titles)
    assert len(set(titles)) == len(titles)
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dashboard.panels(board):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
        assert panel["description"], panel["title"]
    assert board["uid"] == "headroom"


def test_every_metric_the_panels_name_is_one_the_operator_defines() -> None:
    names = set(exported())
    assert "headroom_operator_active" in names  # the metrics module really was read
    for key, used in dashboard.metrics(dashboard.load()).items():
        assert used, f"{key} reads no Headroom metric"
        assert used <= names, (key, used - names)


def rules_file(exprs: dict[str, str], path: Path) -> Path:
    rules = [{"record": f"headroom_dashboard:expr_{i}", "expr": e}
             for i, e in enumerate(exprs.values())]  # fmt: skip
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


def test_promtool_parses_every_expression(promtool: Path, tmp_path: Path) -> None:
    exprs = dashboard.expressions(dashboard.load())
    assert len(exprs) >= 20
    done = subprocess.run([str(promtool), "check", "rules", str(rules_file(exprs, tmp_path / "r"))],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout, done.stdout


def test_promtool_refuses_a_broken_expression(promtool: Path, tmp_path: Path) -> None:
    """The check has teeth: one unbalanced parenthesis fails it."""
    exprs = {"ok": "sum(headroom_operator_active)", "broken": "sum(rate(headroom_swaps_total[2m])"}
    done = subprocess.run([str(promtool), "check", "rules", str(rules_file(exprs, tmp_path / "r"))],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr
