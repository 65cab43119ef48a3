"""kube-proxy in miniature: a TCP listener that pipes each connection to one
of a service's ready pods."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

__all__ = ["TcpForwarder"]


class TcpForwarder:
    """Listens on (host, port) and pipes each connection to one of ``backends()``."""

    def __init__(self, host: str, port: int, backends: Callable[[], list[int]]) -> None:
        self.host, self.port, self.backends = host, port, backends
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(64)
        self._closed = False
        self._rr = 0
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name=f"fwd-{port}").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        ports = self.backends()
        upstream = None
        for _ in range(len(ports)):
            port = ports[self._rr % len(ports)]
            self._rr += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
                upstream.settimeout(None)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        with self._lock:
            self._conns |= {client, upstream}

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (dst, src):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        t.start()
        pipe(client, upstream)
        t.join()
        for s in (client, upstream):
            s.close()
        with self._lock:
            self._conns -= {client, upstream}

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._lock:
            for s in list(self._conns):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
