"""Scheduling of a model queue under overload, for goodput: a bounded queue,
nothing sent that cannot make its deadline, newest first when congested."""

from __future__ import annotations

import asyncio

from queue_fakes import FakePool, FakeReplica

from clipper_core.batching import FixedPolicy
from clipper_frontends.query.queues import (
    MIN_QUEUE_CAP,
    WARM_BATCHES,
    Evaluation,
    ModelQueue,
)


def _queue(max_batch: int, pool: FakePool, pipeline_depth: int = 2,
           slo_s: float = 0.020) -> ModelQueue:
    return ModelQueue("m", "1", 0, FixedPolicy(max_batch=max_batch), pool.send_batch,
                      lambda ev, out: None, replicas=pool.members,  # type: ignore[arg-type]
                      pipeline_depth=pipeline_depth, slo_s=slo_s,
                      on_dropped=pool.dropped.append)


def _evaluation(loop: asyncio.AbstractEventLoop, i: int, budget_s: float = 60.0) -> Evaluation:
    return Evaluation(("m", "1", b"%d" % i), b"x", loop.create_future(), loop.time() + budget_s)


def _warm_queue(loop: asyncio.AbstractEventLoop, max_batch: int,
                batch_s: float) -> tuple[ModelQueue, FakePool, FakeReplica]:
    """A queue with one replica that has served enough batches of latency
    ``batch_s`` for its estimate to be trusted; idle."""
    pool = FakePool()
    q = _queue(max_batch, pool)
    replica = FakeReplica(b"r1")
    pool.join(q, replica)
    for i in range(WARM_BATCHES + 4):
        q.queue.append(_evaluation(loop, i))
        q.dispatch(force=True)
        pool.answer(q, replica, latency_s=batch_s)
    pool.sent.clear()
    return q, pool, replica


def test_queues_everything_until_warmed_up(loop: asyncio.AbstractEventLoop) -> None:
    pool = FakePool()
    q = _queue(1, pool)
    pool.join(q, FakeReplica(b"r1").busy(_evaluation(loop, -1)))
    q.queue.extend(_evaluation(loop, i) for i in range(1000))
    assert q.can_queue()  # no estimate yet: never refuse on a guess


def test_the_queue_holds_at_most_two_slos_of_work(loop: asyncio.AbstractEventLoop) -> None:
    q, pool, replica = _warm_queue(loop, 1, 0.0002)   # 0.2 ms per batch of one
    replica.busy(_evaluation(loop, -1))
    q.queue.extend(_evaluation(loop, 100 + i) for i in range(199))
    assert q.can_queue()          # 199 x 0.2 ms < 2 x 20 ms
    q.queue.append(_evaluation(loop, 300))
    assert not q.can_queue()      # 200 x 0.2 ms = 40 ms: full
    pool.join(q, FakeReplica(b"r2").busy(_evaluation(loop, -2)))
    assert q.can_queue()          # two replicas drain it twice as fast


def test_a_short_queue_is_never_full(loop: asyncio.AbstractEventLoop) -> None:
    q, _, replica = _warm_queue(loop, 1, 0.050)   # each batch takes longer than the SLO
    replica.busy(_evaluation(loop, -1))
    q.queue.extend(_evaluation(loop, 100 + i) for i in range(MIN_QUEUE_CAP - 1))
    assert q.can_queue()


def test_an_evaluation_that_cannot_make_its_deadline_is_not_sent(
        loop: asyncio.AbstractEventLoop) -> None:
    q, pool, replica = _warm_queue(loop, 4, 0.005)   # 5 ms per batch
    late = _evaluation(loop, 100, budget_s=0.002)     # 2 ms left: cannot make it
    fine = _evaluation(loop, 101, budget_s=0.015)
    q.queue.extend([late, fine])
    q.dispatch(force=True)
    assert pool.sent == [(replica, [fine])]
    assert pool.dropped == [late]
    assert not late.waiters[0].done()  # its default comes at the deadline, from the timer
    assert q.describe()["dropped_expired"] == 1


def test_a_pipelined_batch_counts_the_batch_ahead_of_it(loop: asyncio.AbstractEventLoop) -> None:
    q, pool, replica = _warm_queue(loop, 1, 0.004)    # 4 ms per batch
    replica.busy(_evaluation(loop, -1))                # one batch in the replica
    tight = _evaluation(loop, 100, budget_s=0.006)     # would be answered in 8 ms
    q.queue.append(tight)
    q.queue.append(_evaluation(loop, 101, budget_s=0.010))
    q.dispatch(force=True)                             # a full batch for a busy replica
    assert tight in pool.dropped
    assert [batch[0].key[2] for _, batch in pool.sent] == [b"101"]


def test_a_congested_queue_serves_the_newest_first(loop: asyncio.AbstractEventLoop) -> None:
    q, pool, replica = _warm_queue(loop, 1, 0.002)     # 2 ms per batch of one
    evs = [_evaluation(loop, 100 + i, budget_s=0.020) for i in range(30)]
    q.queue.extend(evs)            # oldest first would take 60 ms: the newest would miss
    q.dispatch(force=True)
    # the idle replica's batch, then one more pipelined: the two newest
    assert [batch for _, batch in pool.sent] == [[evs[-1]], [evs[-2]]]
    assert q.describe()["newest_first_batches"] == 2


def test_an_uncongested_queue_serves_the_oldest_first(loop: asyncio.AbstractEventLoop) -> None:
    q, pool, replica = _warm_queue(loop, 1, 0.002)
    evs = [_evaluation(loop, 100 + i, budget_s=0.020) for i in range(5)]
    q.queue.extend(evs)            # 10 ms: everyone makes it in order
    q.dispatch(force=True)
    assert [batch for _, batch in pool.sent] == [[evs[0]], [evs[1]]]
    assert q.describe()["newest_first_batches"] == 0


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
