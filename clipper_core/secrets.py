"""Secrets of a cluster: making them, reading them, writing them, hiding them.

- :func:`new_token` and :func:`new_password` make the admin token and the
  Redis password a manager generates at ``start_clipper()``;
- :func:`read_secret` reads a secret a program was given, from its
  environment variable or from the file its ``<ENV>_FILE`` variable names
  (the two channels of :class:`clipper_core.launch.Secret`);
- :func:`write_private` writes a file only its owner can read (0600), in
  one atomic step, so a reader never sees it half written or with other
  modes; :func:`make_private` narrows an existing file;
- :func:`redact_url` and :func:`redact` hide passwords in URLs (and any
  given secret values) in everything that is printed, logged or served;
  :class:`RedactingFilter` does it for a logging handler;
- :func:`split_password` and :func:`store_url_from_env` keep a store's
  password out of command lines: the URL travels in argv without it, the
  password through ``CLIPPER_STORE_PASSWORD`` (or ``_FILE``).

Nothing here imports the rest of the core.
"""

from __future__ import annotations

import logging
import os
import re
import secrets as _random
import tempfile
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote, urlsplit

#: A store URL given whole (password included) through the environment.
STORE_URL_ENV = "CLIPPER_STORE_URL"
#: The store's password, added to a ``--store`` URL that has none.
STORE_PASSWORD_ENV = "CLIPPER_STORE_PASSWORD"
#: Clipper-core 0.4's name for the store URL in the environment.
LEGACY_STORE_ENV = "CLIPPER_STORE"

#: The management frontend's bearer token (``launch.ADMIN_TOKEN_ENV``).
ADMIN_TOKEN_ENV = "CLIPPER_ADMIN_TOKEN"

#: What a hidden secret reads as.
MASK = "***"

#: ``scheme://user:password@`` in free text (the password up to ``@``).
_URL_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*):(?P<pw>[^\s/@]*)@")
#: ``password=...``, ``token=...`` style query parameters.
_SECRET_PARAM = re.compile(r"(?P<head>[?&;](?:password|passwd|pass|token|secret|auth)=)"
                           r"(?P<value>[^&#\s'\"]+)", re.IGNORECASE)
#: ``Authorization: Bearer <token>`` (headers echoed in errors or logs).
_BEARER = re.compile(r"(?P<head>Bearer\s+)(?P<value>[A-Za-z0-9._~+/=-]+)")


def new_token(nbytes: int = 24) -> str:
    """A new bearer token: ``nbytes`` random bytes, URL-safe base64 (32 chars)."""
    return _random.token_urlsafe(nbytes)


def new_password(nbytes: int = 24) -> str:
    """A new password of hex digits (safe in a URL, a shell word and a Redis config line)."""
    return _random.token_hex(nbytes)


def read_secret(env: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The secret a program was given: ``$env``, else the content of the file
    ``$<env>_FILE`` names (trailing newline stripped); None when neither is set.

    OSError when the named file cannot be read (a misplaced secret must not
    pass for "no secret").
    """
    environ = os.environ if environ is None else environ
    value = environ.get(env)
    if value:
        return value
    path = environ.get(f"{env}_FILE")
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:
        return fh.read().rstrip("\r\n") or None


def write_private(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` readable and writable by its owner only (0600).

    The file is written beside ``path`` under a temporary name created 0600,
    synced and renamed over ``path``: readers see the old or the new content,
    and the content is never readable by others, not even for a moment.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def make_private(path: str | os.PathLike[str]) -> None:
    """chmod 0600 an existing file (a missing one is left alone)."""
    try:
        os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


def redact_url(url: str) -> str:
    """``url`` with its password (and secret query parameters) shown as ``***``.

    ``redis://:pw@host:6379/0`` -> ``redis://:***@host:6379/0``; a URL
    without a password comes back unchanged.
    """
    return redact(url)


def redact(text: str, values: Iterable[str | None] = ()) -> str:
    """``text`` with every URL password, secret query parameter and bearer
    token masked, and every one of ``values`` (known secrets) replaced by ``***``."""
    out = _URL_USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    out = _SECRET_PARAM.sub(lambda m: f"{m['head']}{MASK}", out)
    out = _BEARER.sub(lambda m: f"{m['head']}{MASK}", out)
    for value in values:
        if value and len(value) >= 4:
            out = out.replace(value, MASK)
            quoted = quote(value, safe="")
            if quoted != value:
                out = out.replace(quoted, MASK)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in each record's final message.

    Install it on a handler (:func:`install_log_redaction`); the record's
    message is formatted once, masked, and its arguments dropped.
    """

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.values = tuple(v for v in values if v)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's own report
            return True
        masked = redact(message, self.values)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info),
                                     self.values)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, self.values)
        return True


def install_log_redaction(values: Iterable[str | None] = (),
                          logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (the root
    logger by default); call it after ``logging.basicConfig``."""
    target = logger if logger is not None else logging.getLogger()
    flt = RedactingFilter(values)
    for handler in target.handlers:
        handler.addFilter(flt)


def split_password(url: str) -> tuple[str, str | None]:
    """``(url without its password, the password or None)``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    netloc = f"{user}@{host}" if user else host
    return parts._replace(netloc=netloc).geturl(), unquote(parts.password)


def with_password(url: str, password: str | None) -> str:
    """``url`` carrying ``password`` (unless it has one already or none is given)."""
    if not password:
        return url
    parts = urlsplit(url)
    if parts.password is not None or not parts.netloc:
        return url
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return parts._replace(netloc=netloc).geturl()


def store_url_from_env(url: str | None = None,
                       environ: Mapping[str, str] | None = None) -> str | None:
    """The store URL a frontend opens.

    ``url`` (its ``--store`` flag), else ``CLIPPER_STORE_URL`` (or its
    ``_FILE``), else ``CLIPPER_STORE``; then the password of
    ``CLIPPER_STORE_PASSWORD`` (or its ``_FILE``) is added when the URL has none.
    """
    environ = os.environ if environ is None else environ
    chosen = url or read_secret(STORE_URL_ENV, environ) or environ.get(LEGACY_STORE_ENV)
    if not chosen:
        return None
    return with_password(chosen, read_secret(STORE_PASSWORD_ENV, environ))
