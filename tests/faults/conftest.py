"""Fault-injection fixtures live in tests/support/fault_fixtures.py (the bench uses them too)."""

from tests.support.fault_fixtures import operator, pod_history, private_cluster, scene

__all__ = ["operator", "pod_history", "private_cluster", "scene"]
