"""Prometheus metrics of the query frontend, collected at scrape time.

Nothing here runs per request.  The hot path keeps its plain counters
(:class:`.metrics.AppMetrics` per application, :class:`.queues.ModelQueue`
per model version, with their :class:`.metrics.Buckets`); a scrape reads
them through :class:`FrontendCollector`, a custom ``prometheus_client``
collector, and renders them in the text exposition format.

Served at ``GET /prometheus`` on the query port, and on the metrics port
(``--prometheus-port``, Clipper's 1390 by default, 0 = off) by
:class:`MetricsServer`, a tiny HTTP server on the frontend's own event loop
(so a scrape never reads the counters from another thread).

Metric names (labels in braces):

- ``clipper_app_requests_total{app}``: requests answered;
  ``clipper_app_predictions_total{app}``: inputs answered (an
  ``input_batch`` counts each input);
- ``clipper_app_defaults_total{app,reason}``: default outputs, ``reason``
  one of ``slo``, ``model_error``, ``no_model``;
- ``clipper_app_shed_total{app}``: inputs not queued because the model's
  queue held all the work it could serve in time (they are answered with
  the SLO default, so they are also in ``reason="slo"``);
- ``clipper_app_errors_total{app}``: requests refused with a 4xx;
- ``clipper_app_latency_seconds{app}``: request latency histogram;
- ``clipper_model_batches_total``, ``clipper_model_batch_size``,
  ``clipper_model_batch_latency_seconds`` (histograms),
  ``clipper_model_queue_length``, ``clipper_model_connected_replicas``,
  ``clipper_model_shed_total``, ``clipper_model_expired_total``,
  ``clipper_model_pipelined_batches_total``, all ``{model,version}``;
- ``clipper_connected_replicas``, ``clipper_cache_hits_total``,
  ``clipper_cache_misses_total``, ``clipper_cache_evictions_total``,
  ``clipper_cache_used_bytes``, ``clipper_config_revision``,
  ``clipper_store_healthy``; and the ``process_*`` metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from .metrics import Buckets

log = logging.getLogger("clipper.query")

#: the metrics port Clipper's exporter used
DEFAULT_PORT = 1390
PORT_ENV = "CLIPPER_PROMETHEUS_PORT"
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()
#: the longest request head the metrics port reads
_HEAD_LIMIT = 8192
_HEAD_TIMEOUT_S = 5.0


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _add(family: HistogramMetricFamily, values: list[str], buckets: Buckets) -> None:
    family.add_metric(values, buckets.cumulative(), buckets.sum)


class QueryFrontend(Protocol):
    """What the collector reads of :class:`.frontend.QueryFrontend` (not
    imported: the frontend imports this module)."""

    routes: Any
    pool: Any
    sync: Any
    cache: Any


class FrontendCollector:
    """Reads one query frontend's counters when Prometheus scrapes."""

    def __init__(self, frontend: QueryFrontend) -> None:
        self.frontend = frontend

    def collect(self) -> Iterator[Metric]:
        yield from self._apps()
        yield from self._models()
        yield from self._frontend()

    def _apps(self) -> Iterator[Metric]:
        routes = self.frontend.routes
        apps = list(routes.app_metrics.items()) if routes is not None else []
        requests = CounterMetricFamily("clipper_app_requests", "Requests answered", labels=["app"])
        predictions = CounterMetricFamily("clipper_app_predictions",
                                          "Inputs answered (each input of an input_batch)",
                                          labels=["app"])
        defaults = CounterMetricFamily("clipper_app_defaults", "Default outputs by reason",
                                       labels=["app", "reason"])
        shed = CounterMetricFamily("clipper_app_shed", "Inputs not queued: the model's queue "
                                   "was full (answered with the SLO default)", labels=["app"])
        errors = CounterMetricFamily("clipper_app_errors", "Requests refused with a 4xx",
                                     labels=["app"])
        latency = _histogram("clipper_app_latency_seconds", "Request latency", ["app"])
        for name, m in apps:
            requests.add_metric([name], m.latency.count)
            predictions.add_metric([name], m.count)
            for reason, count in m.defaults_by_reason().items():
                defaults.add_metric([name, reason], count)
            shed.add_metric([name], m.shed)
            errors.add_metric([name], m.errors)
            _add(latency, [name], m.latency)
        yield from (requests, predictions, defaults, shed, errors, latency)

    def _models(self) -> Iterator[Metric]:
        routes = self.frontend.routes
        queues = list(routes.queues.items()) if routes is not None else []
        labels = ["model", "version"]
        batches = CounterMetricFamily("clipper_model_batches", "Batches answered", labels=labels)
        sizes = _histogram("clipper_model_batch_size", "Inputs per batch", labels)
        latency = _histogram("clipper_model_batch_latency_seconds",
                             "Round trip of a batch to a replica", labels)
        queued = GaugeMetricFamily("clipper_model_queue_length", "Inputs waiting in the queue",
                                   labels=labels)
        replicas = GaugeMetricFamily("clipper_model_connected_replicas",
                                     "Replicas connected to this frontend", labels=labels)
        shed = CounterMetricFamily("clipper_model_shed", "Inputs not queued: the queue held all "
                                   "the work it could serve in time", labels=labels)
        expired = CounterMetricFamily("clipper_model_expired", "Inputs dropped unsent past "
                                      "their deadline", labels=labels)
        pipelined = CounterMetricFamily("clipper_model_pipelined_batches",
                                        "Batches sent to a replica busy with another",
                                        labels=labels)
        for (model, version), q in queues:
            values = [model, version]
            batches.add_metric(values, q.batches)
            _add(sizes, values, q.histograms.sizes)
            _add(latency, values, q.histograms.latencies)
            queued.add_metric(values, len(q.queue))
            replicas.add_metric(values, q.connected)
            shed.add_metric(values, q.shed)
            expired.add_metric(values, q.dropped + q.expired)
            pipelined.add_metric(values, q.pipelined)
        yield from (batches, sizes, latency, queued, replicas, shed, expired, pipelined)

    def _frontend(self) -> Iterator[Metric]:
        frontend = self.frontend
        pool, sync, cache = frontend.pool, frontend.sync, frontend.cache
        yield GaugeMetricFamily("clipper_connected_replicas", "Replicas connected",
                                value=len(pool.replicas) if pool is not None else 0)
        yield CounterMetricFamily("clipper_cache_hits", "Prediction cache hits",
                                  value=cache.hits)
        yield CounterMetricFamily("clipper_cache_misses", "Prediction cache misses",
                                  value=cache.misses)
        yield CounterMetricFamily("clipper_cache_evictions", "Prediction cache evictions",
                                  value=cache.evictions)
        yield GaugeMetricFamily("clipper_cache_used_bytes", "Bytes held by the cache",
                                value=cache.used)
        snap = sync.snapshot if sync is not None else None
        yield GaugeMetricFamily("clipper_config_revision", "Configuration revision served",
                                value=snap.revision if snap is not None else -1)
        yield GaugeMetricFamily("clipper_store_healthy", "1 when the state store answers",
                                value=1 if sync is not None and sync.healthy else 0)


def registry_for(frontend: QueryFrontend) -> CollectorRegistry:
    """A registry of its own for ``frontend`` (several may share a process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrontendCollector(frontend))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> tuple[int, bytes]:
    """``(200, text exposition)`` of ``registry``: a route of the table."""
    return 200, generate_latest(registry)


class MetricsServer:
    """``GET /metrics`` (or ``/prometheus``) in the text format on a port of
    its own, served on the frontend's event loop; one request per connection."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  reuse_address=True, limit=_HEAD_LIMIT)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("Prometheus metrics on http://%s:%d/metrics", self.host, self.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if method not in (b"GET", b"HEAD"):
                status, body, ctype = b"405 Method Not Allowed", b"use GET\n", b"text/plain"
            elif path in (b"/metrics", b"/prometheus", b"/"):
                status, body, ctype = b"200 OK", generate_latest(self.registry), CONTENT_TYPE
            else:
                status, body, ctype = b"404 Not Found", b"metrics are at /metrics\n", b"text/plain"
            writer.write(b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                         b"connection: close\r\n\r\n%s" % (
                             status, ctype, len(body), b"" if method == b"HEAD" else body))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
