"""The operator's state reaches kopf's handlers through the memo, never module globals: one
memo per process, built from the flags, carrying the one Runtime to handlers and filters."""

from __future__ import annotations

import argparse
import asyncio
import copy
import types
from typing import Any

import pytest
from tests.reconcilers.conftest import NS, World

from headroom.controllers import accounts, main, memo, peering, sessions
from headroom.controllers.memo import OperatorMemo, kopf_indexes
from headroom.reconcilers.runtime import Runtime, Settings


def test_every_watched_object_shares_the_one_memo() -> None:
    """kopf copies the memo for each object it sees; the copy must carry the same Runtime
    even for an object seen before the startup handler set it."""
    built = OperatorMemo(Settings(), "host/1/abc")
    assert copy.copy(built) is built


def test_the_memo_comes_from_the_flags() -> None:
    standalone = main.memo_from(main.parse_args(["-n", NS, "--max-failures", "5"]))
    assert standalone.peering is None
    assert standalone.settings.retry.max_failures == 5
    assert standalone.runtime is None  # the startup handler connects and builds it
    args = main.parse_args(["-n", NS, "--peering", "ha", "--priority", "7"])
    replica = main.memo_from(args, [NS])
    assert replica.peering == memo.Peering("ha", 7, False, 60, (NS,))


def test_an_unstarted_operator_has_no_runtime_to_act_with() -> None:
    with pytest.raises(RuntimeError):
        OperatorMemo(Settings(), "id").acting()


async def test_the_first_handler_starts_the_background_jobs_once(world: World) -> None:
    runs: list[Runtime] = []

    async def job(rt: Runtime) -> None:
        runs.append(rt)

    world.rt.background_jobs = [job]
    built = OperatorMemo(Settings(), "id", runtime=world.rt)
    assert built.acting() is world.rt
    assert built.acting() is world.rt
    await asyncio.sleep(0)
    assert runs == [world.rt]


def test_the_secret_filter_reads_the_runtime_from_the_memo(world: World) -> None:
    unstarted = OperatorMemo(Settings(), "id")
    assert not accounts._referenced(namespace=NS, name="alice", memo=unstarted)
    started = OperatorMemo(Settings(), "id", runtime=world.rt)
    assert not accounts._referenced(namespace=NS, name="alice", memo=started)
    world.rt.secret_refs[(NS, "alice")].add((NS, "alice"))
    assert accounts._referenced(namespace=NS, name="alice", memo=started)


def test_indexes_are_found_under_their_functions_names() -> None:
    account_index: dict[str, Any] = {}
    cluster_index: dict[str, Any] = {}
    namespace_index: dict[str, Any] = {}
    pod_index: dict[str, Any] = {}
    claim_index: dict[str, Any] = {}
    kwargs = {
        accounts.claudeaccounts_index.__name__: account_index,
        accounts.clusterclaudeaccounts_index.__name__: cluster_index,
        accounts.namespace_labels_index.__name__: namespace_index,
        sessions.workspace_claims_index.__name__: claim_index,
        "memo": None,
    }
    found = kopf_indexes(kwargs, pod_index)
    assert found.accounts is account_index
    assert found.cluster_accounts is cluster_index
    assert found.namespaces is namespace_index
    assert found.pods is pod_index
    assert found.claims is claim_index


@pytest.mark.parametrize("module", [main, sessions, accounts, peering, memo])
def test_controllers_keep_no_state_in_module_globals(module: types.ModuleType) -> None:
    mutable = (Runtime, Settings, OperatorMemo, argparse.Namespace, list, set, dict)
    state = {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("__") and isinstance(value, mutable)
    }
    assert state == {}
