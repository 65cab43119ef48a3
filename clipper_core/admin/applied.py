"""Read-your-writes: wait until every live query frontend serves a write.

Each query frontend records in the state store which configuration revision
it serves (:class:`~clipper_core.models.FrontendRecord`, written by
:class:`~clipper_core.stores.presence.FrontendPresence` after it applies a
snapshot, renewed every third of the lease, deleted when it stops).  After a
configuration write the admin service calls :func:`wait_applied` with the
store's revision: it returns as soon as no *live* record (renewed within
the lease) is behind that revision, so a script that registers an
application and then queries it at once is answered, not 404.

- No live record (no query frontend yet, or frontends that predate these
  records): it returns at once.
- A frontend that was killed keeps a live record until its lease runs out;
  until then writes wait for it and then fail, naming it.
- On timeout it raises :class:`~clipper_core.errors.FrontendLagError`
  (HTTP 504): the write itself is done and stays done; the error names each
  lagging frontend and the revision it serves.  504 because the management
  frontend acted as a gateway to the query frontends and they did not
  answer in time, unlike 503 (nothing was done) or 409 (a conflict).

The bound is ``CLIPPER_APPLY_TIMEOUT_S`` (default 5 s; ``0`` turns the wait
off), or the management frontend's ``--apply-timeout``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..errors import FrontendLagError, StoreUnavailableError, ValidationError
from ..interfaces import StateStore
from ..models import REPLICA_LEASE_S, FrontendRecord

#: Default bound, in seconds, on the wait after a configuration write.
DEFAULT_APPLY_TIMEOUT_S = 5.0
#: Environment variable overriding :data:`DEFAULT_APPLY_TIMEOUT_S`.
APPLY_TIMEOUT_ENV = "CLIPPER_APPLY_TIMEOUT_S"
#: First and longest pause between two reads of the frontend records.
FIRST_POLL_S = 0.002
MAX_POLL_S = 0.05


def apply_timeout_from_env(default: float = DEFAULT_APPLY_TIMEOUT_S) -> float:
    """The bound from ``CLIPPER_APPLY_TIMEOUT_S``, else ``default``."""
    raw = os.environ.get(APPLY_TIMEOUT_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValidationError(f"{APPLY_TIMEOUT_ENV}={raw!r}: must be a number of seconds >= 0",
                              argument=APPLY_TIMEOUT_ENV, value=raw)
    return value


def lagging(records: list[FrontendRecord], revision: int, now: float,
            lease_s: float = REPLICA_LEASE_S) -> list[FrontendRecord]:
    """The live records that serve a revision older than ``revision``."""
    return [r for r in records if r.live(now, lease_s) and r.revision < revision]


def wait_applied(store: StateStore, revision: int, *, timeout_s: float,
                 lease_s: float = REPLICA_LEASE_S,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once no live query frontend serves a revision below ``revision``.

    :raises FrontendLagError: after ``timeout_s`` seconds, naming the
        frontends still behind (or the store error that kept us from knowing).
    """
    list_frontends = getattr(store, "list_frontends", None)
    if list_frontends is None or timeout_s <= 0:
        return  # a store without frontend records (third-party): nothing to wait for
    deadline = time.monotonic() + timeout_s
    pause = FIRST_POLL_S
    while True:
        try:
            behind = lagging(list_frontends(), revision, clock(), lease_s)
            error = ""
        except StoreUnavailableError as exc:
            behind, error = [], str(exc)
        if not behind and not error:
            return
        if time.monotonic() >= deadline:
            raise _lag_error(revision, timeout_s, behind, error)
        sleep(pause)
        pause = min(pause * 2, MAX_POLL_S)


def _lag_error(revision: int, timeout_s: float, behind: list[FrontendRecord],
               error: str) -> FrontendLagError:
    done = f"The change is stored (revision {revision})"
    if error:
        return FrontendLagError(
            f"{done}, but whether the query frontends serve it is unknown after "
            f"{timeout_s:g} s: {error}", revision=revision, frontends=[])
    names = ", ".join(f"'{r.frontend_id}' (serving revision {r.revision})" for r in behind)
    return FrontendLagError(
        f"{done}, but query frontend(s) {names} did not apply it within {timeout_s:g} s "
        "and may still serve the previous configuration; check that they can reach the "
        "state store (a killed frontend is forgotten when its lease of "
        f"{REPLICA_LEASE_S:g} s runs out)", revision=revision,
        frontends=[r.frontend_id for r in behind])
