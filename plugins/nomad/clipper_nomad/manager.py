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
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clipper_core
from clipper_core.errors import (
    BuildError,
    ClipperException,
    ClusterStartError,
    ContainerError,
    NotFoundError,
    ValidationError,
)
from clipper_core.models import InputType, ReplicaStatus, validate_name

from . import jobs
from .jobs import JobSettings
from .jobspec import validate_job

log = logging.getLogger("clipper.nomad")

DEFAULT_QUERY_IMAGE = f"clipper/query_frontend:{clipper_core.__version__}"
DEFAULT_MGMT_IMAGE = f"clipper/management_frontend:{clipper_core.__version__}"

_STATUS = {"pending": "pending", "running": "running", "complete": "exited",
           "failed": "failed", "lost": "lost"}


class NomadContainerManager:
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
    :param admin_token: bearer token for ``/admin/*`` given to the
        management frontend.
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
                 admin_token: str | None = None, build_dir: str | None = None,
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
        self.admin_token = admin_token
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
    # Talking to Nomad
    # ------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The python-nomad client, built on first use."""
        if self._client is None:
            import nomad

            self._client = nomad.Nomad(address=self.nomad_address, token=self._token,
                                       region=self.region, namespace=self.namespace,
                                       timeout=self.request_timeout_s)
        return self._client

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one python-nomad call; its exceptions become clipper-core errors."""
        import nomad.api.exceptions as nx

        try:
            return fn(*args, **kwargs)
        except nx.URLNotFoundNomadException as exc:
            raise NotFoundError(f"Nomad: {what}: not found ({_body(exc)})",
                                what=what) from None
        except nx.URLNotAuthorizedNomadException as exc:
            raise ContainerError(f"Nomad refused {what}: permission denied ({_body(exc)}); "
                                 "check the ACL token", what=what) from None
        except nx.BadRequestNomadException as exc:
            raise ContainerError(f"Nomad rejected {what}: {_body(exc)}", what=what) from None
        except (nx.BaseNomadException, nx.TimeoutNomadException) as exc:
            resp = getattr(exc, "nomad_resp", None)
            if resp is not None and hasattr(resp, "status_code"):
                raise ContainerError(f"Nomad failed {what}: HTTP {resp.status_code}: "
                                     f"{_body(exc)}", what=what) from None
            raise ContainerError(f"Cannot reach Nomad at {self.nomad_address} ({what}): "
                                 f"{resp or exc}", what=what) from None

    def _requester(self, endpoint: str) -> Any:
        """A python-nomad requester for ``/v1/<endpoint>``, sharing the client's
        settings (address, token, region, namespace, TLS) and HTTP session."""
        from nomad.api.base import Requester

        if endpoint not in self._requesters:
            settings = dict(self.client.requester_settings)
            settings["session"] = self.client.job.session
            requester = Requester(**settings)
            requester.ENDPOINT = endpoint
            self._requesters[endpoint] = requester
        return self._requesters[endpoint]

    def _request(self, endpoint: str, *path: str, method: str = "get",
                 params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """Paths python-nomad has no method for (``/v1/service``, ``/v1/job/x/scale``),
        sent with python-nomad's own requester and settings."""
        requester = self._requester(endpoint)
        params = dict(params or {})
        if self.namespace and endpoint == "service":
            params.setdefault("namespace", self.namespace)
        return self._call(f"{method.upper()} /v1/{endpoint}/{'/'.join(path)}",
                          requester.request, *path, method=method, params=params,
                          json=json).json()

    def _register(self, job: dict[str, Any]) -> None:
        validate_job(job)
        self._call(f"register job {job['ID']}", self.client.jobs.register_job, {"Job": job})

    def _get_job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self._call(f"get job {job_id}", self.client.job.get_job, job_id)
        except NotFoundError:
            return None

    def _allocations(self, job_id: str) -> list[dict[str, Any]]:
        try:
            return self._call(f"list allocations of {job_id}",
                              self.client.job.get_allocations, job_id)
        except NotFoundError:
            return []

    def _watch_allocations(self, job_id: str, index: int,
                           wait_s: float) -> tuple[list[dict[str, Any]], int]:
        """A blocking query: the job's allocations once Nomad's index passes
        ``index`` (or after ``wait_s``), and the new index."""
        requester = self._requester("job")
        wait = max(0.05, wait_s)
        try:
            resp = self._call(f"watch allocations of {job_id}", requester.request, job_id,
                              "allocations", method="get",
                              params={"index": index, "wait": f"{int(wait * 1000)}ms"},
                              timeout=self.request_timeout_s + wait)
        except NotFoundError:
            return [], index
        try:
            new_index = int(resp.headers.get("X-Nomad-Index", index))
        except ValueError:
            new_index = index
        return resp.json(), new_index

    def _cluster_jobs(self, role: str | None = None) -> list[dict[str, Any]]:
        """Live (not stopped) jobs of this cluster, optionally of one role."""
        stubs = self._call("list jobs", self.client.jobs.get_jobs,
                           prefix=f"clipper-{self.cluster_name}-", meta=True)
        out = []
        for stub in stubs:
            meta = stub.get("Meta")
            if meta is None:  # Nomad before 1.6 has no Meta in job stubs
                job = self._get_job(stub["ID"])
                meta = (job or {}).get("Meta") or {}
            if meta.get(jobs.META_CLUSTER) != self.cluster_name or stub.get("Stop"):
                continue
            if role is None or meta.get(jobs.META_ROLE) == role:
                out.append({**stub, "Meta": meta})
        return out

    def _service_addrs(self, service: str) -> list[str]:
        entries = self._request("service", service)
        return [f"{e['Address']}:{e['Port']}" for e in entries or ()]

    def _say(self, message: str) -> None:
        log.info("%s", message)
        if self._progress is not None:
            self._progress(message)

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
        s = self.settings
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

    def _wait(self, job_id: str, count: int, deadline: float, *, healthy: bool,
              error: type[ContainerError]) -> None:
        """Wait until ``count`` live allocations of ``job_id`` run (and are
        healthy) and no more than ``count`` remain; raise ``error`` naming a
        failed allocation and its task events, or the laggards at the deadline.
        Uses blocking queries, so it wakes up as soon as Nomad's state changes."""
        last, index = "", 0
        while True:
            allocs, index = self._watch_allocations(
                job_id, index, min(2.0, max(0.0, deadline - time.monotonic())))
            live = [a for a in allocs if a.get("DesiredStatus") == "run"]
            for alloc in live:
                deploy = alloc.get("DeploymentStatus") or {}
                if alloc.get("ClientStatus") in ("failed", "lost") or deploy.get("Healthy") is False:
                    raise error(f"Job {job_id}: {self._describe(alloc)}", job=job_id,
                                allocation=alloc["ID"])
            ready = [a for a in live if a.get("ClientStatus") == "running"
                     and (not healthy or (a.get("DeploymentStatus") or {}).get("Healthy"))]
            summary = (f"{job_id}: {len(ready)}/{count} allocation(s) "
                       f"{'healthy' if healthy else 'running'}")
            if summary != last:
                self._say(summary)
                last = summary
            if len(ready) >= count and len(live) == count:
                return
            if time.monotonic() > deadline:
                laggards = [a for a in live if a not in ready] or live
                detail = "; ".join(self._describe(a) for a in laggards[:3]) or \
                    "no allocation was placed"
                raise error(f"Timed out waiting for job {job_id} ({summary}): {detail}",
                            job=job_id)

    def _describe(self, alloc: dict[str, Any]) -> str:
        """``allocation <id> (<name>) is <status>: task <t>: <events>; stderr: <tail>``."""
        parts = [f"allocation {alloc['ID']} ({alloc.get('Name')}) is "
                 f"{alloc.get('ClientStatus')}"]
        deploy = alloc.get("DeploymentStatus") or {}
        if deploy.get("Healthy") is False:
            parts[0] += " and unhealthy (health checks did not pass in time)"
        for task, state in sorted((alloc.get("TaskStates") or {}).items()):
            events = [f"{e.get('Type')}: {e.get('DisplayMessage') or e.get('DriverError') or ''}"
                      .rstrip(": ") for e in (state.get("Events") or [])[-6:]]
            line = f"task {task!r} {state.get('State')} (restarts {state.get('Restarts', 0)})" \
                   f" events: {' | '.join(events)}"
            tail = self._log_tail(alloc["ID"], task)
            if tail:
                line += f"; stderr: {tail}"
            parts.append(line)
        return "; ".join(parts)

    def _log_tail(self, alloc_id: str, task: str, limit: int = 400) -> str:
        try:
            text = self._call("read logs", self.client.client.stream_logs.stream, alloc_id,
                              task, "stderr", plain=True, origin="end", offset=limit)
        except ClipperException:
            return ""
        return " / ".join(line for line in str(text).strip().splitlines()[-4:])

    # ------------------------------------------------------------------
    # Models
    # ------------------------------------------------------------------
    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """docker driver: build (and push) the image with the ``docker`` plugin.
        raw_exec driver: copy the model directory to ``build_dir/<name>/<version>``
        and return that path (no package installs: use the docker driver)."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        source = Path(model_data_path)
        if not source.is_dir():
            raise BuildError(f"Model directory {model_data_path!r} does not exist",
                             path=model_data_path)
        if self.settings.driver == "docker":
            from clipper_core.errors import PluginError
            from clipper_core.plugins import get_container_manager

            try:
                builder = get_container_manager("docker")
            except PluginError as exc:
                raise BuildError(f"Building images for the Nomad docker driver needs the "
                                 f"clipper-docker plugin: {exc}") from None
            return builder.build_model(name, version, model_data_path, base_image,
                                       container_registry, pkgs_to_install)
        if pkgs_to_install:
            raise BuildError("The raw_exec driver runs models with the Nomad client's Python "
                             "and cannot install packages; use driver='docker' for "
                             f"pkgs_to_install={pkgs_to_install!r}", packages=pkgs_to_install)
        dest = self.build_dir / name / version
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, dest)
        return str(dest)

    def deploy_model(self, name: str, version: str, input_type: InputType, image: str,
                     num_replicas: int = 1) -> None:
        """Submit the model version's job with ``num_replicas`` allocations and
        wait until they are healthy (running for ``model_min_healthy_time_s``);
        ContainerError names a failing allocation and its task events."""
        job = self._model_job(name, version, input_type, image, num_replicas)
        self._register(job)
        self._wait(job["ID"], num_replicas, time.monotonic() + self.deploy_timeout_s,
                   healthy=True, error=ContainerError)

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
                              image, count)

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
    def get_logs(self, logging_dir: str) -> list[str]:
        """Write ``<allocation name>-<short id>.<task>.log`` (stdout then stderr)
        for every allocation of the cluster; return the paths."""
        out_dir = Path(logging_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for job in self._cluster_jobs():
            for alloc in self._allocations(job["ID"]):
                for task in sorted(alloc.get("TaskStates") or {}):
                    streams = []
                    for kind in ("stdout", "stderr"):
                        text = self._call(f"read {kind} of {alloc['ID']}",
                                          self.client.client.stream_logs.stream,
                                          alloc["ID"], task, kind, plain=True)
                        streams.append(f"==> {kind} <==\n{text}")
                    fname = re.sub(r"[^A-Za-z0-9_.-]+", "_",
                                   f"{alloc['Name']}-{alloc['ID'][:8]}.{task}.log")
                    path = out_dir / fname
                    path.write_text("\n".join(streams))
                    paths.append(str(path))
        return paths

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


def _body(exc: Exception) -> str:
    resp = getattr(exc, "nomad_resp", None)
    text = getattr(resp, "text", None)
    return (text if isinstance(text, str) else str(resp or exc)).strip()
