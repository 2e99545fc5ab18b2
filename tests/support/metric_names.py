"""The metrics the operator defines (operator/headroom/reconcilers/metrics.py, read at test
time): what the alerts and the dashboard may name."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from headroom.reconcilers import metrics


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every metric the operator's metrics module defines."""
    out: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name, labels, kind = value._name, set(value._labelnames), value._type
            suffixes = {"counter": ["_total"], "gauge": [""],
                        "histogram": ["_bucket", "_sum", "_count"]}[kind]  # fmt: skip
            for suffix in suffixes:
                out[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        elif isinstance(value, (type, CollectorRegistry)):
            continue
        elif callable(getattr(value, "collect", None)):
            # a custom collector (e.g. the window reset times, computed at scrape time)
            for family in value.collect():
                out[family.name] = set(getattr(family, "_labelnames", ()))
    return out
