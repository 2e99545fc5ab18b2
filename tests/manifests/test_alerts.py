"""The PrometheusRule component: every metric and label it reads is one the operator exports
(operator/headroom/reconcilers/metrics.py, read at test time), every alert carries a
runbook, and `promtool test rules` (promtool built from its Go module by
hack/promtool/build.sh) shows each alert firing when it should and staying quiet otherwise,
with its annotations rendered exactly."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.manifests import MANIFESTS
from tests.support.metric_names import exported

from headroom.reconcilers import metrics

RULE_FILE = MANIFESTS / "components" / "prometheus-rule" / "prometheusrule.yaml"
# Added by Prometheus when it scrapes, not by the exporter.
SCRAPE_LABELS = {"instance", "job"}
REQUIRED_ALERTS = {
    "HeadroomOperatorDown",
    "HeadroomPoolExhausted",
    "HeadroomAccountAuthFailed",
    "HeadroomStartupFailuresHigh",
    "HeadroomSessionsWaitingTooLong",
}


def rule_groups() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULE_FILE.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return list(doc["spec"]["groups"])


def alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rule_groups() for r in g["rules"] if "alert" in r}


SELECTOR = re.compile(r"\b(headroom_[a-z0-9_]+)(\{[^}]*\})?")
GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")


def test_the_required_alerts_exist_with_runbooks() -> None:
    found = alerts()
    assert set(found) >= REQUIRED_ALERTS
    for name, rule in found.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule.get("for"), name  # no alert pages on a single scrape
        notes = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(notes), name
        assert "docs/operator-guide.md#" in notes["runbook"], name


def test_every_metric_and_label_in_the_rules_is_exported() -> None:
    names = exported()
    assert "headroom_operator_active" in names  # the module really was read
    for rule in (r for g in rule_groups() for r in g["rules"]):
        expr = rule["expr"]
        used = SELECTOR.findall(expr)
        assert used, rule
        in_expr: set[str] = set(SCRAPE_LABELS)
        for metric, matchers in used:
            assert metric in names, f"{rule.get('alert')}: {metric} is not exported"
            in_expr |= names[metric]
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                assert label in names[metric], f"{rule.get('alert')}: {metric} has no {label}"
        for group in GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                assert label in in_expr, f"{rule.get('alert')}: no label {label} in {expr}"


def test_phase_and_outcome_values_in_the_rules_exist() -> None:
    from headroom.contract.termination import Outcome

    text = RULE_FILE.read_text()
    for phase in re.findall(r'phase="([A-Za-z]+)"', text):
        assert phase in metrics.PHASES
    for group in re.findall(r'outcome=~"([a-z_|]+)"', text):
        assert set(group.split("|")) <= {o.value for o in Outcome}


# --- promtool ------------------------------------------------------------------------------

TEMPLATE = re.compile(r"\{\{\s*(\$labels\.[a-z_]+|\$value)\s*\}\}")


def render(text: str, labels: dict[str, str], value: float) -> str:
    """The two template forms the rules use, rendered as Prometheus (Go) renders them."""
    shown = str(int(value)) if float(value).is_integer() else repr(value)

    def one(match: re.Match[str]) -> str:
        what = match[1]
        return shown if what == "$value" else labels[what.removeprefix("$labels.")]

    return TEMPLATE.sub(one, text)


def test_annotations_use_only_templates_the_tests_render() -> None:
    for name, rule in alerts().items():
        for text in rule["annotations"].values():
            assert "{{" not in TEMPLATE.sub("", text), f"{name}: {text}"


def expect(alert: str, at: str, firing: list[tuple[dict[str, str], float]]) -> dict[str, Any]:
    rule = alerts()[alert]
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [
            {
                "exp_labels": {**rule["labels"], **labels},
                "exp_annotations": {
                    k: render(v, labels, value) for k, v in rule["annotations"].items()
                },
            }
            for labels, value in firing
        ],
    }


LEADER = 'headroom_operator_active{instance="a"}'
STANDBY = 'headroom_operator_active{instance="b"}'
AGENTS = {"namespace": "agents"}


def series(name: str, values: str) -> dict[str, str]:
    return {"series": name, "values": values}


CASES: list[dict[str, Any]] = [
    {
        "name": "the only replica stops: operator down after 5 minutes",
        "input_series": [series(LEADER, "1x5 stale")],
        "alert_rule_test": [
            expect("HeadroomOperatorDown", "4m", []),
            expect("HeadroomOperatorDown", "15m", [({}, 0)]),
        ],
    },
    {
        "name": "two replicas, both standing by: operator down",
        "input_series": [series(LEADER, "0x20"), series(STANDBY, "0x20")],
        "alert_rule_test": [expect("HeadroomOperatorDown", "10m", [({}, 0)])],
    },
    {
        "name": "a leader and a standby with stale numbers: all quiet",
        "input_series": [
            series(LEADER, "1x30"), series(STANDBY, "0x30"),
            series('headroom_pool_available_accounts{namespace="agents",instance="a"}', "2x30"),
            series('headroom_pool_available_accounts{namespace="agents",instance="b"}', "0x30"),
            series('headroom_waiting_oldest_seconds{namespace="agents",instance="b"}', "90000x30"),
        ],
        "alert_rule_test": [
            expect(name, "25m", [])
            for name in ("HeadroomOperatorDown", "HeadroomOperatorSplitBrain",
                         "HeadroomPoolExhausted", "HeadroomSessionsWaitingTooLong")
        ],
    },
    {
        "name": "two replicas acting at once",
        "input_series": [series(LEADER, "1x10"), series(STANDBY, "1x10")],
        "alert_rule_test": [
            expect("HeadroomOperatorSplitBrain", "1m", []),
            expect("HeadroomOperatorSplitBrain", "5m", [({}, 2)]),
        ],
    },
    {
        "name": "no available account in one namespace for 15 minutes",
        "input_series": [
            series(LEADER, "1x30"), series(STANDBY, "0x30"),
            series('headroom_pool_available_accounts{namespace="agents",instance="a"}', "0x30"),
            series('headroom_pool_available_accounts{namespace="team",instance="a"}', "1x30"),
            # the standby's stale view must not hide the leader's
            series('headroom_pool_available_accounts{namespace="agents",instance="b"}', "3x30"),
        ],
        "alert_rule_test": [
            expect("HeadroomPoolExhausted", "10m", []),
            expect("HeadroomPoolExhausted", "20m", [(AGENTS, 0)]),
        ],
    },
    {
        "name": "an account goes AuthFailed",
        "input_series": [
            series(LEADER, "1x20"),
            series('headroom_account_phase{namespace="agents",account="alice",'
                   'phase="AuthFailed",instance="a"}', "0 0 1x18"),
            series('headroom_account_phase{namespace="agents",account="alice",'
                   'phase="Available",instance="a"}', "1 1 0x18"),
            series('headroom_account_phase{namespace="agents",account="bob",'
                   'phase="AuthFailed",instance="a"}', "0x20"),
        ],
        "alert_rule_test": [
            expect("HeadroomAccountAuthFailed", "5m", []),
            expect("HeadroomAccountAuthFailed", "10m",
                   [({"namespace": "agents", "account": "alice"}, 1)]),
        ],
    },
    {
        "name": "two of three attempts fail",
        "input_series": [
            series('headroom_attempts_total{outcome="failed",instance="a"}', "0+2x40"),
            series('headroom_attempts_total{outcome="completed",instance="a"}', "0+1x40"),
        ],
        "alert_rule_test": [
            expect("HeadroomStartupFailuresHigh", "5m", []),
            expect("HeadroomStartupFailuresHigh", "25m", [({}, 2 / 3)]),
        ],
    },
    {
        "name": "walls are not failures, and a trickle of failures is not a rate",
        "input_series": [
            series('headroom_attempts_total{outcome="failed",instance="a"}', "0+1x40"),
            series('headroom_attempts_total{outcome="walled",instance="a"}', "0+5x40"),
            series('headroom_attempts_total{outcome="completed",instance="a"}', "0+1x40"),
            series('headroom_attempts_total{outcome="auth_failed",instance="b"}', "0+0.2x40"),
        ],
        "alert_rule_test": [expect("HeadroomStartupFailuresHigh", "25m", [])],
    },
    {
        "name": "a session waits longer than six hours",
        "input_series": [
            series(LEADER, "1x30"),
            series('headroom_waiting_oldest_seconds{namespace="agents",instance="a"}',
                   "21000+60x30"),
        ],
        "alert_rule_test": [
            expect("HeadroomSessionsWaitingTooLong", "12m", []),
            expect("HeadroomSessionsWaitingTooLong", "20m", [(AGENTS, 22200)]),
        ],
    },
]  # fmt: skip


@pytest.fixture
def rule_files(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file, plus the unit tests above."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", **case} for case in CASES]}  # fmt: skip
    (tmp_path / "alerts_test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    return tmp_path


def promtool_run(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def test_promtool_checks_the_rules(promtool: Path, rule_files: Path) -> None:
    done = promtool_run(promtool, "check", "rules", "rules.yaml", cwd=rule_files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rule_groups())} rules found" in done.stdout


def test_promtool_unit_tests_every_alert(promtool: Path, rule_files: Path) -> None:
    tested = {t["alertname"] for case in CASES for t in case["alert_rule_test"]}
    assert tested == set(alerts())
    done = promtool_run(promtool, "test", "rules", "alerts_test.yaml", cwd=rule_files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_would_catch_a_wrong_expectation(promtool: Path, rule_files: Path) -> None:
    """The unit tests can fail: claim that the pool alert fires 5 minutes early."""
    path = rule_files / "alerts_test.yaml"
    tests = yaml.safe_load(path.read_text())
    pool = next(c for c in tests["tests"] if c["name"].startswith("no available account"))
    pool["alert_rule_test"][0]["exp_alerts"] = pool["alert_rule_test"][1]["exp_alerts"]
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = promtool_run(promtool, "test", "rules", "alerts_test.yaml", cwd=rule_files)
    assert done.returncode == 1
    assert "HeadroomPoolExhausted" in done.stdout + done.stderr
