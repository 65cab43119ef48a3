"""Replica records: what the state store says about this frontend's replicas.

When a replica connects or is lost the frontend writes or deletes its
record, so ``get_all_model_replicas`` and the managers see it.  Records carry
a lease (``REPLICA_LEASE_S``): the frontend renews them every third of it,
and readers report a record not renewed in time as disconnected, so the
replicas of a killed frontend stop showing as connected.  A failed write
marks the records stale; they are resynchronised as soon as the store
answers again.  Every store call runs in the loop's executor.

The frontend's own record (the configuration revision it serves, for the
admin service's read-your-writes) is written by a
:class:`~clipper_core.stores.presence.FrontendPresence` after each applied
snapshot, renewed and deleted here with the replica records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clipper_core import plugins
from clipper_core.interfaces import StateStore
from clipper_core.models import REPLICA_LEASE_S
from clipper_core.stores.presence import FrontendPresence

from .replicas import ReplicaConn, ReplicaPool

log = logging.getLogger("clipper.query")


class ReplicaRecords:
    """Writes, renews and cleans up the records of ``pool``'s replicas."""

    def __init__(self, store: StateStore, frontend_id: str, pool: ReplicaPool, *,
                 lease_s: float = REPLICA_LEASE_S,
                 presence: FrontendPresence | None = None) -> None:
        self.store = store
        self.presence = presence
        self.frontend_id = frontend_id
        self._pool = pool
        self.lease_s = lease_s
        self.stale = False
        self._renewed = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        # One writer thread: a replica's record is written and deleted in the
        # order it connected and left (two threads could delete it first).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="replica-records")

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def changed(self, replica: ReplicaConn, connected: bool, reason: str) -> None:
        """A replica connected or was lost (on the loop): record it, fire the hook."""
        record = replica.to_model(self.frontend_id, connected)
        loop = self._loop
        assert loop is not None
        if connected:
            loop.run_in_executor(self._writer, self._write, self.store.put_replica, record)
            plugins.notify("clipper_replica_connected", replica=record)
        else:
            loop.run_in_executor(self._writer, self._write, self.store.delete_replica,
                                 record.model_name, record.model_version,
                                 record.replica_id, self.frontend_id)
            plugins.notify("clipper_replica_lost", replica=record, reason=reason)

    def applied(self, revision: int) -> None:
        """The frontend serves configuration ``revision`` now (on the loop): record it."""
        if self.presence is not None and self._loop is not None:
            self.presence.note(revision)
            self._loop.run_in_executor(None, self.presence.report)

    async def tick(self) -> None:
        """One janitor round: resynchronise after lost writes, renew leases."""
        loop = self._loop
        assert loop is not None
        if self.stale:
            await loop.run_in_executor(None, self._sync)
        if self.presence is not None and self.presence.stale:
            await loop.run_in_executor(None, self.presence.report)
        if time.monotonic() - self._renewed >= self.lease_s / 3:
            self._renewed = time.monotonic()
            await loop.run_in_executor(None, self._renew)

    async def forget_all(self, timeout_s: float = 3.0) -> None:
        """Delete this frontend's records (at shut-down): its replicas are no
        longer served here, so they must not stay "connected"."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(loop.run_in_executor(self._writer, self._forget), timeout_s)

    # -- executor threads ------------------------------------------------------
    def _write(self, write: Callable[..., Any], *args: Any) -> None:
        try:
            write(*args)
        except Exception as exc:
            self.stale = True
            log.warning("state store write failed (redone when the store is back): %s", exc)

    def _connected(self) -> list[ReplicaConn]:
        return list(self._pool.replicas.values())

    def _renew(self) -> None:
        if self.presence is not None:
            self.presence.renew()
        replicas = self._pool.replicas
        for replica in self._connected():
            if replicas.get(replica.identity) is not replica:
                continue  # lost meanwhile (a record left by this race expires with its lease)
            try:
                self.store.put_replica(replica.to_model(self.frontend_id, True))
            except Exception as exc:
                self.stale = True
                log.warning("renewing replica records failed (redone when the store is "
                            "back): %s", exc)
                return

    def _sync(self) -> None:
        """Make this frontend's records match the replicas connected now."""
        store = self.store
        self.stale = False

        def connected() -> dict[tuple[str, str, str], ReplicaConn]:
            return {(r.model_name, r.model_version, r.replica_id): r for r in self._connected()}
        try:
            for rec in store.list_replicas():
                key = (rec.model_name, rec.model_version, rec.replica_id)
                if rec.frontend == self.frontend_id and key not in connected():
                    store.delete_replica(*key, self.frontend_id)
            for conn in connected().values():
                store.put_replica(conn.to_model(self.frontend_id, True))
        except Exception as exc:
            self.stale = True
            log.warning("cannot resynchronise replica records yet: %s", exc)
        else:
            log.info("replica records resynchronised with the store")

    def _forget(self) -> None:
        if self.presence is not None:
            self.presence.forget()
        for rec in self.store.list_replicas():
            if rec.frontend == self.frontend_id:
                self.store.delete_replica(rec.model_name, rec.model_version, rec.replica_id,
                                          rec.frontend)
