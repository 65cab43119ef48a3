"""The query frontend and model runtime as real processes over TCP."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import httpx
import pytest
from conftest import wait_until
from serving import Serving, kill, write_model

SUM_MODEL = """
def predict(inputs):
    return [str(float(sum(x))) for x in inputs]
"""

TYPED_OUTPUTS = """
def predict(inputs):
    out = []
    for s in inputs:
        if s == "dict":
            out.append({"label": "cat", "p": [0.25, 0.75]})
        elif s == "json-string":
            out.append("1")
        elif s == "plain":
            out.append("hello world")
        elif s == "numpy":
            import numpy as np
            out.append(np.arange(3))
        else:
            out.append(len(s))
    return out
"""

RAISING = """
def predict(inputs):
    for x in inputs:
        if x[0] < 0:
            raise ValueError("negative input")
    return [str(x[0]) for x in inputs]
"""

BYTES_MODEL = """
def predict(inputs):
    return [x.hex() for x in inputs]
"""

SLOW = """
import time
def predict(inputs):
    time.sleep(1.0)
    return ["late"] * len(inputs)
"""

VERSIONED = """
import os
def predict(inputs):
    return ["v" + os.environ["CLIPPER_MODEL_VERSION"]] * len(inputs)
"""


@pytest.fixture(scope="module", params=["builtin", "uvicorn"])
def serving(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    # The same contract from both HTTP servers: the built-in one (default)
    # and uvicorn (--http-server uvicorn).
    tmp = tmp_path_factory.mktemp("serving")
    s = Serving(tmp, max_body=64 * 1024, http_server=request.param)
    s.start_frontend()
    models = tmp / "models"
    s.deploy("sum", "summer")
    s.start_replica(write_model(models / "sum", SUM_MODEL), "summer", "1")
    s.deploy("typed", "typed", input_type="strings")
    s.start_replica(write_model(models / "typed", TYPED_OUTPUTS), "typed", "1", "strings")
    s.deploy("raising", "raiser", default_output="-1")
    s.start_replica(write_model(models / "raising", RAISING), "raiser", "1")
    s.deploy("bytes", "byter", input_type="bytes")
    s.start_replica(write_model(models / "bytes", BYTES_MODEL), "byter", "1", "bytes")
    s.deploy("slow", "slowpoke", slo_micros=200_000, default_output="{\"fallback\": true}")
    s.start_replica(write_model(models / "slow", SLOW), "slowpoke", "1")
    s.deploy("versioned", "ver", version="1")
    s.deploy("versioned", "ver", version="2")
    s.start_replica(write_model(models / "ver", VERSIONED), "ver", "1")
    s.start_replica(write_model(models / "ver", VERSIONED), "ver", "2")
    s.deploy("unlinked", "nothing", link=False)
    for model, version in [("summer", "1"), ("typed", "1"), ("raiser", "1"), ("byter", "1"),
                           ("slowpoke", "1"), ("ver", "1"), ("ver", "2")]:
        s.wait_connected(model, version=version)
    yield s
    s.close()


def test_single_prediction(serving: Serving) -> None:
    r = serving.post("sum", {"input": [1.0, 2.0, 3.5]})
    assert r.status_code == 200
    body = r.json()
    assert body["output"] == 6.5 and body["default"] is False
    assert isinstance(body["query_id"], int)


def test_trailing_slash(serving: Serving) -> None:
    r = serving.http.post("/sum/predict/", json={"input": [2.0]})
    assert r.status_code == 200 and r.json()["output"] == 2.0


def test_batch_prediction_in_order(serving: Serving) -> None:
    r = serving.post("sum", {"input_batch": [[1.0], [2.0, 3.0], [10.0, 20.0, 30.0]]})
    assert r.status_code == 200
    preds = r.json()["batch_predictions"]
    assert [p["output"] for p in preds] == [1.0, 5.0, 60.0]
    assert len({p["query_id"] for p in preds}) == 3


def test_integers_accepted_for_doubles(serving: Serving) -> None:
    assert serving.post("sum", {"input": [1, 2]}).json()["output"] == 3.0


def test_outputs_parsed_as_json(serving: Serving) -> None:
    def out(s: str):
        return serving.post("typed", {"input": s}).json()["output"]

    assert out("dict") == {"label": "cat", "p": [0.25, 0.75]}
    assert out("json-string") == 1
    assert out("plain") == "hello world"
    assert out("numpy") == [0, 1, 2]
    assert out("abcd") == 4


def test_strings_and_base64_bytes_inputs(serving: Serving) -> None:
    r = serving.post("typed", {"input": "ünïcode"})
    assert r.json()["output"] == 7
    payload = bytes([0, 1, 2, 254, 255])
    r = serving.post("bytes", {"input": base64.b64encode(payload).decode()})
    assert r.status_code == 200 and r.json()["output"] == payload.hex()


def test_bad_base64_is_400(serving: Serving) -> None:
    r = serving.post("bytes", {"input": "not base64!!"})
    assert r.status_code == 400 and "base64" in r.json()["cause"]


def test_version_pinning(serving: Serving) -> None:
    assert serving.post("versioned", {"input": [1.0]}).json()["output"] == "v2"
    assert serving.post("versioned", {"input": [1.0], "version": "1"}).json()["output"] == "v1"
    assert serving.post("versioned", {"input": [1.0], "version": 2}).json()["output"] == "v2"


def test_unknown_version_exact_error(serving: Serving) -> None:
    r = serving.post("versioned", {"input": [1.0], "version": "9"})
    assert r.status_code == 400
    assert r.json()["cause"] == "Requested version: 9 does not exist for model: ver"
    assert "error" in r.json()


def test_current_version_switch_takes_effect_within_a_second(serving: Serving) -> None:
    serving.store.set_current_version("ver", "1")
    try:
        t0 = time.monotonic()
        wait_until(lambda: serving.post("versioned", {"input": [3.0]}).json()["output"] == "v1",
                   timeout=1.5, interval=0.02, what="version switch")
        assert time.monotonic() - t0 < 1.5
    finally:
        serving.store.set_current_version("ver", "2")


def test_default_when_no_model_linked(serving: Serving) -> None:
    r = serving.post("unlinked", {"input": [1.0]})
    assert r.status_code == 200
    body = r.json()
    assert body["default"] is True and body["output"] == "default"
    assert body["default_explanation"] == "No connected models found for query"


def test_default_when_slo_missed_and_late_answer_cached(serving: Serving) -> None:
    t0 = time.monotonic()
    body = serving.post("slow", {"input": [42.0]}).json()
    took = time.monotonic() - t0
    assert body["default"] is True
    assert body["output"] == {"fallback": True}
    assert body["default_explanation"] == ("Failed to retrieve a prediction response within "
                                           "the specified latency SLO")
    assert took < 0.6, f"SLO is 200 ms, response took {took:.3f} s"
    # The model's late answer lands in the cache: the same query now hits it.
    time.sleep(1.2)
    body = serving.post("slow", {"input": [42.0]}).json()
    assert body == {"query_id": body["query_id"], "output": "late", "default": False}


def test_an_input_given_up_in_the_queue_is_evaluated_when_asked_again(
        serving: Serving) -> None:
    # The slow model (1 s) is busy with the first input while the second
    # waits in the queue past its SLO; the queue then drops it unevaluated.
    # Asked again, the second input must start a new evaluation (whose late
    # answer fills the cache), not join the one that was given up.
    first, second = [float(time.monotonic_ns())], [float(time.monotonic_ns() + 1)]
    assert serving.post("slow", {"input": first}).json()["default"] is True
    assert serving.post("slow", {"input": second}).json()["default"] is True
    time.sleep(1.2)  # the first is answered; the second is dropped, expired
    assert serving.post("slow", {"input": second}).json()["default"] is True
    time.sleep(1.2)
    body = serving.post("slow", {"input": second}).json()
    assert body["default"] is False and body["output"] == "late"


def test_model_that_raises_gives_default_with_error(serving: Serving) -> None:
    r = serving.post("raising", {"input_batch": [[-1.0]]})
    assert r.status_code == 200
    p = r.json()["batch_predictions"][0]
    assert p["default"] is True and p["output"] == -1
    assert "ValueError" in p["default_explanation"]
    assert "negative input" in p["default_explanation"]
    # The replica survived and still serves.
    assert serving.post("raising", {"input": [5.0]}).json()["output"] == 5.0


def test_unknown_app_is_404(serving: Serving) -> None:
    r = serving.post("no-such-app", {"input": [1.0]})
    assert r.status_code == 404 and "no-such-app" in r.json()["cause"]


@pytest.mark.parametrize("body, needle", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"inputs": [1.0]}', "no \"input\""),
    (b'{"input": "a string"}', "list of numbers"),
    (b'{"input": ["a", "b"]}', "list of numbers"),
    (b'{"input": []}', "non-empty"),
    (b'{"input_batch": []}', "non-empty"),
    (b'{"input_batch": [1.0, 2.0]}', "list of numbers"),
    (b'{"input_batch": [[1.0], "x"]}', "list of numbers"),
    (b'{"input_batch": {"a": 1}}', "non-empty list"),
    (b'{"input": [1.0], "version": [1]}', "version"),
])
def test_bad_requests_are_400(serving: Serving, body: bytes, needle: str) -> None:
    r = serving.post("sum", body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["cause"]
    assert r.json()["error"]


def test_oversized_body_is_413_and_frontend_keeps_serving(serving: Serving) -> None:
    big = b'{"input": [' + b"1.0," * 40000 + b"1.0]}"
    r = serving.post("sum", big)
    assert r.status_code == 413
    assert serving.post("sum", {"input": [1.0]}).status_code == 200


def test_get_on_predict_is_405(serving: Serving) -> None:
    assert serving.http.get("/sum/predict").status_code == 405


def test_metrics(serving: Serving) -> None:
    serving.post("sum", {"input": [7.0, 7.0]})
    serving.post("sum", {"input": [7.0, 7.0]})
    m = serving.metrics()
    app = m["applications"]["sum"]
    assert app["requests"] >= 2
    assert set(app["latency_ms"]) >= {"p50", "p99"}
    assert "default_ratio" in app and "throughput_qps" in app
    model = m["models"]["summer:1"]
    assert model["connected_replicas"] == 1 and model["batches"] >= 1
    assert "queue_length" in model and "mean_batch_size" in model
    assert m["cache"]["hits"] >= 1 and m["cache"]["misses"] >= 1
    assert m["store"]["healthy"] is True


def test_health_endpoints(serving: Serving) -> None:
    assert serving.http.get("/healthz").status_code == 200
    r = serving.http.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True


def test_app_registered_later_goes_live_within_a_second(serving: Serving) -> None:
    from clipper_core.models import Application

    serving.store.add_application(Application.create("late-app", "doubles", "d", 100000))
    serving.store.set_link("late-app", "summer")
    t0 = time.monotonic()
    wait_until(lambda: serving.post("late-app", {"input": [1.0]}).status_code == 200,
               timeout=1.5, interval=0.02, what="late app live")
    assert time.monotonic() - t0 < 1.5
    serving.store.delete_application("late-app")
    wait_until(lambda: serving.post("late-app", {"input": [1.0]}).status_code == 404,
               timeout=1.5, interval=0.02, what="late app gone")


# ---------------------------------------------------------------------------
# Replicas dying, frontends restarting
# ---------------------------------------------------------------------------


async def _load(port: int, app: str, seconds: float, concurrency: int) -> list[httpx.Response]:
    results: list[httpx.Response] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        async def worker(i: int) -> None:
            n = 0
            while time.monotonic() < stop:
                n += 1
                results.append(await client.post(f"/{app}/predict",
                                                 json={"input": [float(i), float(n)]}))
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return results


SLEEPY = """
import time
def predict(inputs):
    time.sleep(0.002)
    return [str(float(sum(x))) for x in inputs]
"""


def test_replica_killed_mid_load(tmp_path: Path) -> None:
    s = Serving(tmp_path)
    try:
        s.start_frontend()
        s.deploy("app", "m", slo_micros=1_000_000)
        model = write_model(tmp_path / "m", SLEEPY)
        victim = s.start_replica(model, "m", "1")
        s.start_replica(model, "m", "1")
        s.wait_connected("m", 2)

        async def scenario() -> list[httpx.Response]:
            load = asyncio.create_task(_load(s.port, "app", 3.0, 16))
            await asyncio.sleep(1.0)
            kill(victim)
            return await load

        results = asyncio.run(scenario())
        assert results, "no requests were made"
        assert all(r.status_code == 200 for r in results)
        bodies = [r.json() for r in results]
        for b in bodies:
            if b["default"]:
                assert b["default_explanation"].startswith("Failed to retrieve")
        served = sum(not b["default"] for b in bodies)
        assert served / len(bodies) > 0.9, f"only {served} of {len(bodies)} served"
        wait_until(lambda: s.connected("m") == 1, timeout=5, what="killed replica dropped")
    finally:
        s.close()


HANGS = """
import time
def predict(inputs):
    time.sleep(60)
    return ["never"] * len(inputs)
"""


def test_batch_in_flight_on_a_killed_replica_is_answered_by_another(tmp_path: Path) -> None:
    # The victim holds the batch; its TCP disconnect must be noticed at once
    # and the batch handed to the surviving replica, well inside the SLO.
    s = Serving(tmp_path)
    try:
        s.start_frontend()
        s.deploy("app", "m", slo_micros=20_000_000)
        victim = s.start_replica(write_model(tmp_path / "hang", HANGS), "m", "1")
        s.wait_connected("m", 1)

        async def scenario() -> tuple[httpx.Response, float]:
            async with httpx.AsyncClient(timeout=30) as client:
                query = asyncio.create_task(client.post(
                    f"http://127.0.0.1:{s.port}/app/predict", json={"input": [2.0, 3.0]}))
                await asyncio.sleep(1.0)  # the batch is now on the victim
                await asyncio.to_thread(s.start_replica,
                                        write_model(tmp_path / "ok", SUM_MODEL), "m", "1")
                await asyncio.to_thread(s.wait_connected, "m", 2)
                killed_at = time.monotonic()
                kill(victim)
                response = await query
                return response, time.monotonic() - killed_at

        response, after_kill = asyncio.run(scenario())
        body = response.json()
        assert body["default"] is False and body["output"] == 5.0, body
        assert after_kill < 5.0, f"answered {after_kill:.1f} s after the kill"
        wait_until(lambda: s.connected("m") == 1, timeout=2, what="killed replica dropped")
    finally:
        s.close()


def test_frontend_restart_replicas_reconnect(tmp_path: Path) -> None:
    s = Serving(tmp_path)
    try:
        s.start_frontend()
        s.deploy("app", "m")
        s.start_replica(write_model(tmp_path / "m", SUM_MODEL), "m", "1")
        s.wait_connected("m")
        assert s.post("app", {"input": [1.0]}).json()["output"] == 1.0
        s.stop_frontend()
        s.start_frontend()
        s.wait_connected("m", timeout=10)
        # The very first query after the reconnect is answered by the replica.
        body = s.post("app", {"input": [2.0, 2.0]}).json()
        assert body["default"] is False and body["output"] == 4.0
    finally:
        s.close()


def test_replica_started_before_frontend_connects(tmp_path: Path) -> None:
    s = Serving(tmp_path)
    try:
        s.deploy("app", "m")
        s.start_replica(write_model(tmp_path / "m", SUM_MODEL), "m", "1")
        time.sleep(0.5)
        s.start_frontend()
        s.wait_connected("m", timeout=10)
        assert s.post("app", {"input": [3.0]}).json()["output"] == 3.0
    finally:
        s.close()


def test_replica_records_are_renewed_while_connected(tmp_path: Path) -> None:
    # The lease: a live frontend keeps rewriting its replicas' records, so a
    # record that stops changing belongs to a frontend that died unannounced.
    s = Serving(tmp_path, frontend_args=("--replica-lease-s", "1.5"))
    try:
        s.start_frontend()
        s.deploy("app", "m")
        s.start_replica(write_model(tmp_path / "m", SUM_MODEL), "m", "1")
        s.wait_connected("m")
        wait_until(lambda: len(s.store.list_replicas()) == 1, timeout=5, what="replica record")
        first = s.store.list_replicas()[0].last_seen
        wait_until(lambda: s.store.list_replicas()[0].last_seen > first, timeout=5,
                   what="the replica record renewed")
        record = s.store.list_replicas()[0]
        assert record.connected and record.live(time.time(), lease_s=1.5)
        assert s.frontend is not None
        kill(s.frontend)  # no chance to delete its records
        time.sleep(2.0)
        record = s.store.list_replicas()[0]
        assert record.connected and not record.live(time.time(), lease_s=1.5)
    finally:
        s.close()
