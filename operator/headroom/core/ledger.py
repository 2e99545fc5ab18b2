"""Which session holds a slot on which account: the one count `maxSessions` is checked against.

Pure bookkeeping. The operator seeds it from live pods at start-up and updates it in the same
critical section as placement, so a burst of sessions cannot overshoot `maxSessions`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from headroom.core.accounts import Account, AccountKey

SessionKey = tuple[str, str]  # (namespace, session name)


class Ledger:
    def __init__(self) -> None:
        self._holder: dict[SessionKey, AccountKey] = {}
        self._count: Counter[AccountKey] = Counter()

    def assign(self, session: SessionKey, account: AccountKey | None) -> None:
        """Record that `session` holds a slot on `account` (None: holds nothing)."""
        previous = self._holder.pop(session, None)
        if previous is not None:
            self._count[previous] -= 1
            if self._count[previous] <= 0:
                del self._count[previous]
        if account is not None:
            self._holder[session] = account
            self._count[account] += 1

    def holder(self, session: SessionKey) -> AccountKey | None:
        return self._holder.get(session)

    def active(self, account: AccountKey) -> int:
        return self._count.get(account, 0)

    def load(self, accounts: Iterable[Account]) -> dict[str, int]:
        """Active sessions per account ref, for the accounts one session may use. A cluster
        account's count spans every namespace that uses it: one account, one count."""
        return {a.ref: self._count.get(a.key, 0) for a in accounts}

    def sessions_on(self, account: AccountKey) -> list[SessionKey]:
        return sorted(s for s, a in self._holder.items() if a == account)
