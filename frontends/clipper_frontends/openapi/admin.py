"""The management API's OpenAPI document (``GET /openapi.json`` of the
management frontend).

Request schemas are not written by hand: :func:`request_schema` asks each
request class of :mod:`clipper_core.admin.wire` what its ``from_wire``
accepts.  It builds a valid body by following the ValidationErrors (each
names the field it refused), then, field by field, tries one sample of every
JSON type and leaves the field out: what parses is in the schema, and a field
whose absence is refused is required.  A field added to or retyped in the
wire is in the document at once.  Response schemas follow the ``to_wire`` of
:mod:`clipper_core.models`; the schemathesis tests check live answers
against them.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import attrs

from clipper_core.admin import wire
from clipper_core.errors import ValidationError
from clipper_core.models import InputType

from .common import document, errors, html_response, json_content, ok

#: One sample per JSON type, in the order a valid body is searched with.
SAMPLES: dict[str, Any] = {"string": "a", "integer": 1, "boolean": False,
                           "array": ["a"], "object": {}, "number": 1.5, "null": None}
_LIST_ITEMS: dict[str, Any] = {"string": "a", "integer": 1, "boolean": False, "object": {}}


def _field_names(cls: type[wire.Request[Any]]) -> list[str]:
    return [f.name for f in attrs.fields(cast(Any, cls))]


def _accepts(cls: type[wire.Request[Any]], body: dict[str, Any]) -> bool:
    try:
        cls.from_wire(body)
    except ValidationError:
        return False
    return True


def _valid_body(cls: type[wire.Request[Any]]) -> dict[str, Any]:
    """A body ``cls.from_wire`` accepts, found by following its refusals."""
    body: dict[str, Any] = {}
    tried: dict[str, int] = {}
    samples = list(SAMPLES.values())
    for _ in range(len(samples) * (len(_field_names(cls)) + 1)):
        try:
            cls.from_wire(body)
            return body
        except ValidationError as exc:
            name = str(exc.fields.get("argument"))
            tried[name] = tried.get(name, -1) + 1
            if tried[name] >= len(samples):
                raise ValueError(f"no JSON value of {cls.__name__}.{name} parses") from exc
            body[name] = samples[tried[name]]
    raise ValueError(f"no body of {cls.__name__} parses")


def _field_schema(cls: type[wire.Request[Any]], body: dict[str, Any], name: str
                  ) -> dict[str, Any]:
    types = [t for t, v in SAMPLES.items() if _accepts(cls, {**body, name: v})]
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    if "array" in types:
        items = [t for t, v in _LIST_ITEMS.items() if _accepts(cls, {**body, name: [v]})]
        if len(items) < len(_LIST_ITEMS):
            schema["items"] = {"type": items[0] if len(items) == 1 else items}
    if name == "input_type":
        schema["description"] = ("one of " + ", ".join(sorted(_input_type_names()))
                                 + ", or its wire code 0-4")
    return schema


def _input_type_names() -> set[str]:
    return {t.label for t in InputType}


def request_schema(cls: type[wire.Request[Any]]) -> dict[str, Any]:
    """The JSON schema of the bodies ``cls.from_wire`` accepts."""
    body = _valid_body(cls)
    names = _field_names(cls)
    extra = [n for n in body if n not in names]
    properties = {name: _field_schema(cls, body, name) for name in [*names, *extra]}
    required = [n for n in properties
                if not _accepts(cls, {k: v for k, v in body.items() if k != n})]
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split())
    return schema


_NAMES = {"type": "array", "items": {"type": "string"}}
_INPUT_TYPE = {"type": "string", "enum": sorted(t.label for t in InputType)}
SCHEMAS: dict[str, Any] = {
    "Application": {"type": "object",
                    "required": ["name", "input_type", "default_output", "latency_slo_micros",
                                 "linked_models"],
                    "properties": {"name": {"type": "string"}, "input_type": _INPUT_TYPE,
                                   "default_output": {"type": "string"},
                                   "latency_slo_micros": {"type": "integer"},
                                   "linked_models": _NAMES, "candidate_model_names": _NAMES}},
    "ModelInfo": {"type": "object",
                  "required": ["model_name", "model_version", "input_type", "image", "labels",
                               "batch_size", "is_current_version"],
                  "properties": {"model_name": {"type": "string"},
                                 "model_version": {"type": "string"},
                                 "input_type": _INPUT_TYPE,
                                 "image": {"type": ["string", "null"]}, "labels": _NAMES,
                                 "batch_size": {"type": "integer"},
                                 "batching_policy": {"type": ["string", "null"]},
                                 "is_current_version": {"type": "boolean"}}},
    "Replica": {"type": "object",
                "required": ["model_name", "model_version", "model_replica_id", "input_type",
                             "connected"],
                "properties": {"model_name": {"type": "string"},
                               "model_version": {"type": "string"},
                               "model_replica_id": {"type": "string"},
                               "input_type": _INPUT_TYPE, "connected": {"type": "boolean"},
                               "is_connected": {"type": "boolean"},
                               "frontend": {"type": "string"},
                               "last_seen": {"type": "number"}}},
    "Done": {"type": "object", "required": ["success"],
             "properties": {"success": {"const": True},
                            "application": {"$ref": "#/components/schemas/Application"},
                            "model": {"$ref": "#/components/schemas/ModelInfo"}}},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _names_or(name: str) -> dict[str, Any]:
    return {"type": "array", "items": {"anyOf": [{"type": "string"}, _ref(name)]},
            "description": f"names, or {name} objects when verbose is true"}


def _nullable(name: str) -> dict[str, Any]:
    return {"anyOf": [_ref(name), {"type": "null"}], "description": f"the {name}, or null"}


#: The response body of each request class.
RESPONSES: dict[type[wire.Request[Any]], dict[str, Any]] = {
    **{cls: _ref("Done") for cls in (wire.AddApp, wire.DeleteApp, wire.AddModel,
                                     wire.DeleteVersionedModel, wire.AddModelLinks,
                                     wire.DeleteModelLinks, wire.SetModelVersion)},
    wire.GetAllApplications: _names_or("Application"),
    wire.GetApplication: _nullable("Application"),
    wire.GetLinkedModels: _NAMES,
    wire.GetAllModels: _names_or("ModelInfo"),
    wire.GetModel: _nullable("ModelInfo"),
    wire.GetAllContainers: _names_or("Replica"),
    wire.GetContainer: _nullable("Replica"),
}
#: The response of a request class with no entry above: any JSON value.
ANY_RESPONSE: dict[str, Any] = {"description": "JSON data (see clipper_core.admin.wire)"}

_SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _admin_operation(path: str, cls: type[wire.Request[Any]]) -> dict[str, Any]:
    summary = (cls.__doc__ or path).strip().split("\n")[0]
    refusals = (400, 401, 404, 409, 413, 503, 504) if cls.writes else (400, 401, 404, 413, 503)
    return {"post": {
        "operationId": path, "summary": summary, "tags": ["admin"], "security": _SECURED,
        "requestBody": {"required": True, "content": json_content(request_schema(cls))},
        "responses": {**ok("the answer", RESPONSES.get(cls, ANY_RESPONSE)), **errors(*refusals)}}}


def _other_paths() -> dict[str, Any]:
    ping = {"type": "object", "required": ["status"],
            "properties": {"status": {"const": "ok"}, "store": {"type": "string"}}}
    plugin = {"type": "object", "required": ["name"],
              "properties": {"name": {"type": "string"}, "version": {"type": ["string", "null"]},
                             "distribution": {"type": ["string", "null"]},
                             "hooks": _NAMES}}
    return {
        "/admin/ping": {"get": {"operationId": "ping", "summary": "the store answers",
                                "tags": ["admin"], "security": _SECURED,
                                "responses": {**ok("the store answers", ping),
                                              **errors(401, 503)}}},
        "/admin/plugins": {"get": {"operationId": "plugins", "tags": ["admin"],
                                   "summary": "loaded plugins and their versions",
                                   "security": _SECURED,
                                   "responses": {**ok("the plugins",
                                                      {"type": "array", "items": plugin}),
                                                 **errors(401)}}},
        "/healthz": {"get": {"operationId": "healthz", "summary": "the process is up",
                             "tags": ["health"],
                             "responses": ok("up", {"type": "object",
                                                    "properties": {"status": {"const": "ok"}}})}},
        "/openapi.json": {"get": {"operationId": "openapi", "tags": ["docs"],
                                  "summary": "this document",
                                  "responses": ok("the document", {"type": "object"})}},
        "/docs": {"get": {"operationId": "docs", "tags": ["docs"],
                          "summary": "this document as a page",
                          "responses": html_response("the page")}},
    }


@functools.cache
def management_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the management frontend."""
    paths = {f"/admin/{path}": _admin_operation(path, cls)
             for path, cls in wire.REQUESTS.items()}
    paths.update(_other_paths())
    return document(
        "Clipper management API",
        "Clipper's /admin/* API: every endpoint but ping and plugins is a POST of a JSON "
        "object.  Names (applications, models, versions) are DNS-1123 labels when they "
        "are created; lookups accept any string.  Every /admin/* request carries "
        "'Authorization: Bearer <token>' when the frontend has a token.",
        paths, SCHEMAS,
        security={"bearerAuth": {"type": "http", "scheme": "bearer"}})


__all__ = ["RESPONSES", "SCHEMAS", "management_document", "request_schema", "routes"]


def routes() -> list[Any]:
    """``GET /openapi.json`` and ``GET /docs`` of the management frontend."""
    import orjson
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from .docs import docs_page

    spec = orjson.dumps(management_document())
    page = docs_page("Clipper management API")

    async def openapi(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    async def docs(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    return [Route("/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"])]
