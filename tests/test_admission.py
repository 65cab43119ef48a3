"""Admission control of a model queue: under overload, a query the queue
cannot serve within its SLO is answered with the default at once."""

from __future__ import annotations

import asyncio

from queue_fakes import FakePool, FakeReplica

from clipper_core.batching import FixedPolicy
from clipper_frontends.query.queues import WARM_BATCHES, Evaluation, ModelQueue


def _queue(max_batch: int, pool: FakePool, pipeline_depth: int = 2) -> ModelQueue:
    return ModelQueue("m", "1", 0, FixedPolicy(max_batch=max_batch), pool.send_batch,
                      lambda ev, out: None, replicas=pool.members,  # type: ignore[arg-type]
                      pipeline_depth=pipeline_depth)


def _evaluation(loop: asyncio.AbstractEventLoop, i: int) -> Evaluation:
    return Evaluation(("m", "1", b"%d" % i), b"x", loop.create_future(), loop.time() + 60)


def _busy_queue(loop: asyncio.AbstractEventLoop, max_batch: int,
                batch_s: float) -> tuple[ModelQueue, FakePool, FakeReplica]:
    """A queue with one replica that has served enough batches of latency
    ``batch_s`` for its estimate to be trusted, and is busy from now on."""
    pool = FakePool()
    q = _queue(max_batch, pool)
    replica = FakeReplica(b"r1")
    pool.join(q, replica)
    for i in range(WARM_BATCHES + 4):
        q.queue.append(_evaluation(loop, i))
        q.dispatch(force=True)
        pool.answer(q, replica, latency_s=batch_s)
    replica.busy(_evaluation(loop, -1))
    return q, pool, replica


def test_admits_everything_until_warmed_up(loop: asyncio.AbstractEventLoop) -> None:
    pool = FakePool()
    q = _queue(1, pool)
    pool.join(q, FakeReplica(b"r1").busy(_evaluation(loop, -1)))
    q.queue.extend(_evaluation(loop, i) for i in range(1000))
    assert q.can_meet(0.001)  # no estimate yet: never shed on a guess


def test_an_idle_replica_always_admits_so_a_latency_spike_cannot_lock_the_queue(
        loop: asyncio.AbstractEventLoop) -> None:
    # One slow stretch pushed the estimate past the SLO.  Were the queue to
    # shed while a replica sits idle, no batch would ever run again to bring
    # the estimate back down, and every later query would get the default.
    q, pool, replica = _busy_queue(loop, 1, 0.040)
    assert not q.can_meet(0.020)  # busy: 40 ms per batch misses 20 ms
    replica.inflight.clear()      # it answered
    assert q.can_meet(0.020)
    q.queue.append(_evaluation(loop, 300))
    q.dispatch(force=True)
    pool.answer(q, replica, latency_s=0.002)
    assert q.batch_s < 0.040  # real batches bring the estimate back down


def test_sheds_when_the_queue_ahead_exceeds_the_slo(loop: asyncio.AbstractEventLoop) -> None:
    q, pool, _ = _busy_queue(loop, 1, 0.002)  # 2 ms per batch of one
    assert abs(q.batch_s - 0.002) < 1e-9
    q.queue.extend(_evaluation(loop, 100 + i) for i in range(9))
    assert q.can_meet(0.020)        # 10th input: 10 x 2 ms fits 20 ms
    q.queue.append(_evaluation(loop, 200))
    assert not q.can_meet(0.020)    # 11th would wait 22 ms
    pool.join(q, FakeReplica(b"r2").busy(_evaluation(loop, 201)))
    assert q.can_meet(0.020)        # two replicas share the queue
    assert q.describe()["batch_latency_smoothed_ms"] > 0


def test_batches_waiting_inside_replicas_count_too(loop: asyncio.AbstractEventLoop) -> None:
    # A pipelined batch sits in the replica's socket behind the one being
    # worked on: it is ahead of a new input as surely as the queue is.
    q, _, replica = _busy_queue(loop, 1, 0.002)
    q.queue.extend(_evaluation(loop, 100 + i) for i in range(9))
    replica.inflight = [[_evaluation(loop, 200)]]   # one worked on
    assert q.can_meet(0.020)                         # 10 x 2 ms fits 20 ms
    replica.inflight.append([_evaluation(loop, 201)])  # and one waiting
    assert not q.can_meet(0.020)                     # 11 x 2 ms does not


def test_batches_count_not_inputs(loop: asyncio.AbstractEventLoop) -> None:
    q, _, _ = _busy_queue(loop, 32, 0.005)
    q.queue.extend(_evaluation(loop, 100 + i) for i in range(100))
    assert q.can_meet(0.020)        # 4 batches of 32 x 5 ms = 20 ms
    q.queue.extend(_evaluation(loop, 300 + i) for i in range(40))
    assert not q.can_meet(0.020)    # 5 batches = 25 ms


def test_deadline_timer_forgets_answered_queries(loop: asyncio.AbstractEventLoop) -> None:
    # It must hold the queries in flight, not every query of the last SLO.
    from clipper_frontends.query.deadlines import TIMEOUT, DeadlineTimer

    timer = DeadlineTimer(loop)
    deadline = loop.time() + 3.0
    for _ in range(1000):
        w = loop.create_future()
        timer.add(deadline, w)
        w.set_result("answered")
    waiting = loop.create_future()
    timer.add(deadline, waiting)
    assert len(timer._entries) == 1
    timer._handle.cancel()  # type: ignore[union-attr]
    timer._handle = None
    timer._entries[0] = (loop.time() - 1.0, waiting)
    timer._fire()
    assert waiting.result() is TIMEOUT
