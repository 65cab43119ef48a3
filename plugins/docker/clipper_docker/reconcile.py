"""Desired state restored on a Docker cluster.

Every container of a cluster runs with a restart policy (model replicas
``always``, the rest ``unless-stopped``), so the engine restarts a process
that exits or is killed inside its container.  The engine does not restart
a container stopped from outside (``docker kill``, ``docker stop``): the
manager does, on its next call (``connect``, ``get_num_replicas``,
``set_num_replicas``, ``list_replicas``) with :func:`restart_stopped`.  A
container that cannot start again is removed, so ``set_num_replicas``
replaces it.  Containers being removed (``stop_all``, scaling down) are gone
before they could be seen stopped, so nothing removed on purpose comes back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import cluster as lb

if TYPE_CHECKING:
    from .manager import DockerContainerManager

log = logging.getLogger("clipper.docker")

#: Container states the engine leaves alone: restarted here.
STOPPED_STATES = ("exited", "dead")


def restart_stopped(cm: DockerContainerManager) -> list[str]:
    """Start again every stopped container of ``cm``'s cluster (removing those
    that cannot start); return the names of those started."""
    import docker.errors

    started = []
    for container in cm._containers():
        if container.status not in STOPPED_STATES:
            continue
        try:
            container.start()
        except docker.errors.NotFound:
            continue  # removed meanwhile
        except docker.errors.DockerException as exc:
            log.warning("container %s cannot start again (%s); removing it", container.name, exc)
            cm._remove([container], graceful=False)
            continue
        log.warning("restarted container %s: it was %s", container.name, container.status)
        started.append(container.name)
    return started


def live_replicas(cm: DockerContainerManager, name: str, version: str) -> int:
    """Restore what was stopped, then count the replicas of name:version that
    exist and are not stopped (``running``, ``restarting`` or ``created``)."""
    restart_stopped(cm)
    return sum(1 for c in cm.model_containers(name, version) if c.status in lb.LIVE_STATES)


def policy(role: str) -> dict[str, Any]:
    """The restart policy of a container of ``role``."""
    return {"Name": "always" if role == lb.ROLE_MODEL else "unless-stopped"}
