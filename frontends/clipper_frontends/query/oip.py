"""The Open Inference Protocol v2 (REST) on the query frontend.

The protocol KServe, Triton and MLServer speak, so their clients
(``tritonclient.http``, ...) call Clipper applications: an application is a
*model* of the protocol, named as the application; a version in the path
pins the version of the model linked to it (as ``"version"`` does on
``/predict``).

- ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``;
- ``GET /v2/models/{app}[/versions/{v}]`` (metadata) and ``.../ready``;
- ``POST /v2/models/{app}[/versions/{v}]/infer``.

An inference request holds one input tensor (JSON ``data``): for a numeric
application (ints, floats, doubles; any numeric ``datatype``) shape ``[n]``
or ``[1, n]`` is one input of ``n`` numbers and ``[b, n]`` a batch of
``b``; for strings and bytes applications (``BYTES``) each element is one
input (a bytes element is the string's UTF-8 bytes, or base64 with the
input parameter ``content_type: "base64"``).  Inputs go through the same
admission, cache, batching and defaults as ``/predict`` (its
``QueryService._start`` and ``render``); the output tensor ``output`` holds
the same values: ``FP64`` when every output is a number (or a list of as
many numbers), else ``BYTES`` (strings as they are, other values as JSON).
A response with default outputs says so in its ``parameters``
(``defaults``: how many; ``default_explanation``).  Errors are
``{"error": "..."}`` with 400 (a bad request) or 404 (no such model or
version).  With the binary tensor extension a request's input may be
binary (the JSON's end is found by parsing it); answers are JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from clipper_core import rpc
from clipper_core.errors import ClipperException
from clipper_core.models import InputType

from .service import Pending

if TYPE_CHECKING:
    from .routes import AppRoute
    from .service import QueryService

PREFIX = "/v2/models/"
NUMERIC = frozenset(("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8",
                     "UINT16", "UINT32", "UINT64"))
#: the datatype an application's inputs are described with
DATATYPES = {InputType.INTS: "INT32", InputType.FLOATS: "FP32", InputType.DOUBLES: "FP64",
             InputType.STRINGS: "BYTES", InputType.BYTES: "BYTES"}
OUTPUT = "output"
_NUMPY = {"FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "INT8": "i1", "INT16": "<i2",
          "INT32": "<i4", "INT64": "<i8", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4",
          "UINT64": "<u8"}


class OIPError(Exception):
    """A request the protocol refuses: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": message})


def _parse_path(path: str) -> tuple[str, str | None, str]:
    """``/v2/models/{name}[/versions/{v}][/{action}]`` -> (name, version, action)."""
    parts = path[len(PREFIX):].strip("/").split("/")
    name, rest = parts[0], parts[1:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    if not name or len(rest) > 1:
        raise OIPError(404, f"no route {path}")
    return name, version, rest[0] if rest else ""


class OpenInference:
    """The protocol's routes over one :class:`~.service.QueryService`.

    :param ready: ``ready() -> bool``: the frontend serves its configuration.
    :param version: the server version ``GET /v2`` reports.
    """

    def __init__(self, service: QueryService, ready: Callable[[], bool], version: str) -> None:
        self.service = service
        self.ready = ready
        self.version = version

    def install(self) -> None:
        """Add the routes to the service's table."""
        service = self.service
        service.add_route(b"GET", "/v2", lambda: (200, orjson.dumps(
            {"name": "clipper", "version": self.version, "extensions": []})))
        service.add_route(b"GET", "/v2/health/live", lambda: (200, b'{"live":true}'))
        service.add_route(b"GET", "/v2/health/ready", self._server_ready)
        service.add_matched_route(b"GET", lambda p: p.startswith(PREFIX), self._get)
        service.add_matched_route(b"POST", lambda p: p.startswith(PREFIX), self._post)

    def _server_ready(self) -> tuple[int, bytes]:
        ready = self.ready()
        # The protocol: 200 means true, a 4xx false (so not 503).
        return (200 if ready else 400), orjson.dumps({"ready": ready})

    # -- metadata and readiness ----------------------------------------------
    def _route(self, name: str, version: str | None) -> tuple[AppRoute, Any]:
        """The application and the queue a request goes to (None: no model)."""
        service = self.service
        route = service.routes.apps.get(name)
        if route is None:
            raise OIPError(404, f"Model {name!r} is not found (no application of that name)")
        if version is None:
            return route, route.queue
        queue = service.routes.pinned_queue(route, version)
        if queue is None:
            raise OIPError(404, f"Requested version: {version} does not exist for model: "
                                f"{route.model_name}")
        return route, queue

    def _get(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            name, version, action = _parse_path(path)
            route, queue = self._route(name, version)
        except OIPError as exc:
            return _error(exc.status, str(exc))
        if action == "ready":
            ready = queue is not None and bool(queue.replicas)
            return (200 if ready else 400), orjson.dumps({"name": name, "ready": ready})
        if action:
            return _error(404, f"no route {path}")
        return 200, orjson.dumps(self._metadata(route, version))

    def _metadata(self, route: AppRoute, version: str | None) -> dict[str, Any]:
        snap = self.service.routes.snapshot
        model = route.model_name
        versions = sorted(v for (n, v) in snap.models if n == model) if snap and model else []
        numeric = route.input_type in rpc.DTYPES
        return {"name": route.app.name, "versions": [version] if version else versions,
                "platform": "clipper",
                "inputs": [{"name": "input", "datatype": DATATYPES[route.input_type],
                            "shape": [-1, -1] if numeric else [-1]}],
                "outputs": [{"name": OUTPUT, "datatype": "BYTES", "shape": [-1]}],
                "parameters": {"linked_model": model or "",
                               "slo_micros": route.app.latency_slo_micros}}

    # -- inference -----------------------------------------------------------
    def _post(self, path: str, body: bytes) -> tuple[int, bytes] | Pending:
        t0 = time.perf_counter()
        try:
            name, version, action = _parse_path(path)
            if action != "infer":
                raise OIPError(404, f"no route POST {path}")
            route, queue = self._route(name, version)
            request, binary = _load(body)
            encoded = self._inputs(route, request, binary)
        except OIPError as exc:
            return _error(exc.status, str(exc))
        except ClipperException as exc:  # an input the application's type refuses
            route.metrics.errors += 1
            return _error(400, exc.msg)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            # a body of the right JSON type with the wrong shape inside
            return _error(400, f"malformed inference request: {type(exc).__name__}: {exc}")
        waiters = self.service._start(route, queue, encoded)
        request_id = request.get("id")
        model_version = queue.model_version if queue is not None else (version or "")

        def finish(values: list[Any]) -> tuple[int, bytes]:
            rendered = orjson.loads(self.service.render(route, values, True, t0))
            return 200, _response(name, model_version, request_id, rendered["batch_predictions"])

        return Pending(waiters, finish)

    def _inputs(self, route: AppRoute, request: dict[str, Any], binary: bytes) -> list[bytes]:
        """The wire bytes of each input of the request's one input tensor
        (its data in ``binary`` with the binary tensor extension)."""
        inputs = request.get("inputs")
        if type(inputs) is not list or len(inputs) != 1 or type(inputs[0]) is not dict:
            raise OIPError(400, "\"inputs\" must hold exactly one input tensor (a Clipper "
                                "application takes one input)")
        wanted_outputs = request.get("outputs") or []
        if type(wanted_outputs) is not list:
            raise OIPError(400, "\"outputs\" must be a list of requested outputs")
        for wanted in wanted_outputs:
            if type(wanted) is not dict or wanted.get("name") != OUTPUT:
                raise OIPError(400, f"unknown output {wanted!r}: the only output is {OUTPUT!r}")
        tensor = inputs[0]
        shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
        if (type(shape) is not list or not shape or len(shape) > 2
                or any(type(d) is not int or d < 1 for d in shape)):
            raise OIPError(400, f"input shape must be [n], [1, n] or [batch, n] of positive "
                                f"integers, got {shape!r}")
        total = shape[0] * (shape[1] if len(shape) == 2 else 1)
        params = tensor.get("parameters")
        params = params if type(params) is dict else {}
        if "binary_data_size" in params:
            data = _binary_data(datatype, binary[:params["binary_data_size"]])
        elif type(data) is not list:
            raise OIPError(400, "input \"data\" must be a list")
        flat = [x for row in data for x in row] if data and type(data[0]) is list else data
        if len(flat) != total:
            raise OIPError(400, f"input shape {shape} holds {total} elements; \"data\" has "
                                f"{len(flat)}")
        input_type = route.input_type
        if input_type in rpc.DTYPES:
            if datatype not in NUMERIC:
                raise OIPError(400, f"datatype {datatype!r} does not fit the application's "
                                    f"{input_type.label} inputs; use {DATATYPES[input_type]}")
            if len(shape) == 1:
                return [rpc.encode_input(input_type, flat)]
            n = shape[1]
            return [rpc.encode_input(input_type, flat[i:i + n]) for i in range(0, total, n)]
        if datatype != "BYTES":
            raise OIPError(400, f"datatype {datatype!r} does not fit the application's "
                                f"{input_type.label} inputs; use BYTES")
        if any(type(x) is bytes for x in flat):  # binary: the elements' own bytes
            if input_type is InputType.STRINGS:
                try:
                    for x in flat:
                        x.decode()
                except UnicodeDecodeError as exc:
                    raise OIPError(400, f"a strings input must be UTF-8: {exc}") from None
            return flat
        if any(type(x) is not str for x in flat):
            raise OIPError(400, "BYTES data must be strings")
        if input_type is InputType.STRINGS:
            return [x.encode() for x in flat]
        if params.get("content_type") == "base64":
            try:
                return [base64.b64decode(x, validate=True) for x in flat]
            except (binascii.Error, ValueError) as exc:
                raise OIPError(400, f"invalid base64 input: {exc}") from None
        return [x.encode() for x in flat]


def _load(body: bytes) -> tuple[dict[str, Any], bytes]:
    """The request's JSON object, and the binary data after it (the binary
    tensor extension: the JSON's end is found by parsing, not by the
    ``Inference-Header-Content-Length`` header)."""
    binary = b""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"binary_data_size" not in body:
            raise OIPError(400, f"request body is not valid JSON: {exc}") from None
        try:  # latin-1 keeps byte offsets
            end = json.JSONDecoder().raw_decode(body.decode("latin-1"))[1]
            request, binary = orjson.loads(body[:end]), body[end:]
        except ValueError as exc:
            raise OIPError(400, f"request header is not valid JSON: {exc}") from None
    if type(request) is not dict:
        raise OIPError(400, "request body must be a JSON object")
    return request, binary


def _binary_data(datatype: Any, raw: bytes) -> list[Any]:
    """The elements of a tensor sent in binary: numbers little-endian, BYTES
    as a 4-byte little-endian length and the bytes, per element."""
    if datatype == "BYTES":
        out, i = [], 0
        while i + 4 <= len(raw):
            (n,) = struct.unpack_from("<I", raw, i)
            out.append(raw[i + 4:i + 4 + n])
            i += 4 + n
        if i != len(raw):
            raise OIPError(400, "binary BYTES data is truncated")
        return out
    dtype = _NUMPY.get(datatype)
    if dtype is None:
        raise OIPError(400, f"unknown datatype {datatype!r}")
    if len(raw) % np.dtype(dtype).itemsize:
        raise OIPError(400, f"binary data of {len(raw)} bytes is no whole {datatype} tensor")
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


def _numbers(value: Any) -> bool:
    return type(value) in (int, float)


def _response(name: str, version: str, request_id: Any,
              predictions: list[dict[str, Any]]) -> bytes:
    """The inference response for ``/predict``'s rendered predictions."""
    outputs = [p["output"] for p in predictions]
    first = outputs[0]
    if all(_numbers(v) for v in outputs):
        tensor: dict[str, Any] = {"datatype": "FP64", "shape": [len(outputs)], "data": outputs}
    elif (type(first) is list and first and all(
            type(v) is list and len(v) == len(first) and all(_numbers(x) for x in v)
            for v in outputs)):
        tensor = {"datatype": "FP64", "shape": [len(outputs), len(first)],
                  "data": [x for v in outputs for x in v]}
    else:
        tensor = {"datatype": "BYTES", "shape": [len(outputs)],
                  "data": [v if type(v) is str else orjson.dumps(v).decode() for v in outputs]}
    answer: dict[str, Any] = {"model_name": name, "model_version": version,
                              "outputs": [{"name": OUTPUT, **tensor}]}
    if request_id is not None:
        answer["id"] = request_id
    defaults = [p for p in predictions if p["default"]]
    if defaults:
        answer["parameters"] = {"defaults": len(defaults),
                                "default_explanation": defaults[0]["default_explanation"]}
    return orjson.dumps(answer)
