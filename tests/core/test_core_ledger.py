"""The ledger: which session holds a slot on which account; `maxSessions` is checked against it."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.core.accounts import Account
from headroom.core.ledger import Ledger

A = ("agents", "alice")
B = ("agents", "bob")
OTHER_NS_A = ("other", "alice")
SHARED = ("", "shared")  # a ClusterClaudeAccount
S1, S2, S3 = ("agents", "s1"), ("agents", "s2"), ("agents", "s3")
NAMES = ("alice", "bob", "cat")


def accounts(namespace: str) -> list[Account]:
    return [Account(namespace, name) for name in NAMES]


def test_empty_ledger() -> None:
    ledger = Ledger()
    assert ledger.active(A) == 0
    assert ledger.holder(S1) is None
    assert ledger.load(accounts("agents")) == {"alice": 0, "bob": 0, "cat": 0}
    assert ledger.sessions_on(A) == []


def test_assign_counts_and_names_the_holder() -> None:
    ledger = Ledger()
    ledger.assign(S1, A)
    ledger.assign(S2, A)
    assert ledger.active(A) == 2
    assert ledger.holder(S1) == A
    assert ledger.sessions_on(A) == [S1, S2]


def test_assigning_again_to_the_same_account_is_idempotent() -> None:
    ledger = Ledger()
    ledger.assign(S1, A)
    ledger.assign(S1, A)
    assert ledger.active(A) == 1
    assert ledger.sessions_on(A) == [S1]


def test_move_frees_the_old_slot() -> None:
    ledger = Ledger()
    ledger.assign(S1, A)
    ledger.assign(S2, A)
    ledger.assign(S1, B)
    assert (ledger.active(A), ledger.active(B)) == (1, 1)
    assert ledger.holder(S1) == B
    assert ledger.sessions_on(A) == [S2]


def test_release_frees_the_slot_and_forgets_the_account() -> None:
    ledger = Ledger()
    ledger.assign(S1, A)
    ledger.assign(S1, None)
    assert ledger.active(A) == 0
    assert ledger.holder(S1) is None
    assert ledger.active(A) == 0
    assert ledger.sessions_on(A) == []


def test_releasing_a_session_that_holds_nothing_is_harmless() -> None:
    ledger = Ledger()
    ledger.assign(S1, A)
    ledger.assign(S3, None)
    assert ledger.load([Account(*A)]) == {"alice": 1}


def test_load_is_per_namespace() -> None:
    ledger = Ledger()
    ledger.assign(S1, A)
    ledger.assign(S2, B)
    ledger.assign(("other", "s1"), OTHER_NS_A)
    ledger.assign(("other", "s2"), OTHER_NS_A)
    assert ledger.load(accounts("agents")) == {"alice": 1, "bob": 1, "cat": 0}
    assert ledger.load(accounts("other")) == {"alice": 2, "bob": 0, "cat": 0}
    assert ledger.load(accounts("nowhere")) == {"alice": 0, "bob": 0, "cat": 0}


def test_a_cluster_account_has_one_count_across_namespaces() -> None:
    ledger = Ledger()
    ledger.assign(S1, SHARED)
    ledger.assign(("other", "s1"), SHARED)
    ledger.assign(("other", "s2"), ("other", "shared"))  # a ClaudeAccount of the same name
    assert ledger.active(SHARED) == 2
    assert ledger.load([Account(*SHARED), Account("other", "shared")]) == {
        "ClusterClaudeAccount/shared": 2,
        "shared": 1,
    }
    assert ledger.sessions_on(SHARED) == [("agents", "s1"), ("other", "s1")]


def test_sessions_on_is_sorted() -> None:
    ledger = Ledger()
    for session in (S3, S1, S2):
        ledger.assign(session, A)
    assert ledger.sessions_on(A) == [S1, S2, S3]


SESSIONS = st.tuples(
    st.sampled_from(["agents", "other"]), st.sampled_from(["s1", "s2", "s3", "s4"])
)
ACCOUNTS = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["agents", "other", ""]), st.sampled_from(list(NAMES))),
)


@settings(max_examples=100, deadline=None, database=None)
@given(ops=st.lists(st.tuples(SESSIONS, ACCOUNTS), max_size=40))
def test_counts_always_equal_the_number_of_holders(
    ops: list[tuple[tuple[str, str], tuple[str, str] | None]],
) -> None:
    ledger = Ledger()
    model: dict[tuple[str, str], tuple[str, str]] = {}
    for session, account in ops:
        ledger.assign(session, account)
        if account is None:
            model.pop(session, None)
        else:
            model[session] = account
        expected = Counter(model.values())
        for key in {a for _, a in ops if a is not None}:
            assert ledger.active(key) == expected[key]
            assert ledger.sessions_on(key) == sorted(s for s, a in model.items() if a == key)
        for namespace in ("agents", "other", ""):
            assert ledger.load(accounts(namespace)) == {
                Account(namespace, name).ref: expected[(namespace, name)] for name in NAMES
            }
        for session in {s for s, _ in ops}:
            assert ledger.holder(session) == model.get(session)
