"""A Prometheus server that scrapes a local cluster, as Clipper's own did.

``LocalProcessContainerManager.start_clipper(prometheus_port=9090)`` starts
the ``prometheus`` binary (Debian's ``prometheus`` package, or
``CLIPPER_PROMETHEUS_BINARY``) under the cluster's process table, with a
configuration that scrapes every query frontend's ``/prometheus`` route.
Its data lives in ``<state dir>/prometheus``; it stops with the cluster.
Query it with PromQL at ``http://<host>:<port>/api/v1/query``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from clipper_core.errors import ClusterStartError

from .clusters import ClusterConfig
from .processes import ProcessTable
from .startup import base_env, port_taken, wait_ready

BINARY_ENV = "CLIPPER_PROMETHEUS_BINARY"
PROCESS = "prometheus"
#: how often Prometheus scrapes the cluster
SCRAPE_INTERVAL = "5s"


def binary() -> str:
    """The ``prometheus`` executable; ClusterStartError with a hint if none."""
    found = os.environ.get(BINARY_ENV) or shutil.which("prometheus")
    if not found:
        raise ClusterStartError(
            "prometheus_port was given but no prometheus binary is installed: install it "
            f"(Debian/Ubuntu: apt-get install prometheus) or set {BINARY_ENV}")
    return found


def scrape_config(config: ClusterConfig, interval: str = SCRAPE_INTERVAL) -> dict[str, object]:
    """The server's configuration (JSON is YAML): every query frontend."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{
            "job_name": "clipper-query-frontend",
            "metrics_path": "/prometheus",
            "static_configs": [{
                "targets": [f"{config.host}:{http}" for http, _ in config.frontend_ports()],
                "labels": {"cluster": config.cluster_name}}],
        }],
    }


def start(table: ProcessTable, config: ClusterConfig, state_dir: Path, port: int,
          timeout: float, interval: str = SCRAPE_INTERVAL) -> int:
    """Start Prometheus on ``port`` (0: a free one) and wait until it is
    ready; return its port."""
    exe = binary()
    if port == 0:
        with socket.socket() as s:
            s.bind((config.host, 0))
            port = s.getsockname()[1]
    elif port_taken(config.host, port):
        raise ClusterStartError(f"Port {port} on {config.host} (for Prometheus) is already in "
                                "use; choose another prometheus_port", port=port)
    data = state_dir / "prometheus"
    data.mkdir(mode=0o700, exist_ok=True)
    config_file = data / "prometheus.yml"
    config_file.write_text(json.dumps(scrape_config(config, interval), indent=1))
    argv = [exe, f"--config.file={config_file}", f"--storage.tsdb.path={data / 'tsdb'}",
            f"--web.listen-address={config.host}:{port}", "--storage.tsdb.retention.time=1d"]
    table.start(PROCESS, argv, base_env(), {"kind": "prometheus"})
    wait_ready(table, [(PROCESS, f"http://{config.host}:{port}/-/ready")], None,
               config.cluster_name, timeout)
    return port
