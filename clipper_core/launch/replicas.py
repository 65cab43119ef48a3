"""Waiting until new model replicas are connected: one helper for every manager.

A manager starts replicas its own way, then calls :func:`wait_for_replicas`
with a way to read replica records (:func:`store_replicas` when it can open
the cluster's state store, :func:`admin_replicas` through the management
frontend otherwise) and, optionally, a check that fails fast when a replica
it started has crashed.  The records are those query frontends write, one
per (frontend, replica); a record whose frontend stopped renewing it reads
as disconnected through the management frontend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import attrs

from ..errors import ClipperException
from ..models import Replica

log = logging.getLogger("clipper.launch")

ReplicaReader = Callable[[], Iterable[Replica]]


def store_replicas(store: object) -> ReplicaReader:
    """Read replica records from an open state store (``store.list_replicas``);
    a store that cannot be reached reads as no records."""
    list_replicas = store.list_replicas  # type: ignore[attr-defined]

    def read() -> list[Replica]:
        try:
            return list(list_replicas())
        except ClipperException:
            return []

    return read


def admin_replicas(admin_addr: str | Callable[[], str], token: str | None = None, *,
                   timeout: float = 3.0) -> ReplicaReader:
    """Read replica records through the management frontend
    (``POST /admin/get_all_containers`` with ``verbose``).

    ``admin_addr`` is ``host:port[/path]`` or a function returning it (asked
    on each read, so a manager may resolve it lazily).  A frontend that does
    not answer (or an address that cannot be resolved) reads as no records.
    """

    def read() -> list[Replica]:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            addr = admin_addr() if callable(admin_addr) else admin_addr
            resp = httpx.post(f"http://{addr}/admin/get_all_containers", json={"verbose": True},
                              headers=headers, timeout=timeout)
            data = resp.json() if resp.status_code == 200 else []
        except (httpx.HTTPError, ValueError, ClipperException):
            return []
        out = []
        for item in data if isinstance(data, list) else []:
            try:
                out.append(Replica.from_wire(item))
            except (KeyError, TypeError, ValueError, ClipperException):
                continue
        return out

    return read


def _names(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _ids(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class ReplicaWait:
    """What :func:`wait_for_replicas` waits for.

    :param name, version: the model version.
    :param count: at least this many connected replicas per frontend.
    :param replica_ids: these replica ids connected on every frontend.
    :param frontends: the frontend ids that must each see them (records
        read from the state store carry the frontend); None: the records of
        all frontends together (what the management frontend's merged list
        gives).
    """

    name: str
    version: str
    count: int = 0
    replica_ids: frozenset[str] = attrs.field(default=frozenset(), converter=_ids)
    frontends: tuple[str, ...] | None = attrs.field(default=None, converter=_names)

    def seen(self, records: Iterable[Replica]) -> dict[str, set[str]]:
        """frontend id (``""`` for all together) -> connected replica ids of
        this version it sees."""
        out: dict[str, set[str]] = {f: set() for f in self.frontends or ("",)}
        for r in records:
            if r.model_name != self.name or r.model_version != self.version or not r.connected:
                continue
            key = "" if self.frontends is None else r.frontend
            if key in out:
                out[key].add(r.replica_id)
        return out

    def met(self, records: Iterable[Replica]) -> bool:
        """Whether every group sees ``count`` replicas and all of ``replica_ids``."""
        return all(len(ids) >= self.count and self.replica_ids <= ids
                   for ids in self.seen(records).values())


def admin_knows_version(admin_addr: str | Callable[[], str], token: str | None,
                        name: str, version: str, *, timeout: float = 3.0) -> bool:
    """Whether the management frontend has name:version registered
    (``POST /admin/get_model``); True when it cannot tell.

    With CURVE, query frontends admit a replica's key only once its version
    is registered, and ``ClipperConnection.deploy_model`` registers it after
    the manager returns (Clipper's order): a manager waiting for the replicas
    of an unregistered version to connect would wait for nothing.
    """
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        addr = admin_addr() if callable(admin_addr) else admin_addr
        resp = httpx.post(f"http://{addr}/admin/get_model", headers=headers, timeout=timeout,
                          json={"model_name": name, "model_version": version})
        return resp.status_code != 200 or resp.json() is not None
    except (httpx.HTTPError, ValueError, ClipperException):
        return True


def wait_for_replicas(read: ReplicaReader, want: ReplicaWait, *, timeout: float,
                      check: Callable[[], None] | None = None, interval: float = 0.1,
                      progress: Callable[[str], None] | None = None) -> bool:
    """Poll ``read`` until ``want`` is met; return True, or False (logged) at
    ``timeout``.  ``check`` runs before every poll and raises to stop the wait
    (e.g. a replica the manager started has crashed)."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        if want.met(read()):
            if progress is not None:
                progress(f"replicas of {want.name}:{want.version} connected")
            return True
        if time.monotonic() >= deadline:
            log.warning("replicas of %s:%s did not all connect within %.0fs", want.name,
                        want.version, timeout)
            return False
        time.sleep(interval)
