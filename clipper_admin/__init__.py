"""Clipper's ``clipper_admin`` names, so existing Clipper scripts keep working.

``ClipperConnection``, ``ClipperException`` and ``UnconnectedException`` are
clipper-core's.  The container managers (``DockerContainerManager``,
``KubernetesContainerManager``, ``LocalProcessContainerManager``,
``NomadContainerManager``) are the classes offered by installed plugins,
looked up when first used; using one whose plugin is not installed raises
:class:`ContainerManagerNotInstalled` saying what to install.
"""

from __future__ import annotations

from typing import Any

from clipper_core.connection import ClipperConnection
from clipper_core.errors import ClipperException, PluginError, UnconnectedException

#: Clipper class name -> (container manager name, distribution offering it).
CONTAINER_MANAGERS: dict[str, tuple[str, str]] = {
    "DockerContainerManager": ("docker", "clipper-docker"),
    "KubernetesContainerManager": ("k8s", "clipper-k8s"),
    "LocalProcessContainerManager": ("local_process", "clipper-local-process"),
    "NomadContainerManager": ("nomad", "clipper-nomad"),
}

__all__ = ["ClipperConnection", "ClipperException", "UnconnectedException",
           "ContainerManagerNotInstalled", *CONTAINER_MANAGERS]


class ContainerManagerNotInstalled(PluginError, AttributeError):
    """A Clipper container manager class was asked for, but no installed
    plugin offers it.  Also an AttributeError, so ``hasattr`` is False."""

    kind = "plugin_error"


def __getattr__(name: str) -> Any:
    if name not in CONTAINER_MANAGERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from clipper_core.plugins import backends

    backend_name, distribution = CONTAINER_MANAGERS[name]
    found = backends("container_managers")
    if backend_name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ContainerManagerNotInstalled(
            f"clipper_admin.{name} needs the {backend_name!r} container manager plugin, "
            f"which is not installed: pip install {distribution}. "
            f"Installed container managers: {known}",
            name=name, distribution=distribution)
    return found[backend_name].factory


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(CONTAINER_MANAGERS))
