"""Routes with parameters in the path, answered later (a pending answer):
both HTTP adapters serve them from the one route table."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import free_port
from starlette.testclient import TestClient

from clipper_core.plugins import open_store
from clipper_frontends.query import create_app
from clipper_frontends.query.frontend import QueryFrontend
from clipper_frontends.query.httpserver import QueryHTTPServer
from clipper_frontends.query.service import Pending, QueryService


def _install(service: QueryService) -> None:
    """``POST /echo/{word}``: answers after a loop turn; ``GET /now/{word}`` at once."""
    loop = asyncio.get_running_loop()

    def echo(path: str, body: bytes) -> Pending:
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, body.decode())
        word = path.rsplit("/", 1)[1]
        return Pending([fut, word], lambda values: (201, f'["{values[1]}", {values[0]}]'.encode()))

    service.add_matched_route(b"POST", lambda p: p.startswith("/echo/"), echo)
    service.add_matched_route(b"GET", lambda p: p.startswith("/now/"),
                              lambda path, body: (200, b'"%s"' % path[5:].encode()))


@pytest.fixture
def builtin() -> Iterator[str]:
    """A built-in server in a thread of this process, with the test routes."""
    port = free_port()
    store = open_store("memory://")
    started = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            server = QueryHTTPServer(QueryFrontend(store, rpc_host="127.0.0.1",
                                                   rpc_port=free_port()), "127.0.0.1", port)
            await server.start()
            assert server.frontend.service is not None
            _install(server.frontend.service)
            box["stop"] = asyncio.Event()
            started.set()
            await box["stop"].wait()
            await server.stop()

        box["loop"] = asyncio.new_event_loop()
        box["loop"].run_until_complete(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    yield f"http://127.0.0.1:{port}"
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(10)
    store.close()


def test_builtin_server_serves_matched_and_pending_routes(builtin: str) -> None:
    with httpx.Client(base_url=builtin) as http:
        r = http.post("/echo/hello", content=b'{"n": 1}')
        assert (r.status_code, r.json()) == (201, ["hello", {"n": 1}])
        assert http.get("/now/abc").json() == "abc"
        assert http.get("/echo/hello").status_code == 404   # no GET route there
        assert http.get("/healthz").json() == {"status": "ok"}   # exact routes first


def test_asgi_adapter_serves_matched_and_pending_routes() -> None:
    store = open_store("memory://")
    app = create_app(store, rpc_host="127.0.0.1", rpc_port=free_port())
    try:
        with TestClient(app) as client:
            service = app.frontend.service
            assert service is not None
            client.portal.call(_async_install, service)  # type: ignore[union-attr]
            r = client.post("/echo/there", content=b"[1]")
            assert (r.status_code, r.json()) == (201, ["there", [1]])
            assert client.get("/now/x").json() == "x"
    finally:
        store.close()


async def _async_install(service: QueryService) -> None:
    _install(service)
