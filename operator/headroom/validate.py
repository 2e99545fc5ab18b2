"""`headroom validate`: check Headroom manifests (every kind in crds/) offline.

The schemas come from the CRDs in `crds/` (the single source; nothing here repeats them). The
Kubernetes flavour of OpenAPI is translated to JSON Schema and checked with `jsonschema`, and
unknown fields are refused as the API server's strict field validation refuses them. What
cannot be checked offline: the CEL rules (`x-kubernetes-validations`), which need an API
server (`kubectl apply --dry-run=server`), and some of them need the stored object as well.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError

CEL_NOTE = (
    "CEL rules (x-kubernetes-validations: immutable fields, credentials.type vs key, "
    "CredentialsFile maxSessions, selector values, name length) are NOT checked offline; "
    "they need an API server: kubectl apply --dry-run=server -f ..."
)
MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}
# The API server drops `status` from writes to the main resource (it has a status
# subresource), so only its field names matter there: strict decoding still refuses
# unknown ones.
STATUS = "status"


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str
    where: str = ""  # Kind/name and document number, to find the object in a long file

    def __str__(self) -> str:
        suffix = f" [{self.where}]" if self.where else ""
        message = " ".join(self.message.split())  # one line per problem, whatever YAML says
        return f"{self.file}: {self.path}: {message}{suffix}"


@dataclass(frozen=True)
class Kind:
    """One served version of one of our CRDs."""

    api_version: str
    kind: str
    schema: Mapping[str, Any]  # the CRD's openAPIV3Schema, untouched
    validator: jsonschema.protocols.Validator
    cel_rules: int


# --- the CRDs --------------------------------------------------------------------------


def default_crd_dir() -> Path | None:
    """`crds/` of the repository this module sits in, else the copy shipped in the package."""
    in_repo = Path(__file__).resolve().parent.parent.parent / "crds"
    if any(in_repo.glob("*.yaml")):
        return in_repo
    shipped = resources.files("headroom").joinpath("crds")
    if shipped.is_dir():
        return Path(str(shipped))
    return None


def load_kinds(crd_dir: Path) -> dict[tuple[str, str], Kind]:
    kinds: dict[tuple[str, str], Kind] = {}
    for file in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text("utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if not version.get("served") or schema is None:
                    continue
                api_version = f"{spec['group']}/{version['name']}"
                kind = spec["names"]["kind"]
                kinds[(api_version, kind)] = Kind(
                    api_version, kind, schema, _validator(schema), _count_cel(schema)
                )
    return kinds


def _count_cel(node: Any) -> int:
    if isinstance(node, dict):
        own = len(node.get("x-kubernetes-validations", []))
        return own + sum(_count_cel(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count_cel(v) for v in node)
    return 0


# --- Kubernetes OpenAPI -> JSON Schema -----------------------------------------------------

_COPIED = {
    "type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum", "minItems",
    "maxItems", "minProperties", "maxProperties", "multipleOf", "uniqueItems", "format",
}  # fmt: skip


def translate(node: Mapping[str, Any]) -> dict[str, Any]:
    """One schema node of the Kubernetes OpenAPI v3 subset as JSON Schema (draft 2020-12).

    Unknown fields are not handled here (see `unknown_fields`), so that each gets its own
    precise message; descriptions, defaults and CEL rules carry no offline check.
    """
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _COPIED}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if node.get(exclusive) is True:  # OpenAPI v3.0 booleans, JSON Schema numbers
            out[exclusive] = out.pop(bound)
    if node.get("x-kubernetes-int-or-string") and "type" not in node:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in node:
        out["properties"] = {k: translate(v) for k, v in node["properties"].items()}
    if "required" in node:
        out["k8sRequired"] = list(node["required"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = translate(node["additionalProperties"])
    if "items" in node:
        out["items"] = translate(node["items"])
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in node:
            out[combinator] = [translate(n) for n in node[combinator]]
    if "not" in node:
        out["not"] = translate(node["not"])
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    elif list_type == "map":
        out["k8sListMapKeys"] = list(node.get("x-kubernetes-list-map-keys", []))
    return out


def _required(validator: Any, names: list[str], instance: Any, schema: Any) -> Iterator[Any]:
    # One error per missing field, pointing AT the field, as the API server reports it.
    if isinstance(instance, dict):
        for name in names:
            if name not in instance:
                yield ValidationError("Required value", path=[name])


def _list_map_keys(validator: Any, keys: list[str], instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, list):
        return
    seen: set[str] = set()
    for index, item in enumerate(instance):
        if not isinstance(item, dict):
            continue
        key = json.dumps([item.get(k) for k in keys])
        if key in seen:
            yield ValidationError(f"Duplicate value: {key}", path=[index])
        seen.add(key)


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)  # fmt: skip
_UUID = re.compile(r"^[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}$")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00").replace(" ", "T"))
    return True


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(date.fromisoformat(value))


@FORMATS.checks("uuid")
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(_UUID.match(value))


@FORMATS.checks("byte", raises=binascii.Error)
def _is_base64(value: object) -> bool:
    return not isinstance(value, str) or base64.b64decode(value, validate=True) is not None


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    {"k8sRequired": _required, "k8sListMapKeys": _list_map_keys},
)


def _validator(crd_schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    schema = translate(crd_schema)
    schema.get("properties", {}).pop(STATUS, None)
    return _Validator(schema, format_checker=FORMATS)  # type: ignore[no-any-return]


# --- checking one object ---------------------------------------------------------------


def field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{part}]"
    return out or "<root>"


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    for name, kind in (("boolean", bool), ("integer", int), ("number", float), ("string", str),
                       ("array", list), ("object", dict)):  # fmt: skip
        if isinstance(value, kind):
            return name
    return "null"


def describe(error: ValidationError) -> str:
    """The error in the API server's words (same field path, similar message)."""
    v: Any = error.validator_value
    value: Any = error.instance
    rule = error.validator
    messages: dict[str, Callable[[], str]] = {
        "type": lambda: f'Invalid value: "{_json_type(value)}": must be of type {v}',
        "enum": lambda: (
            f"Unsupported value: {_shown(value)}: supported values: "
            + ", ".join(json.dumps(x) for x in v)
        ),
        "minimum": lambda: f"Invalid value: {value}: should be greater than or equal to {v}",
        "maximum": lambda: f"Invalid value: {value}: should be less than or equal to {v}",
        "exclusiveMinimum": lambda: f"Invalid value: {value}: should be greater than {v}",
        "exclusiveMaximum": lambda: f"Invalid value: {value}: should be less than {v}",
        "minLength": lambda: f"Invalid value: {_shown(value)}: should be at least {v} chars long",
        "maxLength": lambda: f"Too long: may not be more than {v} characters",
        "pattern": lambda: f"Invalid value: {_shown(value)}: should match '{v}'",
        "format": lambda: f"Invalid value: {_shown(value)}: must be a valid {v}",
        "maxItems": lambda: f"Too many: {len(value)}: must have at most {v} items",
        "minItems": lambda: f"Invalid value: should have at least {v} items",
        "maxProperties": lambda: f"Too many: {len(value)}: must have at most {v} properties",
        "minProperties": lambda: f"Invalid value: should have at least {v} properties",
        "uniqueItems": lambda: "Duplicate value: items must be unique",
        "anyOf": lambda: f"Invalid value: {_shown(value)}: must be an integer or a string",
    }
    make = messages.get(str(rule))
    return make() if make else error.message


def unknown_fields(value: Any, schema: Mapping[str, Any], path: list[Any]) -> Iterator[str]:
    """Paths of fields the schema does not declare (the API server would prune them, and
    with strict field validation, the default of kubectl, refuses the object instead)."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        keep = schema.get("x-kubernetes-preserve-unknown-fields") is True
        for key, item in value.items():
            if key in props:
                yield from unknown_fields(item, props[key], [*path, key])
            elif isinstance(extra, dict):
                yield from unknown_fields(item, extra, [*path, key])
            elif not (keep or extra is True):
                yield field_path([*path, key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from unknown_fields(item, schema["items"], [*path, index])


def prune_nulls(value: Any, schema: Mapping[str, Any]) -> Any:
    """The object without nulls where the schema is not nullable: the API server drops them
    before it validates, so `prompt: null` reads as a missing prompt."""
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else {})
            if item is not None or sub.get("nullable"):
                out[key] = prune_nulls(item, sub)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_nulls(item, schema["items"]) for item in value]
    return value


def check_object(obj: dict[str, Any], kind: Kind) -> list[tuple[str, str]]:
    """(field path, message) for every offline-checkable problem of one object."""
    found: list[tuple[str, str]] = []
    obj = {k: v if k == "metadata" else prune_nulls(v, kind.schema.get("properties", {}).get(k, {}))
           for k, v in obj.items()}  # fmt: skip
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        found.append(("metadata.name", "Required value: name or generateName is required"))
    body = {k: v for k, v in obj.items() if k not in {"apiVersion", "kind", "metadata"}}
    for path in unknown_fields(body, kind.schema, []):
        found.append((path, "unknown field (not declared in the schema; refused by the server)"))
    checked = {k: v for k, v in obj.items() if k != STATUS}
    for error in kind.validator.iter_errors(checked):
        found.append((field_path(error.absolute_path), describe(error)))
    return sorted(set(found))


# --- reading manifests -----------------------------------------------------------------


class _ManifestLoader(yaml.SafeLoader):
    """YAML as kubectl reads it: timestamps stay strings, duplicate keys are an error."""


def _timestamp_as_string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    keys = [loader.construct_object(k, deep=True) for k, _ in node.value]
    for key in keys:
        if keys.count(key) > 1:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)
_ManifestLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def manifest_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES)
        else:
            yield path


def _objects(doc: Any) -> Iterator[Any]:
    if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        yield from doc["items"]
    elif doc is not None:
        yield doc


@dataclass
class Tally:
    files: int = 0
    objects: int = 0
    ignored: int = 0


STDIN = Path("-")


def check_file(file: Path, kinds: dict[tuple[str, str], Kind], tally: Tally) -> list[Problem]:
    """`-` is standard input, named <stdin>: `kubectl kustomize overlay/ | headroom validate -`
    checks what an overlay renders, not only the files it starts from."""
    name = "<stdin>" if file == STDIN else str(file)
    try:
        text = sys.stdin.read() if file == STDIN else file.read_text("utf-8")
        docs = list(yaml.load_all(text, Loader=_ManifestLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        return [Problem(name, "<file>", f"cannot read: {err}")]
    tally.files += 1
    groups = {api.split("/")[0] for api, _ in kinds}
    problems: list[Problem] = []
    for number, obj in enumerate((o for d in docs for o in _objects(d)), start=1):
        if not isinstance(obj, dict):
            continue
        api_version, kind_name = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        raw_meta = obj.get("metadata")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        where = f"{kind_name}/{meta.get('name', '?')}, document {number}"
        kind = kinds.get((api_version, kind_name))
        if kind is None:
            if api_version.split("/")[0] in groups:
                served = ", ".join(sorted(f"{a} {k}" for a, k in kinds))
                problems.append(Problem(name, "kind", f"not served: {api_version} {kind_name} "
                                        f"(served: {served})", where))  # fmt: skip
            else:
                tally.ignored += 1
            continue
        tally.objects += 1
        problems += [Problem(name, p, m, where) for p, m in check_object(obj, kind)]
    return problems


# --- command line -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headroom validate",
        description=(
            "Check Headroom manifests (ClaudeAccount, ClusterClaudeAccount, AgentSession) "
            "offline against the schemas in "
            "the CRDs (crds/): types, required fields, enums, bounds, patterns, and unknown "
            "fields as the API server's strict field validation refuses them. Other kinds are "
            "skipped. Prints `file: path: message` per problem; exit status 1 if any. " + CEL_NOTE
        ),
    )
    parser.add_argument(
        "paths", nargs="+", type=Path,
        help="manifest files or directories; - reads standard input (e.g. kubectl kustomize)",
    )  # fmt: skip
    parser.add_argument(
        "--crds", type=Path, default=None, metavar="DIR",
        help="directory of CRD YAML files (default: the repository's crds/, else the copy "
        "installed with the package)",
    )  # fmt: skip
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    crd_dir = args.crds or default_crd_dir()
    if crd_dir is None or not crd_dir.is_dir():
        print(f"headroom validate: no CRD directory found ({crd_dir})", file=sys.stderr)
        return 2
    kinds = load_kinds(crd_dir)
    if not kinds:
        print(f"headroom validate: no CustomResourceDefinitions in {crd_dir}", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if p != STDIN and not p.exists()]
    if missing:
        print(f"headroom validate: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    tally, problems = Tally(), []
    for file in manifest_files(args.paths):
        problems += check_file(file, kinds, tally)
    for problem in problems:
        print(problem)
    cel = sum(k.cel_rules for k in kinds.values())
    print(
        f"headroom validate: {len(problems)} problem(s) in {tally.objects} object(s) of "
        f"{tally.files} file(s); {tally.ignored} object(s) of other kinds skipped.\n"
        f"{CEL_NOTE} ({cel} such rules in the CRDs.)",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
