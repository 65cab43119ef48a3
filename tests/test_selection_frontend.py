"""The selection path of a query, driven through QueryService on an event
loop with fake replicas: ensembles, stragglers, low confidence, shadow,
split, feedback through POST /{app}/update, and the single path untouched."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
import orjson

from clipper_core.cache import PredictionCache
from clipper_core.models import Application, ModelVersion
from clipper_core.plugins import backends, open_store
from clipper_core.selection import build_policy
from clipper_frontends.query.routes import Routes
from clipper_frontends.query.selection import SelectionLayer, is_update
from clipper_frontends.query.service import Pending, QueryService


class FakeReplica:
    def __init__(self, name: str, answer: Callable[[bytes], bytes] | None) -> None:
        self.identity = name.encode()
        self.inflight: list[Any] = []
        self.answer = answer  # None: never answers (a straggler)


class Harness:
    """A store, routes, a service and a selection layer over fake replicas."""

    def __init__(self, answers: dict[str, Callable[[bytes], bytes] | None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.store = open_store("memory://")
        for name in answers:
            self.store.add_model(ModelVersion.create(name, "1", "doubles"))
        self.replicas = {(n, "1"): [FakeReplica(n, a)] for n, a in answers.items()}
        self.layer = SelectionLayer(self.store, build_policy)
        policies = {n: b.factory for n, b in backends("batching_policies").items()}
        self.routes = Routes(policies, lambda n, v: self.replicas.get((n, v), []),
                             self.send, lambda ev, out: self.service.on_result(ev, out),
                             lambda ev: self.service.on_dropped(ev), pipeline_depth=1,
                             make_selector=self.layer.make_selector)
        self.service = QueryService(self.routes, PredictionCache(1 << 20),
                                    max_body_bytes=1 << 20)
        self.service.bind(self.loop)
        self.service.add_matched_route(  # as QueryFrontend.start does
            b"POST", is_update, lambda path, body: self.layer.feedback(self.service, path, body))

    def send(self, replica: FakeReplica, batch: list[Any]) -> bool:
        if replica.answer is None:
            return True
        replica.inflight.append(batch)
        queue = self.routes.queues[(replica.identity.decode(), "1")]

        def done() -> None:
            replica.inflight.remove(batch)
            queue.batch_done(batch, [replica.answer(ev.data) for ev in batch], 0.001)
        self.loop.call_soon(done)
        return True

    def app(self, models: tuple[str, ...], policy: str, **fields: Any) -> None:
        app = attrs.evolve(Application.create("app", "doubles", "-1", 50_000),
                           linked_model=models[0], other_models=models[1:],
                           selection_policy=policy, **fields)
        self.store.add_application(app)
        self.routes.apply(self.store.snapshot())

    async def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        route = self.service.route_for("/app/predict")
        waiters, batch = self.service.start_query(route, orjson.dumps(body))
        values = [await w if isinstance(w, asyncio.Future) else w for w in waiters]
        result: dict[str, Any] = orjson.loads(self.service.render(route, values, batch, 0.0))
        return result


def const(out: bytes) -> Callable[[bytes], bytes]:
    return lambda data: out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_exp4_votes_with_a_confidence_and_answers_at_the_slo_without_stragglers() -> None:
    async def main() -> None:
        h = Harness({"m-a": const(b"1"), "m-b": const(b"1"), "m-c": const(b"2"),
                     "m-slow": None})
        h.app(("m-a", "m-b", "m-c", "m-slow"), "exp4")
        t0 = h.loop.time()
        answer = await h.predict({"input": [1.0, 2.0]})
        assert answer["output"] == 1 and answer["default"] is False
        assert 0.045 <= h.loop.time() - t0 < 0.5, "answered at the SLO, not later"
        metrics = h.layer.describe()["app"]
        assert metrics["stragglers"] == 1
        assert metrics["selections"] == {"m-a": 1, "m-b": 1, "m-c": 1, "m-slow": 1}
    run(main())


def test_below_the_confidence_threshold_the_default_answers() -> None:
    async def main() -> None:
        h = Harness({"m-a": const(b"1"), "m-b": const(b"2"), "m-c": const(b"3")})
        h.app(("m-a", "m-b", "m-c"), "exp4", confidence_threshold=0.5)
        answer = await h.predict({"input": [1.0]})
        assert answer["default"] is True and answer["output"] == -1
        assert answer["default_explanation"] == "low confidence"
        assert h.layer.describe()["app"]["low_confidence"] == 1
    run(main())


def test_shadow_answers_from_the_primary_and_records_the_shadow() -> None:
    async def main() -> None:
        h = Harness({"old": const(b"7"), "new": const(b"8")})
        h.app(("old", "new"), "shadow")
        answer = await h.predict({"input": [1.0]})
        assert answer["output"] == 7
        await asyncio.sleep(0.01)
        shadow = h.layer.describe()["app"]["shadows"]["new"]
        assert shadow["compared"] == 1 and shadow["agreement"] == 0.0
    run(main())


def test_split_is_sticky_per_uid() -> None:
    async def main() -> None:
        h = Harness({"stable": const(b"1"), "canary": const(b"2")})
        h.app(("stable", "canary"), "split",
              policy_params={"weights": {"stable": 50, "canary": 50}})
        for uid in range(20):
            first = (await h.predict({"input": [float(uid)], "uid": uid}))["output"]
            again = (await h.predict({"input": [float(uid) + 0.5], "uid": uid}))["output"]
            assert first == again
    run(main())


def test_feedback_updates_the_stored_state_and_the_local_copy() -> None:
    async def main() -> None:
        h = Harness({"good": lambda d: b"1", "bad": lambda d: b"0"})
        h.app(("good", "bad"), "exp4")
        handler = h.layer.feedback
        revision = h.store.revision()
        for i in range(20):
            body = orjson.dumps({"uid": 1, "input": [float(i)], "label": 1})
            pending = handler(h.service, "/app/update", body)
            assert isinstance(pending, Pending)
            values = [await w if isinstance(w, asyncio.Future) else w for w in pending.waiters]
            assert pending.finish(values) == (200, b'{"success":true}')
        await asyncio.sleep(0.2)  # the writes run in worker threads
        weights = h.layer.describe()["app"]["weights"]
        assert weights["good"] > 0.9 > weights["bad"]
        assert h.store.policy_states("app")[""]["log_weights"]["bad"] < 0
        assert h.store.revision() == revision
        status, body = h.service.answer_other(b"POST", "/app/update", b'{"input": [1]}')
        assert status == 400
    run(main())


def test_single_apps_take_todays_path() -> None:
    async def main() -> None:
        h = Harness({"m-a": const(b"5")})
        h.app(("m-a",), "single")
        route = h.service.route_for("/app/predict")
        assert route.selector is None
        assert (await h.predict({"input": [1.0]}))["output"] == 5
        handler = h.layer.feedback
        assert handler(h.service, "/app/update",
                       b'{"uid": 1, "input": [1.0], "label": 1}') == (200, b'{"success":true}')
    run(main())
