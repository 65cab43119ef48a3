"""NomadContainerManager: a Clipper cluster as Nomad jobs.

One job per role (``clipper-<cluster>-redis``, ``-mgmt``, ``-query``) and one
per model version (``clipper-<cluster>-model-<name>.<version>``, its task
group count being the number of replicas).  Jobs carry ``Meta`` naming the
cluster and role, so ``connect()`` in a new process finds them.  Errors from
python-nomad become clipper-core errors; a job that does not come up raises
an error naming the failing allocation and its task events.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipper_core import launch
from clipper_core.errors import (
    BuildError,
    ClipperException,
    ClusterStartError,
    ContainerError,
    NotFoundError,
    ValidationError,
)
from clipper_core.models import InputType, ReplicaStatus, validate_name

from . import jobs, local_models
from .cluster_secrets import adopt_secrets, start_settings
from .jobs import JobSettings
from .waits import AllocationWaits

log = logging.getLogger("clipper.nomad")

#: The project's own frontend images (built by the clipper-docker plugin).
DEFAULT_QUERY_IMAGE = launch.DEFAULT_IMAGES.query_frontend
DEFAULT_MGMT_IMAGE = launch.DEFAULT_IMAGES.management_frontend

_STATUS = {"pending": "pending", "running": "running", "complete": "exited",
           "failed": "failed", "lost": "lost"}


class NomadContainerManager(AllocationWaits):
    """Starts and stops a Clipper cluster through Nomad's HTTP API.

    :param cluster_name: DNS-1123 label; prefixes every job and service.
    :param nomad_address: e.g. ``http://127.0.0.1:4646`` (default ``NOMAD_ADDR``).
    :param region, namespace, token: Nomad region, namespace and ACL token
        (defaults from ``NOMAD_REGION``, ``NOMAD_NAMESPACE``, ``NOMAD_TOKEN``).
    :param datacenters: where jobs may run.
    :param driver: ``docker`` (images) or ``raw_exec`` (the model directory and
        Python on the Nomad client run directly: for single-host setups and
        tests; ``build_model`` then copies the model into ``build_dir``).
    :param discovery: ``nomad`` (native services, dynamic ports), ``consul``
        (Consul DNS names, static ports) or ``static`` (static ports on
        ``static_host``).
    :param redis_ip, redis_port: an external Redis; without ``redis_ip`` a
        Redis job is started for the cluster.
    :param admin_token: bearer token for ``/admin/*``; None generates one at
        start (``connect()`` reads it back); ``False``/``"none"``: no token.
    :param rpc_auth: ``"curve"`` (default, or ``CLIPPER_RPC_AUTH``): CURVE keys made
        at start, in the task environments (:mod:`clipper_nomad.cluster_secrets`);
        ``"none"``: plain RPC v3, for Clipper's model containers.
    :param min_healthy_time_s, model_min_healthy_time_s: how long a frontend
        (checks passing) or a model replica (running) must stay up to count
        as healthy.
    :param progress: called with one line per step while waiting.
    """

    def __init__(self, cluster_name: str = "default", *, nomad_address: str | None = None,
                 region: str | None = None, namespace: str | None = None,
                 token: str | None = None, datacenters: list[str] | tuple[str, ...] = ("dc1",),
                 driver: str = "docker", discovery: str = "nomad",
                 static_host: str | None = None, consul_domain: str = "consul",
                 query_port: int = 1337, mgmt_port: int = 1338, rpc_port: int = 7000,
                 redis_ip: str | None = None, redis_port: int = 6379,
                 redis_image: str = "redis:7-alpine", python: str = "python3",
                 admin_token: str | bool | None = None, build_dir: str | None = None,
                 rpc_auth: str | None = None,
                 restart_attempts: int = 3, restart_interval_s: float = 300.0,
                 restart_delay_s: float = 5.0, check_interval_s: float = 2.0,
                 min_healthy_time_s: float = 2.0, model_min_healthy_time_s: float = 3.0,
                 start_timeout_s: float = 300.0,
                 deploy_timeout_s: float = 180.0, request_timeout_s: int = 10,
                 progress: Callable[[str], None] | None = None) -> None:
        self.cluster_name = validate_name("cluster name", cluster_name)
        if len(self.cluster_name) > 45:  # service names (…-query-rpc) have at most 63
            raise ValidationError(f"Invalid cluster name {self.cluster_name!r}: at most 45 "
                                  "characters for Nomad (service names are limited to 63)",
                                  argument="cluster name", value=self.cluster_name)
        if driver not in jobs.DRIVERS:
            raise ValidationError(f"Invalid Nomad driver {driver!r}: must be one of "
                                  f"{', '.join(jobs.DRIVERS)}", argument="driver", value=driver)
        if discovery not in jobs.DISCOVERY_MODES:
            raise ValidationError(f"Invalid service discovery {discovery!r}: must be one of "
                                  f"{', '.join(jobs.DISCOVERY_MODES)}", argument="discovery",
                                  value=discovery)
        if discovery == "static" and not static_host:
            raise ValidationError("discovery='static' needs static_host (the address of the "
                                  "Nomad client running the frontends)", argument="static_host",
                                  value=static_host)
        if not datacenters or isinstance(datacenters, str):
            raise ValidationError("datacenters must be a non-empty list of names",
                                  argument="datacenters", value=datacenters)
        self.nomad_address = (nomad_address or os.environ.get("NOMAD_ADDR")
                              or "http://127.0.0.1:4646")
        self.region = region or os.environ.get("NOMAD_REGION") or None
        self.namespace = namespace or os.environ.get("NOMAD_NAMESPACE") or None
        self._token = token or os.environ.get("NOMAD_TOKEN") or None
        self.redis_ip = redis_ip
        self.redis_port = redis_port
        self._token_option = admin_token
        admin_token = (admin_token if isinstance(admin_token, str) and admin_token != "none"
                       else None)
        self.admin_token = admin_token
        #: ``curve`` or ``none`` (``connect()`` takes the running cluster's)
        self.rpc_auth = launch.rpc_auth_option(rpc_auth)
        self.build_dir = Path(build_dir).expanduser() if build_dir else \
            Path.home() / ".clipper" / "nomad" / self.cluster_name / "models"
        self.start_timeout_s = start_timeout_s
        self.deploy_timeout_s = deploy_timeout_s
        self.request_timeout_s = request_timeout_s
        self._progress = progress
        self.settings = JobSettings(
            cluster_name=self.cluster_name, datacenters=tuple(datacenters),
            region=self.region, namespace=self.namespace, driver=driver, discovery=discovery,
            static_host=static_host, consul_domain=consul_domain, query_port=query_port,
            mgmt_port=mgmt_port, rpc_port=rpc_port, redis_port=redis_port,
            redis_image=redis_image, python=python, admin_token=admin_token,
            restart_attempts=restart_attempts, restart_interval_s=restart_interval_s,
            restart_delay_s=restart_delay_s, check_interval_s=check_interval_s,
            check_timeout_s=check_interval_s, min_healthy_time_s=min_healthy_time_s,
            model_min_healthy_time_s=model_min_healthy_time_s)
        self._client: Any = None
        self._requesters: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"NomadContainerManager(cluster_name={self.cluster_name!r}, "
                f"nomad_address={self.nomad_address!r}, driver={self.settings.driver!r}, "
                f"discovery={self.settings.discovery!r})")

    # ------------------------------------------------------------------
    # Addresses
    # ------------------------------------------------------------------
    def _addr(self, role: str, port: int) -> str:
        s = self.settings
        if s.discovery == "static":
            return f"{s.static_host}:{port}"
        if s.discovery == "consul":
            return f"{s.dns_name(role)}:{port}"
        found = self._service_addrs(s.service_name(role))
        if not found:
            raise ContainerError(f"Nomad service {s.service_name(role)!r} has no instances: "
                                 f"is cluster {self.cluster_name!r} running?",
                                 service=s.service_name(role))
        return found[0]

    def get_query_addr(self) -> str:
        """``host:port`` of a query frontend, from the configured discovery."""
        return self._addr(jobs.ROLE_QUERY, self.settings.query_port)

    def get_admin_addr(self) -> str:
        """``host:port`` of the management frontend."""
        return self._addr(jobs.ROLE_MGMT, self.settings.mgmt_port)

    def get_metric_addr(self) -> str:
        """Metrics are served as JSON at ``GET /metrics`` on the query address."""
        return self.get_query_addr()

    def get_admin_token(self) -> str | None:
        return self.admin_token

    def get_query_addrs(self) -> list[str]:
        """Every query frontend's REST address (nomad discovery)."""
        if self.settings.discovery != "nomad":
            return [self.get_query_addr()]
        return self._service_addrs(self.settings.service_name(jobs.ROLE_QUERY))

    # ------------------------------------------------------------------
    # Cluster
    # ------------------------------------------------------------------
    def start_clipper(self, query_frontend_image: str | None, mgmt_frontend_image: str | None,
                      cache_size: int, num_frontend_replicas: int = 1) -> None:
        """Submit Redis (unless external), the management frontend and
        ``num_frontend_replicas`` query frontends; return when every allocation
        is running and its health checks pass, else raise ClusterStartError."""
        if isinstance(num_frontend_replicas, bool) or not isinstance(num_frontend_replicas, int) \
                or num_frontend_replicas < 1:
            raise ValidationError("num_frontend_replicas must be a positive integer",
                                  argument="num_frontend_replicas", value=num_frontend_replicas)
        if self.settings.discovery == "static" and num_frontend_replicas != 1:
            raise ValidationError("discovery='static' runs one query frontend (its ports are "
                                  "fixed on static_host)", argument="num_frontend_replicas",
                                  value=num_frontend_replicas)
        existing = self._cluster_jobs()
        if existing:
            raise ClusterStartError(
                f"Cluster {self.cluster_name!r} already has jobs in Nomad: "
                f"{', '.join(j['ID'] for j in existing)}; connect() to it or stop_all() first",
                cluster=self.cluster_name)
        self.settings = s = start_settings(self)
        self.admin_token = s.admin_token
        query_image = query_frontend_image or DEFAULT_QUERY_IMAGE
        mgmt_image = mgmt_frontend_image or DEFAULT_MGMT_IMAGE
        deadline = time.monotonic() + self.start_timeout_s
        if self.redis_ip is None:
            self._say(f"Submitting Redis job {s.job_id(jobs.ROLE_REDIS)}")
            self._register(jobs.redis_job(s))
            self._wait(s.job_id(jobs.ROLE_REDIS), 1, deadline, healthy=True,
                       error=ClusterStartError)
            redis_addr = self._addr(jobs.ROLE_REDIS, s.redis_port)
        else:
            redis_addr = f"{self.redis_ip}:{self.redis_port}"
        store_url = f"redis://{redis_addr}/0?prefix={self.cluster_name}"
        self._say(f"State store: {store_url}")
        self._register(jobs.mgmt_job(s, mgmt_image, store_url))
        self._register(jobs.query_job(s, query_image, store_url, cache_size,
                                      num_frontend_replicas))
        self._say(f"Submitted {s.job_id(jobs.ROLE_MGMT)} and {s.job_id(jobs.ROLE_QUERY)} "
                  f"({num_frontend_replicas} query frontend(s))")
        self._wait(s.job_id(jobs.ROLE_MGMT), 1, deadline, healthy=True, error=ClusterStartError)
        self._wait(s.job_id(jobs.ROLE_QUERY), num_frontend_replicas, deadline, healthy=True,
                   error=ClusterStartError)
        self._say(f"Clipper cluster {self.cluster_name!r} is up: query at "
                  f"{self.get_query_addr()}, management at {self.get_admin_addr()}")

    def connect(self) -> None:
        """Find this cluster's frontends in Nomad; raise ClipperException if absent."""
        roles = {j["Meta"].get(jobs.META_ROLE) for j in self._cluster_jobs()}
        missing = {jobs.ROLE_MGMT, jobs.ROLE_QUERY} - roles
        if missing:
            raise ClipperException(
                f"No running Clipper cluster {self.cluster_name!r} in Nomad at "
                f"{self.nomad_address}: missing job(s) "
                f"{', '.join(sorted(self.settings.job_id(r) for r in missing))}",
                cluster=self.cluster_name)
        self.get_query_addr()
        self.get_admin_addr()
        adopt_secrets(self)

    # ------------------------------------------------------------------
    # Models
    # ------------------------------------------------------------------
    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """docker driver: build (and push) the image with the ``docker`` model
        registry, found by name (:func:`clipper_core.launch.get_image_builder`).
        raw_exec driver: copy the model directory to ``build_dir/<name>/<version>``
        and return its reference ``local/<name>:<version>``, which this manager
        resolves to that directory (the admin API takes image references, not
        paths; no package installs: use the docker driver)."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        source = Path(model_data_path)
        if not source.is_dir():
            raise BuildError(f"Model directory {model_data_path!r} does not exist",
                             path=model_data_path)
        if self.settings.driver == "docker":
            builder = launch.get_image_builder("docker", container_registry=container_registry)
            return builder.build_model(name, version, model_data_path, base_image,
                                       container_registry, pkgs_to_install)
        if pkgs_to_install:
            raise BuildError("The raw_exec driver runs models with the Nomad client's Python "
                             "and cannot install packages; use driver='docker' for "
                             f"pkgs_to_install={pkgs_to_install!r}", packages=pkgs_to_install)
        return local_models.copy_model(self.build_dir, name, version, source)

    def _model_dir(self, image: str) -> str:
        """The raw_exec driver's model directory for ``image``."""
        return image if self.settings.driver == "docker" else local_models.model_dir(
            self.build_dir, image)

    def deploy_model(self, name: str, version: str, input_type: InputType, image: str,
                     num_replicas: int = 1) -> None:
        """Submit the model version's job with ``num_replicas`` allocations and
        wait until they are healthy (running for ``model_min_healthy_time_s``);
        ContainerError names a failing allocation and its task events."""
        job = self._model_job(name, version, input_type, image, num_replicas)
        self._register(job)
        self._wait(job["ID"], num_replicas, time.monotonic() + self.deploy_timeout_s,
                   healthy=True, error=ContainerError)
        self._wait_connected(name, version, num_replicas)

    def _wait_connected(self, name: str, version: str, count: int) -> None:
        """Until the management frontend reports ``count`` connected replicas
        (no wait without a management frontend: replicas keep trying)."""
        try:
            admin = self.get_admin_addr()
        except ContainerError:
            return
        if count and (self.settings.rpc_keys is None or launch.admin_knows_version(
                admin, self.admin_token, str(name), str(version))):  # else: not admitted yet
            launch.wait_for_replicas(
                launch.admin_replicas(admin, self.admin_token),
                launch.ReplicaWait(name=str(name), version=str(version), count=count),
                timeout=self.deploy_timeout_s, interval=0.2)

    def _model_job(self, name: str, version: str, input_type: InputType | str, image: str,
                   count: int) -> dict[str, Any]:
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError("num_replicas must be a non-negative integer",
                                  argument="num_replicas", value=count)
        if not image:
            raise ValidationError(f"Model {name}:{version} has no image to deploy",
                                  argument="image", value=image)
        return jobs.model_job(self.settings, name, version, InputType.parse(input_type),
                              self._model_dir(image), count)

    def get_num_replicas(self, name: str, version: str) -> int:
        """The task group count of the model version's job (0 if none)."""
        job = self._get_job(self.settings.model_job_id(name, version))
        if job is None or job.get("Stop"):
            return 0
        return int(job["TaskGroups"][0]["Count"])

    def set_num_replicas(self, name: str, version: str, input_type: InputType, image: str,
                         num_replicas: int) -> None:
        """Scale the version's job through ``/v1/job/<id>/scale`` (or submit it
        if absent) and wait until exactly ``num_replicas`` allocations run."""
        job = self._model_job(name, version, input_type, image, num_replicas)
        current = self._get_job(job["ID"])
        if current is None or current.get("Stop"):
            self._register(job)
        else:
            self._request("job", job["ID"], "scale", method="post", json={
                "Count": num_replicas, "Target": {"Group": jobs.MODEL_GROUP},
                "Message": f"clipper: set_num_replicas({name}, {num_replicas}, {version})"})
        self._say(f"Scaling {job['ID']} to {num_replicas}")
        self._wait(job["ID"], num_replicas, time.monotonic() + self.deploy_timeout_s,
                   healthy=True, error=ContainerError)
        self._wait_connected(name, version, num_replicas)

    def list_replicas(self) -> list[ReplicaStatus]:
        """One entry per live allocation of every model job of the cluster."""
        out = []
        for job in self._cluster_jobs(jobs.ROLE_MODEL):
            meta = job["Meta"]
            for alloc in self._allocations(job["ID"]):
                if alloc.get("DesiredStatus") != "run":
                    continue
                states = (alloc.get("TaskStates") or {}).values()
                status = _STATUS.get(alloc.get("ClientStatus", ""), alloc.get("ClientStatus"))
                if status == "pending" and any(s.get("Restarts") for s in states):
                    status = "restarting"
                out.append(ReplicaStatus(
                    model_name=meta[jobs.META_MODEL], model_version=meta[jobs.META_VERSION],
                    replica_id=alloc["ID"][:8], status=status or "unknown",
                    restarts=sum(int(s.get("Restarts") or 0) for s in states),
                    handle=alloc["ID"]))
        return sorted(out, key=lambda r: (r.model_name, r.model_version, r.replica_id))

    # ------------------------------------------------------------------
    # Logs and stopping
    # ------------------------------------------------------------------
    def _stop_jobs(self, job_ids: list[str], timeout: float = 60.0) -> None:
        """Deregister, wait until the allocations are terminal, then purge."""
        stopped = []
        for job_id in job_ids:
            try:
                self._call(f"stop job {job_id}", self.client.job.deregister_job, job_id)
                stopped.append(job_id)
            except NotFoundError:
                continue
        deadline = time.monotonic() + timeout
        for job_id in stopped:
            while time.monotonic() < deadline and any(
                    a.get("ClientStatus") in ("pending", "running")
                    for a in self._allocations(job_id)):
                time.sleep(0.2)
            try:
                self._call(f"purge job {job_id}", self.client.job.deregister_job, job_id,
                           purge=True)
            except NotFoundError:
                pass
            self._say(f"Stopped {job_id}")

    def stop_models(self, models: dict[str, list[str]]) -> None:
        """Stop and purge the jobs of each ``name -> [versions]``."""
        ids = [self.settings.model_job_id(validate_name("model name", name),
                                          validate_name("model version", v))
               for name, versions in models.items() for v in versions]
        self._stop_jobs(ids)

    def stop_all_model_containers(self) -> None:
        self._stop_jobs([j["ID"] for j in self._cluster_jobs(jobs.ROLE_MODEL)])

    def stop_all(self, graceful: bool = True) -> None:
        """Stop and purge every job of the cluster: models, frontends, Redis.
        ``graceful=False`` does not wait for allocations to finish."""
        order = {jobs.ROLE_MODEL: 0, jobs.ROLE_QUERY: 1, jobs.ROLE_MGMT: 2, jobs.ROLE_REDIS: 3}
        found = sorted(self._cluster_jobs(),
                       key=lambda j: order.get(j["Meta"].get(jobs.META_ROLE), 4))
        self._stop_jobs([j["ID"] for j in found], timeout=60.0 if graceful else 0.0)

