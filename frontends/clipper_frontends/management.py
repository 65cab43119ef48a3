"""The management frontend: Clipper's ``/admin/*`` REST API over a state store.

``create_app(store)`` builds the Starlette app; ``main()`` serves it::

    python -m clipper_frontends.management --store sqlite:///abs/state.db \\
        --host 127.0.0.1 --port 1338

Every ``/admin/*`` endpoint but ``ping`` and ``plugins`` is a ``POST`` with a
JSON object body, named and shaped as Clipper's.  Errors are
``{"error": kind, "cause": message}`` with the status of
:func:`clipper_frontends.http.status_for`.  When a token is set (argument or
env ``CLIPPER_ADMIN_TOKEN``), every ``/admin/*`` request must carry
``Authorization: Bearer <token>``.  Event hooks fire after successful writes.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clipper_core.errors import (
    AuthenticationError,
    ClipperException,
    ConflictError,
    NotFoundError,
    PluginError,
    StoreUnavailableError,
    ValidationError,
)
from clipper_core.interfaces import StateStore
from clipper_core.models import Application, ModelVersion, Replica, validate_name
from clipper_core.plugins import get_backend, list_plugins, notify, open_store

from .http import MAX_BODY_BYTES, error_response, field, json_response, read_json_object

log = logging.getLogger("clipper.management")

DEFAULT_PORT = 1338
TOKEN_ENV = "CLIPPER_ADMIN_TOKEN"
#: What Clipper's admin client sent as ``container_name`` for a model without one.
_CONTAINERLESS = "NO_CONTAINER"

Handler = Callable[[StateStore, dict[str, Any]], Any]


# ---------------------------------------------------------------------------
# Handlers: one per endpoint, synchronous (run in the thread pool), each
# taking the store and the parsed body and returning a JSON-able value.
# ---------------------------------------------------------------------------

def _ok(**extra: Any) -> dict[str, Any]:
    return {"success": True, **extra}


def add_app(store: StateStore, body: dict[str, Any]) -> Any:
    app = Application.create(field(body, "name", str), field(body, "input_type", (str, int)),
                             field(body, "default_output", str),
                             field(body, "latency_slo_micros", int))
    if store.get_application(app.name) is not None:
        raise ConflictError(f"Application with name '{app.name}' already exists",
                            name=app.name)
    store.add_application(app)
    notify("clipper_application_registered", application=app)
    return _ok(application=app.to_wire())


def delete_app(store: StateStore, body: dict[str, Any]) -> Any:
    name = validate_name("application name", field(body, "name", str))
    store.delete_application(name)
    notify("clipper_application_deleted", name=name)
    return _ok()


def add_model(store: StateStore, body: dict[str, Any]) -> Any:
    image = field(body, "image", str, default=None)
    if image is None:
        image = field(body, "container_name", str, default=None)
    if image in ("", _CONTAINERLESS):
        image = None
    policy = field(body, "batching_policy", str, default=None)
    model = ModelVersion.create(
        field(body, "model_name", str), field(body, "model_version", (str, int)),
        field(body, "input_type", (str, int)), image=image,
        labels=field(body, "labels", list, default=[]),
        batch_size=field(body, "batch_size", int, default=-1), batching_policy=policy)
    if policy is not None:
        try:
            get_backend("batching_policies", policy)
        except PluginError as exc:
            raise ValidationError(str(exc), argument="batching_policy", value=policy) from None
    if store.get_model(model.name, model.version) is not None:
        raise ConflictError(f"Model with name '{model.name}' and version '{model.version}' "
                            "already exists", name=model.name, version=model.version)
    store.add_model(model, make_current=True)
    notify("clipper_model_registered", model=model)
    return _ok(model=model.to_wire(is_current_version=True))


def delete_versioned_model(store: StateStore, body: dict[str, Any]) -> Any:
    name = validate_name("model name", field(body, "model_name", str))
    version = validate_name("model version", field(body, "model_version", (str, int)))
    store.delete_model_version(name, version)
    return _ok()


def _link_request(body: dict[str, Any]) -> tuple[str, str]:
    app_name = validate_name("application name", field(body, "app_name", str))
    names = field(body, "model_names", list)
    if len(names) != 1:
        raise ValidationError(
            f"An application links exactly one model; got {len(names)} model names",
            argument="model_names", value=names)
    return app_name, validate_name("model name", names[0])


def _require_app(store: StateStore, name: str) -> Application:
    app = store.get_application(name)
    if app is None:
        raise NotFoundError(f"No application with name '{name}' exists", name=name)
    return app


def _versions(store: StateStore, name: str) -> list[ModelVersion]:
    return [m for m in store.list_models() if m.name == name]


def add_model_links(store: StateStore, body: dict[str, Any]) -> Any:
    app_name, model_name = _link_request(body)
    app = _require_app(store, app_name)
    versions = _versions(store, model_name)
    if not versions:
        raise NotFoundError(f"No model with name '{model_name}' exists", name=model_name)
    if app.linked_model == model_name:
        return _ok()
    if app.linked_model is not None:
        raise ConflictError(
            f"Application '{app_name}' is already linked to model '{app.linked_model}'; "
            "an application links at most one model: unlink it first",
            app_name=app_name, linked_model=app.linked_model)
    current = store.get_current_version(model_name)
    model = next((m for m in versions if m.version == current), versions[-1])
    if model.input_type != app.input_type:
        raise ValidationError(
            f"Model '{model_name}' has input type {model.input_type.label} but application "
            f"'{app_name}' has input type {app.input_type.label}; they must be the same",
            app_name=app_name, model_name=model_name)
    store.set_link(app_name, model_name)
    return _ok()


def delete_model_links(store: StateStore, body: dict[str, Any]) -> Any:
    app_name, model_name = _link_request(body)
    app = _require_app(store, app_name)
    if app.linked_model != model_name:
        raise NotFoundError(f"Model '{model_name}' is not linked to application '{app_name}'",
                            app_name=app_name, model_name=model_name)
    store.set_link(app_name, None)
    return _ok()


def set_model_version(store: StateStore, body: dict[str, Any]) -> Any:
    name = validate_name("model name", field(body, "model_name", str))
    version = validate_name("model version", field(body, "model_version", (str, int)))
    if not _versions(store, name):
        raise NotFoundError(f"No model with name '{name}' exists", name=name)
    store.set_current_version(name, version)
    return _ok()


def get_all_applications(store: StateStore, body: dict[str, Any]) -> Any:
    verbose = field(body, "verbose", bool, default=False)
    apps = sorted(store.list_applications(), key=lambda a: a.name)
    return [a.to_wire() for a in apps] if verbose else [a.name for a in apps]


def get_application(store: StateStore, body: dict[str, Any]) -> Any:
    app = store.get_application(validate_name("application name", field(body, "name", str)))
    return app.to_wire() if app is not None else None


def get_linked_models(store: StateStore, body: dict[str, Any]) -> Any:
    app = _require_app(store, validate_name("application name", field(body, "app_name", str)))
    return [app.linked_model] if app.linked_model else []


def _model_info(store: StateStore, model: ModelVersion) -> dict[str, Any]:
    current = store.get_current_version(model.name)
    return model.to_wire(is_current_version=current == model.version)


def get_all_models(store: StateStore, body: dict[str, Any]) -> Any:
    verbose = field(body, "verbose", bool, default=False)
    models = store.list_models()
    if not verbose:
        return [f"{m.name}:{m.version}" for m in models]
    currents: dict[str, str | None] = {}
    out = []
    for m in models:
        if m.name not in currents:
            currents[m.name] = store.get_current_version(m.name)
        out.append(m.to_wire(is_current_version=currents[m.name] == m.version))
    return out


def get_model(store: StateStore, body: dict[str, Any]) -> Any:
    name = validate_name("model name", field(body, "model_name", str))
    version = validate_name("model version", field(body, "model_version", (str, int)))
    model = store.get_model(name, version)
    return _model_info(store, model) if model is not None else None


def _merged_replicas(store: StateStore) -> list[Replica]:
    """One entry per (model, version, replica id): connected if any frontend
    sees it and renewed its record within the lease."""
    merged: dict[tuple[str, str, str], Replica] = {}
    now = time.time()
    for r in store.list_replicas():
        if r.connected and not r.live(now):
            r = attrs.evolve(r, connected=False)  # its frontend stopped renewing it
        key = (r.model_name, r.model_version, r.replica_id)
        seen = merged.get(key)
        if seen is None or (r.connected and not seen.connected) or (
                r.connected == seen.connected and r.last_seen > seen.last_seen):
            merged[key] = r
    return [merged[k] for k in sorted(merged)]


def get_all_containers(store: StateStore, body: dict[str, Any]) -> Any:
    verbose = field(body, "verbose", bool, default=False)
    replicas = _merged_replicas(store)
    if verbose:
        return [r.to_wire() for r in replicas]
    return [f"{r.model_name}:{r.model_version}:{r.replica_id}" for r in replicas]


def get_container(store: StateStore, body: dict[str, Any]) -> Any:
    name = validate_name("model name", field(body, "model_name", str))
    version = validate_name("model version", field(body, "model_version", (str, int)))
    replica_id = str(field(body, "replica_id", (str, int)))
    for r in _merged_replicas(store):
        if (r.model_name, r.model_version, r.replica_id) == (name, version, replica_id):
            return r.to_wire()
    return None


#: Endpoints that change the store; they run one at a time in this process so
#: that check-then-write rules (one link per app, unique names) hold.
WRITES: dict[str, Handler] = {
    "add_app": add_app, "delete_app": delete_app, "add_model": add_model,
    "delete_versioned_model": delete_versioned_model, "add_model_links": add_model_links,
    "delete_model_links": delete_model_links, "set_model_version": set_model_version,
}
READS: dict[str, Handler] = {
    "get_all_applications": get_all_applications, "get_application": get_application,
    "get_linked_models": get_linked_models, "get_all_models": get_all_models,
    "get_model": get_model, "get_all_containers": get_all_containers,
    "get_container": get_container,
}


# ---------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------

class _StoreHolder:
    """The store an app serves: given, or opened from a URL in the lifespan."""

    def __init__(self, store: StateStore | str) -> None:
        self.url = store if isinstance(store, str) else store.url
        self.owned = isinstance(store, str)
        self.store: StateStore | None = None if isinstance(store, str) else store
        self.open_lock = threading.Lock()
        self.write_lock = threading.Lock()

    def get(self) -> StateStore:
        """The open store; opens it now if the lifespan could not."""
        if self.store is not None:
            return self.store
        with self.open_lock:
            if self.store is None:
                self.store = _open(self.url)
        return self.store

    def close(self) -> None:
        if self.owned and self.store is not None:
            self.store.close()
            self.store = None


def _open(url: str) -> StateStore:
    try:
        return open_store(url)
    except StoreUnavailableError:
        raise
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001 - any driver error means "cannot reach it"
        raise StoreUnavailableError(f"State store {url} cannot be opened: {exc}",
                                    url=url) from exc


def _call(holder: _StoreHolder, handler: Handler, body: dict[str, Any], write: bool) -> Any:
    store = holder.get()
    try:
        if write:
            with holder.write_lock:
                return handler(store, body)
        return handler(store, body)
    except ClipperException:
        raise
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise StoreUnavailableError(
            f"State store {holder.url} is unavailable: {exc}; nothing was changed",
            url=holder.url) from exc


def create_app(store: StateStore | str, *, token: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """Build the management frontend for ``store`` (an open StateStore, or a
    URL opened at start-up and closed at shut-down).

    :param token: when set, every ``/admin/*`` request needs
        ``Authorization: Bearer <token>`` (else 401 and nothing changes).
    :param max_body_bytes: larger request bodies are refused with 413.
    """
    holder = _StoreHolder(store)
    expected = f"Bearer {token}".encode() if token else None

    def authorized(request: Request) -> bool:
        if expected is None:
            return True
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        return hmac.compare_digest(given, expected)

    async def guard(request: Request) -> Response | None:
        if not authorized(request):
            return error_response(AuthenticationError(
                "Missing or wrong bearer token: send 'Authorization: Bearer <token>'"))
        return None

    def endpoint(handler: Handler, write: bool) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            denied = await guard(request)
            if denied is not None:
                return denied
            try:
                body = await read_json_object(request, max_bytes=max_body_bytes)
                result = await run_in_threadpool(_call, holder, handler, body, write)
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

    async def ping(request: Request) -> Response:
        denied = await guard(request)
        if denied is not None:
            return denied
        try:
            await run_in_threadpool(lambda: holder.get().ping())
        except ClipperException as exc:
            return error_response(exc)
        return json_response({"status": "ok", "store": holder.url})

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
        if name in WRITES or name in READS or name in ("ping", "plugins"):
            method = "GET" if name in ("ping", "plugins") else "POST"
            return json_response({"error": "method_not_allowed",
                                  "cause": f"/admin/{name} accepts {method} only"},
                                 status=405)
        return error_response(NotFoundError(
            f"Unknown management endpoint {request.url.path}; known: "
            + ", ".join(sorted([*WRITES, *READS, "ping", "plugins"]))))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(holder.get)
        except StoreUnavailableError as exc:
            log.warning("%s; will retry on the next request", exc)
        try:
            yield
        finally:
            await run_in_threadpool(holder.close)

    routes = [Route(f"/admin/{name}", endpoint(h, True), methods=["POST"])
              for name, h in WRITES.items()]
    routes += [Route(f"/admin/{name}", endpoint(h, False), methods=["POST"])
               for name, h in READS.items()]
    routes += [
        Route("/admin/ping", ping, methods=["GET"]),
        Route("/admin/plugins", plugins, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/admin/{rest:path}", unknown, methods=["GET", "POST", "PUT", "DELETE"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
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
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if not args.store:
        parser.error("--store URL is required (or set CLIPPER_STORE)")
    try:
        get_backend("state_stores", args.store.split("://", 1)[0])
    except PluginError as exc:
        parser.error(f"--store {args.store}: {exc}")
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    loaded = ", ".join(f"{p.name} ({p.distribution} {p.version})" for p in list_plugins())
    log.info("clipper management frontend on %s:%d, store %s; plugins: %s",
             args.host, args.port, args.store, loaded)
    token = os.environ.get(TOKEN_ENV) or None
    app = create_app(args.store, token=token, max_body_bytes=args.max_body_bytes)

    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                access_log=False)


if __name__ == "__main__":
    main()
