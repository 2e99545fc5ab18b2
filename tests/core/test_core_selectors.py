"""Label selectors evaluated in memory, with metav1.LabelSelector semantics."""

from __future__ import annotations

from typing import Any

import pytest

from headroom.core.selectors import matches

MAX = {"tier": "max", "team": "infra"}
API = {"type": "api-key"}
BARE: dict[str, str] = {}

CASES: list[tuple[str, dict[str, Any] | None, dict[str, str], bool]] = [
    ("none-matches-all", None, MAX, True),
    ("none-matches-unlabelled", None, BARE, True),
    ("empty-matches-all", {}, MAX, True),
    ("empty-match-labels-matches-all", {"matchLabels": {}}, BARE, True),
    ("empty-expressions-matches-all", {"matchExpressions": []}, BARE, True),
    ("null-parts-match-all", {"matchLabels": None, "matchExpressions": None}, MAX, True),
    ("labels-equal", {"matchLabels": {"tier": "max"}}, MAX, True),
    ("labels-all-required", {"matchLabels": {"tier": "max", "team": "infra"}}, MAX, True),
    ("labels-one-differs", {"matchLabels": {"tier": "max", "team": "web"}}, MAX, False),
    ("labels-missing-key", {"matchLabels": {"tier": "max"}}, API, False),
    ("labels-empty-value-needs-the-key", {"matchLabels": {"tier": ""}}, BARE, False),
    ("labels-empty-value-present", {"matchLabels": {"tier": ""}}, {"tier": ""}, True),
    ("labels-case-sensitive", {"matchLabels": {"tier": "Max"}}, MAX, False),
    (
        "in-member",
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["pro", "max"]}]},
        MAX,
        True,
    ),
    (
        "in-not-member",
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["pro"]}]},
        MAX,
        False,
    ),
    (
        "in-key-absent",
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["max"]}]},
        API,
        False,
    ),
    (
        "in-no-values",
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]},
        MAX,
        False,
    ),
    (
        "notin-member",
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["max"]}]},
        MAX,
        False,
    ),
    (
        "notin-other",
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["pro"]}]},
        MAX,
        True,
    ),
    (
        "notin-key-absent-matches",
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["max"]}]},
        API,
        True,
    ),
    ("exists-present", {"matchExpressions": [{"key": "team", "operator": "Exists"}]}, MAX, True),
    ("exists-absent", {"matchExpressions": [{"key": "team", "operator": "Exists"}]}, API, False),
    (
        "exists-empty-value",
        {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
        {"team": ""},
        True,
    ),
    (
        "doesnotexist-present",
        {"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]},
        MAX,
        False,
    ),
    (
        "doesnotexist-absent",
        {"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]},
        API,
        True,
    ),
    (
        "unknown-operator-matches-nothing",
        {"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]},
        MAX,
        False,
    ),
    (
        "expressions-are-anded",
        {
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["max"]},
                {"key": "team", "operator": "NotIn", "values": ["infra"]},
            ]
        },
        MAX,
        False,
    ),
    (
        "labels-and-expressions-both-hold",
        {
            "matchLabels": {"tier": "max"},
            "matchExpressions": [{"key": "team", "operator": "Exists"}],
        },
        MAX,
        True,
    ),
    (
        "labels-hold-expression-fails",
        {
            "matchLabels": {"tier": "max"},
            "matchExpressions": [{"key": "type", "operator": "Exists"}],
        },
        MAX,
        False,
    ),
    (
        "expression-holds-labels-fail",
        {
            "matchLabels": {"tier": "pro"},
            "matchExpressions": [{"key": "team", "operator": "Exists"}],
        },
        MAX,
        False,
    ),
]


@pytest.mark.parametrize(
    ("selector", "labels", "expected"), [pytest.param(*row[1:], id=row[0]) for row in CASES]
)
def test_matches(selector: dict[str, Any] | None, labels: dict[str, str], expected: bool) -> None:
    assert matches(selector, labels) is expected
