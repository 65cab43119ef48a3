"""clipper-docker: run a Clipper cluster's frontends and model replicas as
Docker containers (entry point ``docker``).

This module only wires the hook; the manager and the docker SDK load when a
``docker`` container manager is built.
"""

from __future__ import annotations

from typing import Any

from clipper_core.hookspecs import Register, hookimpl

__all__ = ["register_container_managers"]


def _docker_container_manager(**options: Any) -> Any:
    from .manager import DockerContainerManager

    return DockerContainerManager(**options)


@hookimpl
def register_container_managers(register: Register) -> None:
    """Offer ``docker``: :class:`clipper_docker.manager.DockerContainerManager`."""
    register("docker", _docker_container_manager)
