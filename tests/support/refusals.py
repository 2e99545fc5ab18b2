"""Writes the real API server refuses, on purpose: a ValidatingAdmissionPolicy (the API
server's own CEL admission, as a production policy engine would deny) scoped to one test
namespace, and ways to observe that the operator does not spin on what it cannot write."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from tests.support.operator import OperatorProcess, wait_for

ADMISSION = ("admissionregistration.k8s.io", "v1")
MARKER = "REFUSE-ME"  # a value carrying this is refused by the policy below

# Each (resources, CEL that must hold) denies one kind of write in the test's namespace.
RULES: list[tuple[str, list[str], str]] = [
    ("headroom.dev", ["agentsessions/status"],
     f"!(has(object.status) && has(object.status.lastOutcome) && "
     f"has(object.status.lastOutcome.detail) && "
     f"object.status.lastOutcome.detail.contains('{MARKER}'))"),
    ("headroom.dev", ["claudeaccounts/status"],
     f"!(has(object.status) && has(object.status.lastSignal) && "
     f"has(object.status.lastSignal.evidence) && "
     f"object.status.lastSignal.evidence.contains('{MARKER}'))"),
    ("", ["persistentvolumeclaims"],
     "!(has(object.metadata.ownerReferences) && "
     "object.metadata.ownerReferences.exists(o, o.name.startsWith('refused-')))"),
]  # fmt: skip


def _policy(name: str, group: str, resources: list[str], expression: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [group],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": resources,
                    }
                ]
            },
            "validations": [{"expression": expression, "message": f"{MARKER} is not allowed"}],
        },
    }


def _binding(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }


@contextmanager
def refusing_policy(api: client.ApiClient, namespace: str) -> Iterator[None]:
    """The policies of RULES, bound to `namespace` only; removed afterwards."""
    custom = client.CustomObjectsApi(api)
    made: list[tuple[str, str]] = []
    try:
        for i, (group, resources, expression) in enumerate(RULES):
            name = f"{namespace}-refuse-{i}"
            for plural, body in (
                ("validatingadmissionpolicies", _policy(name, group, resources, expression)),
                ("validatingadmissionpolicybindings", _binding(name, namespace)),
            ):
                custom.create_cluster_custom_object(*ADMISSION, plural, body)
                made.append((plural, name))
        yield
    finally:
        for plural, name in reversed(made):
            custom.delete_cluster_custom_object(*ADMISSION, plural, name)


def _denied(write: Any) -> bool:
    """The dry-run `write` is denied by the policy (its message, not a schema error)."""
    try:
        write()
    except client.ApiException as exc:
        return exc.status in (400, 403, 422) and f"{MARKER} is not allowed" in str(exc.body)
    return False


def refuses(api: client.ApiClient, namespace: str, account: str, session: str) -> bool:
    """Every policy of RULES is in force (each loads on its own, and may take a while on a
    loaded machine): a dry-run write each would deny is denied. `account` and `session` are
    objects of the namespace; a claim `probe-claim` is made for the third rule."""
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    try:
        claim_spec = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Mi"}},
        }
        core.create_namespaced_persistent_volume_claim(
            namespace, {"metadata": {"name": "probe-claim"}, "spec": claim_spec}
        )
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "refused-probe",
             "uid": "00000000-0000-0000-0000-000000000000"}  # fmt: skip
    outcome = {"outcome": "failed", "at": "2026-01-01T00:00:00Z", "podName": "p",
               "detail": MARKER}  # fmt: skip
    status = ("headroom.dev", "v1alpha1", namespace)
    return all(_denied(write) for write in (
        lambda: custom.patch_namespaced_custom_object_status(
            *status, "claudeaccounts", account,
            {"status": {"lastSignal": {"evidence": MARKER}}}, dry_run="All"),
        lambda: custom.patch_namespaced_custom_object_status(
            *status, "agentsessions", session,
            {"status": {"lastOutcome": outcome}}, dry_run="All"),
        lambda: core.patch_namespaced_persistent_volume_claim(
            "probe-claim", namespace, {"metadata": {"ownerReferences": [owner]}}, dry_run="All"),
    ))  # fmt: skip


@dataclass
class Quiet:
    """What the operator did over a window: its CPU seconds, its log lines, and which
    objects of the namespace changed (a resourceVersion that moved)."""

    seconds: float
    cpu_seconds: float
    log_lines: list[str]
    changed: list[str]

    def retries(self, name: str) -> int:
        pattern = re.compile(rf"session [^ ]+/{re.escape(name)}: API error")
        return sum(1 for line in self.log_lines if pattern.search(line))


def cpu_seconds(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def versions(custom: client.CustomObjectsApi, namespace: str) -> dict[str, dict[str, Any]]:
    """Every session and account of the namespace by "plural/name": its status."""
    out = {}
    for plural in ("agentsessions", "claudeaccounts"):
        items = custom.list_namespaced_custom_object("headroom.dev", "v1alpha1", namespace, plural)
        for item in items["items"]:
            meta = item["metadata"]
            out[f"{plural}/{meta['name']}"] = {
                "resourceVersion": meta["resourceVersion"],
                **(item.get("status") or {}),
            }
    return out


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    keys = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    return ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}"[:300] for k in keys)


def watch_quiet(
    api: client.ApiClient, namespace: str, operator: OperatorProcess, seconds: float
) -> Quiet:
    custom = client.CustomObjectsApi(api)
    assert operator.proc is not None
    pid = operator.proc.pid
    # Start once what came before has landed (an account's coalesced status flush, a
    # condition a write just cleared): two snapshots two seconds apart agree.
    last: list[dict[str, Any]] = [versions(custom, namespace)]

    def steady() -> bool:
        time.sleep(2)
        last.append(versions(custom, namespace))
        return last[-1] == last[-2]

    wait_for("the namespace steady", steady, timeout=60)
    before, cpu, log_at = versions(custom, namespace), cpu_seconds(pid), len(operator.log_text())
    time.sleep(seconds)
    after = versions(custom, namespace)
    changed = sorted(
        f"{k} ({_changes(before.get(k) or {}, after[k])})"
        for k in after
        if (before.get(k) or {}).get("resourceVersion") != after[k]["resourceVersion"]
    )
    lines = operator.log_text()[log_at:].splitlines()
    return Quiet(seconds, cpu_seconds(pid) - cpu, lines, changed)


def wait_condition(
    custom: client.CustomObjectsApi, namespace: str, plural: str, name: str, kind: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = custom.get_namespaced_custom_object(
            "headroom.dev", "v1alpha1", namespace, plural, name
        )
        for c in (body.get("status") or {}).get("conditions") or []:
            if c["type"] == kind or c.get("reason") == kind:
                return dict(c)
        return None

    return wait_for(f"{plural}/{name}: condition {kind}", probe, timeout=60)
