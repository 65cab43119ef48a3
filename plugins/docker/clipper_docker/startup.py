"""Placing a cluster's state store and frontends on the Docker engine.

What each frontend runs (command line, environment, secrets) comes from
:mod:`clipper_core.launch`; the project's frontend images have the programs
as their ENTRYPOINT, so containers get only the arguments.  This module
decides where: the network, the published ports, the container names and
labels, and when a container is ready.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clipper_core import launch
from clipper_core.errors import ClusterStartError
from clipper_core.secrets import STORE_PASSWORD_ENV, new_password, new_token

from . import cluster as lb
from . import rpc_keys
from .cluster import ClusterInfo
from .engine import docker_errors
from .probes import exec_ok, free_port, http_ok, log_tail

if TYPE_CHECKING:
    from .manager import DockerContainerManager


def layout(cm: DockerContainerManager, network: str, replicas: int) -> ClusterInfo:
    """Where the cluster's parts listen on ``network`` (``replicas`` query frontends)."""
    name = cm.cluster_name
    host = network == lb.HOST_NETWORK
    if cm.redis_ip:
        redis_host = cm.redis_ip
    else:
        redis_host = "127.0.0.1" if host else lb.container_name(name, "redis")
    if host:
        endpoints = ((cm.clipper_query_port, cm.clipper_rpc_port),) + tuple(
            (free_port(), free_port()) for _ in range(replicas - 1))
        frontends = tuple(f"127.0.0.1:{rpc}" for _, rpc in endpoints)
    else:
        endpoints = ((cm.clipper_query_port, cm.clipper_rpc_port),) * replicas
        frontends = (f"{lb.query_alias(name)}:{cm.clipper_rpc_port}",)
    return ClusterInfo(cluster=name, network=network, admin_port=cm.clipper_management_port,
                       query_port=cm.clipper_query_port, rpc_port=cm.clipper_rpc_port,
                       store_url=f"redis://{redis_host}:{cm.redis_port}/0?prefix={name}",
                       frontends=frontends, query_endpoints=endpoints)


def make_secrets(cm: DockerContainerManager) -> None:
    """A new admin token (unless given or opted out), Redis password and
    CURVE keys (unless ``rpc_auth="none"``)."""
    if cm.admin_token is None and cm._token_option is None:
        cm.admin_token = new_token()
    if not cm.redis_ip:
        cm.redis_password = new_password()
    cm.rpc_keys = launch.new_rpc_keys(cm.rpc_auth)


def adopt_secrets(cm: DockerContainerManager, mgmt: Any) -> None:
    """Read the cluster's secrets back from the management container's
    environment (the channel they were given through), and its RPC keys from
    a query frontend container's (the cluster's ``rpc_auth`` wins)."""
    env = rpc_keys.container_env(mgmt)
    if cm._token_option is None or cm.admin_token is None:
        cm.admin_token = env.get(launch.ADMIN_TOKEN_ENV) or cm.admin_token
    cm.redis_password = env.get(STORE_PASSWORD_ENV) or cm.redis_password
    found = rpc_keys.adopt(cm._containers(lb.ROLE_QUERY))
    if found is not None:
        cm.rpc_auth, cm.rpc_keys = found


def redis_volume(cm: DockerContainerManager) -> str:
    """The named volume of the cluster's Redis data (labelled: ``stop_all`` removes it)."""
    name = lb.container_name(cm.cluster_name, "redis-data")
    with docker_errors(f"Creating volume {name}", ClusterStartError):
        cm.client.volumes.create(name=name, labels={lb.CLUSTER: cm.cluster_name})
    return name


def start_redis(cm: DockerContainerManager, info: ClusterInfo, deadline: float) -> None:
    """The cluster's own Redis: append-only file on a named volume, password
    from its environment, protected mode (:class:`clipper_core.launch.RedisServer`);
    restarted by the engine if it dies; ready when it answers PING."""
    port = str(cm.redis_port)
    server = launch.RedisServer(port=port, bind="127.0.0.1" if info.host_network else None)
    secrets = launch.ClusterSecrets(store_password=cm.redis_password)
    env = {s.env: s.value for s in secrets.for_role(launch.ROLE_STORE)}
    redis = cm.run(
        cm.redis_image, name=lb.container_name(cm.cluster_name, "redis"), role=lb.ROLE_REDIS,
        labels=info.to_labels(), info=info, error=ClusterStartError,
        command=server.command(), environment=env,
        volumes={redis_volume(cm): {"bind": server.data_dir, "mode": "rw"}},
        restart_policy={"Name": "unless-stopped"},
        ports={f"{port}/tcp": ("127.0.0.1", cm.redis_port)})
    ping = ["sh", "-c", f'REDISCLI_AUTH="$CLIPPER_STORE_PASSWORD" redis-cli -p {port} ping']
    wait(cm, redis, deadline, lambda: exec_ok(redis, ping, b"PONG"))


def start_frontends(cm: DockerContainerManager, info: ClusterInfo, query_image: str,
                    mgmt_image: str, cache_size: int, deadline: float) -> None:
    """The management frontend and the query frontends; return when all answer."""
    name, labels = cm.cluster_name, info.to_labels()
    secrets = launch.ClusterSecrets(admin_token=cm.admin_token,
                                    store_password=cm.redis_password, rpc_keys=cm.rpc_keys)
    # where the management frontend (its dashboard) reads each query frontend's /metrics
    query_urls = [
        f"http://{'127.0.0.1' if info.host_network else lb.container_name(name, 'query', str(i))}"
        f":{query_port}" for i, (query_port, _) in enumerate(info.query_endpoints)]
    mgmt_spec = launch.management_process(store_url=info.store_url, port=info.admin_port,
                                          secrets=secrets, query_urls=query_urls)
    mgmt = cm.run(mgmt_image, name=lb.container_name(name, "mgmt"), role=lb.ROLE_MANAGEMENT,
                  labels=labels, info=info, error=ClusterStartError,
                  environment=mgmt_spec.environment(), command=list(mgmt_spec.args),
                  ports={f"{info.admin_port}/tcp": info.admin_port})
    frontends = []
    for i, (query_port, rpc_port) in enumerate(info.query_endpoints):
        spec = launch.query_process(store_url=info.store_url, frontend_id=f"query-{i}",
                                    port=query_port, rpc_port=rpc_port, cache_size=cache_size,
                                    secrets=secrets)
        ports = ({f"{query_port}/tcp": query_port, f"{rpc_port}/tcp": rpc_port}
                 if i == 0 else {})
        frontends.append(cm.run(
            query_image, name=lb.container_name(name, "query", str(i)), role=lb.ROLE_QUERY,
            labels={**labels, lb.FRONTEND_ID: f"query-{i}"}, info=info,
            error=ClusterStartError, aliases=[lb.query_alias(name)], ports=ports,
            environment=spec.environment(), command=list(spec.args)))
    wait(cm, mgmt, deadline, lambda: http_ok(
        f"http://{cm.docker_ip_address}:{info.admin_port}/admin/ping", cm.admin_token))
    for i, (container, (query_port, _)) in enumerate(
            zip(frontends, info.query_endpoints, strict=True)):
        if i == 0 or info.host_network:
            url = f"http://{cm.docker_ip_address}:{query_port}/healthz"
            wait(cm, container, deadline, functools.partial(http_ok, url, None))
        else:  # not published: probe from inside
            probe = ["python", "-c", "import urllib.request as u; u.urlopen("
                     f"'http://127.0.0.1:{query_port}/healthz', timeout=2)"]
            wait(cm, container, deadline, functools.partial(exec_ok, container, probe))


def wait(cm: DockerContainerManager, container: Any, deadline: float,
         ready: Callable[[], bool]) -> None:
    """Poll ``ready`` until it is true; ClusterStartError with the log tail
    when the container exits or the deadline passes."""
    while True:
        if ready():
            return
        with docker_errors(f"Inspecting container {container.name}", ClusterStartError):
            container.reload()
        if container.status not in ("created", "running"):
            raise ClusterStartError(
                f"Container {container.name} of cluster {cm.cluster_name} exited "
                f"(status {container.status}, exit code "
                f"{container.attrs['State'].get('ExitCode')}); last log lines:\n"
                f"{log_tail(container)}", container=container.name)
        if time.monotonic() > deadline:
            raise ClusterStartError(
                f"Container {container.name} of cluster {cm.cluster_name} did not "
                f"become ready within {cm.start_timeout:.0f}s; last log lines:\n"
                f"{log_tail(container)}", container=container.name)
        time.sleep(0.2)
