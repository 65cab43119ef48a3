"""The replica pool: every connected model replica and its batches in flight.

The pool is the one owner of replica state in a query frontend: which
replicas are connected (by ZeroMQ identity), which serve each model version
(the lists the model queues read), and which batches each has in flight,
under which message id.  The RPC transport (:mod:`.rpc_server`) reports what
arrives; the model queues (:mod:`.queues`) send batches through
:meth:`ReplicaPool.send_batch`.  Nothing else changes a replica.

A replica that disconnects (the transport's socket monitor), cannot be sent
to, or stays silent with nothing in flight for ``silence_timeout`` is lost:
its batches in flight go back to the head of its queue.

A replica that holds a batch unanswered for longer than its model's stuck
deadline (:meth:`ReplicaPool.stuck_after`: many times the observed batch
latency, at least twice the SLO, within ``[STUCK_MIN_S, stuck_bound_s]``)
is *suspect*: it leaves its model's list, so it gets no more work, and its
batches go back to the queue for the other replicas; identical queries
arriving later start afresh instead of joining a batch nobody answers.  The
first message it sends again (an answer or a heartbeat) makes it ready
again; a late answer still answers whoever waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from clipper_core import rpc
from clipper_core.models import InputType, Replica

from .queues import Evaluation, ModelQueue

log = logging.getLogger("clipper.replicas")

#: ``get_queue(model_name, model_version, input_type)`` -> the queue of a model
#: version, made on first use (reading the pool's list of its replicas)
GetQueue = Callable[[str, str, InputType], ModelQueue]
#: ``on_change(replica, connected, reason)``: records and hooks
OnChange = Callable[["ReplicaConn", bool, str], None]
Transport = Callable[[bytes, Sequence[Any]], bool]

#: the stuck deadline is at least this (seconds): a loaded machine's pauses
#: must not make healthy replicas suspect
STUCK_MIN_S = 0.5
#: ... and this many times the model's observed batch latency
STUCK_LATENCY_FACTOR = 20.0
#: the default bound of the stuck deadline (``--replica-stuck-s``)
STUCK_BOUND_S = 30.0
READY = "ready"
SUSPECT = "suspect"


class ReplicaConn:
    """A connected model replica, as this frontend knows it."""

    __slots__ = ("identity", "model_name", "model_version", "input_type", "replica_id",
                 "fd", "last_seen", "inflight", "free_at", "queue", "state", "orphans",
                 "suspected")

    def __init__(self, identity: bytes, model_name: str, model_version: str,
                 input_type: InputType, replica_id: str, fd: int, queue: ModelQueue) -> None:
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
        self.queue = queue
        #: READY, or SUSPECT while it sits on a batch past the stuck deadline
        self.state = READY
        #: batches taken back from it when it turned suspect, by message id:
        #: a late answer still answers whoever waits
        self.orphans: dict[int, list[Evaluation]] = {}
        #: times it turned suspect
        self.suspected = 0

    def to_model(self, frontend: str, connected: bool = True) -> Replica:
        return Replica(model_name=self.model_name, model_version=self.model_version,
                       replica_id=self.replica_id, input_type=self.input_type,
                       connected=connected, frontend=frontend, last_seen=time.time())


class ReplicaPool:
    """Connected replicas, their model versions and their batches in flight.

    :param transport: ``transport(identity, frames) -> bool`` sends one RPC
        message; False when the peer cannot be reached.
    :param get_queue: the queue of a model version (see :data:`GetQueue`).
    :param on_change: called on the loop when a replica connects or is lost.
    :param on_idle: called with (name, version) when the last replica of a
        model version is lost (its queue may go: :meth:`forget`).
    """

    def __init__(self, transport: Transport, get_queue: GetQueue, on_change: OnChange, *,
                 silence_timeout: float = 15.0, stuck_bound_s: float = STUCK_BOUND_S,
                 on_idle: Callable[[str, str], object] | None = None) -> None:
        if stuck_bound_s < STUCK_MIN_S:
            raise ValueError(f"the stuck deadline bound must be at least {STUCK_MIN_S} s, "
                             f"got {stuck_bound_s}")
        self.stuck_bound_s = stuck_bound_s
        self._transport = transport
        self._get_queue = get_queue
        self._on_change = on_change
        #: ``on_idle(name, version)``: the last replica of a version left
        self._on_idle = on_idle
        self.silence_timeout = silence_timeout
        self.replicas: dict[bytes, ReplicaConn] = {}
        self._members: dict[tuple[str, str], list[ReplicaConn]] = {}
        self._by_msg: dict[int, ReplicaConn] = {}
        self._next_msg_id = 0
        self._counters: dict[tuple[str, str], int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._janitor: asyncio.Task[None] | None = None

    def members(self, model_name: str, model_version: str) -> list[ReplicaConn]:
        """The replicas of a model version: a list only the pool changes."""
        key = (model_name, model_version)
        found = self._members.get(key)
        if found is None:
            found = self._members[key] = []
        return found

    def serves(self, model_name: str, model_version: str) -> bool:
        """Whether any replica (ready or suspect) serves the model version."""
        return any(r.model_name == model_name and r.model_version == model_version
                   for r in self.replicas.values())

    def forget(self, model_name: str, model_version: str) -> None:
        """Drop what the pool keeps for a model version nobody serves (its
        queue was dropped): its replica list and replica numbering."""
        key = (model_name, model_version)
        if self.serves(model_name, model_version) or self._members.get(key):
            return
        self._members.pop(key, None)
        self._counters.pop(key, None)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._janitor = self._loop.create_task(self._watch())

    def close(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()

    # -- what the transport reports (rpc_server.RPCHandler) -----------------
    def touch(self, identity: bytes) -> bool:
        """A message arrived from ``identity``; whether it is a known replica."""
        replica = self.replicas.get(identity)
        if replica is None:
            return False
        replica.last_seen = time.monotonic()
        if replica.state is SUSPECT:
            self._recover(replica)
        return True

    def hello(self, identity: bytes, name: str, version: str, input_type: InputType,
              fd: int) -> None:
        """A replica announced its model (RPC v3 new-container message)."""
        old = self.replicas.get(identity)
        if old is not None:
            if (old.model_name, old.model_version, old.input_type) == (name, version, input_type):
                old.fd = fd  # the same replica saying hello twice
                return
            self.lose(old, "re-registered as another model")
        if identity.startswith(b"replica:"):
            replica_id = identity[8:].decode(errors="replace")
        else:
            n = self._counters.get((name, version), 0)
            self._counters[(name, version)] = n + 1
            replica_id = str(n)
        queue = self._get_queue(name, version, input_type)
        replica = ReplicaConn(identity, name, version, input_type, replica_id, fd, queue)
        self.replicas[identity] = replica
        log.info("replica %s of %s:%s connected", replica_id, name, version)
        self._on_change(replica, True, "connected")
        self.members(name, version).append(replica)
        queue.dispatch()

    def answered(self, identity: bytes, msg_id: int, outputs: list[bytes]) -> None:
        """A replica answered the batch sent as ``msg_id``."""
        replica = self.replicas.get(identity)
        if replica is None:
            raise rpc.ProtocolError("prediction response from an unregistered container")
        if self._by_msg.get(msg_id) is not replica:
            raise rpc.ProtocolError(f"response to unknown message id {msg_id}")
        del self._by_msg[msg_id]
        orphan = replica.orphans.pop(msg_id, None)
        if orphan is not None:
            # Taken back when the replica turned suspect: answer whoever
            # still waits (the batch may have been answered elsewhere since).
            if len(outputs) == len(orphan):
                replica.queue.late_answer(orphan, outputs)
            return
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
        now = time.perf_counter()
        # A batch that waited behind another was only worked on from when
        # the replica answered that one: the batching policy and admission
        # control need the replica's time per batch, not the time in its socket.
        latency = now - max(sent_at, replica.free_at)
        replica.free_at = now
        if len(outputs) != len(batch):
            # Answer the batch rather than leave it (and the replica) hanging,
            # then report the message as malformed.
            cause = f"replica answered {len(outputs)} outputs for a batch of {len(batch)}"
            replica.queue.batch_done(batch, [rpc.encode_error(cause)] * len(batch), latency)
            raise rpc.ProtocolError(cause)
        replica.queue.batch_done(batch, outputs, latency)

    def disconnected(self, fd: int) -> None:
        """The TCP connection behind ``fd`` closed."""
        for replica in [r for r in self.replicas.values() if r.fd == fd]:
            self.lose(replica, "disconnected")

    # -- what the queues ask -------------------------------------------------
    def send_batch(self, replica: ReplicaConn, batch: list[Evaluation]) -> bool:
        """Send ``batch`` to ``replica``; False if the replica is gone (it is
        then out of its model's list at once, and lost on the next turn)."""
        msg_id = self._next_msg_id
        self._next_msg_id = (msg_id + 1) & 0xFFFFFFFF
        frames = rpc.predict_request(msg_id, int(replica.input_type), [ev.data for ev in batch])
        if not self._transport(replica.identity, frames):
            members = self._members.get((replica.model_name, replica.model_version))
            if members is not None and replica in members:
                members.remove(replica)
            if self._loop is not None:
                self._loop.call_soon(self.lose, replica, "unreachable")
            return False
        replica.inflight.append((msg_id, batch, time.perf_counter()))
        self._by_msg[msg_id] = replica
        return True

    # -- losing replicas -----------------------------------------------------
    def lose(self, replica: ReplicaConn, reason: str) -> None:
        """Forget ``replica``; its batches in flight go back to its queue."""
        if self.replicas.get(replica.identity) is not replica:
            return
        del self.replicas[replica.identity]
        members = self._members.get((replica.model_name, replica.model_version))
        if members is not None and replica in members:
            members.remove(replica)
        for msg_id in [*(m for m, _, _ in replica.inflight), *replica.orphans]:
            self._by_msg.pop(msg_id, None)
        replica.orphans.clear()
        evaluations = [ev for _, batch, _ in replica.inflight for ev in batch]
        replica.inflight.clear()
        log.warning("replica %s of %s:%s lost: %s", replica.replica_id, replica.model_name,
                    replica.model_version, reason)
        if evaluations:
            replica.queue.requeue(evaluations)
        self._on_change(replica, False, reason)
        if self._on_idle is not None and not self.serves(replica.model_name,
                                                         replica.model_version):
            self._on_idle(replica.model_name, replica.model_version)

    # -- stuck and silent replicas -------------------------------------------
    def stuck_after(self, queue: ModelQueue) -> float:
        """Seconds a batch may go unanswered before its replica is suspect."""
        wait = max(2.0 * queue.slo_s, STUCK_LATENCY_FACTOR * queue.batch_s, STUCK_MIN_S)
        return min(wait, self.stuck_bound_s)

    def check(self) -> None:
        """Make replicas sitting on a batch past the stuck deadline suspect;
        lose those silent for ``silence_timeout`` with nothing in flight."""
        now = time.monotonic()
        perf = time.perf_counter()
        for replica in list(self.replicas.values()):
            if replica.inflight:
                _, _, sent_at = replica.inflight[0]
                started = max(sent_at, replica.free_at)
                if perf - started > self.stuck_after(replica.queue):
                    self._suspect(replica, perf - started)
            elif now - replica.last_seen > self.silence_timeout:
                self.lose(replica, f"silent for {self.silence_timeout:.0f} s")

    def _suspect(self, replica: ReplicaConn, waited_s: float) -> None:
        replica.state = SUSPECT
        replica.suspected += 1
        members = self._members.get((replica.model_name, replica.model_version))
        if members is not None and replica in members:
            members.remove(replica)
        evaluations = []
        for msg_id, batch, _sent in replica.inflight:
            replica.orphans[msg_id] = batch
            evaluations.extend(batch)
        replica.inflight.clear()
        log.warning("replica %s of %s:%s is suspect: a batch unanswered for %.1f s; its "
                    "%d queries go back to the queue", replica.replica_id, replica.model_name,
                    replica.model_version, waited_s, len(evaluations))
        replica.queue.requeue(evaluations)

    def _recover(self, replica: ReplicaConn) -> None:
        replica.state = READY
        members = self.members(replica.model_name, replica.model_version)
        if replica not in members:
            members.append(replica)
        log.warning("replica %s of %s:%s answers again: ready", replica.replica_id,
                    replica.model_name, replica.model_version)
        replica.queue.dispatch()

    def describe(self) -> list[dict[str, Any]]:
        """Every connected replica and its state (for ``/metrics``)."""
        return [{"model": f"{r.model_name}:{r.model_version}", "replica_id": r.replica_id,
                 "state": r.state, "inflight_batches": len(r.inflight),
                 "suspected": r.suspected} for r in self.replicas.values()]

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(STUCK_MIN_S / 2)
            self.check()
