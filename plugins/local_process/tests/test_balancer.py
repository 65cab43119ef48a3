"""The round-robin TCP load balancer, with real sockets and processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from .conftest import free_port, wait_until


def backend(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers():
    made = [backend("a"), backend("b")]
    yield made
    for s in made:
        s.shutdown()
        s.server_close()


@pytest.fixture
def balancer(servers):
    port = free_port()
    argv = [sys.executable, "-m", "clipper_local_process.balancer", "--listen",
            f"127.0.0.1:{port}"]
    for s in servers:
        argv += ["--backend", f"127.0.0.1:{s.server_address[1]}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200,
                   10, "balancer up")
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def get(port: int) -> str:
    # a new connection per request: the balancer balances connections
    with httpx.Client(timeout=5) as client:
        return client.get(f"http://127.0.0.1:{port}/").text


def test_round_robin_over_backends(balancer):
    answers = [get(balancer) for _ in range(6)]
    assert sorted(set(answers)) == ["a", "b"]
    assert answers.count("a") == 3 and answers.count("b") == 3


def test_dead_backend_is_skipped(balancer, servers):
    servers[1].shutdown()
    servers[1].server_close()
    assert [get(balancer) for _ in range(4)] == ["a"] * 4
