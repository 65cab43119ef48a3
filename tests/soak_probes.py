"""Issue 17's hostile HTTP clients, all at once, for the soak test.

``python tests/soak_probes.py PORT SECONDS MAX_CONNECTIONS`` runs every probe
in its own thread, each over and over (with a short pause) for ``SECONDS``,
against the query frontend on 127.0.0.1:PORT, and prints one JSON object:
per probe, how many times each answer came (a status, ``closed`` for a
connection closed without one, ``error:<name>`` for anything else).  It is a
separate process so the probes do not share the normal clients' interpreter.
"""

from __future__ import annotations

import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

from test_http_limits import _post, _trickle

Probe = Callable[[int], str]
#: between two runs of a probe (default 0.2 s): the flood holds the cap ~1 s in 2
PAUSE_S = {"too_many_connections": 1.0}


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One content-length framed response off ``sock``, which must carry no
    other (one request at a time: nothing is kept for the next read)."""
    buf = b""
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
    return int(lines[0].split()[1]), headers, rest[:n]


def _connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _status(sock: socket.socket, expected: str = "") -> str:
    """The status of the response on ``sock``; with its cause when it is not
    ``expected`` (nor 503, the answer of a full connection cap)."""
    try:
        status, _, body = read_response(sock)
    except (ConnectionError, TimeoutError) as exc:
        return "closed" if isinstance(exc, ConnectionError) else "timeout"
    if expected and str(status) not in (expected, "503"):
        return f"{status} {body[:100].decode(errors='replace')}"
    return str(status)


def huge_header(port: int) -> str:
    with _connect(port, timeout=3) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
        try:
            for _ in range(320):  # up to 20 MB
                sock.sendall(b"a" * 65536)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        return _status(sock)


def many_headers(port: int) -> str:
    with _connect(port) as sock:
        headers = "".join(f"X-{i}: v\r\n" for i in range(10_000))
        try:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _status(sock)


def slow_header(port: int) -> str:
    with _connect(port) as sock:
        _trickle(sock, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X: v\r\n" * 100, 0.2,
                 time.monotonic() + 10)
        sock.settimeout(5)
        return _status(sock)


def slow_body(port: int) -> str:
    with _connect(port) as sock:
        sock.sendall(b"POST /sum/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
        _trickle(sock, b'{"input": [1.0' + b" " * 90 + b"]}", 0.2, time.monotonic() + 10)
        sock.settimeout(5)
        return _status(sock)


def too_many_connections(max_connections: int) -> Probe:
    def probe(port: int) -> str:
        held = []
        try:
            for _ in range(max_connections + 10):
                held.append(_connect(port))
            for sock in held:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            statuses = Counter(_status(sock) for sock in held)
        finally:
            for sock in held:
                sock.close()
        return "503" if statuses["503"] else "no 503: " + ",".join(sorted(statuses))
    return probe


_MILLION = b'{"input_batch": [' + b"[1.0]," * 999_999 + b"[1.0]]}"


def huge_batch(port: int) -> str:
    with _connect(port) as sock:
        try:
            sock.sendall(_post("/sum/predict", _MILLION))
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _status(sock, "413")


def bad_methods(port: int) -> str:
    method = random.choice([b"TRACE", b"PATCH", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT"])
    target = b"example.com:443" if method == b"CONNECT" else b"/sum/predict"
    with _connect(port) as sock:
        sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        return _status(sock)


def garbage(port: int) -> str:
    rng = random.Random(time.monotonic_ns())
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
    head = rng.choice([b"", b"POST /sum/predict HTTP/1.1\r\nContent-Length: 30\r\n\r\n",
                       b"GET /" + junk[:50] + b" HTTP/1.1\r\n"])
    with _connect(port, timeout=5) as sock:
        try:
            sock.sendall(head + junk)
        except (BrokenPipeError, ConnectionResetError):
            return "closed"
        return _status(sock)


def run(port: int, seconds: float, max_connections: int) -> dict[str, dict[str, int]]:
    probes: dict[str, Probe] = {
        "huge_header": huge_header, "many_headers": many_headers, "slow_header": slow_header,
        "slow_body": slow_body, "too_many_connections": too_many_connections(max_connections),
        "huge_batch": huge_batch, "bad_methods": bad_methods, "garbage": garbage}
    results: dict[str, Counter[str]] = {name: Counter() for name in probes}
    end = time.monotonic() + seconds

    def loop(name: str, probe: Probe) -> None:
        while time.monotonic() < end:
            try:
                results[name][probe(port)] += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported
                results[name][f"error:{type(exc).__name__}"] += 1
            time.sleep(PAUSE_S.get(name, 0.2))

    threads = [threading.Thread(target=loop, args=item, daemon=True) for item in probes.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return {name: dict(counts) for name, counts in results.items()}


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))))
