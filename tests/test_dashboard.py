"""The dashboard: its page and state endpoint, and the page live in headless Chromium
against a real local_process cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, free_port, wait_until
from starlette.testclient import TestClient

from clipper_core.models import Application, ModelVersion
from clipper_core.plugins import open_store
from clipper_frontends.dashboard import page, parse_urls
from clipper_frontends.management import create_app

TOKEN = "dash-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCREENSHOT = ROOT / "docs" / "dashboard.png"


class _FakeQuery(BaseHTTPRequestHandler):
    """A stand-in query frontend answering GET /metrics with fixed numbers."""

    body = json.dumps({"frontend_id": "q0", "uptime_s": 3.0,
                       "applications": {"hello": {"requests": 42, "default_outputs": 2,
                                                  "latency_ms": {"p50": 1.0, "p99": 4.0}}},
                       "rpc": {"connected_replicas": 1}, "store": {"healthy": True}}).encode()
    seen_auth: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        _FakeQuery.seen_auth.append(self.headers.get("authorization", ""))
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_query() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeQuery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _store():
    store = open_store("memory://")
    store.add_application(Application.create("hello", "doubles", "-1", 100000))
    store.add_model(ModelVersion.create("sum", "1", "doubles"))
    store.set_link("hello", "sum")
    return store


def test_page_is_one_self_contained_file():
    html = page().decode()
    assert html.startswith("<!doctype html>") and 'getContext("2d")' in html
    assert "sessionStorage" in html and "Authorization" in html and "/dashboard/state" in html
    for outside in ("src=\"http", "href=\"http", "src='http", "@import", "cdn"):
        assert outside not in html.lower()


def test_state_needs_the_token_and_shows_configuration_and_metrics(fake_query):
    _FakeQuery.seen_auth.clear()
    app = create_app(_store(), token=TOKEN, query_urls=[fake_query, "http://127.0.0.1:9"],
                     query_token="q-secret")
    with TestClient(app) as client:
        shell = client.get("/dashboard")
        assert shell.status_code == 200 and shell.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in shell.headers["content-security-policy"]
        assert client.get("/dashboard/state").status_code == 401
        assert client.get("/dashboard/state",
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
        state = client.get("/dashboard/state", headers=AUTH).json()
    assert [a["name"] for a in state["applications"]] == ["hello"]
    assert state["applications"][0]["linked_models"] == ["sum"]
    assert [m["model_name"] for m in state["models"]] == ["sum"]
    assert state["replicas"] == []
    ok, down = state["frontends"]
    assert ok["ok"] and ok["metrics"]["applications"]["hello"]["requests"] == 42
    assert not down["ok"] and down["url"] == "http://127.0.0.1:9" and down["error"]
    assert _FakeQuery.seen_auth == ["Bearer q-secret"]


def test_without_an_admin_token_the_dashboard_is_refused():
    with TestClient(create_app(_store(), token=None)) as client:
        refused = client.get("/dashboard/state")
    assert refused.status_code == 403
    assert "CLIPPER_ADMIN_TOKEN" in refused.json()["cause"]


def test_query_urls_are_normalised():
    assert parse_urls(["127.0.0.1:1337,http://h:1/", " ", "https://q.example/"]) == \
        ["http://127.0.0.1:1337", "http://h:1", "https://q.example"]


# ---------------------------------------------------------------------------
# In headless Chromium, against a real cluster
# ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A local_process cluster serving 'hello' (doubles) and 'words' (strings),
    plus a management frontend that knows the query frontend's address."""
    from clipper_core.connection import ClipperConnection
    from clipper_core.deployers.python import deploy_python_closure
    from clipper_core.plugins import get_container_manager

    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    query_port = free_port()
    cm = get_container_manager("local_process", cluster_name="dash", state_dir=tmp_path / "c",
                               store_url=store_url, clipper_query_port=query_port,
                               clipper_management_port=free_port(),
                               clipper_rpc_port=free_port(), admin_token=TOKEN)
    conn = ClipperConnection(cm)
    conn.start_clipper()
    dashboard = None
    try:
        conn.register_application("hello", "doubles", "-1", 200000)
        deploy_python_closure(conn, name="sum", version=1, input_type="doubles",
                              func=lambda xs: [float(sum(x)) for x in xs])
        conn.link_model_to_app("hello", "sum")
        conn.register_application("words", "strings", "none", 200000)
        deploy_python_closure(conn, name="upper", version=1, input_type="strings",
                              func=lambda xs: [x.upper() for x in xs])
        conn.link_model_to_app("words", "upper")
        conn.register_application("unserved", "doubles", "0", 200000)  # defaults only
        port = free_port()
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "clipper_frontends.management", "--store", store_url,
             "--port", str(port), "--query-url", f"127.0.0.1:{query_port}"],
            env={**os.environ, "CLIPPER_ADMIN_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200, timeout=30,
                   what="the dashboard's management frontend")
        yield {"url": url, "query": f"http://127.0.0.1:{query_port}"}
    finally:
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(timeout=30)
        conn.stop_all()


def _traffic(query: str, stop: threading.Event) -> None:
    """Predictions until ``stop``: answered ones, and a default output every
    few (an application with no model)."""
    with httpx.Client(base_url=query, timeout=10) as client:
        i = 0
        while not stop.is_set():
            client.post("/hello/predict", json={"input": [float(i % 7), 1.0]})
            client.post("/words/predict", json={"input": f"w{i % 5}"})
            if i % 4 == 0:
                client.post("/unserved/predict", json={"input": [1.0]})
            i += 1
            time.sleep(0.01)


def _number(text: str) -> float:
    digits = "".join(c for c in text if c.isdigit() or c == ".")
    return float(digits) if digits else 0.0


def test_dashboard_renders_live_numbers_in_headless_chromium(cluster, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed (scripts/test.sh installs Debian's 'chromium')")
    stop = threading.Event()
    sender = threading.Thread(target=_traffic, args=(cluster["query"], stop), daemon=True)
    sender.start()
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                headless=True, viewport={"width": 1280, "height": 900})
            try:
                tab = browser.new_page()
                tab.goto(f"{cluster['url']}/dashboard")
                tab.fill("#token", TOKEN)
                tab.click("#login button")
                # Polled from here: the page's CSP forbids the eval that
                # wait_for_function needs.
                wait_until(lambda: _number(tab.inner_text("#total-requests")) > 0,
                           timeout=60, interval=0.5, what="a non-zero request count")
                wait_until(lambda: _number(tab.inner_text("#total-qps")) > 0,
                           timeout=30, interval=0.5, what="a non-zero throughput")
                time.sleep(6)  # a few points on every chart
                assert tab.inner_text("#replica-count").strip() == "2 / 2"
                apps = tab.inner_text("#apps")
                assert "hello" in apps and "words" in apps and "sum" in apps
                assert "1 of 1 query frontend(s) reachable" in tab.inner_text("#frontends")
                assert tab.evaluate("sessionStorage.getItem('clipper-admin-token')") == TOKEN
                shot = tmp_path / "dashboard.png"
                tab.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                if os.environ.get("CLIPPER_SAVE_SCREENSHOTS"):
                    shutil.copyfile(shot, SCREENSHOT)
                for docs in (f"{cluster['url']}/docs", f"{cluster['query']}/docs"):
                    tab.goto(docs)  # the OpenAPI pages render their documents too
                    wait_until(lambda: tab.locator("#ops details").count() > 5, timeout=30,
                               interval=0.5, what=f"the operations on {docs}")
                    assert tab.inner_text("#error") == ""
                tab.goto(f"{cluster['url']}/dashboard")
                tab.evaluate("sessionStorage.setItem('clipper-admin-token', 'wrong')")
                tab.reload()
                tab.wait_for_selector("#login:not(.hidden)", timeout=10_000)
                assert "Missing or wrong bearer token" in tab.inner_text("#login-error")
            finally:
                browser.close()
    finally:
        stop.set()
        sender.join(timeout=30)
