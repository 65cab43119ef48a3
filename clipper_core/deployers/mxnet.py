"""Clipper's ``clipper_admin.deployers.mxnet``: MXNet is retired.

Apache MXNet was retired by the Apache Software Foundation in 2023 (its
project moved to the Attic; no release supports current Python versions), so
there is no MXNet deployer.  Both of Clipper's functions keep their
signatures and raise :class:`ClipperException` saying so and what to use
instead: export the model to ONNX (MXNet had ``mx.onnx.export_model``) and
deploy it with :func:`clipper_core.deployers.onnx.deploy_onnx_model`, or move
the model to PyTorch (:mod:`clipper_core.deployers.pytorch`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from ..errors import ClipperException

RETIRED_MESSAGE = (
    "MXNet is retired upstream (Apache MXNet moved to the Apache Attic in 2023) and cannot be "
    "deployed. Export the model to ONNX (mxnet.onnx.export_model) and deploy the .onnx file "
    "with clipper_admin.deployers.onnx.deploy_onnx_model (or create_endpoint), which runs it "
    "on ONNX Runtime; or port the model to PyTorch and use clipper_admin.deployers.pytorch.")


def _retired() -> NoReturn:
    raise ClipperException(RETIRED_MESSAGE, framework="mxnet")


def deploy_mxnet_model(clipper_conn: Any, name: str, version: Any, input_type: str,
                       func: Callable[..., Any], mxnet_model: Any, mxnet_data_shapes: Any,
                       base_image: str = "default", labels: list[str] | None = None,
                       registry: str | None = None, num_replicas: int = 1,
                       batch_size: int = -1,
                       pkgs_to_install: list[str] | None = None) -> NoReturn:
    """Always raises ClipperException: MXNet is retired (see the module docstring)."""
    _retired()


def create_endpoint(clipper_conn: Any, name: str, input_type: str, func: Callable[..., Any],
                    mxnet_model: Any, mxnet_data_shapes: Any, default_output: str = "None",
                    version: Any = 1, slo_micros: int = 3000000,
                    labels: list[str] | None = None, registry: str | None = None,
                    base_image: str = "default", num_replicas: int = 1,
                    batch_size: int = -1, pkgs_to_install: list[str] | None = None) -> NoReturn:
    """Always raises ClipperException before registering anything: MXNet is retired."""
    _retired()
