"""The query frontend's HTTP limits on a real process: each abusive client
gets its status in time, and meanwhile a normal client is answered quickly."""

from __future__ import annotations

import json
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import free_port
from serving import Serving, write_model

from clipper_frontends import serving_limits
from clipper_frontends.query.limits import HTTPLimits, env_name

SUM_MODEL = """
def predict(inputs):
    return [str(float(sum(x))) for x in inputs]
"""

HEAD_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 1.5
KEEP_ALIVE_S = 2.0
MAX_CONNECTIONS = 60
MAX_BATCH = 100
#: the sweep runs each second: a deadline is enforced within a second of it
SWEEP_S = 1.0
#: p99 of a normal client during a probe (generous for a loaded 2-core machine)
P99_S = 0.050


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    tmp = tmp_path_factory.mktemp("limits")
    s = Serving(tmp, http_server="builtin", frontend_args=(
        "--header-timeout-s", str(HEAD_TIMEOUT_S), "--body-timeout-s", str(BODY_TIMEOUT_S),
        "--keep-alive-s", str(KEEP_ALIVE_S), "--max-connections", str(MAX_CONNECTIONS),
        "--max-batch-inputs", str(MAX_BATCH), "--retry-after-s", "2"))
    try:
        s.start_frontend()
        s.deploy("sum", "summer")
        s.deploy("fsum", "fsummer", input_type="floats")
        s.deploy("isum", "isummer", input_type="ints")
        model = write_model(tmp / "sum", SUM_MODEL)
        s.start_replica(model, "summer", "1")
        s.start_replica(model, "fsummer", "1", input_type="floats")
        s.start_replica(model, "isummer", "1", input_type="ints")
        for name in ("summer", "fsummer", "isummer"):
            s.wait_connected(name)
        yield s
    finally:
        s.close()


# -- helpers -------------------------------------------------------------------
def _connect(s: Serving, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", s.port), timeout=timeout)


#: bytes read past the response returned, by socket (weak: an id can be reused)
_LEFT: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (content-length framed) off ``sock``."""
    buf = _LEFT.pop(sock, b"")
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a response: {buf[:200]!r}")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-body")
        rest += data
    _LEFT[sock] = rest[n:]
    return int(lines[0].split()[1]), headers, rest[:n]


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@contextmanager
def normal_client(s: Serving) -> Iterator[list[float]]:
    """A client asking for predictions on one keep-alive connection all
    along; yields the list its latencies go into (seconds)."""
    latencies: list[float] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with _connect(s) as sock:
                i = 0
                while not stop.is_set():
                    i += 1
                    t0 = time.perf_counter()
                    sock.sendall(_post("/sum/predict", b'{"input": [%d, 0.5]}' % i))
                    status, _, body = _response(sock)
                    latencies.append(time.perf_counter() - t0)
                    assert status == 200 and json.loads(body)["output"] == i + 0.5, body
                    time.sleep(0.005)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield latencies
    finally:
        deadline = time.monotonic() + 5
        while len(latencies) < 40 and not errors and time.monotonic() < deadline:
            time.sleep(0.01)  # a probe refused at once: measure a little longer
        stop.set()
        thread.join(10)
    assert not errors, f"the normal client failed: {errors[0]!r}"
    assert len(latencies) >= 20, f"the normal client got only {len(latencies)} answers"
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    assert p99 < P99_S, f"normal p99 {p99 * 1000:.1f} ms during the probe (max {max(ordered)})"


def _refused(sock: socket.socket, status: int) -> dict[str, str]:
    got, headers, body = _response(sock)
    assert got == status, body
    assert headers["connection"] == "close"
    assert json.loads(body)["cause"]
    return headers


# -- head limits ---------------------------------------------------------------
def test_endless_header_is_refused_after_the_cap_unread(serving: Serving) -> None:
    # One header that would be 200 MB: refused once the head passes its cap;
    # the rest is not read, so the client can hardly send any of it.
    with normal_client(serving), _connect(serving, timeout=3) as sock:
        t0 = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
        chunk = b"a" * 65536
        sent = 0
        try:
            while sent < 200 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        _refused(sock, 431)
        took = time.monotonic() - t0
    assert sent < 32 * 1024 * 1024, f"the server read {sent} bytes of one header"
    assert took < 5


def test_too_many_headers_is_431(serving: Serving) -> None:
    with normal_client(serving), _connect(serving) as sock:
        headers = "".join(f"X-{i}: v\r\n" for i in range(10_000))
        try:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        _refused(sock, 431)
    with _connect(serving) as sock:  # a count over the limit, within the bytes
        sock.sendall(("GET /healthz HTTP/1.1\r\n" + "X: v\r\n" * 101 + "\r\n").encode())
        assert "101 headers" in json.loads(_response(sock)[2])["cause"]


def test_one_long_header_is_431_and_a_large_head_within_limits_is_served(
        serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
        _refused(sock, 431)
    with _connect(serving) as sock:  # 15 KiB of headers in 90 lines: fine
        head = "".join(f"X-{i}: {'v' * 160}\r\n" for i in range(90))
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: t\r\n{head}\r\n".encode())
        assert _response(sock)[0] == 200


def test_overlong_url_is_414(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        _refused(sock, 414)


# -- deadlines -----------------------------------------------------------------
def _trickle(sock: socket.socket, data: bytes, every: float, until: float) -> None:
    """Send ``data`` a byte at a time until the server answers (or ``until``)."""
    sock.settimeout(every)
    for byte in data:
        if time.monotonic() > until:
            return
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(1, socket.MSG_PEEK):
                return  # an answer is there
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return


@pytest.mark.parametrize("every", [0.2, 1.2])
def test_slow_head_gets_408_at_the_head_deadline(serving: Serving, every: float) -> None:
    with normal_client(serving), _connect(serving) as sock:
        t0 = time.monotonic()
        _trickle(sock, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X: v\r\n" * 100,
                 every, t0 + 10)
        sock.settimeout(5)
        _refused(sock, 408)
        took = time.monotonic() - t0
        assert _closed(sock)
    assert HEAD_TIMEOUT_S - 0.1 < took < HEAD_TIMEOUT_S + SWEEP_S + 1.0


def test_silent_new_connection_gets_408(serving: Serving) -> None:
    with _connect(serving) as sock:
        t0 = time.monotonic()
        _refused(sock, 408)
        assert time.monotonic() - t0 < HEAD_TIMEOUT_S + SWEEP_S + 1.0


def test_slow_body_gets_408_at_the_body_deadline(serving: Serving) -> None:
    with normal_client(serving), _connect(serving) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /sum/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
        _trickle(sock, b'{"input": [1.0' + b" " * 90 + b"]}", 0.2, t0 + 10)
        sock.settimeout(5)
        _refused(sock, 408)
        took = time.monotonic() - t0
    assert BODY_TIMEOUT_S - 0.1 < took < BODY_TIMEOUT_S + SWEEP_S + 1.0


def test_idle_keep_alive_connection_is_closed(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _response(sock)[0] == 200
        t0 = time.monotonic()
        assert _closed(sock)
        took = time.monotonic() - t0
    assert KEEP_ALIVE_S - 0.1 < took < KEEP_ALIVE_S + SWEEP_S + 1.0


# -- connections ---------------------------------------------------------------
def test_connections_over_the_cap_get_503_with_retry_after(serving: Serving) -> None:
    held: list[socket.socket] = []
    try:
        with normal_client(serving):
            statuses = []
            t0 = time.monotonic()
            for _ in range(MAX_CONNECTIONS + 10):
                sock = _connect(serving)
                held.append(sock)
            # every connection asks for something; those over the cap were
            # answered at once, the others now
            for sock in held:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            for sock in held:
                status, headers, _ = _response(sock)
                statuses.append(status)
                if status == 503:
                    assert headers["retry-after"] == "2"
                    assert headers["connection"] == "close"
            assert time.monotonic() - t0 < HEAD_TIMEOUT_S, "too slow to test the cap"
    finally:
        for sock in held:
            sock.close()
    # the normal client, the fixture's client and the held ones share the cap
    assert statuses.count(503) >= 10
    assert statuses.count(200) >= MAX_CONNECTIONS - 5
    assert set(statuses) == {200, 503}
    time.sleep(0.5)
    assert serving.post("sum", {"input": [1.0]}).status_code == 200


def test_file_limit_is_raised_and_the_cap_derived_from_it() -> None:
    nofile = serving_limits.raise_nofile_limit()
    import resource

    assert nofile == resource.getrlimit(resource.RLIMIT_NOFILE)[1] or nofile == 1 << 20
    assert serving_limits.connection_cap(1024) == 768
    assert serving_limits.connection_cap(20000) == 18000
    assert HTTPLimits().connections(1024) == 768
    assert HTTPLimits(max_connections=5).connections(1024) == 5


# -- bodies ----------------------------------------------------------------------
def test_input_batch_over_the_cap_is_413_with_the_cause(serving: Serving) -> None:
    ok = serving.post("sum", {"input_batch": [[float(i)] for i in range(MAX_BATCH)]})
    assert ok.status_code == 200 and len(ok.json()["batch_predictions"]) == MAX_BATCH
    r = serving.post("sum", {"input_batch": [[1]] * (MAX_BATCH + 1)})
    assert r.status_code == 413
    assert f"{MAX_BATCH + 1} inputs; the limit is {MAX_BATCH}" in r.json()["cause"]
    r = serving.post("sum", {"input_batch": ["a"] * (MAX_BATCH + 1)})
    assert r.status_code == 413


def test_a_million_inputs_are_refused_before_parsing(serving: Serving) -> None:
    body = b'{"input_batch": [' + b"[1.0]," * 999_999 + b"[1.0]]}"
    with normal_client(serving):
        t0 = time.monotonic()
        r = serving.post("sum", body)
        took = time.monotonic() - t0
    assert r.status_code == 413 and "inputs" in r.json()["cause"]
    assert took < 2


# -- small fixes -----------------------------------------------------------------
@pytest.mark.parametrize("app", ["sum", "fsum", "isum"])
def test_booleans_are_not_numbers(serving: Serving, app: str) -> None:
    for body in ({"input": [True, False]}, {"input": [1, True]},
                 {"input_batch": [[1, 2], [False]]}):
        r = serving.post(app, body)
        assert r.status_code == 400, (app, body, r.text)
        assert "bool" in r.json()["cause"]
    assert serving.post(app, {"input": [1, 0]}).status_code == 200
    assert serving.post(app, {"input": [1, 2], "version": "1"}).status_code == 200


@pytest.mark.parametrize("method", [b"TRACE", b"PATCH", b"PUT", b"DELETE", b"OPTIONS"])
def test_unserved_methods_get_501_with_a_reason(serving: Serving, method: bytes) -> None:
    with _connect(serving) as sock:
        sock.sendall(method + b" /sum/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"
                     b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = _response(sock)
        assert status == 501 and headers["allow"] == "GET, HEAD, POST"
        assert method.decode() in json.loads(body)["cause"]
        assert _response(sock)[0] == 200  # the connection goes on


def test_connect_gets_501_and_a_close(serving: Serving) -> None:
    with _connect(serving) as sock:
        sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        status, _, body = _response(sock)
        assert status == 501 and "CONNECT" in json.loads(body)["cause"]
        assert "callback" not in body.decode()
        assert _closed(sock)


def test_get_on_predict_is_405_with_allow(serving: Serving) -> None:
    r = serving.http.get("/sum/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


# -- settings ----------------------------------------------------------------------
def test_limits_from_flags_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from clipper_frontends.query import limits

    monkeypatch.setenv(env_name("max_headers"), "7")
    monkeypatch.setenv("CLIPPER_HEADER_TIMEOUT_S", "2.5")
    parser = argparse.ArgumentParser()
    limits.add_arguments(parser)
    got = HTTPLimits.from_args(parser.parse_args(["--max-header-bytes", "1000"]))
    assert (got.max_headers, got.header_timeout_s, got.max_header_bytes) == (7, 2.5, 1000)
    assert got.keep_alive_s == 75.0 and got.max_batch_inputs == 10_000
    with pytest.raises(ValueError, match="max_headers"):
        HTTPLimits(max_headers=0)


def test_management_uvicorn_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = serving_limits.uvicorn_settings(1024)
    assert settings == {"http": "h11", "h11_max_incomplete_event_size": 16384,
                        "limit_concurrency": 768, "timeout_keep_alive": 75, "backlog": 2048}
    monkeypatch.setenv("CLIPPER_MAX_CONNECTIONS", "9")
    monkeypatch.setenv("CLIPPER_KEEP_ALIVE_S", "4.5")
    settings = serving_limits.uvicorn_settings(1024)
    assert settings["limit_concurrency"] == 9 and settings["timeout_keep_alive"] == 5


def test_asgi_adapter_refuses_heads_over_the_limits(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from clipper_frontends.query import create_app

    limits = HTTPLimits(max_headers=20, max_header_bytes=2000, max_url_bytes=100)
    app = create_app(f"sqlite:///{tmp_path / 's.db'}", limits, rpc_host="127.0.0.1",
                     rpc_port=free_port())
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        many = {f"x-{i}": "v" for i in range(30)}
        assert client.get("/healthz", headers=many).status_code == 431
        assert client.get("/healthz", headers={"x-big": "a" * 3000}).status_code == 431
        assert client.get("/" + "a" * 200).status_code == 414
        r = client.request("PATCH", "/sum/predict")
        assert r.status_code == 501 and r.headers["allow"] == "GET, HEAD, POST"
        r = client.get("/sum/predict")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
