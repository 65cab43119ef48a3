"""The query frontend's own HTTP/1.1 server: httptools on an asyncio protocol.

The predict route is the hot path, and under uvicorn most of its cost was
the ASGI machinery around it rather than Clipper's work: a task per
request, scope and message dicts, and two socket writes per response (the
head, then the body).  Here a request is parsed by httptools straight into
the query service's ``route_for`` / ``start_query`` / ``render`` and answered with
one write; while it waits for its model no task exists, only a callback on
its futures.  Measured in bench/HISTORY.md.

HTTP/1.1 as clients use it: keep-alive, pipelining (answers in order),
``Expect: 100-continue``, chunked request bodies, ``Connection: close`` and
HTTP/1.0.  GET, HEAD and POST are served; any other method gets 501.

Every limit of :class:`.limits.HTTPLimits` is enforced here: a request over
one is answered with its status (413, 414, 431, 408; 503 above the connection
cap), after the answers owed before it, and the connection is closed; what
the client sends after that is discarded, a little of it at most, so the
answer is not lost to a reset.  A request head is never read past
``HTTPLimits.head_bytes``.  The deadlines cost no timer per request: each
connection notes when its head and its body began, and one sweep a second
(:mod:`.sweeper`) answers 408 to those past their deadline and closes those
idle longer than ``keep_alive_s``.  SIGTERM or SIGINT stops accepting, lets
the requests in flight finish (``drain_s`` at most), then stops the frontend.

``python -m clipper_frontends.query --http-server uvicorn`` serves the same
frontend as an ASGI app instead (:mod:`.asgi`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools
import orjson

from clipper_core.errors import (
    ClipperException,
    PayloadTooLargeError,
    URITooLongError,
    ValidationError,
)

from .deadlines import TIMEOUT
from .service import error_payload

if TYPE_CHECKING:
    from .frontend import QueryFrontend
    from .routes import AppRoute
    from .service import QueryService

log = logging.getLogger("clipper.http")

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            408: b"Request Timeout", 413: b"Payload Too Large", 414: b"URI Too Long",
            431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
            501: b"Not Implemented", 503: b"Service Unavailable"}
#: Requests a client may pipeline ahead of the one being answered before
#: the connection stops being read.
MAX_PIPELINED = 32
#: Bytes a refused client may still send (read and dropped) before the
#: connection stops being read.
DISCARD_BYTES = 64 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_METHODS = frozenset((b"GET", b"HEAD", b"POST"))
_ALLOW = b"allow: GET, HEAD, POST\r\n"
_ALLOW_PREDICT = b"allow: POST\r\n"

_Future = asyncio.Future


def refusal(status: int, error: str, cause: str) -> tuple[int, bytes]:
    """The status and JSON body of a request refused by the transport."""
    return status, orjson.dumps({"error": error, "cause": cause})


class _Request:
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


class _Gather:
    """Waits for the futures of one request, then answers it."""

    __slots__ = ("proto", "route", "waiters", "batch", "request", "remaining")

    def __init__(self, proto: QueryProtocol, route: AppRoute, waiters: list[Any], batch: bool,
                 request: _Request, remaining: int) -> None:
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


class QueryProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, service: QueryService, server: QueryHTTPServer) -> None:
        self.service = service
        self.server = server
        self.max_body = service.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.last_active = time.monotonic()
        # the request being parsed
        self._url = b""
        self._parts: list[bytes] = []
        self._size = 0
        self._expect_continue = False
        self._continue_owed = False
        self._refused = False
        # requests parsed while an earlier one is being answered
        self.waiting: deque[_Request] = deque()
        self.busy = False
        self.closed = False
        self.draining = False
        self._read_paused = False
        self._write_paused = False

    # -- connection --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.waiting.clear()
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        if self.closed or self.transport is None:
            return
        pause = self._write_paused or len(self.waiting) >= MAX_PIPELINED or self._refused
        if pause and not self._read_paused:
            self.transport.pause_reading()
            self._read_paused = True
        elif not pause and self._read_paused:
            self.transport.resume_reading()
            self._read_paused = False

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(ValidationError("protocol upgrades are not supported",
                                         error="Bad request"))
        except httptools.HttpParserError as exc:
            if not self._refused:
                self._refuse(ValidationError(f"malformed HTTP request: {exc}",
                                             error="Bad request"))

    # -- httptools callbacks ----------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._parts = []
        self._size = 0
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL:
            self._refuse(URITooLongError(f"request target longer than {MAX_URL} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 14 and name.lower() == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return  # the parser rejects it
            if declared > self.max_body:
                self._refuse(PayloadTooLargeError(
                    f"request body of {declared} bytes exceeds the limit of {self.max_body}"))
        elif len(name) == 6 and name.lower() == b"expect":
            self._expect_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        if self._expect_continue and not self._refused and self.transport is not None:
            if self.busy or self.waiting:
                # An earlier request's answer is owed: "100 Continue" must
                # not jump ahead of it, so it goes out right after it.
                self._continue_owed = True
            else:
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._size += len(body)
        if self._size > self.max_body:
            self._refuse(PayloadTooLargeError(
                f"request body exceeds the limit of {self.max_body} bytes"))
            return
        self._parts.append(body)

    def on_message_complete(self) -> None:
        self._continue_owed = False  # the client did not wait for it
        if self._refused:
            return
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        url = self._url
        if url[:1] != b"/":  # absolute form (through a proxy)
            url = httptools.parse_url(url).path or b"/"
        q = url.find(b"?")
        path = (url if q < 0 else url[:q]).decode("latin-1")
        request = _Request(self.parser.get_method(), path, body, self.parser.should_keep_alive())
        self._enqueue(request)

    def _refuse(self, exc: ClipperException) -> None:
        """Answer ``exc`` after the requests before it, then close: the
        rest of what this client sent is not read."""
        if self._refused:
            return
        self._refused = True
        self._enqueue(_Request(b"", "", b"", False, error_payload(exc)))
        self._update_reading()

    # -- answering ---------------------------------------------------------
    def _enqueue(self, request: _Request) -> None:
        if self.busy:
            self.waiting.append(request)
            self._update_reading()
        else:
            self._handle(request)

    def _handle(self, request: _Request) -> None:
        self.busy = True
        try:
            self._answer(request)
        except Exception as exc:  # a bug: answer 500 rather than hang the client
            if self.busy:
                self.fail(request, exc)

    def fail(self, request: _Request, exc: Exception) -> None:
        log.error("error answering %s %s", request.method.decode(), request.path,
                  exc_info=exc)
        self.respond(500, orjson.dumps({"error": "Internal server error",
                                        "cause": f"{type(exc).__name__}: {exc}"}), request)

    def _answer(self, request: _Request) -> None:
        if request.error is not None:
            status, body = request.error
            self.respond(status, body, request)
            return
        service = self.service
        path = request.path
        if request.method == b"POST" and (path.endswith("/predict")
                                          or path.endswith("/predict/")):
            try:
                route = service.route_for(path)
                waiters, batch = service.start_query(route, request.body)
            except ClipperException as exc:
                status, payload = error_payload(exc)
                self.respond(status, payload, request)
                return
            remaining = 0
            for w in waiters:
                if type(w) is _Future:
                    remaining += 1
            if not remaining:
                self.respond(200, service.render(route, waiters, batch, request.t0), request)
                return
            gather = _Gather(self, route, waiters, batch, request, remaining)
            for w in waiters:
                if type(w) is _Future:
                    w.add_done_callback(gather.one_done)
            return
        status, body = service.answer_other(request.method, path)
        self.respond(status, b"" if request.method == b"HEAD" else body, request,
                     len(body))

    def respond(self, status: int, payload: bytes, request: _Request,
                length: int | None = None) -> None:
        """Write the whole response at once; then answer the next request."""
        if self.closed:
            return
        keep_alive = request.keep_alive and not self.draining
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
            status, _REASONS.get(status, b"Error"), len(payload) if length is None else length)
        assert self.transport is not None
        self.transport.write(head + (b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
                             + payload)
        self.busy = False
        if not keep_alive:
            self.close()
            return
        if self.waiting:
            request = self.waiting.popleft()
            self._update_reading()
            self._handle(request)
        elif self._continue_owed:
            self._continue_owed = False
            self.transport.write(_CONTINUE)


class QueryHTTPServer:
    """Listens, tracks the connections, closes idle ones, drains on stop."""

    def __init__(self, frontend: QueryFrontend, host: str, port: int, *, backlog: int = 2048,
                 keep_alive_s: float = 75.0, drain_s: float = 5.0) -> None:
        self.frontend = frontend
        self.host = host
        self.port = port
        self.backlog = backlog
        self.keep_alive_s = keep_alive_s
        self.drain_s = drain_s
        self.connections: set[QueryProtocol] = set()
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.frontend.start()
        service = self.frontend.service
        assert service is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: QueryProtocol(service, self), self.host, self.port,
            backlog=self.backlog, reuse_address=True)
        self._sweeper = loop.create_task(self._close_idle())

    async def _close_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.keep_alive_s))
            cutoff = time.monotonic() - self.keep_alive_s
            for conn in list(self.connections):
                if not conn.busy and conn.last_active < cutoff:
                    conn.close()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.draining = True
            if not conn.busy:
                conn.close()
        deadline = time.monotonic() + self.drain_s
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.close()
        await self.frontend.stop()

    async def serve_until_signalled(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("query frontend listening on http://%s:%d", self.host, self.port)
        await stop.wait()
        log.info("stopping: draining %d connections", len(self.connections))
        await self.stop()


def serve(frontend: QueryFrontend, host: str, port: int, **options: Any) -> None:
    """Run the frontend on this server until SIGTERM or SIGINT."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(QueryHTTPServer(frontend, host, port, **options).serve_until_signalled())
        return
    uvloop.run(QueryHTTPServer(frontend, host, port, **options).serve_until_signalled())
