"""The object store: objects by kind, namespace and name, one global
``resourceVersion`` counter like etcd's, and the history watches replay."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator

import attrs

from .resources import BY_PLURAL, ApiError, Obj, Resource, not_found
from .selectors import field_matcher, label_matcher

__all__ = ["Store", "WatchEvent", "watch"]


@attrs.frozen
class WatchEvent:
    """One change as a watch reports it: ADDED, MODIFIED or DELETED at ``rv``."""

    rv: int
    type: str
    plural: str
    namespace: str
    obj: Obj


class Store:
    """Objects by (plural, namespace, name); every change bumps one counter."""

    HISTORY = 20000

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.rv = 1
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.history: list[WatchEvent] = []

    def _emit(self, type_: str, plural: str, ns: str, obj: Obj) -> None:
        self.history.append(WatchEvent(self.rv, type_, plural, ns, copy.deepcopy(obj)))
        if len(self.history) > self.HISTORY:
            del self.history[: len(self.history) - self.HISTORY]
        self.cond.notify_all()

    def _bump(self, obj: Obj) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def get(self, plural: str, ns: str, name: str) -> Obj | None:
        with self.cond:
            obj = self.objects.get((plural, ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, plural: str, ns: str | None = None) -> list[Obj]:
        with self.cond:
            return [copy.deepcopy(o) for (p, n, _), o in sorted(self.objects.items())
                    if p == plural and (ns is None or n == ns)]

    def create(self, plural: str, ns: str, obj: Obj) -> Obj:
        with self.cond:
            key = (plural, ns, obj["metadata"]["name"])
            if key in self.objects:
                raise ApiError(409, "AlreadyExists",
                               f'{BY_PLURAL[plural].qualified} "{key[2]}" already exists',
                               {"name": key[2], "group": BY_PLURAL[plural].group,
                                "kind": plural})
            self._bump(obj)
            self.objects[key] = obj
            self._emit("ADDED", plural, ns, obj)
            return copy.deepcopy(obj)

    def update(self, plural: str, ns: str, name: str,
               mutate: Callable[[Obj], Obj | None]) -> Obj:
        """Apply ``mutate`` to a copy of the object; store it if it changed."""
        with self.cond:
            key = (plural, ns, name)
            current = self.objects.get(key)
            if current is None:
                raise not_found(BY_PLURAL[plural], name)
            new = mutate(copy.deepcopy(current))
            if new is None or new == current:
                return copy.deepcopy(current)
            self._bump(new)
            self.objects[key] = new
            self._emit("MODIFIED", plural, ns, new)
            return copy.deepcopy(new)

    def remove(self, plural: str, ns: str, name: str) -> Obj | None:
        with self.cond:
            obj = self.objects.pop((plural, ns, name), None)
            if obj is not None:
                self._bump(obj)
                self._emit("DELETED", plural, ns, obj)
            return obj


def watch(store: Store, res: Resource, ns: str | None, query: dict[str, str],
          stopping: threading.Event) -> Iterator[Obj]:
    """Yield watch events (dicts) until the timeout or ``stopping`` is set: the
    current objects as ADDED when no ``resourceVersion`` is given, else the
    changes after it (410 Expired if the history no longer holds it)."""
    labels = label_matcher(query.get("labelSelector"))
    fields = field_matcher(query.get("fieldSelector"))
    timeout = float(query.get("timeoutSeconds", 1800))
    deadline = time.monotonic() + timeout
    rv = query.get("resourceVersion")

    def wanted(plural: str, obj_ns: str, obj: Obj) -> bool:
        return plural == res.plural and (ns is None or obj_ns == ns) and \
            labels(obj["metadata"].get("labels") or {}) and fields(obj)

    with store.cond:
        if rv in (None, "", "0"):
            initial = [o for o in store.list(res.plural, ns)
                       if wanted(res.plural, o["metadata"].get("namespace", ""), o)]
            last = store.rv
        else:
            last = int(rv)
            oldest = store.history[0].rv if store.history else store.rv
            if last < oldest - 1:
                initial = None
            else:
                initial = []
    if initial is None:
        yield {"type": "ERROR", "object": ApiError(
            410, "Expired", f"too old resource version: {rv} ({oldest})").status()}
        return
    for obj in initial:
        yield {"type": "ADDED", "object": obj}
    while not stopping.is_set():
        with store.cond:
            batch = [e for e in store.history if e.rv > last]
            if not batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                store.cond.wait(min(left, 1.0))
                continue
            last = batch[-1].rv
        for e in batch:
            if wanted(e.plural, e.namespace, e.obj):
                yield {"type": e.type, "object": e.obj}
