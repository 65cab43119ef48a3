"""Deploy a Keras model: Clipper's ``clipper_admin.deployers.keras``, on Keras 3.

Keras 3 runs on the TensorFlow backend here (``tensorflow-cpu`` installs on
these machines; the PyTorch and JAX backends work the same way): the backend
the model was saved under is recorded and used by the replica unless
``KERAS_BACKEND`` says otherwise.  The model is saved in Keras' own format
(``keras_model.keras``); a path to a saved model (``.keras``, or a legacy
``.h5`` as Clipper took) is copied as it is.  A replica loads it once and
calls ``func(model, inputs)`` for every batch.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ClipperException
from .deployer_utils import check_function, deploy_with_model, require, write_manifest

log = logging.getLogger("clipper.deployers.keras")

MODEL_STEM = "keras_model"
SUFFIXES = (".keras", ".h5", ".hdf5")
PIP_NAME = "keras tensorflow-cpu"


def _keras() -> Any:
    return require("keras", "Keras", PIP_NAME)


def save_keras_model(model_dir: Path, model_path_or_object: Any,
                     framework: str = "keras") -> None:
    """Save a Keras model object, or copy a saved one, into ``model_dir``."""
    keras = _keras()
    if isinstance(model_path_or_object, keras.Model):
        target = model_dir / f"{MODEL_STEM}.keras"
        try:
            model_path_or_object.save(target)
        except Exception as exc:  # noqa: BLE001 - reported with the model's type
            raise ClipperException(f"Error saving the Keras model: {type(exc).__name__}: "
                                   f"{exc}") from exc
    elif (isinstance(model_path_or_object, (str, os.PathLike))
          and Path(model_path_or_object).is_file()
          and Path(model_path_or_object).suffix.lower() in SUFFIXES):
        target = model_dir / f"{MODEL_STEM}{Path(model_path_or_object).suffix.lower()}"
        shutil.copyfile(model_path_or_object, target)
    else:
        raise ClipperException(
            f"{model_path_or_object!r} should be either a Keras Model object or a saved "
            f"model file ({', '.join(SUFFIXES)})", argument="model_path_or_object")
    write_manifest(model_dir, framework, kind="keras", model=target.name,
                   backend=keras.backend.backend(), keras_version=keras.__version__)
    log.info("Keras model saved (%s backend)", keras.backend.backend())


def load_keras(model_dir: Path, manifest: dict[str, Any]) -> Any:
    """The saved Keras model, loaded under the backend it was saved with
    (unless Keras is already imported or ``KERAS_BACKEND`` is set)."""
    if "keras" not in sys.modules and manifest.get("backend"):
        os.environ.setdefault("KERAS_BACKEND", manifest["backend"])
    import keras

    # safe_mode=False: Lambda layers carry code, like func.pkl beside them.
    return keras.saving.load_model(model_dir / manifest["model"], compile=False,
                                   safe_mode=False)


def load_model_args(model_dir: Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    """``(model,)``: the saved Keras model."""
    return (load_keras(model_dir, manifest),)


def deploy_keras_model(clipper_conn: Any, name: str, version: Any, input_type: str,
                       func: Callable[..., Any], model_path_or_object: Any,
                       base_image: str = "default", labels: list[str] | None = None,
                       registry: str | None = None, num_replicas: int = 1,
                       batch_size: int = -1,
                       pkgs_to_install: list[str] | None = None) -> None:
    """Deploy ``func(model, inputs) -> list`` with a Keras model object or a
    saved model file (``.keras``, ``.h5``) as model ``name:version``.

    Raises ClipperException when Keras is missing, the model cannot be saved
    or found, or building or deploying fails.
    """
    _keras()
    deploy_with_model(clipper_conn, name, version, input_type, func,
                      lambda d: save_keras_model(d, model_path_or_object),
                      base_image=base_image, labels=labels, registry=registry,
                      num_replicas=num_replicas, batch_size=batch_size,
                      pkgs_to_install=pkgs_to_install)


def create_endpoint(clipper_conn: Any, name: str, input_type: str, func: Callable[..., Any],
                    model_path_or_object: Any, default_output: str = "None",
                    version: Any = 1, slo_micros: int = 3000000,
                    labels: list[str] | None = None, registry: str | None = None,
                    base_image: str = "default", num_replicas: int = 1,
                    batch_size: int = -1, pkgs_to_install: list[str] | None = None) -> None:
    """Register application ``name``, deploy ``func`` with the Keras model as
    model ``name:version`` and link the two."""
    check_function(func)
    _keras()
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_keras_model(clipper_conn, name, version, input_type, func, model_path_or_object,
                       base_image, labels, registry, num_replicas, batch_size,
                       pkgs_to_install)
    clipper_conn.link_model_to_app(name, name)
