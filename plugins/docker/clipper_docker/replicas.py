"""Model replica containers: waiting for new ones to connect, and their status.

The wait is :func:`clipper_core.launch.wait_for_replicas` over the
management frontend's replica list; this module adds the Docker side: a
replica container that exits or restarts while starting stops the wait with
its log tail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clipper_core import launch
from clipper_core.errors import ContainerError
from clipper_core.models import ReplicaStatus

from . import cluster as lb
from .engine import docker_errors
from .probes import log_tail

if TYPE_CHECKING:
    from .manager import DockerContainerManager

#: Seconds new replicas of a version not registered yet are watched for a
#: crash on start (they cannot connect before it is registered, with CURVE).
START_GRACE_S = 2.0


def crash_check(name: str, version: str, started: list[Any]) -> Callable[[], None]:
    """A check raising ContainerError when a container in ``started`` exited
    or restarted."""
    def check() -> None:
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
    return check


def wait_connected(cm: DockerContainerManager, name: str, version: str,
                   started: list[Any]) -> bool:
    """Until the management frontend reports every container in ``started``
    as a connected replica (up to ``cm.replica_timeout``); with CURVE and the
    version not registered yet, only watch them for a crash on start."""
    check = crash_check(name, version, started)
    if cm.rpc_keys is not None and not launch.admin_knows_version(
            cm.get_admin_addr, cm.admin_token, name, version):
        deadline = time.monotonic() + min(START_GRACE_S, cm.replica_timeout)
        while time.monotonic() < deadline:
            check()
            time.sleep(0.2)
        return False
    want = launch.ReplicaWait(name=name, version=version, replica_ids={
        c.labels[lb.MODEL_REPLICA_ID] for c in started})
    return launch.wait_for_replicas(launch.admin_replicas(cm.get_admin_addr, cm.admin_token),
                                    want, timeout=cm.replica_timeout, check=check, interval=0.2)


def statuses(containers: list[Any]) -> list[ReplicaStatus]:
    """One status per replica container, sorted by model, version and id."""
    out = [ReplicaStatus(model_name=c.labels.get(lb.MODEL_NAME, ""),
                         model_version=c.labels.get(lb.MODEL_VERSION, ""),
                         replica_id=c.labels.get(lb.MODEL_REPLICA_ID, ""), status=c.status,
                         restarts=int(c.attrs.get("RestartCount", 0)), handle=c.id[:12])
           for c in containers]
    return sorted(out, key=lambda r: (r.model_name, r.model_version, r.replica_id))
