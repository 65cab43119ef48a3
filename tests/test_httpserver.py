"""The built-in HTTP/1.1 server of the query frontend, over raw sockets:
pipelining, 100-continue, chunked bodies, closes, bad HTTP, limits, drain."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import Serving, write_model

SUM_MODEL = """
def predict(inputs):
    return [str(float(sum(x))) for x in inputs]
"""

SLOW_SUM = """
import time
def predict(inputs):
    time.sleep(0.4)
    return [str(float(sum(x))) for x in inputs]
"""

MAX_BODY = 16 * 1024


def _start(tmp: Path) -> Serving:
    s = Serving(tmp, max_body=MAX_BODY, http_server="builtin")
    s.start_frontend()
    s.deploy("sum", "summer")
    s.start_replica(write_model(tmp / "sum", SUM_MODEL), "summer", "1")
    s.deploy("slow", "slowsum", slo_micros=5_000_000)
    s.start_replica(write_model(tmp / "slow", SLOW_SUM), "slowsum", "1")
    s.wait_connected("summer")
    s.wait_connected("slowsum")
    return s


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    s = _start(tmp_path_factory.mktemp("httpserver"))
    try:
        yield s
    finally:
        s.close()


def _connect(s: Serving) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    return sock


def _post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Reader:
    """Reads HTTP/1.1 responses (content-length framed) off a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed before a response")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip()
                   for k, v in (line.split(":", 1) for line in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("closed mid-body")
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self) -> bool:
        """True when the server closed the connection (nothing more to read)."""
        try:
            return not self.buf and not self._fill()
        except ConnectionResetError:
            return True


def test_pipelined_requests_are_answered_in_order(serving: Serving) -> None:
    # The first request waits 0.4 s for its model; the two behind it are
    # ready at once, yet their answers must come after it.
    with _connect(serving) as sock:
        sock.sendall(_post("/slow/predict", b'{"input": [1, 2]}')
                     + _post("/sum/predict", b'{"input": [10, 20]}')
                     + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        r = _Reader(sock)
        outputs = [r.response() for _ in range(3)]
    assert [status for status, _, _ in outputs] == [200, 200, 200]
    assert json.loads(outputs[0][2])["output"] == 3.0
    assert json.loads(outputs[1][2])["output"] == 30.0
    assert json.loads(outputs[2][2]) == {"status": "ok"}


def test_keep_alive_serves_many_requests_on_one_connection(serving: Serving) -> None:
    with _connect(serving) as sock:
        r = _Reader(sock)
        for i in range(50):
            sock.sendall(_post("/sum/predict", b'{"input": [%d, 1]}' % i))
            status, headers, body = r.response()
            assert status == 200 and json.loads(body)["output"] == i + 1.0
            assert headers["content-type"] == "application/json"
            assert "connection" not in headers


def test_expect_100_continue(serving: Serving) -> None:
    body = b'{"input": [4, 5]}'
    with _connect(serving) as sock:
        head = _post("/sum/predict", b"", "Expect: 100-continue").replace(
            b"Content-Length: 0", b"Content-Length: %d" % len(body))
        sock.sendall(head)
        r = _Reader(sock)
        assert r.response()[0] == 100
        sock.sendall(body)
        status, _, out = r.response()
    assert status == 200 and json.loads(out)["output"] == 9.0


def test_100_continue_waits_for_the_earlier_answer(serving: Serving) -> None:
    # A request with "Expect: 100-continue" pipelined behind one still being
    # answered: the interim 100 must not come before the first answer (the
    # client would take it for that answer's status), but right after it.
    # (Each test asks the slow model something new: a cached answer would not
    # keep the connection busy.)
    body = b'{"input": [2, 2]}'
    head = _post("/sum/predict", b"", "Expect: 100-continue").replace(
        b"Content-Length: 0", b"Content-Length: %d" % len(body))
    with _connect(serving) as sock:
        sock.sendall(_post("/slow/predict", b'{"input": [5, 7]}') + head)
        r = _Reader(sock)
        first = r.response()
        interim = r.response()
        sock.sendall(body)
        second = r.response()
    assert (first[0], json.loads(first[2])["output"]) == (200, 12.0)
    assert interim[0] == 100
    assert (second[0], json.loads(second[2])["output"]) == (200, 4.0)


def test_no_100_continue_when_the_body_came_without_waiting(serving: Serving) -> None:
    # The client sent its body at once: no interim 100 is owed any more.
    body = b'{"input": [2, 2]}'
    with _connect(serving) as sock:
        sock.sendall(_post("/slow/predict", b'{"input": [5, 8]}')
                     + _post("/sum/predict", body, "Expect: 100-continue"))
        r = _Reader(sock)
        first, second = r.response(), r.response()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        third = r.response()
    assert (first[0], json.loads(first[2])["output"]) == (200, 13.0)
    assert (second[0], json.loads(second[2])["output"]) == (200, 4.0)
    assert third[0] == 200 and json.loads(third[2]) == {"status": "ok"}


def test_chunked_request_body(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"POST /sum/predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"8\r\n{\"input\"\r\n9\r\n: [1, 41]\r\n1\r\n}\r\n0\r\n\r\n")
        status, _, out = _Reader(sock).response()
    assert status == 200 and json.loads(out)["output"] == 42.0


def test_connection_close_and_http_1_0(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(_post("/sum/predict", b'{"input": [1]}', "Connection: close"))
        r = _Reader(sock)
        status, headers, _ = r.response()
        assert status == 200 and headers["connection"] == "close"
        assert r.closed()
    with _connect(serving) as sock:
        sock.sendall(_post("/sum/predict", b'{"input": [1]}').replace(b"HTTP/1.1", b"HTTP/1.0"))
        r = _Reader(sock)
        assert r.response()[0] == 200
        assert r.closed()


def test_malformed_http_is_400_and_closed_others_unaffected(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        r = _Reader(sock)
        status, headers, body = r.response()
        assert status == 400 and "malformed HTTP" in json.loads(body)["cause"]
        assert r.closed()
    assert serving.post("sum", {"input": [2.0]}).json()["output"] == 2.0


def test_bad_content_length_is_400(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"POST /sum/predict HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n")
        r = _Reader(sock)
        assert r.response()[0] == 400
        assert r.closed()


def test_chunked_body_over_the_limit_is_413_and_closed(serving: Serving) -> None:
    chunk = b"1,"
    with _connect(serving) as sock:
        sock.sendall(b"POST /sum/predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        r = _Reader(sock)
        data = b'{"input": [' + chunk * (MAX_BODY // 2 + 100)
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before it has read everything
        status, headers, body = r.response()
        assert status == 413 and headers["connection"] == "close"
        assert "limit" in json.loads(body)["cause"]
    assert serving.post("sum", {"input": [3.0]}).json()["output"] == 3.0


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"POST /sum/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n")
        status, _, body = _Reader(sock).response()
    assert status == 413 and "999999999" in json.loads(body)["cause"]


def test_overlong_url_is_414(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, _ = _Reader(sock).response()
    assert status == 414


def test_head_unknown_route_and_query_string(serving: Serving) -> None:
    with _connect(serving) as sock:
        r = _Reader(sock)
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n")
        # HEAD: the length of the body a GET would get, but no body
        while b"\r\n\r\n" not in r.buf:
            r._fill()
        head, r.buf = r.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200") and b"content-length: 15" in head
        status, _, body = r.response()
        assert status == 404 and "/nowhere" in json.loads(body)["cause"]
        sock.sendall(_post("/sum/predict?trace=1", b'{"input": [6]}'))
        assert json.loads(r.response()[2])["output"] == 6.0


def test_client_gone_mid_request_harms_nobody(serving: Serving) -> None:
    for _ in range(5):
        sock = _connect(serving)
        sock.sendall(_post("/slow/predict", b'{"input": [%d]}' % time.monotonic_ns()))
        sock.close()
        half = _connect(serving)
        half.sendall(_post("/sum/predict", b'{"input": [1, 2, 3]}')[:-5])
        half.close()
    assert serving.post("sum", {"input": [5.0]}).json()["output"] == 5.0
    time.sleep(0.5)  # the slow answers arrive for clients that left
    assert serving.post("slow", {"input": [5.0, 1.0]}).json()["output"] == 6.0


def test_sigterm_drains_requests_in_flight(tmp_path: Path) -> None:
    s = _start(tmp_path)
    try:
        results: list[tuple[int, dict[str, str], bytes]] = []

        def ask() -> None:
            with _connect(s) as sock:
                sock.sendall(_post("/slow/predict", b'{"input": [7, 8]}'))
                results.append(_Reader(sock).response())

        t = threading.Thread(target=ask)
        t.start()
        time.sleep(0.15)  # the query is now waiting for the slow model
        assert s.frontend is not None
        s.frontend.send_signal(signal.SIGTERM)
        t.join(10)
        assert results, "the request in flight was not answered"
        status, headers, body = results[0]
        assert status == 200 and json.loads(body)["output"] == 15.0
        assert headers.get("connection") == "close"
        assert s.frontend.wait(10) == 0
    finally:
        s.close()
