"""Per model-version queues: batching queries onto free replicas.

Everything here runs on the query frontend's event loop and is driven by
events, not polling: a query arriving, a replica becoming free, a batch
delay expiring.

A queue owns its queries and its batching policy; the replicas it sends to
are owned by the replica pool (:mod:`.replicas`), which hands the queue a
list of its model's replicas that only the pool changes.  A replica with
no batch in flight is idle.

A replica works on one batch at a time (SPEC.md section 4).  An idle replica
takes whatever is queued, up to the policy's maximum.  A busy one is sent a
further batch only when that batch is full (``pipeline_depth`` batches in
flight at most, 2 by default): it then starts on it the moment it answers the
one before, instead of waiting a round trip through the frontend's event
loop, and no batch is made smaller by sending it early.  ``pipeline_depth=1``
is Clipper's original one batch per replica.

Under overload the queue schedules for goodput (answers within the SLO):

- an evaluation that can no longer be answered before its deadline (at the
  observed batch latency, behind the batches the replica already holds) is
  never sent: it is dropped from the queue, and its waiters get the default
  at their deadline from the SLO timer, like every query Clipper could not
  answer in time;
- when serving the queue oldest first would make its newest evaluation miss
  its deadline (congestion), batches are taken newest first: the queries
  served are those that can be answered well within their deadline, and
  the old ones run out at their deadline instead of every query finishing
  late;
- the queue holds at most ``MAX_QUEUE_SLOS`` SLOs of work; a query beyond
  that is not queued at all (``can_queue``) and gets the default at its
  deadline.  No default is answered early, so a client that sends its next
  query as soon as it has an answer cannot spin the frontend on defaults
  while the replicas starve.
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from collections import deque
from collections.abc import Callable, Sequence, Sized
from typing import Any, Protocol

from clipper_core.interfaces import BatchingPolicy

from .metrics import BatchMetrics

log = logging.getLogger("clipper.queues")

RING = 1024
#: batches a queue must have seen before admission control trusts its estimate
WARM_BATCHES = 16
#: batches in flight per replica at most (the first worked on, the rest waiting)
PIPELINE_DEPTH = 2
#: a queue holds at most this many SLOs of work (at the observed batch latency)
MAX_QUEUE_SLOS = 2.0
#: ... and never fewer than this many evaluations
MIN_QUEUE_CAP = 64


class Worker(Protocol):
    """What a queue reads of a replica (the pool's ``ReplicaConn``)."""

    @property
    def identity(self) -> bytes: ...

    @property
    def inflight(self) -> Sized: ...


class ModelError:
    """The model raised (or returned something unusable) for this input."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class Evaluation:
    """One input to evaluate once, for one or more waiting HTTP queries."""

    __slots__ = ("key", "data", "waiters", "deadline")

    def __init__(self, key: tuple[str, str, bytes], data: bytes,
                 waiter: asyncio.Future[Any], deadline: float) -> None:
        self.key = key
        self.data = data
        self.waiters = [waiter]
        self.deadline = deadline

    def abandoned(self, now: float) -> bool:
        """True when every waiter has been answered (by its SLO timer).

        ``deadline`` and ``now`` are event-loop times (``loop.time()``).
        """
        if self.deadline > now:
            return False
        for w in self.waiters:
            if not w.done():
                return False
        return True


SendBatch = Callable[[Any, list[Evaluation]], bool]  # (replica, batch) -> sent


class ModelQueue:
    """Queue and batching policy of one model version.

    :param replicas: the model version's connected replicas; the pool owns
        this list and is the only one to change it.
    :param send_batch: ``send_batch(replica, batch) -> bool``; False when the
        replica is gone (the pool has then taken it out of ``replicas``).
    :param on_result: ``on_result(evaluation, output_bytes)`` per answer.
    :param on_dropped: told of every evaluation given up unanswered (all its
        waiters timed out), so the frontend forgets it.
    """

    def __init__(self, model_name: str, model_version: str, input_type: int,
                 policy: BatchingPolicy, send_batch: SendBatch,
                 on_result: Callable[[Evaluation, bytes], None], *,
                 replicas: Sequence[Worker] | None = None, slo_s: float = 0.1,
                 on_dropped: Callable[[Evaluation], None] | None = None,
                 pipeline_depth: int = PIPELINE_DEPTH) -> None:
        if pipeline_depth < 1:
            raise ValueError(f"pipeline_depth must be at least 1, got {pipeline_depth}")
        self.model_name = model_name
        self.model_version = model_version
        self.input_type = input_type
        self.policy = policy
        #: (policy name, batch size) the policy was made for, when known
        self.policy_key: tuple[str, int] | None = None
        self.slo_s = slo_s
        self._send_batch = send_batch
        self._on_result = on_result
        self._on_dropped = on_dropped or (lambda ev: None)
        self.pipeline_depth = pipeline_depth
        self.replicas: Sequence[Worker] = replicas if replicas is not None else []
        self.queue: deque[Evaluation] = deque()
        self._delay_handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_event_loop()
        # metrics
        self.batches = 0
        #: batches sent to a replica that was still working on another
        self.pipelined = 0
        self.batched_inputs = 0
        self.dropped = 0
        #: queries not queued because the queue held MAX_QUEUE_SLOS of work
        #: (they get the default at their deadline)
        self.shed = 0
        #: evaluations dropped unsent because they could no longer be answered
        #: before their deadline
        self.expired = 0
        #: batches taken newest first (congested)
        self.lifo_batches = 0
        #: smoothed round-trip seconds of one batch (0.0 until warmed up)
        self.batch_s = 0.0
        self._sizes = array("H", bytes(2 * RING))
        self._latencies = array("d", bytes(8 * RING))
        self._ring = 0
        #: batch size and latency histograms (Prometheus)
        self.histograms = BatchMetrics()

    # -- replicas ----------------------------------------------------------
    @property
    def connected(self) -> int:
        return len(self.replicas)

    def idle(self) -> list[Worker]:
        """Replicas with no batch in flight."""
        return [r for r in self.replicas if not r.inflight]

    def _any_idle(self) -> bool:
        for r in self.replicas:
            if not r.inflight:
                return True
        return False

    def can_queue(self) -> bool:
        """Whether the queue takes one more evaluation: it holds less than
        ``MAX_QUEUE_SLOS`` SLOs of work at the observed batch latency, spread
        over the replicas (always, until the estimate is warmed up).  Past
        that, a query is not queued: the queue is congested and serves the
        newest first, so it would only run out at its deadline, holding memory."""
        batch_s = self.batch_s
        if batch_s == 0.0 or self.batches < WARM_BATCHES or not self.replicas:
            return True
        queued = len(self.queue)
        if queued < MIN_QUEUE_CAP:
            return True
        limit: int = self.policy.max_batch_size()
        return (queued // limit) * batch_s < MAX_QUEUE_SLOS * self.slo_s * len(self.replicas)

    # -- queries -----------------------------------------------------------
    def requeue(self, batch: list[Evaluation]) -> None:
        """Put a lost batch back at the head of the queue (those still wanted)."""
        now = self._loop.time()
        for ev in reversed(batch):
            if ev.abandoned(now):
                self.dropped += 1
                self._on_dropped(ev)
            else:
                self.queue.appendleft(ev)
        self.dispatch()

    def dispatch(self, force: bool = False) -> None:
        """Hand queued inputs to idle replicas, a batch each, then full
        batches to busy replicas with room in their pipeline.

        Unless ``force``, a policy may ask to wait a little for a fuller batch.
        """
        queue = self.queue
        if not queue:
            return
        policy = self.policy
        if self._any_idle():
            if not force:
                delay = policy.batch_delay(len(queue))
                if delay > 0.0:
                    if self._delay_handle is None:
                        self._delay_handle = self._loop.call_later(delay, self.dispatch, True)
                    return
            if self._delay_handle is not None:
                self._delay_handle.cancel()
                self._delay_handle = None
            for replica in tuple(self.replicas):
                if not queue:
                    return
                if not replica.inflight:
                    self._send(replica, policy.max_batch_size())
        if queue and self.pipeline_depth > 1 and len(queue) >= policy.max_batch_size():
            # Every replica is busy now (the loop above served the idle ones).
            depth = self.pipeline_depth
            for replica in tuple(self.replicas):
                limit = policy.max_batch_size()
                if len(queue) < limit:
                    return
                if (0 < len(replica.inflight) < depth and replica in self.replicas
                        and self._send(replica, limit)):
                    self.pipelined += 1

    def _send(self, replica: Worker, limit: int) -> bool:
        """Send ``replica`` the next batch of up to ``limit`` evaluations that
        can still be answered in time.

        False when nothing was sent: none was left that could make its
        deadline, or the replica vanished (the pool forgot it; its batch
        stays queued)."""
        batch = self._take(limit, len(replica.inflight))
        if not batch:
            return False
        if not self._send_batch(replica, batch):
            self.queue.extendleft(reversed(batch))
            return False
        return True

    def _take(self, limit: int, ahead: int) -> list[Evaluation]:
        """Up to ``limit`` evaluations that can be answered before their
        deadline by a replica with ``ahead`` batches before this one: oldest
        first, or newest first when the queue is congested."""
        queue = self.queue
        now = self._loop.time()
        # When this batch would be answered, at the observed batch latency.
        done_at = now + self.batch_s * (ahead + 1)
        while queue and queue[0].deadline < done_at:
            self._expire(queue.popleft())
        if not queue:
            return []
        # Congested: taken oldest first, the newest would miss its deadline.
        # Then every query served is one that has just arrived (well within
        # its deadline), and the old ones run out instead.
        batches = -(-len(queue) // limit)
        drained_at = now + self.batch_s * (ahead + batches / max(1, len(self.replicas)))
        lifo = queue[-1].deadline < drained_at
        take = queue.pop if lifo else queue.popleft
        batch: list[Evaluation] = []
        while queue and len(batch) < limit:
            ev = take()
            if ev.deadline < done_at:
                self._expire(ev)
                continue
            batch.append(ev)
        if lifo and batch:
            self.lifo_batches += 1
        return batch

    def _expire(self, ev: Evaluation) -> None:
        """Drop ``ev`` unsent; its waiters get the default at their deadline."""
        self.expired += 1
        self._on_dropped(ev)

    def late_answer(self, batch: list[Evaluation], outputs: list[bytes]) -> None:
        """Answers of a batch taken back from a replica (it turned suspect):
        they answer whoever still waits, but teach the policy nothing."""
        on_result = self._on_result
        for ev, out in zip(batch, outputs, strict=True):
            on_result(ev, out)

    def batch_done(self, batch: list[Evaluation], outputs: list[bytes],
                   latency_s: float) -> None:
        """A replica answered ``batch``; resolve it and give the replicas more work."""
        on_result = self._on_result
        for ev, out in zip(batch, outputs, strict=True):
            on_result(ev, out)
        n = len(batch)
        self.batches += 1
        self.batched_inputs += n
        i = self._ring
        self._sizes[i] = min(n, 65535)
        self._latencies[i] = latency_s
        self._ring = (i + 1) % RING
        self.histograms.observe(n, latency_s)
        # Exponentially smoothed; the first batches (imports, warm-up) are left out.
        if self.batches > WARM_BATCHES // 2:
            prev = self.batch_s
            self.batch_s = latency_s if prev == 0.0 else prev + 0.2 * (latency_s - prev)
        self.policy.on_batch_done(n, latency_s, self.slo_s)
        self.dispatch()

    def describe(self) -> dict[str, Any]:
        count = min(self.batches, RING)
        sizes = sorted(self._sizes[:count]) if count else []
        lats = sorted(self._latencies[:count]) if count else []
        return {
            "model": f"{self.model_name}:{self.model_version}",
            "connected_replicas": self.connected,
            "idle_replicas": len(self.idle()),
            "queue_length": len(self.queue),
            "batches": self.batches,
            "pipelined_batches": self.pipelined,
            "pipeline_depth": self.pipeline_depth,
            "mean_batch_size": self.batched_inputs / self.batches if self.batches else 0.0,
            "recent_mean_batch_size": sum(sizes) / count if count else 0.0,
            "recent_max_batch_size": sizes[-1] if sizes else 0,
            "batch_latency_p50_ms": lats[count // 2] * 1000 if count else 0.0,
            "batch_latency_p99_ms": lats[min(count - 1, int(count * 0.99))] * 1000 if count else 0.0,
            "dropped_expired": self.dropped + self.expired,
            "shed_overload": self.shed,
            "newest_first_batches": self.lifo_batches,
            "batch_latency_smoothed_ms": self.batch_s * 1000,
            "batching": self.policy.describe(),
        }
