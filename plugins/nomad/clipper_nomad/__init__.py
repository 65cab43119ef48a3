"""clipper-nomad: run a Clipper cluster as Nomad jobs.

This module only wires the hook; the manager (and python-nomad) is imported
when the manager is built.
"""

from __future__ import annotations

from typing import Any

from clipper_core.hookspecs import hookimpl

__all__ = ["register_container_managers"]


def _factory(**options: Any) -> Any:
    from .manager import NomadContainerManager

    return NomadContainerManager(**options)


@hookimpl
def register_container_managers(register: Any) -> None:
    """Offer the ``nomad`` container manager."""
    register("nomad", _factory)
