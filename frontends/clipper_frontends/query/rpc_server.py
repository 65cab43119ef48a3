"""The frontend side of Clipper RPC v3: a ZeroMQ ROUTER on the event loop.

The socket's file descriptor is watched by the asyncio loop directly (no
extra thread, no per-message future): when it turns readable we drain every
waiting message.  A socket monitor reports TCP disconnects, so a replica
that dies is dropped at once (its batches in flight go back to the queue);
a replica that falls silent is dropped after ``silence_timeout``.
Malformed messages are logged and dropped; they never stop the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from clipper_core import rpc
from clipper_core.models import InputType, Replica

from .queues import Evaluation

log = logging.getLogger("clipper.rpc")


class ReplicaConn:
    """A connected model replica, as this frontend knows it."""

    __slots__ = ("identity", "model_name", "model_version", "input_type", "replica_id",
                 "fd", "last_seen", "inflight", "free_at", "queue")

    def __init__(self, identity: bytes, model_name: str, model_version: str,
                 input_type: InputType, replica_id: str, fd: int) -> None:
        self.identity = identity
        self.model_name = model_name
        self.model_version = model_version
        self.input_type = input_type
        self.replica_id = replica_id
        self.fd = fd
        self.last_seen = time.monotonic()
        #: batches sent and not answered yet, oldest first: (msg id, batch,
        #: perf_counter when sent).  The replica works on the first; the
        #: others wait in its socket (see ModelQueue.pipeline_depth).
        self.inflight: deque[tuple[int, list[Evaluation], float]] = deque()
        #: perf_counter when the replica answered its previous batch: a
        #: pipelined batch starts being worked on then, not when it was sent
        self.free_at = 0.0
        self.queue: Any = None

    def take_inflight(self) -> list[Evaluation]:
        """Every evaluation in flight on this replica, oldest first; forgets them."""
        evaluations = [ev for _, batch, _ in self.inflight for ev in batch]
        self.inflight.clear()
        return evaluations

    def to_model(self, frontend: str, connected: bool = True) -> Replica:
        return Replica(model_name=self.model_name, model_version=self.model_version,
                       replica_id=self.replica_id, input_type=self.input_type,
                       connected=connected, frontend=frontend, last_seen=time.time())


class RPCServer:
    """Binds the ROUTER socket and keeps the table of connected replicas.

    :param get_queue: ``get_queue(model_name, model_version, input_type)`` ->
        the ModelQueue a new replica joins.
    :param on_replica: ``on_replica(replica, connected: bool, reason)`` for
        bookkeeping (store, hooks); called on the loop.
    """

    def __init__(self, host: str, port: int, *, get_queue: Callable[..., Any],
                 on_replica: Callable[[ReplicaConn, bool, str], None],
                 silence_timeout: float = 15.0) -> None:
        self.endpoint = f"tcp://{host}:{port}"
        self._get_queue = get_queue
        self._on_replica = on_replica
        self.silence_timeout = silence_timeout
        self._ctx = zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.replicas: dict[bytes, ReplicaConn] = {}
        self._inflight: dict[int, ReplicaConn] = {}
        self._next_msg_id = 0
        self._counters: dict[tuple[str, str], int] = {}
        self.malformed = 0
        self._janitor: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise OSError(f"cannot bind RPC port {self.endpoint}: {exc}") from exc
        self._sock = sock
        loop.add_reader(sock.getsockopt(zmq.FD), self._on_readable)
        loop.add_reader(self._monitor.getsockopt(zmq.FD), self._on_monitor)
        # A ZeroMQ FD is edge-triggered: it signals only after the socket's
        # pending commands were processed by reading ZMQ_EVENTS.  Without this
        # first look the monitor's FD never turns readable and disconnects go
        # unnoticed.
        self._on_readable()
        self._on_monitor()
        self._janitor = loop.create_task(self._drop_silent())

    def close(self) -> None:
        if self._janitor:
            self._janitor.cancel()
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.getsockopt(zmq.FD))
            self._loop.remove_reader(self._monitor.getsockopt(zmq.FD))  # type: ignore[union-attr]
            self._sock.disable_monitor()
            self._monitor.close(0)  # type: ignore[union-attr]
            self._sock.close(0)
            self._sock = None

    # -- receiving ---------------------------------------------------------
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        recv = sock.recv_multipart
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
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
        identity = frames[0].bytes
        msg_type = rpc.unpack_u32(frames[2].bytes)
        replica = self.replicas.get(identity)
        if replica is not None:
            replica.last_seen = time.monotonic()
        if msg_type == rpc.MSG_CONTAINER_CONTENT:
            if replica is None:
                raise rpc.ProtocolError("prediction response from an unregistered container")
            msg_id, outputs = rpc.parse_predict_response([f.bytes for f in frames[3:]])
            self._response(replica, msg_id, outputs)
        elif msg_type == rpc.MSG_HEARTBEAT:
            reply = rpc.HEARTBEAT_KEEPALIVE_FRAMES if replica else rpc.HEARTBEAT_METADATA_FRAMES
            self._send(identity, reply)
        elif msg_type == rpc.MSG_NEW_CONTAINER:
            if len(frames) != 7:
                raise rpc.ProtocolError(f"new-container message has {len(frames)} frames, not 7")
            name = frames[3].bytes.decode()
            version = frames[4].bytes.decode()
            input_type = InputType.parse(int(frames[5].bytes.decode()))
            rpc_version = rpc.unpack_u32(frames[6].bytes)
            if rpc_version != rpc.RPC_VERSION:
                raise rpc.ProtocolError(f"container speaks RPC version {rpc_version}")
            self._register(identity, name, version, input_type, frames[0].get(zmq.SRCFD))
        else:
            raise rpc.ProtocolError(f"unknown message type {msg_type}")

    def _register(self, identity: bytes, name: str, version: str, input_type: InputType,
                  fd: int) -> None:
        old = self.replicas.get(identity)
        if old is not None:
            if (old.model_name, old.model_version, old.input_type) == (name, version, input_type):
                old.fd = fd  # the same replica saying hello twice
                return
            self._lose(old, "re-registered as another model")
        if identity.startswith(b"replica:"):
            replica_id = identity[8:].decode(errors="replace")
        else:
            n = self._counters.get((name, version), 0)
            self._counters[(name, version)] = n + 1
            replica_id = str(n)
        replica = ReplicaConn(identity, name, version, input_type, replica_id, fd)
        self.replicas[identity] = replica
        log.info("replica %s of %s:%s connected", replica_id, name, version)
        queue = self._get_queue(name, version, input_type)
        replica.queue = queue
        self._on_replica(replica, True, "connected")
        queue.add_replica(replica)

    def _on_monitor(self) -> None:
        mon = self._monitor
        if mon is None:
            return
        while mon.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                msg = parse_monitor_message(mon.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
            if msg["event"] == zmq.EVENT_DISCONNECTED:
                fd = msg["value"]
                for replica in [r for r in self.replicas.values() if r.fd == fd]:
                    self._lose(replica, "disconnected")

    async def _drop_silent(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for replica in list(self.replicas.values()):
                if now - replica.last_seen > self.silence_timeout and not replica.inflight:
                    self._lose(replica, f"silent for {self.silence_timeout:.0f} s")

    def _lose(self, replica: ReplicaConn, reason: str) -> None:
        if self.replicas.get(replica.identity) is not replica:
            return
        del self.replicas[replica.identity]
        # (its queue may have taken back the batches already: look them up here)
        for msg_id in [m for m, r in self._inflight.items() if r is replica]:
            del self._inflight[msg_id]
        log.warning("replica %s of %s:%s lost: %s", replica.replica_id, replica.model_name,
                    replica.model_version, reason)
        replica.queue.remove_replica(replica)
        self._on_replica(replica, False, reason)

    # -- sending -----------------------------------------------------------
    def _send(self, identity: bytes, frames: Any) -> bool:
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
            if sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._loop.call_soon(self._on_readable)  # type: ignore[union-attr]
        return True

    def send_batch(self, replica: ReplicaConn, batch: list[Evaluation]) -> bool:
        """Send ``batch`` to ``replica``; False if the replica is gone."""
        msg_id = self._next_msg_id
        self._next_msg_id = (msg_id + 1) & 0xFFFFFFFF
        frames = rpc.predict_request(msg_id, int(replica.input_type), [ev.data for ev in batch])
        replica.inflight.append((msg_id, batch, time.perf_counter()))
        self._inflight[msg_id] = replica
        if not self._send(replica.identity, frames):
            replica.inflight.pop()
            self._inflight.pop(msg_id, None)
            if self._loop is not None:
                self._loop.call_soon(self._lose, replica, "unreachable")
            return False
        return True

    def _response(self, replica: ReplicaConn, msg_id: int, outputs: list[bytes]) -> None:
        if self._inflight.get(msg_id) is not replica:
            raise rpc.ProtocolError(f"response to unknown message id {msg_id}")
        del self._inflight[msg_id]
        inflight = replica.inflight
        # A replica answers in the order it was sent work; look further only
        # for a container that does not.
        if inflight and inflight[0][0] == msg_id:
            _, batch, sent_at = inflight.popleft()
        else:
            entry = next((e for e in inflight if e[0] == msg_id), None)
            if entry is None:  # its batch was taken back (the replica was given up)
                raise rpc.ProtocolError(f"response to abandoned message id {msg_id}")
            inflight.remove(entry)
            _, batch, sent_at = entry
        if len(outputs) != len(batch):
            # Answer the batch rather than leave it (and the replica) hanging.
            self.malformed += 1
            log.warning("replica %s answered %d outputs for a batch of %d",
                        replica.replica_id, len(outputs), len(batch))
            outputs = [rpc.encode_error(f"replica answered {len(outputs)} outputs for a "
                                        f"batch of {len(batch)}")] * len(batch)
        now = time.perf_counter()
        # A batch that waited behind another was only worked on from when
        # the replica answered that one: the batching policy and admission
        # control need the replica's time per batch, not the time in its socket.
        latency = now - max(sent_at, replica.free_at)
        replica.free_at = now
        replica.queue.batch_done(replica, batch, outputs, latency)
