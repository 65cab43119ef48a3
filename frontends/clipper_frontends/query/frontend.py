"""The query frontend assembled: every part, and its start and stop.

:class:`QueryFrontend` builds the parts of one query frontend process and
wires them together; it holds no query logic of its own.  In the order a
query meets them:

- an HTTP adapter (:mod:`.httpserver`, or :mod:`.asgi`) reads the request;
- :class:`.service.QueryService` routes, parses, admits, looks the cache up,
  enqueues and renders;
- :class:`.queues.ModelQueue` batches per model version;
- :class:`.replicas.ReplicaPool` sends batches to replicas and matches answers;
- :class:`.rpc_server.RPCServer` is the ZeroMQ socket.

Beside the path: :class:`.routes.Routes` (applications and queues, rebuilt
per configuration), :class:`.sync.ConfigSync` (the store's snapshot) and
:class:`.records.ReplicaRecords` (replica records and their leases).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
from typing import Any

import orjson

import clipper_core
from clipper_core import curve, plugins
from clipper_core.cache import PredictionCache
from clipper_core.interfaces import StateStore
from clipper_core.models import REPLICA_LEASE_S, Snapshot
from clipper_core.secrets import redact_url
from clipper_core.selection import build_policy
from clipper_core.stores.presence import FrontendPresence

from . import oip, openapi, prometheus
from .access import AccessLog
from .limits import DEFAULT_MAX_BATCH_INPUTS, DEFAULT_MAX_BODY_BYTES
from .queues import PIPELINE_DEPTH
from .records import ReplicaRecords
from .replicas import STUCK_BOUND_S, ReplicaPool
from .routes import Routes
from .rpc_server import RPCServer, max_frame_bytes
from .selection import SelectionLayer, is_update
from .service import QueryService
from .sync import ConfigSync

DEFAULT_MAX_BODY = DEFAULT_MAX_BODY_BYTES
DEFAULT_CACHE_SIZE = 32 * 1024 * 1024

log = logging.getLogger("clipper.query")


class QueryFrontend:
    """One query frontend process: its parts and their lifecycle.

    ``start()`` and ``stop()`` run on the event loop that serves it; an HTTP
    adapter calls them (the built-in server, or the ASGI lifespan).
    """

    def __init__(self, store: StateStore | str, *, rpc_host: str | None = None,
                 rpc_port: int = 7000, cache_size: int = DEFAULT_CACHE_SIZE,
                 frontend_id: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
                 replica_silence_s: float = 15.0, pm: Any = None,
                 freeze_gc: bool = False, replica_lease_s: float = REPLICA_LEASE_S,
                 pipeline_depth: int = PIPELINE_DEPTH,
                 max_batch_inputs: int = DEFAULT_MAX_BATCH_INPUTS,
                 replica_stuck_s: float = STUCK_BOUND_S, rpc_auth: str | None = None,
                 rpc_keys: curve.ClusterKeys | None = None,
                 rpc_max_frame_bytes: int | None = None, prometheus_port: int = 0,
                 prometheus_host: str = "0.0.0.0", prometheus_required: bool = True) -> None:
        if pipeline_depth < 1:
            raise ValueError(f"pipeline_depth must be at least 1, got {pipeline_depth}")
        self.pipeline_depth = pipeline_depth
        self.replica_lease_s = replica_lease_s
        self.frontend_id = frontend_id or f"{socket.gethostname()}-{os.getpid()}"
        self._store_arg = store
        self._pm = pm
        self._freeze_gc = freeze_gc
        self._replica_silence_s = replica_silence_s
        self._replica_stuck_s = replica_stuck_s
        self.store: StateStore | None = store if not isinstance(store, str) else None
        self.rpc = self._rpc_server(rpc_host, rpc_port, curve.rpc_auth_mode(rpc_auth), rpc_keys,
                                    rpc_max_frame_bytes or max_frame_bytes(max_body_bytes))
        self.cache = PredictionCache(cache_size)
        self.max_body = max_body_bytes
        self.max_batch_inputs = max_batch_inputs
        self.started_at = time.time()
        #: Prometheus: the registry read at scrape time; the metrics port (0:
        #: off; not ``prometheus_required``: a taken port is only a warning)
        self.prometheus = prometheus.registry_for(self)
        self._metrics_server = (prometheus.MetricsServer(self.prometheus, prometheus_host,
                                                         prometheus_port)
                                if prometheus_port else None)
        self._prometheus_required = prometheus_required
        #: one line per request when set (``--access-log``); closed at stop
        self.access_log: AccessLog | None = None
        # Made at start(), when the plugins and the store are known.
        self.pool: ReplicaPool | None = None
        self.routes: Routes | None = None
        self.service: QueryService | None = None
        self.sync: ConfigSync | None = None
        self.selection: SelectionLayer | None = None
        self.records: ReplicaRecords | None = None

    def _rpc_server(self, host: str | None, port: int, auth: str,
                    keys: curve.ClusterKeys | None, frame_bytes: int) -> RPCServer:
        """The RPC transport.  CURVE (the default) takes ``keys``, else those
        of the environment, else keys of this process alone (an embedded
        frontend: its replicas are given ``self.rpc_keys.replica_env(...)``).
        Without auth the port binds to loopback unless ``host`` is given."""
        if auth == curve.RPC_AUTH_NONE:
            host = host or "127.0.0.1"
            if host not in ("127.0.0.1", "::1", "localhost"):
                log.warning("RPC auth is off and the RPC port listens on %s: anyone who "
                            "reaches it can serve any model", host)
            self.rpc_keys = None
            return RPCServer(host, port, max_frame_bytes=frame_bytes)
        if not curve.curve_available():
            raise RuntimeError("this libzmq has no CURVE support (libsodium): install a "
                               "pyzmq wheel with it, or choose RPC auth 'none'")
        keys = keys or curve.ClusterKeys.from_env()
        if keys is None:
            log.warning("no RPC keys given: this frontend made its own, and only "
                        "replicas given them can connect")
            keys = curve.ClusterKeys.generate()
        self.rpc_keys = keys
        book = curve.ReplicaKeyBook(keys)
        learnt: list[int | None] = [None]

        def authorise(public_key: str) -> str | None:
            found = book.lookup(public_key)
            snap = self.routes.snapshot if self.routes is not None else None
            if found is None and snap is not None and snap.revision != learnt[0]:
                learnt[0] = snap.revision
                book.learn(snap.models)
                found = book.lookup(public_key)
            return curve.binding(*found) if found else None

        return RPCServer(host or "0.0.0.0", port, server_keys=keys.server,
                         authorise=authorise, max_frame_bytes=frame_bytes)

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        pm = self._pm or plugins.get_plugin_manager()
        policies = {name: b.factory for name, b in
                    plugins.backends("batching_policies", pm).items()}
        if self.store is None:
            self.store = plugins.open_store(str(self._store_arg), pm)
        store = self.store
        selection = self.selection = SelectionLayer(
            store, lambda name, models, params: build_policy(name, models, params, pm))
        # The parts call each other back: the lambdas look their targets up
        # when called, by which time all of them exist.
        service: QueryService
        pool = ReplicaPool(self.rpc.send, lambda n, v, t: routes.queue(n, v, t),
                           lambda r, c, why: records.changed(r, c, why),
                           silence_timeout=self._replica_silence_s,
                           stuck_bound_s=self._replica_stuck_s,
                           on_idle=lambda n, v: routes.release(n, v))
        routes = Routes(policies, pool.members, pool.send_batch,
                        lambda ev, out: service.on_result(ev, out),
                        lambda ev: service.on_dropped(ev), pipeline_depth=self.pipeline_depth,
                        in_use=pool.serves, on_release=pool.forget,
                        make_selector=selection.make_selector)
        service = QueryService(routes, self.cache, max_body_bytes=self.max_body,
                               poll=self.rpc.poll, max_batch_inputs=self.max_batch_inputs)
        records = ReplicaRecords(store, self.frontend_id, pool, lease_s=self.replica_lease_s,
                                 presence=FrontendPresence(store, self.frontend_id))
        sync = ConfigSync(store, routes.apply, period_s=min(1.0, self.replica_lease_s / 3),
                          every=records.tick, applied=records.applied)
        service.bind(loop)
        records.bind(loop)
        service.add_route(b"GET", "/metrics", self._metrics_route)
        service.add_route(b"GET", "/prometheus", lambda: prometheus.exposition(self.prometheus),
                          prometheus.CONTENT_TYPE)
        oip.OpenInference(service, lambda: self.readiness()[0] == 200,
                          clipper_core.__version__).install()  # /v2/...
        service.add_route(b"GET", "/healthz", lambda: (200, b'{"status":"ok"}'))
        service.add_route(b"GET", "/readyz", self._readyz_route)
        service.add_matched_route(b"POST", is_update,
                                  lambda path, body: selection.feedback(service, path, body))
        for method, path, handler, content_type in openapi.routes():  # /openapi.json, /docs
            service.add_route(method, path, handler, content_type)
        self.pool, self.routes, self.service = pool, routes, service
        self.records, self.sync = records, sync
        self.rpc.start(pool)
        pool.start()
        await sync.start()
        selection.start(loop)
        await self._start_metrics_server()
        if self._freeze_gc:
            # Everything alive now (modules, classes, the loaded configuration)
            # lives as long as the process: keep it out of the collector's
            # full passes, which otherwise stall the loop for milliseconds.
            gc.collect()
            gc.freeze()

    async def _start_metrics_server(self) -> None:
        if self._metrics_server is None:
            return
        try:
            await self._metrics_server.start()
        except OSError as exc:
            if self._prometheus_required:
                raise
            log.warning("Prometheus metrics port %d not served (%s); they stay at GET "
                        "/prometheus on the query port", self._metrics_server.port, exc)
            self._metrics_server = None

    async def stop(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self.access_log is not None:
            self.access_log.close()
        if self.sync is not None:
            self.sync.stop()
        if self.selection is not None:
            self.selection.stop()
        if self.pool is not None:
            self.pool.close()
        self.rpc.close()
        if self.records is not None:
            await self.records.forget_all()
        if self.store is not None and isinstance(self._store_arg, str):
            try:
                self.store.close()
            except Exception:  # noqa: S110 - closing at exit: nothing left to tell
                pass

    # -- routes besides predict ------------------------------------------------
    def readiness(self) -> tuple[int, dict[str, Any]]:
        if self.sync is None:
            return 503, {"ready": False, "store_healthy": False,
                         "configuration_loaded": False}
        ready, body = self.sync.readiness()
        return (200 if ready else 503), body

    def _readyz_route(self) -> tuple[int, bytes]:
        status, body = self.readiness()
        return status, orjson.dumps(body)

    def _metrics_route(self) -> tuple[int, bytes]:
        return 200, orjson.dumps(self.describe(), option=orjson.OPT_NON_STR_KEYS)

    def describe(self) -> dict[str, Any]:
        """The JSON of ``GET /metrics``."""
        sync, routes, pool = self.sync, self.routes, self.pool
        snap: Snapshot | None = sync.snapshot if sync else None
        return {
            "frontend_id": self.frontend_id,
            "uptime_s": round(time.time() - self.started_at, 1),
            "store": {"url": redact_url(getattr(self.store, "url", str(self._store_arg))),
                      "healthy": bool(sync and sync.healthy),
                      "error": sync.error if sync else "",
                      "revision": snap.revision if snap else None},
            "applications": ({name: m.describe() for name, m in routes.app_metrics.items()}
                             if routes else {}),
            "models": ({f"{n}:{v}": q.describe() for (n, v), q in routes.queues.items()}
                       if routes else {}),
            "cache": self.cache.stats(),
            "selection": self.selection.describe() if self.selection else {},
            "rpc": {"connected_replicas": len(pool.replicas) if pool else 0,
                    **self.rpc.describe(),
                    "replicas": pool.describe() if pool else []},
        }
