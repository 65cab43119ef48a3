"""clipper-local-process: the embedded default container manager.

Only wires hooks; the code lives in :mod:`.manager` (the container manager),
:mod:`.supervise` (the per-process supervisor), :mod:`.balancer`,
:mod:`.artifacts` and :mod:`.registry` (the ``directory`` model registry).
Modules are imported when a backend is looked up, so loading the plugin stays
cheap;
``from clipper_local_process import LocalProcessContainerManager`` works.
"""

from __future__ import annotations

import importlib
from typing import Any

from clipper_core.hookspecs import Register, hookimpl

_LAZY = {"LocalProcessContainerManager": ".manager", "DirectoryRegistry": ".registry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_container_managers(register: Register) -> None:
    from .manager import LocalProcessContainerManager

    register("local_process", LocalProcessContainerManager)


@hookimpl
def register_registries(register: Register) -> None:
    from .registry import DirectoryRegistry

    register("directory", DirectoryRegistry)
