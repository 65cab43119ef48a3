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
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from typing import IO, Any

FORMAT_ENV = "CLIPPER_LOG_FORMAT"
LEVEL_ENV = "CLIPPER_LOG_LEVEL"
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
    in format ``fmt``; replaces the root logger's handlers, so calling it
    twice does not print records twice.  Uvicorn's loggers propagate to it."""
    formatter = make_formatter(fmt)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
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
