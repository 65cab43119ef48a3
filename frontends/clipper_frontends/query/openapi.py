"""The query API's OpenAPI 3.1 document and docs page (``GET /openapi.json``,
``GET /docs`` of a query frontend).

The predict route is Clipper's (SPEC.md section 2): ``{"input": X}`` or
``{"input_batch": [X, ...]}`` with an optional ``"version"``; one prediction
or ``{"batch_predictions": [...]}`` back, with ``"default": true`` and the
explanation when the application's default output was used.  The document
and the page are built once, when the routes are registered.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from ..openapi.common import document, errors, html_response, json_content, ok
from ..openapi.docs import docs_page
from .openapi_oip import OIP_SCHEMAS, oip_paths

_INPUT = {"description": "a list of numbers (integers, floats, doubles), a string "
                         "(strings) or a base64 string (bytes), as the application's "
                         "input type says",
          "anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]}

SCHEMAS: dict[str, Any] = {
    "Input": _INPUT,
    "PredictRequest": {
        "type": "object",
        "description": "one input, or a non-empty batch of inputs; 'version' pins the "
                       "linked model's version",
        "properties": {"input": {"$ref": "#/components/schemas/Input"},
                       "input_batch": {"type": "array", "minItems": 1,
                                       "items": {"$ref": "#/components/schemas/Input"}},
                       "version": {"type": ["string", "integer"]},
                       "uid": {"type": "integer",
                               "description": "the user: keys per-user selection state "
                                              "and sticky traffic splits"}},
        "anyOf": [{"required": ["input"]}, {"required": ["input_batch"]}]},
    "UpdateRequest": {
        "type": "object", "required": ["label"],
        "description": "feedback for the application's selection policy: {\"uid\": "
                       "<integer>, \"input\": <input>, \"label\": <number>}; an application "
                       "whose policy is 'single' accepts and ignores it (only the label is "
                       "checked), so uid and input are checked only where a policy uses them",
        "properties": {"uid": {"description": "an integer: the user"},
                       "input": {"description": "an input, as for predict"},
                       "label": {"type": "number"}}},
    "Prediction": {
        "type": "object", "required": ["query_id", "output", "default"],
        "properties": {"query_id": {"type": "integer"},
                       "output": {"description": "the model's output (JSON when it parses "
                                                 "as JSON), or the default output"},
                       "default": {"type": "boolean"},
                       "default_explanation": {"type": "string"}}},
    "BatchPrediction": {
        "type": "object", "required": ["batch_predictions"],
        "properties": {"batch_predictions": {
            "type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}}},
}

_OBJECT = {"type": "object"}
_APP = {"name": "app", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "application name"}


def _predict() -> dict[str, Any]:
    return {"post": {
        "operationId": "predict", "tags": ["query"],
        "summary": "predict with the application's linked model",
        "description": "Answers by the application's latency SLO: with the model's output, "
                       "or with the default output and 'default_explanation' when no model "
                       "answered in time or none is connected.",
        "security": [{}, {"bearerAuth": []}],
        "parameters": [_APP],
        "requestBody": {"required": True,
                        "content": json_content({"$ref": "#/components/schemas/PredictRequest"})},
        "responses": {**ok("the prediction(s)", {"anyOf": [
            {"$ref": "#/components/schemas/Prediction"},
            {"$ref": "#/components/schemas/BatchPrediction"}]}),
            **errors(400, 401, 404, 408, 413, 414, 431, 503)}}}


def _update() -> dict[str, Any]:
    return {"post": {
        "operationId": "update", "tags": ["query"],
        "summary": "feedback: the true label of an input",
        "security": [{}, {"bearerAuth": []}],
        "parameters": [_APP],
        "requestBody": {"required": True,
                        "content": json_content({"$ref": "#/components/schemas/UpdateRequest"})},
        "responses": {**ok("accepted", {"type": "object", "required": ["success"],
                                        "properties": {"success": {"const": True}}}),
                      **errors(400, 401, 404, 408, 413, 414, 431, 503)}}}


def _get(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"operationId": operation_id, "summary": summary, "tags": ["operations"],
                    "responses": responses}}


@functools.cache
def query_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of a query frontend."""
    ready = {"type": "object", "required": ["ready"],
             "properties": {"ready": {"type": "boolean"}}}
    paths = {
        "/{app}/predict": _predict(),
        "/{app}/update": _update(),
        **oip_paths(),
        "/prometheus": _get("prometheus", "the metrics in the Prometheus text format",
                            {"200": {"description": "the exposition",
                                     "content": {"text/plain": {"schema": {"type": "string"}}}},
                             **errors(401)}),
        "/metrics": _get("metrics", "the frontend's metrics (JSON: per application and "
                         "model)", {**ok("the metrics", _OBJECT), **errors(401)}),
        "/healthz": _get("healthz", "the process is up", ok("up", _OBJECT)),
        "/readyz": _get("readyz", "the frontend serves a loaded configuration",
                        {**ok("ready", ready),
                         "503": {"description": "not ready", "content": json_content(ready)}}),
        "/openapi.json": _get("openapi", "this document", ok("the document", _OBJECT)),
        "/docs": _get("docs", "this document as a page", html_response("the page")),
    }
    return document(
        "Clipper query API",
        "Clipper's REST query API (POST /{app}/predict, /{app}/update; errors are "
        "{\"error\", \"cause\"}) and the Open Inference Protocol v2 under /v2 (errors "
        "are {\"error\"}).",
        paths, {**SCHEMAS, **OIP_SCHEMAS}, security={"bearerAuth": {"type": "http", "scheme": "bearer"}})


def routes() -> list[tuple[bytes, str, Any, bytes]]:
    """``(method, path, handler, content type)`` of the two documentation routes,
    for :meth:`.service.QueryService.add_route`."""
    spec = orjson.dumps(query_document())
    page = docs_page("Clipper query API")
    return [(b"GET", "/openapi.json", lambda: (200, spec), b"application/json"),
            (b"GET", "/docs", lambda: (200, page), b"text/html; charset=utf-8")]
