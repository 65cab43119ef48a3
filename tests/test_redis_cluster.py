"""Several query frontends on one Redis state store, end to end (issue 6).

Real processes only: a throw-away ``redis-server`` with AOF persistence, a
management frontend, two query frontends and a model replica that serves
both (``CLIPPER_FRONTENDS``), all over loopback.  The tests run in file
order on one module-scoped cluster (later ones rely on apps and replicas
that earlier ones registered); each leaves Redis and the cluster running.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import Cluster, Frontend, LoadGenerator
from conftest import free_port, wait_until
from serving import write_model

from clipper_core.plugins import open_store
from clipper_core.testing.state_store import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

#: The replica answers with who it is, so a test can tell which process answered.
WHOAMI = """
import json, os

def predict(inputs):
    return [json.dumps({"replica": os.environ["CLIPPER_REPLICA_ID"], "pid": os.getpid(),
                        "sum": sum(x)}) for x in inputs]
"""

#: How soon a registration must be live on every frontend (issue 6).
LIVE_WITHIN = 1.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            redis_server: RedisServer) -> Iterator[Cluster]:
    """Cluster A (prefix ``cluster-a``): app ``echo`` linked to model ``who``
    v1, served by one replica ``r0`` connected to both query frontends."""
    tmp = tmp_path_factory.mktemp("cluster-a")
    c = Cluster(tmp, f"{redis_server.url}?prefix=cluster-a", n_frontends=2, name="a")
    try:
        c.start()
        c.deploy("echo", "who")
        c.start_replica(write_model(tmp / "who", WHOAMI), "who", "1", replica_id="r0")
        c.wait_connected("who")
        yield c
    except BaseException:
        print(c.log_text())
        raise
    finally:
        c.close()


def _output(fe: Frontend, app: str, x: list[float]) -> dict[str, Any]:
    r = fe.predict(app, {"input": x})
    assert r.status_code == 200, (fe.id, r.status_code, r.text)
    body = r.json()
    assert body["default"] is False, (fe.id, body)
    return body["output"]


def _wait_live(cluster: Cluster, check: Callable[[Frontend], bool], what: str,
               limit: float = LIVE_WITHIN) -> float:
    """Seconds until ``check(fe)`` holds on every query frontend; fails the
    test when that takes longer than ``limit``."""
    t0 = time.monotonic()
    pending = list(cluster.frontends)
    while pending:
        pending = [fe for fe in pending if not check(fe)]
        took = time.monotonic() - t0
        if pending and took > limit:
            raise AssertionError(f"{what} not live on {[fe.id for fe in pending]} after "
                                 f"{took:.2f}s (limit {limit}s)")
        time.sleep(0.01)
    return time.monotonic() - t0


def _answers_from_model(app: str) -> Callable[[Frontend], bool]:
    def check(fe: Frontend) -> bool:
        r = fe.predict(app, {"input": [time.monotonic()]})
        return r.status_code == 200 and r.json()["default"] is False
    return check


def _store_health(fe: Frontend) -> tuple[bool, int]:
    return fe.metrics()["store"]["healthy"], fe.readyz().status_code


# ---------------------------------------------------------------------------


def test_two_frontends_serve_one_app_with_one_replica(cluster: Cluster,
                                                      redis_server: RedisServer) -> None:
    (replica,) = cluster.replicas
    answers = [_output(fe, "echo", [1.0, 2.0, float(i)]) for i, fe in
               enumerate(cluster.frontends)]
    assert [a["replica"] for a in answers] == ["r0", "r0"]
    assert [a["pid"] for a in answers] == [replica.pid, replica.pid]
    assert [a["sum"] for a in answers] == [3.0, 4.0]
    for fe in cluster.frontends:
        assert fe.metrics()["rpc"]["connected_replicas"] == 1
    # Each frontend recorded its own connection of r0 in the shared store ...
    store = open_store(f"{redis_server.url}?prefix=cluster-a")
    try:
        def recorded_by() -> list[str]:
            return sorted(r.frontend for r in store.list_replicas()
                          if r.replica_id == "r0" and r.connected)
        wait_until(lambda: recorded_by() == sorted(fe.id for fe in cluster.frontends),
                   timeout=5, what="replica records of r0 by both frontends")
    finally:
        store.close()
    # ... and the management API shows the one replica once.
    containers = cluster.admin_ok("get_all_containers", verbose=True)
    assert [(c["model_name"], c["model_version"], c["model_replica_id"], c["connected"])
            for c in containers] == [("who", "1", "r0", True)]


def test_registration_is_live_on_both_frontends_within_a_second(cluster: Cluster) -> None:
    for fe in cluster.frontends:
        assert fe.predict("late", {"input": [1.0]}).status_code == 404
    cluster.admin_ok("add_app", name="late", input_type="doubles", default_output="nope",
                     latency_slo_micros=2_000_000)
    took_app = _wait_live(cluster, lambda fe: fe.predict("late", {"input": [1.0]})
                          .status_code == 200, "app late")
    # Registered but not linked: the default output, with Clipper's explanation.
    body = cluster.frontends[1].predict("late", {"input": [1.0]}).json()
    assert body["default"] is True and body["output"] == "nope"
    assert body["default_explanation"] == "No connected models found for query"
    cluster.admin_ok("add_model_links", app_name="late", model_names=["who"])
    took_link = _wait_live(cluster, _answers_from_model("late"), "link late -> who")
    assert _output(cluster.frontends[0], "late", [5.0])["replica"] == "r0"
    print(f"app live after {took_app:.3f}s, link live after {took_link:.3f}s")


def test_redis_restart_loses_nothing(cluster: Cluster, redis_server: RedisServer) -> None:
    # Versions whose current one is not the newest, an app linked to them.
    for v in ("1", "2", "3"):
        cluster.admin_ok("add_model", model_name="multi", model_version=v,
                         input_type="doubles", image=f"multi:{v}", labels=[f"l{v}"],
                         batch_size=4)
    cluster.admin_ok("set_model_version", model_name="multi", model_version="2")
    cluster.admin_ok("add_app", name="multi-app", input_type="doubles", default_output="d",
                     latency_slo_micros=50_000)
    cluster.admin_ok("add_model_links", app_name="multi-app", model_names=["multi"])
    url = f"{redis_server.url}?prefix=cluster-a"
    store = open_store(url)
    before_snapshot, before_replicas = store.snapshot(), store.list_replicas()
    store.close()
    before = cluster.state()
    assert before["links"]["multi-app"] == ["multi"]
    assert [m["model_version"] for m in before["models"]
            if m["model_name"] == "multi" and m["is_current_version"]] == ["2"]
    for fe in cluster.frontends:
        wait_until(lambda fe=fe: fe.metrics()["store"]["revision"] == before_snapshot.revision,
                   timeout=LIVE_WITHIN, what=f"{fe.id} at revision {before_snapshot.revision}")

    redis_server.restart()  # --save "" : only the append-only file can bring data back

    store = open_store(url)
    try:
        assert store.snapshot() == before_snapshot
        assert store.list_replicas() == before_replicas
    finally:
        store.close()
    assert wait_until(lambda: cluster.state(), timeout=5, what="management after restart") \
        == before
    for fe in cluster.frontends:
        wait_until(lambda fe=fe: _store_health(fe) == (True, 200), timeout=5,
                   what=f"{fe.id} healthy after the restart")
        assert fe.metrics()["store"]["revision"] == before_snapshot.revision
        assert _output(fe, "echo", [7.0])["replica"] == "r0"
    # The frontends follow the restarted server: a change is live within a second.
    cluster.admin_ok("set_model_version", model_name="who", model_version="1")  # no-op write
    cluster.admin_ok("add_app", name="after-restart", input_type="doubles",
                     default_output="d", latency_slo_micros=2_000_000)
    cluster.admin_ok("add_model_links", app_name="after-restart", model_names=["who"])
    _wait_live(cluster, _answers_from_model("after-restart"), "app after-restart")


def test_redis_down_during_load(cluster: Cluster, redis_server: RedisServer) -> None:
    before = cluster.state()
    load = LoadGenerator([fe.port for fe in cluster.frontends], "echo").start()
    try:
        wait_until(lambda: load.count >= 100, timeout=20, what="100 requests before the outage")
        # Redis crashes (SIGKILL, no shutdown); stop() only reaps it.
        assert redis_server.proc is not None
        os.kill(redis_server.proc.pid, signal.SIGKILL)
        redis_server.stop()
        at_outage = load.count

        for fe in cluster.frontends:
            wait_until(lambda fe=fe: _store_health(fe) == (False, 503), timeout=5,
                       what=f"{fe.id} reporting the store unhealthy")
            metrics = fe.metrics()["store"]
            assert "unavailable" in metrics["error"], metrics
            ready = fe.readyz().json()
            assert ready["ready"] is False and ready["store_healthy"] is False
            assert ready["configuration_loaded"] is True

        # Registration is refused with 503 and a message saying why.
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("add_app", {"name": "outage", "input_type": "doubles", "default_output": "d",
                         "latency_slo_micros": 100_000}),
            ("add_model", {"model_name": "outage-model", "model_version": "1",
                           "input_type": "doubles"}),
            ("add_model_links", {"app_name": "echo", "model_names": ["multi"]}),
            ("set_model_version", {"model_name": "multi", "model_version": "3"}),
            ("delete_app", {"name": "late"}),
        ]
        for endpoint, body in attempts:
            r = cluster.admin(endpoint, **body)
            assert r.status_code == 503, (endpoint, r.status_code, r.text)
            err = r.json()
            assert err["error"] == "store_unavailable"
            assert "state store" in err["cause"] and "unavailable" in err["cause"], err
        assert cluster.admin_http.get("/admin/ping").status_code == 503

        wait_until(lambda: load.count >= at_outage + 150, timeout=20,
                   what="150 requests during the outage")

        redis_server.start()
        for fe in cluster.frontends:
            wait_until(lambda fe=fe: _store_health(fe) == (True, 200), timeout=5,
                       what=f"{fe.id} healthy again")
        # Nothing of the refused registrations was written.
        assert wait_until(lambda: cluster.state(), timeout=5, what="management back") == before
        assert cluster.admin_ok("get_application", name="outage") is None
        # Registration works again and the frontends pick it up.
        cluster.deploy("outage", "outage-model")
        _wait_live(cluster, lambda fe: fe.predict("outage", {"input": [1.0]}).status_code == 200,
                   "app outage")
        at_recovery = load.count
        wait_until(lambda: load.count >= at_recovery + 50, timeout=20,
                   what="50 requests after the outage")
    finally:
        load.stop()
    statuses = load.statuses()
    assert load.count >= 300, statuses
    assert not load.errors, load.errors[:5]
    assert statuses == {200: load.count}, statuses
    defaults = [d for _, d in load.results if d is not False]
    assert defaults == [], f"{len(defaults)} of {load.count} answers were default outputs"


def test_redis_hanging_does_not_stall_queries(cluster: Cluster,
                                              redis_server: RedisServer) -> None:
    """A Redis that stops answering (SIGSTOP: connections stay open, no
    replies) is noticed through timeouts; queries never wait for it."""
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    load = LoadGenerator([fe.port for fe in cluster.frontends], "echo").start()
    try:
        wait_until(lambda: load.count >= 50, timeout=20, what="50 requests before the hang")
        os.kill(pid, signal.SIGSTOP)
        try:
            at_hang = load.count
            t0 = time.monotonic()
            r = cluster.admin("add_app", name="hung", input_type="doubles",
                              default_output="d", latency_slo_micros=100_000)
            assert r.status_code == 503, r.text
            assert "Timeout" in r.json()["cause"], r.text
            assert time.monotonic() - t0 < 5, "the management frontend waited too long"
            for fe in cluster.frontends:
                wait_until(lambda fe=fe: _store_health(fe) == (False, 503), timeout=6,
                           what=f"{fe.id} reporting the hanging store unhealthy")
            wait_until(lambda: load.count >= at_hang + 100, timeout=10,
                       what="100 requests while Redis hangs")
        finally:
            os.kill(pid, signal.SIGCONT)
        for fe in cluster.frontends:
            wait_until(lambda fe=fe: _store_health(fe) == (True, 200), timeout=6,
                       what=f"{fe.id} healthy after the hang")
        # The timed-out write was already in Redis's socket: its outcome is
        # unknown to the caller (503), and Redis may apply it on waking.  What
        # must hold is that the cluster agrees with the store afterwards.
        exists = cluster.admin_ok("get_application", name="hung") is not None
        for fe in cluster.frontends:
            wait_until(lambda fe=fe: (fe.predict("hung", {"input": [1.0]}).status_code
                                      != 404) == exists, timeout=6,
                       what=f"{fe.id} agreeing with the store about the app")
    finally:
        load.stop()
    assert not load.errors, load.errors[:5]
    assert load.statuses() == {200: load.count}
    assert [d for _, d in load.results if d is not False] == []


def test_replica_changes_during_an_outage_reach_the_store_on_return(
        cluster: Cluster, redis_server: RedisServer, tmp_path: Path) -> None:
    """Replica r1 connects and r0 dies while Redis is down: the frontends
    serve with r1 at once, and write both changes when Redis is back."""
    old, = cluster.replicas
    redis_server.stop()
    for fe in cluster.frontends:
        wait_until(lambda fe=fe: _store_health(fe) == (False, 503), timeout=5,
                   what=f"{fe.id} reporting the store unhealthy")
    cluster.start_replica(write_model(tmp_path / "who", WHOAMI), "who", "1", replica_id="r1")
    cluster.wait_connected("who", n=2)
    old.kill()
    old.wait()
    cluster.replicas.remove(old)
    for fe in cluster.frontends:
        wait_until(lambda fe=fe: fe.connected("who") == 1, timeout=5, what=f"{fe.id} drops r0")
        assert _output(fe, "echo", [time.monotonic()])["replica"] == "r1"
    redis_server.start()
    for fe in cluster.frontends:
        wait_until(lambda fe=fe: _store_health(fe) == (True, 200), timeout=5,
                   what=f"{fe.id} healthy again")

    def containers() -> list[tuple[str, str, str, bool]]:
        return [(c["model_name"], c["model_version"], c["model_replica_id"], c["connected"])
                for c in cluster.admin_ok("get_all_containers", verbose=True)]
    wait_until(lambda: containers() == [("who", "1", "r1", True)], timeout=3,
               what="get_all_containers showing r1 only")
    store = open_store(f"{redis_server.url}?prefix=cluster-a")
    try:
        assert sorted((r.replica_id, r.frontend) for r in store.list_replicas()) == [
            ("r1", fe.id) for fe in cluster.frontends]
    finally:
        store.close()


def test_query_frontend_restart(cluster: Cluster, redis_server: RedisServer) -> None:
    """One frontend stops: it takes its replica records with it and the other
    serves on; back on its ports, it loads the configuration from Redis and
    the replica serves it again."""
    fe0, fe1 = cluster.frontends
    replica_id = _output(fe0, "echo", [time.monotonic()])["replica"]

    def records() -> list[tuple[str, str]]:
        store = open_store(f"{redis_server.url}?prefix=cluster-a")
        try:
            return sorted((r.replica_id, r.frontend) for r in store.list_replicas())
        finally:
            store.close()
    assert records() == [(replica_id, fe0.id), (replica_id, fe1.id)]

    cluster.stop_frontend(fe1)
    assert records() == [(replica_id, fe0.id)]
    for i in range(20):
        assert _output(fe0, "echo", [float(i), time.monotonic()])["replica"] == replica_id

    cluster.start_frontend(fe1)
    # Apps registered before the restart, by REST, are known from the store.
    assert fe1.predict("outage", {"input": [1.0]}).status_code == 200
    wait_until(lambda: fe1.connected("who") == 1, timeout=10, what="the replica back on fe1")
    assert _output(fe1, "echo", [time.monotonic()])["replica"] == replica_id
    wait_until(lambda: records() == [(replica_id, fe0.id), (replica_id, fe1.id)], timeout=3,
               what="fe1's replica record back")


def test_key_prefixes_separate_clusters(cluster: Cluster, redis_server: RedisServer,
                                        tmp_path: Path) -> None:
    other = Cluster(tmp_path, f"{redis_server.url}?prefix=cluster-b", n_frontends=1, name="b")
    try:
        other.start()
        (fe_b,) = other.frontends
        assert other.admin_ok("get_all_applications") == []
        assert other.admin_ok("get_all_models") == []
        assert other.admin_ok("get_all_containers") == []
        assert fe_b.predict("echo", {"input": [1.0]}).status_code == 404
        # The same name in both clusters: no conflict, each serves its own.
        other.admin_ok("add_app", name="echo", input_type="doubles", default_output="from-b",
                       latency_slo_micros=100_000)
        other.admin_ok("add_app", name="only-b", input_type="doubles", default_output="b",
                       latency_slo_micros=100_000)
        wait_until(lambda: fe_b.predict("only-b", {"input": [1.0]}).status_code == 200,
                   timeout=LIVE_WITHIN, what="only-b live in cluster b")
        body = fe_b.predict("echo", {"input": [1.0]}).json()
        assert (body["output"], body["default"]) == ("from-b", True)
        # An app registered in a while b runs is live in a only.
        cluster.admin_ok("add_app", name="only-a", input_type="doubles", default_output="a",
                         latency_slo_micros=100_000)
        _wait_live(cluster, lambda fe: fe.predict("only-a", {"input": [1.0]})
                   .status_code == 200, "app only-a")
        # Cluster a neither sees b's apps nor is its echo changed; b no a's.
        time.sleep(LIVE_WITHIN)
        assert fe_b.predict("only-a", {"input": [1.0]}).status_code == 404
        assert other.admin_ok("get_application", name="only-a") is None
        for fe in cluster.frontends:
            assert fe.predict("only-b", {"input": [1.0]}).status_code == 404
            assert _output(fe, "echo", [2.0])["replica"] in ("r0", "r1")
        assert cluster.admin_ok("get_application", name="only-b") is None
        assert fe_b.predict("late", {"input": [1.0]}).status_code == 404
        assert fe_b.connected("who") == 0
        assert sorted(other.admin_ok("get_all_applications")) == ["echo", "only-b"]
        assert fe_b.metrics()["store"]["revision"] != cluster.frontends[0].metrics()[
            "store"]["revision"]
    except BaseException:
        print(other.log_text())
        raise
    finally:
        other.close()


def test_cluster_started_before_redis(tmp_path: Path) -> None:
    """Frontends whose Redis is not up yet start anyway, say so (503), and
    work as soon as it is."""
    server = RedisServer(tmp_path / "redis", free_port())
    c = Cluster(tmp_path, f"{server.url}?prefix=early", n_frontends=1, name="early")
    (fe,) = c.frontends
    try:
        c.spawn()
        c.wait_up()
        assert c.admin_http.get("/admin/ping").status_code == 503
        r = c.admin("add_app", name="x", input_type="doubles", default_output="d",
                    latency_slo_micros=100_000)
        assert r.status_code == 503 and r.json()["error"] == "store_unavailable", r.text
        ready = fe.readyz()
        assert ready.status_code == 503, ready.text
        assert ready.json()["configuration_loaded"] is False
        assert fe.metrics()["store"]["healthy"] is False
        assert fe.predict("x", {"input": [1.0]}).status_code == 404

        server.start()
        wait_until(lambda: c.admin_http.get("/admin/ping").status_code == 200, timeout=5,
                   what="management reaching Redis")
        wait_until(lambda: fe.readyz().status_code == 200, timeout=5,
                   what="query frontend reaching Redis")
        c.admin_ok("add_app", name="x", input_type="doubles", default_output="d",
                   latency_slo_micros=100_000)
        _wait_live(c, lambda fe: fe.predict("x", {"input": [1.0]}).status_code == 200, "app x")
    except BaseException:
        print(c.log_text())
        raise
    finally:
        c.close()
        server.stop()
