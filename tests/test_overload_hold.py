"""Under overload a query that cannot be queued is decided before its body is
parsed, and answered with the default at its deadline, not at once."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from queue_fakes import FakeReplica

from clipper_core.cache import PredictionCache
from clipper_core.models import Application, ModelVersion
from clipper_core.plugins import backends, open_store
from clipper_frontends.query.queues import WARM_BATCHES
from clipper_frontends.query.routes import Routes
from clipper_frontends.query.service import SLO_MISSED, QueryService


def test_a_full_queue_holds_the_query_until_its_deadline_unparsed() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        store = open_store("memory://")
        store.add_model(ModelVersion.create("m", "1", "doubles", batch_size=1))
        store.add_application(Application.create("app", "doubles", "-1", 50_000))
        store.set_link("app", "m")
        replica = FakeReplica(b"r").busy(None)  # type: ignore[arg-type]
        sent: list[Any] = []
        policies = {n: b.factory for n, b in backends("batching_policies").items()}
        routes = Routes(policies, lambda n, v: [replica],
                        lambda r, batch: sent.append(batch) is None,
                        lambda ev, out: None, lambda ev: None, pipeline_depth=1)
        service = QueryService(routes, PredictionCache(1 << 20), max_body_bytes=1 << 20)
        service.bind(loop)
        routes.apply(store.snapshot())
        route = service.route_for("/app/predict")
        queue = route.queue
        assert queue is not None
        queue.batches, queue.batch_s = WARM_BATCHES, 0.010  # 10 ms a batch, warmed up
        for i in range(200):                               # 2 s of work queued: full
            service.start_query(route, orjson.dumps({"input": [float(i)]}))
        assert not queue.can_queue()
        queued = len(queue.queue)
        t0 = loop.time()
        # Not even parsed: a malformed body is held like a good one.
        waiters, batch = service.start_query(route, b'{"input": [1.0, oops')
        assert len(queue.queue) == queued and not batch
        value = await waiters[0]
        assert 0.045 <= loop.time() - t0 < 0.5                # at the 50 ms deadline
        answer = orjson.loads(service.render(route, [value], batch, 0.0))
        assert answer["default"] and answer["default_explanation"] == SLO_MISSED
        assert queue.describe()["shed_overload"] >= 1
        # An input_batch is parsed as ever (its answer needs its length).
        waiters, batch = service.start_query(
            route, orjson.dumps({"input_batch": [[1.0], [2.0]]}))
        assert batch and len(waiters) == 2
        store.close()

    asyncio.run(run())
