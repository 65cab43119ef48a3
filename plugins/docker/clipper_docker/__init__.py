"""clipper-docker: run a Clipper cluster's frontends and model replicas as
Docker containers (entry point ``docker``), and build model images (the
``docker`` model registry).

This module only wires the hooks; the manager, the registry and the docker
SDK load when used, so ``import clipper_docker`` stays cheap.
``from clipper_docker import DockerContainerManager`` works.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clipper_core.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from .manager import DockerContainerManager
    from .registry import DockerRegistry

__all__ = ["DockerContainerManager", "DockerRegistry", "register_container_managers",
           "register_registries"]

_LAZY = {"DockerContainerManager": ".manager", "DockerRegistry": ".registry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _docker_container_manager(*args: Any, **options: Any) -> Any:
    from .manager import DockerContainerManager

    return DockerContainerManager(*args, **options)


def _docker_registry(*args: Any, **options: Any) -> Any:
    from .registry import DockerRegistry

    return DockerRegistry(*args, **options)


@hookimpl
def register_container_managers(register: Register) -> None:
    """Offer ``docker``: :class:`clipper_docker.manager.DockerContainerManager`."""
    register("docker", _docker_container_manager)


@hookimpl
def register_registries(register: Register) -> None:
    """Offer ``docker``: :class:`clipper_docker.registry.DockerRegistry`, which
    also builds model images for managers that run images."""
    register("docker", _docker_registry)
