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
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipper_core.errors import (
    BuildError,
    ClipperException,
    ClusterStartError,
    ContainerError,
    NotFoundError,
    ValidationError,
)
from clipper_core.models import InputType, ReplicaStatus, validate_name

from . import manifests, names
from .api import api_errors, build_api_client

log = logging.getLogger("clipper.k8s")

#: Default images: the project's frontend images (see the clipper-docker plugin).
VERSION = "0.4.0"
QUERY_FRONTEND_IMAGE = f"clipper/query_frontend:{VERSION}"
MGMT_FRONTEND_IMAGE = f"clipper/management_frontend:{VERSION}"
REDIS_IMAGE = "redis:7"

Progress = Callable[[str], None]


class KubernetesContainerManager:
    """Runs a Clipper cluster on Kubernetes with the official Python client.

    :param cluster_name: names the cluster (a DNS-1123 label); every object is
        labelled with it.
    :param kubernetes_proxy_addr: ``host:port`` of an API server proxy
        (``kubectl proxy``); when set, the query and management addresses are
        the service proxy URLs under it.
    :param namespace: where the cluster lives.
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
        Secret); ``True`` generates one.
    :param service_account: service account of the cluster's pods.
    :param redis_image: image Redis runs from.
    :param start_timeout: seconds ``start_clipper`` waits for readiness.
    :param deploy_timeout: seconds model deployments and scaling wait.
    :param min_ready_seconds: a model replica counts as available once it has
        run this long (models have no health endpoint; this catches models
        that crash while loading).
    :param progress: called with one line per step (default: the logger).
    """

    def __init__(self, cluster_name: str = "default", kubernetes_proxy_addr: str | None = None,
                 namespace: str = "default", create_namespace_if_not_exists: bool = False,
                 redis_ip: str | None = None, redis_port: int = 6379,
                 useInternalIP: bool = False,  # noqa: N803 - Clipper's spelling
                 *, kubeconfig: str | None = None, context: str | None = None,
                 in_cluster: bool | None = None, api_host: str | None = None,
                 api_client: Any = None, container_registry: str | None = None,
                 service_type: str = "NodePort", admin_token: str | bool | None = None,
                 service_account: str | None = None, redis_image: str = REDIS_IMAGE,
                 start_timeout: float = 300.0, deploy_timeout: float = 180.0,
                 min_ready_seconds: int = 2, progress: Progress | None = None) -> None:
        self.cluster_name = names.cluster_name(cluster_name)
        self.namespace = validate_name("namespace", namespace)
        if service_type not in manifests.SERVICE_TYPES:
            raise ValidationError(f"Invalid service_type {service_type!r}: must be one of "
                                  f"{', '.join(manifests.SERVICE_TYPES)}",
                                  argument="service_type", value=service_type)
        if service_type == "ClusterIP" and not kubernetes_proxy_addr:
            raise ValidationError("service_type='ClusterIP' needs kubernetes_proxy_addr: the "
                                  "frontends are reachable only through the API server proxy",
                                  argument="service_type", value=service_type)
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
        self._admin_token: str | None = admin_token if isinstance(admin_token, str) else None
        self.spec = manifests.ClusterSpec(
            cluster=self.cluster_name, namespace=self.namespace, redis_ip=redis_ip,
            redis_port=redis_port, redis_image=redis_image, service_type=service_type,
            service_account=service_account, min_ready_seconds=min_ready_seconds,
            admin_secret=names.admin_secret(self.cluster_name) if admin_token else None)
        self._client_options = dict(api_client=api_client, api_host=api_host,
                                    kubeconfig=kubeconfig, context=context,
                                    in_cluster=in_cluster)
        self._client: Any = None
        self._addrs: dict[str, str] = {}

    # -- the API -------------------------------------------------------------------
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
            token = self._admin_token or secrets.token_urlsafe(24)
            self._create(manifests.admin_secret(self.spec, token), ClusterStartError)
            self._admin_token = token
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

    def connect(self) -> None:
        """Find the running cluster by its labels; ClipperException if none."""
        if not self._deployments(**{names.ROLE: names.ROLE_MGMT}):
            raise ClipperException(
                f"No Clipper cluster named {self.cluster_name!r} in namespace "
                f"{self.namespace!r}: no management frontend Deployment labelled "
                f"{names.CLUSTER}={self.cluster_name}", cluster=self.cluster_name)
        self._addrs.clear()
        if self._admin_token is None:
            self._admin_token = self._read_token()

    def _read_token(self) -> str | None:
        import base64

        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.core.read_namespaced_secret(names.admin_secret(self.cluster_name),
                                                      self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            with self._errors("Reading the admin token Secret"):
                raise
        data = secret.data or {}
        if "token" not in data:
            return None
        return base64.b64decode(data["token"]).decode()

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

    def _service_addr(self, service: str, port: int) -> str:
        """``host:port`` (or ``host:port/path`` through a proxy) of a service."""
        if service in self._addrs:
            return self._addrs[service]
        if self.kubernetes_proxy_addr:
            proxy = self.kubernetes_proxy_addr.removeprefix("http://")
            addr = f"{proxy}/api/v1/namespaces/{self.namespace}/services/{service}:{port}/proxy"
            self._addrs[service] = addr
            return addr
        with self._errors(f"Reading Service {service!r}"):
            svc = self.core.read_namespaced_service(service, self.namespace)
        type_ = svc.spec.type
        if type_ == "LoadBalancer":
            addr = self._load_balancer_addr(service, port)
        elif type_ == "NodePort":
            node_port = next(p.node_port for p in svc.spec.ports if p.port == port)
            addr = f"{self._node_ip()}:{node_port}"
        else:
            raise ContainerError(
                f"Service {service!r} is of type {type_}, reachable only inside the cluster; "
                "pass kubernetes_proxy_addr (e.g. from `kubectl proxy`)", service=service)
        self._addrs[service] = addr
        return addr

    def _load_balancer_addr(self, service: str, port: int) -> str:
        deadline = time.monotonic() + self.start_timeout
        while True:
            with self._errors(f"Reading Service {service!r}"):
                svc = self.core.read_namespaced_service(service, self.namespace)
            lb = svc.status.load_balancer if svc.status else None
            for ingress in (lb.ingress or []) if lb else []:
                host = ingress.ip or ingress.hostname
                if host:
                    return f"{host}:{port}"
            if time.monotonic() > deadline:
                raise ContainerError(f"LoadBalancer Service {service!r} got no ingress address "
                                     f"within {self.start_timeout:.0f}s", service=service)
            time.sleep(1.0)

    def _node_ip(self) -> str:
        with self._errors("Listing nodes (NodePort addresses need read access to nodes)"):
            nodes = self.core.list_node().items
        wanted = ("InternalIP",) if self.use_internal_ip else ("ExternalIP", "InternalIP")
        for kind in wanted:
            for node in nodes:
                for address in (node.status.addresses or []) if node.status else []:
                    if address.type == kind:
                        return address.address
        raise ContainerError("No node has an " + " or ".join(wanted) + " address for "
                             "NodePort services; use kubernetes_proxy_addr or a LoadBalancer")

    # -- waiting ---------------------------------------------------------------------
    @staticmethod
    def _is_ready(dep: Any) -> bool:
        want = dep.spec.replicas if dep.spec.replicas is not None else 1
        status = dep.status
        if status is None:
            return want == 0
        observed = (status.observed_generation or 0) >= (dep.metadata.generation or 0)
        return observed and (status.available_replicas or 0) >= want and \
            (status.updated_replicas or 0) >= want and (status.replicas or 0) == want

    def _wait_ready(self, deployments: list[str], timeout: float,
                    error: type[ClipperException]) -> None:
        """Watch the cluster's Deployments until each named one has all its
        replicas ready (and no extra ones); else raise ``error`` naming the
        first that did not, with its pods' states and events."""
        import kubernetes

        pending = set(deployments)
        if not pending:
            return
        self.progress("waiting for " + ", ".join(sorted(pending)))
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            watch = kubernetes.watch.Watch()
            with self._errors("Watching Deployments", error):
                for event in watch.stream(self.apps.list_namespaced_deployment, self.namespace,
                                          label_selector=self._selector(),
                                          timeout_seconds=max(1, min(int(left), 30)),
                                          _request_timeout=max(1, min(int(left), 30)) + 10):
                    dep = event["object"]
                    name = dep.metadata.name
                    if name not in pending:
                        continue
                    if event["type"] == "DELETED":
                        watch.stop()
                        raise error(f"Deployment {name!r} was deleted while waiting for it",
                                    deployment=name)
                    if self._is_ready(dep):
                        pending.discard(name)
                        self.progress(f"{name} is ready ({dep.spec.replicas} replicas)")
                        if not pending:
                            watch.stop()
                            break
                    if time.monotonic() > deadline:
                        watch.stop()
                        break
        if pending:
            name = sorted(pending)[0]
            raise error(f"Deployment {name!r} in namespace {self.namespace!r} did not become "
                        f"ready within {timeout:.0f}s: {self._diagnose(name)}",
                        deployment=name, namespace=self.namespace)

    def _diagnose(self, deployment: str) -> str:
        """Why a Deployment is not ready: its status, its pods' states, recent events."""
        parts: list[str] = []
        try:
            dep = self.apps.read_namespaced_deployment(deployment, self.namespace)
            status = dep.status
            parts.append(f"{(status.ready_replicas if status else 0) or 0}/"
                         f"{dep.spec.replicas} replicas ready")
            labels = dep.spec.selector.match_labels or {}
            pods = self.core.list_namespaced_pod(
                self.namespace, label_selector=names.selector(labels)).items
        except Exception as exc:  # noqa: BLE001 - diagnosis is best effort
            return f"(could not read it: {exc})"
        involved = [deployment]
        for pod in pods:
            involved.append(pod.metadata.name)
            states = []
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                state = cs.state
                if state and state.waiting:
                    states.append(f"{cs.name} waiting: {state.waiting.reason}"
                                  + (f" ({state.waiting.message})" if state.waiting.message
                                     else ""))
                elif state and state.terminated:
                    states.append(f"{cs.name} terminated: {state.terminated.reason} "
                                  f"(exit code {state.terminated.exit_code})")
                else:
                    states.append(f"{cs.name} {'ready' if cs.ready else 'running, not ready'}")
                if cs.restart_count:
                    states[-1] += f", {cs.restart_count} restarts"
            phase = pod.status.phase if pod.status else "Unknown"
            parts.append(f"pod {pod.metadata.name} {phase}: " + ("; ".join(states) or "-"))
        events = []
        try:
            for name in involved:
                found = self.core.list_namespaced_event(
                    self.namespace, field_selector=f"involvedObject.name={name}").items
                events += found
        except Exception:  # noqa: BLE001 - diagnosis is best effort
            pass
        events.sort(key=lambda e: (e.type != "Warning", str(e.last_timestamp or "")))
        if events:
            lines = [f"{e.type} {e.reason} on {e.involved_object.name}: {e.message}"
                     for e in events[:6]]
            parts.append("events: " + " | ".join(lines))
        return "; ".join(parts)

    def _wait_gone(self, timeout: float, **labels: str) -> None:
        """Until no Deployment and no pod with these labels is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._errors("Listing Deployments and pods"):
                deps = self.apps.list_namespaced_deployment(
                    self.namespace, label_selector=self._selector(**labels)).items
                pods = self.core.list_namespaced_pod(
                    self.namespace, label_selector=self._selector(**labels)).items
            if not deps and not pods:
                return
            if time.monotonic() > deadline:
                left = [d.metadata.name for d in deps] + [p.metadata.name for p in pods]
                raise ContainerError(f"Still terminating after {timeout:.0f}s: "
                                     + ", ".join(left))
            time.sleep(0.2)

    # -- models ----------------------------------------------------------------------
    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Build the model image with a Docker engine (through the clipper-docker
        plugin) and push it to ``container_registry`` (default: the manager's),
        which the Kubernetes nodes must be able to pull from."""
        try:
            from clipper_docker.manager import DockerContainerManager
        except ImportError as exc:
            raise BuildError("Building model images needs the clipper-docker plugin and a "
                             "Docker engine (pip install clipper-docker); or build the image "
                             "elsewhere and pass it to deploy_model") from exc
        registry = container_registry or self.container_registry
        return DockerContainerManager(cluster_name=self.cluster_name).build_model(
            name, version, model_data_path, base_image, registry, pkgs_to_install)

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

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every model pod of the cluster: its phase/readiness and restart count."""
        out = []
        for pod in self._pods(**{names.ROLE: names.ROLE_MODEL}):
            labels = pod.metadata.labels or {}
            statuses = (pod.status.container_statuses or []) if pod.status else []
            restarts = sum(cs.restart_count or 0 for cs in statuses)
            if pod.metadata.deletion_timestamp is not None:
                state = "terminating"
            elif statuses and all(cs.ready for cs in statuses):
                state = "running"
            elif any(cs.state and cs.state.waiting and
                     cs.state.waiting.reason == "CrashLoopBackOff" for cs in statuses):
                state = "restarting"
            elif pod.status and pod.status.phase in ("Failed", "Succeeded"):
                state = "exited"
            else:
                state = "pending"
            out.append(ReplicaStatus(model_name=labels.get(names.MODEL_NAME, ""),
                                     model_version=labels.get(names.MODEL_VERSION, ""),
                                     replica_id=pod.metadata.name, status=state,
                                     restarts=restarts, handle=pod.metadata.name))
        return sorted(out, key=lambda r: (r.model_name, r.model_version, r.replica_id))

    def get_logs(self, logging_dir: str) -> list[str]:
        """One file per pod (per container when a pod has several) of the cluster."""
        from kubernetes.client.exceptions import ApiException

        directory = Path(logging_dir)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for pod in self._pods():
            containers = [c.name for c in pod.spec.containers]
            for container in containers:
                suffix = "" if len(containers) == 1 else f"-{container}"
                path = directory / f"{pod.metadata.name}{suffix}.log"
                try:
                    text = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace,
                                                             container=container)
                except ApiException as exc:
                    from .api import status_message

                    text = f"(no log: {status_message(exc)})\n"
                path.write_text(text if isinstance(text, str) else str(text))
                paths.append(str(path))
        return paths

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
        for name, versions in models.items():
            for version in versions:
                self._wait_gone(self.deploy_timeout, **{
                    names.ROLE: names.ROLE_MODEL, names.MODEL_NAME: str(name),
                    names.MODEL_VERSION: str(version)})

    def stop_all_model_containers(self) -> None:
        """Delete every model Deployment of the cluster; return when the pods are gone."""
        self._delete_deployments(True, **{names.ROLE: names.ROLE_MODEL})
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


__all__ = ["KubernetesContainerManager", "MGMT_FRONTEND_IMAGE", "QUERY_FRONTEND_IMAGE",
           "REDIS_IMAGE"]
