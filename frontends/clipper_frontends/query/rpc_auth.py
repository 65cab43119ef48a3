"""Who may talk on the RPC port: the ZAP handler and rate-limited warnings.

With CURVE on, ZeroMQ asks a ZAP handler (RFC 27) about every client key
during the handshake, before the peer can send or receive a message.
:class:`ZapHandler` answers on the event loop: a key is accepted when
``authorise(public_key)`` names what it may serve (the reply's User-Id,
which every later message of that connection carries), refused otherwise.

:class:`PeerWarnings` keeps a peer that sends garbage from filling the log:
one line per peer per minute, with the count of those held back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

import zmq
from zmq.utils import z85

#: the ZAP endpoint every libzmq context asks (RFC 27)
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"clipper-rpc"
#: ``authorise(public key in Z85) -> User-Id or None``
Authorise = Callable[[str], str | None]


class PeerWarnings:
    """Log one warning per peer per ``period_s`` (with how many were held
    back), and at most ``max_lines`` per period in all."""

    def __init__(self, logger: logging.Logger, period_s: float = 60.0,
                 max_lines: int = 100, max_peers: int = 4096) -> None:
        self.log = logger
        self.period_s = period_s
        self.max_lines = max_lines
        self.max_peers = max_peers
        #: peer -> [monotonic time of its last line, messages held back since]
        self._peers: dict[bytes, list[float]] = {}
        self._window = 0.0
        self._lines = 0
        #: warnings not logged (per peer or over the line budget)
        self.held_back = 0

    def warn(self, peer: bytes, message: str) -> None:
        now = time.monotonic()
        if now - self._window >= self.period_s:
            self._window, self._lines = now, 0
        entry = self._peers.get(peer)
        if entry is not None and now - entry[0] < self.period_s:
            entry[1] += 1
            self.held_back += 1
            return
        if self._lines >= self.max_lines:
            self.held_back += 1
            return
        self._lines += 1
        held = int(entry[1]) if entry is not None else 0
        more = f" ({held} more from this peer in the last minute)" if held else ""
        self.log.warning("%s from %r%s", message, peer[:32], more)
        if entry is None and len(self._peers) >= self.max_peers:
            self._forget_old(now)
        self._peers[peer] = [now, 0]

    def _forget_old(self, now: float) -> None:
        old = [p for p, (at, _) in self._peers.items() if now - at >= self.period_s]
        for peer in old or list(self._peers)[: self.max_peers // 2]:
            del self._peers[peer]


class ZapHandler:
    """Answers the ZAP requests of one ZeroMQ context on the event loop.

    Bind it (:meth:`start`) before any CURVE server socket of the context
    binds: without a handler libzmq lets every client key in.
    """

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], authorise: Authorise,
                 warnings: PeerWarnings) -> None:
        self._ctx = ctx
        self._authorise = authorise
        self._warnings = warnings
        self._sock: zmq.Socket[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: handshakes refused (unknown key or mechanism)
        self.refused = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = self._ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        self._sock = sock
        self._loop.add_reader(cast(int, sock.getsockopt(zmq.FD)), self._on_readable)
        self._on_readable()

    def close(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None:
            return
        loop.remove_reader(cast(int, sock.getsockopt(zmq.FD)))
        sock.close(0)
        self._sock = None

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                request = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            sock.send_multipart(self.reply(request))

    def reply(self, request: list[bytes]) -> list[bytes]:
        """The ZAP reply to ``request`` (RFC 27 frames)."""
        if len(request) < 6:
            return [b"1.0", request[1] if len(request) > 1 else b"", b"500",
                    b"malformed ZAP request", b"", b""]
        version, request_id, _domain, address, _identity, mechanism = request[:6]
        credentials = request[6:]
        user_id: str | None = None
        if version == b"1.0" and mechanism == b"CURVE" and len(credentials) == 1 \
                and len(credentials[0]) == 32:
            user_id = self._authorise(z85.encode(credentials[0]).decode("ascii"))
        if user_id is None:
            self.refused += 1
            self._warnings.warn(address, f"refused an RPC handshake ({mechanism.decode(errors='replace')}, "
                                         "unknown client key)")
            return [b"1.0", request_id, b"400", b"unknown client key", b"", b""]
        return [b"1.0", request_id, b"200", b"OK", user_id.encode(), b""]
