"""Several models per application, its selection policy, and the policy-state
key space, in every built-in state store (memory, SQLite, Redis)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import free_port

from clipper_core.errors import NotFoundError
from clipper_core.interfaces import StateStore
from clipper_core.models import Application, ModelVersion
from clipper_core.plugins import open_store
from clipper_core.testing.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        server = request.getfixturevalue("redis_server")
        url = f"{server.url}?prefix=t-{uuid.uuid4().hex[:12]}"
    opened: StateStore = open_store(url)
    for name in ("m-a", "m-b", "m-c"):
        opened.add_model(ModelVersion.create(name, "1", "doubles"))
    opened.add_application(Application.create("app", "doubles", "-1", 100_000))
    yield opened
    opened.close()


def test_several_models_and_a_policy_round_trip(store: StateStore) -> None:
    app = store.get_application("app")
    assert app is not None and not app.selects
    chosen = attrs.evolve(app, linked_model="m-a", other_models=("m-b", "m-c"),
                          selection_policy="exp4", policy_params={"eta": 0.5},
                          confidence_threshold=0.6)
    before = store.revision()
    store.set_selection(chosen)
    assert store.revision() > before, "a policy is configuration: the revision moves"
    assert store.get_application("app") == chosen
    assert store.list_applications() == [chosen]
    snap = store.snapshot()
    assert snap.applications["app"] == chosen
    assert snap.applications["app"].linked_models == ("m-a", "m-b", "m-c")
    wire = chosen.to_wire()
    assert wire["linked_models"] == ["m-a", "m-b", "m-c"]
    assert Application.from_wire(wire) == chosen


def test_an_app_registered_with_a_policy_keeps_it(store: StateStore) -> None:
    app = attrs.evolve(Application.create("app2", "doubles", "-1", 100_000),
                       selection_policy="split", policy_params={"weights": {"m-a": 1}})
    store.add_application(app)
    assert store.get_application("app2") == app


def test_unknown_models_are_refused(store: StateStore) -> None:
    app = store.get_application("app")
    assert app is not None
    with pytest.raises(NotFoundError, match="m-zzz"):
        store.set_selection(attrs.evolve(app, linked_model="m-a", other_models=("m-zzz",)))
    with pytest.raises(NotFoundError):
        store.set_selection(attrs.evolve(app, name="nope"))
    assert store.get_application("app") == app


def test_policy_state_is_apart_from_the_configuration(store: StateStore) -> None:
    assert store.policy_states("app") == {}
    before = store.revision()
    new = store.update_policy_state("app", "", lambda old: {"n": (old or {"n": 0})["n"] + 1})
    assert new == {"n": 1}
    store.update_policy_state("app", "uid:7", lambda old: {"w": [0.5, 0.5]})
    store.update_policy_state("app", "", lambda old: {"n": (old or {"n": 0})["n"] + 1})
    assert store.policy_states("app") == {"": {"n": 2}, "uid:7": {"w": [0.5, 0.5]}}
    assert store.revision() == before, "feedback must not rebuild every frontend's routes"
    store.delete_application("app")
    assert store.policy_states("app") == {}


def test_policy_state_updates_are_atomic(store: StateStore) -> None:
    def bump(old: dict[str, Any] | None) -> dict[str, Any]:
        return {"n": (old or {"n": 0})["n"] + 1}

    def worker() -> None:
        for _ in range(25):
            store.update_policy_state("app", "", bump)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.policy_states("app")[""] == {"n": 100}
