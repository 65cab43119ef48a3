"""DockerContainerManager: a Clipper cluster as containers on one Docker engine.

``start_clipper`` runs Redis (the state store, unless ``redis_ip`` is given),
the management frontend and the query frontends on ``docker_network``
(Clipper's ``clipper_network`` by default, created when missing; ``"host"``
for host networking, chosen automatically when the engine cannot create a
bridge network for the default).  Model replicas run with restart policy
``always``.  Everything is found again by label (:mod:`clipper_docker.cluster`),
so ``connect()`` in another process sees the same cluster.  What runs comes
from :mod:`clipper_core.launch`; placement of the frontends is in
:mod:`clipper_docker.startup`, images in :mod:`clipper_docker.registry`.
Docker SDK errors become ContainerError, BuildError or ClusterStartError.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

from clipper_core import curve, launch
from clipper_core.errors import ClusterStartError, ContainerError, ValidationError
from clipper_core.models import InputType, ReplicaStatus, validate_name

from . import cluster as lb
from . import networks, probes, reconcile, replicas, startup
from .builds import BuildOptions, Progress, ensure_image
from .cluster import ClusterInfo
from .engine import connect_engine, docker_errors, log
from .images import ProjectImages
from .registry import DockerRegistry

ENV_REDIS_IMAGE = "CLIPPER_REDIS_IMAGE"
DEFAULT_REDIS_IMAGE = "redis:7"

_IMAGE_HINT = ("Build the project's images with `python -m clipper_docker.images` "
               "(see clipper_docker.images)")
_WHO = "DockerContainerManager"


class DockerContainerManager:
    """Runs a cluster's frontends and model replicas as Docker containers.

    The positional parameters are Clipper's, in Clipper's order and with its
    defaults; the rest are keyword-only.

    :param cluster_name: names the cluster; every container and the Redis key
        prefix carry it.
    :param docker_ip_address: where the engine's published ports are reached.
    :param use_centralized_log: accepted for compatibility; logs are read with
        ``get_clipper_logs()`` (warns once when True).
    :param fluentd_port: accepted for compatibility; no Fluentd runs (warns
        once when not 24224).
    :param clipper_query_port, clipper_management_port, clipper_rpc_port: the
        frontends' ports (published on the engine's host).
    :param redis_ip: use this external Redis instead of starting one.
    :param redis_port: port of that Redis, or of the one the cluster starts.
    :param prometheus_port: accepted for compatibility; metrics are served at
        ``GET /metrics`` on the query port (warns once when not 9090).
    :param docker_network: network to run on (created when missing; removed
        by ``stop_all`` when this cluster created it and nothing else uses
        it); ``"host"`` = host networking.
    :param extra_container_kwargs: extra ``containers.run`` arguments for
        every container (e.g. ``{"mem_limit": "1g"}``); its ``labels`` are
        added to every container's labels, as in Clipper.
    :param labels: extra labels for every container.
    :param redis_image: image Redis runs from (``CLIPPER_REDIS_IMAGE``, ``redis:7``).
    :param python_base_image, build_ca_bundle, pip_args, build_network: how
        images are built (see :class:`clipper_docker.builds.BuildOptions`).
    :param admin_token: bearer token for ``/admin/*``; None (default) makes one
        at start (``connect()`` reads it back); ``False``/``"none"``: no token.
    :param rpc_auth: ``"curve"`` (default, or ``CLIPPER_RPC_AUTH``): replicas
        authenticate with the cluster's CURVE keys, made at start
        (:mod:`clipper_docker.rpc_keys`); ``"none"``: plain RPC v3, for original
        Clipper model containers (the RPC port is then open to any peer).
    :param redis_password: an external Redis's password (its own gets a generated one).
    :param start_timeout: seconds ``start_clipper`` waits for readiness.
    :param replica_timeout: seconds a deploy waits for new replicas to connect.
    :param images: tags of the project's images (``clipper-core/...:<version>``).
    :param progress: called with each line of build/push output.
    """

    def __init__(self, cluster_name: str = "default-cluster",
                 docker_ip_address: str = "localhost", use_centralized_log: bool = False,
                 fluentd_port: int = 24224, clipper_query_port: int = 1337,
                 clipper_management_port: int = 1338, clipper_rpc_port: int = 7000,
                 redis_ip: str | None = None, redis_port: int = 6379,
                 prometheus_port: int = 9090, docker_network: str | None = lb.DEFAULT_NETWORK,
                 extra_container_kwargs: dict[str, Any] | None = None, *,
                 labels: dict[str, str] | None = None, redis_image: str | None = None,
                 python_base_image: str | None = None, build_ca_bundle: str | None = None,
                 pip_args: list[str] | str | None = None, build_network: str | None = None,
                 admin_token: str | bool | None = None, redis_password: str | None = None,
                 rpc_auth: str | None = None, start_timeout: float = 90.0,
                 replica_timeout: float = 60.0, images: ProjectImages | None = None,
                 docker_client_kwargs: dict[str, Any] | None = None,
                 progress: Progress | None = None) -> None:
        self.cluster_name = validate_name("cluster name", cluster_name)
        self.docker_ip_address = docker_ip_address
        self.clipper_query_port = int(clipper_query_port)
        self.clipper_management_port = int(clipper_management_port)
        self.clipper_rpc_port = int(clipper_rpc_port)
        self.redis_ip = redis_ip
        self.redis_port = int(redis_port)
        #: Metrics are served by the query frontend (``GET /metrics``).
        self.prometheus_port = int(prometheus_port)
        self.docker_network = docker_network or lb.DEFAULT_NETWORK
        self.extra_container_kwargs = dict(extra_container_kwargs or {})
        self.labels = {**dict(self.extra_container_kwargs.pop("labels", None) or {}),
                       **dict(labels or {})}
        launch.ignored_parameter(_WHO, "use_centralized_log", use_centralized_log, False,
                                 "read logs with get_clipper_logs()")
        launch.ignored_parameter(_WHO, "fluentd_port", fluentd_port, 24224, "no Fluentd runs")
        launch.ignored_parameter(_WHO, "prometheus_port", prometheus_port, 9090,
                                 "metrics are served at /metrics on the query port")
        self.redis_image = redis_image or os.environ.get(ENV_REDIS_IMAGE) or DEFAULT_REDIS_IMAGE
        self._token_option = admin_token
        self.admin_token = (admin_token if isinstance(admin_token, str) and admin_token != "none"
                            else os.environ.get(launch.ADMIN_TOKEN_ENV) if admin_token is None
                            else None) or None
        self.redis_password = redis_password
        #: ``curve`` or ``none`` (``connect()`` takes the running cluster's)
        self.rpc_auth = launch.rpc_auth_option(rpc_auth)
        self.rpc_keys: curve.ClusterKeys | None = None
        self.start_timeout = start_timeout
        self.replica_timeout = replica_timeout
        self.progress = progress
        self._client_kwargs = dict(docker_client_kwargs or {})
        self._client: Any = None
        self._info: ClusterInfo | None = None
        self.registry = DockerRegistry(
            images=images, python_base_image=python_base_image, build_ca_bundle=build_ca_bundle,
            pip_args=pip_args, build_network=build_network, progress=progress)

    @property
    def images(self) -> ProjectImages:
        """Tags of the project's images this manager runs."""
        return self.registry.images

    # -- engine ------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The docker SDK client, connected on first use."""
        if self._client is None:
            self._client = connect_engine(**self._client_kwargs)
            self.registry._client = self._client
        return self._client

    def build_options(self) -> BuildOptions:
        """How images are built (see :meth:`DockerRegistry.build_options`)."""
        self.client  # noqa: B018 - the registry shares the manager's engine
        return self.registry.build_options()

    def _containers(self, role: str | None = None,
                    labels: dict[str, str] | None = None) -> list[Any]:
        """Every container (any state) of the cluster, of ``role`` and with ``labels``."""
        filters = [f"{lb.CLUSTER}={self.cluster_name}"]
        if role:
            filters.append(f"{lb.ROLE}={role}")
        filters += [f"{k}={v}" for k, v in (labels or {}).items()]
        with docker_errors(f"Listing containers of cluster {self.cluster_name}"):
            return self.client.containers.list(all=True, filters={"label": filters})

    def run(self, image: str, *, name: str, role: str, labels: dict[str, str],
             info: ClusterInfo | None = None, error: type[ContainerError] = ContainerError,
             aliases: list[str] | None = None, **kwargs: Any) -> Any:
        """Start a container of the cluster with its labels on its network."""
        network = info.network if info else self._network_choice()
        all_labels = {**self.labels, **labels, lb.CLUSTER: self.cluster_name, lb.ROLE: role}
        options: dict[str, Any] = {"detach": True, "name": name, "labels": all_labels,
                                   "init": True, "restart_policy": reconcile.policy(role),
                                   **kwargs}
        if network == lb.HOST_NETWORK:
            options["network_mode"] = "host"
            options.pop("ports", None)
        else:
            options["network"] = network
        options.update(self.extra_container_kwargs)
        if aliases and network != lb.HOST_NETWORK:
            options["networking_config"] = {
                network: self.client.api.create_endpoint_config(aliases=aliases)}
        with docker_errors(f"Starting container {name} ({image})", error,
                           container=name, image=image):
            container = self.client.containers.run(image, **options)
        return container

    # -- cluster lifecycle --------------------------------------------------
    def _network_choice(self) -> str:
        if self._info is not None:
            return self._info.network
        return self.docker_network

    def start_clipper(self, query_frontend_image: str | None = None,
                      mgmt_frontend_image: str | None = None, cache_size: int = 33554432,
                      num_frontend_replicas: int = 1) -> None:
        """Start Redis (unless ``redis_ip``), the management frontend and
        ``num_frontend_replicas`` query frontends; return when all answer.

        Raises ClusterStartError (with the containers' log tails) when one
        exits or does not answer within ``start_timeout``; what was started
        is removed again.
        """
        if isinstance(num_frontend_replicas, bool) or int(num_frontend_replicas) < 1:
            raise ValidationError("num_frontend_replicas must be at least 1",
                                  value=num_frontend_replicas)
        live = [c for c in self._containers() if c.status in lb.LIVE_STATES]
        if live:
            raise ClusterStartError(
                f"Cluster {self.cluster_name!r} is already running on the Docker engine "
                f"({', '.join(c.name for c in live)}); connect() to it or stop_all() first",
                cluster=self.cluster_name)
        self._remove(self._containers(), graceful=False)
        self.client  # noqa: B018 - connect first: the registry shares the engine
        query_image = self.registry.project_image(query_frontend_image,
                                                  self.images.query_frontend, ClusterStartError)
        mgmt_image = self.registry.project_image(mgmt_frontend_image,
                                                 self.images.management_frontend,
                                                 ClusterStartError)
        hint = "" if (query_frontend_image or mgmt_frontend_image) else _IMAGE_HINT
        for image in (query_image, mgmt_image) + (() if self.redis_ip else (self.redis_image,)):
            ensure_image(self.client, image, error=ClusterStartError, hint=hint)
        network = networks.ensure(self.client, self.docker_network, self.cluster_name,
                                  self.labels)
        startup.make_secrets(self)
        try:
            self._info = info = startup.layout(self, network, int(num_frontend_replicas))
            deadline = time.monotonic() + self.start_timeout
            if not self.redis_ip:
                startup.start_redis(self, info, deadline)
            startup.start_frontends(self, info, query_image, mgmt_image, int(cache_size),
                                    deadline)
        except BaseException:
            self._info = None
            self._cleanup(graceful=False)
            raise
        log.info("cluster %s started: admin %s, query %s", self.cluster_name,
                 self.get_admin_addr(), self.get_query_addr())

    def connect(self) -> None:
        """Find the running cluster by label (starting again what was stopped);
        ClusterStartError if there is none."""
        reconcile.restart_stopped(self)
        mgmt = [c for c in self._containers(lb.ROLE_MANAGEMENT) if c.status == "running"]
        if not mgmt:
            raise ClusterStartError(
                f"No running Clipper cluster named {self.cluster_name!r} on the Docker "
                "engine; start one with start_clipper()", cluster=self.cluster_name)
        try:
            self._info = ClusterInfo.from_labels(mgmt[0].labels)
        except (KeyError, ValueError) as exc:
            raise ContainerError(f"Container {mgmt[0].name} lacks the cluster labels "
                                 f"({exc}); was it started by clipper-docker?") from exc
        startup.adopt_secrets(self, mgmt[0])

    @property
    def info(self) -> ClusterInfo:
        """The running cluster's layout (found by label on first use)."""
        if self._info is None:
            self.connect()
        assert self._info is not None
        return self._info

    def get_admin_addr(self) -> str:
        return f"{self.docker_ip_address}:{self.info.admin_port}"

    def get_query_addr(self) -> str:
        return f"{self.docker_ip_address}:{self.info.query_port}"

    def get_metric_addr(self) -> str:
        """Metrics are served by the query frontend at ``/metrics``."""
        return self.get_query_addr()

    def get_admin_token(self) -> str | None:
        return self.admin_token

    # -- models ------------------------------------------------------------
    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Build the model image with :meth:`DockerRegistry.build_model` (the
        ``docker`` model registry): ``FROM base_image`` (``"default"`` = the
        project's model base image), tagged ``[registry/]name:version`` and
        pushed when a registry is given.  Returns the tag; BuildError on failure."""
        self.client  # noqa: B018 - the registry shares the manager's engine
        return self.registry.build_model(name, version, model_data_path, base_image,
                                         container_registry, pkgs_to_install)

    def model_containers(self, name: str | None = None, version: str | None = None) -> list[Any]:
        """The docker SDK containers of the cluster's model replicas (any
        state), optionally only those of model ``name`` and ``version``."""
        labels = {}
        if name is not None:
            labels[lb.MODEL_NAME] = name
        if version is not None:
            labels[lb.MODEL_VERSION] = version
        return self._containers(lb.ROLE_MODEL, labels)

    def deploy_model(self, name: str, version: str, input_type: InputType | str, image: str,
                     num_replicas: int = 1) -> None:
        """Run ``num_replicas`` replicas of ``image`` for name:version."""
        self.set_num_replicas(name, version, input_type, image, num_replicas)

    def get_num_replicas(self, name: str, version: str) -> int:
        return reconcile.live_replicas(self, str(name), str(version))

    def set_num_replicas(self, name: str, version: str, input_type: InputType | str, image: str,
                         num_replicas: int) -> None:
        """Start or remove replicas of name:version until ``num_replicas`` run.

        New replicas get the lowest free replica ids; the highest go first.
        Waits up to ``replica_timeout`` for new replicas to connect to the
        query frontends; ContainerError with the log tail if one crashes.
        """
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) \
                or num_replicas < 0:
            raise ValidationError("num_replicas must be a non-negative integer",
                                  value=num_replicas)
        kind = InputType.parse(input_type)
        info = self.info
        reconcile.restart_stopped(self)  # what cannot start is removed
        existing = self.model_containers(name, version)
        live = sorted((c for c in existing if c.status in lb.LIVE_STATES),
                      key=lambda c: int(c.labels.get(lb.MODEL_REPLICA, "0")))
        if len(live) > num_replicas:
            self._remove(live[num_replicas:], graceful=False)
            return
        if len(live) == num_replicas:
            return
        ensure_image(self.client, image)
        used = {int(c.labels.get(lb.MODEL_REPLICA, "0")) for c in live}
        free = (i for i in range(num_replicas * 2 + len(used)) if i not in used)
        started = []
        for _ in range(num_replicas - len(live)):
            index = str(next(free))
            replica = launch.replica_id(name, version, index)
            labels = {**info.to_labels(), lb.MODEL_NAME: name, lb.MODEL_VERSION: version,
                      lb.MODEL_REPLICA: index, lb.MODEL_REPLICA_ID: replica,
                      lb.MODEL_INPUT_TYPE: kind.label, lb.MODEL_IMAGE: image}
            # the image's own CLIPPER_MODEL_PATH (``/model``) stays
            env = launch.replica_process(name=name, version=version, input_type=kind,
                                         frontends=info.rpc_targets(), model_path=None,
                                         replica_id=replica, secrets=launch.ClusterSecrets(
                                             rpc_keys=self.rpc_keys)).environment()
            started.append(self.run(
                image, name=lb.container_name(self.cluster_name, name, version,
                                              secrets.token_hex(3)),
                role=lb.ROLE_MODEL, labels=labels, info=info, environment=env))
        replicas.wait_connected(self, name, version, started)

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every model replica container, with the engine's restart count."""
        reconcile.restart_stopped(self)
        return replicas.statuses(self.model_containers())

    def get_logs(self, logging_dir: str) -> list[str]:
        """Write ``<container name>.log`` for every container of the cluster."""
        return probes.write_logs(self._containers(), logging_dir)

    def stop_models(self, models: dict[str, list[str]]) -> None:
        """Remove every replica of each ``name -> [versions]``."""
        for name, versions in models.items():
            for version in versions:
                self._remove(self.model_containers(str(name), str(version)), graceful=False)

    def stop_all_model_containers(self) -> None:
        self._remove(self.model_containers(), graceful=False)

    def stop_all(self, graceful: bool = True) -> None:
        """Remove every container, the owned network and the volumes of the cluster."""
        self._cleanup(graceful=graceful)
        self._info = None

    def _cleanup(self, graceful: bool) -> None:
        self._remove(self._containers(), graceful=graceful)
        networks.remove_owned(self.client, self.cluster_name)
        with docker_errors(f"Removing volumes of cluster {self.cluster_name}"):
            for vol in self.client.volumes.list(filters={
                    "label": f"{lb.CLUSTER}={self.cluster_name}"}):
                vol.remove(force=True)

    def _remove(self, containers: list[Any], graceful: bool) -> None:
        import docker.errors

        for c in containers:
            try:
                if graceful and c.status == "running":
                    c.stop(timeout=5)
                c.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                raise ContainerError(f"Removing container {c.name} failed: {exc}",
                                     container=c.name) from exc


__all__ = ["DockerContainerManager"]
