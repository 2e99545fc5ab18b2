"""The simulator drives the operator's decision core and nothing else: importing it must not
pull in kopf, the reconcilers or the kube client (it runs where no cluster library is wanted,
and a core helper hidden in a reconciler would drift from what the simulator measures)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import headroom_dev.sim
from headroom.core.models import MODEL_SCOPED_WINDOWS
from headroom_dev.sim.model import WindowSpec

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


def _code_strings(tree: ast.AST) -> list[str]:
    """Every string literal of a module except docstrings, f-strings' parts included."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_the_simulator_has_no_model_to_window_mapping_of_its_own() -> None:
    # Which window a model draws on is headroom.core.models' to say: a copy in the simulator
    # would let the simulated world, a baseline or the bound disagree with placement.
    sim = Path(headroom_dev.sim.__file__).parent
    named = {
        f"{path.name}: {text!r}"
        for path in sorted(sim.glob("*.py"))
        for text in _code_strings(ast.parse(path.read_text()))
        if "seven_day_" in text
    }
    assert named == set()
    assert MODEL_SCOPED_WINDOWS  # the names it would have spelled
    assert "model" not in {f.name for f in fields(WindowSpec)}


def test_the_mapping_test_sees_a_copy() -> None:
    copy = ast.parse('WINDOWS = {"opus": "seven_day_opus"}\nname = f"seven_day_{m}"\n')
    assert [t for t in _code_strings(copy) if "seven_day_" in t] == ["seven_day_opus", "seven_day_"]
