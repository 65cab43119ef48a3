"""A replica that stops answering (SIGSTOP) costs at most one stuck deadline:
its queries go to the other replica, later identical queries start afresh,
and it is used again once it answers (real processes)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import loadgen
from conftest import wait_until
from serving import Serving, write_model

WHO_ANSWERS = """
import os, time
def predict(inputs):
    time.sleep(0.005)
    return [os.environ["CLIPPER_REPLICA_ID"] for _ in inputs]
"""


def _states(s: Serving) -> dict[str, str]:
    return {r["replica_id"]: r["state"] for r in s.metrics()["rpc"]["replicas"]}


def _two_replicas(tmp_path: Path) -> Serving:
    s = Serving(tmp_path, cache_size=0, frontend_args=("--replica-stuck-s", "1"))
    s.deploy("app", "who", batch_size=1, slo_micros=6_000_000)
    s.start_frontend()
    model = write_model(tmp_path / "m", WHO_ANSWERS)
    s.start_replica(model, "who", "1", replica_id="r0")
    s.start_replica(model, "who", "1", replica_id="r1")
    s.wait_connected("who", 2)
    return s


def test_a_stopped_replica_s_queries_go_to_the_other(tmp_path: Path) -> None:
    s = _two_replicas(tmp_path)
    try:
        stopped = s.replicas[0]
        stopped.send_signal(signal.SIGSTOP)
        bodies = [b'{"input": [%d.0]}' % i for i in range(40)]
        t0 = time.monotonic()
        results: list[tuple[int, Any]] = asyncio.run(
            loadgen.run(s.port, "/app/predict", bodies, 8))
        took = time.monotonic() - t0
        # Every query is answered by a model, none by the default, and the
        # stopped replica cost one stuck deadline (1 s), not the SLO (6 s).
        assert all(status == 200 and body["default"] is False for status, body in results), \
            results
        assert {body["output"] for _, body in results} == {"r1"}
        assert took < 4.0, took
        assert _states(s)["r0"] == "suspect"
        stopped.send_signal(signal.SIGCONT)
        wait_until(lambda: _states(s)["r0"] == "ready", timeout=15,
                   what="the resumed replica ready again")
        more = [b'{"input": [%d.0]}' % (1000 + i) for i in range(100)]
        results = asyncio.run(loadgen.run(s.port, "/app/predict", more, 8))
        assert {body["output"] for _, body in results} == {"r0", "r1"}
    finally:
        for p in s.replicas:
            p.send_signal(signal.SIGCONT)
        s.close()


def test_an_input_is_not_stuck_on_a_stopped_replica(tmp_path: Path) -> None:
    s = Serving(tmp_path, cache_size=0, frontend_args=("--replica-stuck-s", "1"))
    try:
        s.deploy("app", "who", batch_size=1, slo_micros=3_000_000)
        s.start_frontend()
        proc = s.start_replica(write_model(tmp_path / "m", WHO_ANSWERS), "who", "1",
                               replica_id="r0")
        s.wait_connected("who")
        proc.send_signal(signal.SIGSTOP)
        first = s.post("app", {"input": [7.0]}).json()   # sent to the stopped replica
        assert first["default"] is True
        # The same input again, after the stuck deadline: it does not join the
        # batch the stopped replica sits on (it would wait for the SLO); the
        # only replica is suspect, so there is no model to ask, at once.
        t0 = time.monotonic()
        again = s.post("app", {"input": [7.0]}).json()
        assert time.monotonic() - t0 < 1.0
        assert again["default"] is True
        assert again["default_explanation"] == "No connected models found for query"
        proc.send_signal(signal.SIGCONT)
        wait_until(lambda: _states(s)["r0"] == "ready", timeout=15,
                   what="the resumed replica ready again")
        assert s.post("app", {"input": [7.0]}).json() == {
            "query_id": 2, "output": "r0", "default": False}
    finally:
        for p in s.replicas:
            p.send_signal(signal.SIGCONT)
        s.close()
