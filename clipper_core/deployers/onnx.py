"""Deploy an ONNX model: Clipper's ``clipper_admin.deployers.onnx``, run by ONNX Runtime.

Clipper exported a PyTorch model to ONNX (``deploy_pytorch_model``,
``create_pytorch_endpoint``) and served it with Caffe2, which is retired;
here ONNX Runtime (``onnxruntime``, CPU) serves it.  ``onnx_backend`` keeps
Clipper's default ``"caffe2"`` and means ONNX Runtime, as does
``"onnxruntime"``; any other backend is refused.  Clipper had no way to deploy
an existing ``.onnx`` model: :func:`deploy_onnx_model` and
:func:`create_endpoint` do that.

The model directory holds ``model.onnx``.  A replica opens one ONNX Runtime
session at start-up and calls ``func(model, inputs)`` for every batch, where
``model`` is an :class:`OnnxModel`: ``model.run(x)`` follows the ONNX backend
API that Caffe2's prepared model had (``x`` one array, a list of arrays in the
order of the model's inputs, or a dict by input name; the result is the list
of outputs) and casts each array to the element type the model declares, so
``"doubles"`` inputs feed a float32 model; ``model.session`` is the
``onnxruntime.InferenceSession`` itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ClipperException
from .deployer_utils import check_function, deploy_with_model, require, write_manifest

log = logging.getLogger("clipper.deployers.onnx")

MODEL_RELATIVE_PATH = "model.onnx"
BACKENDS = ("caffe2", "onnxruntime")
_NUMPY_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64",
                "tensor(float16)": "float16", "tensor(int64)": "int64",
                "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
                "tensor(bool)": "bool"}


class OnnxModel:
    """What ``func`` receives: an ONNX Runtime session with a backend-API ``run``."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self._dtypes = {i.name: _NUMPY_TYPES.get(i.type) for i in session.get_inputs()}

    def run(self, inputs: Any) -> list[Any]:
        """The model's outputs (a list of arrays) for ``inputs``."""
        import numpy as np

        if isinstance(inputs, dict):
            named = dict(inputs)
        elif isinstance(inputs, (list, tuple)):
            named = dict(zip(self.input_names, inputs, strict=True))
        else:
            named = {self.input_names[0]: inputs}
        feed = {k: np.asarray(v, dtype=self._dtypes.get(k)) for k, v in named.items()}
        return list(self.session.run(self.output_names, feed))


def _onnxruntime() -> Any:
    return require("onnxruntime", "ONNX", "onnxruntime")


def load_model_args(model_dir: Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    """``(OnnxModel,)`` over one CPU ONNX Runtime session of the saved model."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_dir / manifest["model"]),
                                           providers=["CPUExecutionProvider"])
    return (OnnxModel(session),)


def export_pytorch_model(model_dir: Path, pytorch_model: Any, inputs: Any) -> None:
    """Export ``pytorch_model`` to ``model_dir/model.onnx`` by tracing it on
    ``inputs`` (a tensor or a tuple of tensors); the first dimension of every
    input and output stays variable (the batch)."""
    torch = require("torch", "ONNX", "torch==2.13.0")
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    input_names = [f"input_{i}" for i in range(len(args))]
    dynamic = {n: {0: "batch"} for n, a in zip(input_names, args, strict=True)
               if getattr(a, "dim", lambda: 0)() >= 1}
    try:
        with torch.no_grad():
            outputs = pytorch_model(*args)
        outs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        output_names = [f"output_{i}" for i in range(len(outs))]
        dynamic.update({n: {0: "batch"} for n in output_names})
        with warnings.catch_warnings():
            # The TorchScript exporter is chosen on purpose: it traces like
            # Clipper's export did and takes dynamic_axes (the batch dimension).
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(pytorch_model, args, str(model_dir / MODEL_RELATIVE_PATH),
                              export_params=True, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - reported with the model's type
        raise ClipperException(
            f"Error serializing PyTorch model to ONNX: {type(exc).__name__}: {exc}",
            model=type(pytorch_model).__name__) from exc
    write_manifest(model_dir, "onnx", model=MODEL_RELATIVE_PATH, source="pytorch",
                   torch_version=torch.__version__)


def save_onnx_model(model_dir: Path, onnx_model: Any) -> None:
    """Write ``onnx_model`` (a path to a .onnx file, its bytes, or an
    ``onnx.ModelProto``) to ``model_dir/model.onnx`` after checking it loads."""
    target = model_dir / MODEL_RELATIVE_PATH
    if isinstance(onnx_model, (str, os.PathLike)):
        if not Path(onnx_model).is_file():
            raise ClipperException(f"ONNX model file {str(onnx_model)!r} not found",
                                   path=str(onnx_model))
        shutil.copyfile(onnx_model, target)
    elif isinstance(onnx_model, (bytes, bytearray)):
        target.write_bytes(bytes(onnx_model))
    elif hasattr(onnx_model, "SerializeToString"):
        target.write_bytes(onnx_model.SerializeToString())
    else:
        raise ClipperException("onnx_model must be a path to a .onnx file, its bytes or an "
                               f"onnx.ModelProto, got {type(onnx_model).__name__}",
                               argument="onnx_model")
    try:
        load_model_args(model_dir, {"model": MODEL_RELATIVE_PATH})
    except Exception as exc:  # noqa: BLE001 - the runtime's own words
        raise ClipperException(f"ONNX Runtime cannot load the model: {exc}") from exc
    write_manifest(model_dir, "onnx", model=MODEL_RELATIVE_PATH, source="onnx")


def _check_backend(onnx_backend: str) -> None:
    if onnx_backend not in BACKENDS:
        raise ClipperException(
            f"ONNX backend {onnx_backend!r} is not supported: models run on ONNX Runtime "
            f"(onnx_backend one of {', '.join(BACKENDS)}; 'caffe2' is Clipper's default and "
            "also runs on ONNX Runtime, Caffe2 being retired)", backend=onnx_backend)


def deploy_pytorch_model(clipper_conn: Any, name: str, version: Any, input_type: str,
                         inputs: Any, func: Callable[..., Any], pytorch_model: Any,
                         base_image: str | None = None, labels: list[str] | None = None,
                         registry: str | None = None, num_replicas: int = 1,
                         onnx_backend: str = "caffe2", batch_size: int = -1,
                         pkgs_to_install: list[str] | None = None) -> None:
    """Export ``pytorch_model`` to ONNX (traced on the example ``inputs``) and
    deploy it with ``func(model, inputs) -> list`` as model ``name:version``.

    ``base_image=None`` runs the clipper-core runtime.  Raises ClipperException
    when the export, building or deploying fails (Clipper only logged it).
    """
    _check_backend(onnx_backend)
    _onnxruntime()
    deploy_with_model(clipper_conn, name, version, input_type, func,
                      lambda d: export_pytorch_model(d, pytorch_model, inputs),
                      base_image=base_image, labels=labels, registry=registry,
                      num_replicas=num_replicas, batch_size=batch_size,
                      pkgs_to_install=pkgs_to_install)
    log.info("Torch model has been serialized to ONNX format")


def create_pytorch_endpoint(clipper_conn: Any, name: str, input_type: str, inputs: Any,
                            func: Callable[..., Any], pytorch_model: Any,
                            default_output: str = "None", version: Any = 1,
                            slo_micros: int = 3000000, labels: list[str] | None = None,
                            registry: str | None = None, base_image: str | None = None,
                            num_replicas: int = 1, onnx_backend: str = "caffe2",
                            batch_size: int = -1,
                            pkgs_to_install: list[str] | None = None) -> None:
    """Register application ``name``, deploy the ONNX export of ``pytorch_model``
    with ``func`` as model ``name:version`` and link the two."""
    check_function(func)
    _check_backend(onnx_backend)
    _onnxruntime()
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_pytorch_model(clipper_conn, name, version, input_type, inputs, func, pytorch_model,
                         base_image, labels, registry, num_replicas, onnx_backend, batch_size,
                         pkgs_to_install)
    clipper_conn.link_model_to_app(name, name)


def deploy_onnx_model(clipper_conn: Any, name: str, version: Any, input_type: str,
                      func: Callable[..., Any], onnx_model: Any, base_image: str = "default",
                      labels: list[str] | None = None, registry: str | None = None,
                      num_replicas: int = 1, batch_size: int = -1,
                      pkgs_to_install: list[str] | None = None) -> None:
    """Deploy an existing ONNX model (path, bytes or ``onnx.ModelProto``) with
    ``func(model, inputs) -> list`` as model ``name:version`` (not in Clipper)."""
    _onnxruntime()
    deploy_with_model(clipper_conn, name, version, input_type, func,
                      lambda d: save_onnx_model(d, onnx_model),
                      base_image=base_image, labels=labels, registry=registry,
                      num_replicas=num_replicas, batch_size=batch_size,
                      pkgs_to_install=pkgs_to_install)


def create_endpoint(clipper_conn: Any, name: str, input_type: str, func: Callable[..., Any],
                    onnx_model: Any, default_output: str = "None", version: Any = 1,
                    slo_micros: int = 3000000, labels: list[str] | None = None,
                    registry: str | None = None, base_image: str = "default",
                    num_replicas: int = 1, batch_size: int = -1,
                    pkgs_to_install: list[str] | None = None) -> None:
    """Register application ``name``, deploy ``onnx_model`` with ``func`` as
    model ``name:version`` and link the two (not in Clipper)."""
    check_function(func)
    _onnxruntime()
    clipper_conn.register_application(name, input_type, default_output, slo_micros)
    deploy_onnx_model(clipper_conn, name, version, input_type, func, onnx_model, base_image,
                      labels, registry, num_replicas, batch_size, pkgs_to_install)
    clipper_conn.link_model_to_app(name, name)
