"""What both frontends share at the trust boundary: TLS, tokens, secret-free logs.

- ``--tls-cert``/``--tls-key`` (env ``CLIPPER_TLS_CERT``/``CLIPPER_TLS_KEY``):
  serve HTTPS with this certificate chain and key (PEM files); both or neither;
- ``--backup`` (management only; env ``CLIPPER_BACKUP``): the configuration
  backup file :mod:`clipper_core.admin.backup` keeps up to date;
- :func:`redact_logs`: no log line shows the store's password or a token.

Secrets are read from the environment or ``<ENV>_FILE`` files
(:func:`clipper_core.secrets.read_secret`), never from argv.
"""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any

from clipper_core.secrets import install_log_redaction, split_password

TLS_CERT_ENV = "CLIPPER_TLS_CERT"
TLS_KEY_ENV = "CLIPPER_TLS_KEY"
BACKUP_ENV = "CLIPPER_BACKUP"


def add_arguments(parser: argparse.ArgumentParser, *, backup: bool = True) -> None:
    """Add the TLS flags (and ``--backup`` when ``backup``) to a frontend's parser."""
    parser.add_argument("--tls-cert", default=os.environ.get(TLS_CERT_ENV) or None,
                        help="serve HTTPS with this PEM certificate (chain) "
                             f"(default: env {TLS_CERT_ENV}); needs --tls-key")
    parser.add_argument("--tls-key", default=os.environ.get(TLS_KEY_ENV) or None,
                        help=f"the PEM private key of --tls-cert (default: env {TLS_KEY_ENV})")
    if backup:
        parser.add_argument("--backup", default=os.environ.get(BACKUP_ENV) or None,
                            help="keep the whole configuration in this file (0600) after "
                                 f"every change (default: env {BACKUP_ENV}); restore with "
                                 "python -m clipper_core.admin.backup restore FILE")


def check_tls(args: argparse.Namespace) -> None:
    """ValueError unless both or neither of ``--tls-cert``/``--tls-key`` are given."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")


def ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """A server-side TLS context from ``--tls-cert``/``--tls-key`` (None without them)."""
    check_tls(args)
    if not args.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def uvicorn_tls(args: argparse.Namespace) -> dict[str, Any]:
    """uvicorn's TLS settings from ``--tls-cert``/``--tls-key`` (empty without them)."""
    check_tls(args)
    if not args.tls_cert:
        return {}
    return {"ssl_certfile": args.tls_cert, "ssl_keyfile": args.tls_key}


def redact_logs(store_url: str | None, *tokens: str | None) -> None:
    """Mask the store URL's password and ``tokens`` in every log line of
    this process (URL passwords anywhere are masked too)."""
    _, password = split_password(store_url) if store_url else (None, None)
    install_log_redaction((password, *tokens))
