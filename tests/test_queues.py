"""Model queues: batches onto replicas, and pipelining a full batch onto a
busy replica (units, then through a real replica process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import loadgen
import pytest
from queue_fakes import FakePool, FakeReplica
from serving import Serving, write_model

from clipper_core.batching import FixedPolicy
from clipper_core.models import InputType
from clipper_frontends.query.queues import Evaluation, ModelQueue
from clipper_frontends.query.replicas import ReplicaPool


class _Harness:
    """A queue whose sends are recorded; ``answer`` plays the replica."""

    def __init__(self, max_batch: int, depth: int = 2) -> None:
        self.pool = FakePool()
        self.results: list[Evaluation] = []
        self.q = ModelQueue("m", "1", 0, FixedPolicy(max_batch=max_batch),
                            self.pool.send_batch, lambda ev, out: self.results.append(ev),
                            replicas=self.pool.members,  # type: ignore[arg-type]
                            pipeline_depth=depth)
        self.sent = self.pool.sent
        self._n = 0

    def add(self, loop: asyncio.AbstractEventLoop, n: int) -> list[Evaluation]:
        evs = []
        for _ in range(n):
            self._n += 1
            evs.append(Evaluation(("m", "1", b"%d" % self._n), b"x", loop.create_future(),
                                  loop.time() + 60))
        self.q.queue.extend(evs)
        self.q.dispatch()
        return evs

    def join(self, replica: FakeReplica) -> None:
        self.pool.join(self.q, replica)

    def answer(self, replica: FakeReplica) -> list[Evaluation]:
        return self.pool.answer(self.q, replica)


def test_a_busy_replica_gets_one_more_full_batch(loop: asyncio.AbstractEventLoop) -> None:
    h = _Harness(max_batch=1)
    r = FakeReplica(b"r")
    h.join(r)
    a, b, c = h.add(loop, 3)
    assert [batch for _, batch in h.sent] == [[a], [b]]  # c waits: two in flight at most
    assert list(h.q.queue) == [c]
    assert h.answer(r) == [a]
    assert [batch for _, batch in h.sent][-1] == [c]  # sent while b is worked on
    assert h.q.describe()["pipelined_batches"] == 2
    h.answer(r)
    h.answer(r)
    assert h.results == [a, b, c] and not h.q.queue and h.q.idle() == [r]


def test_a_partial_batch_waits_for_the_replica(loop: asyncio.AbstractEventLoop) -> None:
    # Sending an early batch must never make batches smaller: a busy replica
    # is sent only a full one, and an idle one takes whatever is queued.
    h = _Harness(max_batch=4)
    r = FakeReplica(b"r")
    h.join(r)
    first = h.add(loop, 1)
    assert h.sent[-1][1] == first
    h.add(loop, 3)
    assert len(h.sent) == 1  # 3 queued < 4: wait
    fourth = h.add(loop, 1)
    assert len(h.sent) == 2 and len(h.sent[-1][1]) == 4 and h.sent[-1][1][-1] == fourth[0]
    rest = h.add(loop, 2)
    h.answer(r)  # the replica moves on to the full batch; 2 queued stay queued
    assert len(h.sent) == 2
    h.answer(r)  # now idle: it takes the two
    assert h.sent[-1][1] == rest


def test_depth_one_is_one_batch_per_replica(loop: asyncio.AbstractEventLoop) -> None:
    h = _Harness(max_batch=1, depth=1)
    r = FakeReplica(b"r")
    h.join(r)
    h.add(loop, 5)
    assert len(h.sent) == 1 and len(h.q.queue) == 4
    assert h.q.describe()["pipelined_batches"] == 0
    with pytest.raises(ValueError, match="pipeline_depth"):
        _Harness(max_batch=1, depth=0)


def test_a_lost_replica_gives_back_every_batch_in_order(
        loop: asyncio.AbstractEventLoop) -> None:
    h = _Harness(max_batch=1)
    r1, r2 = FakeReplica(b"r1"), FakeReplica(b"r2")
    h.join(r1)
    a, b, c = h.add(loop, 3)
    assert r1.inflight == [[a], [b]]
    h.pool.leave(h.q, r1)
    assert list(h.q.queue) == [a, b, c]
    h.join(r2)
    assert r2.inflight == [[a], [b]] and list(h.q.queue) == [c]


def test_latency_of_a_pipelined_batch_counts_from_the_previous_answer(
        loop: asyncio.AbstractEventLoop) -> None:
    # The batching policy and admission control need the replica's time per
    # batch; a batch that waited behind another in the replica's socket must
    # not be charged for that wait.
    latencies: list[float] = []

    class _Queue:
        def dispatch(self) -> None:
            pass

        def batch_done(self, batch: Any, outputs: Any, latency_s: float) -> None:
            latencies.append(latency_s)

    sent: list[Any] = []
    pool = ReplicaPool(lambda identity, frames: sent.append(frames) is None,
                       lambda *a: _Queue(), lambda *a: None)  # type: ignore[arg-type,return-value]
    pool.hello(b"r", "m", "1", InputType.DOUBLES, -1)
    replica = pool.replicas[b"r"]
    loop = asyncio.new_event_loop()
    for i in range(2):
        ev = Evaluation(("m", "1", b"%d" % i), b"x", loop.create_future(), 0.0)
        assert pool.send_batch(replica, [ev])  # type: ignore[arg-type]
    msg_ids = [msg_id for msg_id, _, _ in replica.inflight]
    time.sleep(0.05)
    pool.answered(b"r", msg_ids[0], [b"1"])
    time.sleep(0.01)
    pool.answered(b"r", msg_ids[1], [b"1"])
    assert latencies[0] >= 0.05
    assert 0.01 <= latencies[1] < 0.04
    assert not replica.inflight and len(sent) == 2
    loop.close()


SLOW_ONE_BY_ONE = """
import time
def predict(inputs):
    time.sleep(0.010)
    return [str(float(x[0]) * 2) for x in inputs]
"""


def test_pipelining_through_a_real_replica(tmp_path: Path) -> None:
    s = Serving(tmp_path, cache_size=0)
    try:
        s.deploy("b1", "doubler", batch_size=1, slo_micros=5_000_000)
        s.start_frontend()
        s.start_replica(write_model(tmp_path / "m", SLOW_ONE_BY_ONE), "doubler", "1")
        s.wait_connected("doubler")
        bodies = [b'{"input": [%d.0]}' % i for i in range(200)]

        def check(status: int, body: dict) -> None:
            assert status == 200 and not body["default"], body

        results = asyncio.run(loadgen.run(s.port, "/b1/predict", bodies, 16, check))
        assert sorted(body["output"] for _, body in results) == [i * 2.0 for i in range(200)]
        m = s.metrics()["models"]["doubler:1"]
        assert m["recent_max_batch_size"] == 1
        assert m["pipelined_batches"] > 50, m
        # the replica's own time per batch (10 ms and a little), not the
        # ~20 ms a batch spends from being sent behind another to its answer
        assert m["batch_latency_p50_ms"] < 16.0, m
    finally:
        s.close()
