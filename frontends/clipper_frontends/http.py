"""JSON bodies and JSON errors, shared by the management and query frontends.

Every error leaves a frontend as ``{"error": <kind>, "cause": <message>}``
with the status of :func:`clipper_core.errors.http_status`.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clipper_core.admin.fields import json_type
from clipper_core.errors import (
    ClipperException,
    PayloadTooLargeError,
    ValidationError,
    http_status,
)

log = logging.getLogger("clipper.frontends")

#: Largest request body a frontend reads (bytes) unless told otherwise.
MAX_BODY_BYTES = 1 << 20



__all__ = ["PayloadTooLargeError", "status_for"]


def status_for(exc: ClipperException) -> int:
    """The HTTP status for ``exc``: the core's table."""
    return http_status(exc)


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` serialised with orjson as an ``application/json`` response."""
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(exc: ClipperException) -> Response:
    """The JSON error body for ``exc`` with its HTTP status."""
    return json_response({"error": exc.kind, "cause": str(exc)}, status=status_for(exc))


async def read_body(request: Request, *, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing (before reading it all) one over ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ValidationError(f"Invalid Content-Length header {declared!r}") from None
        if size > max_bytes:
            raise PayloadTooLargeError(
                f"Request body of {size} bytes is larger than the limit of {max_bytes} bytes",
                size=size, limit=max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLargeError(
                f"Request body is larger than the limit of {max_bytes} bytes", limit=max_bytes)
    return bytes(body)


async def read_json_object(request: Request, *, max_bytes: int = MAX_BODY_BYTES
                           ) -> dict[str, Any]:
    """The body parsed as a JSON object; ValidationError when it is not one."""
    body = await read_body(request, max_bytes=max_bytes)
    if not body.strip():
        raise ValidationError("Request body is empty: expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"Malformed JSON in request body: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(
            f"Request body must be a JSON object, got {json_type(data)}")
    return data
