"""The Kubernetes API as the manager uses it: clients, errors, listing and
creating the cluster's objects by label.
"""

from __future__ import annotations

from typing import Any

from clipper_core.errors import ClipperException, ContainerError

from . import names
from .api import api_errors, build_api_client


class KubeObjects:
    """The API clients and the cluster's objects (a base of the manager).

    Subclasses set ``cluster_name``, ``namespace``, ``progress`` and
    ``_client_options`` before using it.
    """

    cluster_name: str
    namespace: str
    progress: Any
    _client: Any
    _client_options: dict[str, Any]

    @property
    def client(self) -> Any:
        """The ``kubernetes.client.ApiClient`` (built on first use)."""
        if self._client is None:
            self._client = build_api_client(**self._client_options)
        return self._client

    @property
    def core(self) -> Any:
        import kubernetes

        return kubernetes.client.CoreV1Api(self.client)

    @property
    def apps(self) -> Any:
        import kubernetes

        return kubernetes.client.AppsV1Api(self.client)

    def _errors(self, what: str, error: type[ClipperException] = ContainerError) -> Any:
        host = getattr(getattr(self.client, "configuration", None), "host", None)
        return api_errors(what, error, host)

    def _selector(self, **labels: str) -> str:
        return names.selector({names.CLUSTER: self.cluster_name, **labels})

    def _deployments(self, **labels: str) -> list[Any]:
        with self._errors(f"Listing Deployments of cluster {self.cluster_name!r}"):
            found = self.apps.list_namespaced_deployment(
                self.namespace, label_selector=self._selector(**labels)).items
        return [d for d in found if d.metadata.deletion_timestamp is None]

    def _pods(self, **labels: str) -> list[Any]:
        with self._errors(f"Listing pods of cluster {self.cluster_name!r}"):
            return self.core.list_namespaced_pod(
                self.namespace, label_selector=self._selector(**labels)).items

    def _create(self, body: dict[str, Any], error: type[ClipperException]) -> None:
        kind, name = body["kind"], body["metadata"]["name"]
        create = {
            "Deployment": lambda: self.apps.create_namespaced_deployment(self.namespace, body),
            "Service": lambda: self.core.create_namespaced_service(self.namespace, body),
            "Secret": lambda: self.core.create_namespaced_secret(self.namespace, body),
        }[kind]
        with self._errors(f"Creating {kind} {name!r} in namespace {self.namespace!r}", error):
            create()
        self.progress(f"created {kind} {self.namespace}/{name}")
