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
HTTP/1.0; each connection is a :class:`.connections.QueryProtocol`.

Every limit of :class:`.limits.HTTPLimits` is enforced, each with its status
(413, 414, 431, 408, 503 above the connection cap).  The deadlines cost no
timer per request: each connection notes when its request head and body
began, and one sweep a second answers 408 to those past their deadline and
closes those idle longer than ``keep_alive_s``.  SIGTERM or SIGINT stops
accepting, lets the requests in flight finish (``drain_s`` at most), then
stops the frontend.

``python -m clipper_frontends.query --http-server uvicorn`` serves the same
frontend as an ASGI app instead (:mod:`.asgi`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from ssl import SSLContext
from typing import TYPE_CHECKING, Any

from ..serving_limits import raise_nofile_limit
from .connections import QueryProtocol
from .limits import HTTPLimits

if TYPE_CHECKING:
    from .frontend import QueryFrontend

log = logging.getLogger("clipper.http")

#: Seconds between two sweeps over the connections (deadlines, idle, linger).
SWEEP_S = 1.0


class QueryHTTPServer:
    """Listens, tracks the connections, enforces their deadlines, drains on stop."""

    def __init__(self, frontend: QueryFrontend, host: str, port: int, *, backlog: int = 2048,
                 limits: HTTPLimits | None = None, drain_s: float = 5.0,
                 ssl: SSLContext | None = None) -> None:
        self.frontend = frontend
        #: HTTPS with this context (``--tls-cert``/``--tls-key``); None: plain HTTP
        self.ssl = ssl
        self.host = host
        self.port = port
        self.backlog = backlog
        self.limits = limits or HTTPLimits()
        self.drain_s = drain_s
        #: the connection cap, known at start (it may derive from the file limit)
        self.max_connections = self.limits.max_connections or 1 << 30
        self.connections: set[QueryProtocol] = set()
        #: one line per request (``--access-log``), or None
        self.access_log = frontend.access_log
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.frontend.start()
        service = self.frontend.service
        assert service is not None
        import resource

        self.max_connections = self.limits.connections(
            resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: QueryProtocol(service, self), self.host, self.port,
            backlog=self.backlog, reuse_address=True, ssl=self.ssl)
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Answer 408 to requests past their head or body deadline, close
        connections idle past the keep-alive timeout and refused ones
        lingering past their time; one pass over the connections."""
        limits = self.limits
        head_cutoff = now - limits.header_timeout_s
        body_cutoff = now - limits.body_timeout_s
        idle_cutoff = now - limits.keep_alive_s
        for conn in list(self.connections):
            if conn.closed:
                if conn.linger_until and conn.linger_until < now and conn.transport:
                    conn.transport.close()
                continue
            if conn.read_paused:
                continue  # we are not reading: the client is not late
            if conn.head_started:
                if conn.head_started < head_cutoff:
                    conn.time_out("head", limits.header_timeout_s)
            elif conn.body_started:
                if conn.body_started < body_cutoff:
                    conn.time_out("body", limits.body_timeout_s)
            elif not conn.busy and conn.last_active < idle_cutoff:
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
        log.info("query frontend listening on %s://%s:%d", "https" if self.ssl else "http",
                 self.host, self.port)
        await stop.wait()
        log.info("stopping: draining %d connections", len(self.connections))
        await self.stop()


def serve(frontend: QueryFrontend, host: str, port: int, **options: Any) -> None:
    """Run the frontend on this server until SIGTERM or SIGINT (``options``
    are :class:`QueryHTTPServer`'s); the soft file limit is raised first."""
    raise_nofile_limit()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(QueryHTTPServer(frontend, host, port, **options).serve_until_signalled())
        return
    uvloop.run(QueryHTTPServer(frontend, host, port, **options).serve_until_signalled())
