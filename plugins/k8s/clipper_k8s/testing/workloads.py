"""Deployments and their controller: ``spec.replicas`` pods per Deployment
(named ``<deployment>-<template hash>-<5 chars>``, owner references, pods of
an old template replaced once the new ones are ready), owned pods deleted
with the Deployment (foreground or background), ``status`` and
``ScalingReplicaSet`` events; and the garbage collector of orphaned pods.
There are no ReplicaSet objects."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import string
import time

from .kubelet import Kubelet
from .objects import create_object, delete_object, object_ref, record_event
from .resources import BY_PLURAL, ApiError, Obj, now_iso
from .store import Store

__all__ = ["DeploymentController", "collect_garbage", "template_hash"]


def template_hash(dep: Obj) -> str:
    """The ``pod-template-hash`` of ``dep``'s current pod template."""
    digest = hashlib.sha256(json.dumps(dep["spec"]["template"], sort_keys=True).encode())
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(digest.hexdigest()[:16], 16)
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(alphabet))
        out += alphabet[r]
    return out


def is_ready(pod: Obj) -> bool:
    """Whether ``pod``'s Ready condition is True."""
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def collect_garbage(store: Store) -> None:
    """Delete pods whose owners are all gone."""
    uids = {d["metadata"]["uid"] for d in store.list("deployments")}
    for pod in store.list("pods"):
        owners = pod["metadata"].get("ownerReferences") or []
        if owners and not any(o.get("uid") in uids for o in owners) and \
                "deletionTimestamp" not in pod["metadata"]:
            delete_object(store, BY_PLURAL["pods"], pod["metadata"]["namespace"],
                          pod["metadata"]["name"], {})


class DeploymentController:
    """Keeps each Deployment's pods and ``status``; availability (``minReadySeconds``)
    is read from the pods' runners in ``kubelet``."""

    def __init__(self, store: Store, kubelet: Kubelet) -> None:
        self.store = store
        self.kubelet = kubelet

    def reconcile_all(self) -> None:
        for dep in self.store.list("deployments"):
            self.reconcile(dep)

    def owned_pods(self, dep: Obj) -> list[Obj]:
        uid = dep["metadata"]["uid"]
        ns = dep["metadata"]["namespace"]
        return [p for p in self.store.list("pods", ns)
                if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])]

    def reconcile(self, dep: Obj) -> None:
        """One pass over ``dep``: finish its deletion, or scale its pods of the
        current template, retire old ones and write its status."""
        meta = dep["metadata"]
        ns, name = meta["namespace"], meta["name"]
        pods = self.owned_pods(dep)
        if "deletionTimestamp" in meta:
            for p in pods:
                if "deletionTimestamp" not in p["metadata"]:
                    delete_object(self.store, BY_PLURAL["pods"], ns, p["metadata"]["name"], {})
            if not pods:
                self.store.remove("deployments", ns, name)
            return
        h = template_hash(dep)
        live = [p for p in pods if "deletionTimestamp" not in p["metadata"]]
        current = [p for p in live if p["metadata"]["labels"].get("pod-template-hash") == h]
        old = [p for p in live if p not in current]
        want = int(dep["spec"].get("replicas", 1))
        self._scale(dep, h, current, want)
        if old and sum(is_ready(p) for p in current) >= want:
            for p in old:
                delete_object(self.store, BY_PLURAL["pods"], ns, p["metadata"]["name"], {})
        pods = [p for p in self.owned_pods(dep) if "deletionTimestamp" not in p["metadata"]]
        status = self._status(dep, h, pods, want)
        if not _same_status(dep.get("status") or {}, status):
            try:
                self.store.update("deployments", ns, name, lambda d: {**d, "status": status})
            except ApiError:
                pass

    def _scale(self, dep: Obj, h: str, current: list[Obj], want: int) -> None:
        """Create or delete pods of the current template until there are ``want``."""
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        if len(current) < want:
            for _ in range(want - len(current)):
                self._create_pod(dep, h)
            record_event(self.store, object_ref(dep), "ScalingReplicaSet",
                         f"Scaled up replica set {name}-{h} to {want}",
                         component="deployment-controller")
        elif len(current) > want:
            # not-ready pods first, then the newest (the real controller's order)
            doomed = sorted(current, key=lambda p: (not is_ready(p),
                                                    p["metadata"]["creationTimestamp"]),
                            reverse=True)[: len(current) - want]
            for p in doomed:
                delete_object(self.store, BY_PLURAL["pods"], ns, p["metadata"]["name"], {})
            record_event(self.store, object_ref(dep), "ScalingReplicaSet",
                         f"Scaled down replica set {name}-{h} to {want}",
                         component="deployment-controller")

    def _status(self, dep: Obj, h: str, pods: list[Obj], want: int) -> Obj:
        """``dep``'s status from its live ``pods`` (zero counts omitted, as the real
        API server does) with the Available and Progressing conditions."""
        meta = dep["metadata"]
        ns, name = meta["namespace"], meta["name"]
        ready = sum(is_ready(p) for p in pods)
        min_ready = float(dep["spec"].get("minReadySeconds", 0))

        def is_available(p: Obj) -> bool:
            runner = self.kubelet.runner(ns, p["metadata"]["name"])
            since = runner.ready_since if runner is not None else None
            return is_ready(p) and since is not None and time.time() - since >= min_ready

        available_count = sum(is_available(p) for p in pods)
        updated = sum(p["metadata"]["labels"].get("pod-template-hash") == h for p in pods)
        status: Obj = {"observedGeneration": meta.get("generation", 1)}
        for key, value in (("replicas", len(pods)), ("updatedReplicas", updated),
                           ("readyReplicas", ready), ("availableReplicas", available_count),
                           ("unavailableReplicas", max(0, want - available_count))):
            if value:  # the real API server omits zero counts
                status[key] = value
        available = available_count >= want
        conds = {c["type"]: c for c in (dep.get("status") or {}).get("conditions") or []}
        stamp = now_iso()
        for type_, ok, reason, msg in (
                ("Available", available,
                 "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                 "Deployment has minimum availability." if available
                 else "Deployment does not have minimum availability."),
                ("Progressing", True,
                 "NewReplicaSetAvailable" if available and updated == want
                 else "ReplicaSetUpdated",
                 f'ReplicaSet "{name}-{h}" ' + ("has successfully progressed."
                                               if available else "is progressing."))):
            prev = conds.get(type_)
            changed = prev is None or prev["status"] != ("True" if ok else "False")
            conds[type_] = {"type": type_, "status": "True" if ok else "False",
                            "reason": reason, "message": msg,
                            "lastUpdateTime": stamp if changed or prev is None
                            else prev["lastUpdateTime"],
                            "lastTransitionTime": stamp if changed or prev is None
                            else prev["lastTransitionTime"]}
        status["conditions"] = [conds["Available"], conds["Progressing"]]
        return status

    def _create_pod(self, dep: Obj, h: str) -> None:
        ns = dep["metadata"]["namespace"]
        template = copy.deepcopy(dep["spec"]["template"])
        suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        meta = template.setdefault("metadata", {})
        meta["name"] = f"{dep['metadata']['name']}-{h}-{suffix}"
        meta["labels"] = {**(meta.get("labels") or {}), "pod-template-hash": h}
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": f"{dep['metadata']['name']}-{h}",
                                    "uid": dep["metadata"]["uid"], "controller": True,
                                    "blockOwnerDeletion": True}]
        spec = template["spec"]
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("serviceAccountName", "default")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
               "status": {"phase": "Pending", "qosClass": "Burstable"}}
        create_object(self.store, "pods", ns, pod)


def _same_status(old: Obj, status: Obj) -> bool:
    """Whether writing ``status`` over ``old`` would change nothing but timestamps."""
    strip = {k: v for k, v in old.items() if k != "conditions"}
    new = {k: v for k, v in status.items() if k != "conditions"}
    return strip == new and [(c["type"], c["status"], c["reason"])
                             for c in old.get("conditions") or []] == \
        [(c["type"], c["status"], c["reason"]) for c in status["conditions"]]
