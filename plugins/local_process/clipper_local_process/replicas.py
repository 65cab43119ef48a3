"""Placing model replicas as local processes and waiting for them to connect.

A replica's command line and environment come from
:func:`clipper_core.launch.replica_process`; the wait is
:func:`clipper_core.launch.wait_for_replicas` over the cluster's state store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from clipper_core import launch
from clipper_core.errors import ContainerError
from clipper_core.models import InputType, ReplicaStatus

from . import rpc_keys
from .artifacts import Artifact
from .clusters import ClusterConfig
from .desired import DesiredProcess
from .processes import ProcessInfo, ProcessTable
from .startup import base_env

#: seconds a new (unregistered) version's replicas are watched for a crash
NEW_VERSION_WATCH_S = 2.0

def process_name(name: str, version: str, index: int) -> str:
    """The process table's name of replica ``index`` of name:version."""
    return f"replica__{name}__{version}__{index}"


def desired_replicas(table: ProcessTable, name: str, version: str) -> list[DesiredProcess]:
    """The desired replicas of name:version, by index."""
    return sorted((d for d in table.desired.all() if d.labels.get("kind") == "replica"
                   and d.labels.get("model_name") == name
                   and d.labels.get("model_version") == version),
                  key=lambda d: int(d.labels.get("index", "0")))


def replica_names(table: ProcessTable, models: dict[str, list[str]] | None = None) -> list[str]:
    """The process names of every replica, desired or running (only of the
    ``name -> [versions]`` in ``models`` when given)."""
    labelled: list[DesiredProcess | ProcessInfo] = [*table.desired.all(),
                                                    *table.select(kind="replica")]
    return sorted({p.name for p in labelled if p.labels.get("kind") == "replica" and (
        models is None or p.labels.get("model_version") in
        {str(v) for v in models.get(p.labels.get("model_name", ""), ())})})


def replica_status(proc: ProcessInfo) -> ReplicaStatus:
    """How ``list_replicas`` shows a replica process."""
    return ReplicaStatus(model_name=proc.labels["model_name"],
                         model_version=proc.labels["model_version"],
                         replica_id=proc.labels["replica_id"], status=proc.status,
                         restarts=proc.restarts, handle=str(proc.pid or ""))


def start_replica(table: ProcessTable, config: ClusterConfig, name: str, version: str,
                  itype: InputType, artifact: Artifact, image: str, index: int) -> str:
    """Start replica ``index`` of name:version from ``artifact``; return its process name."""
    rid = launch.replica_id(name, version, index)
    spec = launch.replica_process(
        name=name, version=version, input_type=itype,
        frontends=launch.RpcTargets(addresses=config.rpc_addresses()),
        model_path=str(artifact.model_path), replica_id=rid,
        secrets=launch.ClusterSecrets(rpc_keys=rpc_keys.cluster_keys(table.state_dir)))
    proc_name = process_name(name, version, index)
    table.start(proc_name, spec.argv(artifact.python or config.python),
                {**base_env(), **rpc_keys.secret_environment(table.state_dir, spec)},
                {"kind": "replica", "model_name": name, "model_version": version,
                 "replica_id": rid, "index": str(index), "image": image})
    return proc_name


def crash_check(table: ProcessTable, name: str, version: str,
                started: list[str]) -> Callable[[], None]:
    """A check raising ContainerError (with the log tail) when a replica in
    ``started`` died or restarted."""
    def check() -> None:
        for proc_name in started:
            info = table.get(proc_name)
            if info is None or info.restarts > 0 or not info.alive:
                index = proc_name.rsplit("__", 1)[-1]
                raise ContainerError(
                    f"Replica {index} of {name}:{version} crashed on start (exit code "
                    f"{info.last_exit_code if info else None}); last log lines:\n"
                    f"{table.tail(proc_name)}", model_name=name, model_version=version)
    return check


def wait_connected(store: Any, table: ProcessTable, config: ClusterConfig, name: str,
                   version: str, started: list[str], want: int, timeout: float,
                   progress: Callable[[str], None]) -> bool:
    """Until every query frontend sees ``want`` connected replicas of name:version.

    A version not registered yet (``ClipperConnection.deploy_model`` registers
    it after this returns, then waits itself) is only watched for a crash for
    a moment: with CURVE the frontends admit its replicas' keys only once it
    is registered."""
    frontends = [f"query-{i}" for i in range(config.num_frontends)]
    if store.get_model(name, version) is None:
        check = crash_check(table, name, version, started)
        deadline = time.monotonic() + NEW_VERSION_WATCH_S
        while time.monotonic() < deadline:
            check()
            time.sleep(0.1)
        return True
    return launch.wait_for_replicas(
        launch.store_replicas(store),
        launch.ReplicaWait(name=name, version=version, count=want, frontends=frontends),
        timeout=timeout, check=crash_check(table, name, version, started), progress=progress)
