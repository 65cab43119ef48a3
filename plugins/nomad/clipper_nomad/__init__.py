"""clipper-nomad: run a Clipper cluster as Nomad jobs.

This module only wires the hook; the manager, and with it python-nomad,
is imported when used, so ``import clipper_nomad`` stays cheap.
``from clipper_nomad import NomadContainerManager`` works.  Model images are built by
the ``docker`` model registry, found by name
(:func:`clipper_core.launch.get_image_builder`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clipper_core.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from .manager import NomadContainerManager

__all__ = ["NomadContainerManager", "register_container_managers"]


def __getattr__(name: str) -> Any:
    if name == "NomadContainerManager":
        return getattr(importlib.import_module(".manager", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _factory(*args: Any, **options: Any) -> Any:
    from .manager import NomadContainerManager

    return NomadContainerManager(*args, **options)


@hookimpl
def register_container_managers(register: Register) -> None:
    """Offer the ``nomad`` container manager."""
    register("nomad", _factory)
