"""Clipper's ``clipper_admin.deployers.python``: clipper-core's Python deployer
(``deploy_python_closure``, ``create_endpoint``, ...), looked up on first use."""

from __future__ import annotations

import importlib
from typing import Any

_TARGET = "clipper_core.deployers.python"


def _module() -> Any:
    return importlib.import_module(_TARGET)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(_module(), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(dir(_module())))
