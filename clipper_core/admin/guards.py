"""Mutual exclusion for the admin rules that read before they write.

Most admin rules need no lock: the store's own writes are atomic and refuse
a duplicate application or model version, a link to a model that does not
exist, a current version that is not registered.  Two rules read several
records and then write one: "an application links at most one model, of
its input type" and "a new version keeps the input type of the apps its
model is linked to".  The store offers no conditional write for them, so
the :class:`~clipper_core.admin.service.AdminService` runs them inside a
*guard*, a lock shared by every management process on the same store:

- ``sqlite://``: an advisory ``flock`` on ``<file>.admin-lock`` beside the
  database (every process using an SQLite file runs on its host);
- ``redis://``, ``rediss://``: a Redis key ``{prefix}:admin-lock`` set with
  ``NX`` and an expiry (a crashed holder frees it after ``LEASE_S``), released
  only by its holder;
- ``memory://``: a lock in the process (a memory store lives in one process);
- a store object with an ``admin_lock()`` method: that context manager, so a
  third-party store can offer its own;
- any other store: a lock in the process, with a warning that several
  management processes on that store could break the two rules.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StoreUnavailableError
from ..interfaces import StateStore

log = logging.getLogger("clipper.admin")

Guard = Callable[[], contextlib.AbstractContextManager[None]]

#: Seconds a Redis admin lock lives without being released (a holder that
#: died frees it after this); far above the few store calls it covers.
LEASE_S = 10.0
#: Seconds a caller waits for a guard before giving up.
WAIT_S = 15.0

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def guard_for(store: StateStore) -> Guard:
    """The guard for ``store``, chosen by its URL scheme (see the module doc)."""
    own = getattr(store, "admin_lock", None)
    if callable(own):
        return own  # type: ignore[no-any-return]
    scheme = store.url.split("://", 1)[0]
    if scheme == "sqlite":
        return _file_guard(store.url)
    if scheme in ("redis", "rediss"):
        return _redis_guard(store.url)
    if scheme != "memory":
        log.warning("state store %s offers no cross-process lock: run one management "
                    "frontend on it, or two concurrent link changes may both succeed",
                    store.url)
    return _thread_guard()


def _thread_guard() -> Guard:
    lock = threading.Lock()

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        if not lock.acquire(timeout=WAIT_S):
            raise StoreUnavailableError("Timed out waiting for another admin change")
        try:
            yield
        finally:
            lock.release()
    return hold


def _file_guard(url: str) -> Guard:
    import fcntl

    from ..stores.sqlite import parse_sqlite_url

    path = f"{parse_sqlite_url(url)[0]}.admin-lock"
    in_process = _thread_guard()  # flock is per open file: keep threads apart too

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        with in_process():
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreUnavailableError(f"Cannot open the admin lock {path}: {exc}",
                                            url=url) from exc
            try:
                deadline = time.monotonic() + WAIT_S
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise StoreUnavailableError(
                                f"Timed out waiting for the admin lock {path}",
                                url=url) from None
                        time.sleep(0.005)
                yield
            finally:
                os.close(fd)  # closing releases the flock
    return hold


def _redis_guard(url: str) -> Guard:
    from ..stores.redis import parse_redis_url

    opts = parse_redis_url(url)
    opts.pop("poll")
    key = f"{opts.pop('prefix')}:admin-lock"
    client: list[Any] = []  # built on first use: importing redis costs 0.2 s
    in_process = _thread_guard()

    def redis_client() -> Any:
        if not client:
            import redis

            client.append(redis.Redis(**opts, decode_responses=True))
        return client[0]

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        with in_process():
            token = uuid.uuid4().hex
            r = redis_client()
            deadline = time.monotonic() + WAIT_S
            try:
                while not r.set(key, token, nx=True, px=int(LEASE_S * 1000)):
                    if time.monotonic() > deadline:
                        raise StoreUnavailableError(
                            f"Timed out waiting for the admin lock {key}", url=url)
                    time.sleep(0.005)
            except StoreUnavailableError:
                raise
            except Exception as exc:  # noqa: BLE001 - any client error: unreachable
                raise StoreUnavailableError(
                    f"The state store is unavailable: cannot take the admin lock {key}: {exc}",
                    url=url) from exc
            try:
                yield
            finally:
                try:
                    r.eval(_RELEASE, 1, key, token)
                except Exception:  # noqa: BLE001 - it expires after LEASE_S anyway
                    log.warning("could not release the admin lock %s; it expires in %.0f s",
                                key, LEASE_S)
    return hold
