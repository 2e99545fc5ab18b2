"""The simulator drives the operator's decision core and nothing else: importing it must not
pull in kopf, the reconcilers or the kube client (it runs where no cluster library is wanted,
and a core helper hidden in a reconciler would drift from what the simulator measures)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("kopf", "kubernetes_asyncio", "headroom.reconcilers", "headroom.controllers")


def test_the_simulator_imports_only_core_and_contract() -> None:
    probe = (
        "import json, sys\n"
        "import headroom_dev.sim.report, headroom_dev.sim.policies, headroom_dev.sim.engine\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('headroom'))))\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    ours, forbidden = (json.loads(line) for line in done.stdout.splitlines())
    assert forbidden == []
    allowed = ("headroom.core", "headroom.contract", "headroom_dev.sim")
    roots = {"headroom", "headroom_dev"}
    assert [m for m in ours if m not in roots and not m.startswith(allowed)] == []
