"""Feedback through POST /{app}/update never counts a model that could not
answer (no connected replica) as wrong."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import orjson
from test_selection_frontend import Harness, const, run

from clipper_frontends.query.service import Pending


async def feed(h: Harness, label: float, n: int) -> None:
    for i in range(n):
        pending = h.layer.feedback(h.service, "/app/update", orjson.dumps(
            {"uid": 1, "input": [float(i)], "label": label}))
        assert isinstance(pending, Pending)
        values: list[Any] = [await w if isinstance(w, asyncio.Future) else w
                             for w in pending.waiters]
        assert pending.finish(values) == (200, b'{"success":true}')
    await asyncio.sleep(0.2)  # the writes run in worker threads


def test_a_model_without_replicas_keeps_its_weight() -> None:
    async def main() -> None:
        h = Harness({"m-a": const(b"1"), "m-b": const(b"2")})
        h.replicas[("m-b", "1")] = []  # registered, nothing connected
        h.app(("m-a", "m-b"), "exp4")
        await feed(h, 1.0, 5)
        logs = h.store.policy_states("app")[""]["log_weights"]
        assert logs == {"m-a": 0.0, "m-b": 0.0}
        answer = await h.predict({"input": [3.0]})
        assert answer["output"] == 1 and answer["confidence"] == 0.5
    run(main())


def test_a_model_that_answers_wrong_loses_weight() -> None:
    async def main() -> None:
        h = Harness({"m-a": const(b"1"), "m-b": const(b"2")})
        h.app(("m-a", "m-b"), "exp4")
        await feed(h, 1.0, 5)
        logs = h.store.policy_states("app")[""]["log_weights"]
        assert logs["m-a"] == 0.0 and logs["m-b"] < -1.0
    run(main())


def test_an_app_back_on_single_leaves_the_selection_metrics() -> None:
    async def main() -> None:
        h = Harness({"m-a": const(b"1"), "m-b": const(b"2")})
        h.app(("m-a", "m-b"), "exp4")
        await h.predict({"input": [1.0]})
        assert set(h.layer.describe()) == {"app"}
        app = h.store.get_application("app")
        assert app is not None
        h.store.set_selection(attrs.evolve(app, other_models=(), selection_policy="single"))
        h.routes.apply(h.store.snapshot())
        assert h.service.route_for("/app/predict").selector is None
        assert h.layer.describe() == {}
        assert (await h.predict({"input": [1.0]}))["output"] == 1
    run(main())
