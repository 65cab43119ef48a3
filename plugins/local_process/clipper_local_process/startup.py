"""Placing a local cluster's frontends: ports, processes, readiness.

What each frontend runs comes from :mod:`clipper_core.launch`; this module
only decides where (this host, the configured ports) and starts them under
the process table's supervisors.
"""

from __future__ import annotations

import os
import socket
import time

from clipper_core import launch
from clipper_core.errors import ClusterStartError

from .clusters import ClusterConfig
from .processes import ProcessTable

#: What a child process must not inherit from the caller's environment.
_NOT_INHERITED = (*launch.REPLICA_ENV_KEYS, launch.ADMIN_TOKEN_ENV)


def base_env() -> dict[str, str]:
    """This process's environment without Clipper's per-process variables."""
    return {k: v for k, v in os.environ.items()
            if k not in _NOT_INHERITED and not k.startswith("CLIPPER_MODEL_")}


def port_taken(host: str, port: int) -> bool:
    """Whether ``port`` on ``host`` cannot be bound right now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def check_ports(config: ClusterConfig) -> None:
    """ClusterStartError when a port is configured twice or already in use."""
    wanted = [(config.management_port, "management frontend")]
    if config.num_frontends > 1:
        wanted.append((config.query_port, "query load balancer"))
    for i, (http, rpc) in enumerate(config.frontend_ports()):
        wanted += [(http, f"query frontend {i}"), (rpc, f"query frontend {i} RPC")]
    seen: dict[int, str] = {}
    for port, what in wanted:
        if port in seen:
            raise ClusterStartError(f"Port {port} is configured twice: for the {seen[port]} "
                                    f"and the {what}", port=port)
        seen[port] = what
        if port_taken(config.host, port):
            raise ClusterStartError(
                f"Port {port} on {config.host} (for the {what}) is already in use; stop "
                "what uses it or choose other ports", port=port, process=what)


def start_frontends(table: ProcessTable, config: ClusterConfig,
                    secrets: launch.ClusterSecrets) -> list[tuple[str, str]]:
    """Start the management frontend, the query frontends and (with several)
    the load balancer; return ``(process name, readiness URL)`` pairs.  The
    query frontends serve no metrics port of their own (Prometheus scrapes
    ``/prometheus`` on their query port), so none takes Clipper's 1390."""
    env = {**base_env(), "CLIPPER_PROMETHEUS_PORT": "0"}
    host, py = config.host, config.python
    labels = {"kind": "frontend"}
    mgmt = launch.management_process(
        store_url=config.store_url, host=host, port=config.management_port, secrets=secrets,
        query_urls=[f"http://{host}:{http}" for http, _ in config.frontend_ports()])
    table.start("management", mgmt.argv(py), {**env, **mgmt.environment()}, labels)
    checks = [("management", f"http://{host}:{config.management_port}/admin/ping")]
    for i, (http, rpc) in enumerate(config.frontend_ports()):
        name = f"query-{i}"
        query = launch.query_process(store_url=config.store_url, frontend_id=name, host=host,
                                     port=http, rpc_port=rpc, cache_size=config.cache_size,
                                     secrets=secrets)
        table.start(name, query.argv(py), {**env, **query.environment()}, labels)
        checks.append((name, f"http://{host}:{http}/healthz"))
    if config.num_frontends > 1:
        argv = [py, "-m", "clipper_local_process.balancer", "--listen",
                f"{host}:{config.query_port}"]
        for http, _ in config.frontend_ports():
            argv += ["--backend", f"{host}:{http}"]
        table.start("balancer", argv, env, labels)
        checks.append(("balancer", f"http://{host}:{config.query_port}/healthz"))
    return checks


def wait_ready(table: ProcessTable, checks: list[tuple[str, str]], token: str | None,
               cluster: str, timeout: float) -> None:
    """Until every URL answers 200; ClusterStartError with the log tail when
    a process dies or ``timeout`` passes."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    pending = dict(checks)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, headers=headers) as client:
        while pending:
            for name, url in list(pending.items()):
                info = table.get(name)
                if info is None or info.restarts > 0 or not info.alive:
                    code = info.last_exit_code if info else None
                    raise ClusterStartError(
                        f"The {name} process of cluster {cluster!r} died while starting "
                        f"(exit code {code}); last log lines:\n{table.tail(name)}",
                        process=name, exit_code=code)
                try:
                    if client.get(url).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                name = next(iter(pending))
                raise ClusterStartError(
                    f"The {name} process of cluster {cluster!r} did not answer "
                    f"{pending[name]} within {timeout:.0f}s; last log lines:\n"
                    f"{table.tail(name)}", process=name)
            if pending:
                time.sleep(0.1)
