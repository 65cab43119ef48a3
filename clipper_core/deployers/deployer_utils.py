"""Helpers shared by the framework deployers: Clipper's ``deployer_utils``.

Every framework deployer builds one model directory::

    func.pkl            the user's function, cloudpickled (as deploy_python_closure)
    clipper_model.json  the manifest: which framework loads the model, and its files
    ...                 the model in the framework's own format

and hands it to the connection's container manager.  The model runtime sees
the manifest, loads the model once at start-up through that framework's
module (:func:`load_framework_model`) and then calls ``func(model, inputs)``
for every batch (PySpark: ``func(spark, model, inputs)``).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ClipperException
from .python import save_python_function, serialize_function

log = logging.getLogger("clipper.deployers")

MANIFEST_FILE = "clipper_model.json"
FUNC_FILE = "func.pkl"

#: framework name in a manifest -> the module whose ``load_model_args`` loads it
LOADERS: dict[str, str] = {
    "pytorch": "clipper_core.deployers.pytorch",
    "onnx": "clipper_core.deployers.onnx",
    "keras": "clipper_core.deployers.keras",
    "tensorflow": "clipper_core.deployers.tensorflow",
    "pyspark": "clipper_core.deployers.pyspark",
}

__all__ = ["FUNC_FILE", "LOADERS", "MANIFEST_FILE", "check_function", "deploy_with_model",
           "load_framework_model", "read_manifest", "require", "save_python_function",
           "serialize_object", "write_manifest"]


def serialize_object(obj: Any) -> bytes:
    """``obj`` pickled by value with cloudpickle (Clipper's name)."""
    import cloudpickle

    data: bytes = cloudpickle.dumps(obj)
    return data


def require(module: str, framework: str, pip_name: str) -> Any:
    """Import ``module`` or raise ClipperException saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ClipperException(
            f"The {framework} deployer needs {module!r}, which is not installed here "
            f"({exc}). Install it with `pip install {pip_name}` or "
            "`pip install clipper-core[frameworks]`.", framework=framework) from exc


def write_manifest(model_dir: str | Path, framework: str, **fields: Any) -> None:
    """Write the manifest naming ``framework`` and its ``fields`` into ``model_dir``."""
    if framework not in LOADERS:
        raise ValueError(f"unknown framework {framework!r}; known: {sorted(LOADERS)}")
    data = {"framework": framework, "format": 1, **fields}
    (Path(model_dir) / MANIFEST_FILE).write_text(json.dumps(data, indent=1) + "\n")


def read_manifest(model_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of ``model_dir``, or None for a plain Python model."""
    path = Path(model_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("framework") not in LOADERS:
        raise ClipperException(f"{path} names no known framework (known: {sorted(LOADERS)})",
                               path=str(path))
    return data


def load_framework_model(model_dir: str | Path) -> Callable[[list[Any]], list[Any]]:
    """The predict function of a framework model directory: the user's function
    with the loaded model bound as its leading argument(s).

    Called once when a replica starts; the model is not loaded again per batch.
    """
    root = Path(model_dir)
    manifest = read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"no {MANIFEST_FILE} in model directory {root}")
    import cloudpickle

    with (root / FUNC_FILE).open("rb") as f:
        func = cloudpickle.load(f)
    if not callable(func):
        raise TypeError(f"{root / FUNC_FILE} does not hold a callable")
    loader = importlib.import_module(LOADERS[manifest["framework"]])
    args = loader.load_model_args(root, manifest)
    log.info("loaded %s model from %s", manifest["framework"], root)
    return functools.partial(func, *args)


def deploy_with_model(clipper_conn: Any, name: str, version: Any, input_type: str,
                      func: Callable[..., Any], save: Callable[[Path], None], *,
                      base_image: str | None, labels: list[str] | None,
                      registry: str | None, num_replicas: int, batch_size: int,
                      pkgs_to_install: list[str] | None) -> None:
    """Write ``func`` into a new temporary model directory, let ``save(model_dir)``
    add the model and its manifest, then build and deploy the directory as
    ``name:version``.  The directory is removed in every case."""
    model_dir = Path(save_python_function(name, func))
    try:
        save(model_dir)
        if read_manifest(model_dir) is None:
            raise ClipperException(f"the {name} deployer wrote no {MANIFEST_FILE}")
        clipper_conn.build_and_deploy_model(
            name, version, input_type, str(model_dir), base_image or "default",
            labels=labels, container_registry=registry, num_replicas=num_replicas,
            batch_size=batch_size, pkgs_to_install=pkgs_to_install)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


def check_function(func: Callable[..., Any]) -> None:
    """Fail early (before registering anything) when ``func`` cannot be pickled."""
    serialize_function(func)
