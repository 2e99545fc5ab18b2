"""Writes crds/clusterclaudeaccounts.headroom.dev.yaml from the ClaudeAccount CRD.

The two kinds share their spec and status: a ClusterClaudeAccount is a ClaudeAccount with
cluster scope, a Secret in the operator's namespace and spec.allowedNamespaces. Deriving it
keeps one source for everything they share; tests/crds fail when the file is stale.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import yaml

JSON = dict[str, Any]
CRDS = Path(__file__).resolve().parents[3] / "crds"
SOURCE = CRDS / "claudeaccounts.headroom.dev.yaml"
SELECTOR_SOURCE = CRDS / "agentsessions.headroom.dev.yaml"
TARGET = CRDS / "clusterclaudeaccounts.headroom.dev.yaml"

HEADER = """\
# ClusterClaudeAccount: an Anthropic account that sessions of several namespaces share.
# GENERATED from claudeaccounts.headroom.dev.yaml by `headroom-dev crdgen`: edit that file
# (or dev/headroom_dev/crdgen) and regenerate; tests/crds fail while this one is stale.
"""

KIND_DESCRIPTION = (
    "ClusterClaudeAccount is one Anthropic account that sessions of several namespaces share: "
    "its credential lives in a Secret in the operator's namespace, spec.allowedNamespaces says "
    "whose sessions may use it, and its maxSessions, walls and windows are one ledger for all "
    "of them. A session uses cluster accounts when its accountScope is Cluster or All."
)
SECRET_DESCRIPTION = (
    "The Secret, in the operator's namespace (its --cluster-account-namespace, by default "
    "headroom-system), that holds the credential. Never in a team's namespace: teams need no "
    "access to it. The operator copies what a session's pods need into a Secret of the "
    "session's namespace, owned by the session."
)
ALLOWED_DESCRIPTION = (
    "The namespaces whose sessions may run on this account: those listed in names, and those "
    "whose labels match selector (either admits). An empty selector ({}) admits every "
    "namespace. Whoever can read Secrets or exec into pods in an admitted namespace can reach "
    "the credential, so admit only namespaces you would give it to."
)


def generate() -> str:
    crd = copy.deepcopy(yaml.safe_load(SOURCE.read_text("utf-8")))
    crd["metadata"]["name"] = "clusterclaudeaccounts.headroom.dev"
    spec = crd["spec"]
    spec["scope"] = "Cluster"
    spec["names"] = {
        "kind": "ClusterClaudeAccount",
        "listKind": "ClusterClaudeAccountList",
        "plural": "clusterclaudeaccounts",
        "singular": "clusterclaudeaccount",
        "shortNames": ["cca"],
        "categories": ["headroom"],
    }
    (version,) = spec["versions"]
    version["additionalPrinterColumns"].append(
        {
            "name": "Namespaces",
            "type": "string",
            "priority": 1,
            "jsonPath": ".spec.allowedNamespaces.names",
            "description": "Namespaces admitted by name (a selector may admit more).",
        }
    )
    schema = version["schema"]["openAPIV3Schema"]
    schema["description"] = KIND_DESCRIPTION
    account_spec = schema["properties"]["spec"]
    account_spec["required"] = ["credentials", "allowedNamespaces"]
    credentials = account_spec["properties"]["credentials"]["properties"]
    credentials["secretRef"]["description"] = SECRET_DESCRIPTION
    account_spec["properties"]["allowedNamespaces"] = _allowed_namespaces()
    status = schema["properties"]["status"]["properties"]
    # Each session on a cluster account gets its own copy of the credential instead.
    del status["runtimeSecretName"]
    body = yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def _allowed_namespaces() -> JSON:
    selector = _namespace_selector()
    return {
        "type": "object",
        "description": ALLOWED_DESCRIPTION,
        "x-kubernetes-validations": [
            {
                "rule": "has(self.names) || has(self.selector)",
                "message": (
                    "allowedNamespaces needs names or a selector: a cluster account no "
                    "namespace may use serves nobody (selector: {} admits every namespace)"
                ),
                "reason": "FieldValueRequired",
            }
        ],
        "properties": {
            "names": {
                "type": "array",
                "description": "Namespaces admitted by name.",
                "maxItems": 256,
                "x-kubernetes-list-type": "set",
                "items": {
                    "type": "string",
                    "description": "A namespace name (a DNS label).",
                    "minLength": 1,
                    "maxLength": 63,
                    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                },
            },
            "selector": selector,
        },
    }


def _namespace_selector() -> JSON:
    """The sessions' label selector schema, reused for namespaces: one definition of what a
    label selector may hold."""
    sessions = yaml.safe_load(SELECTOR_SOURCE.read_text("utf-8"))
    (version,) = sessions["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    selector: JSON = copy.deepcopy(spec["properties"]["accountSelector"])
    selector["description"] = (
        "Label selector over namespaces: a namespace whose labels match is admitted. Empty "
        "({}) admits every namespace."
    )
    selector["properties"]["matchLabels"]["description"] = (
        "Labels a namespace must carry, all of them, with exactly these values."
    )
    selector["properties"]["matchExpressions"]["description"] = (
        "Requirements a namespace's labels must meet, all of them."
    )
    return selector


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="headroom-dev crdgen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    wanted = generate()
    if args.check:
        current = TARGET.read_text("utf-8") if TARGET.exists() else ""
        if current != wanted:
            print(f"{TARGET} is stale: run `headroom-dev crdgen`")
            return 1
        return 0
    TARGET.write_text(wanted, "utf-8")
    print(TARGET)
    return 0
