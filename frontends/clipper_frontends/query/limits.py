"""The query frontend's HTTP limits: one value, its flags and environment.

Each limit is refused with its own status (README.md, "Limits"):

============================  =====================  ======  ============================
limit                         default                status  flag / env
============================  =====================  ======  ============================
request head (headers)        16 KiB                 431     --max-header-bytes
headers per request           100                    431     --max-headers
request target (URL)          8 KiB                  414     --max-url-bytes
request body                  16 MiB                 413     --max-body-bytes
inputs of an ``input_batch``  10,000                 413     --max-batch-inputs
request head deadline         10 s                   408     --header-timeout-s
request body deadline         30 s                   408     --body-timeout-s
idle keep-alive connection    75 s                   close   --keep-alive-s
open connections              the file limit - 10 %  503     --max-connections
============================  =====================  ======  ============================

Each flag's environment variable is ``CLIPPER_`` and the flag's name in
upper case with ``_`` for ``-`` (``--max-headers``: ``CLIPPER_MAX_HEADERS``).
The built-in server enforces every one; under uvicorn, the ASGI app refuses
the head limits once uvicorn has read the head, and uvicorn enforces the
connection cap (503 without ``Retry-After``) and the keep-alive timeout.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

import attrs

from ..serving_limits import (
    DEFAULT_KEEP_ALIVE_S,
    DEFAULT_MAX_HEADER_BYTES,
    connection_cap,
    env_number,
)

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BATCH_INPUTS = 10_000


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen
class HTTPLimits:
    """Every HTTP limit of a query frontend (defaults for production)."""

    #: bytes of header names and values in one request head (431)
    max_header_bytes: int = attrs.field(default=DEFAULT_MAX_HEADER_BYTES, validator=_positive)
    #: header lines in one request head (431)
    max_headers: int = attrs.field(default=100, validator=_positive)
    #: bytes of the request target (414)
    max_url_bytes: int = attrs.field(default=8192, validator=_positive)
    #: bytes of a request body (413)
    max_body_bytes: int = attrs.field(default=DEFAULT_MAX_BODY_BYTES, validator=_positive)
    #: inputs of one ``input_batch`` (413)
    max_batch_inputs: int = attrs.field(default=DEFAULT_MAX_BATCH_INPUTS, validator=_positive)
    #: seconds from a request's first byte (or the connection's start) to
    #: the end of its head (408)
    header_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    #: seconds from the end of a request's head to the end of its body (408)
    body_timeout_s: float = attrs.field(default=30.0, validator=_positive)
    #: seconds a connection may wait idle between requests (closed)
    keep_alive_s: float = attrs.field(default=DEFAULT_KEEP_ALIVE_S, validator=_positive)
    #: open client connections; more are answered 503 (0: derived from the
    #: file limit by :func:`~clipper_frontends.serving_limits.connection_cap`)
    max_connections: int = 0
    #: the ``Retry-After`` of that 503, in seconds
    retry_after_s: int = attrs.field(default=1, validator=_positive)

    @property
    def head_bytes(self) -> int:
        """The most a request head may take on the wire: target, headers and
        their framing (a line's ``: `` and CRLF); nothing past it is read."""
        return self.max_url_bytes + self.max_header_bytes + 4 * self.max_headers + 64

    def connections(self, nofile: int) -> int:
        """The connection cap with ``nofile`` file descriptors."""
        return self.max_connections or connection_cap(nofile)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HTTPLimits:
        """The limits of parsed command-line arguments (see :func:`add_arguments`)."""
        return cls(**{name: getattr(args, name) for name in _FLAGS})


#: field -> help of each flag (``--max-header-bytes`` for ``max_header_bytes``)
_FLAGS = {
    "max_header_bytes": "bytes of headers in a request head (431 above)",
    "max_headers": "headers in a request (431 above)",
    "max_url_bytes": "bytes of a request target (414 above)",
    "max_body_bytes": "largest request body accepted (413 above)",
    "max_batch_inputs": "inputs of an input_batch (413 above)",
    "header_timeout_s": "seconds to receive a request head (408 after)",
    "body_timeout_s": "seconds to receive a request body after its head (408 after)",
    "keep_alive_s": "seconds an idle connection is kept open",
    "max_connections": "open connections, more get 503 (0: the file limit less a reserve)",
    "retry_after_s": "Retry-After of the 503 above the connection cap",
}


def env_name(field: str) -> str:
    """The environment variable of a limit (``CLIPPER_MAX_HEADERS``)."""
    return "CLIPPER_" + field.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag per limit; each defaults to its environment variable, then
    to the limit's default."""
    defaults = HTTPLimits()
    for name, help_text in _FLAGS.items():
        default = getattr(defaults, name)
        kind = type(default)
        parser.add_argument("--" + name.replace("_", "-"), type=kind,
                            default=kind(env_number(env_name(name), default)),
                            help=f"{help_text}; env {env_name(name)}, default {default}")


class Server(Protocol):
    """What a connection (:mod:`.connections`) needs of its server."""

    limits: HTTPLimits
    max_connections: int
    #: the open connections (``QueryProtocol`` objects)
    connections: set[Any]
    #: an ``access.AccessLog``, or None
    access_log: Any
