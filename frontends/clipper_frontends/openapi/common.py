"""Pieces shared by both OpenAPI documents."""

from __future__ import annotations

from typing import Any

from clipper_core import __version__

OPENAPI_VERSION = "3.1.0"

#: ``{"error": kind, "cause": message}``: every refused request of both APIs.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "cause"],
    "properties": {"error": {"type": "string", "description": "what kind of error"},
                   "cause": {"type": "string", "description": "what failed and why"}},
}

#: What each refusal status means, for the response descriptions.
STATUS_TEXT = {
    400: "the request is malformed or breaks a rule (the cause says which)",
    401: "missing or wrong bearer token",
    403: "forbidden",
    404: "no such resource",
    405: "method not allowed",
    408: "the request head or body came too slowly",
    409: "conflicts with the current state",
    413: "request body too large",
    414: "request target too long",
    431: "request headers too large",
    503: "the state store or the frontend is unavailable",
    504: "a query frontend has not applied the change in time",
}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A ``content`` map with one ``application/json`` entry."""
    return {"application/json": {"schema": schema}}


def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A 200 response with a JSON body."""
    return {"200": {"description": description, "content": json_content(schema)}}


def errors(*statuses: int) -> dict[str, Any]:
    """Error responses, each with the error body."""
    return {str(s): {"description": STATUS_TEXT[s],
                     "content": json_content({"$ref": "#/components/schemas/Error"})}
            for s in statuses}


def html_response(description: str) -> dict[str, Any]:
    """A 200 response with an HTML page."""
    return {"200": {"description": description,
                    "content": {"text/html": {"schema": {"type": "string"}}}}}


def document(title: str, description: str, paths: dict[str, Any],
             schemas: dict[str, Any], *, security: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """An OpenAPI 3.1 document with the shared Error schema."""
    components: dict[str, Any] = {"schemas": {"Error": ERROR_SCHEMA, **schemas}}
    if security:
        components["securitySchemes"] = security
    return {"openapi": OPENAPI_VERSION,
            "info": {"title": title, "version": __version__, "description": description,
                     "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
            "paths": paths, "components": components}
