"""The management frontend: Clipper's ``/admin/*`` REST API over a state store.

``create_app(store)`` builds the Starlette app; ``main()`` serves it::

    python -m clipper_frontends.management --store sqlite:///abs/state.db \\
        --host 127.0.0.1 --port 1338

Every ``/admin/*`` endpoint but ``ping`` and ``plugins`` is a ``POST`` with a
JSON object body, named and shaped as Clipper's.  Errors are
``{"error": kind, "cause": message}`` with the status of
:func:`clipper_frontends.http.status_for`.  When a token is set (argument or
env ``CLIPPER_ADMIN_TOKEN``), every ``/admin/*`` request must carry
``Authorization: Bearer <token>``.

The handlers are thin: each reads its request value of
:mod:`clipper_core.admin.wire`, calls :class:`clipper_core.admin.service.AdminService`
(which holds every rule and fires the event hooks after successful writes)
and renders the response value.  Several management frontends may serve one
store: the service's rules hold across processes (see
:mod:`clipper_core.admin.guards`).
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clipper_core import logs
from clipper_core.admin.backup import write_backup
from clipper_core.admin.service import AdminService
from clipper_core.admin.wire import REQUESTS, render
from clipper_core.admin.wire import Request as AdminRequest
from clipper_core.errors import (
    AuthenticationError,
    ClipperException,
    NotFoundError,
    PluginError,
    StoreUnavailableError,
)
from clipper_core.interfaces import StateStore
from clipper_core.plugins import get_backend, list_plugins, open_store
from clipper_core.secrets import read_secret, redact, redact_url, store_url_from_env

from . import dashboard, trust
from .http import MAX_BODY_BYTES, error_response, json_response, read_json_object
from .openapi import admin as openapi

log = logging.getLogger("clipper.management")

DEFAULT_PORT = 1338
TOKEN_ENV = "CLIPPER_ADMIN_TOKEN"

#: ``GET`` endpoints under ``/admin/``; every other one is a ``POST`` of
#: :data:`clipper_core.admin.wire.REQUESTS`.
GET_ENDPOINTS = ("ping", "plugins")

Guard = Callable[[Request], Awaitable["Response | None"]]


class _StoreHolder:
    """The store an app serves (given, or opened from a URL in the lifespan)
    and the admin service over it."""

    def __init__(self, store: StateStore | str) -> None:
        self.url = store if isinstance(store, str) else store.url
        self.owned = isinstance(store, str)
        self.store: StateStore | None = None if isinstance(store, str) else store
        self._service: AdminService | None = None
        self.open_lock = threading.Lock()
        #: Where the configuration backup is kept (None: no backup file).
        self.backup_path: str | None = None

    def get(self) -> StateStore:
        """The open store; opens it now if the lifespan could not."""
        if self.store is not None:
            return self.store
        with self.open_lock:
            if self.store is None:
                self.store = _open(self.url)
        return self.store

    def service(self) -> AdminService:
        """The admin service over the open store."""
        store = self.get()
        with self.open_lock:
            if self._service is None or self._service.store is not store:
                self._service = AdminService(store)
            return self._service

    def close(self) -> None:
        if self.owned and self.store is not None:
            self.store.close()
            self.store = None


def _open(url: str) -> StateStore:
    try:
        store: StateStore = open_store(url)
        return store
    except (StoreUnavailableError, PluginError):
        raise
    except Exception as exc:  # noqa: BLE001 - any driver error means "cannot reach it"
        raise StoreUnavailableError(redact(f"State store {url} cannot be opened: {exc}"),
                                    url=redact_url(url)) from exc


def _call(holder: _StoreHolder, request: AdminRequest[Any]) -> Any:
    """Run ``request`` on the service (in a worker thread); JSON data back."""
    try:
        result = render(holder.service().handle(request))
    except ClipperException:
        raise
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise StoreUnavailableError(
            redact(f"State store {holder.url} is unavailable: {exc}; nothing was changed"),
            url=redact_url(holder.url)) from exc
    if request.writes and holder.backup_path:
        try:
            write_backup(holder.backup_path, holder.get())
        except (ClipperException, OSError) as exc:
            log.warning("Could not update the backup %s: %s", holder.backup_path, exc)
    return result


def _token_guard(token: str | None) -> Guard:
    """401 unless the request carries ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode() if token else None

    async def guard(request: Request) -> Response | None:
        if expected is None:
            return None
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if hmac.compare_digest(given, expected):
            return None
        return error_response(AuthenticationError(
            "Missing or wrong bearer token: send 'Authorization: Bearer <token>'"))
    return guard


def _endpoint(holder: _StoreHolder, guard: Guard, request_type: type[AdminRequest[Any]],
              max_body_bytes: int) -> Callable[[Request], Awaitable[Response]]:
    """``POST /admin/{path}``: parse the request value, call the service,
    render the response value."""

    async def run(request: Request) -> Response:
        denied = await guard(request)
        if denied is not None:
            return denied
        try:
            body = await read_json_object(request, max_bytes=max_body_bytes)
            result = await run_in_threadpool(_call, holder, request_type.from_wire(body))
        except ClipperException as exc:
            if isinstance(exc, StoreUnavailableError):
                log.warning("%s: %s", request.url.path, exc)
            return error_response(exc)
        except Exception as exc:  # noqa: BLE001 - never crash on a request
            log.exception("%s failed", request.url.path)
            return error_response(ClipperException(
                f"Internal error in {request.url.path}: {type(exc).__name__}: {exc}"))
        return json_response(result)
    return run


def _other_routes(holder: _StoreHolder, guard: Guard) -> list[Route]:
    """Ping, plugins, health, and the answers for unknown paths and methods."""

    async def ping(request: Request) -> Response:
        denied = await guard(request)
        if denied is not None:
            return denied
        try:
            await run_in_threadpool(lambda: holder.get().ping())
        except ClipperException as exc:
            return error_response(exc)
        return json_response({"status": "ok", "store": redact_url(holder.url)})

    async def plugins(request: Request) -> Response:
        denied = await guard(request)
        if denied is not None:
            return denied
        return json_response([p.to_wire() for p in list_plugins()])

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def unknown(request: Request) -> Response:
        denied = await guard(request)
        if denied is not None:
            return denied
        name = request.path_params["rest"]
        if name in REQUESTS or name in GET_ENDPOINTS:
            method = "GET" if name in GET_ENDPOINTS else "POST"
            return json_response({"error": "method_not_allowed",
                                  "cause": f"/admin/{name} accepts {method} only"},
                                 status=405)
        return error_response(NotFoundError(
            f"Unknown management endpoint {request.url.path}; known: "
            + ", ".join(sorted([*REQUESTS, *GET_ENDPOINTS]))))

    return [Route("/admin/ping", ping, methods=["GET"]),
            Route("/admin/plugins", plugins, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/admin/{rest:path}", unknown, methods=["GET", "POST", "PUT", "DELETE"])]


def create_app(store: StateStore | str, *, token: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, backup_path: str | None = None,
               query_urls: Sequence[str] = (), query_token: str | None = None
               ) -> Starlette:
    """Build the management frontend for ``store`` (an open StateStore, or a
    URL opened at start-up and closed at shut-down).

    :param token: when set, every ``/admin/*`` request needs
        ``Authorization: Bearer <token>`` (else 401 and nothing changes).
    :param max_body_bytes: larger request bodies are refused with 413.
    :param query_urls: base URLs of the query frontends whose ``/metrics``
        the dashboard shows (``/dashboard``, behind ``token``).
    :param query_token: bearer token those ``/metrics`` need, if any.
    :param backup_path: after every configuration change, the whole
        configuration is exported into this file (0600; the previous one
        kept as ``<path>.1``); restore with ``python -m clipper_core.admin.backup``.
    """
    holder = _StoreHolder(store)
    holder.backup_path = backup_path
    guard = _token_guard(token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(holder.service)
        except StoreUnavailableError as exc:
            log.warning("%s; will retry on the next request", exc)
        try:
            yield
        finally:
            await run_in_threadpool(holder.close)

    routes = [Route(f"/admin/{path}", _endpoint(holder, guard, cls, max_body_bytes),
                    methods=["POST"]) for path, cls in REQUESTS.items()]
    routes += [*openapi.routes(),
               *dashboard.routes(holder.service, token, query_urls, query_token)]
    app = Starlette(routes=[*routes, *_other_routes(holder, guard)], lifespan=lifespan)
    app.state.store_holder = holder
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the management frontend (``python -m clipper_frontends.management``)."""
    parser = argparse.ArgumentParser(prog="python -m clipper_frontends.management",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=os.environ.get("CLIPPER_STORE"),
                        help="state store URL, e.g. sqlite:///abs/path/state.db "
                             "(default: env CLIPPER_STORE)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--query-url", action="append", default=[], metavar="URL",
                        help="a query frontend whose /metrics the dashboard shows (repeatable; "
                             f"default: env {dashboard.QUERY_URLS_ENV}, comma-separated)")
    logs.add_arguments(parser)
    trust.add_arguments(parser)
    args = parser.parse_args(argv)
    args.store = store_url_from_env(args.store)
    if not args.store:
        parser.error("--store URL is required (or set CLIPPER_STORE)")
    try:
        get_backend("state_stores", args.store.split("://", 1)[0])
    except PluginError as exc:
        parser.error(f"--store {redact_url(args.store)}: {exc}")
    logs.configure(args.log_level, args.log_format)
    loaded = ", ".join(f"{p.name} ({p.distribution} {p.version})" for p in list_plugins())
    log.info("clipper management frontend on %s:%d, store %s; plugins: %s",
             args.host, args.port, redact_url(args.store), loaded)
    token = read_secret(TOKEN_ENV)
    trust.redact_logs(args.store, token)
    app = create_app(args.store, token=token, max_body_bytes=args.max_body_bytes,
                     backup_path=args.backup,
                     query_urls=dashboard.parse_urls(
                         args.query_url or [os.environ.get(dashboard.QUERY_URLS_ENV, "")]),
                     query_token=os.environ.get(dashboard.QUERY_TOKEN_ENV) or None)

    import uvicorn

    from .serving_limits import raise_nofile_limit, uvicorn_settings

    # The same header, keep-alive and connection limits as the query
    # frontend's, as far as uvicorn enforces them (README.md, "Limits").
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                access_log=False, log_config=None, **uvicorn_settings(raise_nofile_limit()),
                **trust.uvicorn_tls(args))


if __name__ == "__main__":
    main()
