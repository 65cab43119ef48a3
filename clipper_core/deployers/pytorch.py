"""Deploy a PyTorch model: Clipper's ``clipper_admin.deployers.pytorch``.

The model directory holds, besides ``func.pkl``, the module itself
(``pytorch_model.pkl``, cloudpickled so that classes defined in a script or a
notebook travel with it) and its weights in PyTorch's own format
(``pytorch_weights.pkl``, written by ``torch.save(model.state_dict())``);
Clipper used the same two file names.  A replica loads the module, restores
the weights (``torch.load(..., weights_only=True)``), puts the module in
evaluation mode once, and calls ``func(model, inputs)`` for every batch.
Runs on the CPU build of PyTorch (``pip install torch==2.13.0``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ClipperException
from .deployer_utils import (
    check_function,
    deploy_with_model,
    require,
    serialize_object,
    write_manifest,
)

log = logging.getLogger("clipper.deployers.pytorch")

PYTORCH_WEIGHTS_RELATIVE_PATH = "pytorch_weights.pkl"
PYTORCH_MODEL_RELATIVE_PATH = "pytorch_model.pkl"
PIP_NAME = "torch==2.13.0"


def save_pytorch_model(model_dir: Path, pytorch_model: Any) -> None:
    """Write ``pytorch_model`` (an ``nn.Module``) and its weights into ``model_dir``."""
    torch = require("torch", "PyTorch", PIP_NAME)
    if not isinstance(pytorch_model, torch.nn.Module):
        raise ClipperException(
            f"pytorch_model must be a torch.nn.Module, got {type(pytorch_model).__name__}",
            argument="pytorch_model")
    try:
        torch.save(pytorch_model.state_dict(), model_dir / PYTORCH_WEIGHTS_RELATIVE_PATH)
        (model_dir / PYTORCH_MODEL_RELATIVE_PATH).write_bytes(serialize_object(pytorch_model))
    except Exception as exc:  # noqa: BLE001 - reported with the model's type
        raise ClipperException(f"Error saving torch model: {type(exc).__name__}: {exc}",
                               model=type(pytorch_model).__name__) from exc
    write_manifest(model_dir, "pytorch", model=PYTORCH_MODEL_RELATIVE_PATH,
                   weights=PYTORCH_WEIGHTS_RELATIVE_PATH, torch_version=torch.__version__)
    log.info("Torch model saved")


def load_model_args(model_dir: Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    """``(model,)``: the module with its saved weights, in evaluation mode."""
    import cloudpickle
    import torch

    with (model_dir / manifest["model"]).open("rb") as f:
        model = cloudpickle.load(f)
    state = torch.load(model_dir / manifest["weights"], map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return (model,)


def deploy_pytorch_model(clipper_conn: Any, name: str, version: Any, input_type: str,
                         func: Callable[..., Any], pytorch_model: Any,
                         base_image: str = "default", labels: list[str] | None = None,
                         registry: str | None = None, num_replicas: int = 1,
                         batch_size: int = -1,
                         pkgs_to_install: list[str] | None = None) -> None:
    """Deploy ``func`` with ``pytorch_model`` as model ``name:version``.

    :param func: ``func(model, inputs: list) -> list``, one output per input;
        ``model`` is ``pytorch_model`` as loaded in the replica (eval mode, CPU).
    :param pytorch_model: a ``torch.nn.Module``.
    :param base_image: ``"default"`` runs the clipper-core runtime (image-based
        managers need PyTorch in that image, e.g. through ``pkgs_to_install``).
    Raises ClipperException when PyTorch is missing, the model or ``func``
    cannot be saved, or building or deploying fails.
    """
    require("torch", "PyTorch", PIP_NAME)
    deploy_with_model(clipper_conn, name, version, input_type, func,
                      lambda model_dir: save_pytorch_model(model_dir, pytorch_model),
                      base_image=base_image, labels=labels, registry=registry,
                      num_replicas=num_replicas, batch_size=batch_size,
                      pkgs_to_install=pkgs_to_install)


def create_endpoint(clipper_conn: Any, name: str, input_type: str, func: Callable[..., Any],
                    pytorch_model: Any, default_output: str = "None", version: Any = 1,
                    slo_micros: int = 3000000, labels: list[str] | None = None,
                    registry: str | None = None, base_image: str = "default",
                    num_replicas: int = 1, batch_size: int = -1,
                    pkgs_to_install: list[str] | None = None) -> None:
    """Register application ``name``, deploy ``func`` with ``pytorch_model`` as
    model ``name:version`` and link the two."""
    check_function(func)
    require("torch", "PyTorch", PIP_NAME)
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_pytorch_model(clipper_conn, name, version, input_type, func, pytorch_model,
                         base_image, labels, registry, num_replicas, batch_size,
                         pkgs_to_install)
    clipper_conn.link_model_to_app(name, name)
