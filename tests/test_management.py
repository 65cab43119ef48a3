"""The management frontend's edge cases, through the ASGI test client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from starlette.testclient import TestClient

from clipper_core.models import REPLICA_LEASE_S, InputType, Replica
from clipper_core.plugins import open_store
from clipper_frontends.management import create_app

APP = {"name": "app1", "input_type": "doubles", "default_output": "-1",
       "latency_slo_micros": 100000}
MODEL = {"model_name": "m", "model_version": "1", "labels": ["l"], "input_type": "doubles",
         "container_name": "img:1", "batch_size": -1}


@pytest.fixture
def store() -> Iterator[Any]:
    s = open_store("memory://")
    yield s
    s.close()


@pytest.fixture
def client(store: Any) -> Iterator[TestClient]:
    with TestClient(create_app(store, max_body_bytes=4096)) as c:
        yield c


def post(client: TestClient, path: str, body: Any = None, **kwargs: Any) -> Any:
    return client.post(f"/admin/{path}", json=body if body is not None else {}, **kwargs)


def error(resp: Any, status: int, kind: str, cause: str = "") -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "cause"}
    assert body["error"] == kind
    assert cause in body["cause"]
    return body["cause"]


# -- bodies -----------------------------------------------------------------

@pytest.mark.parametrize("content", [b"{", b"not json", b"", b"   "])
def test_malformed_json_is_400(client: TestClient, content: bytes) -> None:
    error(client.post("/admin/add_app", content=content), 400, "invalid_argument")


@pytest.mark.parametrize("content", [b"[]", b"1", b'"add"', b"null"])
def test_body_must_be_an_object(client: TestClient, content: bytes) -> None:
    error(client.post("/admin/add_app", content=content), 400, "invalid_argument",
          "must be a JSON object")


@pytest.mark.parametrize(("path", "body", "cause"), [
    ("add_app", {**APP, "latency_slo_micros": "100"}, "'latency_slo_micros' must be an integer"),
    ("add_app", {**APP, "latency_slo_micros": True}, "'latency_slo_micros' must be an integer"),
    ("add_app", {**APP, "default_output": 1}, "'default_output' must be a string"),
    ("add_app", {**APP, "name": ["app1"]}, "'name' must be a string"),
    ("add_app", {k: v for k, v in APP.items() if k != "input_type"}, "Missing field 'input_type'"),
    ("add_app", {**APP, "input_type": "tensors"}, "Invalid input type"),
    ("add_app", {**APP, "latency_slo_micros": -5}, "slo_micros"),
    ("add_app", {**APP, "name": "app/1"}, "Invalid application name 'app/1'"),
    ("add_app", {**APP, "name": ""}, "Invalid application name ''"),
    ("add_model", {**MODEL, "labels": "l"}, "'labels' must be a list"),
    ("add_model", {**MODEL, "labels": [1]}, "labels must be a list of strings"),
    ("add_model", {**MODEL, "batch_size": 2.5}, "'batch_size' must be an integer"),
    ("add_model", {**MODEL, "batch_size": 0}, "batch_size"),
    ("add_model", {**MODEL, "model_version": "V1"}, "Invalid model version 'V1'"),
    ("add_model", {**MODEL, "batching_policy": "nope"}, "Unknown batching policy 'nope'"),
    ("add_model_links", {"app_name": "app1", "model_names": "m"}, "'model_names' must be a list"),
    ("add_model_links", {"app_name": "app1", "model_names": ["m", "n"]}, "exactly one model"),
    ("get_all_models", {"verbose": "yes"}, "'verbose' must be a boolean"),
    ("get_container", {"model_name": "m", "model_version": "1", "replica_id": None},
     "'replica_id' must be a string or an integer, got null"),
])
def test_wrong_fields_are_400_and_store_nothing(client: TestClient, store: Any, path: str,
                                                body: dict[str, Any], cause: str) -> None:
    error(post(client, path, body), 400, "invalid_argument", cause)
    assert store.list_applications() == [] and store.list_models() == []


def test_oversize_body_is_413(client: TestClient, store: Any) -> None:
    big = {**APP, "default_output": "x" * 5000}
    error(post(client, "add_app", big), 413, "payload_too_large", "limit of 4096 bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"name": "app1", "default_output": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'
    error(client.post("/admin/add_app", content=chunks()), 413, "payload_too_large")
    assert store.list_applications() == []


def test_unknown_endpoint_and_wrong_method(client: TestClient) -> None:
    cause = error(post(client, "add_application", APP), 404, "not_found")
    assert "add_app" in cause
    error(client.get("/admin/add_app"), 405, "method_not_allowed", "POST only")
    error(client.post("/admin/ping"), 405, "method_not_allowed", "GET only")


# -- the endpoints ----------------------------------------------------------

def test_applications(client: TestClient, store: Any) -> None:
    assert post(client, "add_app", APP).json()["success"] is True
    error(post(client, "add_app", {**APP, "input_type": "ints"}), 409, "conflict",
          "Application with name 'app1' already exists")
    assert store.get_application("app1").input_type is InputType.DOUBLES
    assert post(client, "get_all_applications").json() == ["app1"]
    info = post(client, "get_all_applications", {"verbose": True}).json()
    assert info == [{"name": "app1", "input_type": "doubles", "default_output": "-1",
                     "latency_slo_micros": 100000, "linked_models": [],
                     "candidate_model_names": []}]
    assert post(client, "get_application", {"name": "app1"}).json() == info[0]
    assert post(client, "get_application", {"name": "app2"}).json() is None
    assert post(client, "delete_app", {"name": "app1"}).json()["success"] is True
    error(post(client, "delete_app", {"name": "app1"}), 404, "not_found", "No application")
    error(post(client, "get_linked_models", {"app_name": "app1"}), 404, "not_found")


def test_models(client: TestClient, store: Any) -> None:
    r = post(client, "add_model", MODEL)
    assert r.json()["model"]["is_current_version"] is True
    # Clipper's clients send the image as container_name; "image" works too,
    # and ints are accepted as versions.
    post(client, "add_model", {**MODEL, "model_version": 2, "container_name": None,
                               "image": "img:2", "batch_size": 16})
    error(post(client, "add_model", MODEL), 409, "conflict", "already exists")
    assert post(client, "get_all_models").json() == ["m:1", "m:2"]
    v2 = post(client, "get_model", {"model_name": "m", "model_version": 2}).json()
    assert v2 == {"model_name": "m", "model_version": "2", "input_type": "doubles",
                  "image": "img:2", "labels": ["l"], "batch_size": 16,
                  "batching_policy": "fixed", "is_current_version": True}
    post(client, "set_model_version", {"model_name": "m", "model_version": "1"})
    assert store.get_current_version("m") == "1"
    assert [m["is_current_version"] for m in
            post(client, "get_all_models", {"verbose": True}).json()] == [True, False]
    error(post(client, "set_model_version", {"model_name": "m", "model_version": "3"}),
          404, "not_found", "version '3'")
    error(post(client, "set_model_version", {"model_name": "x", "model_version": "1"}),
          404, "not_found", "No model with name 'x'")
    post(client, "delete_versioned_model", {"model_name": "m", "model_version": "2"})
    assert post(client, "get_model", {"model_name": "m", "model_version": "2"}).json() is None
    post(client, "add_model", {**MODEL, "model_name": "free", "container_name": "NO_CONTAINER",
                               "batching_policy": "delayed"})
    free = store.get_model("free", "1")
    assert free.image is None and free.batching_policy == "delayed"


def test_links(client: TestClient, store: Any) -> None:
    post(client, "add_app", APP)
    link = {"app_name": "app1", "model_names": ["m"]}
    error(post(client, "add_model_links", link), 404, "not_found", "No model with name 'm'")
    post(client, "add_model", {**MODEL, "input_type": "strings"})
    error(post(client, "add_model_links", link), 400, "invalid_argument", "must be the same")
    post(client, "add_model", {**MODEL, "model_version": "2"})  # current: doubles
    assert post(client, "add_model_links", link).status_code == 200
    assert post(client, "get_linked_models", {"app_name": "app1"}).json() == ["m"]
    post(client, "add_model", {**MODEL, "model_name": "n"})
    error(post(client, "add_model_links", {"app_name": "app1", "model_names": ["n"]}),
          409, "conflict", "at most one model")
    error(post(client, "delete_model_links", {"app_name": "app1", "model_names": ["n"]}),
          404, "not_found", "not linked")
    post(client, "delete_model_links", link)
    assert store.get_application("app1").linked_model is None


def test_containers(client: TestClient, store: Any) -> None:
    now = time.time()
    for frontend, connected, seen in (("a", False, now - 1), ("b", True, now - 5)):
        store.put_replica(Replica(model_name="m", model_version="1", replica_id="0",
                                  input_type=InputType.DOUBLES, connected=connected,
                                  frontend=frontend, last_seen=seen))
    store.put_replica(Replica(model_name="m", model_version="1", replica_id="1",
                              input_type=InputType.DOUBLES, frontend="a", last_seen=now))
    # A record of a frontend that was killed: never deleted, no longer renewed.
    store.put_replica(Replica(model_name="m", model_version="1", replica_id="2",
                              input_type=InputType.DOUBLES, frontend="killed",
                              last_seen=now - REPLICA_LEASE_S - 1))
    assert post(client, "get_all_containers").json() == ["m:1:0", "m:1:1", "m:1:2"]
    verbose = post(client, "get_all_containers", {"verbose": True}).json()
    assert [(r["model_replica_id"], r["connected"]) for r in verbose] == [
        ("0", True), ("1", True), ("2", False)]
    one = post(client, "get_container", {"model_name": "m", "model_version": "1",
                                         "replica_id": 0}).json()
    assert one["frontend"] == "b" and one["input_type"] == "doubles"
    assert post(client, "get_container", {"model_name": "m", "model_version": "1",
                                          "replica_id": "7"}).json() is None


def test_ping_plugins_healthz(client: TestClient) -> None:
    assert client.get("/admin/ping").json()["status"] == "ok"
    assert client.get("/healthz").json() == {"status": "ok"}
    names = {p["name"]: p for p in client.get("/admin/plugins").json()}
    assert names["clipper_core.batching"]["hooks"] == ["register_batching_policies"]
    assert names["clipper_core.batching"]["distribution"] == "clipper-core"


# -- authentication ---------------------------------------------------------

def test_token_guards_every_admin_path(store: Any) -> None:
    with TestClient(create_app(store, token="t0ken")) as client:
        for headers in ({}, {"Authorization": "Bearer t0ke"}, {"Authorization": "t0ken"},
                        {"Authorization": "Bearer t0ken2"}, {"Authorization": "bearer t0ken"}):
            error(post(client, "add_app", APP, headers=headers), 401, "unauthorized")
            error(post(client, "add_model", MODEL, headers=headers), 401, "unauthorized")
            error(post(client, "get_all_applications", headers=headers), 401, "unauthorized")
            error(client.get("/admin/ping", headers=headers), 401, "unauthorized")
            error(client.get("/admin/plugins", headers=headers), 401, "unauthorized")
            error(post(client, "no_such_thing", headers=headers), 401, "unauthorized")
        assert store.list_applications() == [] and store.list_models() == []
        assert client.get("/healthz").status_code == 200
        ok = {"Authorization": "Bearer t0ken"}
        assert post(client, "add_app", APP, headers=ok).status_code == 200
        assert post(client, "get_all_applications", headers=ok).json() == ["app1"]


# -- the store --------------------------------------------------------------

def test_store_down_is_503_then_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the store's directory should be")
    url = f"sqlite:///{blocker / 'state.db'}"
    with TestClient(create_app(url)) as client:
        cause = error(client.get("/admin/ping"), 503, "store_unavailable")
        assert "state.db" in cause
        error(post(client, "add_app", APP), 503, "store_unavailable")
        blocker.unlink()
        assert client.get("/admin/ping").status_code == 200
        assert post(client, "add_app", APP).status_code == 200
        assert post(client, "get_all_applications").json() == ["app1"]
    # The app opened the store from its URL, so it closed it on shutdown; the
    # data is in the file.
    reopened = open_store(url)
    try:
        assert [a.name for a in reopened.list_applications()] == ["app1"]
    finally:
        reopened.close()


def test_a_given_store_is_not_closed(store: Any) -> None:
    with TestClient(create_app(store)) as client:
        post(client, "add_app", APP)
    assert [a.name for a in store.list_applications()] == ["app1"]


# -- the command line ---------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    ([], "--store URL is required"),
    (["--store", "nosuch://x"], "Unknown state store 'nosuch'. Installed: "),
])
def test_command_line_refuses_a_missing_or_unknown_store(args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLIPPER_STORE"}
    proc = subprocess.run([sys.executable, "-m", "clipper_frontends.management", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr
