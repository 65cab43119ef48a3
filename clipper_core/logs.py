"""Logging set-up shared by every Clipper process: plain text or JSON lines.

The frontends, the model runtime and the ``clipper`` command call
:func:`configure` once at start-up::

    from clipper_core import logs
    logs.add_arguments(parser)            # --log-level, --log-format
    args = parser.parse_args()
    logs.configure(args.log_level, args.log_format)

The format comes from the argument, else env ``CLIPPER_LOG_FORMAT``, else
``plain``; the level likewise from env ``CLIPPER_LOG_LEVEL``, else ``INFO``.
In the ``json`` format every record is one JSON object on one line, with
``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``pid``, any
``extra={...}`` fields the caller passed, and ``exc_info`` (the formatted
traceback) when there is one, so a log collector needs no pattern to read it.

Repeated warnings are rate-limited (:class:`RepeatFilter`): a record at
WARNING or above whose key was seen less than ``CLIPPER_LOG_REPEAT_S``
seconds ago (default 60; 0 turns it off) is dropped, and the next one let
through says how many were (``(N more like this since the last one)``; field
``suppressed`` in JSON).  The key is the logger, the message template and the
``peer`` the caller names (``log.warning("bad frame", extra={"peer": addr})``),
or the whole message when there is no peer: a peer sending garbage writes one
line a minute, different messages are never merged.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import threading
import time
from typing import IO, Any

FORMAT_ENV = "CLIPPER_LOG_FORMAT"
LEVEL_ENV = "CLIPPER_LOG_LEVEL"
REPEAT_ENV = "CLIPPER_LOG_REPEAT_S"
DEFAULT_REPEAT_S = 60.0
FORMATS = ("plain", "json")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class RepeatFilter(logging.Filter):
    """Lets one record per key through every ``period_s`` seconds (records
    below ``level`` always pass); see the module docstring for the key.

    At most ``max_keys`` keys are remembered: past that, the ones older than
    the period are forgotten (or, if none is, all of them)."""

    def __init__(self, period_s: float = DEFAULT_REPEAT_S, level: int = logging.WARNING,
                 max_keys: int = 4096) -> None:
        super().__init__()
        self.period_s = period_s
        self.level = level
        self.max_keys = max_keys
        #: key -> [monotonic time of the last record let through, records dropped since]
        self._seen: dict[tuple[str, str, str], list[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(record: logging.LogRecord) -> tuple[str, str, str]:
        peer = getattr(record, "peer", None)
        if peer is None:
            return (record.name, "", record.getMessage())
        return (record.name, str(record.msg), repr(peer))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or self.period_s <= 0:
            return True
        key, now = self.key(record), time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.period_s:
                seen[1] += 1
                return False
            if seen is None and len(self._seen) >= self.max_keys:
                self._forget(now)
            self._seen[key] = [now, 0]
        dropped = int(seen[1]) if seen is not None else 0
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} more like this since the last one)"
            record.args = ()
            record.suppressed = dropped
        return True

    def _forget(self, now: float) -> None:
        old = [k for k, (at, _) in self._seen.items() if now - at >= self.period_s]
        for k in old or list(self._seen):
            del self._seen[k]


def repeat_period() -> float:
    """Env ``CLIPPER_LOG_REPEAT_S``, else 60 seconds."""
    return float(os.environ.get(REPEAT_ENV) or DEFAULT_REPEAT_S)


def resolve_format(fmt: str | None = None) -> str:
    """``fmt``, else env ``CLIPPER_LOG_FORMAT``, else ``plain``; ValueError
    for a name not in :data:`FORMATS`."""
    chosen = (fmt or os.environ.get(FORMAT_ENV) or "plain").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"Unknown log format {chosen!r}; use one of: {', '.join(FORMATS)}")
    return chosen


def make_formatter(fmt: str | None = None) -> logging.Formatter:
    """The formatter for ``fmt`` (see :func:`resolve_format`)."""
    if resolve_format(fmt) == "json":
        return JSONFormatter()
    return logging.Formatter(PLAIN_FORMAT)


def configure(level: str | int | None = None, fmt: str | None = None, *,
              stream: IO[str] | None = None) -> None:
    """Send every logger's records to ``stream`` (default stderr) at ``level``
    in format ``fmt``, repeated warnings rate-limited (:class:`RepeatFilter`);
    replaces the root logger's handlers, so calling it twice does not print
    records twice.  Uvicorn's loggers propagate to it."""
    formatter = make_formatter(fmt)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatFilter(repeat_period()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    chosen = level if level is not None else os.environ.get(LEVEL_ENV, "INFO")
    root.setLevel(chosen.upper() if isinstance(chosen, str) else chosen)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level`` and ``--log-format`` (defaults from the environment)."""
    parser.add_argument("--log-level", default=os.environ.get(LEVEL_ENV, "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (default: env "
                             f"{LEVEL_ENV} or INFO)")
    parser.add_argument("--log-format", choices=FORMATS, default=None,
                        help=f"plain text or one JSON object per line (default: env "
                             f"{FORMAT_ENV} or plain)")
