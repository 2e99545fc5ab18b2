"""The Grafana dashboard (manifests/components/grafana-dashboard/headroom.json): its panels'
PromQL, with Grafana's variables replaced by what Grafana would put there, and the metrics
each expression names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "manifests" / "components" / "grafana-dashboard" / "headroom.json"
# What Grafana substitutes before the query reaches Prometheus: the namespace variable's
# "All" value (allValue) and a typical rate interval.
VARIABLES = {"$namespace": ".*", "$__rate_interval": "2m"}
METRIC = re.compile(r"\bheadroom_[a-z0-9_]+\b")
LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*\w+\)$")


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def promql(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def expressions(dashboard: dict[str, Any]) -> dict[str, str]:
    """ "<panel title>/<refId>" -> the PromQL Prometheus receives."""
    return {
        f"{p['title']}/{t['refId']}": promql(t["expr"]) for p in panels(dashboard)
        for t in p["targets"]
    }  # fmt: skip


def variable_metrics(dashboard: dict[str, Any]) -> set[str]:
    """Metrics the template variables' label_values() queries read."""
    out = set()
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = LABEL_VALUES.match(variable["query"]["query"])
            assert found, variable["query"]
            out.add(found[1])
    return out


def metrics(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    """Expression (or variable) -> the metric names it reads."""
    out = {key: set(METRIC.findall(expr)) for key, expr in expressions(dashboard).items()}
    out["templating"] = variable_metrics(dashboard)
    return out
