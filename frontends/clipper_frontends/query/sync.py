"""Configuration sync: the frontend's snapshot of the state store.

The configuration (apps, links, current versions) is an in-memory snapshot
of the store, replaced when the store's revision changes: the store's watch
notifies at once, and a janitor polls the revision every second as a safety
net for lost notifications.  If the store goes away the frontend keeps
serving the snapshot it has and reports the store as unhealthy.  If it comes
back at an older revision (a Redis restarted without its data), the frontend
keeps serving the last good configuration and ``/readyz`` fails, saying why,
until the store is restored to that revision or newer.  Store calls
run in the loop's executor, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from clipper_core.interfaces import StateStore
from clipper_core.models import Snapshot

log = logging.getLogger("clipper.query")


class ConfigSync:
    """Keeps ``apply(snapshot)`` called with the store's latest configuration.

    :param every: ``every()`` is awaited once per janitor round, after the
        revision check (the replica records' lease renewal hangs off it).
    :param applied: ``applied(revision)`` is called after each snapshot is
        applied (the frontend's record of the revision it serves).
    """

    def __init__(self, store: StateStore, apply: Callable[[Snapshot], None], *,
                 period_s: float = 1.0,
                 every: Callable[[], Awaitable[None]] | None = None,
                 applied: Callable[[int], object] | None = None) -> None:
        self.store = store
        self._apply = apply
        self._every = every
        self._applied = applied
        self.period_s = period_s
        self.snapshot: Snapshot | None = None
        self.healthy = False
        self.error = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._unwatch: Callable[[], Any] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the configuration once, then follow the store."""
        loop = self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        await self.reload()

        def changed(_revision: int) -> None:
            loop.call_soon_threadsafe(self._schedule_reload)

        try:
            self._unwatch = await loop.run_in_executor(None, self.store.watch, changed)
        except Exception as exc:  # the janitor keeps polling instead
            log.warning("cannot watch the store (%s); polling it", exc)
        self._task = loop.create_task(self._janitor())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._unwatch is not None:
            with contextlib.suppress(Exception):
                self._unwatch()

    def _schedule_reload(self) -> None:
        assert self._loop is not None
        self._loop.create_task(self.reload())

    async def _janitor(self) -> None:
        """Safety net for lost notifications, and the store's health check."""
        assert self._loop is not None
        while True:
            await asyncio.sleep(self.period_s)
            try:
                rev = await self._loop.run_in_executor(None, self.store.revision)
            except Exception as exc:
                self.mark_unhealthy(exc)
                continue
            if self._every is not None:
                await self._every()
            if not self.healthy or self.snapshot is None or rev != self.snapshot.revision:
                await self.reload()

    def mark_unhealthy(self, exc: Exception) -> None:
        if self.healthy:
            log.warning("state store unavailable, serving the last configuration: %s", exc)
        self.healthy = False
        self.error = str(exc)

    async def reload(self) -> None:
        """Load a new snapshot from the store and apply it if it changed."""
        assert self._loop is not None and self._lock is not None
        async with self._lock:
            try:
                snap = await self._loop.run_in_executor(None, self.store.snapshot)
            except Exception as exc:
                self.mark_unhealthy(exc)
                return
            if self.snapshot is not None and snap.revision < self.snapshot.revision:
                self._regressed(snap)
                return
            if not self.healthy:
                log.info("state store reachable (revision %d)", snap.revision)
            self.healthy = True
            self.error = ""
            if self.snapshot is not None and snap.revision == self.snapshot.revision:
                return
            self.snapshot = snap
            self._apply(snap)
            if self._applied is not None:
                self._applied(snap.revision)

    def _regressed(self, snap: Snapshot) -> None:
        """The store answers with an older configuration than the one served
        (a store restarted without its data): keep serving the last good one
        and say so, rather than forget every application."""
        assert self.snapshot is not None
        error = (f"the state store went back from configuration revision "
                 f"{self.snapshot.revision} to {snap.revision} ({len(snap.applications)} "
                 f"applications, {len(snap.models)} model versions): it lost data; serving "
                 f"the last good configuration until it is restored from the management "
                 f"frontend's backup")
        if self.error != error:
            log.error("%s", error)
        self.healthy = False
        self.error = error

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the frontend is ready to serve, and why (``/readyz``)."""
        ready = self.healthy and self.snapshot is not None
        body: dict[str, Any] = {"ready": ready, "store_healthy": self.healthy,
                                "configuration_loaded": self.snapshot is not None}
        if self.error:
            body["error"] = self.error
        return ready, body
