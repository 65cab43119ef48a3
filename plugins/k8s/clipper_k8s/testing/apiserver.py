"""The API server's verbs on objects: create (with each kind's defaults),
replace (409 Conflict on a stale ``resourceVersion``), patch, delete, the
``/scale`` and ``/log`` subresources, watches, and RBAC denials the test asks
for.  Every body is validated (:mod:`.validation`) before it is stored."""

from __future__ import annotations

import base64
import copy
import random
import string
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from .kubelet import Kubelet
from .objects import create_object, delete_object
from .patches import json_patch, merge_patch
from .resources import BY_PLURAL, RETURNS_DELETED, ApiError, Obj, Resource, invalid, not_found
from .services import ServiceNetwork
from .store import Store, watch
from .validation import validate_body

__all__ = ["ApiServer", "encode_secret", "merge_update"]


class ApiServer:
    """The verbs over ``store``; ``services`` fills a Service's defaults and
    proxies to it, ``kubelet`` has the pods' logs.

    :param k8s_version: schema version bodies are validated against.
    :param validate: whether bodies are validated at all.
    """

    def __init__(self, store: Store, services: ServiceNetwork, kubelet: Kubelet, *,
                 k8s_version: str, validate: bool, stopping: threading.Event) -> None:
        self.store = store
        self.services = services
        self.kubelet = kubelet
        self.k8s_version = k8s_version
        self.validate = validate
        self._stopping = stopping
        #: every (verb, path, body) received with a body, in order: the bodies as sent
        self.received: list[tuple[str, str, Obj]] = []
        #: (verb, resource) pairs the caller may not use, e.g. ("get", "namespaces")
        self.forbidden: set[tuple[str, str]] = set()

    def forbid(self, verb: str, resource: str) -> None:
        """Deny ``verb`` (get, list, watch, create, update, patch, delete,
        deletecollection) on ``resource`` (``deployments``, ``pods/log``...) with
        a 403, as RBAC does for a service account lacking that rule."""
        self.forbidden.add((verb, resource))

    def authorize(self, method: str, res: Resource, ns: str | None, name: str | None,
                  sub: str | None, query: Mapping[str, str]) -> None:
        """403 Forbidden (the real message) if :meth:`forbid` denied this request."""
        if not self.forbidden:
            return
        if method == "GET":
            verb = "get" if name else ("watch" if query.get("watch") in ("true", "1")
                                       else "list")
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                    "DELETE": "delete" if name else "deletecollection"}[method]
        resource = f"{res.plural}/{sub}" if sub else res.plural
        if (verb, resource) not in self.forbidden:
            return
        who = 'User "system:serviceaccount:default:clipper-manager"'
        scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
        target = f'{res.qualified} "{name}"' if name else res.qualified
        raise ApiError(403, "Forbidden", f'{target} is forbidden: {who} cannot {verb} resource '
                       f'"{resource}" in API group "{res.group}" {scope}',
                       {"name": name or "", "group": res.group, "kind": res.plural})

    def check_namespace(self, res: Resource, ns: str) -> None:
        if res.namespaced:
            obj = self.store.get("namespaces", "", ns)
            if obj is None:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                               {"name": ns, "kind": "namespaces"})
            if "deletionTimestamp" in obj["metadata"]:
                raise ApiError(403, "Forbidden", f"unable to create new content in namespace "
                               f"{ns} because it is being terminated",
                               {"name": ns, "kind": "namespaces"})

    def validate_body(self, res: Resource, body: Obj, *, name: str | None = None,
                      kind: str | None = None, api_version: str | None = None) -> None:
        """422 unless ``body`` is a valid ``res`` (schema + API server rules)."""
        validate_body(res, body, k8s_version=self.k8s_version, check_schema=self.validate,
                      name=name, kind=kind, api_version=api_version)

    def create(self, res: Resource, ns: str, body: Obj) -> Obj:
        self.check_namespace(res, ns)
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        if not meta.get("name"):
            raise invalid(res, "", [("metadata.name", "Required value: name or generateName "
                                     "is required")])
        self.validate_body(res, body)
        if res.namespaced and meta.get("namespace") not in (None, ns):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                           "match the namespace sent on the request")
        body["apiVersion"], body["kind"] = res.api_version, res.kind
        for key in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
            meta.pop(key, None)
        if res.kind == "Deployment":
            meta["generation"] = 1
            body["spec"].setdefault("replicas", 1)
            body["spec"].setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": "25%", "maxUnavailable": "25%"}})
            body["spec"].setdefault("revisionHistoryLimit", 10)
            body["spec"].setdefault("progressDeadlineSeconds", 600)
            body["status"] = {}
        elif res.kind == "Service":
            self.services.default_service(ns, body)
        elif res.kind == "Pod":
            body["spec"].setdefault("restartPolicy", "Always")
            body["status"] = {"phase": "Pending"}
        elif res.kind == "Namespace":
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
        elif res.kind == "Secret":
            encode_secret(body)
        return create_object(self.store, res.plural, ns if res.namespaced else "", body)

    def replace(self, res: Resource, ns: str, name: str, body: Obj) -> Obj:
        self.validate_body(res, body, name=name)
        if (body.get("metadata") or {}).get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the name "
                           "on the URL")

        def mutate(current: Obj) -> Obj:
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on '
                               f'{res.qualified} "{name}": the object has been modified; please '
                               "apply your changes to the latest version and try again",
                               {"name": name, "group": res.group, "kind": res.plural})
            return merge_update(res, current, body)

        return self.store.update(res.plural, ns, name, mutate)

    def patch(self, res: Resource, ns: str, name: str, body: Any, content_type: str) -> Obj:
        current = self.store.get(res.plural, ns, name)
        if current is None:
            raise not_found(res, name)
        if "json-patch" in content_type:
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "json patch body must be a list")
            patched = json_patch(current, body)
        elif "apply-patch" in content_type:
            raise ApiError(415, "UnsupportedMediaType", "server-side apply is not supported "
                           "by the fake API server")
        else:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "merge patch body must be an object")
            patched = merge_patch(current, body)
        self.received.append(("PATCH-RESULT", f"{res.plural}/{ns}/{name}", patched))
        clean = {k: v for k, v in patched.items() if k != "status"}
        self.validate_body(res, clean, name=name)
        return self.store.update(res.plural, ns, name,
                                 lambda cur: merge_update(res, cur, patched))

    def scale(self, ns: str, name: str, verb: str, body: Any = None,
              content_type: str = "") -> Obj:
        res = BY_PLURAL["deployments"]
        dep = self.store.get("deployments", ns, name)
        if dep is None:
            raise not_found(res, name)

        def as_scale(d: Obj) -> Obj:
            sel = ",".join(f"{k}={v}" for k, v in
                           (d["spec"]["selector"].get("matchLabels") or {}).items())
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {"name": name, "namespace": ns, "uid": d["metadata"]["uid"],
                                 "resourceVersion": d["metadata"]["resourceVersion"],
                                 "creationTimestamp": d["metadata"]["creationTimestamp"]},
                    "spec": {"replicas": d["spec"].get("replicas", 1)},
                    "status": {"replicas": (d.get("status") or {}).get("replicas", 0),
                               "selector": sel}}

        if verb == "GET":
            return as_scale(dep)
        current = as_scale(dep)
        if verb == "PATCH":
            if "json-patch" in content_type:
                new = json_patch(current, body)
            else:
                new = merge_patch(current, body)
        else:
            new = body
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != dep["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on '
                               f'deployments.apps "{name}": the object has been modified; '
                               "please apply your changes to the latest version and try again")
        self.validate_body(res, {k: v for k, v in new.items() if k != "status"}, name=name,
                           kind="Scale", api_version="autoscaling/v1")
        replicas = (new.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(res, name, [("spec.replicas", f"Invalid value: {replicas!r}: must be "
                                       "greater than or equal to 0")])

        def mutate(d: Obj) -> Obj:
            if d["spec"].get("replicas") == replicas:
                return d
            d["spec"]["replicas"] = replicas
            d["metadata"]["generation"] = d["metadata"].get("generation", 1) + 1
            return d

        return as_scale(self.store.update("deployments", ns, name, mutate))

    def delete(self, res: Resource, ns: str, name: str, options: Obj) -> Obj:
        obj = self.store.get(res.plural, ns, name)
        if obj is None:
            raise not_found(res, name)
        delete_object(self.store, res, ns, name, options)
        if res.plural in RETURNS_DELETED:
            # these registries answer with the object (pods: with deletionTimestamp)
            return self.store.get(res.plural, ns, name) or obj
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": res.group, "kind": res.plural,
                            "uid": obj["metadata"]["uid"]}}

    def log(self, ns: str, name: str, query: dict[str, str]) -> str:
        pod = self.store.get("pods", ns, name)
        if pod is None:
            raise not_found(BY_PLURAL["pods"], name)
        runner = self.kubelet.runner(ns, name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container")
        if container is None:
            if len(names) > 1:
                raise ApiError(400, "BadRequest", f"a container name must be specified for "
                               f"pod {name}, choose one of: {names}")
            container = names[0]
        if container not in names:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod "
                           f"{name}")
        run = next((r for r in runner.containers if r.name == container), None) \
            if runner else None
        if run is None or run.process is None:
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is '
                           "waiting to start: " + (run.pull_error if run and run.pull_error
                                                   else "ContainerCreating"))
        path = run.process.log_path
        if query.get("previous") in ("true", "1"):
            prev = run.process.previous_log_path
            if prev is None:
                raise ApiError(400, "BadRequest", f'previous terminated container "{container}" '
                               f'in pod "{name}" not found')
            path = prev
        text = path.read_text(errors="replace") if path.exists() else ""
        if "tailLines" in query:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(query["tailLines"]):]) if int(query["tailLines"]) else ""
        return text

    def watch(self, res: Resource, ns: str | None, query: dict[str, str]) -> Iterator[Obj]:
        """Watch events (dicts) until the timeout or the server stops."""
        return watch(self.store, res, ns, query, self._stopping)

    def proxy(self, ns: str, target: str, rest: str, method: str, headers: Mapping[str, str],
              body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        """Forward an HTTP request to a service, as the API server's proxy does."""
        return self.services.proxy(ns, target, rest, method, headers, body)


def encode_secret(body: Obj) -> None:
    """``stringData`` is write-only: merged into ``data`` base64-encoded."""
    string_data = body.pop("stringData", None) or {}
    data = body.setdefault("data", {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    body.setdefault("type", "Opaque")


def merge_update(res: Resource, current: Obj, new: Obj) -> Obj:
    """``new`` as stored over ``current``: what the server owns (uid, status,
    ClusterIP...) is kept, a Deployment's spec change bumps its generation."""
    out = copy.deepcopy(new)
    out["apiVersion"], out["kind"] = res.api_version, res.kind
    if res.kind == "Secret":
        encode_secret(out)
    meta = out.setdefault("metadata", {})
    for key in ("uid", "creationTimestamp", "namespace", "generation",
                "deletionTimestamp", "ownerReferences"):
        if key in current["metadata"] and key not in ("ownerReferences",):
            meta[key] = current["metadata"][key]
    meta["name"] = current["metadata"]["name"]
    if "status" in current:
        out["status"] = current["status"]
    if res.kind == "Service":
        for key in ("clusterIP", "clusterIPs"):
            if key in current["spec"]:
                out["spec"][key] = current["spec"][key]
    if res.kind == "Deployment" and out.get("spec") != current.get("spec"):
        meta["generation"] = current["metadata"].get("generation", 1) + 1
    return out
