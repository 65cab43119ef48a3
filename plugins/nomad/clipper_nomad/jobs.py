"""Nomad job documents for a Clipper cluster: Redis, frontends, model versions.

Pure functions from :class:`JobSettings` to the JSON job dicts of Nomad's
HTTP API (``{"Job": ...}`` is added when submitting).  Every job carries
``Meta`` saying which cluster and role it belongs to, so a manager in a new
process finds what an earlier one started.

Where services are found is chosen by ``JobSettings.discovery``:

``nomad``   Nomad native service discovery; dynamic ports; model replicas get
            ``CLIPPER_FRONTENDS`` from a template over ``nomadService``.
``consul``  services registered in Consul; static ports; model replicas use
            the DNS name ``<service>.service.<domain>`` as ``CLIPPER_IP``.
``static``  fixed addresses: static ports on ``static_host``.
"""

from __future__ import annotations

from typing import Any

import attrs

from clipper_core import curve, launch
from clipper_core.models import InputType

from .jobspec import SECOND

DISCOVERY_MODES = ("nomad", "consul", "static")
DRIVERS = ("docker", "raw_exec")

ROLE_REDIS, ROLE_MGMT, ROLE_QUERY, ROLE_MODEL = "redis", "mgmt", "query", "model"

META_CLUSTER = "clipper_cluster"
META_ROLE = "clipper_role"
META_MODEL = "clipper_model_name"
META_VERSION = "clipper_model_version"
META_INPUT_TYPE = "clipper_input_type"
META_IMAGE = "clipper_image"

MODEL_GROUP = "model"
MODEL_TASK = "replica"


@attrs.frozen(kw_only=True)
class JobSettings:
    """Everything a job builder needs besides the per-job arguments."""

    cluster_name: str
    datacenters: tuple[str, ...] = ("dc1",)
    region: str | None = None
    namespace: str | None = None
    #: "docker" (images) or "raw_exec" (local processes on the Nomad client).
    driver: str = "docker"
    discovery: str = "nomad"
    #: Host of the frontends for ``discovery="static"``.
    static_host: str | None = None
    consul_domain: str = "consul"
    query_port: int = 1337
    mgmt_port: int = 1338
    rpc_port: int = 7000
    redis_port: int = 6379
    redis_image: str = "redis:7-alpine"
    #: Interpreter for raw_exec tasks (must exist on the Nomad client).
    python: str = "python3"
    redis_command: str = "redis-server"
    admin_token: str | None = None
    #: The password of the Redis the cluster runs (in the task environments).
    store_password: str | None = attrs.field(default=None, repr=False)
    #: The cluster's CURVE keys (query tasks: the server's secret key and the
    #: replica seed; each model task: its version's key pair); None: plain RPC.
    rpc_keys: curve.ClusterKeys | None = attrs.field(default=None, repr=False)
    #: Restart policy of every task group.
    restart_attempts: int = 3
    restart_interval_s: float = 300.0
    restart_delay_s: float = 5.0
    restart_mode: str = "fail"
    check_interval_s: float = 2.0
    check_timeout_s: float = 2.0
    min_healthy_time_s: float = 2.0
    #: A model replica counts as healthy once it ran this long without exiting.
    model_min_healthy_time_s: float = 3.0
    healthy_deadline_s: float = 120.0
    cpu_mhz: int = 500
    memory_mb: int = 512
    redis_memory_mb: int = 256

    @property
    def static_ports(self) -> bool:
        """Whether ports are reserved at their configured numbers."""
        return self.discovery != "nomad"

    def job_id(self, role: str, suffix: str = "") -> str:
        """``clipper-<cluster>-<role>[-<suffix>]``."""
        return f"clipper-{self.cluster_name}-{role}" + (f"-{suffix}" if suffix else "")

    def model_job_id(self, name: str, version: str) -> str:
        """One job per model version; the dot cannot occur in names or versions."""
        return self.job_id(ROLE_MODEL, f"{name}.{version}")

    def service_name(self, role: str) -> str:
        """Service names: ``clipper-<cluster>-redis|mgmt|query|query-rpc``."""
        return f"clipper-{self.cluster_name}-{role}"

    def dns_name(self, role: str) -> str:
        """Consul DNS name of a service."""
        return f"{self.service_name(role)}.service.{self.consul_domain}"


def redis_job(s: JobSettings) -> dict[str, Any]:
    """A single Redis for the cluster's state: append-only file in the task's
    directory (kept across task restarts), protected mode, and the cluster's
    password from the task environment (:class:`clipper_core.launch.RedisServer`)."""
    server = launch.RedisServer(port="${NOMAD_PORT_redis}", bind="${NOMAD_IP_redis}",
                                data_dir="${NOMAD_TASK_DIR}")
    if s.driver == "docker":
        config: dict[str, Any] = {"image": s.redis_image, "network_mode": "host",
                                  "command": "sh", "args": server.command()[1:]}
    else:
        config = {"command": "sh", "args": server.command(s.redis_command)[1:]}
    env = {x.env: x.value for x in _secrets(s).for_role(launch.ROLE_STORE)}
    task = _task("redis", s, config, env, memory_mb=s.redis_memory_mb)
    group = _group(s, "redis", 1, [task], ports=[("redis", s.redis_port)],
                   services=[_service(s, "redis", "redis", "tcp", None)],
                   health="checks")
    return _job(s, s.job_id(ROLE_REDIS), ROLE_REDIS, group)


# Docker tasks use the host's network (``network_mode = "host"``) and bind the
# Nomad-assigned ``NOMAD_IP_<label>:NOMAD_PORT_<label>`` themselves, so the
# address a service registers is the address the process listens on; no port
# mapping (``ports``) is needed.


def mgmt_job(s: JobSettings, image: str | None, store_url: str) -> dict[str, Any]:
    """The management frontend, one allocation; healthy when /admin/ping answers."""
    process = launch.management_process(
        store_url=store_url, host="${NOMAD_IP_http}", port="${NOMAD_PORT_http}",
        secrets=_secrets(s))
    task = _task("management", s, _python_config(s, image, process), process.environment())
    service = _service(s, ROLE_MGMT, "http", "http", process.ready.path if process.ready
                       else None)
    if s.admin_token:  # /admin/ping is protected too
        service["Checks"][0]["Header"] = {"Authorization": [f"Bearer {s.admin_token}"]}
    group = _group(s, "management", 1, [task], ports=[("http", s.mgmt_port)],
                   services=[service], health="checks")
    return _job(s, s.job_id(ROLE_MGMT), ROLE_MGMT, group)


def query_job(s: JobSettings, image: str | None, store_url: str, cache_size: int,
              count: int) -> dict[str, Any]:
    """``count`` query frontends; healthy when /healthz answers.

    Two services: ``…-query`` (REST, what clients use) and ``…-query-rpc``
    (the ZeroMQ port model replicas connect to).
    """
    process = launch.query_process(
        store_url=store_url, frontend_id="q${NOMAD_ALLOC_INDEX}", host="${NOMAD_IP_http}",
        port="${NOMAD_PORT_http}", rpc_host="${NOMAD_IP_rpc}", rpc_port="${NOMAD_PORT_rpc}",
        cache_size=cache_size, secrets=_secrets(s))
    task = _task("query", s, _python_config(s, image, process), process.environment())
    group = _group(s, "query", count, [task],
                   ports=[("http", s.query_port), ("rpc", s.rpc_port)],
                   services=[_service(s, ROLE_QUERY, "http", "http", "/healthz"),
                             _service(s, "query-rpc", "rpc", "tcp", None)],
                   health="checks")
    return _job(s, s.job_id(ROLE_QUERY), ROLE_QUERY, group)


def task_env(job: dict[str, Any]) -> dict[str, str]:
    """Every task's environment in a job, merged (how secrets are read back)."""
    return {k: v for g in job.get("TaskGroups") or [] for t in g.get("Tasks") or []
            for k, v in (t.get("Env") or {}).items()}


def _secrets(s: JobSettings) -> launch.ClusterSecrets:
    return launch.ClusterSecrets(admin_token=s.admin_token, store_password=s.store_password,
                                 rpc_keys=s.rpc_keys)


def _rpc_targets(s: JobSettings) -> launch.RpcTargets:
    """Where replicas find the frontends; nomad discovery renders them in a template."""
    if s.discovery == "consul":
        return launch.RpcTargets(host=s.dns_name("query-rpc"), port=s.rpc_port)
    if s.discovery == "static":
        return launch.RpcTargets(addresses=[f"{s.static_host}:{s.rpc_port}"])
    return launch.RpcTargets()


def model_job(s: JobSettings, name: str, version: str, input_type: InputType, image: str,
              count: int) -> dict[str, Any]:
    """``count`` replicas of name:version, each finding the query frontends'
    RPC port through the configured service discovery."""
    process = launch.replica_process(
        name=name, version=version, input_type=input_type, frontends=_rpc_targets(s),
        model_path=launch.MODEL_PATH if s.driver == "docker" else image,
        replica_id="${NOMAD_SHORT_ALLOC_ID}", secrets=_secrets(s))
    if s.driver == "docker":
        config: dict[str, Any] = {"image": image, "network_mode": "host"}
    else:
        config = {"command": s.python, "args": process.argv()[1:]}
    task = _task(MODEL_TASK, s, config, process.environment())
    if s.discovery == "nomad":
        task["Templates"] = [frontends_template(s)]
    group = _group(s, MODEL_GROUP, count, [task], ports=[], services=[], health="task_states",
                   min_healthy_s=s.model_min_healthy_time_s)
    meta = {META_MODEL: name, META_VERSION: version, META_INPUT_TYPE: input_type.label,
            META_IMAGE: image}
    return _job(s, s.model_job_id(name, version), ROLE_MODEL, group, meta)


def frontends_template(s: JobSettings) -> dict[str, Any]:
    """A template that renders ``CLIPPER_FRONTENDS=h:p,h:p`` from Nomad's
    service catalogue and restarts the replica when the list changes."""
    service = s.service_name("query-rpc")
    body = (f'CLIPPER_FRONTENDS={{{{ range $i, $s := nomadService "{service}" }}}}'
            '{{ if ne $i 0 }},{{ end }}{{ $s.Address }}:{{ $s.Port }}{{ end }}\n')
    return {"EmbeddedTmpl": body, "DestPath": "local/clipper_frontends.env",
            "ChangeMode": "restart", "Envvars": True}


def _python_config(s: JobSettings, image: str | None,
                   process: launch.ProcessSpec) -> dict[str, Any]:
    """Run the process: in the image (its entrypoint replaced, so any image
    with Python and clipper-core installed works) or on the host."""
    if s.driver == "docker":
        return {"image": image, "network_mode": "host",
                "entrypoint": process.entrypoint("python3"), "args": list(process.args)}
    return {"command": s.python, "args": process.argv()[1:]}


def _ns(seconds: float) -> int:
    return int(seconds * SECOND)


def _task(name: str, s: JobSettings, config: dict[str, Any], env: dict[str, str], *,
          memory_mb: int | None = None) -> dict[str, Any]:
    return {"Name": name, "Driver": s.driver, "Config": config,
            "Env": {"PYTHONUNBUFFERED": "1", **env},
            "Resources": {"CPU": s.cpu_mhz, "MemoryMB": memory_mb or s.memory_mb},
            "KillTimeout": _ns(5)}


def _service(s: JobSettings, role: str, port: str, check: str,
             path: str | None) -> dict[str, Any]:
    chk: dict[str, Any] = {"Name": f"{role}-{check}", "Type": check, "PortLabel": port,
                           "Interval": _ns(s.check_interval_s),
                           "Timeout": _ns(s.check_timeout_s)}
    if path:
        chk["Path"] = path
    return {"Name": s.service_name(role), "PortLabel": port,
            "Provider": "consul" if s.discovery == "consul" else "nomad",
            "Tags": ["clipper", s.cluster_name], "Checks": [chk]}


def _group(s: JobSettings, name: str, count: int, tasks: list[dict[str, Any]], *,
           ports: list[tuple[str, int]], services: list[dict[str, Any]],
           health: str, min_healthy_s: float | None = None) -> dict[str, Any]:
    group: dict[str, Any] = {
        "Name": name, "Count": count, "Tasks": tasks,
        "RestartPolicy": {"Attempts": s.restart_attempts,
                          "Interval": _ns(s.restart_interval_s),
                          "Delay": _ns(s.restart_delay_s), "Mode": s.restart_mode},
        "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
        "Update": {"MaxParallel": max(1, count), "HealthCheck": health,
                   "MinHealthyTime": _ns(s.min_healthy_time_s if min_healthy_s is None
                                         else min_healthy_s),
                   "HealthyDeadline": _ns(s.healthy_deadline_s),
                   "ProgressDeadline": _ns(s.healthy_deadline_s + 60), "AutoRevert": False},
    }
    if ports:
        key = "ReservedPorts" if s.static_ports else "DynamicPorts"
        group["Networks"] = [{"Mode": "host", key: [
            {"Label": label, "Value": value} if s.static_ports else {"Label": label}
            for label, value in ports]}]
    if services:
        group["Services"] = services
    return group


def _job(s: JobSettings, job_id: str, role: str, group: dict[str, Any],
         meta: dict[str, str] | None = None) -> dict[str, Any]:
    job: dict[str, Any] = {
        "ID": job_id, "Name": job_id, "Type": "service", "Priority": 50,
        "Datacenters": list(s.datacenters), "TaskGroups": [group],
        "Meta": {META_CLUSTER: s.cluster_name, META_ROLE: role, **(meta or {})},
    }
    if s.region:
        job["Region"] = s.region
    if s.namespace:
        job["Namespace"] = s.namespace
    return job
