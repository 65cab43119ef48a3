"""Lazy forwarding from a ``clipper_admin.deployers`` module to its
``clipper_core.deployers`` twin, so importing Clipper's name costs nothing
until a function is used (and a framework is imported only then)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def forwarder(name: str, target: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for module ``name`` forwarding to ``target``."""

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        try:
            return getattr(importlib.import_module(target), attr)
        except AttributeError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    def __dir__() -> list[str]:
        return sorted(n for n in dir(importlib.import_module(target)) if not n.startswith("_"))

    return __getattr__, __dir__
