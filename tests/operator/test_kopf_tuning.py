"""kopf's per-event diff base is switched off only while no handler needs it (a unit test: no
cluster). The benchmark that motivated it is in docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

import kopf

import headroom.controllers.main  # noqa: F401  (registers every Headroom handler)
from headroom.kube import diffbase


def test_headroom_registers_no_handler_that_needs_kopfs_diff_base() -> None:
    # If this fails, a change-detecting handler (on.update, a timer, a daemon, ...) was added:
    # diffbase.install then keeps kopf's default, and the operator pays the per-event copies.
    assert not diffbase.needs_diffbase(kopf.get_default_registry())
    settings = kopf.OperatorSettings()
    assert diffbase.install(settings, kopf.get_default_registry())
    assert isinstance(settings.persistence.diffbase_storage, diffbase.NoDiffBase)


def test_a_change_handler_keeps_kopfs_default_diff_base() -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.update("headroom.dev", "v1alpha1", "agentsessions", registry=registry)
    def on_update(**_: Any) -> None: ...

    settings = kopf.OperatorSettings()
    default = settings.persistence.diffbase_storage
    assert diffbase.needs_diffbase(registry)
    assert not diffbase.install(settings, registry)
    assert settings.persistence.diffbase_storage is default


def test_no_diff_base_builds_nothing_and_remembers_nothing() -> None:
    storage = diffbase.NoDiffBase()
    body = kopf.Body({"metadata": {"name": "x"}, "spec": {"a": 1}, "status": {"b": 2}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
