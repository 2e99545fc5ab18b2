"""Only the operator and the runner ship. The stand-in API, the dev volume provisioner and the
simulator are the separate headroom-dev distribution (dev/): the `headroom-operator` wheel,
which the images install, must not contain them, and the production command must not offer
them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from agent_pods import REPO
from test_dockerfiles import IMAGES, instructions

STAND_INS = ("sandbox", "provisioner", "sim")
DEV_COMMANDS = ("sandbox-api", "provisioner", "simulate", "crdgen")


def test_the_wheel_holds_no_stand_in(tmp_path: Path) -> None:
    # Build from a copy of what the images copy in, so no build/ or egg-info lands in the tree.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "operator",
        src / "operator",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
    )
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
        check=True,
        timeout=300,
    )
    [wheel] = out.glob("headroom_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"headroom"}
    modules = {n.split("/")[1] for n in names if n.startswith("headroom/")}
    assert {"controllers", "reconcilers", "runner", "core", "contract", "cli.py"} <= modules
    assert not modules & set(STAND_INS), sorted(modules)
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "headroom = headroom.cli:main" in scripts and "headroom-dev" not in scripts


def test_the_images_install_only_the_root_project() -> None:
    for image in ("agent", "operator"):
        steps = instructions(IMAGES / image / "Dockerfile")
        sources = [arg.split()[:-1] for op, arg in steps if op == "COPY"]
        assert not [s for s in sources if any(p.startswith(("dev", "./dev")) for p in s)], image


def test_the_production_command_offers_no_stand_in() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "headroom", "--help"], capture_output=True, text=True, check=True
    )
    commands = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert commands == {"operator", "agent", "credential", "clone", "validate"}
    for name in DEV_COMMANDS:
        refused = subprocess.run(
            [sys.executable, "-m", "headroom", name], capture_output=True, text=True, check=False
        )
        assert refused.returncode == 2 and "unknown command" in refused.stderr


def test_the_dev_command_offers_the_stand_ins() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "headroom_dev", "--help"], capture_output=True, text=True, check=True
    )
    commands = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert commands == set(DEV_COMMANDS)
