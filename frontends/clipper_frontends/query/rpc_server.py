"""The frontend side of Clipper RPC v3: a ZeroMQ ROUTER on the event loop.

This module is the transport only: it binds the socket, decodes what
arrives and reports it to an :class:`RPCHandler` (the replica pool), and
sends frames it is given.  The socket's file descriptor is watched by the
asyncio loop directly (no extra thread, no per-message future): when it
turns readable every waiting message is drained.  A socket monitor reports
TCP disconnects.  Malformed messages are counted, logged (one line per peer
per minute) and dropped; they never stop the loop.

With ``server_keys`` the socket is a CURVE server: a ZAP handler
(:mod:`.rpc_auth`) admits only client keys ``authorise`` knows, and binds
each to the model version it may serve (its User-Id).  A new-container
message must claim that model version, and a routing identity stays with
the key that first registered it; a second connection cannot take an
identity over (no ``ROUTER_HANDOVER``; ZeroMQ heartbeats drop dead
connections instead).  Without keys the socket speaks plain RPC v3, as
Clipper's containers do.  Either way no frame larger than
``max_frame_bytes`` is read: libzmq drops its sender at the frame's header.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import zmq
from zmq.utils.monitor import parse_monitor_message

from clipper_core import curve, rpc
from clipper_core.errors import ClipperException
from clipper_core.models import InputType, validate_name

from .rpc_auth import ZAP_DOMAIN, Authorise, PeerWarnings, ZapHandler

log = logging.getLogger("clipper.rpc")

#: the largest frame read by default (bytes); the frontend derives its own
#: from its largest request body (:func:`max_frame_bytes`)
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
#: ZeroMQ heartbeats under CURVE (milliseconds): a dead connection must not
#: keep holding its identity
HEARTBEAT_IVL_MS = 5_000
HEARTBEAT_TIMEOUT_MS = 15_000
#: identities remembered with the key that registered them
MAX_OWNERS = 65_536


def max_frame_bytes(max_body_bytes: int) -> int:
    """The largest RPC frame worth reading for a frontend whose largest
    request body is ``max_body_bytes``: no input (and no sane output of one
    input) is larger; at least 1 MiB for heartbeats and small outputs."""
    return max(int(max_body_bytes), 1024 * 1024)


class Refused(rpc.ProtocolError):
    """A message that is well formed but not allowed (a claim beyond its key)."""


class RPCHandler(Protocol):
    """What the transport reports; it may raise ``rpc.ProtocolError``."""

    def touch(self, identity: bytes) -> bool:
        """A message arrived from ``identity``: whether it is a known replica."""

    def hello(self, identity: bytes, name: str, version: str, input_type: InputType,
              fd: int) -> None:
        """A container announced the model version it serves."""

    def answered(self, identity: bytes, msg_id: int, outputs: list[bytes]) -> None:
        """A container answered the prediction request ``msg_id``."""

    def disconnected(self, fd: int) -> None:
        """The TCP connection behind socket descriptor ``fd`` closed."""


class RPCServer:
    """Binds the ROUTER socket; reports messages to ``handler``; sends frames."""

    def __init__(self, host: str, port: int, *, server_keys: curve.KeyPair | None = None,
                 authorise: Authorise | None = None,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if server_keys is not None and authorise is None:
            raise ValueError("a CURVE server needs an authorise function")
        self.endpoint = f"tcp://{host}:{port}"
        self.handler: RPCHandler | None = None
        self.server_keys = server_keys
        self.max_frame_bytes = max_frame_bytes
        # CURVE: a context of our own, whose ZAP endpoint only we answer.
        self._ctx: zmq.Context[zmq.Socket[bytes]] = (
            zmq.Context() if server_keys is not None else zmq.Context.instance())
        self._warnings = PeerWarnings(log)
        self._zap = (ZapHandler(self._ctx, authorise, self._warnings)
                     if server_keys is not None and authorise is not None else None)
        #: identity -> the User-Id (key binding) that first registered it
        self._owners: dict[bytes, bytes] = {}
        self._sock: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: messages dropped as malformed
        self.malformed = 0
        #: messages refused: a claim the sender's key does not allow
        self.refused = 0

    @property
    def auth(self) -> str:
        """``curve`` or ``none``."""
        return curve.RPC_AUTH_NONE if self.server_keys is None else curve.RPC_AUTH_CURVE

    def describe(self) -> dict[str, Any]:
        """The transport's counters (for ``/metrics``)."""
        return {"auth": self.auth, "malformed_messages": self.malformed,
                "refused_messages": self.refused,
                "refused_handshakes": self._zap.refused if self._zap else 0,
                "warnings_held_back": self._warnings.held_back,
                "max_frame_bytes": self.max_frame_bytes}

    # -- lifecycle ---------------------------------------------------------
    def start(self, handler: RPCHandler) -> None:
        self.handler = handler
        loop = self._loop = asyncio.get_running_loop()
        if self._zap is not None:
            self._zap.start()  # before the socket binds: no handler, no check
        sock: zmq.Socket[bytes] = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes)
        self._secure(sock)
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise OSError(f"cannot bind RPC port {self.endpoint}: {exc}") from exc
        self._sock, self._monitor = sock, monitor
        loop.add_reader(_fd(sock), self._on_readable)
        loop.add_reader(_fd(monitor), self._on_monitor)
        # A ZeroMQ FD is edge-triggered: it signals only after the socket's
        # pending commands were processed by reading ZMQ_EVENTS.  Without this
        # first look the monitor's FD never turns readable and disconnects go
        # unnoticed.
        self._on_readable()
        self._on_monitor()

    def _secure(self, sock: zmq.Socket[bytes]) -> None:
        keys = self.server_keys
        if keys is None:
            # Plain RPC v3: a replica reconnecting with its identity takes it over.
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            return
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode("ascii"))
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)

    def close(self) -> None:
        sock, monitor, loop = self._sock, self._monitor, self._loop
        if sock is None or monitor is None or loop is None:
            return
        loop.remove_reader(_fd(sock))
        loop.remove_reader(_fd(monitor))
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)
        self._sock = self._monitor = None
        if self._zap is not None:
            self._zap.close()
            self._ctx.term()

    # -- receiving ---------------------------------------------------------
    def poll(self) -> None:
        """Handle every message waiting now (also called between requests
        while HTTP keeps the loop busy)."""
        self._on_readable()

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        recv = sock.recv_multipart
        getsockopt = cast(Callable[[int], int], sock.getsockopt)
        while getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                frames = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            try:
                self._handle(frames)
            except Refused as exc:
                self.refused += 1
                self._warnings.warn(frames[0].bytes, f"refused a message: {exc};")
            except (rpc.ProtocolError, ValueError, UnicodeDecodeError) as exc:
                self.malformed += 1
                self._warnings.warn(frames[0].bytes, f"dropped a malformed message: {exc};")

    def _handle(self, frames: list[zmq.Frame]) -> None:
        if len(frames) < 3 or frames[1].bytes != b"":
            raise rpc.ProtocolError("message without the empty delimiter frame")
        handler = self.handler
        assert handler is not None
        identity = frames[0].bytes
        msg_type = rpc.unpack_u32(frames[2].bytes)
        known = handler.touch(identity)
        if msg_type == rpc.MSG_CONTAINER_CONTENT:
            msg_id, outputs = rpc.parse_predict_response([f.bytes for f in frames[3:]])
            handler.answered(identity, msg_id, outputs)
        elif msg_type == rpc.MSG_HEARTBEAT:
            reply = rpc.HEARTBEAT_KEEPALIVE_FRAMES if known else rpc.HEARTBEAT_METADATA_FRAMES
            self.send(identity, reply)
        elif msg_type == rpc.MSG_NEW_CONTAINER:
            name, version, input_type = self._claim(frames)
            handler.hello(identity, name, version, input_type, frames[0].get(zmq.SRCFD))
        else:
            raise rpc.ProtocolError(f"unknown message type {msg_type}")

    def _claim(self, frames: list[zmq.Frame]) -> tuple[str, str, InputType]:
        """The model version a new-container message claims, validated, and
        (under CURVE) allowed by the sender's key and identity."""
        if len(frames) != 7:
            raise rpc.ProtocolError(f"new-container message has {len(frames)} frames, not 7")
        rpc_version = rpc.unpack_u32(frames[6].bytes)
        if rpc_version != rpc.RPC_VERSION:
            raise rpc.ProtocolError(f"container speaks RPC version {rpc_version}")
        try:
            name = validate_name("model name", frames[3].bytes[:64].decode())
            version = validate_name("model version", frames[4].bytes[:64].decode())
        except ClipperException as exc:
            raise rpc.ProtocolError(str(exc)) from None
        code = frames[5].bytes
        if len(code) > 2:
            raise rpc.ProtocolError("input type is not a small number")
        input_type = InputType.parse(int(code.decode()))
        if self.server_keys is not None:
            self._check_owner(frames[0], name, version)
        return name, version, input_type

    def _check_owner(self, frame: zmq.Frame, name: str, version: str) -> None:
        identity = frame.bytes
        user = str(frame.get("User-Id")).encode()
        if user != curve.binding(name, version).encode():
            raise Refused(f"a key of {user.decode(errors='replace')} claims {name}:{version}")
        owner = self._owners.get(identity)
        if owner is None:
            if len(self._owners) >= MAX_OWNERS:
                del self._owners[next(iter(self._owners))]
            self._owners[identity] = user
        elif owner != user:
            raise Refused(f"identity {identity[:32]!r} belongs to another key")

    def _on_monitor(self) -> None:
        mon = self._monitor
        if mon is None:
            return
        while cast(int, mon.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                msg = parse_monitor_message(mon.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
            if msg["event"] == zmq.EVENT_DISCONNECTED and self.handler is not None:
                self.handler.disconnected(int(msg["value"]))

    # -- sending -----------------------------------------------------------
    def send(self, identity: bytes, frames: Sequence[Any]) -> bool:
        """Send one message to ``identity``; False if it cannot be delivered."""
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.send_multipart((identity, *frames), zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: peer gone; EAGAIN: peer stuck
            log.warning("cannot send to %r: %s", identity[:32], exc)
            return False
        finally:
            # Sending can consume the edge of the socket's FD: look again.
            if cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN and self._loop is not None:
                self._loop.call_soon(self._on_readable)
        return True


def _fd(sock: zmq.Socket[bytes]) -> int:
    """The file descriptor the event loop watches for ``sock``."""
    return cast(int, sock.getsockopt(zmq.FD))
