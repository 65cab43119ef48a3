"""A parsed request waiting for its answer, and the wait for its model answers.

Used by :mod:`.connections`: :class:`Request` is one request of a
connection's queue (answers go out in request order); :class:`Gather`
waits for the futures of one predict request, then renders and answers it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson

from .deadlines import TIMEOUT

if TYPE_CHECKING:
    from .routes import AppRoute

#: the reason phrase of each status a query frontend answers with
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
           408: b"Request Timeout", 413: b"Payload Too Large", 414: b"URI Too Long",
           431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
           501: b"Not Implemented", 503: b"Service Unavailable"}

_Future = asyncio.Future


def refusal(status: int, error: str, cause: str) -> tuple[int, bytes]:
    """The status and JSON body of a request refused by the transport."""
    return status, orjson.dumps({"error": error, "cause": cause})


class Request:
    """One request of a connection, parsed (or refused: ``error``)."""

    __slots__ = ("method", "path", "body", "keep_alive", "t0", "error", "headers")

    def __init__(self, method: bytes, path: str, body: bytes, keep_alive: bool,
                 error: tuple[int, bytes] | None = None, headers: bytes = b"") -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive
        self.t0 = time.perf_counter()
        self.error = error
        #: extra header lines of the response, CRLF-terminated
        self.headers = headers


class Gather:
    """Waits for the futures of one request, then answers it."""

    __slots__ = ("proto", "route", "waiters", "batch", "request", "remaining")

    def __init__(self, proto: Any, route: AppRoute, waiters: list[Any], batch: bool,
                 request: Request, remaining: int) -> None:
        self.proto = proto
        self.route = route
        self.waiters = waiters
        self.batch = batch
        self.request = request
        self.remaining = remaining

    def one_done(self, _future: asyncio.Future[Any]) -> None:
        self.remaining -= 1
        if self.remaining:
            return
        values = [(w.result() if not w.cancelled() else TIMEOUT) if type(w) is _Future else w
                  for w in self.waiters]
        proto = self.proto
        try:
            payload = proto.service.render(self.route, values, self.batch, self.request.t0)
        except Exception as exc:  # a bug: answer 500 rather than hang the client
            proto.fail(self.request, exc)
            return
        proto.respond(200, payload, self.request)
