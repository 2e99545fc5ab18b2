"""Past one replica: two operators, each owning its own namespace (a shard), deployed as two
Helm releases would deploy them, side by side on one API server.

Each shard is an operator process authenticated as its own release's ServiceAccount (the
chart's RBAC: a Role in its watched namespace only), with its own `-n` and its own
`--peering` object. 2 x 10 sessions, split over the halves; one account of each half walled
at once. Every walled session must move within its half, no account ever over `maxSessions`
(a pod-history watch per half), and no session touched by both operators. That last one is
proven three ways: the API server would refuse it (each identity's `can-i` on the other
half), neither operator tried (no 403 in its log, no line naming the other half), and every
Event of a half was written by that half's operator (its peering identity).

Only namespaced ClaudeAccounts: every operator watches and writes every ClusterClaudeAccount,
whatever its `-n` (docs/production.md, "Past one replica").
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.support.operator import OperatorProcess, Scene, in_seconds, token_kubeconfig, wait_for
from tests.support.pod_history import PodHistory

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PEERING_CRDS = REPO / "manifests" / "kopf" / "peering-crds.yaml"
SESSIONS = 10  # per shard
# maxSessions per account: 15 places for 10 sessions, so whichever account walls, the other
# two have exactly room for its sessions.
ACCOUNTS = {"first": 5, "second": 5, "third": 5}
# A refused request in the operator's log (a bare "403" would also match inside a UUID).
REFUSAL = re.compile(r"\b403\b|forbidden", re.IGNORECASE)
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@dataclass
class Shard:
    release: str
    system: str  # the release namespace: its ServiceAccount, its cluster accounts' Secrets
    ns: str  # the one namespace it serves
    peering: str
    operator: OperatorProcess | None = None
    scene: Scene | None = None

    @property
    def account(self) -> str:
        return f"{self.release}-operator"

    @property
    def who(self) -> str:
        return f"system:serviceaccount:{self.system}:{self.account}"

    @property
    def proc(self) -> OperatorProcess:
        assert self.operator is not None
        return self.operator

    @property
    def sessions(self) -> Scene:
        assert self.scene is not None
        return self.scene


def make_namespace(kubectl: Any, core: client.CoreV1Api, name: str) -> None:
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "headroom.dev/test=true")
    # Pods are refused until the namespace's default ServiceAccount exists.
    wait_for(
        f"the default ServiceAccount of {name}",
        lambda: (
            core.list_namespaced_service_account(name, field_selector="metadata.name=default").items
        ),
        30,
        0.2,
    )


def install_rbac(helm: Any, kubectl: Any, shard: Shard) -> None:
    """The release's ServiceAccount and RBAC objects exactly as `helm install` would create
    them with these values (the Deployment is the test's own operator process instead)."""
    docs = helm.template(
        "--set", f"watchNamespaces={{{shard.ns}}}", "--set", f"peering.name={shard.peering}",
        release=shard.release, namespace=shard.system,
    )  # fmt: skip
    rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))


# (verb, resource, subresource) of what a failover does, and the reads before it.
WRITES = [
    ("get", "agentsessions.headroom.dev", ""),
    ("patch", "agentsessions.headroom.dev", "status"),
    ("patch", "claudeaccounts.headroom.dev", "status"),
    ("create", "pods", ""),
    ("delete", "pods", ""),
    ("get", "secrets", ""),
]


def can_i(kubectl: Any, shard: Shard, verb: str, what: str, sub: str, namespace: str) -> str:
    extra = [f"--subresource={sub}"] if sub else []
    done = kubectl("auth", "can-i", verb, what, *extra, "-n", namespace, "--as", shard.who,
                   check=False)  # fmt: skip
    return str(done.stdout.strip())


def acting(shard: Shard) -> bool:
    assert shard.proc.alive(), shard.proc.log_text()[-3000:]
    try:
        text = shard.proc.metrics()
    except OSError:  # not listening yet
        return False
    return "headroom_operator_active 1.0" in text.splitlines()


def peers(shard: Shard) -> dict[str, Any]:
    body = shard.sessions.custom.get_namespaced_custom_object(
        "kopf.dev", "v1", shard.ns, "kopfpeerings", shard.peering
    )
    return dict(body.get("status") or {})


@pytest.fixture
def shards(
    helm: Any, kubectl: Any, k8s: Any, namespace: str, tmp_path: Path
) -> Iterator[tuple[Shard, Shard]]:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(PEERING_CRDS))
    core = client.CoreV1Api(k8s)
    tag = uuid.uuid4().hex[:6]
    pair = tuple(
        Shard(f"hr{tag}{half}", f"{namespace[:48]}-{half}-sys", f"{namespace[:48]}-{half}",
              f"headroom-{half}")
        for half in ("a", "b")
    )  # fmt: skip
    try:
        for shard in pair:
            make_namespace(kubectl, core, shard.system)
            make_namespace(kubectl, core, shard.ns)
            install_rbac(helm, kubectl, shard)
            config = token_kubeconfig(
                kubectl, shard.system, shard.account, tmp_path / f"{shard.release}.kubeconfig"
            )
            flags = ["--peering", shard.peering, "--priority", "1",
                     "--cluster-account-namespace", shard.system]  # fmt: skip
            shard.operator = OperatorProcess(
                config, shard.ns, tmp_path / shard.release, extra=flags
            ).start()
            shard.scene = Scene(k8s, shard.ns)
        yield pair[0], pair[1]
    finally:
        for shard in pair:
            if shard.operator is not None:
                shard.operator.stop()
            for kind in ("clusterrole", "clusterrolebinding"):
                kubectl("delete", kind, shard.account, "--ignore-not-found", "--wait=false",
                        check=False)  # fmt: skip
            for ns in (shard.ns, shard.system):
                kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false",
                        check=False)  # fmt: skip


def test_two_shards_each_move_only_their_own_sessions(
    shards: tuple[Shard, Shard], kubectl: Any, k8s: Any
) -> None:
    a, b = shards
    # What each identity may do, in its own half (yes) and in the other (no): the same
    # questions both ways, so a mistyped question cannot pass as a refusal.
    for shard, other in ((a, b), (b, a)):
        for question in WRITES:
            assert can_i(kubectl, shard, *question, shard.ns) == "yes", (shard.who, question)
            assert can_i(kubectl, shard, *question, other.ns) == "no", (shard.who, question)
    for shard in shards:
        wait_for(f"{shard.release} leads its own peering", lambda s=shard: acting(s), 120)

    histories = [PodHistory(k8s, shard.ns, max_sessions=dict(ACCOUNTS)).start() for shard in shards]
    try:
        for shard in shards:
            for name, cap in ACCOUNTS.items():
                shard.sessions.account(name, max_sessions=cap, ready=False)
        for shard in shards:
            for name in ACCOUNTS:
                shard.sessions.wait_phase("claudeaccounts", name, "Available", timeout=60)
        names = [f"s{i:02d}" for i in range(SESSIONS)]
        for name in names:
            for shard in shards:
                shard.sessions.session(name)
        placed = {
            shard.ns: {n: shard.sessions.wait_running(n, attempt=1, timeout=90) for n in names}
            for shard in shards
        }
        # In each half, the account with the most sessions walls.
        walled_account, walled = {}, {}
        for shard in shards:
            on = Counter(s["account"] for s in placed[shard.ns].values())
            walled_account[shard.ns] = on.most_common(1)[0][0]
            walled[shard.ns] = sorted(
                n for n, s in placed[shard.ns].items() if s["account"] == walled_account[shard.ns]
            )

        # Both halves walled at once, interleaved, as a kubelet reports each pod.
        resets = in_seconds(3600)
        for i in range(max(len(w) for w in walled.values())):
            for shard in shards:
                if i >= len(walled[shard.ns]):
                    continue
                pod = placed[shard.ns][walled[shard.ns][i]]["podName"]
                shard.sessions.finish_pod(
                    pod, Outcome.WALLED, window="five_hour", resets_at=resets,
                    utilization={"five_hour": 1.0}, evidence="You've hit your 5-hour limit",
                )  # fmt: skip
        for shard in shards:
            for name in walled[shard.ns]:
                moved = shard.sessions.wait_running(name, attempt=2, timeout=90)
                assert moved["account"] in set(ACCOUNTS) - {walled_account[shard.ns]}, moved
            for name in names:
                assert shard.sessions.status("agentsessions", name)["phase"] == "Running"
        for shard, history in zip(shards, histories, strict=True):
            wait_for(
                f"the pod history of {shard.ns} caught up",
                lambda s=shard, h=history: h.caught_up_with(s.sessions.live_pods()),
                30,
            )
            assert len(history.live()) == SESSIONS, history.summary()
    finally:
        for history in histories:
            history.stop()
    for history in histories:
        assert not history.violations, history.violations
        assert history.peak_per_session == 1, history.summary()
        assert max(history.peak_per_account.values()) <= max(ACCOUNTS.values())

    # Neither operator touched the other half: it never tried (no refusal, no line about it),
    # and every Event of a half came from that half's operator.
    identities = {}
    for shard, other in ((a, b), (b, a)):
        log = shard.proc.log_text()
        refusals = [line for line in log.splitlines() if REFUSAL.search(line)]
        assert not refusals, refusals[:20]
        assert other.ns not in log, [line for line in log.splitlines() if other.ns in line][:20]
        assert shard.ns in log  # it did log its own half's work
        records = peers(shard)
        assert len(records) == 1, records  # one operator in this half's peering object
        identities[shard.ns] = next(iter(records))
    assert identities[a.ns] != identities[b.ns]
    for shard in shards:
        reporters = {
            e.reporting_instance
            for e in shard.sessions.events()
            if e.reporting_component == "headroom-operator"
        }
        assert reporters == {identities[shard.ns]}, reporters
