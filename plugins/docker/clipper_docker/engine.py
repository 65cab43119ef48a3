"""The Docker engine: connecting to it and turning SDK errors into ours.

The docker SDK is imported here, lazily, so loading the plugin (``clipper
--help``, ``clipper plugins``) never pays for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from clipper_core.errors import ClipperException, ContainerError

log = logging.getLogger("clipper.docker")


def connect_engine(**client_kwargs: Any) -> Any:
    """A ``docker.DockerClient`` from ``client_kwargs`` or the environment
    (``DOCKER_HOST``...); ContainerError when the engine does not answer."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - a dependency of the plugin
        raise ContainerError("The docker SDK is not installed: pip install docker") from exc
    try:
        client = (docker.DockerClient(**client_kwargs) if client_kwargs
                  else docker.from_env())
        client.ping()
    except docker.errors.DockerException as exc:
        where = client_kwargs.get("base_url") or os.environ.get("DOCKER_HOST") or "the default socket"
        raise ContainerError(f"Cannot reach the Docker engine at {where}: {exc}",
                             docker_host=where) from exc
    return client


@contextlib.contextmanager
def docker_errors(what: str, error: type[ContainerError] = ContainerError,
                  **fields: object) -> Iterator[None]:
    """Re-raise docker SDK and transport errors inside the block as ``error``
    with the message ``"<what> failed: <cause>"``."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except ClipperException:
        raise
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise error(f"{what} failed: {explanation}", **fields) from exc


def has_default_bridge(client: Any) -> bool:
    """Whether the engine runs its default ``bridge`` network (dockerd
    ``--bridge=none`` does not; builds then need host networking)."""
    with docker_errors("Listing networks"):
        return bool(client.networks.list(names=["bridge"]))
