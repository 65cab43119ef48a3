"""clipper_core.deployers.python against a real cluster on the embedded default manager."""

from __future__ import annotations

import glob
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import cloudpickle
import httpx
import pytest
from conftest import free_port, wait_until

from clipper_core.connection import ClipperConnection
from clipper_core.deployers.python import (
    create_endpoint,
    deploy_python_closure,
    save_python_function,
    serialize_function,
)
from clipper_core.errors import ClipperException, ValidationError


def unpicklable_closure():
    lock = threading.Lock()

    def guarded(xs):
        with lock:
            return [1 for _ in xs]
    return guarded


def test_an_unpicklable_closure_names_the_function_and_reason():
    with pytest.raises(ClipperException) as info:
        serialize_function(unpicklable_closure())
    text = str(info.value)
    assert "Cannot serialise the function 'unpicklable_closure.<locals>.guarded'" in text
    assert "lock" in text
    assert info.value.function == "unpicklable_closure.<locals>.guarded"


def test_a_non_callable_is_rejected():
    with pytest.raises(ValidationError, match="func must be callable"):
        serialize_function(42)  # type: ignore[arg-type]


def test_save_python_function_writes_a_loadable_func_pkl():
    offset = 3
    path = save_python_function("m", lambda xs: [x + offset for x in xs])
    try:
        assert os.listdir(path) == ["func.pkl"]
        with open(os.path.join(path, "func.pkl"), "rb") as f:
            assert cloudpickle.load(f)([1, 2]) == [4, 5]
    finally:
        import shutil

        shutil.rmtree(path)


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClipperConnection]:
    from clipper_local_process import LocalProcessContainerManager

    cm = LocalProcessContainerManager(
        cluster_name="deployers", state_dir=tmp_path_factory.mktemp("deployers"),
        clipper_query_port=free_port(), clipper_management_port=free_port(),
        clipper_rpc_port=free_port(), progress=lambda _m: None)
    connection = ClipperConnection(cm)
    try:
        connection.start_clipper()
        yield connection
    finally:
        connection.stop_all()


def answer(conn: ClipperConnection, app: str, x: Any) -> Any:
    def served() -> Any:
        body = httpx.post(f"http://{conn.get_query_addr()}/{app}/predict", json={"input": x},
                          timeout=10).json()
        return body if not body["default"] else None
    return wait_until(served, 20, what=f"{app} to answer")["output"]


def test_deploy_python_closure_registers_and_runs_the_function(conn):
    scale = 10.0
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "clipper-scaled-*")))
    deploy_python_closure(conn, "scaled", 1, "doubles", lambda xs: [scale * x[0] for x in xs],
                          labels=["team-a"], num_replicas=2, batch_size=4)
    info = conn.get_model_info("scaled", "1")
    assert info["labels"] == ["team-a"] and info["batch_size"] == 4
    assert info["is_current_version"] is True and info["input_type"] == "doubles"
    assert conn.get_num_replicas("scaled", "1") == 2
    conn.register_application("scaled-app", "doubles", "none", 3_000_000)
    conn.link_model_to_app("scaled-app", "scaled")
    assert answer(conn, "scaled-app", [1.5]) == 15.0
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "clipper-scaled-*")))
    assert after == before, "the temporary model directory was not removed"


def test_create_endpoint_registers_deploys_and_links(conn):
    create_endpoint(conn, "shout", "strings", lambda xs: [x.upper() + "!" for x in xs],
                    default_output="quiet", slo_micros=2_000_000)
    app = conn.get_app_info("shout")
    assert app["default_output"] == "quiet" and app["latency_slo_micros"] == 2_000_000
    assert conn.get_linked_models("shout") == ["shout"]
    assert conn.get_current_model_version("shout") == "1"
    assert answer(conn, "shout", "hello") == "HELLO!"


def test_a_new_version_through_deploy_python_closure_takes_over(conn):
    create_endpoint(conn, "ver", "integers", lambda xs: ["v1" for _ in xs])
    assert answer(conn, "ver", [1]) == "v1"
    deploy_python_closure(conn, "ver", 2, "integers", lambda xs: ["v2" for _ in xs])
    assert conn.get_current_model_version("ver") == "2"
    wait_until(lambda: answer(conn, "ver", [2]) == "v2", 30, what="version 2 to answer")


def test_create_endpoint_with_an_unpicklable_closure_registers_nothing(conn):
    with pytest.raises(ClipperException, match="Cannot serialise"):
        create_endpoint(conn, "broken", "doubles", unpicklable_closure())
    assert "broken" not in conn.get_all_apps()
    assert not [m for m in conn.get_all_models() if m.startswith("broken:")]


def test_clipper_admin_names_are_these_functions():
    from clipper_admin.deployers import python as admin_python

    assert admin_python.deploy_python_closure is deploy_python_closure
    assert admin_python.create_endpoint is create_endpoint
