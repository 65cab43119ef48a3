"""SLO deadlines: one loop timer per application answers late queries.

A waiter (the future of one input of one request) that is not answered by
its application's latency SLO is resolved with :data:`TIMEOUT`, and the
request gets the application's default output for that input.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

#: the value of a query's future when its SLO passed first
TIMEOUT: Any = object()


class DeadlineTimer:
    """Answers waiters with :data:`TIMEOUT` at their deadline.

    All queries of one application share one SLO, so their deadlines arrive
    in order: a deque and a single loop timer replace a timer per query.
    """

    __slots__ = ("_loop", "_entries", "_handle")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._entries: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, deadline: float, waiter: asyncio.Future[Any]) -> None:
        entries = self._entries
        # Answers come back roughly in order: drop those already answered
        # from the front, so the deque holds the queries in flight rather than
        # every query of the last SLO (3 s by default: tens of thousands of
        # futures, all for the garbage collector to walk).
        while entries and entries[0][1].done():
            entries.popleft()
        entries.append((deadline, waiter))
        if self._handle is None:
            self._handle = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = self._loop.time()
        entries = self._entries
        while entries:
            deadline, waiter = entries[0]
            if deadline > now:
                self._handle = self._loop.call_at(deadline, self._fire)
                return
            entries.popleft()
            if not waiter.done():
                waiter.set_result(TIMEOUT)
