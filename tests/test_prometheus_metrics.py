"""Prometheus metrics of the query frontend: counters kept on the hot path,
read at scrape time, at ``/prometheus`` and on the metrics port."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families
from serving import Serving, write_model

from clipper_frontends.query.metrics import AppMetrics, BatchMetrics, Buckets

SUM = """
def predict(xs):
    return [str(sum(x)) for x in xs]
"""
FAILS = """
def predict(xs):
    raise RuntimeError("boom")
"""


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition by (name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_buckets_are_cumulative_with_le_bounds() -> None:
    b = Buckets((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        b.observe(v)
    assert b.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert b.count == 4 and b.sum == pytest.approx(3.65)


def test_app_metrics_record_fills_the_latency_histogram() -> None:
    m = AppMetrics()
    m.record(0.002, 3, 1)
    m.record(0.2, 1, 0)
    assert m.latency.count == 2 and m.count == 4 and m.defaults == 1
    assert dict(m.latency.cumulative())["0.0025"] == 1
    batch = BatchMetrics()
    batch.observe(3, 0.01)
    assert dict(batch.sizes.cumulative())["4.0"] == 1 and batch.latencies.count == 1


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serving, int]]:
    tmp = tmp_path_factory.mktemp("prom")
    metrics_port = free_port()
    s = Serving(tmp, frontend_args=("--prometheus-port", str(metrics_port)))
    try:
        s.start_frontend()
        s.deploy("sum", "sum-model", batch_size=8)
        s.start_replica(write_model(tmp / "sum", SUM), "sum-model", "1")
        s.deploy("failing", "failing-model")
        s.start_replica(write_model(tmp / "fails", FAILS), "failing-model", "1")
        s.deploy("unlinked", "nothing", link=False)
        s.wait_connected("sum-model")
        s.wait_connected("failing-model")
        yield s, metrics_port
    finally:
        s.close()


def test_counters_histograms_and_gauges(serving: tuple[Serving, int]) -> None:
    s, _ = serving
    for i in range(7):
        assert s.post("sum", {"input": [float(i), 1.0]}).json()["default"] is False
    assert len(s.post("sum", {"input_batch": [[1.0, 2.0], [3.0, 4.0]]})
               .json()["batch_predictions"]) == 2
    assert s.post("sum", {"input": "x"}).status_code == 400
    assert s.post("failing", {"input": [1.0]}).json()["default"] is True
    assert s.post("unlinked", {"input": [1.0]}).json()["default"] is True
    r = s.http.get("/prometheus")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    found = samples(r.text)
    assert value(found, "clipper_app_requests_total", app="sum") == 8
    assert value(found, "clipper_app_predictions_total", app="sum") == 9
    assert value(found, "clipper_app_errors_total", app="sum") == 1
    assert value(found, "clipper_app_latency_seconds_count", app="sum") == 8
    assert value(found, "clipper_app_latency_seconds_bucket", app="sum", le="+Inf") == 8
    assert value(found, "clipper_app_defaults_total", app="sum", reason="slo") == 0
    assert value(found, "clipper_app_defaults_total", app="failing", reason="model_error") == 1
    assert value(found, "clipper_app_defaults_total", app="unlinked", reason="no_model") == 1
    assert value(found, "clipper_app_shed_total", app="sum") == 0
    model = {"model": "sum-model", "version": "1"}
    batches = value(found, "clipper_model_batches_total", **model)
    assert batches >= 8  # the batch of two may travel as one
    assert value(found, "clipper_model_batch_size_count", **model) == batches
    assert value(found, "clipper_model_batch_size_sum", **model) == 9
    assert value(found, "clipper_model_batch_latency_seconds_count", **model) == batches
    assert value(found, "clipper_model_queue_length", **model) == 0
    assert value(found, "clipper_model_connected_replicas", **model) == 1
    assert value(found, "clipper_connected_replicas") == 2
    assert value(found, "clipper_store_healthy") == 1
    assert value(found, "clipper_cache_misses_total") >= 9
    assert any(name == "process_cpu_seconds_total" for name, _ in found)


def test_metrics_port_serves_the_same_exposition(serving: tuple[Serving, int]) -> None:
    s, port = serving
    s.post("sum", {"input": [100.0, 1.0]})
    r = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert value(samples(r.text), "clipper_app_requests_total", app="sum") == value(
        samples(s.http.get("/prometheus").text), "clipper_app_requests_total", app="sum")
    assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404
    assert httpx.post(f"http://127.0.0.1:{port}/metrics").status_code == 405
    # the JSON stays at /metrics (Clipper compatibility)
    assert s.http.get("/metrics").json()["applications"]["sum"]["requests"] >= 1


def test_a_taken_default_port_is_a_warning_an_explicit_one_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """The default (1390) is skipped with a warning when taken, so several
    frontends share a host; a port asked for must be served."""
    import asyncio
    import socket

    from clipper_core.plugins import open_store
    from clipper_frontends.query.frontend import QueryFrontend

    async def start(required: bool, port: int) -> QueryFrontend:
        frontend = QueryFrontend(open_store("memory://"), rpc_auth="none",
                                 rpc_port=free_port(), prometheus_port=port,
                                 prometheus_host="127.0.0.1", prometheus_required=required)
        try:
            await frontend.start()
        finally:
            await frontend.stop()
        return frontend

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        asyncio.run(start(False, port))
        assert f"Prometheus metrics port {port} not served" in caplog.text
        with pytest.raises(OSError):
            asyncio.run(start(True, port))


def test_replica_serves_its_predict_time_on_its_metrics_port(
        serving: tuple[Serving, int]) -> None:
    s, _ = serving
    port = free_port()
    s.start_replica(write_model(s.tmp / "sum2", SUM), "sum-model", "1", replica_id="metered",
                    CLIPPER_METRICS_PORT=str(port))
    s.wait_connected("sum-model", 2)

    def scraped() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text)


    labels = {"model": "sum-model", "version": "1", "replica": "metered"}
    wait_until(lambda: value(scraped(), "clipper_replica_batches_total", **labels) == 0,
               what="the replica's metrics port")
    def metered_batches() -> float:
        # batches of 8 sent to the idle replicas at once: some go to this one
        s.post("sum", {"input_batch": [[float(i), time.time()] for i in range(64)]})
        return value(scraped(), "clipper_replica_batches_total", **labels)

    wait_until(metered_batches, what="a batch on the metered replica")
    found = scraped()
    assert value(found, "clipper_replica_predict_seconds_total", **labels) > 0
