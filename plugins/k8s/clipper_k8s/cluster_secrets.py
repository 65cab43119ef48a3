"""The cluster's secrets in Kubernetes Secrets: read back, and one per model version.

The cluster's Secret (:func:`clipper_k8s.manifests.admin_secret`) holds the
admin token, the Redis password and the CURVE keys; ``connect()`` reads the
token and the keys back from it, and a cluster whose Secret holds no keys
was started with ``rpc_auth="none"``.  Before a model version's Deployment
is created, its replicas' key pair goes into a Secret of its own
(:func:`clipper_k8s.manifests.model_secret`), which pods read through
``secretKeyRef``; deleting the version deletes it.
"""

from __future__ import annotations

import base64

import attrs

from clipper_core import curve
from clipper_core.errors import ContainerError

from . import manifests, names
from .objects import KubeObjects


class SecretObjects(KubeObjects):
    """The manager's handling of its Secrets."""

    spec: manifests.ClusterSpec
    rpc_auth: str
    rpc_keys: curve.ClusterKeys | None
    _admin_token: str | None

    def _secret_data(self) -> dict[str, str] | None:
        """The cluster's Secret, decoded; None when it has none."""
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.core.read_namespaced_secret(names.admin_secret(self.cluster_name),
                                                      self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            with self._errors("Reading the cluster's Secret"):
                raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def _adopt_secrets(self) -> None:
        """Take the admin token (unless given) and the RPC keys of the running
        cluster from its Secret; the cluster's RPC auth wins over ``rpc_auth``."""
        data = self._secret_data() or {}
        if self._admin_token is None:
            key = next((k for k in ("admin_token", "token") if k in data), None)  # token: older
            self._admin_token = data[key] if key else None
        try:
            self.rpc_keys = manifests.rpc_keys_from_secret(data)
        except curve.RPCKeyError as exc:
            raise ContainerError(f"The Secret of cluster {self.cluster_name!r} holds broken "
                                 f"RPC keys: {exc}", cluster=self.cluster_name) from exc
        self.rpc_auth = curve.RPC_AUTH_NONE if self.rpc_keys is None else curve.RPC_AUTH_CURVE
        self.spec = attrs.evolve(self.spec, rpc_keys=self.rpc_keys is not None)

    def _put_model_secret(self, name: str, version: str) -> None:
        """Create (or renew) the Secret of name:version's replica key pair."""
        if not self.spec.has_rpc_keys:
            return
        if self.rpc_keys is None:
            self._adopt_secrets()
        if self.rpc_keys is None:
            return  # the running cluster has no keys: its spec says so now
        self._delete_model_secrets(**{names.MODEL_NAME: name, names.MODEL_VERSION: version})
        self._create(manifests.model_secret(self.spec, name, version, self.rpc_keys),
                     ContainerError)

    def _delete_model_secrets(self, **labels: str) -> None:
        """Delete the model version Secrets of the cluster matching ``labels``."""
        from kubernetes.client.exceptions import ApiException

        selector = self._selector(**{names.ROLE: names.ROLE_MODEL, **labels})
        with self._errors("Deleting model Secrets"):
            for secret in self.core.list_namespaced_secret(
                    self.namespace, label_selector=selector).items:
                try:
                    self.core.delete_namespaced_secret(secret.metadata.name, self.namespace)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
