"""`python -m build` makes an sdist and a wheel named headroom-operator (the names
`headroom` and `headroom-ai` belong to other projects on PyPI) that carry the operator, the
runner and the kubectl plugin, and nothing of the development stand-ins or the tests; each
installs into a clean virtualenv and its commands run."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest
from tests.package.conftest import DISTRIBUTION, VERSION, Built, clean_venv, run

COMMANDS = ("headroom", "kubectl-headroom")


def test_build_names_both_files_after_the_distribution(built: Built) -> None:
    assert built.sdist.name == f"{DISTRIBUTION}-{VERSION}.tar.gz"
    assert built.wheel.name == f"{DISTRIBUTION}-{VERSION}-py3-none-any.whl"


def test_the_wheel_carries_only_the_shipped_package(built: Built) -> None:
    wheel = zipfile.ZipFile(built.wheel)
    names = wheel.namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"headroom", f"{DISTRIBUTION}-{VERSION}.dist-info"}
    modules = {n.split("/")[1] for n in names if n.startswith("headroom/")}
    assert {"controllers", "reconcilers", "runner", "plugin", "crds", "cli.py"} <= modules
    assert not [n for n in names if "headroom_dev" in n or "/tests/" in n or "conftest" in n]
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = wheel.read(entry_points).decode()
    assert "headroom = headroom.cli:main" in scripts
    assert "kubectl-headroom = headroom.plugin.main:main" in scripts
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert f"Name: headroom-operator\nVersion: {VERSION}\n" in wheel.read(metadata).decode()


def test_the_sdist_carries_no_stand_in_or_test(built: Built) -> None:
    root = f"{DISTRIBUTION}-{VERSION}/"
    with tarfile.open(built.sdist) as sdist:
        names = [n.removeprefix(root) for n in sdist.getnames()]
    assert "pyproject.toml" in names and "operator/headroom/plugin/main.py" in names
    assert not [
        n for n in names if n.startswith(("dev/", "tests/", "hack/")) or "headroom_dev" in n
    ]


@pytest.mark.parametrize("artifact", ["wheel", "sdist"])
def test_it_installs_offline_into_a_clean_venv_and_runs(
    built: Built, artifact: str, tmp_path: Path
) -> None:
    bin_dir = clean_venv(tmp_path / "venv")
    source = built.wheel if artifact == "wheel" else built.sdist
    run(bin_dir / "pip", "install", "--quiet", "--no-index", "--find-links", built.wheelhouse,
        source)  # fmt: skip
    for command in COMMANDS:
        shown = run(bin_dir / command, "--help").stdout
        assert shown.startswith(f"usage: {command.replace('-', ' ')}"), shown
    assert "operator" in run(bin_dir / "headroom", "--help").stdout
    assert "status" in run(bin_dir / "kubectl-headroom", "--help").stdout
    # Away from the checkout, whose directories Python would otherwise find from the cwd.
    probe = "import importlib.util as u; print(u.find_spec('headroom_dev'), u.find_spec('tests'))"
    missing = run(bin_dir / "python", "-c", probe, cwd=tmp_path).stdout
    assert missing.split() == ["None", "None"]
