"""What the API server does around the store for every kind: server-set
metadata on create, Events, graceful deletion (pods, namespaces,
deployments get a ``deletionTimestamp`` first) and the namespace finalizer."""

from __future__ import annotations

import secrets
import uuid

from .resources import BY_PLURAL, NODE_NAME, ApiError, Obj, Resource, now_iso
from .store import Store

__all__ = ["create_object", "delete_object", "finish_namespace", "object_ref", "record_event"]


def create_object(store: Store, plural: str, ns: str, obj: Obj) -> Obj:
    """Store a new object with the metadata the server sets (uid, creation time,
    namespace); 409 if it exists."""
    meta = obj.setdefault("metadata", {})
    meta.setdefault("uid", str(uuid.uuid4()))
    meta.setdefault("creationTimestamp", now_iso())
    if ns:
        meta["namespace"] = ns
    return store.create(plural, ns, obj)


def record_event(store: Store, involved: Obj, reason: str, message: str,
                 type_: str = "Normal", component: str = "kubelet") -> None:
    """Write (or bump the count of) an Event about ``involved``."""
    ns = involved.get("namespace", "default")
    ns_obj = store.get("namespaces", "", ns)
    if ns_obj is None or "deletionTimestamp" in ns_obj["metadata"]:
        return
    for ev in store.list("events", ns):
        if ev["involvedObject"].get("uid") == involved.get("uid") and \
                ev["reason"] == reason and ev["message"] == message:
            store.update("events", ns, ev["metadata"]["name"], lambda e: {
                **e, "count": e.get("count", 1) + 1, "lastTimestamp": now_iso()})
            return
    stamp = now_iso()
    try:
        create_object(store, "events", ns, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{involved['name']}.{secrets.token_hex(8)}"},
            "involvedObject": involved, "reason": reason, "message": message,
            "type": type_, "source": {"component": component, "host": NODE_NAME},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": component, "reportingInstance": NODE_NAME})
    except ApiError:
        pass


def delete_object(store: Store, res: Resource, ns: str, name: str, options: Obj) -> None:
    """Delete at once, or (pods, namespaces, deployments) mark for deletion:
    their controllers finish the job; ``options`` are DeleteOptions."""
    graceful = res.plural in ("pods", "namespaces", "deployments")
    if not graceful:
        store.remove(res.plural, ns, name)
        return
    policy = options.get("propagationPolicy") or "Background"
    grace = options.get("gracePeriodSeconds")

    def mark(obj: Obj) -> Obj | None:
        if "deletionTimestamp" in obj["metadata"]:
            return None
        obj["metadata"]["deletionTimestamp"] = now_iso()
        if grace is not None:
            obj["metadata"]["deletionGracePeriodSeconds"] = int(grace)
        elif res.plural == "pods":
            obj["metadata"]["deletionGracePeriodSeconds"] = \
                obj["spec"].get("terminationGracePeriodSeconds", 30)
        if res.plural == "deployments" and policy == "Foreground":
            obj["metadata"]["finalizers"] = ["foregroundDeletion"]
        if res.plural == "namespaces":
            obj["status"] = {"phase": "Terminating"}
        return obj

    try:
        store.update(res.plural, ns, name, mark)
    except ApiError:
        return
    if res.plural == "deployments" and policy != "Foreground":
        store.remove(res.plural, ns, name)  # pods go by garbage collection


def finish_namespace(store: Store, ns: str) -> None:
    """The namespace controller: delete what a terminating namespace holds, then
    the namespace itself once it is empty."""
    left = 0
    for res in BY_PLURAL.values():
        if not res.namespaced:
            continue
        for obj in store.list(res.plural, ns):
            left += 1
            delete_object(store, res, ns, obj["metadata"]["name"], {})
    if left == 0:
        store.remove("namespaces", "", ns)


def object_ref(obj: Obj) -> Obj:
    """An ObjectReference to ``obj``, as an Event's ``involvedObject``."""
    meta = obj["metadata"]
    return {"kind": obj["kind"], "namespace": meta.get("namespace", ""),
            "name": meta["name"], "uid": meta["uid"], "apiVersion": obj["apiVersion"],
            "resourceVersion": meta["resourceVersion"]}
