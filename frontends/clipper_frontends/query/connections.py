"""One client connection of the built-in HTTP server (:mod:`.httpserver`).

:class:`QueryProtocol` parses requests with httptools straight into the
query service and answers each with one write, in order (pipelining); while
a request waits for its model no task exists, only a callback on its
futures.

It enforces the limits of :class:`.limits.HTTPLimits` as it reads (414,
431: a head is never read past ``HTTPLimits.head_bytes``; 413) and notes
when a request's head and body began, for the server's sweep (408).  A
refusal is answered after the answers owed before it, then the connection
closes; what the client sends meanwhile is dropped (``DISCARD_BYTES`` at
most), so it reads the answer rather than a reset.  Above the connection
cap: 503 with ``Retry-After`` at once.  Methods but GET, HEAD, POST: 501.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

import httptools
import orjson

from clipper_core.errors import (
    ClipperException,
    PayloadTooLargeError,
    URITooLongError,
    ValidationError,
)

from .access import next_request_id, request_id
from .answers import REASONS, Gather, GatherPending, Request, refusal
from .limits import Server
from .service import Pending, error_payload

if TYPE_CHECKING:
    from .service import QueryService

log = logging.getLogger("clipper.http")

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

class QueryProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, service: QueryService, server: Server) -> None:
        self.service = service
        self.server = server
        limits = server.limits
        self.max_body = service.max_body
        self._max_url = limits.max_url_bytes
        self._head_cap = limits.head_bytes
        self._access = server.access_log
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.last_active = time.monotonic()
        #: when the request head being read began (0: none), and its body
        self.head_started = self.last_active
        self.body_started = 0.0
        #: when a refused connection is closed, whatever the client does
        self.linger_until = 0.0
        # the request being parsed
        self._in_head = True
        self._head_read = 0
        self._header_count = 0
        self._header_bytes = 0
        self._url = b""
        self._parts: list[bytes] = []
        self._size = 0
        self._expect_continue = False
        self._rid = b""
        self._continue_owed = False
        self._refused = False
        self._discard_left = DISCARD_BYTES
        # requests parsed while an earlier one is being answered
        self.waiting: deque[Request] = deque()
        self.busy = False
        self.closed = False
        self.draining = False
        self.read_paused = False
        self._write_paused = False

    # -- connection --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        connections = self.server.connections
        connections.add(self)
        if len(connections) > self.server.max_connections:
            self._turn_away()

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
        pause = (self._write_paused or len(self.waiting) >= MAX_PIPELINED
                 or self._discard_left < 0)
        if pause and not self.read_paused:
            self.transport.pause_reading()
            self.read_paused = True
        elif not pause and self.read_paused:
            self.transport.resume_reading()
            self.read_paused = False
            # the client could not send while it was not read
            now = time.monotonic()
            self.head_started = self.head_started and now
            self.body_started = self.body_started and now

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def _linger(self) -> None:
        """After a refusal: no more writes, end our side, close soon."""
        self.closed = True
        self.head_started = self.body_started = 0.0
        self.linger_until = time.monotonic() + 1.0
        transport = self.transport
        assert transport is not None
        if transport.can_write_eof():
            transport.write_eof()
        if self.read_paused and self._discard_left >= 0:
            transport.resume_reading()
            self.read_paused = False

    def _turn_away(self) -> None:
        """Above the connection cap: 503 at once, nothing read."""
        self._refused = True
        server = self.server
        status, body = refusal(503, "Service unavailable",
                               f"the frontend serves {server.max_connections} connections, "
                               f"its limit; retry after {server.limits.retry_after_s} s")
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: "
                             b"application/json\r\ncontent-length: %d\r\nretry-after: %d\r\n"
                             b"connection: close\r\n\r\n%s"
                             % (len(body), server.limits.retry_after_s, body))
        self._linger()

    def time_out(self, part: str, seconds: float) -> None:
        """The sweep found the request's ``part`` ("head", "body") late: 408."""
        self.head_started = self.body_started = 0.0
        self._refuse(refusal(408, "Request timeout",
                             f"the request {part} took longer than {seconds:g} s"))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._discard_left -= len(data)
            if self._discard_left < 0 and not self.read_paused and self.transport is not None:
                self.transport.pause_reading()  # also once closed (lingering)
                self.read_paused = True
            return
        self.last_active = now = time.monotonic()
        if self._in_head:
            if not self.head_started:
                self.head_started = now
            self._head_read += len(data)
            if self._head_read > self._head_cap:
                self._feed_head(data)
                return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(error_payload(ValidationError("protocol upgrades are not supported",
                                                       error="Bad request")))
        except httptools.HttpParserError as exc:
            if not self._refused:
                self._refuse(error_payload(ValidationError(f"malformed HTTP request: {exc}",
                                                           error="Bad request")))

    def _feed_head(self, data: bytes) -> None:
        """Feed no more of a request head than its cap; 431 past it."""
        room = len(data) - (self._head_read - self._head_cap)
        self._feed(data[:room])
        if self._refused:
            return
        if self._in_head and self._head_read:
            self._refuse(refusal(431, "Request header fields too large",
                                 f"request head longer than {self._head_cap} bytes"))
        elif room < len(data):  # the head ended within the cap: the rest is body
            self.data_received(data[room:])

    # -- httptools callbacks ----------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._parts = []
        self._size = 0
        self._header_count = self._header_bytes = 0
        self._expect_continue = False
        self._rid = b""

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_url:
            self._refuse(error_payload(URITooLongError(
                f"request target longer than {self._max_url} bytes")))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if len(name) == 14 and name.lower() == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return  # the parser rejects it
            if declared > self.max_body:
                self._refuse(error_payload(PayloadTooLargeError(
                    f"request body of {declared} bytes exceeds the limit of {self.max_body}")))
        elif len(name) == 6 and name.lower() == b"expect":
            self._expect_continue = value.lower() == b"100-continue"
        elif len(name) == 12 and name.lower() == b"x-request-id":
            self._rid = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.head_started = 0.0
        self.body_started = self.last_active
        limits = self.server.limits
        if (self._header_count > limits.max_headers
                or self._header_bytes > limits.max_header_bytes):
            self._refuse(refusal(431, "Request header fields too large",
                                 f"{self._header_count} headers of {self._header_bytes} bytes; "
                                 f"the limits are {limits.max_headers} headers and "
                                 f"{limits.max_header_bytes} bytes"))
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
            self._refuse(error_payload(PayloadTooLargeError(
                f"request body exceeds the limit of {self.max_body} bytes")))
            return
        self._parts.append(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_read = 0
        self.body_started = 0.0
        self._continue_owed = False  # the client did not wait for it
        if self._refused:
            return
        method = self.parser.get_method()
        if method not in _METHODS:
            self._not_implemented(method)
            return
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        url = self._url
        if url[:1] != b"/":  # absolute form (through a proxy)
            try:
                url = httptools.parse_url(url).path or b"/"
            except httptools.HttpParserInvalidURLError:
                self._refuse(error_payload(ValidationError(
                    f"invalid request target {url[:100]!r}", error="Bad request")))
                return
        q = url.find(b"?")
        path = (url if q < 0 else url[:q]).decode("latin-1")
        request = Request(method, path, body, self.parser.should_keep_alive(),
                          rid=request_id(self._rid))
        self._enqueue(request)

    def _not_implemented(self, method: bytes) -> None:
        error = refusal(501, "Not implemented",
                        f"method {method.decode('latin-1')} is not supported: the query "
                        f"frontend serves GET, HEAD and POST")
        if method == b"CONNECT":  # what follows would be a tunnel's bytes
            self._refuse(error, _ALLOW)
        else:
            self._enqueue(Request(method, "", b"", self.parser.should_keep_alive(), error,
                                   _ALLOW))

    def _refuse(self, error: tuple[int, bytes], headers: bytes = b"") -> None:
        """Answer ``error`` after the requests before it, then close: the
        rest of what this client sent is not parsed."""
        if self._refused:
            return
        self._refused = True
        self._enqueue(Request(b"", "", b"", False, error, headers))

    # -- answering ---------------------------------------------------------
    def _enqueue(self, request: Request) -> None:
        if self.busy:
            self.waiting.append(request)
            self._update_reading()
        else:
            self._handle(request)

    def _handle(self, request: Request) -> None:
        self.busy = True
        try:
            self._answer(request)
        except Exception as exc:  # a bug: answer 500 rather than hang the client
            if self.busy:
                self.fail(request, exc)

    def fail(self, request: Request, exc: Exception) -> None:
        rid = request.rid.decode("latin-1")
        log.error("error answering %s %s (request id %s)", request.method.decode(),
                  request.path, rid, exc_info=exc, extra={"request_id": rid})
        self.respond(500, orjson.dumps({"error": "Internal server error",
                                        "cause": f"{type(exc).__name__}: {exc}"}), request)

    def _answer(self, request: Request) -> None:
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
            Gather.start(self, route, waiters, batch, request)
            return
        answer = service.answer_other(request.method, path, request.body)
        if type(answer) is Pending:
            GatherPending.start(self, answer, request)
            return
        status, body = answer  # type: ignore[misc]
        if status == 405:
            request.headers = _ALLOW_PREDICT
        self.respond(status, b"" if request.method == b"HEAD" else body, request,
                     len(body), service.content_types.get(path, b"application/json"))

    def respond(self, status: int, payload: bytes, request: Request,
                length: int | None = None, content_type: bytes = b"application/json") -> None:
        """Write the whole response at once; then answer the next request."""
        if self.closed:
            return
        keep_alive = request.keep_alive and not self.draining
        rid = request.rid or next_request_id()
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"x-request-id: %s\r\n" % (status, REASONS.get(status, b"Error"), content_type,
                                            len(payload) if length is None else length, rid))
        if request.headers:
            head += request.headers
        if self._access is not None:
            self._access.log(request.method, request.path, status,
                             time.perf_counter() - request.t0, len(payload), rid)
        assert self.transport is not None
        self.transport.write(head + (b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
                             + payload)
        self.busy = False
        if not keep_alive:
            if request.error is not None:
                self._linger()
            else:
                self.close()
            return
        if self.waiting:
            request = self.waiting.popleft()
            self._update_reading()
            self._handle(request)
        elif self._continue_owed:
            self._continue_owed = False
            self.body_started = self.body_started and time.monotonic()
            self.transport.write(_CONTINUE)
