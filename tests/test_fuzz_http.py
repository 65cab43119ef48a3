"""Fuzzing the request path of a real query frontend process: random bytes,
random methods, targets and headers, random JSON bodies.  Every answer must
be well-formed HTTP (parsed by httptools) with a status the frontend means
to send, never a 500, and the frontend must keep serving normal requests.

Deterministic (``derandomize``) and bounded: a few hundred examples.
"""

from __future__ import annotations

import json
import socket
import string
import time
from collections.abc import Iterator
from typing import Any

import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from serving import Serving, write_model

SUM_MODEL = """
def predict(inputs):
    return [str(float(len(inputs))) for x in inputs]
"""

#: every status the frontend answers with on purpose
STATUSES = {100, 200, 400, 404, 405, 408, 413, 414, 431, 501, 503}
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    tmp = tmp_path_factory.mktemp("fuzz")
    s = Serving(tmp, max_body=64 * 1024, http_server="builtin",
                frontend_args=("--max-header-bytes", "2048", "--max-headers", "20",
                               "--max-url-bytes", "512", "--max-batch-inputs", "50"))
    try:
        s.start_frontend()
        s.deploy("sum", "summer", slo_micros=500_000)
        s.deploy("words", "wordy", input_type="strings", slo_micros=500_000)
        model = write_model(tmp / "m", SUM_MODEL)
        s.start_replica(model, "summer", "1")
        s.start_replica(model, "wordy", "1", input_type="strings")
        s.wait_connected("summer")
        s.wait_connected("wordy")
        yield s
    finally:
        s.close()


class _Responses:
    """httptools callbacks: the responses parsed so far."""

    def __init__(self) -> None:
        self.done: list[tuple[int, bytes]] = []
        self.open = False
        self._body = b""
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.open, self._body = True, b""

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.open = False
        self.done.append((self.parser.get_status_code(), self._body))


def _exchange(s: Serving, data: bytes) -> _Responses:
    """Send ``data`` on a new connection; parse what comes back until the
    server closes, or is silent a while after a complete answer."""
    responses = _Responses()
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before all was sent: what came back is checked
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            sock.settimeout(0.05 if responses.done and not responses.open else 0.5)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if responses.done and not responses.open:
                    break
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            responses.parser.feed_data(chunk)  # raises on malformed HTTP
    assert not responses.open, "a response was cut short"
    for status, body in responses.done:
        assert status in STATUSES, (status, body, data[:300])
        if status != 100:
            answer = json.loads(body)
            assert isinstance(answer, dict)
            if status >= 400:
                assert answer["cause"] and "callback" not in answer["cause"], answer
    return responses


def _still_serving(s: Serving) -> None:
    r = s.post("sum", {"input": [1.0, 2.0]})
    assert r.status_code == 200 and r.json()["default"] is False, r.text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=25)
_bodies = st.one_of(
    _json.map(lambda v: {"input": v}),
    st.lists(_json, max_size=8).map(lambda v: {"input_batch": v}),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8)
    .map(lambda v: {"input": v}),
    _json,
).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=300)
_methods = st.sampled_from([b"GET", b"POST", b"POST", b"POST", b"PUT", b"DELETE", b"PATCH",
                            b"OPTIONS", b"TRACE", b"CONNECT", b"FOO", b"post"])
_targets = st.sampled_from(["/sum/predict", "/words/predict", "/healthz", "/metrics",
                            "/readyz", "/nope/predict", "/", "*", "http://h/sum/predict",
                            "example.com:443"]) \
    | st.text(alphabet=string.printable, max_size=40).map(lambda t: "/" + t)
_token = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
_headers = st.lists(st.tuples(_token.map(str.encode), st.binary(max_size=60)), max_size=25)


@given(data=st.binary(min_size=1, max_size=600))
@FUZZ
def test_random_bytes(serving: Serving, data: bytes) -> None:
    _exchange(serving, data + b"\r\n\r\n")
    _still_serving(serving)


@given(method=_methods, target=_targets, headers=_headers, body=_bodies,
       chunked=st.booleans(), repeat=st.integers(min_value=1, max_value=3))
@example(method=b"CONNECT", target="example.com:443", headers=[], body=b"", chunked=False,
         repeat=1)
@example(method=b"POST", target="/sum/predict", headers=[], body=b'{"input": [true, false]}',
         chunked=False, repeat=2)
@FUZZ
def test_random_requests(serving: Serving, method: bytes, target: str,
                         headers: list[tuple[bytes, bytes]], body: bytes, chunked: bool,
                         repeat: int) -> None:
    head = method + b" " + target.encode("utf-8", "replace") + b" HTTP/1.1\r\nHost: t\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    if chunked:
        framed = head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            len(body), body)
    else:
        framed = head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    responses = _exchange(serving, framed * repeat)
    assert len(responses.done) <= repeat + 1  # (a 100 Continue at most besides)
    _still_serving(serving)


def test_a_valid_request_after_fuzzing_is_answered_by_the_model(serving: Serving) -> None:
    got: Any = serving.post("words", {"input_batch": ["a", "b"]}).json()
    assert [p["default"] for p in got["batch_predictions"]] == [False, False]
