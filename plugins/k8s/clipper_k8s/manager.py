"""KubernetesContainerManager: a Clipper cluster as Deployments and Services.

One cluster is, in one namespace: Redis (unless external), the management
frontend, ``num_frontend_replicas`` query frontends, and one Deployment per
model version.  Every object carries the label ``clipper.ai/cluster=<name>``
and a role label, so a new manager instance finds the cluster by label
(:meth:`KubernetesContainerManager.connect`).

Model replicas reach the query frontends through a headless Service: its name
resolves to every frontend pod and the model runtime connects to each.
Clients reach the frontends through the API server's service proxy
(``kubernetes_proxy_addr``, e.g. ``kubectl proxy``), a NodePort on a node's
address, or a LoadBalancer's ingress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from clipper_core import curve, launch
from clipper_core.errors import ClipperException, ClusterStartError, ContainerError, ValidationError
from clipper_core.models import InputType, validate_name
from clipper_core.secrets import new_password, new_token

from . import manifests, names
from .addresses import ServiceAddresses
from .cluster_secrets import SecretObjects
from .namespaces import Namespaces
from .pods import PodReports
from .waits import DeploymentWaits

log = logging.getLogger("clipper.k8s")

#: Default images: the project's own (built by the clipper-docker plugin).
QUERY_FRONTEND_IMAGE = launch.DEFAULT_IMAGES.query_frontend
MGMT_FRONTEND_IMAGE = launch.DEFAULT_IMAGES.management_frontend
REDIS_IMAGE = "redis:7"

#: Clipper's ``service_types`` keys and its default (NodePort for each).
CLIPPER_SERVICE_TYPES = {"redis": "NodePort", "management": "NodePort", "query": "NodePort",
                         "query-rpc": "NodePort", "metric": "NodePort"}

Progress = Callable[[str], None]
_WHO = "KubernetesContainerManager"


def _service_types(given: Mapping[str, str] | None) -> dict[str, str]:
    """Validate Clipper's ``service_types``; warn once for the keys we do not honour."""
    if given is None:
        return {}
    if not isinstance(given, Mapping) or set(given) - set(CLIPPER_SERVICE_TYPES):
        raise ValidationError(f"service_types must be a dict with keys among "
                              f"{', '.join(CLIPPER_SERVICE_TYPES)}", argument="service_types",
                              value=given)
    for key, value in given.items():
        if value not in manifests.SERVICE_TYPES:
            raise ValidationError(f"Invalid service type {value!r} for {key!r}: must be one of "
                                  f"{', '.join(manifests.SERVICE_TYPES)}",
                                  argument="service_types", value=given)
        if key not in ("management", "query"):
            launch.ignored_parameter(_WHO, f"service_types[{key!r}]", value,
                                     CLIPPER_SERVICE_TYPES[key], "Redis and the RPC service "
                                     "are cluster-internal and no metrics service runs")
    return dict(given)


class KubernetesContainerManager(ServiceAddresses, DeploymentWaits, Namespaces, PodReports,
                                 SecretObjects):
    """Runs a Clipper cluster on Kubernetes with the official Python client.

    The positional parameters are Clipper's, in Clipper's order and with its
    defaults; the rest are keyword-only.

    :param cluster_name: names the cluster (a DNS-1123 label); every object is
        labelled with it.
    :param kubernetes_proxy_addr: ``host:port`` of an API server proxy
        (``kubectl proxy``); when set, the query and management addresses are
        the service proxy URLs under it.
    :param namespace: where the cluster lives.
    :param service_types: Clipper's per-service types (keys ``redis``,
        ``management``, ``query``, ``query-rpc``, ``metric``); ``management``
        and ``query`` override ``service_type``; the others are accepted and
        warn once when not ``NodePort`` (Redis and the RPC service stay
        cluster-internal, no metrics service runs).
    :param create_namespace_if_not_exists: create ``namespace`` (and delete it
        again in :meth:`stop_all`) when it does not exist.
    :param redis_ip: host of an external Redis; None runs Redis in the cluster.
    :param redis_port: port of the external Redis (or the Redis service).
    :param useInternalIP: for NodePort services, use nodes' InternalIP
        instead of their ExternalIP.
    :param kubeconfig: path of a kubeconfig file (default ``$KUBECONFIG`` or
        ``~/.kube/config``); ``context`` picks a context in it.
    :param in_cluster: use the pod's service account (default: when running
        in a pod and no kubeconfig is named).
    :param api_host: talk to this API server URL without credentials (a
        proxy, a test server); ``api_client`` is a ready
        ``kubernetes.client.ApiClient``.
    :param container_registry: default registry :meth:`build_model` pushes to.
    :param service_type: type of the query and management services:
        ``NodePort`` (default), ``LoadBalancer`` or ``ClusterIP`` (reachable
        only through ``kubernetes_proxy_addr``).
    :param admin_token: protect ``/admin/*`` with this bearer token (kept in a
        Secret, read back by ``connect()``); None or ``True`` (default)
        generates one; ``False`` or ``"none"``: no token.
    :param rpc_auth: ``"curve"`` (default, or ``CLIPPER_RPC_AUTH``): replicas
        authenticate with CURVE keys made at start, kept in the cluster's Secret
        (each model version's key in its own); ``"none"``: plain RPC v3, for
        Clipper's model containers (the RPC port is open to any pod).
    :param service_account: service account of the cluster's pods.
    :param redis_image: image Redis runs from.
    :param start_timeout: seconds ``start_clipper`` waits for readiness.
    :param deploy_timeout: seconds model deployments and scaling wait.
    :param min_ready_seconds: a model replica counts as available once it has
        run this long (models have no health endpoint; this catches models
        that crash while loading).
    :param progress: called with one line per step (default: the logger).
    """

    def __init__(self, cluster_name: str = "default-cluster",
                 kubernetes_proxy_addr: str | None = None, redis_ip: str | None = None,
                 redis_port: int = 6379,
                 useInternalIP: bool = False,  # noqa: N803 - Clipper's spelling
                 namespace: str = "default", service_types: Mapping[str, str] | None = None,
                 create_namespace_if_not_exists: bool = False, *, kubeconfig: str | None = None, context: str | None = None,
                 in_cluster: bool | None = None, api_host: str | None = None,
                 api_client: Any = None, container_registry: str | None = None,
                 service_type: str = "NodePort", admin_token: str | bool | None = None,
                 rpc_auth: str | None = None,
                 service_account: str | None = None, redis_image: str = REDIS_IMAGE,
                 start_timeout: float = 300.0, deploy_timeout: float = 180.0,
                 min_ready_seconds: int = 2, progress: Progress | None = None) -> None:
        self.cluster_name = names.cluster_name(cluster_name)
        self.namespace = validate_name("namespace", namespace)
        self.service_types = _service_types(service_types)
        if service_type not in manifests.SERVICE_TYPES:
            raise ValidationError(f"Invalid service_type {service_type!r}: must be one of "
                                  f"{', '.join(manifests.SERVICE_TYPES)}",
                                  argument="service_type", value=service_type)
        frontend_types = {self.service_types.get("management", service_type),
                          self.service_types.get("query", service_type)}
        if "ClusterIP" in frontend_types and not kubernetes_proxy_addr:
            raise ValidationError("service_type='ClusterIP' needs kubernetes_proxy_addr: the "
                                  "frontends are reachable only through the API server proxy",
                                  argument="service_type", value="ClusterIP")
        if isinstance(redis_port, bool) or not isinstance(redis_port, int) or \
                not 0 < redis_port < 65536:
            raise ValidationError(f"Invalid redis_port {redis_port!r}", argument="redis_port",
                                  value=redis_port)
        self.kubernetes_proxy_addr = kubernetes_proxy_addr.rstrip("/") \
            if kubernetes_proxy_addr else None
        self.create_namespace_if_not_exists = create_namespace_if_not_exists
        self.use_internal_ip = useInternalIP
        self.container_registry = container_registry
        self.start_timeout = start_timeout
        self.deploy_timeout = deploy_timeout
        self.progress: Progress = progress or log.info
        self._token_option = admin_token
        token_on = admin_token is not False and admin_token != "none"
        self._admin_token: str | None = (admin_token if isinstance(admin_token, str) and token_on
                                         else None)
        #: ``curve`` or ``none`` (``connect()`` takes the running cluster's)
        self.rpc_auth = launch.rpc_auth_option(rpc_auth)
        self.rpc_keys: curve.ClusterKeys | None = None
        rpc_on = self.rpc_auth == curve.RPC_AUTH_CURVE
        self.spec = manifests.ClusterSpec(
            cluster=self.cluster_name, namespace=self.namespace, redis_ip=redis_ip,
            redis_port=redis_port, redis_image=redis_image, service_type=service_type,
            mgmt_service_type=self.service_types.get("management"),
            query_service_type=self.service_types.get("query"),
            service_account=service_account, min_ready_seconds=min_ready_seconds,
            admin_secret=(names.admin_secret(self.cluster_name)
                          if token_on or redis_ip is None or rpc_on else None),
            admin_token=token_on, rpc_keys=rpc_on)
        self._client_options = dict(api_client=api_client, api_host=api_host,
                                    kubeconfig=kubeconfig, context=context,
                                    in_cluster=in_cluster)
        self._client: Any = None
        self._addrs: dict[str, str] = {}

    # -- cluster lifecycle -----------------------------------------------------------
    def start_clipper(self, query_frontend_image: str | None = None,
                      mgmt_frontend_image: str | None = None, cache_size: int = 33554432,
                      num_frontend_replicas: int = 1) -> None:
        """Create Redis (unless external), the management frontend and the query
        frontends with their Services; return when every Deployment is ready.

        Raises ClusterStartError when the namespace is missing, a cluster of
        this name already runs, or an object does not become ready in
        ``start_timeout`` (naming it, with its pods' states and events).
        """
        query_image = query_frontend_image or QUERY_FRONTEND_IMAGE
        mgmt_image = mgmt_frontend_image or MGMT_FRONTEND_IMAGE
        self._ensure_namespace()
        if self._deployments(**{names.ROLE: names.ROLE_MGMT}):
            raise ClusterStartError(
                f"A Clipper cluster named {self.cluster_name!r} already runs in namespace "
                f"{self.namespace!r}; connect() to it or stop_all() first",
                cluster=self.cluster_name)
        if self.spec.admin_secret:
            token = (self._admin_token or new_token()) if self.spec.admin_token else None
            password = new_password() if self.spec.redis_ip is None else None
            keys = launch.new_rpc_keys(self.rpc_auth)
            self._create(manifests.admin_secret(self.spec, token, password, keys),
                         ClusterStartError)
            self._admin_token, self.rpc_keys = token, keys
        bodies = manifests.cluster_manifests(self.spec, query_image, mgmt_image, cache_size,
                                             num_frontend_replicas)
        waits: list[str] = []
        try:
            if self.spec.redis_ip is None:
                redis_bodies, bodies = bodies[:2], bodies[2:]
                for body in redis_bodies:
                    self._create(body, ClusterStartError)
                # the frontends need the store at start-up
                self._wait_ready([names.redis(self.cluster_name)], self.start_timeout,
                                 ClusterStartError)
            for body in bodies:
                self._create(body, ClusterStartError)
                if body["kind"] == "Deployment":
                    waits.append(body["metadata"]["name"])
            self._wait_ready(waits, self.start_timeout, ClusterStartError)
        except ClipperException as exc:
            if isinstance(exc, ClusterStartError):
                raise
            raise ClusterStartError(str(exc), cluster=self.cluster_name) from exc
        self._addrs.clear()
        self.progress(f"Clipper cluster {self.cluster_name!r} is ready in namespace "
                      f"{self.namespace!r}")

    def connect(self) -> None:
        """Find the running cluster by its labels; ClipperException if none."""
        if not self._deployments(**{names.ROLE: names.ROLE_MGMT}):
            raise ClipperException(
                f"No Clipper cluster named {self.cluster_name!r} in namespace "
                f"{self.namespace!r}: no management frontend Deployment labelled "
                f"{names.CLUSTER}={self.cluster_name}", cluster=self.cluster_name)
        self._addrs.clear()
        self._adopt_secrets()

    # -- addresses ---------------------------------------------------------------------
    def get_admin_addr(self) -> str:
        return self._service_addr(names.mgmt(self.cluster_name), manifests.MGMT_PORT)

    def get_query_addr(self) -> str:
        return self._service_addr(names.query(self.cluster_name), manifests.QUERY_PORT)

    def get_metric_addr(self) -> str:
        """Metrics are served by the query frontend at ``/metrics``."""
        return self.get_query_addr()

    def get_admin_token(self) -> str | None:
        return self._admin_token

    # -- models ----------------------------------------------------------------------
    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Build the model image with the ``docker`` model registry (found by
        name through the plugin registry: the clipper-docker plugin and a
        Docker engine) and push it to ``container_registry`` (default: the
        manager's), which the Kubernetes nodes must be able to pull from."""
        registry = container_registry or self.container_registry
        builder = launch.get_image_builder("docker", container_registry=registry)
        return builder.build_model(name, version, model_data_path, base_image, registry,
                                   pkgs_to_install)

    def _model_deployment(self, name: str, version: str) -> Any | None:
        found = self._deployments(**{names.ROLE: names.ROLE_MODEL, names.MODEL_NAME: name,
                                     names.MODEL_VERSION: version})
        return found[0] if found else None

    def deploy_model(self, name: str, version: str, input_type: InputType | str, image: str,
                     num_replicas: int = 1) -> None:
        """Create the Deployment of name:version and wait until its replicas run."""
        self.set_num_replicas(name, version, input_type, image, num_replicas)

    def get_num_replicas(self, name: str, version: str) -> int:
        """The replicas the Deployment of name:version asks for (0 if none)."""
        dep = self._model_deployment(str(name), str(version))
        if dep is None:
            return 0
        return dep.spec.replicas if dep.spec.replicas is not None else 1

    def set_num_replicas(self, name: str, version: str, input_type: InputType | str, image: str,
                         num_replicas: int) -> None:
        """Scale the Deployment of name:version (creating it when missing) and
        wait until exactly ``num_replicas`` replicas run."""
        name = validate_name("model name", name)
        version = validate_name("model version", str(version))
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or \
                num_replicas < 0:
            raise ValidationError(f"Invalid num_replicas {num_replicas!r}",
                                  argument="num_replicas", value=num_replicas)
        dep = self._model_deployment(name, version)
        if dep is None:
            if num_replicas == 0:
                return
            if not image:
                raise ValidationError(f"Model {name}:{version} has no image to run",
                                      name=name, version=version)
            self._put_model_secret(name, version)
            body = manifests.model_deployment(self.spec, name, version,
                                              InputType.parse(input_type).label, image,
                                              num_replicas)
            self._create(body, ContainerError)
            dep_name = body["metadata"]["name"]
        else:
            dep_name = dep.metadata.name
            with self._errors(f"Scaling Deployment {dep_name!r} to {num_replicas}"):
                self.apps.patch_namespaced_deployment_scale(
                    dep_name, self.namespace, {"spec": {"replicas": num_replicas}},
                    _content_type="application/merge-patch+json")
            self.progress(f"scaled {dep_name} to {num_replicas}")
        self._wait_ready([dep_name], self.deploy_timeout, ContainerError)
        if num_replicas and (self.rpc_keys is None or launch.admin_knows_version(
                self.get_admin_addr, self._admin_token, name, version)):
            launch.wait_for_replicas(
                launch.admin_replicas(self.get_admin_addr, self._admin_token),
                launch.ReplicaWait(name=name, version=version, count=num_replicas),
                timeout=self.deploy_timeout, interval=0.2, progress=self.progress)

    # -- stopping ----------------------------------------------------------------------
    def _delete_deployments(self, graceful: bool, **labels: str) -> None:
        grace = None if graceful else 0
        for dep in self._deployments(**labels):
            with self._errors(f"Deleting Deployment {dep.metadata.name!r}"):
                try:
                    self.apps.delete_namespaced_deployment(
                        dep.metadata.name, self.namespace, propagation_policy="Foreground",
                        grace_period_seconds=grace)
                except Exception as exc:
                    if getattr(exc, "status", None) != 404:
                        raise
            self.progress(f"deleted Deployment {self.namespace}/{dep.metadata.name}")

    def stop_models(self, models: dict[str, list[str]]) -> None:
        """Delete the Deployments of each ``name -> [versions]``; return when
        their pods are gone."""
        for name, versions in models.items():
            for version in versions:
                labels = {names.ROLE: names.ROLE_MODEL, names.MODEL_NAME: str(name),
                          names.MODEL_VERSION: str(version)}
                self._delete_deployments(True, **labels)
                self._delete_model_secrets(**labels)
        for name, versions in models.items():
            for version in versions:
                self._wait_gone(self.deploy_timeout, **{
                    names.ROLE: names.ROLE_MODEL, names.MODEL_NAME: str(name),
                    names.MODEL_VERSION: str(version)})

    def stop_all_model_containers(self) -> None:
        """Delete every model Deployment of the cluster; return when the pods are gone."""
        self._delete_deployments(True, **{names.ROLE: names.ROLE_MODEL})
        self._delete_model_secrets()
        self._wait_gone(self.deploy_timeout, **{names.ROLE: names.ROLE_MODEL})

    def stop_all(self, graceful: bool = True) -> None:
        """Delete everything of the cluster: Deployments (models first), Services,
        the admin Secret, leftover pods, and the namespace if this manager
        created it.  Returns when no pod is left."""
        self._delete_deployments(graceful, **{names.ROLE: names.ROLE_MODEL})
        self._delete_deployments(graceful)
        with self._errors("Deleting Services and Secrets"):
            for svc in self.core.list_namespaced_service(
                    self.namespace, label_selector=self._selector()).items:
                self.core.delete_namespaced_service(svc.metadata.name, self.namespace)
            for secret in self.core.list_namespaced_secret(
                    self.namespace, label_selector=self._selector()).items:
                self.core.delete_namespaced_secret(secret.metadata.name, self.namespace)
            for pod in self.core.list_namespaced_pod(
                    self.namespace, label_selector=self._selector()).items:
                if pod.metadata.deletion_timestamp is None:
                    self.core.delete_namespaced_pod(pod.metadata.name, self.namespace,
                                                    grace_period_seconds=None if graceful
                                                    else 0)
        self._wait_gone(self.deploy_timeout)
        self._delete_own_namespace()
        self._addrs.clear()
        self.progress(f"stopped Clipper cluster {self.cluster_name!r}")



__all__ = ["KubernetesContainerManager", "MGMT_FRONTEND_IMAGE", "QUERY_FRONTEND_IMAGE",
           "REDIS_IMAGE"]
