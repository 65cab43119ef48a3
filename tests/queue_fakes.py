"""What a ModelQueue sees of a replica, for unit tests of queues."""

from __future__ import annotations

from clipper_frontends.queues import Evaluation


class FakeReplica:
    """A replica's identity and its batches in flight, oldest first."""

    def __init__(self, identity: bytes) -> None:
        self.identity = identity
        self.inflight: list[list[Evaluation]] = []

    def take_inflight(self) -> list[Evaluation]:
        evaluations = [ev for batch in self.inflight for ev in batch]
        self.inflight = []
        return evaluations
