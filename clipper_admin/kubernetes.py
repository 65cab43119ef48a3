"""Clipper's ``clipper_admin.kubernetes``: ``KubernetesContainerManager``, from its plugin when first used."""

from __future__ import annotations

from typing import Any

from .managers import manager_class


def __getattr__(name: str) -> Any:
    if name != "KubernetesContainerManager":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return manager_class(name, where=__name__)
