"""The distribution as it would be published: built once per module with `python -m build`
(an sdist, then the wheel from that sdist), and a wheelhouse of its dependencies so that
clean virtualenvs install it with `pip --no-index`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "headroom_operator"  # the file-name form of headroom-operator
VERSION = "0.1.0"


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    wheelhouse: Path


def run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=600, check=False, cwd=cwd
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, REPO)
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    wheelhouse = tmp_path_factory.mktemp("wheelhouse")
    # The dependencies (and the build backend, for installing the sdist) from the package
    # index pip is configured with, once; every install below is then offline.
    run(sys.executable, "-m", "pip", "download", "--quiet", "--dest", wheelhouse, wheel,
        "setuptools>=77")  # fmt: skip
    return Built(sdist, wheel, wheelhouse)


def clean_venv(where: Path) -> Path:
    """A new virtualenv with nothing but pip; returns its bin directory."""
    run(sys.executable, "-m", "venv", where)
    return where / "bin"
