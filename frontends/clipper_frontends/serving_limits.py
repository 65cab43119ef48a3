"""What one client may cost a frontend: settings shared by both frontends.

The query frontend's own HTTP server enforces every limit itself
(:mod:`clipper_frontends.query.limits`); the management frontend runs under
uvicorn, and :func:`uvicorn_settings` gives uvicorn the limits it can
enforce.  Both raise the soft file limit to the hard one at start
(:func:`raise_nofile_limit`) and derive their connection cap from it
(:func:`connection_cap`), so that a flood of idle connections meets a 503
rather than failed ``accept()`` calls.

The same environment variables set the same limit on both frontends.
"""

from __future__ import annotations

import logging
import math
import os
import resource
from typing import Any

log = logging.getLogger("clipper.frontends")

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_KEEP_ALIVE_S = 75.0
DEFAULT_BACKLOG = 2048
ENV_MAX_HEADER_BYTES = "CLIPPER_MAX_HEADER_BYTES"
ENV_KEEP_ALIVE_S = "CLIPPER_KEEP_ALIVE_S"
ENV_MAX_CONNECTIONS = "CLIPPER_MAX_CONNECTIONS"

#: Never ask for more descriptors than this, even when the hard limit is unlimited.
_NOFILE_CEILING = 1 << 20


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NOFILE_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the file limit from %d to %d: %s", soft, target, exc)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _NOFILE_CEILING if soft == resource.RLIM_INFINITY else min(soft, _NOFILE_CEILING)


def connection_cap(nofile: int) -> int:
    """The client connections a frontend serves at once with ``nofile`` file
    descriptors: all but a reserve (a tenth, at least 256) for replicas,
    the store, logs and connections being turned away; at least 32."""
    return max(32, nofile - max(256, nofile // 10))


def env_number(name: str, default: float) -> float:
    """The number in environment variable ``name``, else ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def uvicorn_settings(nofile: int) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments that bound what one client costs.

    h11 parses the requests because it caps an incomplete request head (its
    ``h11_max_incomplete_event_size``: a longer head is refused with 400,
    unread); ``limit_concurrency`` answers 503 above the connection cap;
    ``timeout_keep_alive`` closes idle connections.  uvicorn has no deadline
    for a request head or body.
    """
    max_connections = int(env_number(ENV_MAX_CONNECTIONS, 0)) or connection_cap(nofile)
    return {"http": "h11",
            "h11_max_incomplete_event_size": int(env_number(ENV_MAX_HEADER_BYTES,
                                                            DEFAULT_MAX_HEADER_BYTES)),
            "limit_concurrency": max_connections,
            "timeout_keep_alive": math.ceil(env_number(ENV_KEEP_ALIVE_S, DEFAULT_KEEP_ALIVE_S)),
            "backlog": DEFAULT_BACKLOG}
