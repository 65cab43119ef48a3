"""A real Prometheus server started with a local cluster scrapes it: a PromQL
query through its HTTP API returns the requests the test sent."""

from __future__ import annotations

import shutil

import httpx
import pytest
from clipper_local_process import LocalProcessContainerManager
from clipper_local_process import prometheus as prom
from clipper_local_process.clusters import ClusterConfig

from clipper_core.connection import ClipperConnection
from clipper_core.deployers.python import create_endpoint
from clipper_core.errors import ClusterStartError

from .conftest import manager_options, wait_until

REQUESTS = 17


def test_scrape_config_names_every_query_frontend() -> None:
    config = ClusterConfig(cluster_name="c", cluster_id="x", host="127.0.0.1", query_port=2000,
                           management_port=3000, rpc_port=4000, prometheus_port=1390,
                           num_frontends=2, store_url="memory://", cache_size=1,
                           python="python3")
    [job] = prom.scrape_config(config)["scrape_configs"]  # type: ignore[misc]
    assert job["metrics_path"] == "/prometheus"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:2001", "127.0.0.1:2002"]


def test_a_missing_binary_is_a_clear_start_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prom.BINARY_ENV, "")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(ClusterStartError, match="apt-get install prometheus"):
        prom.binary()


@pytest.mark.prometheus
@pytest.mark.slow
def test_prometheus_counts_the_requests_sent(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (Debian: apt-get install "
                    "prometheus; .ci/run installs it)")
    monkeypatch.setattr(prom, "SCRAPE_INTERVAL", "1s")
    cm = LocalProcessContainerManager(**manager_options(tmp_path, "prom"))
    conn = ClipperConnection(cm)
    try:
        cm.start_clipper(prometheus_port=0)
        conn.connect()
        create_endpoint(conn, "counted", "doubles", lambda xs: [float(sum(x)) for x in xs])
        query_url = f"http://{conn.get_query_addr()}/counted/predict"
        wait_until(lambda: not httpx.post(query_url, json={"input": [-1.0]}).json()["default"],
                   30, "the model to answer")
        metrics = f"http://{conn.get_query_addr()}/metrics"
        before = httpx.get(metrics).json()["applications"]["counted"]["requests"]
        for i in range(REQUESTS):
            assert httpx.post(query_url, json={"input": [float(i)]}).status_code == 200
        seen: list[float] = []
        wait_until(lambda: seen.append(_requests(cm.prometheus_port)) or
                   seen[-1] == before + REQUESTS, 30,
                   f"Prometheus to scrape {before + REQUESTS} requests (seen: {seen[-3:]})", 0.25)
    finally:
        conn.stop_all()
    assert not any(p.name == prom.PROCESS and p.alive for p in cm._table().select())


def _requests(port: int) -> float:
    """``clipper_app_requests_total`` of the app as Prometheus last scraped
    it, through a PromQL query of its HTTP API (-1: not scraped yet)."""
    r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query",
                  params={"query": 'sum(clipper_app_requests_total{app="counted"})'})
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else -1.0
