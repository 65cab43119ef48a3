"""The query frontend: ``POST /{app}/predict`` (SPEC.md section 2).

One event loop does everything: HTTP, the prediction cache, the model
queues and the ZeroMQ RPC socket.  By default HTTP is the frontend's own
server (:mod:`.httpserver`), which calls :meth:`QueryFrontend.route_for`,
:meth:`~QueryFrontend.start_query` and :meth:`~QueryFrontend.render`
directly.  The frontend is also an ASGI app (``--http-server uvicorn``):
there the predict route is a lean ASGI handler and the other routes
(``/metrics``, ``/healthz``, ``/readyz``) and the lifespan go through a
regular Starlette app.

The configuration (apps, links, current versions) is an in-memory snapshot
of the state store, replaced when the store's revision changes, so the hot
path never touches the store.  If the store goes away, the frontend keeps
serving the snapshot it has and reports the store as unhealthy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from array import array
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clipper_core import plugins, rpc
from clipper_core.cache import MISS, PredictionCache
from clipper_core.errors import ValidationError
from clipper_core.interfaces import StateStore
from clipper_core.models import (
    REPLICA_LEASE_S,
    Application,
    InputType,
    ModelVersion,
    Snapshot,
)

from .ingest import DoublesParser
from .queues import PIPELINE_DEPTH, Evaluation, ModelError, ModelQueue
from .rpc_server import ReplicaConn, RPCServer

log = logging.getLogger("clipper.query")

NO_MODEL = "No connected models found for query"
SLO_MISSED = "Failed to retrieve a prediction response within the specified latency SLO"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
RING = 4096

#: the value of a query's future when its SLO passed first
TIMEOUT = object()
_JSON_HEADERS = [(b"content-type", b"application/json")]
_METHOD_NOT_ALLOWED = orjson.dumps({"error": "Method not allowed",
                                   "cause": "use POST /{app}/predict"})


def _parse_output(out: bytes) -> Any:
    """A model's output string: its JSON value if it parses, else the string."""
    try:
        return orjson.loads(out)
    except orjson.JSONDecodeError:
        return out.decode("utf-8", "replace")


class AppMetrics:
    """Counters of one application; ``record`` is on the hot path, so cheap."""

    __slots__ = ("count", "defaults", "errors", "_lat", "_i", "_win_start", "_win_count",
                 "rate")

    def __init__(self) -> None:
        self.count = 0
        self.defaults = 0
        self.errors = 0
        self._lat = array("d", bytes(8 * RING))
        self._i = 0
        self._win_start = time.monotonic()
        self._win_count = 0
        self.rate = 0.0

    def record(self, latency_s: float, n: int, defaults: int) -> None:
        self.count += n
        self.defaults += defaults
        i = self._i
        self._lat[i % RING] = latency_s
        self._i = i + 1
        self._win_count += n

    def describe(self) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = now - self._win_start
        if elapsed >= 1.0:
            self.rate = self._win_count / elapsed
            self._win_start, self._win_count = now, 0
        n = min(self._i, RING)
        lats = sorted(self._lat[:n])

        def pct(p: float) -> float:
            return lats[min(n - 1, int(n * p))] * 1000 if n else 0.0

        return {"requests": self.count, "throughput_qps": round(self.rate, 2),
                "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
                               "max": lats[-1] * 1000 if n else 0.0, "samples": n},
                "default_outputs": self.defaults,
                "default_ratio": self.defaults / self.count if self.count else 0.0,
                "bad_requests": self.errors}


class DeadlineTimer:
    """Answers waiters with the SLO sentinel at their deadline.

    All queries of one application share one SLO, so their deadlines arrive
    in order: a deque and a single loop timer replace a timer per query.
    """

    __slots__ = ("_loop", "_entries", "_handle")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._entries: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, deadline: float, waiter: asyncio.Future[Any]) -> None:
        entries = self._entries
        # Answers come back roughly in order: drop those already answered
        # from the front, so the deque holds the queries in flight rather than
        # every query of the last SLO (3 s by default: tens of thousands of
        # futures, all for the garbage collector to walk).
        while entries and entries[0][1].done():
            entries.popleft()
        entries.append((deadline, waiter))
        if self._handle is None:
            self._handle = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = self._loop.time()
        entries = self._entries
        while entries:
            deadline, waiter = entries[0]
            if deadline > now:
                self._handle = self._loop.call_at(deadline, self._fire)
                return
            entries.popleft()
            if not waiter.done():
                waiter.set_result(TIMEOUT)


class AppRoute:
    """Everything the hot path needs about one application, computed once per
    configuration change."""

    __slots__ = ("app", "input_type", "deadline_s", "default_value", "model_name",
                 "queue", "metrics", "timer")

    def __init__(self, app: Application, queue: ModelQueue | None, metrics: AppMetrics,
                 timer: DeadlineTimer) -> None:
        self.timer = timer
        self.app = app
        self.input_type = app.input_type
        self.deadline_s = app.latency_slo_micros / 1e6
        self.default_value = _parse_output(app.default_output.encode())
        self.model_name = app.linked_model
        self.queue = queue
        self.metrics = metrics


class QueryFrontend:
    """State of one query frontend process; also the ASGI application."""

    def __init__(self, store: StateStore | str, *, rpc_host: str = "0.0.0.0",
                 rpc_port: int = 7000, cache_size: int = 32 * 1024 * 1024,
                 frontend_id: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
                 replica_silence_s: float = 15.0, pm: Any = None,
                 freeze_gc: bool = False, replica_lease_s: float = REPLICA_LEASE_S,
                 pipeline_depth: int = PIPELINE_DEPTH) -> None:
        if pipeline_depth < 1:
            raise ValueError(f"pipeline_depth must be at least 1, got {pipeline_depth}")
        self.pipeline_depth = pipeline_depth
        self._store_arg = store
        self._freeze_gc = freeze_gc
        #: replica records are renewed every third of this (see REPLICA_LEASE_S)
        self.replica_lease_s = replica_lease_s
        self.store: StateStore | None = store if not isinstance(store, str) else None
        self.frontend_id = frontend_id or f"{socket.gethostname()}-{os.getpid()}"
        self.max_body = max_body_bytes
        self.cache = PredictionCache(cache_size)
        self._doubles = DoublesParser()
        self._pm = pm
        self.rpc = RPCServer(rpc_host, rpc_port, get_queue=self._queue_for_replica,
                             on_replica=self._on_replica, silence_timeout=replica_silence_s)
        self.routes: dict[str, AppRoute] = {}
        self.queues: dict[tuple[str, str], ModelQueue] = {}
        self.snapshot: Snapshot | None = None
        self.pending: dict[tuple[str, str, bytes], Evaluation] = {}
        self.app_metrics: dict[str, AppMetrics] = {}
        self.store_healthy = False
        self.store_error = ""
        #: a replica record write failed: redo them all once the store answers
        self._replicas_stale = False
        self._policies: dict[str, Any] = {}
        self._next_query_id = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unwatch: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._reload_lock: asyncio.Lock | None = None
        self.started_at = time.time()
        self.starlette = Starlette(
            routes=[Route("/metrics", self.metrics_endpoint),
                    Route("/healthz", self.healthz),
                    Route("/readyz", self.readyz),
                    Route("/{app}/predict", self.method_not_allowed, methods=["GET", "PUT"])],
            lifespan=self._lifespan)

    # -- ASGI entry point --------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path.endswith("/predict") or path.endswith("/predict/"):
                await self.predict(scope, receive, send)
                return
        await self.starlette(scope, receive, send)

    # -- lifecycle ---------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reload_lock = asyncio.Lock()
        pm = self._pm or plugins.get_plugin_manager()
        self._policies = {name: b.factory for name, b in plugins.backends(
            "batching_policies", pm).items()}
        if self.store is None:
            self.store = plugins.open_store(str(self._store_arg), pm)
        self.rpc.start()
        await self.reload()
        loop = self._loop

        def changed(_revision: int) -> None:
            loop.call_soon_threadsafe(self._schedule_reload)

        try:
            self._unwatch = await loop.run_in_executor(None, self.store.watch, changed)
        except Exception as exc:  # the janitor keeps polling instead
            log.warning("cannot watch the store (%s); polling it", exc)
        self._tasks.append(loop.create_task(self._janitor()))
        if self._freeze_gc:
            # Everything alive now (modules, classes, the loaded configuration)
            # lives as long as the process: keep it out of the collector's
            # full passes, which otherwise stall the loop for milliseconds.
            gc.collect()
            gc.freeze()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._unwatch:
            with contextlib.suppress(Exception):
                self._unwatch()
        self.rpc.close()
        if self.store is not None and self._loop is not None:
            # Shared stores outlive this process: its replicas are no longer
            # served here, so their records must not stay "connected".
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._loop.run_in_executor(None, self._forget_replicas), 3.0)
        if self.store is not None and isinstance(self._store_arg, str):
            with contextlib.suppress(Exception):
                self.store.close()

    def _forget_replicas(self) -> None:
        """Delete this frontend's replica records (executor thread, at shut-down)."""
        store = self.store
        assert store is not None
        for rec in store.list_replicas():
            if rec.frontend == self.frontend_id:
                store.delete_replica(rec.model_name, rec.model_version, rec.replica_id,
                                     rec.frontend)

    def _schedule_reload(self) -> None:
        assert self._loop is not None
        self._loop.create_task(self.reload())

    async def _janitor(self) -> None:
        """Safety net for lost notifications, and the store's health check."""
        assert self._loop is not None and self.store is not None
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.replica_lease_s / 3))
            try:
                rev = await self._loop.run_in_executor(None, self.store.revision)
            except Exception as exc:
                self._mark_unhealthy(exc)
                continue
            if self._replicas_stale:
                await self._loop.run_in_executor(None, self._sync_replicas)
            if time.monotonic() - renewed >= self.replica_lease_s / 3:
                renewed = time.monotonic()
                await self._loop.run_in_executor(None, self._renew_replicas)
            if not self.store_healthy or self.snapshot is None or rev != self.snapshot.revision:
                await self.reload()

    def _mark_unhealthy(self, exc: Exception) -> None:
        if self.store_healthy:
            log.warning("state store unavailable, serving the last configuration: %s", exc)
        self.store_healthy = False
        self.store_error = str(exc)

    async def reload(self) -> None:
        """Load a new snapshot from the store and rebuild the routes."""
        assert self._loop is not None and self.store is not None and self._reload_lock
        async with self._reload_lock:
            try:
                snap = await self._loop.run_in_executor(None, self.store.snapshot)
            except Exception as exc:
                self._mark_unhealthy(exc)
                return
            if not self.store_healthy:
                log.info("state store reachable (revision %d)", snap.revision)
            self.store_healthy = True
            self.store_error = ""
            if self.snapshot is not None and snap.revision == self.snapshot.revision:
                return
            self._apply(snap)

    def _apply(self, snap: Snapshot) -> None:
        self.snapshot = snap
        # Batching policies and SLOs of queues whose model is now known.
        slo: dict[str, float] = {}
        for app in snap.applications.values():
            if app.linked_model:
                s = app.latency_slo_micros / 1e6
                slo[app.linked_model] = min(slo.get(app.linked_model, s), s)
        for (name, version), queue in self.queues.items():
            model = snap.models.get((name, version))
            if model is not None:
                self._set_policy(queue, model)
            queue.slo_s = slo.get(name, queue.slo_s)
        routes = {}
        for name, app in snap.applications.items():
            metrics = self.app_metrics.setdefault(name, AppMetrics())
            model = snap.linked_version(app)
            queue = self._queue(model.name, model.version, model.input_type) if model else None
            old = self.routes.get(name)
            timer = (old.timer if old is not None and old.deadline_s * 1e6 == app.latency_slo_micros
                     else DeadlineTimer(self._loop))  # type: ignore[arg-type]
            routes[name] = AppRoute(app, queue, metrics, timer)
        self.routes = routes
        log.info("configuration revision %d: %d apps, %d model versions", snap.revision,
                 len(routes), len(snap.models))

    def _set_policy(self, queue: ModelQueue, model: ModelVersion) -> None:
        wanted = model.policy_name
        if getattr(queue.policy, "clipper_name", None) == (wanted, model.batch_size):
            return
        factory = self._policies.get(wanted)
        if factory is None:
            log.error("model %s:%s asks for unknown batching policy %r; using aimd",
                      model.name, model.version, wanted)
            factory = self._policies["aimd"]
        policy = factory(model)
        with contextlib.suppress(AttributeError):
            policy.clipper_name = (wanted, model.batch_size)
        queue.policy = policy

    def _queue(self, name: str, version: str, input_type: InputType) -> ModelQueue:
        queue = self.queues.get((name, version))
        if queue is None:
            model = self.snapshot.models.get((name, version)) if self.snapshot else None
            queue = ModelQueue(name, version, int(input_type), self._policies["aimd"](model),
                               self.rpc.send_batch, self._on_result,
                               on_dropped=self._on_dropped,
                               pipeline_depth=self.pipeline_depth)
            if model is not None:
                self._set_policy(queue, model)
            self.queues[(name, version)] = queue
        return queue

    def _queue_for_replica(self, name: str, version: str, input_type: InputType) -> ModelQueue:
        return self._queue(name, version, input_type)

    def _on_replica(self, replica: ReplicaConn, connected: bool, reason: str) -> None:
        record = replica.to_model(self.frontend_id, connected)
        store = self.store
        assert self._loop is not None and store is not None
        if connected:
            self._loop.run_in_executor(None, self._write_replica, store.put_replica, record)
            plugins.notify("clipper_replica_connected", replica=record)
        else:
            self._loop.run_in_executor(None, self._write_replica, store.delete_replica,
                                       record.model_name, record.model_version,
                                       record.replica_id, self.frontend_id)
            plugins.notify("clipper_replica_lost", replica=record, reason=reason)

    def _write_replica(self, write: Any, *args: Any) -> None:
        """One replica record write (executor thread); a failed one is made
        good by :meth:`_sync_replicas` once the store answers again."""
        try:
            write(*args)
        except Exception as exc:
            self._replicas_stale = True
            log.warning("state store write failed (redone when the store is back): %s", exc)

    def _renew_replicas(self) -> None:
        """Renew the lease of every connected replica's record (executor
        thread), so readers can tell them from those of a killed frontend."""
        store = self.store
        assert store is not None
        for replica in list(self.rpc.replicas.values()):
            if self.rpc.replicas.get(replica.identity) is not replica:
                continue  # lost meanwhile (a record left by this race expires with its lease)
            try:
                store.put_replica(replica.to_model(self.frontend_id, True))
            except Exception as exc:
                self._replicas_stale = True
                log.warning("renewing replica records failed (redone when the store is "
                            "back): %s", exc)
                return

    def _sync_replicas(self) -> None:
        """Make this frontend's replica records match the replicas connected
        now (executor thread; called after record writes were lost)."""
        store = self.store
        assert store is not None
        self._replicas_stale = False

        def connected() -> dict[tuple[str, str, str], ReplicaConn]:
            return {(r.model_name, r.model_version, r.replica_id): r
                    for r in list(self.rpc.replicas.values())}
        try:
            for rec in store.list_replicas():
                key = (rec.model_name, rec.model_version, rec.replica_id)
                if rec.frontend == self.frontend_id and key not in connected():
                    store.delete_replica(*key, self.frontend_id)
            for conn in connected().values():
                store.put_replica(conn.to_model(self.frontend_id, True))
        except Exception as exc:
            self._replicas_stale = True
            log.warning("cannot resynchronise replica records yet: %s", exc)
        else:
            log.info("replica records resynchronised with the store")

    # -- the hot path ------------------------------------------------------
    def _on_result(self, ev: Evaluation, out: bytes) -> None:
        """A model answered one evaluation: cache it and wake its waiters."""
        if self.pending.get(ev.key) is ev:
            del self.pending[ev.key]
        if out.startswith(rpc.ERROR_PREFIX):
            value: Any = ModelError(rpc.decode_error(out) or "model error")
        else:
            value = _parse_output(out)
            self.cache.put(ev.key, value, len(out))
        for w in ev.waiters:
            if not w.done():
                w.set_result(value)

    def route_for(self, path: str) -> AppRoute:
        """The application of a ``/{app}/predict`` path; HTTPError 404 if none."""
        parts = path.strip("/").split("/")
        route = self.routes.get(parts[0]) if len(parts) == 2 else None
        if route is None:
            raise HTTPError(404, {"error": "Application not found",
                                  "cause": f"No application named {parts[0]!r} is registered"})
        return route

    def start_query(self, route: AppRoute, body: bytes) -> tuple[list[Any], bool]:
        """Parse a request body and start its evaluations: one waiter (a
        future, or a value already known) per input, and whether it was an
        ``input_batch``.  HTTPError 400 for a bad body."""
        try:
            return self._prepare(route, body)
        except ValidationError as exc:
            route.metrics.errors += 1
            raise HTTPError(400, {"error": exc.fields.get("error", "Json error"),
                                  "cause": exc.msg}) from None

    def render(self, route: AppRoute, values: list[Any], batch: bool, t0: float) -> bytes:
        """The response body for the answered ``values``; records the
        request in the app's metrics (``t0``: when it arrived)."""
        results = []
        defaults = 0
        for value in values:
            qid = self._next_query_id
            self._next_query_id = qid + 1
            if value is TIMEOUT:
                defaults += 1
                results.append({"query_id": qid, "output": route.default_value, "default": True,
                                "default_explanation": SLO_MISSED})
            elif type(value) is ModelError:
                defaults += 1
                results.append({"query_id": qid, "output": route.default_value, "default": True,
                                "default_explanation": f"Model error: {value.message}"})
            elif type(value) is _NoModel:
                defaults += 1
                results.append({"query_id": qid, "output": route.default_value, "default": True,
                                "default_explanation": NO_MODEL})
            else:
                results.append({"query_id": qid, "output": value, "default": False})
        payload = orjson.dumps({"batch_predictions": results} if batch else results[0])
        route.metrics.record(time.perf_counter() - t0, len(results), defaults)
        return payload

    def _on_dropped(self, ev: Evaluation) -> None:
        """A queue gave up on an evaluation nobody waits for any more."""
        if self.pending.get(ev.key) is ev:
            del self.pending[ev.key]

    async def predict(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """``POST /{app}/predict`` as ASGI (the uvicorn server)."""
        t0 = time.perf_counter()
        try:
            route = self.route_for(scope["path"])
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            waiters, batch = self.start_query(route, body)
        except HTTPError as exc:
            await _send_json(send, exc.status, exc.body)
            return
        values = [await w if isinstance(w, asyncio.Future) else w for w in waiters]
        payload = self.render(route, values, batch, t0)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(payload))]})
        await send({"type": "http.response.body", "body": payload})

    async def _read_body(self, scope: dict[str, Any], receive: Any, send: Any) -> bytes | None:
        limit = self.max_body
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _send_json(send, 413, {"error": "Payload too large",
                                                 "cause": f"request body of {declared} bytes "
                                                          f"exceeds the limit of {limit}"})
                    return None
                break
        message = await receive()
        body = message.get("body", b"")
        while message.get("more_body", False):
            message = await receive()
            body += message.get("body", b"")
            if len(body) > limit:
                await _send_json(send, 413, {"error": "Payload too large",
                                             "cause": f"request body exceeds the limit of "
                                                      f"{limit} bytes"})
                return None
        return body

    def _prepare(self, route: AppRoute, body: bytes) -> tuple[list[Any], bool]:
        """Parse and validate a request; start its evaluations.

        Returns one waiter (a future, or a value already known) per input.
        """
        input_type = route.input_type
        data = (self._doubles.single_input(body) if input_type is InputType.DOUBLES
                else None)
        if data is not None:
            return self._start(route, route.queue, [data], False)
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"request body is not valid JSON: {exc}") from None
        if type(request) is not dict:
            raise ValidationError("request body must be a JSON object with an \"input\" or "
                                  "\"input_batch\" field")
        if "input" in request:
            inputs = [request["input"]]
            batch = False
        elif "input_batch" in request:
            inputs = request["input_batch"]
            batch = True
            if type(inputs) is not list or not inputs:
                raise ValidationError("\"input_batch\" must be a non-empty list of inputs")
        else:
            raise ValidationError("request body has no \"input\" or \"input_batch\" field")
        encoded = [rpc.encode_input(input_type, x) for x in inputs]
        queue = route.queue
        version = request.get("version")
        if version is not None:
            queue = self._pinned_queue(route, version)
        return self._start(route, queue, encoded, batch)

    def _start(self, route: AppRoute, queue: ModelQueue | None, encoded: list[bytes],
               batch: bool) -> tuple[list[Any], bool]:
        """Start the evaluations of a parsed request's inputs (wire bytes)."""
        if queue is None or not queue.replicas:
            return [NO_MODEL_VALUE] * len(encoded), batch
        loop = self._loop
        assert loop is not None
        deadline = loop.time() + route.deadline_s
        cache = self.cache
        pending = self.pending
        add_timer = route.timer.add
        name, ver = queue.model_name, queue.model_version
        waiters: list[Any] = []
        admit = queue.can_meet(route.deadline_s)
        for data in encoded:
            key = (name, ver, data)
            hit = cache.get(key)
            if hit is not MISS:
                waiters.append(hit)
                continue
            if not admit and key not in pending:
                # Overloaded: the default now beats the default at the deadline.
                queue.shed += 1
                waiters.append(TIMEOUT)
                continue
            w = loop.create_future()
            add_timer(deadline, w)
            ev = pending.get(key)
            if ev is not None:
                ev.waiters.append(w)
                if deadline > ev.deadline:
                    ev.deadline = deadline
            else:
                ev = Evaluation(key, data, w, deadline)
                pending[key] = ev
                queue.queue.append(ev)
            waiters.append(w)
        # One dispatch for the whole request, so an input_batch travels as one batch.
        queue.dispatch()
        return waiters, batch

    def _pinned_queue(self, route: AppRoute, version: Any) -> ModelQueue | None:
        if isinstance(version, bool) or not isinstance(version, (str, int)):
            raise ValidationError("\"version\" must be a string")
        version = str(version)
        model = route.model_name
        snap = self.snapshot
        if model is None or snap is None or (model, version) not in snap.models:
            raise ValidationError(f"Requested version: {version} does not exist for model: "
                                  f"{model}", error="Query processing error")
        return self._queue(model, version, route.input_type)

    # -- other routes ------------------------------------------------------
    def answer_other(self, method: bytes, path: str) -> tuple[int, bytes]:
        """Every route but ``POST /{app}/predict``, for the built-in server."""
        if method in (b"GET", b"HEAD"):
            if path == "/metrics":
                return 200, orjson.dumps(self.describe(), option=orjson.OPT_NON_STR_KEYS)
            if path == "/healthz":
                return 200, b'{"status":"ok"}'
            if path == "/readyz":
                status, body = self.readiness()
                return status, orjson.dumps(body)
        if path.endswith("/predict") or path.endswith("/predict/"):
            return 405, _METHOD_NOT_ALLOWED
        return 404, orjson.dumps({"error": "Not found",
                                  "cause": f"no route {path}; use POST /{{app}}/predict"})

    def readiness(self) -> tuple[int, dict[str, Any]]:
        ready = self.store_healthy and self.snapshot is not None
        body = {"ready": ready, "store_healthy": self.store_healthy,
                "configuration_loaded": self.snapshot is not None}
        if self.store_error:
            body["error"] = self.store_error
        return (200 if ready else 503), body

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(orjson.dumps(self.describe(), option=orjson.OPT_NON_STR_KEYS),
                        media_type="application/json")

    def describe(self) -> dict[str, Any]:
        return {
            "frontend_id": self.frontend_id,
            "uptime_s": round(time.time() - self.started_at, 1),
            "store": {"url": getattr(self.store, "url", str(self._store_arg)),
                      "healthy": self.store_healthy, "error": self.store_error,
                      "revision": self.snapshot.revision if self.snapshot else None},
            "applications": {name: m.describe() for name, m in self.app_metrics.items()},
            "models": {f"{n}:{v}": q.describe() for (n, v), q in self.queues.items()},
            "cache": self.cache.stats(),
            "rpc": {"connected_replicas": len(self.rpc.replicas),
                    "malformed_messages": self.rpc.malformed},
        }

    async def healthz(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request) -> Response:
        status, body = self.readiness()
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    async def method_not_allowed(self, request: Request) -> Response:
        return Response(_METHOD_NOT_ALLOWED, status_code=405, media_type="application/json")


class HTTPError(Exception):
    """A request answered with an error status and a JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("cause", ""))
        self.status = status
        self.body = body


class _NoModel:
    __slots__ = ()


NO_MODEL_VALUE = _NoModel()


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(payload))]})
    await send({"type": "http.response.body", "body": payload})


def create_app(store: StateStore | str, **options: Any) -> QueryFrontend:
    """The query frontend as an ASGI app (its lifespan binds the RPC port)."""
    return QueryFrontend(store, **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m clipper_frontends.query",
                                     description="Clipper query frontend")
    parser.add_argument("--store", required=True, help="state store URL")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=1337)
    parser.add_argument("--rpc-host", default="0.0.0.0")
    parser.add_argument("--rpc-port", type=int, default=7000)
    parser.add_argument("--cache-size", type=int, default=32 * 1024 * 1024)
    parser.add_argument("--frontend-id", default=None)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY)
    parser.add_argument("--replica-silence-s", type=float, default=15.0)
    parser.add_argument("--replica-lease-s", type=float, default=REPLICA_LEASE_S)
    parser.add_argument("--pipeline-depth", type=int,
                        default=int(os.environ.get("CLIPPER_PIPELINE_DEPTH", PIPELINE_DEPTH)),
                        help="batches in flight per replica: a busy replica is sent one "
                             "more full batch, up to this many (1: Clipper's one at a time)")
    parser.add_argument("--http-server", choices=("builtin", "uvicorn"),
                        default=os.environ.get("CLIPPER_HTTP_SERVER", "builtin"),
                        help="the built-in httptools server (default) or uvicorn (ASGI)")
    parser.add_argument("--log-level", default=os.environ.get("CLIPPER_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if args.pipeline_depth < 1:
        parser.error(f"--pipeline-depth must be at least 1, got {args.pipeline_depth}")
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.store, rpc_host=args.rpc_host, rpc_port=args.rpc_port,
                     cache_size=args.cache_size, frontend_id=args.frontend_id,
                     max_body_bytes=args.max_body_bytes,
                     replica_silence_s=args.replica_silence_s,
                     replica_lease_s=args.replica_lease_s, freeze_gc=True,
                     pipeline_depth=args.pipeline_depth)
    log.info("plugins: %s", ", ".join(f"{p.name} {p.version or ''}".strip()
                                      for p in plugins.list_plugins()))
    if args.http_server == "builtin":
        from .httpserver import serve

        serve(app, args.host, args.port)
        return
    import uvicorn

    # No proxy-header rewriting, Server or Date headers: per-request work the
    # frontend does not need (measured: bench/HISTORY.md).
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools",
                lifespan="on", log_level="warning", access_log=False, proxy_headers=False,
                server_header=False, date_header=False, backlog=2048)


if __name__ == "__main__":
    # Run the package module's main, not this __main__ copy: the HTTP server
    # imports clipper_frontends.query, and its classes must be the same ones.
    from clipper_frontends.query import main as _main

    _main()
