"""One timer heap for the whole operator: "reconcile this key at that time".

Waiting sessions, backoffs and wall expiries all land here, so the operator has no loop per
session: an idle fleet costs one sleeping task, whatever its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from headroom.reconcilers.clock import Clock

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)


class Wakeups:
    def __init__(
        self,
        fire: Callable[[Key], Awaitable[None]],
        clock: Clock,
    ) -> None:
        self._fire = fire
        self._clock = clock
        self._heap: list[tuple[datetime, int, Key]] = []
        self._due: dict[Key, datetime] = {}
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def at(self, key: Key, when: datetime) -> None:
        """Wake `key` at `when`; an earlier pending wake-up for the same key wins."""
        current = self._due.get(key)
        if current is not None and current <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        self._changed.set()

    def cancel(self, key: Key) -> None:
        self._due.pop(key, None)  # the heap entry is skipped lazily when it comes up

    def pending(self, key: Key) -> datetime | None:
        return self._due.get(key)

    async def run(self) -> None:
        while True:
            self._changed.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                when, _, key = heapq.heappop(self._heap)
                if self._due.get(key) != when:
                    continue  # superseded or cancelled
                del self._due[key]
                task = asyncio.create_task(self._fire_safely(key))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            delay = (self._heap[0][0] - now).total_seconds() if self._heap else 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=max(0.0, delay))

    async def _fire_safely(self, key: Key) -> None:
        try:
            await self._fire(key)
        except Exception:  # one failing wake-up must not stop the others
            log.exception("wake-up for %s/%s/%s failed", *key)
