"""Local ports handed out once each, and the health checks run against them."""

from __future__ import annotations

import http.client
import random
import socket
import threading

__all__ = ["allocate_port", "http_probe", "tcp_probe"]

_given_ports: set[int] = set()
_ports_lock = threading.Lock()


def allocate_port(host: str = "127.0.0.1", low: int | None = None,
                  high: int | None = None) -> int:
    """A port free on ``host`` now and never returned before by this process.

    With ``low``/``high`` the port is chosen in that range (e.g. NodePorts
    30000-32767), otherwise the kernel picks one.
    """
    with _ports_lock:
        for _ in range(200):
            if low is not None and high is not None:
                candidate = random.randint(low, high)
            else:
                candidate = 0
            with socket.socket() as s:
                try:
                    s.bind((host, candidate))
                except OSError:
                    continue
                port = int(s.getsockname()[1])
            if port not in _given_ports:
                _given_ports.add(port)
                return port
    raise OSError(f"no free port on {host}")


def http_probe(port: int, path: str = "/", host: str = "127.0.0.1",
               timeout: float = 1.0) -> tuple[bool, str]:
    """GET ``path``; success is a 2xx/3xx status.  Returns (ok, message)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        status = conn.getresponse().status
    except OSError as exc:
        return False, f'Get "http://{host}:{port}{path}": {exc}'
    finally:
        conn.close()
    if 200 <= status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {status}"


def tcp_probe(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> tuple[bool, str]:
    """Open a TCP connection.  Returns (ok, message)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: {exc}"
