"""Thin Kubernetes I/O for the provisioner: raw JSON in and out (the objects are handled as
the API spells them), and a list-then-watch loop that relists when the watch expires."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
log = logging.getLogger("headroom_dev.provisioner")

try:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
except ImportError as exc:  # the sync client is a dev dependency of a dev tool
    raise SystemExit(
        "headroom-dev provisioner needs the `kubernetes` package: pip install -e ./dev"
    ) from exc

WATCH_SECONDS = 290


class Kube:
    def __init__(self, kubeconfig: Path | None) -> None:
        path = str(kubeconfig) if kubeconfig else None
        self.api = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api(self.api)
        self.storage = client.StorageV1Api(self.api)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        resp = fn(*args, _preload_content=False, **kwargs)
        return json.loads(resp.data) if resp.data else None

    def create(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Create; False when it already exists."""
        try:
            self.call(fn, *args)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def list_watch(
        self, list_fn: Callable[..., Any], stop: threading.Event, **selectors: Any
    ) -> Iterator[tuple[str, Any]]:
        """Yields ("SYNC", [objects]) after every (re)list, then (event type, object)."""
        failures = 0
        while not stop.is_set():
            try:
                listing = self.call(list_fn, **selectors)
                yield "SYNC", listing["items"]
                version = listing["metadata"]["resourceVersion"]
                failures = 0
                while not stop.is_set():
                    version = yield from self._watch_once(list_fn, version, selectors)
                    if version is None:
                        break  # expired: relist
            except Exception as exc:  # the API restarted, a timeout, ...: relist after a pause
                failures += 1
                log.warning("watch %s failed (%s); relisting", list_fn.__name__, _short(exc))
                stop.wait(min(0.5 * failures, 5.0))

    def _watch_once(
        self, list_fn: Callable[..., Any], version: str, selectors: dict[str, Any]
    ) -> Generator[tuple[str, Any], None, str | None]:
        """Yields events until the watch times out (returns the version to resume from)
        or expires (returns None: relist)."""
        resp = list_fn(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(10, WATCH_SECONDS + 30),
            **selectors,
        )
        try:
            for line in _lines(resp):
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    yield event["type"], obj
        finally:
            resp.release_conn()
        return version


def _lines(resp: Any) -> Iterator[str]:
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.decode()


def _short(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


__all__ = ["ApiException", "Kube", "log"]
