"""Checking, creating and deleting the namespace a cluster lives in.
"""

from __future__ import annotations

import time

from clipper_core.errors import ClusterStartError, ContainerError, NotFoundError

from . import manifests, names
from .objects import KubeObjects


class Namespaces(KubeObjects):
    """Namespace handling of the manager."""

    create_namespace_if_not_exists: bool
    deploy_timeout: float

    def _ensure_namespace(self) -> None:
        """Check (or create) the namespace.  Reading namespaces is cluster-scoped:
        with only the namespaced Role of ``clipper_k8s.rbac`` it is forbidden,
        and the manager goes on (creating objects then says if it is missing)."""
        from kubernetes.client.exceptions import ApiException

        try:
            with self._errors(f"Reading namespace {self.namespace!r}", ClusterStartError):
                self.core.read_namespace(self.namespace)
            return
        except ClusterStartError as exc:
            if getattr(exc, "status", None) == 403 and not self.create_namespace_if_not_exists:
                self.progress(f"cannot read namespace {self.namespace} (forbidden); "
                              "assuming it exists")
                return
            raise
        except NotFoundError as exc:
            if not self.create_namespace_if_not_exists:
                raise ClusterStartError(
                    f"Namespace {self.namespace!r} does not exist; create it or pass "
                    "create_namespace_if_not_exists=True", namespace=self.namespace) from exc
        try:
            self.core.create_namespace(manifests.namespace(self.namespace, self.cluster_name))
        except ApiException as exc:
            if exc.status != 409:
                with self._errors(f"Creating namespace {self.namespace!r}", ClusterStartError):
                    raise
        self.progress(f"created namespace {self.namespace}")

    def _delete_own_namespace(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            ns = self.core.read_namespace(self.namespace)
        except ApiException:
            return
        if (ns.metadata.labels or {}).get(names.CREATED_BY) != self.cluster_name:
            return
        with self._errors("Listing what is left in the namespace"):
            left = self.apps.list_namespaced_deployment(self.namespace).items + \
                self.core.list_namespaced_service(self.namespace).items
        if left:
            self.progress(f"keeping namespace {self.namespace}: it holds other objects")
            return
        with self._errors(f"Deleting namespace {self.namespace!r}"):
            self.core.delete_namespace(self.namespace)
        deadline = time.monotonic() + self.deploy_timeout
        while time.monotonic() < deadline:
            try:
                self.core.read_namespace(self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    self.progress(f"deleted namespace {self.namespace}")
                    return
                with self._errors(f"Reading namespace {self.namespace!r}"):
                    raise
            time.sleep(0.2)
        raise ContainerError(f"Namespace {self.namespace!r} still terminating after "
                             f"{self.deploy_timeout:.0f}s", namespace=self.namespace)
