"""Request ids and the access log of the query frontend.

Every response carries ``X-Request-Id``: the client's own (when it sent a
usable one) or one made here, cheaply: a per-process prefix and a counter
(:func:`next_request_id`), no random number per request.  Log lines about a
request name it.

The access log (``--access-log [FILE]``, off by default) writes one line per
request in the process's log format (:mod:`clipper_core.logs`: plain text,
or JSON with the fields ``method``, ``path``, ``status``, ``latency_ms``,
``bytes`` and ``request_id``).  The event loop only appends a tuple to a
bounded buffer; a thread of its own formats and writes the lines, so a slow
disk never stalls serving (when the buffer is full, lines are dropped and
counted).
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import sys
import threading
import time
from typing import IO

from clipper_core import logs

HEADER = b"x-request-id"
ACCESS_LOG_ENV = "CLIPPER_ACCESS_LOG"
#: the longest client request id taken as it is (longer ones are replaced)
MAX_ID_BYTES = 128
#: access log lines buffered before new ones are dropped
BUFFER_LINES = 65536
#: how often the writer thread looks for lines (seconds)
FLUSH_S = 0.05

_PREFIX = b"%s-" % os.urandom(4).hex().encode()
_counter = itertools.count(1)
#: the bytes a usable request id is made of (visible ASCII)
_VISIBLE = bytes(range(33, 127))


def next_request_id() -> bytes:
    """A request id unique in this process and unlikely to repeat across
    processes: ``<8 hex digits of this process>-<counter in hex>``."""
    return b"%s%x" % (_PREFIX, next(_counter))


def usable_id(value: bytes) -> bool:
    """Whether a client's ``X-Request-Id`` is echoed as it is: 1 to
    :data:`MAX_ID_BYTES` printable ASCII bytes (else a new id is made)."""
    return 0 < len(value) <= MAX_ID_BYTES and not value.translate(None, _VISIBLE)


def request_id(value: bytes | None) -> bytes:
    """The id of a request whose ``X-Request-Id`` header was ``value``."""
    return value if value and usable_id(value) else next_request_id()


class AccessLog:
    """One line per request, written by a thread of its own.

    :param handler: where the lines go (its formatter is set from ``fmt``).
    :param fmt: ``plain`` or ``json`` (default: env ``CLIPPER_LOG_FORMAT``).
    """

    def __init__(self, handler: logging.Handler, fmt: str | None = None,
                 buffer_lines: int = BUFFER_LINES) -> None:
        handler.setFormatter(logs.make_formatter(fmt))
        self.handler = handler
        self.buffer_lines = buffer_lines
        self._lines: collections.deque[tuple[float, bytes, str, int, float, int, bytes]] = (
            collections.deque())
        #: lines dropped because the buffer was full
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write_loop, name="access-log", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, target: str, fmt: str | None = None) -> AccessLog:
        """The access log of ``--access-log``: ``-`` is stderr, else a file
        (appended to)."""
        if target == "-":
            return cls(logging.StreamHandler(sys.stderr), fmt)
        return cls(logging.FileHandler(target, encoding="utf-8"), fmt)

    @classmethod
    def to_stream(cls, stream: IO[str], fmt: str | None = None) -> AccessLog:
        return cls(logging.StreamHandler(stream), fmt)

    def log(self, method: bytes, path: str, status: int, latency_s: float, size: int,
            rid: bytes) -> None:
        """Note one answered request (called on the event loop: no I/O)."""
        lines = self._lines
        if len(lines) >= self.buffer_lines:
            self.dropped += 1
            return
        lines.append((time.time(), method, path, status, latency_s, size, rid))

    def close(self) -> None:
        """Write what is buffered and stop the writer thread."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.handler.close()

    def _write_loop(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        lines = self._lines
        if not lines:
            return
        handler = self.handler
        while lines:
            handler.handle(_record(*lines.popleft()))
        handler.flush()


def _record(ts: float, method: bytes, path: str, status: int, latency_s: float, size: int,
            rid: bytes) -> logging.LogRecord:
    meth, req_id, ms = method.decode("latin-1"), rid.decode("latin-1"), latency_s * 1000
    record = logging.LogRecord("clipper.access", logging.INFO, __file__, 0,
                               "%s %s %d %.2fms %dB id=%s",
                               (meth, path, status, ms, size, req_id), None)
    record.created = ts
    record.msecs = (ts - int(ts)) * 1000
    record.method, record.path, record.status = meth, path, status
    record.latency_ms, record.bytes, record.request_id = round(ms, 3), size, req_id
    return record
