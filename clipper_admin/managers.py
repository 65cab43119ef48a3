"""Clipper's container manager classes, found among the installed plugins."""

from __future__ import annotations

from typing import Any

from clipper_core.errors import PluginError

#: Clipper class name -> (container manager name, distribution offering it).
CONTAINER_MANAGERS: dict[str, tuple[str, str]] = {
    "DockerContainerManager": ("docker", "clipper-docker"),
    "KubernetesContainerManager": ("k8s", "clipper-k8s"),
    "LocalProcessContainerManager": ("local_process", "clipper-local-process"),
    "NomadContainerManager": ("nomad", "clipper-nomad"),
}


class ContainerManagerNotInstalled(PluginError, ImportError):
    """A Clipper container manager class was asked for, but no installed
    plugin offers it.  An ImportError, so ``from clipper_admin import
    DockerContainerManager`` fails as a missing package does."""

    kind = "plugin_error"


def manager_class(name: str, *, where: str = "clipper_admin") -> Any:
    """The class offered for Clipper's container manager ``name``
    (``"DockerContainerManager"``...); ContainerManagerNotInstalled if none."""
    from clipper_core.plugins import backends

    backend_name, distribution = CONTAINER_MANAGERS[name]
    found = backends("container_managers")
    if backend_name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ContainerManagerNotInstalled(
            f"{where}.{name} needs the {backend_name!r} container manager plugin, "
            f"which is not installed: pip install {distribution}. "
            f"Installed container managers: {known}",
            name=name, distribution=distribution)
    return found[backend_name].factory
