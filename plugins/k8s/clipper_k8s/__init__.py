"""clipper-k8s: run a Clipper cluster on Kubernetes.

This module only wires the hook; the manager, and with it the official ``kubernetes`` client,
is imported when used, so ``import clipper_k8s`` stays cheap.
``from clipper_k8s import KubernetesContainerManager`` works.  Model images are built by
the ``docker`` model registry, found by name
(:func:`clipper_core.launch.get_image_builder`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clipper_core.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from .manager import KubernetesContainerManager

__all__ = ["KubernetesContainerManager", "register_container_managers"]


def __getattr__(name: str) -> Any:
    if name == "KubernetesContainerManager":
        return getattr(importlib.import_module(".manager", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _factory(*args: Any, **options: Any) -> Any:
    from .manager import KubernetesContainerManager

    return KubernetesContainerManager(*args, **options)


@hookimpl
def register_container_managers(register: Register) -> None:
    """Offer the ``k8s`` container manager."""
    register("k8s", _factory)
