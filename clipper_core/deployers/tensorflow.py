"""Deploy a TensorFlow model: Clipper's ``clipper_admin.deployers.tensorflow``, on TF 2.

TensorFlow 2 (``tensorflow-cpu``) runs here.  ``tf_sess_or_saved_model_path``
may be, and ``func``'s first argument then is:

- a ``tf.compat.v1.Session`` (Clipper's TF 1 case): its graph and variables
  are saved as a checkpoint (``tfmodel/model.ckpt``) and restored into a new
  session; ``func(sess, inputs)`` runs it (``sess.run("y:0", feed_dict=...)``);
- a checkpoint directory (``*.meta``, ``*.index``, ``*.data*``, ``checkpoint``):
  restored the same way;
- a frozen graph (a ``.pb`` file, or a directory holding one that is not a
  SavedModel): imported into a new session, ``func(sess, inputs)``;
- a SavedModel directory (``saved_model.pb``) or a ``tf.Module``, which is
  saved as one: loaded with ``tf.saved_model.load``, ``func(loaded, inputs)``;
- a Keras model: saved in Keras' format on the TensorFlow backend (see
  :mod:`clipper_core.deployers.keras`), ``func(model, inputs)``.

Anything else is refused with a ClipperException naming what was given.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ClipperException
from .deployer_utils import check_function, deploy_with_model, require, write_manifest
from .keras import load_keras, save_keras_model

log = logging.getLogger("clipper.deployers.tensorflow")

TF_DIR = "tfmodel"
PIP_NAME = "tensorflow-cpu"
_CHECKPOINT_PARTS = ("*.meta", "*.index", "checkpoint", "*.data*")


def _tf() -> Any:
    return require("tensorflow", "TensorFlow", PIP_NAME)


def _save_session(model_dir: Path, sess: Any) -> None:
    tf = _tf()
    (model_dir / TF_DIR).mkdir()
    try:
        with sess.graph.as_default():
            saver = tf.compat.v1.train.Saver()
            saver.save(sess, str(model_dir / TF_DIR / "model.ckpt"))
    except Exception as exc:  # noqa: BLE001 - TensorFlow's own words
        raise ClipperException(f"Error saving the TensorFlow session: {type(exc).__name__}: "
                               f"{exc}") from exc
    write_manifest(model_dir, "tensorflow", kind="checkpoint", model=f"{TF_DIR}/model.ckpt")


def _save_path(model_dir: Path, path: Path) -> None:
    target = model_dir / TF_DIR
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            shutil.copytree(path, target)
            write_manifest(model_dir, "tensorflow", kind="saved_model", model=TF_DIR)
            return
        frozen = sorted(path.glob("*.pb"))
        if frozen:
            shutil.copytree(path, target)
            write_manifest(model_dir, "tensorflow", kind="frozen_graph",
                           model=f"{TF_DIR}/{frozen[0].name}")
            return
        if all(glob.glob(str(path / part)) for part in _CHECKPOINT_PARTS):
            shutil.copytree(path, target)
            prefix = _tf().train.latest_checkpoint(str(target))
            if prefix is None:
                raise ClipperException(f"No checkpoint named in {path / 'checkpoint'}")
            write_manifest(model_dir, "tensorflow", kind="checkpoint",
                           model=str(Path(prefix).relative_to(model_dir)))
            return
        raise ClipperException(
            f"TensorFlow model directory {str(path)!r} is neither a SavedModel "
            "(saved_model.pb), a frozen graph (*.pb) nor a checkpoint (*.meta, *.index, "
            "*.data*, checkpoint)", path=str(path))
    if path.is_file() and path.suffix.lower() == ".pb":
        target.mkdir()
        shutil.copyfile(path, target / path.name)
        write_manifest(model_dir, "tensorflow", kind="frozen_graph",
                       model=f"{TF_DIR}/{path.name}")
        return
    raise ClipperException(f"TensorFlow model {str(path)!r} not found", path=str(path))


def save_tensorflow_model(model_dir: Path, model: Any) -> None:
    """Save ``model`` (see the module docstring for what it may be) into ``model_dir``."""
    tf = _tf()
    keras = require("keras", "TensorFlow", "keras")
    if isinstance(model, tf.compat.v1.Session):
        _save_session(model_dir, model)
    elif isinstance(model, keras.Model):
        save_keras_model(model_dir, model, framework="tensorflow")
    elif isinstance(model, (str, os.PathLike)):
        _save_path(model_dir, Path(model))
    elif isinstance(model, tf.Module):
        tf.saved_model.save(model, str(model_dir / TF_DIR))
        write_manifest(model_dir, "tensorflow", kind="saved_model", model=TF_DIR)
    else:
        raise ClipperException(
            "tf_sess_or_saved_model_path must be a tf.compat.v1.Session, a Keras model, a "
            f"tf.Module or a path to a saved model, got {type(model).__name__}",
            argument="tf_sess_or_saved_model_path")
    log.info("TensorFlow model saved")


def _load_graph_session(model_dir: Path, manifest: dict[str, Any]) -> Any:
    import tensorflow as tf

    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    path = str(model_dir / manifest["model"])
    with graph.as_default():
        if manifest["kind"] == "checkpoint":
            saver = tf.compat.v1.train.import_meta_graph(path + ".meta", clear_devices=True)
            saver.restore(sess, path)
        else:
            graph_def = tf.compat.v1.GraphDef()
            graph_def.ParseFromString(Path(path).read_bytes())
            tf.compat.v1.import_graph_def(graph_def, name="")
    return sess


def load_model_args(model_dir: Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    """``(sess,)``, ``(loaded SavedModel,)`` or ``(Keras model,)`` by the saved kind."""
    kind = manifest["kind"]
    if kind == "keras":
        return (load_keras(model_dir, manifest),)
    if kind == "saved_model":
        import tensorflow as tf

        return (tf.saved_model.load(str(model_dir / manifest["model"])),)
    return (_load_graph_session(model_dir, manifest),)


def deploy_tensorflow_model(clipper_conn: Any, name: str, version: Any, input_type: str,
                            func: Callable[..., Any], tf_sess_or_saved_model_path: Any,
                            base_image: str = "default", labels: list[str] | None = None,
                            registry: str | None = None, num_replicas: int = 1,
                            batch_size: int = -1,
                            pkgs_to_install: list[str] | None = None) -> None:
    """Deploy ``func(model, inputs) -> list`` with a TensorFlow session, saved
    model, ``tf.Module`` or Keras model as model ``name:version``.

    Raises ClipperException when TensorFlow is missing, the model cannot be
    saved or found, or building or deploying fails.
    """
    _tf()
    deploy_with_model(clipper_conn, name, version, input_type, func,
                      lambda d: save_tensorflow_model(d, tf_sess_or_saved_model_path),
                      base_image=base_image, labels=labels, registry=registry,
                      num_replicas=num_replicas, batch_size=batch_size,
                      pkgs_to_install=pkgs_to_install)


def create_endpoint(clipper_conn: Any, name: str, input_type: str, func: Callable[..., Any],
                    tf_sess_or_saved_model_path: Any, default_output: str = "None",
                    version: Any = 1, slo_micros: int = 3000000,
                    labels: list[str] | None = None, registry: str | None = None,
                    base_image: str = "default", num_replicas: int = 1,
                    batch_size: int = -1, pkgs_to_install: list[str] | None = None) -> None:
    """Register application ``name``, deploy ``func`` with the TensorFlow model
    as model ``name:version`` and link the two."""
    check_function(func)
    _tf()
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_tensorflow_model(clipper_conn, name, version, input_type, func,
                            tf_sess_or_saved_model_path, base_image, labels, registry,
                            num_replicas, batch_size, pkgs_to_install)
    clipper_conn.link_model_to_app(name, name)
