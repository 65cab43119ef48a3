"""The contract every container manager must meet, as a pytest suite.

Subclass :class:`ContainerManagerContract` in your plugin's tests and provide
two fixtures (the rest have working defaults)::

    from clipper_core.testing.container_manager import ContainerManagerContract

    class TestMyManagerContract(ContainerManagerContract):
        @pytest.fixture(scope="class")
        def clipper_conn(self):
            conn = ClipperConnection(MyContainerManager(cluster_name="contract", ...))
            conn.start_clipper()
            yield conn
            conn.stop_all()

        @pytest.fixture
        def connect_again(self):
            # a NEW manager instance and connection attached to the same cluster
            def connect():
                conn = ClipperConnection(MyContainerManager(cluster_name="contract", ...))
                conn.connect()
                return conn
            return connect

        @pytest.fixture
        def kill_replica(self, clipper_conn):
            def kill(name, version):
                ...  # kill one replica of name:version abruptly (SIGKILL, docker kill)
            return kill

Fixtures:

``clipper_conn``
    a started, connected ``ClipperConnection`` using your manager.  It may be
    class-scoped: every test uses its own model and application names, so one
    cluster can serve the whole class.
``connect_again``
    a callable returning a second, connected ``ClipperConnection`` built from
    a new manager instance pointed at the same cluster.
``model_image``
    the reference (image tag, artifact path) of the tiny test model built from
    ``model_dir``.  The default calls ``clipper_conn.build_model(...)`` with
    :attr:`base_image`; override it (e.g. class-scoped) when building is slow.
``kill_replica``
    ``kill(name, version)`` kills one running replica abruptly; the default
    skips the test that needs it.

Capability flags (class attributes) skip what a backend cannot do:
:attr:`can_scale_to_zero`, :attr:`has_logs`.  :attr:`replica_timeout` is how
long to wait for replicas to (re)connect.

The test model (``predict.py``) answers each ``doubles`` input ``x`` with the
JSON ``{"version": <CLIPPER_MODEL_VERSION>, "sum": sum(x)}``, so a query
shows which version answered it.  One model image serves every model name and
version the tests deploy.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

PREDICT_PY = '''\
"""Contract-suite test model: tells which version answered."""
import json
import os

VERSION = os.environ.get("CLIPPER_MODEL_VERSION", "unknown")


def predict(inputs):
    return [json.dumps({"version": VERSION, "sum": float(sum(x))}) for x in inputs]
'''

_counter = itertools.count(1)

T = TypeVar("T")


def unique_name(prefix: str) -> str:
    """A DNS-1123 name unique to this test run (model or application)."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}-{next(_counter)}"


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def predict(conn: Any, app: str, x: list[float], version: str | None = None,
            timeout: float = 15.0) -> dict[str, Any]:
    """POST one query to the cluster's query frontend; return the JSON response."""
    import httpx

    body: dict[str, Any] = {"input": x}
    if version is not None:
        body["version"] = version
    resp = httpx.post(f"http://{conn.get_query_addr()}/{app}/predict", json=body,
                      timeout=timeout)
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text}"
    answer: dict[str, Any] = resp.json()
    return answer


def connected_replicas(conn: Any, name: str, version: str) -> set[str]:
    """Ids of the replicas of name:version that a query frontend sees connected."""
    return {str(r["model_replica_id"]) for r in conn.get_all_model_replicas(verbose=True)
            if r["model_name"] == name and str(r["model_version"]) == str(version)
            and r.get("connected")}


class ContainerManagerContract:
    """Behaviour every container manager shares, driven through ClipperConnection."""

    #: Base image passed to ``build_model`` for the test model.
    base_image: str = "default"
    #: The manager can run a model version with zero replicas.
    can_scale_to_zero: bool = True
    #: ``get_clipper_logs`` returns the processes' logs.
    has_logs: bool = True
    #: Seconds to wait for replicas to connect or come back.
    replica_timeout: float = 60.0

    # -- fixtures subclasses provide ----------------------------------------
    @pytest.fixture
    def clipper_conn(self) -> Any:
        raise NotImplementedError("provide a clipper_conn fixture: a started ClipperConnection")

    @pytest.fixture
    def connect_again(self) -> Callable[[], Any]:
        raise NotImplementedError("provide a connect_again fixture: a callable returning a "
                                  "second connected ClipperConnection to the same cluster")

    @pytest.fixture
    def kill_replica(self) -> Callable[[str, str], None]:
        pytest.skip("this backend provides no kill_replica fixture")

    @pytest.fixture
    def model_dir(self, tmp_path: Path) -> Path:
        """A directory holding the tiny test model (``predict.py``)."""
        path = tmp_path / "contract-model"
        path.mkdir()
        (path / "predict.py").write_text(PREDICT_PY)
        return path

    @pytest.fixture
    def model_image(self, clipper_conn: Any, model_dir: Path) -> str:
        image: str = clipper_conn.build_model("contract-model", "1", str(model_dir),
                                              self.base_image)
        return image

    # -- helpers -------------------------------------------------------------
    def deploy(self, conn: Any, image: str, name: str, version: str = "1",
               replicas: int = 1) -> None:
        """Deploy the test model as name:version and wait until every replica is connected."""
        conn.deploy_model(name, version, "doubles", image, num_replicas=replicas)
        self.wait_connected(conn, name, version, replicas)

    def wait_connected(self, conn: Any, name: str, version: str, count: int) -> None:
        wait_for(lambda: len(connected_replicas(conn, name, version)) >= count,
                 self.replica_timeout, f"{count} connected replicas of {name}:{version}")

    def app_for(self, conn: Any, name: str) -> str:
        """Register an application for model ``name`` and link them."""
        app = unique_name("app")
        conn.register_application(app, "doubles", "no-answer", 5_000_000)
        conn.link_model_to_app(app, name)
        return app

    def wait_answer(self, conn: Any, app: str, x: list[float], version: str,
                    pinned: str | None = None) -> dict[str, Any]:
        """Query until ``version`` answers (the frontends follow changes within
        seconds); return that response."""
        def answered() -> dict[str, Any] | None:
            resp = predict(conn, app, x, pinned)
            out = resp.get("output")
            if not resp.get("default") and isinstance(out, dict) \
                    and out.get("version") == version:
                return resp
            return None
        return wait_for(answered, self.replica_timeout, f"version {version} to answer {app}",
                        interval=0.25)

    # -- the contract ----------------------------------------------------------
    def test_deploy_and_query(self, clipper_conn: Any, model_image: str) -> None:
        name = unique_name("m")
        self.deploy(clipper_conn, model_image, name, "1", replicas=2)
        assert clipper_conn.get_num_replicas(name, "1") == 2
        app = self.app_for(clipper_conn, name)
        resp = self.wait_answer(clipper_conn, app, [1.0, 2.0, 3.5], "1")
        assert resp["output"] == {"version": "1", "sum": 6.5}
        assert resp["default"] is False
        assert isinstance(resp["query_id"], int)

    def test_scale_up_and_down(self, clipper_conn: Any, model_image: str) -> None:
        name = unique_name("m")
        self.deploy(clipper_conn, model_image, name, "1", replicas=1)
        clipper_conn.set_num_replicas(name, 4)
        assert clipper_conn.get_num_replicas(name) == 4
        self.wait_connected(clipper_conn, name, "1", 4)
        clipper_conn.set_num_replicas(name, 1, version="1")
        assert clipper_conn.get_num_replicas(name, "1") == 1
        app = self.app_for(clipper_conn, name)
        self.wait_answer(clipper_conn, app, [4.0], "1")
        if self.can_scale_to_zero:
            clipper_conn.set_num_replicas(name, 0)
            assert clipper_conn.get_num_replicas(name) == 0

    def test_roll_forward_back_and_pin(self, clipper_conn: Any, model_image: str) -> None:
        name = unique_name("m")
        self.deploy(clipper_conn, model_image, name, "1")
        app = self.app_for(clipper_conn, name)
        self.wait_answer(clipper_conn, app, [1.0], "1")
        self.deploy(clipper_conn, model_image, name, "2")
        assert clipper_conn.get_current_model_version(name) == "2"
        self.wait_answer(clipper_conn, app, [2.0], "2")
        clipper_conn.set_model_version(name, "1")
        self.wait_answer(clipper_conn, app, [3.0], "1")
        clipper_conn.set_model_version(name, "2")
        self.wait_answer(clipper_conn, app, [4.0], "2")
        pinned = self.wait_answer(clipper_conn, app, [5.0], "1", pinned="1")
        assert pinned["output"] == {"version": "1", "sum": 5.0}
        clipper_conn.stop_inactive_model_versions([name])
        assert clipper_conn.get_num_replicas(name, "1") == 0
        assert clipper_conn.get_num_replicas(name, "2") == 1
        self.wait_answer(clipper_conn, app, [6.0], "2")

    def test_stop_models(self, clipper_conn: Any, model_image: str) -> None:
        a, b = unique_name("m"), unique_name("m")
        for name, version in ((a, "1"), (a, "2"), (b, "1")):
            clipper_conn.deploy_model(name, version, "doubles", model_image)
        self.wait_connected(clipper_conn, b, "1", 1)
        clipper_conn.stop_versioned_models({a: ["1"]})
        assert clipper_conn.get_num_replicas(a, "1") == 0
        assert clipper_conn.get_num_replicas(a, "2") == 1
        clipper_conn.stop_models([a])
        assert clipper_conn.get_num_replicas(a, "2") == 0
        assert clipper_conn.get_num_replicas(b, "1") == 1
        clipper_conn.stop_all_model_containers()
        assert clipper_conn.get_num_replicas(b, "1") == 0
        # stop_* unregister what they stopped, as Clipper does (a connected
        # stop_all_model_containers unregisters every version)
        models = clipper_conn.get_all_models()
        assert f"{a}:1" not in models and f"{a}:2" not in models
        assert f"{b}:1" not in models

    def test_logs(self, clipper_conn: Any, model_image: str, tmp_path: Path) -> None:
        if not self.has_logs:
            pytest.skip("this backend has no logs")
        name = unique_name("m")
        self.deploy(clipper_conn, model_image, name, "1")
        paths = clipper_conn.get_clipper_logs(str(tmp_path / "logs"))
        assert paths, "get_clipper_logs returned no files"
        assert all(Path(p).is_file() and Path(p).is_relative_to(tmp_path / "logs")
                   for p in paths)
        assert any(os.path.getsize(p) > 0 for p in paths)

    def test_connect_from_second_connection(self, clipper_conn: Any, model_image: str,
                                            connect_again: Callable[[], Any]) -> None:
        name = unique_name("m")
        self.deploy(clipper_conn, model_image, name, "1")
        app = self.app_for(clipper_conn, name)
        other = connect_again()
        try:
            assert app in other.get_all_apps()
            assert other.get_query_addr() == clipper_conn.get_query_addr()
            assert other.get_num_replicas(name, "1") == 1
            other.set_num_replicas(name, 2, version="1")
            assert clipper_conn.get_num_replicas(name, "1") == 2
            self.wait_answer(other, app, [7.0], "1")
        finally:
            other.close()

    def test_killed_replica_comes_back(self, clipper_conn: Any, model_image: str,
                                       kill_replica: Callable[[str, str], None]) -> None:
        name = unique_name("m")
        self.deploy(clipper_conn, model_image, name, "1")
        app = self.app_for(clipper_conn, name)
        self.wait_answer(clipper_conn, app, [1.0], "1")
        kill_replica(name, "1")
        wait_for(lambda: clipper_conn.get_num_replicas(name, "1") == 1, self.replica_timeout,
                 "the killed replica to be replaced")
        resp = self.wait_answer(clipper_conn, app, [8.0, 1.0], "1")
        assert resp["output"] == {"version": "1", "sum": 9.0}
