"""``X-Request-Id`` on every response of the query frontend (both HTTP
adapters) and the optional access log, plain or JSON, written off the loop."""

from __future__ import annotations

import io
import json
import socket
import time
from pathlib import Path

import pytest
from conftest import wait_until
from serving import Serving, write_model

from clipper_frontends.query import access

SUM = """
def predict(xs):
    return [str(sum(x)) for x in xs]
"""


def test_made_ids_are_unique_with_a_process_prefix() -> None:
    ids = [access.next_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert len({i.split(b"-")[0] for i in ids}) == 1


@pytest.mark.parametrize("given, kept", [
    (b"abc-123", True), (b"x" * 128, True), (b"x" * 129, False), (b"a b", False),
    (b"\xff", False), (b"", False)])
def test_a_client_id_is_kept_when_usable(given: bytes, kept: bool) -> None:
    assert (access.request_id(given) == given) is kept


def test_access_log_lines_in_json_and_plain() -> None:
    out = io.StringIO()
    log = access.AccessLog.to_stream(out, "json")
    log.log(b"POST", "/a/predict", 200, 0.00123, 42, b"rid-1")
    log.close()
    line = json.loads(out.getvalue())
    assert (line["method"], line["path"], line["status"], line["bytes"], line["request_id"]) == (
        "POST", "/a/predict", 200, 42, "rid-1")
    assert line["latency_ms"] == pytest.approx(1.23) and line["logger"] == "clipper.access"
    out = io.StringIO()
    log = access.AccessLog.to_stream(out, "plain")
    log.log(b"GET", "/metrics", 404, 0.0005, 7, b"rid-2")
    log.close()
    assert "GET /metrics 404 0.50ms 7B id=rid-2" in out.getvalue()


def test_a_full_buffer_drops_and_counts_instead_of_blocking() -> None:
    out = io.StringIO()
    log = access.AccessLog.to_stream(out, "plain", )
    log.buffer_lines = 0
    log.log(b"GET", "/x", 200, 0.0, 0, b"r")
    assert log.dropped == 1
    log.close()
    assert out.getvalue() == ""


@pytest.fixture(params=["builtin", "uvicorn"])
def serving(request: pytest.FixtureRequest, tmp_path: Path) -> Serving:
    s = Serving(tmp_path, http_server=request.param, max_body=4096,
                frontend_args=("--prometheus-port", "0", "--access-log",
                               str(tmp_path / "access.log"), "--log-format", "json"))
    s.start_frontend()
    s.deploy("a", "m")
    s.start_replica(write_model(tmp_path / "m", SUM), "m", "1")
    s.wait_connected("m")
    yield s  # type: ignore[misc]
    s.close()


def test_every_response_carries_a_request_id(serving: Serving) -> None:
    s = serving
    r = s.post("a", {"input": [1.0, 2.0]}, headers={"X-Request-Id": "client-7"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "client-7"
    made = {s.post("a", {"input": [1.0, float(i)]}).headers["x-request-id"] for i in range(5)}
    assert len(made) == 5
    for response in (s.post("a", b"{"), s.http.get("/nope"), s.http.get("/metrics"),
                     s.post("a", b"x" * 8000), s.http.get("/v2/health/live")):
        assert response.headers.get("x-request-id"), response


def test_access_log_names_each_request(serving: Serving) -> None:
    s = serving
    s.post("a", {"input": [3.0, 4.0]}, headers={"X-Request-Id": "logged-1"})
    s.post("a", b"{", headers={"X-Request-Id": "logged-2"})
    path = s.tmp / "access.log"

    def lines() -> list[dict[str, object]]:
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    wait_until(lambda: {"logged-1", "logged-2"} <= {x["request_id"] for x in lines()},
               timeout=5, what="access log lines")
    by_id = {x["request_id"]: x for x in lines()}
    assert by_id["logged-1"]["status"] == 200 and by_id["logged-1"]["path"] == "/a/predict"
    assert by_id["logged-2"]["status"] == 400 and by_id["logged-2"]["method"] == "POST"


def test_pipelined_requests_keep_their_own_ids(tmp_path: Path) -> None:
    s = Serving(tmp_path, frontend_args=("--prometheus-port", "0"))
    try:
        s.start_frontend()
        body = b'{"input": [1.0]}'
        req = b"".join(b"POST /x/predict HTTP/1.1\r\nhost: h\r\nx-request-id: p%d\r\n"
                       b"content-length: %d\r\n\r\n%s" % (i, len(body), body) for i in range(3))
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.sendall(req)
            data = b""
            deadline = time.monotonic() + 5
            while data.count(b"HTTP/1.1 404") < 3 and time.monotonic() < deadline:
                data += sock.recv(65536)
        assert [line for line in data.split(b"\r\n") if line.startswith(b"x-request-id")] == [
            b"x-request-id: p0", b"x-request-id: p1", b"x-request-id: p2"]
    finally:
        s.close()
