"""Deploy a Python function as a model: Clipper's ``clipper_admin.deployers.python``.

The function is serialised with cloudpickle into ``func.pkl`` in a temporary
model directory, which the connection's container manager builds
(``build_model``) and deploys; the model runtime (``python -m
clipper_core.runtime``) loads it and calls ``func(inputs)`` with a list of
inputs, expecting one JSON-serialisable output per input.  The same calls
work with every container manager.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ClipperException, ValidationError

log = logging.getLogger("clipper.deployers.python")

FUNC_FILE = "func.pkl"


def serialize_function(func: Callable[..., Any]) -> bytes:
    """``func`` pickled by value with cloudpickle.

    Raises :class:`ClipperException` naming the function and the reason when
    it cannot be serialised (e.g. it captures a lock, a socket or an open file).
    """
    if not callable(func):
        raise ValidationError(f"func must be callable, got {type(func).__name__}",
                              argument="func")
    import cloudpickle

    label = getattr(func, "__qualname__", repr(func))
    try:
        data: bytes = cloudpickle.dumps(func)
        cloudpickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - any pickling failure is the user's to fix
        raise ClipperException(
            f"Cannot serialise the function {label!r} with cloudpickle: "
            f"{type(exc).__name__}: {exc}. Everything the function refers to "
            "(closure variables, globals) must be picklable.", function=label) from exc
    return data


def save_python_function(name: str, func: Callable[..., Any]) -> str:
    """Write ``func`` as ``func.pkl`` into a new temporary directory and return
    its path (the caller removes it)."""
    data = serialize_function(func)
    model_dir = Path(tempfile.mkdtemp(prefix=f"clipper-{name}-"))
    (model_dir / FUNC_FILE).write_bytes(data)
    log.info("Serialized and supplied predict function for model %s", name)
    return str(model_dir)


def deploy_python_closure(clipper_conn: Any, name: str, version: Any, input_type: str,
                          func: Callable[..., Any], base_image: str = "default",
                          labels: list[str] | None = None, registry: str | None = None,
                          num_replicas: int = 1, batch_size: int = -1,
                          pkgs_to_install: list[str] | None = None) -> None:
    """Deploy ``func`` as model ``name:version`` (which becomes current).

    :param clipper_conn: a connected :class:`~clipper_core.connection.ClipperConnection`.
    :param func: ``func(inputs: list) -> list``, one output per input.
    :param base_image: ``"default"`` runs the clipper-core runtime; image-based
        managers build from it.
    :param registry: where the built model is published (an image registry,
        or a directory for the local_process manager).
    :param pkgs_to_install: pip packages the model needs.
    Raises ClipperException when ``func`` cannot be serialised (before
    anything is built) or when building or deploying fails.
    """
    model_dir = save_python_function(name, func)
    try:
        clipper_conn.build_and_deploy_model(
            name, version, input_type, model_dir, base_image, labels=labels,
            container_registry=registry, num_replicas=num_replicas, batch_size=batch_size,
            pkgs_to_install=pkgs_to_install)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    log.info("Python closure saved")


def create_endpoint(clipper_conn: Any, name: str, input_type: str, func: Callable[..., Any],
                    default_output: str = "None", version: Any = 1, slo_micros: int = 3000000,
                    labels: list[str] | None = None, registry: str | None = None,
                    base_image: str = "default", num_replicas: int = 1,
                    batch_size: int = -1, pkgs_to_install: list[str] | None = None) -> None:
    """Register application ``name``, deploy ``func`` as model ``name:version``
    and link the two: ``POST /{name}/predict`` then answers with ``func``."""
    serialize_function(func)  # fail before registering anything
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_python_closure(clipper_conn, name, version, input_type, func, base_image,
                          labels, registry, num_replicas, batch_size, pkgs_to_install)
    clipper_conn.link_model_to_app(name, name)
