"""Redis state store URLs: ``redis://[[user]:password@]host:port/db?prefix=NAME``.

:func:`parse_redis_url` turns one into the keyword arguments of
``redis.Redis`` plus the store's own options (``prefix``, ``poll``);
:func:`redact` hides the password before a URL goes into a message.  The
options are described in :mod:`clipper_core.stores.redis`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ValidationError
from .base import DEFAULT_POLL_INTERVAL

DEFAULT_PREFIX = "clipper"

_CERT_REQS = {"required", "optional", "none"}


def parse_redis_url(url: str) -> dict[str, Any]:
    """Split a ``redis://``/``rediss://`` store URL into connection options
    (keyword arguments of ``redis.Redis``) plus ``prefix`` and ``poll``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValidationError(f"Not a Redis store URL: {url!r}", argument="store", value=url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        port = parts.port or 6379
        db_text = parts.path.strip("/")
        db = int(db_text) if db_text else int(query.pop("db", 0))
        opts: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1", "port": port, "db": db,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "socket_timeout": float(query.pop("timeout", 2.0)),
            "socket_connect_timeout": float(query.pop("connect_timeout", 1.0)),
            "poll": float(query.pop("poll", DEFAULT_POLL_INTERVAL)),
        }
    except ValueError as exc:
        raise ValidationError(f"Bad Redis store URL {url!r}: {exc}", argument="store",
                              value=url) from exc
    opts["prefix"] = query.pop("prefix", DEFAULT_PREFIX) or DEFAULT_PREFIX
    if parts.scheme == "rediss":
        opts["ssl"] = True
        reqs = query.pop("ssl_cert_reqs", "required")
        if reqs not in _CERT_REQS:
            raise ValidationError(f"Bad ssl_cert_reqs {reqs!r} in {url!r}: one of "
                                  f"{', '.join(sorted(_CERT_REQS))}", argument="store", value=url)
        opts["ssl_cert_reqs"] = reqs
        for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if key in query:
                opts[key] = query.pop(key)
    if query:
        raise ValidationError(f"Unknown option(s) {', '.join(sorted(query))} in Redis store "
                              f"URL {redact(url)!r}", argument="store", value=redact(url))
    return opts


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port
                                                              else "")
    return parts._replace(netloc=netloc).geturl()
