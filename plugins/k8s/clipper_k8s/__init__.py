"""clipper-k8s: run a Clipper cluster on Kubernetes.

This module only wires the hook; the manager, and with it the official
``kubernetes`` client, is imported when the manager is built.
"""

from __future__ import annotations

from typing import Any

from clipper_core.hookspecs import hookimpl

__all__ = ["register_container_managers"]


def _factory(**options: Any) -> Any:
    from .manager import KubernetesContainerManager

    return KubernetesContainerManager(**options)


@hookimpl
def register_container_managers(register: Any) -> None:
    """Offer the ``k8s`` container manager."""
    register("k8s", _factory)
