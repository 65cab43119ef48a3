"""A query frontend's presence in the state store: the revision it serves.

After a query frontend applies a configuration snapshot it writes a
:class:`~clipper_core.models.FrontendRecord` saying which revision it now
serves; it renews the record with its replica records (every third of
:data:`~clipper_core.models.REPLICA_LEASE_S`) and deletes it when it stops.
The admin service reads these records to return from a configuration write
only once every live frontend serves it (read-your-writes, see
:mod:`clipper_core.admin.applied`).

:class:`FrontendPresence` keeps the two steps apart so that records never
go backwards: :meth:`~FrontendPresence.note` is called on the frontend's
event loop, in the order snapshots are applied, and only remembers the
revision; :meth:`~FrontendPresence.report` (a blocking store call, run in an
executor thread) writes whatever revision is newest when it runs, under a
lock, so two reports finishing out of order cannot leave an older revision
in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..interfaces import StateStore
from ..models import FrontendRecord

log = logging.getLogger("clipper.query")


class FrontendPresence:
    """Writes, renews and deletes one query frontend's record.

    :param store: the cluster's state store.
    :param frontend_id: the frontend's id (``--frontend-id``).
    :param clock: the wall clock the record's ``last_seen`` is taken from.
    """

    def __init__(self, store: StateStore, frontend_id: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.frontend_id = frontend_id
        self._clock = clock
        self._lock = threading.Lock()
        #: The revision the frontend serves (None until it applied one).
        self.revision: int | None = None
        #: The last write failed; :meth:`renew` (or the next report) redoes it.
        self.stale = False

    def note(self, revision: int) -> None:
        """The frontend now serves ``revision`` (call in the order applied)."""
        self.revision = revision

    def report(self) -> None:
        """Write the newest noted revision (blocking; never raises)."""
        with self._lock:
            revision = self.revision
            if revision is None:
                return
            record = FrontendRecord(frontend_id=self.frontend_id, revision=revision,
                                    last_seen=self._clock())
            try:
                self.store.put_frontend(record)
            except Exception as exc:  # noqa: BLE001 - the store is down: renew redoes it
                if not self.stale:
                    log.warning("cannot record the served revision %d yet: %s", revision, exc)
                self.stale = True
            else:
                self.stale = False

    def renew(self) -> None:
        """Renew the lease of the record (the same write as :meth:`report`)."""
        self.report()

    def forget(self) -> None:
        """Delete the record (at shut-down): this frontend serves nothing now."""
        with self._lock:
            self.revision = None
            try:
                self.store.delete_frontend(self.frontend_id)
            except Exception as exc:  # noqa: BLE001 - the record expires with its lease
                log.warning("cannot delete this frontend's record (it expires with its "
                            "lease): %s", exc)
