"""A container's environment, resolved as a kubelet resolves it: envFrom, then env in order,
`$(VAR)` references expanded against the variables defined before, Secret and ConfigMap
keys read through the API, and the downward-API fields a pod can name."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

JSON = dict[str, Any]
# (kind, namespace, name) -> the object's data as text, or None when it does not exist.
Lookup = Callable[[str, str, str], Mapping[str, str] | None]


class ConfigError(Exception):
    """The container cannot start yet (kubelet: CreateContainerConfigError); retried."""


def expand(text: str, defined: Mapping[str, str]) -> str:
    """Kubernetes' `$(NAME)` syntax: a defined NAME is replaced, an undefined one is kept
    as written, and `$$` is an escaped `$`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(defined[name] if name in defined else text[i : end + 1])
            i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str]:
    return {
        k: base64.b64decode(v).decode(errors="surrogateescape") for k, v in (data or {}).items()
    }


_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_value(pod: JSON, path: str, pod_ip: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": pod_ip,
        "status.hostIPs": pod_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    match = _LABEL_REF.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"fieldRef {path!r} is not supported by the dev executor")


def _not_found(kind: str, name: str) -> str:
    """kubelet's words (its Secret/ConfigMap managers name the kind in lower case)."""
    return f'{kind.lower()} "{name}" not found'


def _key_ref(ref: JSON, kind: str, namespace: str, lookup: Lookup) -> str | None:
    data = lookup(kind, namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise ConfigError(_not_found(kind, ref["name"]))
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
    return data[ref["key"]]


def _env_from(source: JSON, namespace: str, lookup: Lookup) -> dict[str, str]:
    """One envFrom entry: every key of a ConfigMap or Secret, with the entry's prefix."""
    prefix = source.get("prefix", "")
    for kind, obj_kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
        ref = source.get(kind)
        if ref is None:
            continue
        data = lookup(obj_kind, namespace, ref["name"])
        if data is None:
            if ref.get("optional"):
                return {}
            raise ConfigError(_not_found(obj_kind, ref["name"]))
        return {prefix + k: v for k, v in data.items()}
    return {}


def _value(var: JSON, env: dict[str, str], pod: JSON, lookup: Lookup, pod_ip: str) -> str | None:
    """One env entry's value; None when an optional reference names nothing."""
    namespace = pod["metadata"]["namespace"]
    source = var.get("valueFrom")
    if source is None:
        return expand(var.get("value", ""), env)
    if "secretKeyRef" in source:
        return _key_ref(source["secretKeyRef"], "Secret", namespace, lookup)
    if "configMapKeyRef" in source:
        return _key_ref(source["configMapKeyRef"], "ConfigMap", namespace, lookup)
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"], pod_ip)
    raise ConfigError(f"env {var['name']}: {sorted(source)} not supported by the executor")


def resolve(container: JSON, pod: JSON, lookup: Lookup, pod_ip: str) -> dict[str, str]:
    """The container's variables in definition order: envFrom entries (a later one wins),
    then env (which wins over envFrom), each `$(VAR)` expanded against what came before.
    Raises ConfigError when a referenced Secret/ConfigMap or key is missing and not optional."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, namespace, lookup))
    for var in container.get("env") or []:
        value = _value(var, env, pod, lookup, pod_ip)
        if value is not None:
            env[var["name"]] = value
    return env
