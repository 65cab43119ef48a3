"""What a ModelQueue sees of its replicas, for unit tests of queues."""

from __future__ import annotations

from typing import Any

from clipper_frontends.query.queues import Evaluation, ModelQueue


class FakeReplica:
    """A replica's identity and its batches in flight, oldest first."""

    def __init__(self, identity: bytes) -> None:
        self.identity = identity
        self.inflight: list[list[Evaluation]] = []

    def busy(self, ev: Evaluation) -> FakeReplica:
        """Make it look at work on a batch of ``ev``."""
        self.inflight.append([ev])
        return self


class FakePool:
    """Plays the replica pool: owns the replica list, records what is sent."""

    def __init__(self) -> None:
        self.members: list[FakeReplica] = []
        self.sent: list[tuple[FakeReplica, list[Evaluation]]] = []
        #: evaluations the queue gave up (its ``on_dropped``)
        self.dropped: list[Evaluation] = []

    def send_batch(self, replica: Any, batch: list[Evaluation]) -> bool:
        replica.inflight.append(batch)
        self.sent.append((replica, batch))
        return True

    def join(self, queue: ModelQueue, replica: FakeReplica) -> None:
        self.members.append(replica)
        queue.dispatch()

    def leave(self, queue: ModelQueue, replica: FakeReplica) -> None:
        self.members.remove(replica)
        evaluations = [ev for batch in replica.inflight for ev in batch]
        replica.inflight = []
        if evaluations:
            queue.requeue(evaluations)

    def answer(self, queue: ModelQueue, replica: FakeReplica,
               batch: list[Evaluation] | None = None, latency_s: float = 0.001) -> list[Evaluation]:
        """The replica answers ``batch`` (default: its oldest)."""
        batch = replica.inflight[0] if batch is None else batch
        replica.inflight.remove(batch)
        queue.batch_done(batch, [b"1"] * len(batch), latency_s)
        return batch
