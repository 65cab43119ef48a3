"""The query frontend as an ASGI application (``--http-server uvicorn``).

A thin adapter over the same :class:`~.service.QueryService` the built-in
server uses: ``POST /{app}/predict`` and the route table answer alike on
both.  The ASGI lifespan starts and stops the frontend (binding its RPC
port), so ``TestClient(create_app(store))`` or any ASGI server runs it.

The head limits of :class:`.limits.HTTPLimits` are checked here, on the
head the ASGI server has read: request target (414), headers (431); and
methods other than GET, HEAD and POST get 501.  The ASGI server itself
must bound what it reads and how long it waits (see ``cli.py`` for
uvicorn's settings).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from clipper_core.errors import (
    ClipperException,
    PayloadTooLargeError,
    URITooLongError,
    ValidationError,
)

from .access import HEADER, request_id
from .answers import refusal
from .frontend import QueryFrontend
from .limits import HTTPLimits
from .service import Pending, QueryService, error_payload

_METHODS = frozenset(("GET", "HEAD", "POST"))
_ALLOW = [(b"allow", b"GET, HEAD, POST")]
_ALLOW_PREDICT = [(b"allow", b"POST")]

Scope = dict[str, Any]


class QueryASGI:
    """ASGI callable serving one :class:`QueryFrontend`."""

    def __init__(self, frontend: QueryFrontend, limits: HTTPLimits | None = None) -> None:
        self.frontend = frontend
        self.limits = limits or HTTPLimits()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.frontend.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.frontend.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        """Answer one request with its ``X-Request-Id`` (and its access log line)."""
        rid = b""
        for name, value in scope["headers"]:
            if name == HEADER:
                rid = value
                break
        rid = request_id(rid)
        t0 = time.perf_counter()
        sent = [0, 0]  # status, body bytes

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, rid)]
                sent[0] = message["status"]
            else:
                sent[1] += len(message.get("body", b""))
            await send(message)

        await self._answer(scope, receive, send_with_id)
        access = self.frontend.access_log
        if access is not None:
            access.log(scope["method"].encode(), scope["path"], sent[0],
                       time.perf_counter() - t0, sent[1], rid)

    async def _answer(self, scope: Scope, receive: Any, send: Any) -> None:
        service = self.frontend.service
        if service is None:
            await _send(send, 503, orjson.dumps({"error": "Service unavailable",
                                                 "cause": "the frontend is starting"}))
            return
        refused = self._refused(scope)
        if refused is not None:
            status, body = refused
            await _send(send, status, body, extra=_ALLOW if status == 501 else ())
            return
        method = scope["method"].encode()
        path = scope["path"]
        if not service.is_predict(method, path):
            try:
                request_body = await _read_body(scope, receive, service.max_body)
            except ClipperException as exc:
                await _send(send, *error_payload(exc))
                return
            answer = service.answer_other(method, path, request_body)
            if isinstance(answer, Pending):
                values = [await w if isinstance(w, asyncio.Future) else w
                          for w in answer.waiters]
                await _send(send, *answer.finish(values))
                return
            status, body = answer
            await _send(send, status, b"" if method == b"HEAD" else body, len(body),
                        _ALLOW_PREDICT if status == 405 else (),
                        service.content_types.get(path, b"application/json"))
            return
        t0 = time.perf_counter()
        try:
            route = service.route_for(path)
            body = await _read_body(scope, receive, service.max_body)
            waiters, batch = service.start_query(route, body)
        except ClipperException as exc:
            status, payload = error_payload(exc)
            await _send(send, status, payload)
            return
        values = [await w if isinstance(w, asyncio.Future) else w for w in waiters]
        await _send(send, 200, service.render(route, values, batch, t0))


    def _refused(self, scope: Scope) -> tuple[int, bytes] | None:
        """The answer to a request over a head limit or of an unserved method."""
        limits = self.limits
        if scope["method"] not in _METHODS:
            return refusal(501, "Not implemented", f"method {scope['method']} is not supported: "
                           f"the query frontend serves GET, HEAD and POST")
        target = len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b""))
        if target > limits.max_url_bytes:
            return error_payload(URITooLongError(
                f"request target longer than {limits.max_url_bytes} bytes"))
        headers = scope["headers"]
        size = sum(len(name) + len(value) for name, value in headers)
        if len(headers) > limits.max_headers or size > limits.max_header_bytes:
            return refusal(431, "Request header fields too large",
                           f"{len(headers)} headers of {size} bytes; the limits are "
                           f"{limits.max_headers} headers and {limits.max_header_bytes} bytes")
        return None


async def _read_body(scope: Scope, receive: Any, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise ValidationError(f"invalid Content-Length {value!r}",
                                      error="Bad request") from None
            if declared > limit:
                raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the "
                                           f"limit of {limit}")
            break
    message = await receive()
    body = message.get("body", b"")
    while message.get("more_body", False):
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


async def _send(send: Any, status: int, payload: bytes, length: int | None = None,
                extra: Any = (), content_type: bytes = b"application/json") -> None:
    size = len(payload) if length is None else length
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", b"%d" % size),
                            *extra]})
    await send({"type": "http.response.body", "body": payload})


def create_app(store: Any, limits: HTTPLimits | None = None, **options: Any) -> QueryASGI:
    """The query frontend as an ASGI app (its lifespan binds the RPC port);
    ``options`` are :class:`QueryFrontend`'s."""
    return QueryASGI(QueryFrontend(store, **options), limits)


__all__ = ["QueryASGI", "QueryService", "create_app"]
