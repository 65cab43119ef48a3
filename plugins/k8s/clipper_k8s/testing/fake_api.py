"""A fake Kubernetes API server that runs pods as local processes.

No cluster can run where the tests run, so the Kubernetes container manager
is tested against this: an HTTP server in a thread that speaks the real REST
paths, verbs, status codes and ``Status`` bodies of the kinds the manager
uses, with real controllers in miniature:

- **API**: ``/api/v1`` (namespaces, nodes, pods incl. ``/log``, services incl.
  ``/proxy``, endpoints, events, serviceaccounts, secrets), ``/apis/apps/v1``
  (deployments incl. ``/scale`` and ``/status``),
  ``/apis/rbac.authorization.k8s.io/v1`` (roles, rolebindings).  GET (get,
  list, ``?watch=true`` streams of ADDED/MODIFIED/DELETED, label and field
  selectors), POST (404 for a missing namespace, 409 AlreadyExists), PUT (409
  Conflict on a stale ``resourceVersion``), PATCH (JSON patch, merge patch;
  strategic merge patch is treated as a merge patch), DELETE (also on a
  collection), one global ``resourceVersion`` counter like etcd's.
- **Validation**: every create/replace/patch body is validated against the
  real OpenAPI schemas with ``kubernetes-validate`` (strict: unknown fields
  are errors) plus the name, label and selector rules the real API server
  enforces; invalid bodies get a 422 ``Invalid`` Status.  Every body received
  is kept in :attr:`FakeKubernetes.received`.
- **RBAC, in part**: :meth:`FakeKubernetes.forbid` denies a verb on a
  resource with the real 403 Status; there is no authentication.
- **Not modelled**:
  ReplicaSet objects, Endpoints maintenance (stored as sent), list paging
  (``limit``/``continue`` are ignored), server-side apply, admission, resource
  limits, scheduling (one node, ``fake-node``).
- **Deployment controller**: keeps ``spec.replicas`` pods per Deployment
  (named ``<deployment>-<template hash>-<5 chars>``, owner references, pods
  of an old template replaced), deletes owned pods with the Deployment
  (foreground or background), writes ``status`` and ``ScalingReplicaSet``
  events.  There are no ReplicaSet objects.
- **Kubelet**: each pod container runs as a local process
  (:mod:`clipper_core.testing.process_pods`).  The image table the test provides says
  what an image is; an unknown image never pulls (``ErrImagePull`` then
  ``ImagePullBackOff``, with ``Failed`` events).  ``python`` in a command is
  this interpreter.  Each declared container port gets its own local port
  (``--port``-style arguments and ``*PORT`` variables naming it are rewritten).  Readiness and liveness probes
  (httpGet, tcpSocket) run against the local ports; a failed liveness probe or
  an exit restarts the container (``restartCount``, ``CrashLoopBackOff``).
  Pod status has phase, conditions and container statuses; events as a real
  kubelet writes them (Scheduled, Pulled, Created, Started, Unhealthy, BackOff,
  Killing).  Time is compressed by ``time_scale`` (probe delays, grace periods).
- **Networking**: every ClusterIP service port is a local TCP forwarder (like
  kube-proxy) to its ready pods; NodePorts listen on the node's addresses
  (InternalIP 127.0.0.1, ExternalIP 127.0.0.2) at a real port in
  30000-32767; a LoadBalancer gets an ingress IP in 127.0.0.0/8 listening on
  the service port.  "DNS": when a container starts, ``<service>:<port>``
  (short or fully qualified) in its env and args becomes the forwarder's
  ``127.0.0.1:<port>``.  Because one name cannot resolve to several local
  ports, a model container whose ``CLIPPER_IP`` names a headless service gets
  ``CLIPPER_FRONTENDS`` listing every ready pod behind it.  The API server's
  service proxy (``/api/v1/namespaces/NS/services/NAME:PORT/proxy/...``) works
  like ``kubectl proxy`` with it.

Usage::

    with FakeKubernetes({"clipper/core:0.4.0": ImageSpec.python()}, workdir=tmp) as kube:
        api = kubernetes.client.CoreV1Api(kube.api_client())
"""

from __future__ import annotations

import copy
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import secrets
import socket
import string
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from clipper_core.testing.process_pods import (
    ContainerProcess,
    ImageSpec,
    ImageTable,
    allocate_port,
    expand_vars,
    http_probe,
    local_argv,
    rewrite_port_env,
    rewrite_ports,
    tcp_probe,
)

__all__ = ["FakeKubernetes", "ImageSpec", "ImageTable", "Resource", "RESOURCES"]

Obj = dict[str, Any]
NODE_NAME = "fake-node"
NODE_INTERNAL_IP = "127.0.0.1"
NODE_EXTERNAL_IP = "127.0.0.2"


def now_iso(t: float | None = None) -> str:
    """RFC 3339 time as the API server writes it."""
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------
# Resources and errors
# ---------------------------------------------------------------------------


@attrs.frozen
class Resource:
    plural: str
    kind: str
    group: str  # "" for core
    version: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` as used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: dict[tuple[str, str], Resource] = {
    (r.api_version, r.plural): r for r in (
        Resource("namespaces", "Namespace", "", "v1", False),
        Resource("nodes", "Node", "", "v1", False),
        Resource("pods", "Pod", "", "v1", True),
        Resource("services", "Service", "", "v1", True),
        Resource("endpoints", "Endpoints", "", "v1", True),
        Resource("events", "Event", "", "v1", True),
        Resource("serviceaccounts", "ServiceAccount", "", "v1", True),
        Resource("secrets", "Secret", "", "v1", True),
        Resource("configmaps", "ConfigMap", "", "v1", True),
        Resource("deployments", "Deployment", "apps", "v1", True),
        Resource("roles", "Role", "rbac.authorization.k8s.io", "v1", True),
        Resource("rolebindings", "RoleBinding", "rbac.authorization.k8s.io", "v1", True),
    )
}
_BY_PLURAL = {r.plural: r for r in RESOURCES.values()}
#: Kinds whose DELETE answers with the object rather than a Status (as the real
#: API server's registries do).
_RETURNS_DELETED = ("services", "pods", "serviceaccounts")


class ApiError(Exception):
    """An error answered as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str,
                 details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                     "status": "Failure", "message": self.message, "reason": self.reason,
                     "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural})


def invalid(res: Resource, name: str, causes: list[tuple[str, str]]) -> ApiError:
    text = ", ".join(f"{field}: {msg}" for field, msg in causes)
    kind = f"{res.kind}.{res.group}" if res.group else res.kind
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}',
                    {"name": name, "group": res.group, "kind": res.kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                                for f, m in causes]})


# ---------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def label_matcher(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate for a label selector string (=, ==, !=, in, notin, exists, !exists)."""
    if not selector:
        return lambda _labels: True
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for req in _split_top(selector):
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", req)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                tests.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", req)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                tests.append(lambda lb, k=key, v=value: lb.get(k) == v)
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", req)
        if m:
            neg, key = m.groups()
            tests.append(lambda lb, k=key, n=bool(neg): (k in lb) != n)
            continue
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {req!r}")
    return lambda labels: all(t(labels) for t in tests)


def _field(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_matcher(selector: str | None) -> Callable[[Obj], bool]:
    """A predicate for a field selector (``metadata.name=x,involvedObject.kind!=Pod``)."""
    if not selector:
        return lambda _obj: True
    tests = []
    for req in _split_top(selector):
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", req)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {req!r}")
        path, op, value = m.groups()
        if op == "!=":
            tests.append(lambda o, p=path, v=value: str(_field(o, p) or "") != v)
        else:
            tests.append(lambda o, p=path, v=value: str(_field(o, p) or "") == v)
    return lambda obj: all(t(obj) for t in tests)


def selector_labels(selector: Obj | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate for a LabelSelector object (matchLabels + matchExpressions)."""
    if not selector:
        return lambda _labels: False
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        parts.append({"In": f"{key} in ({','.join(values)})",
                      "NotIn": f"{key} notin ({','.join(values)})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return label_matcher(",".join(parts))


# ---------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 JSON patch (add, replace, remove, test)."""
    doc = copy.deepcopy(target)
    for op in ops:
        path = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = path[-1] if path else ""
        kind = op["op"]
        if kind == "test":
            value = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if value != op["value"]:
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, op["value"])
                else:
                    parent[idx] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
        else:
            raise ApiError(400, "BadRequest", f"unsupported JSON patch op {kind!r}")
    return doc


# ---------------------------------------------------------------------------
# Validation: the real schemas plus the rules the API server adds
# ---------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def _check_name(res: Resource, name: str) -> str | None:
    if res.kind in ("Service",):
        if len(name) > 63 or not _DNS_1035.match(name):
            return ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                    "'-', start with an alphabetic character, and end with an alphanumeric "
                    "character (at most 63 characters)")
    elif res.kind in ("Namespace", "Deployment"):
        # Deployments are subdomains in the schema, but their pods' hostnames
        # must be labels; the API server rejects names longer than 63 in practice.
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric "
                    "character (at most 63 characters)")
    elif res.kind in ("Role", "RoleBinding"):
        if not name or "/" in name or "%" in name or name in (".", ".."):
            return "may not contain '/' or '%'"
    else:
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric "
                    "character")
    return None


def _check_labels(labels: Any, field: str) -> list[tuple[str, str]]:
    causes = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or \
                len(name) > 63 or not _LABEL_NAME.match(name):
            causes.append((f"{field}", f"Invalid value: {key!r}: name part must consist of "
                           "alphanumeric characters, '-', '_' or '.' (at most 63)"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append((f"{field}", f"Invalid value: {value!r}: a valid label must be an "
                           "empty string or consist of alphanumeric characters, '-', '_' or "
                           "'.' (at most 63)"))
    return causes


def _check_pod_spec(spec: Obj, field: str) -> list[tuple[str, str]]:
    causes = []
    names = set()
    for i, c in enumerate(spec.get("containers") or []):
        name = c.get("name", "")
        if not _DNS_LABEL.match(name) or len(name) > 63:
            causes.append((f"{field}.containers[{i}].name", f"Invalid value: {name!r}"))
        if name in names:
            causes.append((f"{field}.containers[{i}].name", f"Duplicate value: {name!r}"))
        names.add(name)
        if not c.get("image"):
            causes.append((f"{field}.containers[{i}].image", "Required value"))
        for j, e in enumerate(c.get("env") or []):
            if not _ENV_NAME.match(e.get("name", "")):
                causes.append((f"{field}.containers[{i}].env[{j}].name",
                               f"Invalid value: {e.get('name')!r}"))
        for j, p in enumerate(c.get("ports") or []):
            if not 0 < int(p.get("containerPort", 0)) < 65536:
                causes.append((f"{field}.containers[{i}].ports[{j}].containerPort",
                               "Invalid value: must be between 1 and 65535"))
            if "name" in p and (len(p["name"]) > 15 or not _DNS_LABEL.match(p["name"])):
                causes.append((f"{field}.containers[{i}].ports[{j}].name",
                               f"Invalid value: {p['name']!r}: must be an IANA_SVC_NAME"))
    if not spec.get("containers"):
        causes.append((f"{field}.containers", "Required value"))
    return causes


def semantic_causes(res: Resource, obj: Obj) -> list[tuple[str, str]]:
    """The API server's validation beyond the OpenAPI schema, for the kinds used."""
    causes: list[tuple[str, str]] = []
    meta = obj.get("metadata") or {}
    causes += _check_labels(meta.get("labels"), "metadata.labels")
    if res.kind == "Deployment":
        spec = obj.get("spec") or {}
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        causes += _check_labels(tmpl_labels, "spec.template.metadata.labels")
        if not spec.get("selector"):
            causes.append(("spec.selector", "Required value"))
        elif not selector_labels(spec["selector"])(tmpl_labels):
            causes.append(("spec.template.metadata.labels",
                           f"Invalid value: {tmpl_labels!r}: `selector` does not match "
                           "template `labels`"))
        if int(spec.get("replicas", 1)) < 0:
            causes.append(("spec.replicas", "Invalid value: must be greater than or equal to 0"))
        causes += _check_pod_spec((spec.get("template") or {}).get("spec") or {},
                                  "spec.template.spec")
    elif res.kind == "Pod":
        causes += _check_pod_spec(obj.get("spec") or {}, "spec")
    elif res.kind == "Service":
        spec = obj.get("spec") or {}
        ports = spec.get("ports") or []
        if not ports and spec.get("clusterIP") != "None":
            causes.append(("spec.ports", "Required value"))
        seen = set()
        for i, p in enumerate(ports):
            if len(ports) > 1 and not p.get("name"):
                causes.append((f"spec.ports[{i}].name", "Required value"))
            if p.get("name") in seen:
                causes.append((f"spec.ports[{i}].name", f"Duplicate value: {p.get('name')!r}"))
            seen.add(p.get("name"))
            node_port = p.get("nodePort")
            if node_port is not None and not 30000 <= int(node_port) <= 32767:
                causes.append((f"spec.ports[{i}].nodePort",
                               f"Invalid value: {node_port}: provided port is not in the "
                               "valid range. The range of valid ports is 30000-32767"))
        if spec.get("clusterIP") == "None" and spec.get("type") in ("NodePort", "LoadBalancer"):
            causes.append(("spec.clusterIP",
                           "Invalid value: \"None\": may not be set to 'None' for "
                           f"{spec.get('type')} services"))
    return causes


# ---------------------------------------------------------------------------
# The object store, with resourceVersions and a watch history
# ---------------------------------------------------------------------------


@attrs.frozen
class WatchEvent:
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
                               f'{_BY_PLURAL[plural].qualified} "{key[2]}" already exists',
                               {"name": key[2], "group": _BY_PLURAL[plural].group,
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
                raise not_found(_BY_PLURAL[plural], name)
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


# ---------------------------------------------------------------------------
# Networking: forwarders standing in for kube-proxy
# ---------------------------------------------------------------------------


class TcpForwarder:
    """Listens on (host, port) and pipes each connection to one of ``backends()``."""

    def __init__(self, host: str, port: int, backends: Callable[[], list[int]]) -> None:
        self.host, self.port, self.backends = host, port, backends
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(64)
        self._closed = False
        self._rr = 0
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name=f"fwd-{port}").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        ports = self.backends()
        upstream = None
        for _ in range(len(ports)):
            port = ports[self._rr % len(ports)]
            self._rr += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
                upstream.settimeout(None)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        with self._lock:
            self._conns |= {client, upstream}

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (dst, src):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        t.start()
        pipe(client, upstream)
        t.join()
        for s in (client, upstream):
            s.close()
        with self._lock:
            self._conns -= {client, upstream}

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._lock:
            for s in list(self._conns):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# ---------------------------------------------------------------------------
# Kubelet: one runner per pod
# ---------------------------------------------------------------------------


@attrs.define
class ContainerRun:
    name: str
    image: str
    spec: Obj
    process: ContainerProcess | None = None
    #: declared containerPort -> local port
    ports: dict[int, int] = attrs.Factory(dict)
    #: port name -> containerPort
    port_names: dict[str, int] = attrs.Factory(dict)
    ready: bool = False
    been_ready: bool = False
    liveness_failures: int = 0
    readiness_failures: int = 0
    #: probe kind -> monotonic time it is next due
    next_probe: dict[str, float] = attrs.Factory(dict)
    pull_error: str | None = None
    start_error: str | None = None


class PodRunner:
    """Runs one pod's containers and keeps its status in the store."""

    def __init__(self, kube: FakeKubernetes, pod: Obj) -> None:
        self.kube = kube
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.containers = [ContainerRun(c["name"], c.get("image", ""), c)
                           for c in pod["spec"]["containers"]]
        for run in self.containers:
            for p in run.spec.get("ports") or []:
                run.ports[int(p["containerPort"])] = allocate_port()
                if p.get("name"):
                    run.port_names[p["name"]] = int(p["containerPort"])
        self.created = time.time()
        #: when the pod last became Ready (None while not ready)
        self.ready_since: float | None = None
        self._stop = threading.Event()
        self._changed = threading.Event()
        self.stopped = threading.Event()
        self.log_dir = kube.workdir / "pods" / self.ns / self.name
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"pod-{self.name}")

    # -- what the network sees -----------------------------------------------
    @property
    def ready(self) -> bool:
        return all(c.ready for c in self.containers) and not self._stop.is_set()

    def local_port(self, target: int | str) -> int | None:
        """The local port serving container port ``target`` (number or name)."""
        for run in self.containers:
            port = run.port_names.get(target) if isinstance(target, str) else target
            if port is not None and port in run.ports:
                return run.ports[port]
        return None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def _event(self, reason: str, message: str, type_: str = "Normal",
               field_path: str | None = None) -> None:
        self.kube.record_event(
            {"kind": "Pod", "namespace": self.ns, "name": self.name, "uid": self.uid,
             "apiVersion": "v1", **({"fieldPath": field_path} if field_path else {})},
            reason, message, type_, component="kubelet")

    def _run(self) -> None:
        try:
            self._event("Scheduled", f"Successfully assigned {self.ns}/{self.name} to "
                        f"{NODE_NAME}", field_path=None)
            self.kube.store.update("pods", self.ns, self.name, self._bind)
            for run in self.containers:
                self._start_container(run)
            self._write_status()
            while not self._stop.is_set():
                for run in self.containers:
                    if run.process is None:
                        self._start_container(run)
                    else:
                        self._probe(run)
                self._write_status()
                self._changed.wait(self.kube.probe_interval)
                self._changed.clear()
        finally:
            self._shutdown()

    def _bind(self, pod: Obj) -> Obj:
        pod["spec"]["nodeName"] = NODE_NAME
        return pod

    def _start_container(self, run: ContainerRun) -> None:
        image_spec = self.kube.images.resolve(run.image)
        if image_spec is None:
            if run.pull_error is None:
                self._event("Pulling", f'Pulling image "{run.image}"',
                            field_path=f"spec.containers{{{run.name}}}")
                run.pull_error = "ErrImagePull"
                self._event("Failed", f'Failed to pull image "{run.image}": rpc error: code = '
                            f'NotFound desc = failed to pull and unpack image "{run.image}": '
                            "not found (fake API server: image not in the test's image table)",
                            "Warning", field_path=f"spec.containers{{{run.name}}}")
            elif run.pull_error == "ErrImagePull" and time.time() - self.created > 1.0:
                run.pull_error = "ImagePullBackOff"
                self._event("BackOff", f'Back-off pulling image "{run.image}"', "Warning",
                            field_path=f"spec.containers{{{run.name}}}")
            return
        run.pull_error = None
        fp = f"spec.containers{{{run.name}}}"
        self._event("Pulled", f'Container image "{run.image}" already present on machine',
                    field_path=fp)
        try:
            argv, env, cwd = self._command(run, image_spec)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            run.start_error = str(exc)
            self._event("Failed", f"Error: {exc}", "Warning", field_path=fp)
            run.process = ContainerProcess(run.name, ["false"], {}, self.log_dir, restart="Never")
            return
        self._event("Created", f"Created container {run.name}", field_path=fp)
        restart = self.pod["spec"].get("restartPolicy", "Always")
        run.process = ContainerProcess(
            run.name, argv, env, self.log_dir, cwd=cwd, restart=restart,
            backoff=self.kube.restart_backoff, max_backoff=self.kube.restart_backoff * 8,
            on_change=lambda proc, r=run: self._on_process_change(r, proc))
        run.process.start()
        self._event("Started", f"Started container {run.name}", field_path=fp)

    def _on_process_change(self, run: ContainerRun, proc: ContainerProcess) -> None:
        state = proc.state
        if state.state != "running":
            run.ready = False
        if state.state == "waiting" and state.reason == "CrashLoopBackOff":
            self._event("BackOff", f"Back-off restarting failed container {run.name} in pod "
                        f"{self.name}_{self.ns}({self.uid})", "Warning",
                        field_path=f"spec.containers{{{run.name}}}")
        self._changed.set()

    def _command(self, run: ContainerRun, image: ImageSpec) -> tuple[list[str], dict[str, str],
                                                                      str | None]:
        spec = run.spec
        env: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                               "HOME": os.environ.get("HOME", "/tmp"),
                               "HOSTNAME": self.name, "PYTHONUNBUFFERED": "1",
                               "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                               "KUBERNETES_SERVICE_PORT": str(self.kube.port)}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        for item in spec.get("env") or []:
            if "value" in item:
                env[item["name"]] = expand_vars(str(item["value"]), env)
            elif "valueFrom" in item:
                env[item["name"]] = self._value_from(item["valueFrom"])
        if image.model_dir is not None:
            env["CLIPPER_MODEL_PATH"] = image.model_dir
        command = spec.get("command") or list(image.entrypoint)
        args = spec.get("args") or ([] if spec.get("command") else [])
        argv = [expand_vars(a, env) for a in [*command, *args]]
        argv = local_argv(argv)
        argv = rewrite_ports(argv, run.ports)
        env = rewrite_port_env(env, run.ports)
        env = {k: self.kube.resolve_services(v, self.ns) for k, v in env.items()}
        argv = [argv[0], *[self.kube.resolve_services(a, self.ns) for a in argv[1:]]]
        self.kube.resolve_clipper_frontends(env, self.ns)
        return argv, env, image.cwd

    def _value_from(self, source: Obj) -> str:
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            values = {"metadata.name": self.name, "metadata.namespace": self.ns,
                      "metadata.uid": self.uid, "status.podIP": "127.0.0.1",
                      "status.hostIP": NODE_INTERNAL_IP, "spec.nodeName": NODE_NAME,
                      "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName",
                                                                      "default")}
            if path not in values:
                m = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
                if m:
                    return (self.pod["metadata"].get("labels") or {}).get(m.group(1), "")
                raise KeyError(f"fieldRef {path} is not supported by the fake")
            return values[path]
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            ref = source.get("secretKeyRef") or source["configMapKeyRef"]
            plural = "secrets" if "secretKeyRef" in source else "configmaps"
            obj = self.kube.store.get(plural, self.ns, ref["name"])
            if obj is None:
                raise KeyError(f'{plural[:-1]} "{ref["name"]}" not found')
            if plural == "secrets":
                import base64
                data = obj.get("data") or {}
                if ref["key"] in data:
                    return base64.b64decode(data[ref["key"]]).decode()
                return (obj.get("stringData") or {})[ref["key"]]
            return (obj.get("data") or {})[ref["key"]]
        raise KeyError(f"unsupported valueFrom {sorted(source)}")

    def _due(self, run: ContainerRun, kind: str, probe: Obj) -> bool:
        """Whether ``kind``'s probe is due (``periodSeconds`` in compressed time)."""
        now = time.monotonic()
        period = max(self.kube.probe_interval,
                     float(probe.get("periodSeconds", 10)) * self.kube.time_scale)
        if now < run.next_probe.get(kind, 0.0):
            return False
        run.next_probe[kind] = now + period
        return True

    def _probe(self, run: ContainerRun) -> None:
        proc = run.process
        assert proc is not None
        state = proc.state
        if state.state != "running" or state.started_at is None:
            run.ready = False
            run.readiness_failures = 0
            run.next_probe.clear()
            return
        age = time.time() - state.started_at
        scale = self.kube.time_scale
        fp = f"spec.containers{{{run.name}}}"
        readiness = run.spec.get("readinessProbe")
        if readiness is None:
            run.ready = True
        elif age < readiness.get("initialDelaySeconds", 0) * scale:
            run.ready = False
        elif self._due(run, "readiness", readiness):
            ok, message = self._check(run, readiness)
            if ok:
                run.readiness_failures = 0
                run.ready = True
            else:
                run.readiness_failures += 1
                # a ready container turns unready after failureThreshold failures
                if not run.ready or \
                        run.readiness_failures >= readiness.get("failureThreshold", 3):
                    run.ready = False
                if run.been_ready or run.readiness_failures % 10 == 5:
                    self._event("Unhealthy", f"Readiness probe failed: {message}", "Warning",
                                field_path=fp)
        run.been_ready = run.been_ready or run.ready
        liveness = run.spec.get("livenessProbe")
        # Liveness counts only once the container was ready (a startup probe in
        # effect): compressed time would otherwise kill slow starters.
        if liveness is not None and run.been_ready and \
                age >= liveness.get("initialDelaySeconds", 0) * scale and \
                self._due(run, "liveness", liveness):
            alive, message = self._check(run, liveness)
            if alive:
                run.liveness_failures = 0
            else:
                run.liveness_failures += 1
                self._event("Unhealthy", f"Liveness probe failed: {message}", "Warning",
                            field_path=fp)
                if run.liveness_failures >= liveness.get("failureThreshold", 3):
                    run.liveness_failures = 0
                    run.been_ready = False
                    self._event("Killing", f"Container {run.name} failed liveness probe, "
                                "will be restarted", field_path=fp)
                    threading.Thread(target=proc.kill_and_restart, daemon=True).start()

    def _check(self, run: ContainerRun, probe: Obj) -> tuple[bool, str]:
        timeout = min(float(probe.get("timeoutSeconds", 1)), 2.0)
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = self.local_port(get["port"])
            if port is None:
                return False, f"unknown port {get['port']!r}"
            return http_probe(port, get.get("path", "/"), timeout=timeout)
        if "tcpSocket" in probe:
            port = self.local_port(probe["tcpSocket"]["port"])
            if port is None:
                return False, f"unknown port {probe['tcpSocket']['port']!r}"
            return tcp_probe(port, timeout=timeout)
        if "exec" in probe:
            import subprocess
            try:
                argv = local_argv(probe["exec"]["command"])
                done = subprocess.run(argv, capture_output=True, timeout=5, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return False, str(exc)
            return done.returncode == 0, done.stdout.decode(errors="replace")[-200:]
        return True, ""

    # -- status ----------------------------------------------------------------
    def status(self) -> Obj:
        statuses = []
        all_running = bool(self.containers)
        for run in self.containers:
            cs: Obj = {"name": run.name, "image": run.image, "imageID": "", "ready": run.ready,
                       "restartCount": 0, "started": False}
            proc = run.process
            if run.pull_error:
                all_running = False
                cs["state"] = {"waiting": {"reason": run.pull_error, "message":
                                           f'Back-off pulling image "{run.image}"'}}
            elif run.start_error:
                all_running = False
                cs["state"] = {"waiting": {"reason": "CreateContainerError",
                                           "message": run.start_error}}
            elif proc is None:
                all_running = False
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            else:
                st = proc.state
                cs["restartCount"] = proc.restart_count
                cs["imageID"] = f"fake://{run.image}"
                cs["containerID"] = f"fake://{self.uid}-{run.name}"
                if st.state == "running":
                    cs["started"] = True
                    cs["state"] = {"running": {"startedAt": now_iso(st.started_at)}}
                elif st.state == "terminated":
                    all_running = False
                    cs["state"] = {"terminated": {"exitCode": st.exit_code or 0,
                                                  "reason": st.reason,
                                                  "startedAt": now_iso(st.started_at),
                                                  "finishedAt": now_iso(st.finished_at)}}
                else:
                    all_running = False
                    cs["state"] = {"waiting": {"reason": st.reason}}
                last = proc.last_state
                if last is not None and proc.restart_count:
                    cs["lastState"] = {"terminated": {
                        "exitCode": last.exit_code or 0, "reason": last.reason,
                        "startedAt": now_iso(last.started_at),
                        "finishedAt": now_iso(last.finished_at)}}
            statuses.append(cs)
        ready = self.ready and all_running
        if ready and self.ready_since is None:
            self.ready_since = time.time()
        elif not ready:
            self.ready_since = None
        created = now_iso(self.created)
        started_any = any(r.process is not None for r in self.containers)
        phase = "Running" if started_any and not any(r.pull_error for r in self.containers) \
            else "Pending"
        if not started_any:
            phase = "Pending"

        def cond(type_: str, ok: bool) -> Obj:
            since = created
            if type_ in ("Ready", "ContainersReady") and self.ready_since is not None:
                since = now_iso(self.ready_since)
            return {"type": type_, "status": "True" if ok else "False",
                    "lastTransitionTime": since, "lastProbeTime": None,
                    **({} if ok else {"reason": "ContainersNotReady"}
                       if type_ in ("Ready", "ContainersReady") else {})}

        return {"phase": phase, "hostIP": NODE_INTERNAL_IP, "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}], "startTime": created, "qosClass": "Burstable",
                "conditions": [cond("PodScheduled", True), cond("Initialized", True),
                               cond("ContainersReady", ready), cond("Ready", ready)],
                "containerStatuses": statuses}

    def _write_status(self) -> None:
        if self._stop.is_set():
            return
        status = self.status()
        try:
            self.kube.store.update("pods", self.ns, self.name,
                                   lambda pod: None if pod.get("status") == status
                                   or "deletionTimestamp" in pod["metadata"]
                                   else {**pod, "status": status})
        except ApiError:
            pass

    def _shutdown(self) -> None:
        pod = self.kube.store.get("pods", self.ns, self.name) or self.pod
        grace = pod["metadata"].get("deletionGracePeriodSeconds",
                                    pod["spec"].get("terminationGracePeriodSeconds", 30))
        grace = max(0.2, min(float(grace) * self.kube.time_scale, 5.0)) if grace else 0.05
        for run in self.containers:
            if run.process is not None:
                if run.process.state.state == "running":
                    self._event("Killing", f"Stopping container {run.name}",
                                field_path=f"spec.containers{{{run.name}}}")
                run.process.stop(grace)
        self.stopped.set()


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class FakeKubernetes:
    """The fake API server, its controllers and its pods.  See the module docstring.

    :param images: image name -> :class:`ImageSpec` (or an :class:`ImageTable`).
    :param workdir: where pod logs go.
    :param k8s_version: schema version to validate against (default: the
        newest ``kubernetes-validate`` knows).
    :param time_scale: factor applied to probe delays and grace periods.
    """

    def __init__(self, images: Mapping[str, ImageSpec] | ImageTable, *,
                 workdir: str | os.PathLike[str], k8s_version: str | None = None,
                 validate: bool = True, time_scale: float = 0.1,
                 probe_interval: float = 0.2, restart_backoff: float = 0.5) -> None:
        import kubernetes_validate

        self.images = images if isinstance(images, ImageTable) else ImageTable(images)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.k8s_version = k8s_version or kubernetes_validate.latest_version()
        self.validate = validate
        self.time_scale = time_scale
        self.probe_interval = probe_interval
        self.restart_backoff = restart_backoff
        self.store = Store()
        #: every (verb, path, body) received with a body, in order: the bodies as sent
        self.received: list[tuple[str, str, Obj]] = []
        self.runners: dict[tuple[str, str], PodRunner] = {}
        self.forwarders: dict[tuple[str, str], list[tuple[int | str, TcpForwarder]]] = {}
        #: (ns, service, port) -> local ClusterIP forwarder port
        self.cluster_ports: dict[tuple[str, str, int], int] = {}
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._ip_counter = 0
        #: (verb, resource) pairs the caller may not use, e.g. ("get", "namespaces")
        self.forbidden: set[tuple[str, str]] = set()
        for ns in ("default", "kube-system", "kube-public"):
            self._create_raw("namespaces", "", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": ns}})
        self._create_raw("nodes", "", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
            "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_INTERNAL_IP},
                                     {"type": "ExternalIP", "address": NODE_EXTERNAL_IP},
                                     {"type": "Hostname", "address": NODE_NAME}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady"}]}})

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> FakeKubernetes:
        handler = type("Handler", (_Handler,), {"kube": self})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        for target, name in ((self._httpd.serve_forever, "fake-k8s-http"),
                             (self._controllers, "fake-k8s-controllers")):
            t = threading.Thread(target=target, daemon=True, name=name)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop every pod process, forwarder and the HTTP server."""
        self._stopping.set()
        with self.store.cond:
            self.store.cond.notify_all()
        with self._lock:
            runners = list(self.runners.values())
            self.runners.clear()
        for r in runners:
            r.stop()
        for r in runners:
            r.stopped.wait(15)
        with self._lock:
            for fwds in self.forwarders.values():
                for _, f in fwds:
                    f.close()
            self.forwarders.clear()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` talking to this server."""
        import kubernetes

        config = kubernetes.client.Configuration()
        config.host = self.url
        return kubernetes.client.ApiClient(config)

    def pod_pids(self) -> list[int]:
        """Pids of every running container process."""
        with self._lock:
            runners = list(self.runners.values())
        return [run.process.pid for r in runners for run in r.containers
                if run.process is not None and run.process.pid is not None]

    # -- object helpers ----------------------------------------------------------
    def _create_raw(self, plural: str, ns: str, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_iso())
        if ns:
            meta["namespace"] = ns
        return self.store.create(plural, ns, obj)

    def record_event(self, involved: Obj, reason: str, message: str, type_: str = "Normal",
                     component: str = "kubelet") -> None:
        """Write (or bump the count of) an Event about ``involved``."""
        ns = involved.get("namespace", "default")
        ns_obj = self.store.get("namespaces", "", ns)
        if ns_obj is None or "deletionTimestamp" in ns_obj["metadata"]:
            return
        for ev in self.store.list("events", ns):
            if ev["involvedObject"].get("uid") == involved.get("uid") and \
                    ev["reason"] == reason and ev["message"] == message:
                self.store.update("events", ns, ev["metadata"]["name"], lambda e: {
                    **e, "count": e.get("count", 1) + 1, "lastTimestamp": now_iso()})
                return
        stamp = now_iso()
        try:
            self._create_raw("events", ns, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{involved['name']}.{secrets.token_hex(8)}"},
                "involvedObject": involved, "reason": reason, "message": message,
                "type": type_, "source": {"component": component, "host": NODE_NAME},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
                "reportingComponent": component, "reportingInstance": NODE_NAME})
        except ApiError:
            pass

    # -- "DNS" -----------------------------------------------------------------
    def _service_names(self, ns: str) -> list[tuple[str, Obj]]:
        return [(s["metadata"]["name"], s) for s in self.store.list("services", ns)]

    def endpoints(self, ns: str, service: Obj, target: int | str | None = None) -> list[int]:
        """Local ports of the ready pods behind ``service`` for ``target`` (a
        targetPort; default the first port's)."""
        spec = service.get("spec") or {}
        if not spec.get("selector"):
            return []
        if target is None:
            ports = spec.get("ports") or [{}]
            target = ports[0].get("targetPort", ports[0].get("port"))
        match = label_matcher(",".join(f"{k}={v}" for k, v in spec["selector"].items()))
        with self._lock:
            runners = [r for (n, _), r in sorted(self.runners.items()) if n == ns]
        out = []
        for r in runners:
            if (r.ready or spec.get("publishNotReadyAddresses")) and \
                    match(r.pod["metadata"].get("labels") or {}):
                pod = self.store.get("pods", ns, r.name)
                if pod is None or "deletionTimestamp" in pod["metadata"]:
                    continue
                port = r.local_port(target) if target is not None else None
                if port is not None:
                    out.append(port)
        return out

    def _service_port(self, service: Obj, port: int | str | None) -> Obj | None:
        for p in (service.get("spec") or {}).get("ports") or []:
            if port is None or p.get("port") == port or p.get("name") == port or \
                    str(p.get("port")) == str(port):
                return p
        return None

    def resolve_services(self, text: str, ns: str) -> str:
        """Replace ``<service>[.<ns>[.svc[.cluster.local]]]:<port>`` by a local address."""
        for name, svc in self._service_names(ns):
            pattern = re.compile(
                rf"(?<![\w.-]){re.escape(name)}(\.{re.escape(ns)}(\.svc(\.cluster\.local)?)?)?"
                r":(\d+)")

            def sub(m: re.Match[str], svc: Obj = svc, name: str = name) -> str:
                port = int(m.group(4))
                local = self.cluster_ports.get((ns, name, port))
                if local is None:  # headless: the first ready endpoint
                    p = self._service_port(svc, port)
                    eps = self.endpoints(ns, svc, p.get("targetPort", port) if p else port)
                    local = eps[0] if eps else None
                return f"127.0.0.1:{local}" if local is not None else m.group(0)

            text = pattern.sub(sub, text)
        return text

    def resolve_clipper_frontends(self, env: dict[str, str], ns: str) -> None:
        """``CLIPPER_IP`` naming a service -> local address(es), see module docstring."""
        host = env.get("CLIPPER_IP")
        if not host or "CLIPPER_FRONTENDS" in env:
            return
        short = host.split(".")[0]
        svc = self.store.get("services", ns, short)
        if svc is None or host not in (short, f"{short}.{ns}", f"{short}.{ns}.svc",
                                       f"{short}.{ns}.svc.cluster.local"):
            return
        port = int(env.get("CLIPPER_PORT", "7000"))
        if svc["spec"].get("clusterIP") == "None":
            p = self._service_port(svc, port)
            eps = self.endpoints(ns, svc, p.get("targetPort", port) if p else port)
            if eps:
                env["CLIPPER_FRONTENDS"] = ",".join(f"127.0.0.1:{e}" for e in eps)
                env["CLIPPER_IP"] = "127.0.0.1"
        else:
            local = self.cluster_ports.get((ns, short, port))
            if local is not None:
                env["CLIPPER_IP"] = "127.0.0.1"
                env["CLIPPER_PORT"] = str(local)

    # -- controllers -----------------------------------------------------------
    def _controllers(self) -> None:
        while not self._stopping.is_set():
            try:
                self._reconcile()
            except Exception:  # noqa: BLE001 - a controller keeps going, like the real ones
                import traceback
                traceback.print_exc()
            self._stopping.wait(0.1)

    def _reconcile(self) -> None:
        for ns_obj in self.store.list("namespaces"):
            if "deletionTimestamp" in ns_obj["metadata"]:
                self._finish_namespace(ns_obj["metadata"]["name"])
        for dep in self.store.list("deployments"):
            self._reconcile_deployment(dep)
        self._collect_garbage()
        self._kubelet()
        self._services()

    def _finish_namespace(self, ns: str) -> None:
        left = 0
        for res in _BY_PLURAL.values():
            if not res.namespaced:
                continue
            for obj in self.store.list(res.plural, ns):
                left += 1
                self._delete_object(res, ns, obj["metadata"]["name"], {})
        if left == 0:
            self.store.remove("namespaces", "", ns)

    def _owned_pods(self, dep: Obj) -> list[Obj]:
        uid = dep["metadata"]["uid"]
        ns = dep["metadata"]["namespace"]
        return [p for p in self.store.list("pods", ns)
                if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])]

    @staticmethod
    def template_hash(dep: Obj) -> str:
        digest = hashlib.sha256(json.dumps(dep["spec"]["template"], sort_keys=True).encode())
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        n = int(digest.hexdigest()[:16], 16)
        out = ""
        for _ in range(10):
            n, r = divmod(n, len(alphabet))
            out += alphabet[r]
        return out

    def _reconcile_deployment(self, dep: Obj) -> None:
        meta = dep["metadata"]
        ns, name = meta["namespace"], meta["name"]
        pods = self._owned_pods(dep)
        if "deletionTimestamp" in meta:
            for p in pods:
                if "deletionTimestamp" not in p["metadata"]:
                    self._delete_object(_BY_PLURAL["pods"], ns, p["metadata"]["name"], {})
            if not pods:
                self.store.remove("deployments", ns, name)
            return
        h = self.template_hash(dep)
        live = [p for p in pods if "deletionTimestamp" not in p["metadata"]]
        current = [p for p in live if p["metadata"]["labels"].get("pod-template-hash") == h]
        old = [p for p in live if p not in current]
        want = int(dep["spec"].get("replicas", 1))

        def is_ready(p: Obj) -> bool:
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in (p.get("status") or {}).get("conditions") or [])

        if len(current) < want:
            for _ in range(want - len(current)):
                self._create_pod(dep, h)
            self.record_event(self._ref(dep), "ScalingReplicaSet",
                              f"Scaled up replica set {name}-{h} to {want}",
                              component="deployment-controller")
        elif len(current) > want:
            # not-ready pods first, then the newest (the real controller's order)
            doomed = sorted(current, key=lambda p: (not is_ready(p),
                                                    p["metadata"]["creationTimestamp"]),
                            reverse=True)[: len(current) - want]
            for p in doomed:
                self._delete_object(_BY_PLURAL["pods"], ns, p["metadata"]["name"], {})
            self.record_event(self._ref(dep), "ScalingReplicaSet",
                              f"Scaled down replica set {name}-{h} to {want}",
                              component="deployment-controller")
        if old and sum(is_ready(p) for p in current) >= want:
            for p in old:
                self._delete_object(_BY_PLURAL["pods"], ns, p["metadata"]["name"], {})
        pods = [p for p in self._owned_pods(dep) if "deletionTimestamp" not in p["metadata"]]
        ready = sum(is_ready(p) for p in pods)
        min_ready = float(dep["spec"].get("minReadySeconds", 0))

        def is_available(p: Obj) -> bool:
            runner = self.runners.get((ns, p["metadata"]["name"]))
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
        old_status = dep.get("status") or {}
        available = available_count >= want
        conds = {c["type"]: c for c in old_status.get("conditions") or []}
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

        def same(old: Obj) -> bool:
            strip = {k: v for k, v in old.items() if k != "conditions"}
            new = {k: v for k, v in status.items() if k != "conditions"}
            return strip == new and [(c["type"], c["status"], c["reason"])
                                     for c in old.get("conditions") or []] == \
                [(c["type"], c["status"], c["reason"]) for c in status["conditions"]]

        if not same(old_status):
            try:
                self.store.update("deployments", ns, name, lambda d: {**d, "status": status})
            except ApiError:
                pass

    @staticmethod
    def _ref(obj: Obj) -> Obj:
        meta = obj["metadata"]
        return {"kind": obj["kind"], "namespace": meta.get("namespace", ""),
                "name": meta["name"], "uid": meta["uid"], "apiVersion": obj["apiVersion"],
                "resourceVersion": meta["resourceVersion"]}

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
        self._create_raw("pods", ns, pod)

    def _collect_garbage(self) -> None:
        uids = {d["metadata"]["uid"] for d in self.store.list("deployments")}
        for pod in self.store.list("pods"):
            owners = pod["metadata"].get("ownerReferences") or []
            if owners and not any(o.get("uid") in uids for o in owners) and \
                    "deletionTimestamp" not in pod["metadata"]:
                self._delete_object(_BY_PLURAL["pods"], pod["metadata"]["namespace"],
                                    pod["metadata"]["name"], {})

    def _kubelet(self) -> None:
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in self.store.list("pods")}
        with self._lock:
            for key, pod in pods.items():
                runner = self.runners.get(key)
                if runner is not None and runner.uid != pod["metadata"]["uid"]:
                    runner.stop()
                    runner = None
                if runner is None and "deletionTimestamp" not in pod["metadata"]:
                    runner = PodRunner(self, pod)
                    self.runners[key] = runner
                    runner.start()
                elif runner is not None and "deletionTimestamp" in pod["metadata"]:
                    runner.stop()
                    if runner.stopped.is_set():
                        del self.runners[key]
                        self.store.remove("pods", key[0], key[1])
            for key in [k for k in self.runners if k not in pods]:
                self.runners.pop(key).stop()
        for key, pod in pods.items():
            if key not in self.runners and "deletionTimestamp" in pod["metadata"]:
                self.store.remove("pods", key[0], key[1])

    def _services(self) -> None:
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                    for s in self.store.list("services")}
        with self._lock:
            for key in [k for k in self.forwarders if k not in services]:
                for _, f in self.forwarders.pop(key):
                    f.close()
                for ck in [c for c in self.cluster_ports if c[:2] == key]:
                    del self.cluster_ports[ck]
            for key, svc in services.items():
                if key in self.forwarders:
                    continue
                self.forwarders[key] = fwds = []
                spec = svc["spec"]
                if spec.get("clusterIP") == "None":
                    continue
                ns, name = key
                for p in spec.get("ports") or []:
                    target = p.get("targetPort", p["port"])

                    def backends(ns: str = ns, name: str = name,
                                 target: int | str = target) -> list[int]:
                        current = self.store.get("services", ns, name)
                        return self.endpoints(ns, current, target) if current else []

                    local = allocate_port()
                    fwds.append((p["port"], TcpForwarder("127.0.0.1", local, backends)))
                    self.cluster_ports[(ns, name, int(p["port"]))] = local
                    if p.get("nodePort"):
                        for host in (NODE_INTERNAL_IP, NODE_EXTERNAL_IP):
                            fwds.append((p["port"], TcpForwarder(host, p["nodePort"], backends)))
                    lb = spec.get("type") == "LoadBalancer"
                    ingress = (((svc.get("status") or {}).get("loadBalancer") or {})
                               .get("ingress") or [{}])[0].get("ip")
                    if lb and ingress:
                        fwds.append((p["port"], TcpForwarder(ingress, int(p["port"]), backends)))

    # -- the verbs ---------------------------------------------------------------
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
        import kubernetes_validate

        want_kind = kind or res.kind
        want_version = api_version or res.api_version
        if body.get("kind") not in (None, want_kind) or \
                body.get("apiVersion") not in (None, want_version):
            raise ApiError(400, "BadRequest",
                           f"the API version in the data ({body.get('apiVersion')}) does not "
                           f"match the expected API version ({want_version})")
        obj_name = (body.get("metadata") or {}).get("name") or name or ""
        full = {"apiVersion": want_version, "kind": want_kind, **body}
        if not self.validate:
            return
        try:
            kubernetes_validate.validate(full, self.k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "<root>"
            raise invalid(res, obj_name, [(path, exc.message)]) from None
        if want_kind == res.kind:
            problem = _check_name(res, obj_name) if obj_name else None
            causes = ([("metadata.name", f"Invalid value: {obj_name!r}: {problem}")]
                      if problem else [])
            causes += semantic_causes(res, full)
            if causes:
                raise invalid(res, obj_name, causes)

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
            self._default_service(ns, body)
        elif res.kind == "Pod":
            body["spec"].setdefault("restartPolicy", "Always")
            body["status"] = {"phase": "Pending"}
        elif res.kind == "Namespace":
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
        elif res.kind == "Secret":
            self._encode_secret(body)
        return self._create_raw(res.plural, ns if res.namespaced else "", body)

    @staticmethod
    def _encode_secret(body: Obj) -> None:
        """``stringData`` is write-only: merged into ``data`` base64-encoded."""
        import base64

        string_data = body.pop("stringData", None) or {}
        data = body.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        body.setdefault("type", "Opaque")

    def _default_service(self, ns: str, body: Obj) -> None:
        spec = body.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            with self._lock:
                self._ip_counter += 1
                n = self._ip_counter
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 2}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        used = {p.get("nodePort") for s in self.store.list("services")
                for p in s["spec"].get("ports") or []}
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p["port"])
            if spec["type"] in ("NodePort", "LoadBalancer"):
                if p.get("nodePort") is not None and p["nodePort"] in used:
                    raise invalid(_BY_PLURAL["services"], body["metadata"]["name"], [
                        ("spec.ports[0].nodePort", f"Invalid value: {p['nodePort']}: provided "
                         "port is already allocated")])
                if not p.get("nodePort"):
                    p["nodePort"] = allocate_port(NODE_INTERNAL_IP, 30000, 32767)
        body["status"] = {"loadBalancer": {}}
        if spec["type"] == "LoadBalancer":
            body["status"]["loadBalancer"] = {"ingress": [{"ip": self._lb_ip(spec),
                                                           "ipMode": "VIP"}]}

    def _lb_ip(self, spec: Obj) -> str:
        ports = [int(p["port"]) for p in spec.get("ports") or []]
        for _ in range(100):
            ip = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(2, 254)}"
            try:
                for port in ports:
                    with socket.socket() as s:
                        s.bind((ip, port))
                return ip
            except OSError:
                continue
        raise ApiError(500, "InternalError", "no address for the load balancer")

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
            return self._merge_update(res, current, body)

        return self.store.update(res.plural, ns, name, mutate)

    @staticmethod
    def _merge_update(res: Resource, current: Obj, new: Obj) -> Obj:
        out = copy.deepcopy(new)
        out["apiVersion"], out["kind"] = res.api_version, res.kind
        if res.kind == "Secret":
            FakeKubernetes._encode_secret(out)
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
                                 lambda cur: self._merge_update(res, cur, patched))

    def scale(self, ns: str, name: str, verb: str, body: Any = None,
              content_type: str = "") -> Obj:
        res = _BY_PLURAL["deployments"]
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
        self._delete_object(res, ns, name, options)
        if res.plural in _RETURNS_DELETED:
            # these registries answer with the object (pods: with deletionTimestamp)
            return self.store.get(res.plural, ns, name) or obj
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": res.group, "kind": res.plural,
                            "uid": obj["metadata"]["uid"]}}

    def _delete_object(self, res: Resource, ns: str, name: str, options: Obj) -> None:
        graceful = res.plural in ("pods", "namespaces", "deployments")
        if not graceful:
            self.store.remove(res.plural, ns, name)
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
            self.store.update(res.plural, ns, name, mark)
        except ApiError:
            return
        if res.plural == "deployments" and policy != "Foreground":
            self.store.remove(res.plural, ns, name)  # pods go by garbage collection

    def log(self, ns: str, name: str, query: dict[str, str]) -> str:
        pod = self.store.get("pods", ns, name)
        if pod is None:
            raise not_found(_BY_PLURAL["pods"], name)
        with self._lock:
            runner = self.runners.get((ns, name))
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
        """Yield watch events (dicts) until the timeout or the server stops."""
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))
        timeout = float(query.get("timeoutSeconds", 1800))
        deadline = time.monotonic() + timeout
        rv = query.get("resourceVersion")

        def wanted(plural: str, obj_ns: str, obj: Obj) -> bool:
            return plural == res.plural and (ns is None or obj_ns == ns) and \
                labels(obj["metadata"].get("labels") or {}) and fields(obj)

        with self.store.cond:
            if rv in (None, "", "0"):
                initial = [o for o in self.store.list(res.plural, ns)
                           if wanted(res.plural, o["metadata"].get("namespace", ""), o)]
                last = self.store.rv
            else:
                last = int(rv)
                oldest = self.store.history[0].rv if self.store.history else self.store.rv
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
        while not self._stopping.is_set():
            with self.store.cond:
                batch = [e for e in self.store.history if e.rv > last]
                if not batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self.store.cond.wait(min(left, 1.0))
                    continue
                last = batch[-1].rv
            for e in batch:
                if wanted(e.plural, e.namespace, e.obj):
                    yield {"type": e.type, "object": e.obj}

    def proxy(self, ns: str, target: str, rest: str, method: str, headers: Mapping[str, str],
              body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        """Forward an HTTP request to a service, as the API server's proxy does."""
        parts = target.split(":")
        name = parts[0] if len(parts) < 3 else parts[1]
        port: int | str | None = parts[-1] if len(parts) > 1 else None
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        svc = self.store.get("services", ns, name)
        if svc is None:
            raise not_found(_BY_PLURAL["services"], name)
        p = self._service_port(svc, port)
        if p is None:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service '
                           f'"{name}:{port}"')
        eps = self.endpoints(ns, svc, p.get("targetPort", p["port"]))
        if not eps:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service '
                           f'"{name}"')
        conn = http.client.HTTPConnection("127.0.0.1", random.choice(eps), timeout=60)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() in (
                "content-type", "authorization", "accept", "user-agent")}
            conn.request(method, rest, body=body, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders()
                           if k.lower() in ("content-type",)]
            return resp.status, out_headers, data
        except OSError as exc:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {exc}") \
                from None
        finally:
            conn.close()


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    kube: FakeKubernetes
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _send_json(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return raw, None
        try:
            return raw, json.loads(raw)
        except ValueError:
            raise ApiError(400, "BadRequest", "the body of the request could not be decoded "
                           "as JSON") from None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, verb: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query,
                                                            keep_blank_values=True).items()}
        try:
            self._route(verb, url.path, query)
        except ApiError as exc:
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, verb: str, path: str, query: dict[str, str]) -> None:
        kube = self.kube
        if path == "/version":
            self._send_json(200, {"major": "1", "minor": kube.k8s_version.split(".")[1],
                                  "gitVersion": f"v{kube.k8s_version}-fake",
                                  "platform": "linux/amd64"})
            return
        if path in ("/healthz", "/readyz", "/livez"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
            return
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "v1"]:
            group_version, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural, name = rest[0], rest[1] if len(rest) > 1 else None
        sub, tail = (rest[2] if len(rest) > 2 else None), rest[3:]
        res = RESOURCES.get((group_version, plural))
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        raw, body = self._read_body()
        if body is not None:
            kube.received.append((verb, path, copy.deepcopy(body)))
        kube.authorize(verb, res, ns, name, sub, query)
        if sub == "proxy" and res.plural == "services" and ns is not None and name:
            rest_path = "/" + "/".join(tail)
            if self.path.endswith("/") and not rest_path.endswith("/"):
                rest_path += "/"
            full = urllib.parse.urlsplit(self.path)
            if full.query:
                rest_path += "?" + full.query
            code, headers, data = kube.proxy(ns, name, rest_path, verb,
                                             dict(self.headers.items()), raw or None)
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if name is None:
            self._collection(verb, res, ns, query, body)
        elif sub is None:
            self._item(verb, res, ns or "", name, query, body)
        elif sub == "scale" and res.plural == "deployments":
            if verb not in ("GET", "PUT", "PATCH"):
                raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on scale")
            self._send_json(200, kube.scale(ns or "", name, verb, body,
                                            self.headers.get("Content-Type", "")))
        elif sub == "status" and verb == "GET":
            obj = kube.store.get(res.plural, ns or "", name)
            if obj is None:
                raise not_found(res, name)
            self._send_json(200, obj)
        elif sub == "log" and res.plural == "pods" and verb == "GET":
            text = kube.log(ns or "", name, query).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _collection(self, verb: str, res: Resource, ns: str | None, query: dict[str, str],
                    body: Any) -> None:
        kube = self.kube
        if verb == "GET":
            if query.get("watch") in ("true", "1", "True"):
                self._stream(kube.watch(res, ns, query))
                return
            labels = label_matcher(query.get("labelSelector"))
            fields = field_matcher(query.get("fieldSelector"))
            with kube.store.cond:
                items = [o for o in kube.store.list(res.plural, ns)
                         if labels(o["metadata"].get("labels") or {}) and fields(o)]
                rv = str(kube.store.rv)
            self._send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                                  "metadata": {"resourceVersion": rv}, "items": items})
        elif verb == "POST":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request is missing or not "
                               "an object")
            if res.namespaced and ns is None:
                raise ApiError(404, "NotFound", "the server could not find the requested "
                               "resource")
            self._send_json(201, kube.create(res, ns or "", body))
        elif verb == "DELETE":
            if res.namespaced and ns is None:
                raise ApiError(405, "MethodNotAllowed", "deletecollection needs a namespace")
            labels = label_matcher(query.get("labelSelector"))
            fields = field_matcher(query.get("fieldSelector"))
            items = [o for o in kube.store.list(res.plural, ns)
                     if labels(o["metadata"].get("labels") or {}) and fields(o)]
            options = body if isinstance(body, dict) else {}
            options = {**options, **{k: v for k, v in query.items()
                                     if k in ("propagationPolicy", "gracePeriodSeconds")}}
            for o in items:
                kube._delete_object(res, o["metadata"].get("namespace", ""),
                                    o["metadata"]["name"], options)
            self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success"})
        else:
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not allowed on a collection")

    def _item(self, verb: str, res: Resource, ns: str, name: str, query: dict[str, str],
              body: Any) -> None:
        kube = self.kube
        if verb == "GET":
            obj = kube.store.get(res.plural, ns, name)
            if obj is None:
                raise not_found(res, name)
            self._send_json(200, obj)
        elif verb == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request is not an object")
            self._send_json(200, kube.replace(res, ns, name, body))
        elif verb == "PATCH":
            self._send_json(200, kube.patch(res, ns, name, body,
                                            self.headers.get("Content-Type", "")))
        elif verb == "DELETE":
            options = body if isinstance(body, dict) else {}
            options = {**options, **{k: v for k, v in query.items()
                                     if k in ("propagationPolicy", "gracePeriodSeconds")}}
            self._send_json(200, kube.delete(res, ns, name, options))
        else:
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not allowed on an object")

    def _stream(self, events: Iterator[Obj]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
