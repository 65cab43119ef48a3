"""The one replica merge: what the query frontends report and what the
container manager runs, one entry per (model, version, replica id).

Several query frontends may each write a record of the same replica; the
management frontend merges them (connected wins, then the newest record,
and a record whose frontend stopped renewing it within the lease reads as
disconnected).  ``ClipperConnection`` merges that list with the manager's
:class:`~clipper_core.models.ReplicaStatus` list through the same function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ..models import InputType, Replica, ReplicaStatus

Key = tuple[str, str, str]


@attrs.frozen(kw_only=True)
class ReplicaView:
    """A replica as the frontends (``record``) and the manager (``status``) see it."""

    model_name: str
    model_version: str
    replica_id: str
    #: The merged frontend record; None when only the manager knows the replica.
    record: Replica | None = None
    #: The manager's view; None when no manager runs it (or none was asked).
    status: ReplicaStatus | None = None
    #: Input type for a replica no frontend reports (from its model version).
    input_type: InputType | None = None

    @property
    def key(self) -> Key:
        return (self.model_name, self.model_version, self.replica_id)

    @property
    def connected(self) -> bool:
        return self.record is not None and self.record.connected

    def to_wire(self) -> dict[str, Any]:
        """The replica info dict of ``get_all_model_replicas(verbose=True)``."""
        if self.record is not None:
            out = self.record.to_wire()
        else:
            kind = self.input_type.label if self.input_type is not None else ""
            out = {"model_name": self.model_name, "model_version": self.model_version,
                   "model_replica_id": self.replica_id, "input_type": kind,
                   "connected": False, "is_connected": False, "frontend": "",
                   "last_seen": 0.0}
        s = self.status
        out.update(status=s.status if s else None, restarts=s.restarts if s else 0,
                   handle=s.handle if s else "")
        return out


def _better(r: Replica, seen: Replica) -> bool:
    if r.connected != seen.connected:
        return r.connected
    return r.last_seen > seen.last_seen


def merge_replicas(records: Iterable[Replica], statuses: Iterable[ReplicaStatus] = (), *,
                   now: float | None = None,
                   input_types: Mapping[tuple[str, str], InputType] | None = None,
                   ) -> list[ReplicaView]:
    """One view per (model, version, replica id), sorted by that key.

    :param records: frontend records, possibly several per replica.
    :param statuses: the container manager's replicas.
    :param now: when given, a connected record not renewed within its lease
        (:meth:`Replica.live`) counts as disconnected; leave it out for
        records that were judged already (the management frontend's answer).
    :param input_types: ``(name, version) -> input type`` for replicas only
        the manager knows.
    """
    best: dict[Key, Replica] = {}
    for r in records:
        if now is not None and r.connected and not r.live(now):
            r = attrs.evolve(r, connected=False)  # its frontend stopped renewing it
        key = (r.model_name, r.model_version, r.replica_id)
        seen = best.get(key)
        if seen is None or _better(r, seen):
            best[key] = r
    views: dict[Key, ReplicaView] = {
        k: ReplicaView(model_name=k[0], model_version=k[1], replica_id=k[2], record=r)
        for k, r in best.items()}
    kinds = input_types or {}
    for s in statuses:
        key = (s.model_name, s.model_version, s.replica_id)
        known = views.get(key)
        views[key] = (attrs.evolve(known, status=s) if known is not None else ReplicaView(
            model_name=s.model_name, model_version=s.model_version, replica_id=s.replica_id,
            status=s, input_type=kinds.get((s.model_name, s.model_version))))
    return [views[k] for k in sorted(views)]
