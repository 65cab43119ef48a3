"""DockerContainerManager: a Clipper cluster as containers on one Docker engine.

``start_clipper`` runs Redis (the state store, unless ``redis_ip`` is given),
the management frontend and the query frontends on a network the cluster
owns (``clipper-<cluster>``; ``docker_network="host"`` for host networking,
chosen automatically when the engine cannot create a bridge network).  Model
replicas run with restart policy ``always``.  Everything is found again by
label (:mod:`clipper_docker.cluster`), so ``connect()`` in another process
sees the same cluster.  Docker SDK errors become ContainerError, BuildError
or ClusterStartError.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from clipper_core.errors import (
    BuildError,
    ClusterStartError,
    ContainerError,
    ValidationError,
)
from clipper_core.models import InputType, ReplicaStatus, validate_name

from . import cluster as lb
from .builds import BuildOptions, Progress, build_image, ensure_image, model_dockerfile, push_image
from .cluster import ClusterInfo
from .engine import connect_engine, docker_errors, has_default_bridge, log
from .images import ProjectImages
from .probes import admin_post, exec_ok, free_port, http_ok, log_tail

ENV_REDIS_IMAGE = "CLIPPER_REDIS_IMAGE"
DEFAULT_REDIS_IMAGE = "redis:7"

_IMAGE_HINT = ("Build the project's images with `python -m clipper_docker.images` "
               "(see clipper_docker.images)")


class DockerContainerManager:
    """Runs a cluster's frontends and model replicas as Docker containers.

    :param cluster_name: names the cluster; every container, the network and
        the Redis key prefix carry it.
    :param docker_ip_address: where the engine's published ports are reached.
    :param redis_ip: use this external Redis instead of starting one.
    :param docker_network: network to run on; None = a network the cluster
        owns, ``"host"`` = host networking.
    :param extra_container_kwargs: extra ``containers.run`` arguments for
        every container (e.g. ``{"mem_limit": "1g"}``).
    :param labels: extra labels for every container.
    :param use_centralized_log: accepted for compatibility; ignored.
    :param redis_image: image Redis runs from (``CLIPPER_REDIS_IMAGE``, ``redis:7``).
    :param python_base_image, build_ca_bundle, pip_args, build_network: how
        images are built (see :class:`clipper_docker.builds.BuildOptions`).
    :param admin_token: bearer token for ``/admin/*`` (``CLIPPER_ADMIN_TOKEN``).
    :param start_timeout: seconds ``start_clipper`` waits for readiness.
    :param replica_timeout: seconds a deploy waits for new replicas to connect.
    :param images: tags of the project's images (defaults to ``clipper/...:<version>``).
    :param progress: called with each line of build/push output.
    """

    def __init__(self, cluster_name: str = "default", docker_ip_address: str = "localhost",
                 clipper_query_port: int = 1337, clipper_management_port: int = 1338,
                 clipper_rpc_port: int = 7000, redis_ip: str | None = None,
                 redis_port: int = 6379, prometheus_port: int = 1390,
                 docker_network: str | None = None,
                 extra_container_kwargs: dict[str, Any] | None = None,
                 labels: dict[str, str] | None = None, use_centralized_log: bool = False,
                 redis_image: str | None = None, python_base_image: str | None = None,
                 build_ca_bundle: str | None = None, pip_args: list[str] | str | None = None,
                 build_network: str | None = None, admin_token: str | None = None,
                 start_timeout: float = 90.0, replica_timeout: float = 60.0,
                 images: ProjectImages | None = None,
                 docker_client_kwargs: dict[str, Any] | None = None,
                 progress: Progress | None = None) -> None:
        self.cluster_name = validate_name("cluster name", cluster_name)
        self.docker_ip_address = docker_ip_address
        self.clipper_query_port = int(clipper_query_port)
        self.clipper_management_port = int(clipper_management_port)
        self.clipper_rpc_port = int(clipper_rpc_port)
        self.redis_ip = redis_ip
        self.redis_port = int(redis_port)
        #: Metrics are served by the query frontend (``GET /metrics``); kept
        #: for compatibility with Clipper's signature.
        self.prometheus_port = int(prometheus_port)
        self.docker_network = docker_network
        self.extra_container_kwargs = dict(extra_container_kwargs or {})
        self.labels = dict(labels or {})
        if use_centralized_log:
            warnings.warn("use_centralized_log is not supported by clipper-docker and is "
                          "ignored; use get_clipper_logs()", stacklevel=2)
        self.redis_image = redis_image or os.environ.get(ENV_REDIS_IMAGE) or DEFAULT_REDIS_IMAGE
        self._build_args: dict[str, Any] = {"ca_bundle": build_ca_bundle, "pip_args": pip_args,
                            "network_mode": build_network, "python_base_image": python_base_image}
        self.admin_token = admin_token or os.environ.get("CLIPPER_ADMIN_TOKEN") or None
        self.start_timeout = start_timeout
        self.replica_timeout = replica_timeout
        self.images = images or ProjectImages()
        self.progress = progress
        self._client_kwargs = dict(docker_client_kwargs or {})
        self._client: Any = None
        self._info: ClusterInfo | None = None

    # -- engine ------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The docker SDK client, connected on first use."""
        if self._client is None:
            self._client = connect_engine(**self._client_kwargs)
        return self._client

    def build_options(self) -> BuildOptions:
        """Build options from the constructor and the environment; host
        networking for builds when the engine has no default bridge."""
        options = BuildOptions.from_env(**self._build_args)
        if options.network_mode is None and not has_default_bridge(self.client):
            options = attrs.evolve(options, network_mode="host")
        return options

    def _containers(self, role: str | None = None,
                    labels: dict[str, str] | None = None) -> list[Any]:
        """Every container (any state) of the cluster, of ``role`` and with ``labels``."""
        filters = [f"{lb.CLUSTER}={self.cluster_name}"]
        if role:
            filters.append(f"{lb.ROLE}={role}")
        filters += [f"{k}={v}" for k, v in (labels or {}).items()]
        with docker_errors(f"Listing containers of cluster {self.cluster_name}"):
            return self.client.containers.list(all=True, filters={"label": filters})

    def _run(self, image: str, *, name: str, role: str, labels: dict[str, str],
             info: ClusterInfo | None = None, error: type[ContainerError] = ContainerError,
             aliases: list[str] | None = None, **kwargs: Any) -> Any:
        network = info.network if info else self._network_choice()
        all_labels = {**self.labels, **labels, lb.CLUSTER: self.cluster_name, lb.ROLE: role}
        options: dict[str, Any] = {"detach": True, "name": name, "labels": all_labels,
                                   "init": True, **kwargs}
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
        return self.docker_network or lb.network_name(self.cluster_name)

    def _ensure_network(self) -> str:
        """Create (or reuse) the cluster's network; fall back to host
        networking when the engine cannot create a bridge network."""
        import docker.errors

        if self.docker_network == lb.HOST_NETWORK:
            return lb.HOST_NETWORK
        name = self.docker_network or lb.network_name(self.cluster_name)
        try:
            if self.client.networks.list(names=[name]):
                return name
            self.client.networks.create(name, driver="bridge", check_duplicate=True, labels={
                **self.labels, lb.CLUSTER: self.cluster_name, lb.OWNED: "true"})
            return name
        except docker.errors.DockerException as exc:
            if self.docker_network is not None:
                raise ClusterStartError(f"Creating network {name} failed: {exc}",
                                        network=name) from exc
            log.warning("cannot create bridge network %s (%s); using host networking",
                        name, exc)
            return lb.HOST_NETWORK

    def _default_image(self, image: str | None, default: str) -> str:
        image = image or default
        if image in self.images.targets().values():
            import docker.errors

            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound:
                from .images import build_project_images

                log.info("project image %s is missing; building the project images", image)
                opts = self.build_options()
                build_project_images(python_base_image=opts.python_base_image,
                                     ca_bundle=opts.ca_bundle, pip_args=list(opts.pip_args),
                                     network_mode=opts.network_mode, images=self.images,
                                     client=self.client, progress=self.progress)
            except docker.errors.DockerException as exc:
                raise ContainerError(f"Inspecting image {image} failed: {exc}",
                                     image=image) from exc
        return image

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
        query_image = self._default_image(query_frontend_image, self.images.query_frontend)
        mgmt_image = self._default_image(mgmt_frontend_image, self.images.management_frontend)
        hint = "" if (query_frontend_image or mgmt_frontend_image) else _IMAGE_HINT
        for image in (query_image, mgmt_image) + (() if self.redis_ip else (self.redis_image,)):
            ensure_image(self.client, image, error=ClusterStartError, hint=hint)
        network = self._ensure_network()
        try:
            self._info = info = self._layout(network, int(num_frontend_replicas))
            self._start_containers(info, query_image, mgmt_image, int(cache_size))
        except BaseException:
            self._info = None
            self._cleanup(graceful=False)
            raise
        log.info("cluster %s started: admin %s, query %s", self.cluster_name,
                 self.get_admin_addr(), self.get_query_addr())

    def _layout(self, network: str, replicas: int) -> ClusterInfo:
        name = self.cluster_name
        host = network == lb.HOST_NETWORK
        if self.redis_ip:
            redis_host = self.redis_ip
        else:
            redis_host = "127.0.0.1" if host else lb.container_name(name, "redis")
        if host:
            endpoints = ((self.clipper_query_port, self.clipper_rpc_port),) + tuple(
                (free_port(), free_port()) for _ in range(replicas - 1))
            frontends = tuple(f"127.0.0.1:{rpc}" for _, rpc in endpoints)
        else:
            endpoints = ((self.clipper_query_port, self.clipper_rpc_port),) * replicas
            frontends = (f"{lb.query_alias(name)}:{self.clipper_rpc_port}",)
        return ClusterInfo(cluster=name, network=network,
                           admin_port=self.clipper_management_port,
                           query_port=self.clipper_query_port, rpc_port=self.clipper_rpc_port,
                           store_url=f"redis://{redis_host}:{self.redis_port}/0?prefix={name}",
                           frontends=frontends, query_endpoints=endpoints)

    def _start_containers(self, info: ClusterInfo, query_image: str, mgmt_image: str,
                          cache_size: int) -> None:
        name = self.cluster_name
        labels = info.to_labels()
        deadline = time.monotonic() + self.start_timeout
        if not self.redis_ip:
            port = str(self.redis_port)
            redis = self._run(
                self.redis_image, name=lb.container_name(name, "redis"), role=lb.ROLE_REDIS,
                labels=labels, info=info, error=ClusterStartError,
                command=["redis-server", "--port", port, "--protected-mode", "no", "--save",
                         "", "--appendonly", "no"]
                + (["--bind", "127.0.0.1"] if info.host_network else []),
                tmpfs={"/data": ""}, ports={f"{port}/tcp": ("127.0.0.1", self.redis_port)})
            self._wait(redis, deadline, lambda: exec_ok(redis, ["redis-cli", "-p", port,
                                                                  "ping"], b"PONG"))
        env = {"CLIPPER_ADMIN_TOKEN": self.admin_token} if self.admin_token else {}
        mgmt = self._run(
            mgmt_image, name=lb.container_name(name, "mgmt"), role=lb.ROLE_MANAGEMENT,
            labels=labels, info=info, error=ClusterStartError, environment=env,
            command=["--store", info.store_url, "--host", "0.0.0.0", "--port",
                     str(info.admin_port)],
            ports={f"{info.admin_port}/tcp": info.admin_port})
        frontends = []
        for i, endpoint in enumerate(info.query_endpoints):
            query_port, rpc_port = endpoint
            ports = ({f"{query_port}/tcp": query_port, f"{rpc_port}/tcp": rpc_port}
                     if i == 0 else {})
            frontends.append(self._run(
                query_image, name=lb.container_name(name, "query", str(i)), role=lb.ROLE_QUERY,
                labels={**labels, lb.FRONTEND_ID: f"query-{i}"}, info=info,
                error=ClusterStartError, aliases=[lb.query_alias(name)], ports=ports,
                command=["--store", info.store_url, "--host", "0.0.0.0", "--port",
                         str(query_port), "--rpc-host", "0.0.0.0", "--rpc-port", str(rpc_port),
                         "--cache-size", str(cache_size), "--frontend-id", f"query-{i}"]))
        self._wait(mgmt, deadline, lambda: http_ok(
            f"http://{self.docker_ip_address}:{info.admin_port}/admin/ping", self.admin_token))
        for i, (container, (query_port, _)) in enumerate(
                zip(frontends, info.query_endpoints, strict=True)):
            if i == 0 or info.host_network:
                url = f"http://{self.docker_ip_address}:{query_port}/healthz"
                self._wait(container, deadline, functools.partial(http_ok, url, None))
            else:
                probe = ["python", "-c", "import urllib.request as u; u.urlopen("
                         f"'http://127.0.0.1:{query_port}/healthz', timeout=2)"]
                self._wait(container, deadline, functools.partial(exec_ok, container, probe))

    def _wait(self, container: Any, deadline: float, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until it is true; ClusterStartError with the log tail
        when the container exits or the deadline passes."""
        while True:
            if ready():
                return
            with docker_errors(f"Inspecting container {container.name}", ClusterStartError):
                container.reload()
            if container.status not in ("created", "running"):
                raise ClusterStartError(
                    f"Container {container.name} of cluster {self.cluster_name} exited "
                    f"(status {container.status}, exit code "
                    f"{container.attrs['State'].get('ExitCode')}); last log lines:\n"
                    f"{log_tail(container)}", container=container.name)
            if time.monotonic() > deadline:
                raise ClusterStartError(
                    f"Container {container.name} of cluster {self.cluster_name} did not "
                    f"become ready within {self.start_timeout:.0f}s; last log lines:\n"
                    f"{log_tail(container)}", container=container.name)
            time.sleep(0.2)

    def connect(self) -> None:
        """Find the running cluster by label; ClusterStartError if there is none."""
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
        """Build ``FROM base_image`` with ``model_data_path`` at ``/model/`` and
        ``pkgs_to_install`` pip-installed; tag ``[registry/]name:version`` and
        push when a registry is given.  ``base_image="default"`` is the
        project's model base image.  Returns the tag; BuildError on failure."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        source = Path(model_data_path)
        if not source.is_dir():
            raise BuildError(f"model_data_path {model_data_path!r} is not a directory",
                             model_data_path=str(model_data_path))
        if pkgs_to_install is not None and (isinstance(pkgs_to_install, str) or not all(
                isinstance(p, str) for p in pkgs_to_install)):
            raise ValidationError("pkgs_to_install must be a list of strings",
                                  value=pkgs_to_install)
        if base_image in (None, "", "default"):
            base_image = self._default_image(None, self.images.model_base)
        else:
            ensure_image(self.client, base_image, error=BuildError)
        tag = f"{container_registry.rstrip('/')}/{name}:{version}" if container_registry \
            else f"{name}:{version}"
        options = self.build_options()
        with tempfile.TemporaryDirectory(prefix="clipper-model-") as tmp:
            context = Path(tmp)
            shutil.copytree(source, context / "model", symlinks=False)
            (context / "Dockerfile").write_text(
                model_dockerfile(base_image, options, context, list(pkgs_to_install or [])))
            (context / ".dockerignore").write_text("")
            build_image(self.client, context, tag, options=options, progress=self.progress)
        if container_registry:
            push_image(self.client, tag, progress=self.progress)
        return tag

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
        return sum(1 for c in self.model_containers(str(name), str(version))
                   if c.status in lb.LIVE_STATES)

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
        existing = self.model_containers(name, version)
        dead = [c for c in existing if c.status not in lb.LIVE_STATES]
        self._remove(dead, graceful=False)
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
            replica = lb.replica_id(name, version, index)
            labels = {**info.to_labels(), lb.MODEL_NAME: name, lb.MODEL_VERSION: version,
                      lb.MODEL_REPLICA: index, lb.MODEL_REPLICA_ID: replica,
                      lb.MODEL_INPUT_TYPE: kind.label, lb.MODEL_IMAGE: image}
            env = {"CLIPPER_MODEL_NAME": name, "CLIPPER_MODEL_VERSION": version,
                   "CLIPPER_INPUT_TYPE": kind.label, "CLIPPER_REPLICA_ID": replica,
                   **info.replica_env()}
            started.append(self._run(
                image, name=lb.container_name(self.cluster_name, name, version,
                                              secrets.token_hex(3)),
                role=lb.ROLE_MODEL, labels=labels, info=info, environment=env,
                restart_policy={"Name": "always"}))
        self._wait_replicas(name, version, started)

    def _wait_replicas(self, name: str, version: str, started: list[Any]) -> None:
        """Wait until the management frontend reports the new replicas as
        connected; fail fast when one crashes (exits or restarts)."""
        want = {c.labels[lb.MODEL_REPLICA_ID] for c in started}
        url = f"http://{self.get_admin_addr()}/admin/get_all_containers"
        deadline = time.monotonic() + self.replica_timeout
        while time.monotonic() < deadline:
            for container in started:
                with docker_errors(f"Inspecting container {container.name}"):
                    container.reload()
                if container.status == "exited" or container.attrs.get("RestartCount", 0) > 0:
                    raise ContainerError(
                        f"Replica {container.labels[lb.MODEL_REPLICA_ID]} of {name}:{version} "
                        f"({container.name}) crashed on start (exit code "
                        f"{container.attrs['State'].get('ExitCode')}); last log lines:\n"
                        f"{log_tail(container)}", model_name=name, model_version=version,
                        container=container.name)
            connected = {r["model_replica_id"] for r in admin_post(url, self.admin_token,
                                                                    {"verbose": True})
                         if r.get("model_name") == name and r.get("model_version") == version
                         and r.get("connected")}
            if want <= connected:
                return
            time.sleep(0.2)
        log.warning("replicas %s of %s:%s did not all connect within %.0fs",
                    sorted(want), name, version, self.replica_timeout)

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every model replica container, with the engine's restart count."""
        out = []
        for c in self.model_containers():
            out.append(ReplicaStatus(
                model_name=c.labels.get(lb.MODEL_NAME, ""),
                model_version=c.labels.get(lb.MODEL_VERSION, ""),
                replica_id=c.labels.get(lb.MODEL_REPLICA_ID, ""), status=c.status,
                restarts=int(c.attrs.get("RestartCount", 0)), handle=c.id[:12]))
        return sorted(out, key=lambda r: (r.model_name, r.model_version, r.replica_id))

    def get_logs(self, logging_dir: str) -> list[str]:
        """Write ``<container name>.log`` for every container of the cluster."""
        out_dir = Path(logging_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for c in self._containers():
            path = out_dir / f"{c.name}.log"
            with docker_errors(f"Reading logs of {c.name}"):
                path.write_bytes(c.logs(stdout=True, stderr=True, timestamps=True))
            paths.append(str(path))
        return sorted(paths)

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
        with docker_errors(f"Removing networks of cluster {self.cluster_name}"):
            for net in self.client.networks.list(filters={"label": [
                    f"{lb.CLUSTER}={self.cluster_name}", f"{lb.OWNED}=true"]}):
                net.remove()
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
