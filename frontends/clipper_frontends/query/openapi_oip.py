"""The Open Inference Protocol v2 routes in the query API's OpenAPI document.

What :mod:`.oip` serves: an application is a *model* of the protocol; a
version in the path pins the linked model's version; errors are
``{"error": message}`` with 400 or 404.
"""

from __future__ import annotations

from typing import Any

from ..openapi.common import STATUS_TEXT, json_content, ok


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_TENSOR_DATA = {"type": "array", "description": "the elements, row-major (nested rows allowed)"}

OIP_SCHEMAS: dict[str, Any] = {
    "OIPError": {"type": "object", "required": ["error"],
                 "properties": {"error": {"type": "string"}}},
    "OIPTensorMetadata": {"type": "object", "required": ["name", "datatype", "shape"],
                          "properties": {"name": {"type": "string"},
                                         "datatype": {"type": "string"},
                                         "shape": {"type": "array",
                                                   "items": {"type": "integer"}}}},
    "OIPModelMetadata": {
        "type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {"name": {"type": "string"},
                       "versions": {"type": "array", "items": {"type": "string"}},
                       "platform": {"type": "string"},
                       "inputs": {"type": "array", "items": _ref("OIPTensorMetadata")},
                       "outputs": {"type": "array", "items": _ref("OIPTensorMetadata")},
                       "parameters": {"type": "object"}}},
    "OIPInputTensor": {
        "type": "object", "required": ["name", "shape", "datatype"],
        "properties": {"name": {"type": "string"},
                       "shape": {"type": "array", "minItems": 1, "maxItems": 2,
                                 "items": {"type": "integer", "minimum": 1}},
                       "datatype": {"type": "string"},
                       "data": _TENSOR_DATA,
                       "parameters": {"type": "object"}}},
    "OIPInferenceRequest": {
        "type": "object", "required": ["inputs"],
        "description": "one input tensor: [n] or [1, n] numbers is one input, [b, n] a "
                       "batch of b; for strings and bytes applications each BYTES element "
                       "is one input",
        "properties": {"id": {"type": "string"},
                       "inputs": {"type": "array", "minItems": 1, "maxItems": 1,
                                  "items": _ref("OIPInputTensor")},
                       "outputs": {"type": "array", "items": {"type": "object"}},
                       "parameters": {"type": "object"}}},
    "OIPInferenceResponse": {
        "type": "object", "required": ["model_name", "outputs"],
        "properties": {"model_name": {"type": "string"},
                       "model_version": {"type": "string"},
                       "id": {"type": "string"},
                       "outputs": {"type": "array", "items": {
                           "type": "object", "required": ["name", "datatype", "shape", "data"],
                           "properties": {"name": {"type": "string"},
                                          "datatype": {"type": "string"},
                                          "shape": {"type": "array",
                                                    "items": {"type": "integer"}},
                                          "data": _TENSOR_DATA}}},
                       "parameters": {"type": "object",
                                      "description": "'defaults' and 'default_explanation' "
                                                     "when default outputs were used"}}},
}

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "the application"}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "a version of the application's linked model"}
_READY = {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": STATUS_TEXT[s], "content": json_content(_ref("OIPError"))}
            for s in statuses}


def _model_paths(prefix: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    tag = ["open inference protocol"]
    model_ready = {"type": "object", "required": ["name", "ready"],
                   "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}}
    suffix = "_version" if len(params) == 2 else ""
    return {
        prefix: {"get": {"operationId": f"oip_model_metadata{suffix}", "tags": tag,
                         "summary": "the application as a model", "parameters": params,
                         "responses": {**ok("metadata", _ref("OIPModelMetadata")),
                                       **_errors(404)}}},
        f"{prefix}/ready": {"get": {
            "operationId": f"oip_model_ready{suffix}", "tags": tag,
            "summary": "a replica serves it", "parameters": params,
            "responses": {**ok("ready", model_ready),
                          "503": {"description": "not ready",
                                  "content": json_content(model_ready)},
                          **_errors(404)}}},
        f"{prefix}/infer": {"post": {
            "operationId": f"oip_infer{suffix}", "tags": tag,
            "summary": "predict (the same path as /{app}/predict)", "parameters": params,
            "requestBody": {"required": True,
                            "content": json_content(_ref("OIPInferenceRequest"))},
            "responses": {**ok("the outputs", _ref("OIPInferenceResponse")),
                          **_errors(400, 404)}}},
    }


def oip_paths() -> dict[str, Any]:
    """The ``/v2`` paths."""
    tag = ["open inference protocol"]
    server = {"type": "object", "required": ["name", "version"],
              "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                             "extensions": {"type": "array", "items": {"type": "string"}}}}
    return {
        "/v2": {"get": {"operationId": "oip_server_metadata", "tags": tag,
                        "summary": "the server", "responses": ok("metadata", server)}},
        "/v2/health/live": {"get": {
            "operationId": "oip_live", "tags": tag, "summary": "the process is up",
            "responses": ok("live", {"type": "object", "required": ["live"],
                                     "properties": {"live": {"type": "boolean"}}})}},
        "/v2/health/ready": {"get": {
            "operationId": "oip_ready", "tags": tag, "summary": "the configuration is loaded",
            "responses": {**ok("ready", _READY),
                          "503": {"description": "not ready", "content": json_content(_READY)}}}},
        **_model_paths("/v2/models/{name}", [_NAME]),
        **_model_paths("/v2/models/{name}/versions/{version}", [_NAME, _VERSION]),
    }
