"""Deploy a PySpark model: Clipper's ``clipper_admin.deployers.pyspark``.

The model is saved with Spark's own writer (``model.save(path)`` for
``pyspark.ml`` models and pipelines, ``model.save(sc, path)`` for
``pyspark.mllib`` ones) into ``pyspark_model_data``, and its class is
recorded, as Clipper did.  A replica starts one local Spark session at
start-up (master ``local[1]``, or ``CLIPPER_SPARK_MASTER``; UI off, bound to
127.0.0.1), loads the model with that class, and calls
``func(spark, model, inputs)`` for every batch.  Spark needs a Java runtime
(17 or newer for PySpark 4).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ClipperException
from .deployer_utils import check_function, deploy_with_model, require, write_manifest

log = logging.getLogger("clipper.deployers.pyspark")

MODEL_RELATIVE_PATH = "pyspark_model_data"
PIP_NAME = "pyspark"


def _pyspark() -> Any:
    return require("pyspark", "PySpark", PIP_NAME)


def _is_ml_model(cls: type) -> bool:
    """True for ``pyspark.ml`` models (saved and loaded without a SparkContext)."""
    from pyspark.ml.base import Model
    from pyspark.ml.pipeline import PipelineModel

    return issubclass(cls, (Model, PipelineModel))


def save_pyspark_model(model_dir: Path, pyspark_model: Any, sc: Any) -> None:
    """Save ``pyspark_model`` with Spark's writer and record its class."""
    cls = type(pyspark_model)
    if not cls.__module__.startswith("pyspark."):
        raise ClipperException(f"pyspark_model argument was not a pyspark object: "
                               f"{cls.__module__}.{cls.__qualname__}", argument="pyspark_model")
    path = str(model_dir / MODEL_RELATIVE_PATH)
    try:
        if _is_ml_model(cls):
            pyspark_model.save(path)
        else:
            if sc is None:
                raise ClipperException("sc (a SparkContext or SparkSession) is needed to "
                                       "save a pyspark.mllib model", argument="sc")
            pyspark_model.save(getattr(sc, "sparkContext", sc), path)
    except ClipperException:
        raise
    except Exception as exc:  # noqa: BLE001 - Spark's own words
        raise ClipperException(f"Error saving spark model: {type(exc).__name__}: {exc}") from exc
    write_manifest(model_dir, "pyspark", model=MODEL_RELATIVE_PATH,
                   model_class=f"{cls.__module__}.{cls.__qualname__}")
    log.info("Spark model saved")


def spark_session() -> Any:
    """The replica's local Spark session."""
    from pyspark.sql import SparkSession

    return (SparkSession.builder
            .master(os.environ.get("CLIPPER_SPARK_MASTER", "local[1]"))
            .appName("clipper-pyspark")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate())


def load_model_args(model_dir: Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    """``(spark, model)``: a local Spark session and the model loaded in it."""
    spark = spark_session()
    module, _, class_name = manifest["model_class"].rpartition(".")
    cls = getattr(importlib.import_module(module), class_name)
    path = str(model_dir / manifest["model"])
    model = cls.load(path) if _is_ml_model(cls) else cls.load(spark.sparkContext, path)
    return (spark, model)


def deploy_pyspark_model(clipper_conn: Any, name: str, version: Any, input_type: str,
                         func: Callable[..., Any], pyspark_model: Any, sc: Any,
                         base_image: str = "default", labels: list[str] | None = None,
                         registry: str | None = None, num_replicas: int = 1,
                         batch_size: int = -1,
                         pkgs_to_install: list[str] | None = None) -> None:
    """Deploy ``func(spark, model, inputs) -> list`` with a PySpark model
    (``pyspark.ml`` model or pipeline, or ``pyspark.mllib`` model) as model
    ``name:version``; ``sc`` is the SparkContext (or SparkSession) that saves it.

    Raises ClipperException when PySpark is missing, the model is not a PySpark
    object or cannot be saved, or building or deploying fails.
    """
    _pyspark()
    deploy_with_model(clipper_conn, name, version, input_type, func,
                      lambda d: save_pyspark_model(d, pyspark_model, sc),
                      base_image=base_image, labels=labels, registry=registry,
                      num_replicas=num_replicas, batch_size=batch_size,
                      pkgs_to_install=pkgs_to_install)


def create_endpoint(clipper_conn: Any, name: str, input_type: str, func: Callable[..., Any],
                    pyspark_model: Any, sc: Any, default_output: str = "None",
                    version: Any = 1, slo_micros: int = 3000000,
                    labels: list[str] | None = None, registry: str | None = None,
                    base_image: str = "default", num_replicas: int = 1,
                    batch_size: int = -1, pkgs_to_install: list[str] | None = None) -> None:
    """Register application ``name``, deploy ``func`` with the PySpark model as
    model ``name:version`` and link the two."""
    check_function(func)
    _pyspark()
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_pyspark_model(clipper_conn, name, version, input_type, func, pyspark_model, sc,
                         base_image, labels, registry, num_replicas, batch_size,
                         pkgs_to_install)
    clipper_conn.link_model_to_app(name, name)
