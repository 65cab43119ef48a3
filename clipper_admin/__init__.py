"""Clipper's ``clipper_admin`` names, so existing Clipper scripts keep working.

``ClipperConnection``, ``ClipperException`` and ``UnconnectedException`` are
clipper-core's; ``clipper_admin.deployers`` (with every framework module),
the constants ``CLIPPER_TEMP_DIR``, ``DEFAULT_LABEL`` and
``DEFAULT_PREDICTION_CACHE_SIZE_BYTES``, ``__version__`` and ``__registry__``
and the submodules ``clipper_admin.{clipper_admin, container_manager,
version, docker, kubernetes, metrics, exceptions}`` mean what they mean in
Clipper.  The container managers (``DockerContainerManager``,
``KubernetesContainerManager``, ``LocalProcessContainerManager``,
``NomadContainerManager``) are the classes offered by installed plugins,
looked up when first used; one whose plugin is not installed raises
:class:`ContainerManagerNotInstalled`, an ImportError saying what to
``pip install``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from . import deployers
from .clipper_admin import (
    CLIPPER_TEMP_DIR,
    DEFAULT_LABEL,
    DEFAULT_PREDICTION_CACHE_SIZE_BYTES,
    ClipperConnection,
)
from .exceptions import ClipperException, UnconnectedException
from .managers import CONTAINER_MANAGERS, ContainerManagerNotInstalled, manager_class
from .version import __registry__, __version__

# ``clipper_admin.deployers.python`` works after ``import clipper_admin``, as in
# Clipper; each framework module is a lazy forwarder, so this costs nothing.
for _module in pkgutil.iter_modules(deployers.__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{deployers.__name__}.{_module.name}")

__all__ = ["CLIPPER_TEMP_DIR", "DEFAULT_LABEL", "DEFAULT_PREDICTION_CACHE_SIZE_BYTES",
           "ClipperConnection", "ClipperException", "ContainerManagerNotInstalled",
           "UnconnectedException", "__registry__", "__version__", "deployers"]


def __getattr__(name: str) -> Any:
    if name not in CONTAINER_MANAGERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return manager_class(name, where=__name__)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(CONTAINER_MANAGERS))
