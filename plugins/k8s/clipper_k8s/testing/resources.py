"""The kinds the fake serves, the ``Status`` errors it answers with, and the
values every part of the fake shares (the one node, timestamps)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import attrs

__all__ = ["BY_PLURAL", "NODE_EXTERNAL_IP", "NODE_INTERNAL_IP", "NODE_NAME", "RESOURCES",
           "RETURNS_DELETED", "ApiError", "Obj", "Resource", "invalid", "not_found", "now_iso"]

#: An API object as JSON: what the store keeps and the HTTP API sends.
Obj = dict[str, Any]

#: The one node every pod runs on, and its addresses (NodePorts listen on both).
NODE_NAME = "fake-node"
NODE_INTERNAL_IP = "127.0.0.1"
NODE_EXTERNAL_IP = "127.0.0.2"


def now_iso(t: float | None = None) -> str:
    """RFC 3339 time as the API server writes it."""
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


@attrs.frozen
class Resource:
    """One kind of object the API serves, named by its REST path."""

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
BY_PLURAL = {r.plural: r for r in RESOURCES.values()}
#: Kinds whose DELETE answers with the object rather than a Status (as the real
#: API server's registries do).
RETURNS_DELETED = ("services", "pods", "serviceaccounts")


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

