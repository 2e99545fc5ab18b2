"""The CRD test cases: manifests under invalid/ (each names the field its rejection must
mention) and valid/ (edge cases both the API server and `headroom validate` must accept).

Header of an invalid case:
    # <why it is invalid>
    # field: <the field path the rejection names, as the API server writes it>
    # check: schema | cel     (schema: `headroom validate` sees it offline; cel: only a server)
    # mode: create | update   (update: document 1 is created, document 2 applied over it)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CRD_DIR = REPO / "crds"
SAMPLES = REPO / "manifests" / "samples"
INVALID = HERE / "invalid"
VALID = HERE / "valid"


@dataclass(frozen=True)
class Case:
    path: Path
    field: str
    check: str
    mode: str
    documents: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.stem


def _header(text: str, key: str) -> str:
    found = re.search(rf"^# {key}: (\S+)\s*$", text, re.MULTILINE)
    if found is None:
        raise ValueError(f"missing '# {key}:' header")
    return found.group(1)


def load_case(path: Path) -> Case:
    text = path.read_text("utf-8")
    documents = tuple(d for d in re.split(r"^---\s*$", text, flags=re.MULTILINE) if d.strip())
    case = Case(path, _header(text, "field"), _header(text, "check"), _header(text, "mode"),
                documents)  # fmt: skip
    assert case.check in {"schema", "cel"}, path
    assert case.mode in {"create", "update"}, path
    assert len(documents) == (2 if case.mode == "update" else 1), path
    return case


INVALID_CASES = [load_case(p) for p in sorted(INVALID.glob("*.yaml"))]
VALID_FILES = sorted(VALID.glob("*.yaml"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "invalid_case" in metafunc.fixturenames:
        metafunc.parametrize("invalid_case", INVALID_CASES, ids=[c.name for c in INVALID_CASES])
    if "valid_file" in metafunc.fixturenames:
        metafunc.parametrize("valid_file", VALID_FILES, ids=[p.stem for p in VALID_FILES])
