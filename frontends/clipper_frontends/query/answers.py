"""A parsed request waiting for its answer, and the wait for its model answers.

Used by :mod:`.connections`: :class:`Request` is one request of a
connection's queue (answers go out in request order); :class:`Gather`
waits for the futures of one predict request, then renders and answers it;
:class:`GatherPending` does the same for a matched route's pending answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson

from .deadlines import TIMEOUT

if TYPE_CHECKING:
    from .routes import AppRoute
    from .service import Pending

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

    __slots__ = ("method", "path", "body", "keep_alive", "t0", "error", "headers", "rid")

    def __init__(self, method: bytes, path: str, body: bytes, keep_alive: bool,
                 error: tuple[int, bytes] | None = None, headers: bytes = b"",
                 rid: bytes = b"") -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive
        self.t0 = time.perf_counter()
        self.error = error
        #: extra header lines of the response, CRLF-terminated
        self.headers = headers
        #: the request id (``X-Request-Id``); empty: one is made when answering
        self.rid = rid


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

    @classmethod
    def start(cls, proto: Any, route: AppRoute, waiters: list[Any], batch: bool,
              request: Request) -> None:
        """Answer ``request`` once its futures are done (at once if none)."""
        remaining = 0
        for w in waiters:
            if type(w) is _Future:
                remaining += 1
        if not remaining:
            proto.respond(200, proto.service.render(route, waiters, batch, request.t0), request)
            return
        gather = cls(proto, route, waiters, batch, request, remaining)
        for w in waiters:
            if type(w) is _Future:
                w.add_done_callback(gather.one_done)

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


class GatherPending:
    """Waits for the futures of a :class:`~.service.Pending` answer of a
    matched route, then answers with its ``finish``."""

    __slots__ = ("proto", "pending", "request", "remaining")

    def __init__(self, proto: Any, pending: Pending, request: Request, remaining: int) -> None:
        self.proto = proto
        self.pending = pending
        self.request = request
        self.remaining = remaining

    @classmethod
    def start(cls, proto: Any, pending: Pending, request: Request) -> None:
        """Answer ``request`` with ``pending`` once its futures are done."""
        futures = [w for w in pending.waiters if type(w) is _Future]
        if not futures:
            proto.respond(*pending.finish(pending.waiters), request)
            return
        gather = cls(proto, pending, request, len(futures))
        for w in futures:
            w.add_done_callback(gather.one_done)

    def one_done(self, _future: asyncio.Future[Any]) -> None:
        self.remaining -= 1
        if self.remaining:
            return
        values = [(w.result() if not w.cancelled() else TIMEOUT) if type(w) is _Future else w
                  for w in self.pending.waiters]
        try:
            status, payload = self.pending.finish(values)
        except Exception as exc:  # a bug: answer 500 rather than hang the client
            self.proto.fail(self.request, exc)
            return
        self.proto.respond(status, payload, self.request)
