"""The frontend side of Clipper RPC v3: a ZeroMQ ROUTER on the event loop.

This module is the transport only: it binds the socket, decodes what
arrives and reports it to an :class:`RPCHandler` (the replica pool), and
sends frames it is given.  The socket's file descriptor is watched by the
asyncio loop directly (no extra thread, no per-message future): when it
turns readable every waiting message is drained.  A socket monitor reports
TCP disconnects.  Malformed messages are counted, logged and dropped; they
never stop the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import zmq
from zmq.utils.monitor import parse_monitor_message

from clipper_core import rpc
from clipper_core.models import InputType

log = logging.getLogger("clipper.rpc")


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

    def __init__(self, host: str, port: int) -> None:
        self.endpoint = f"tcp://{host}:{port}"
        self.handler: RPCHandler | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._sock: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: messages dropped as malformed
        self.malformed = 0

    # -- lifecycle ---------------------------------------------------------
    def start(self, handler: RPCHandler) -> None:
        self.handler = handler
        loop = self._loop = asyncio.get_running_loop()
        sock: zmq.Socket[bytes] = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
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
            except (rpc.ProtocolError, ValueError, UnicodeDecodeError) as exc:
                self.malformed += 1
                log.warning("dropping malformed message from %r: %s",
                            frames[0].bytes[:32], exc)

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
            if len(frames) != 7:
                raise rpc.ProtocolError(f"new-container message has {len(frames)} frames, not 7")
            name = frames[3].bytes.decode()
            version = frames[4].bytes.decode()
            input_type = InputType.parse(int(frames[5].bytes.decode()))
            rpc_version = rpc.unpack_u32(frames[6].bytes)
            if rpc_version != rpc.RPC_VERSION:
                raise rpc.ProtocolError(f"container speaks RPC version {rpc_version}")
            handler.hello(identity, name, version, input_type, frames[0].get(zmq.SRCFD))
        else:
            raise rpc.ProtocolError(f"unknown message type {msg_type}")

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
