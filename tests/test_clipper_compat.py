"""Clipper's own admin integration tests, reproduced on the local manager.

Each test mirrors one test case of Clipper's
``integration-tests/clipper_admin_tests.py`` (ucbrise/clipper; the 27 its
suite orders, plus the unordered ``test_unlink_registered_model_from_app_succeeds``):
the same ``clipper_admin`` calls with the same arguments and the same
assertions on names, return types and exceptions, written here against a
``local_process`` cluster.  What differs, and only where the test needs
Docker or Clipper's images:

- Clipper's no-op model image (``noop-container``) is a no-op model made
  here (``predict.py`` in ``FAKE_MODEL_DATA``); ``build_and_deploy_model``
  is called with Clipper's image name as ``base_image``, which the local
  manager ignores;
- Clipper counts Docker containers by image; here the cluster's manager
  counts the running replicas (:func:`running`);
- Clipper starts a cluster per short test; here one cluster is emptied
  before each (every application, model version and replica removed);
- the ``time.sleep(30..60)`` after a link are dropped: an admin call
  returns once the query frontends serve the change (read-your-writes).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_cluster import running_cluster

import clipper_admin as cl
from clipper_admin import __registry__ as clipper_registry
from clipper_admin import __version__ as clipper_version
from clipper_admin.deployers.python import create_endpoint as create_py_endpoint
from clipper_admin.deployers.python import deploy_python_closure

NOOP_IMAGE = f"{clipper_registry}/noop-container:{clipper_version}"
HEADERS = {"Content-type": "application/json"}


def post(conn: Any, app: str, body: dict[str, Any], path: str = "predict") -> httpx.Response:
    url = f"http://{conn.get_query_addr()}/{app}/{path}"
    return httpx.post(url, headers=HEADERS, content=json.dumps(body), timeout=60)


def running(conn: Any, name: str | None = None) -> int:
    """How many model replicas the cluster runs (Clipper: containers of an image)."""
    return sum(1 for r in conn.cm.list_replicas()
               if r.status == "running" and (name is None or r.model_name == name))


def registered(conn: Any) -> list[tuple[str, str]]:
    return sorted((m["model_name"], m["model_version"])
                  for m in conn.get_all_models(verbose=True))


def empty(conn: Any) -> None:
    """What a fresh cluster has: no application, no model, no replica."""
    conn.cm.stop_all_model_containers()
    for app in conn.get_all_apps():
        conn.delete_application(app)
    for name, version in registered(conn):
        conn.delete_versioned_model(name, version)


@pytest.fixture(scope="module")
def fake_model_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Clipper's empty model directory, with the no-op model the no-op image ran."""
    path = tmp_path_factory.mktemp("fake_model_data")
    (path / "predict.py").write_text("def predict(inputs):\n"
                                     "    return [str(len(x)) for x in inputs]\n")
    return str(path)


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("compat")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPPER_HOME", str(tmp / "home"))
        with running_cluster(tmp, "admin-test-cluster") as c:
            yield c


class TestClipperManagerShort:
    """``ClipperManagerTestCaseShort``: a fresh cluster per test."""

    @pytest.fixture(autouse=True)
    def fresh(self, conn: Any) -> Any:
        empty(conn)
        self.clipper_conn = conn
        return conn

    def test_register_model_correct(self) -> None:
        self.clipper_conn.register_model("m", "v1", "doubles")
        assert self.clipper_conn.get_model_info("m", "v1") is not None
        self.clipper_conn.register_model("m", "v2", "doubles")
        assert self.clipper_conn.get_model_info("m", "v2") is not None

    def test_register_application_correct(self) -> None:
        self.clipper_conn.register_application("testapp", "doubles", "DEFAULT", 3000000)
        apps = self.clipper_conn.get_all_apps()
        assert len(apps) >= 1 and "testapp" in apps

    def test_link_not_registered_model_to_app_fails(self) -> None:
        self.clipper_conn.register_application("testapp", "doubles", "DEFAULT", 3000000)
        with pytest.raises(cl.ClipperException) as info:
            self.clipper_conn.link_model_to_app("testapp", "test_model")
        assert "No model with name" in str(info.value)

    def test_get_model_links_when_none_exist_returns_empty_list(self) -> None:
        self.clipper_conn.register_application("testapp", "doubles", "DEFAULT", 3000000)
        assert self.clipper_conn.get_linked_models("testapp") == []

    def test_link_registered_model_to_app_succeeds(self) -> None:
        self.clipper_conn.register_application("testapp", "doubles", "DEFAULT", 3000000)
        self.clipper_conn.register_model("m", "v1", "doubles")
        self.clipper_conn.link_model_to_app("testapp", "m")
        assert self.clipper_conn.get_linked_models("testapp") == ["m"]

    def test_unlink_registered_model_from_app_succeeds(self) -> None:
        # defined in Clipper's suite, though missing from its SHORT_TEST_ORDERING
        self.clipper_conn.register_application("testapp", "doubles", "DEFAULT", 3000000)
        self.clipper_conn.register_model("m", "v1", "doubles")
        self.clipper_conn.link_model_to_app("testapp", "m")
        self.clipper_conn.unlink_model_from_app("testapp", "m")
        assert self.clipper_conn.get_linked_models("testapp") == []

    def test_get_app_info_for_registered_app_returns_info_dictionary(self) -> None:
        # Clipper: get_app_info_for_registered_app_returns_info_dictionary
        self.clipper_conn.register_application("testapp", "doubles", "DEFAULT", 3000000)
        result = self.clipper_conn.get_app_info("testapp")
        assert result is not None and type(result) is dict

    def test_get_app_info_for_nonexistent_app_returns_none(self) -> None:
        # Clipper: get_app_info_for_nonexistent_app_returns_none
        assert self.clipper_conn.get_app_info("fake_app") is None

    def test_set_num_replicas_for_external_model_fails(self) -> None:
        self.clipper_conn.register_model("m", "v1", "doubles")
        with pytest.raises(cl.ClipperException) as info:
            self.clipper_conn.set_num_replicas("m", 5, "v1")
        assert "containerless model" in str(info.value)

    def test_model_version_sets_correctly(self) -> None:
        self.clipper_conn.register_model("m", "v1", "doubles")
        self.clipper_conn.register_model("m", "v2", "doubles")
        self.clipper_conn.set_model_version("m", "v1")
        infos = [i for i in self.clipper_conn.get_all_models(verbose=True)
                 if i["model_version"] == "v1"]
        assert infos and all(i["is_current_version"] for i in infos)

    def test_get_logs_creates_log_files(self) -> None:
        os.makedirs(cl.CLIPPER_TEMP_DIR, exist_ok=True)
        tmp_log_dir = tempfile.mkdtemp(dir=cl.CLIPPER_TEMP_DIR)
        try:
            names = self.clipper_conn.get_clipper_logs(logging_dir=tmp_log_dir)
            assert names is not None and len(names) >= 1
            assert all(os.path.isfile(n) for n in names)
        finally:
            shutil.rmtree(tmp_log_dir)

    def test_inspect_instance_returns_json_dict(self) -> None:
        metrics = self.clipper_conn.inspect_instance()
        assert type(metrics) is dict and len(metrics) >= 1

    def test_model_deploys_successfully(self, fake_model_data: str) -> None:
        self.clipper_conn.build_and_deploy_model("m", "v1", "doubles", fake_model_data,
                                                 NOOP_IMAGE)
        info = self.clipper_conn.get_model_info("m", "v1")
        assert info is not None and type(info) is dict
        assert running(self.clipper_conn) == 1

    def test_set_num_replicas_for_deployed_model_succeeds(self, fake_model_data: str) -> None:
        name = "set-num-reps-model"
        self.clipper_conn.build_and_deploy_model(name, "v1", "doubles", fake_model_data,
                                                 NOOP_IMAGE)
        self.clipper_conn.set_num_replicas(name, 4)  # the current version by default
        assert self.clipper_conn.get_num_replicas(name, "v1") == 4
        self.clipper_conn.set_num_replicas(name, 2, "v1")
        assert self.clipper_conn.get_num_replicas(name, "v1") == 2

    def test_remove_inactive_containers_succeeds(self, fake_model_data: str) -> None:
        name = "remove-inactive-test-model"
        c = self.clipper_conn
        c.build_and_deploy_model(name, 1, "doubles", fake_model_data, NOOP_IMAGE,
                                 num_replicas=2)
        assert running(c) == 2 and registered(c) == [(name, "1")]
        c.build_and_deploy_model(name, 2, "doubles", fake_model_data, NOOP_IMAGE,
                                 num_replicas=3)
        assert running(c) == 5 and registered(c) == [(name, "1"), (name, "2")]
        c.stop_inactive_model_versions([name])
        assert running(c) == 3 and registered(c) == [(name, "2")]

    def test_stop_models(self) -> None:
        c = self.clipper_conn
        names, versions = ["jimmypage", "robertplant"], ["i", "ii"]
        image = self._noop_artifact()
        for name in names:
            for version in versions:
                c.deploy_model(name, version, "doubles", image, num_replicas=1)
        assert running(c) == 4
        assert registered(c) == sorted((n, v) for n in names for v in versions)
        c.stop_models(names[:1])
        assert running(c) == 2 and registered(c) == [("robertplant", v) for v in versions]
        c.stop_versioned_models({"robertplant": ["ii"]})
        assert running(c) == 1 and registered(c) == [("robertplant", "i")]
        c.stop_all_model_containers()
        assert running(c) == 0 and registered(c) == []

    def _noop_artifact(self) -> str:
        """Clipper deploys its prebuilt no-op image; the local form of one is built."""
        src = Path(tempfile.mkdtemp())
        (src / "predict.py").write_text("def predict(inputs):\n    return ['0' for _ in inputs]\n")
        return self.clipper_conn.build_model("noop", "1", str(src), NOOP_IMAGE)

    def test_python_closure_deploys_successfully(self) -> None:
        deploy_python_closure(self.clipper_conn, "m2", 1, "doubles",
                              lambda inputs: ["0" for _ in inputs])
        assert self.clipper_conn.get_model_info("m2", 1) is not None
        assert running(self.clipper_conn, "m2") >= 1

    def test_register_py_endpoint(self) -> None:
        name = "py-closure-test"
        create_py_endpoint(self.clipper_conn, name, "doubles",
                           lambda inputs: ["0" for _ in inputs])
        apps = self.clipper_conn.get_all_apps()
        assert len(apps) == 1 and name in apps
        assert self.clipper_conn.get_model_info(name, 1) is not None
        assert self.clipper_conn.get_linked_models(name) is not None
        assert running(self.clipper_conn, name) == 1

    def test_test_predict_function(self) -> None:
        def predict_func(xs: list[Any]) -> list[Any]:
            return [sum(x) for x in xs]

        c = self.clipper_conn
        c.register_application(name="hello-world", input_type="doubles",
                               default_output="-1.0", slo_micros=100000)
        deploy_python_closure(c, name="sum-model", version=1, input_type="doubles",
                              func=predict_func)
        c.link_model_to_app(app_name="hello-world", model_name="sum-model")
        one = [1.1, 2.2, 3.3]
        # Clipper's test adds a trailing slash to the predict URL
        pred = post(c, "hello-world", {"input": one}, "predict/").json()
        assert [pred["output"]] == c.test_predict_function(
            query={"input": one}, func=predict_func, input_type="doubles")
        batch = [[1.1, 2.2, 3.3], [4.4, 5.5, 6.6]]
        batch_pred = post(c, "hello-world", {"input_batch": batch}, "predict/").json()
        assert [p["output"] for p in batch_pred["batch_predictions"]] == \
            c.test_predict_function(query={"input_batch": batch}, func=predict_func,
                                    input_type="doubles")

    def test_build_model_with_custom_packages(self, fake_model_data: str) -> None:
        if os.environ.get("CLIPPER_COMPAT_PIP") != "1":
            pytest.skip("installs sympy from the package index four times; "
                        "set CLIPPER_COMPAT_PIP=1")
        for version, image in (("py2", "python-closure-container"),
                               ("py35", "python35-closure-container"),
                               ("py36", "python36-closure-container"),
                               ("py37", "python37-closure-container")):
            self.clipper_conn.build_model("buildmodeltest", version, fake_model_data,
                                          f"{clipper_registry}/{image}:{clipper_version}",
                                          None, pkgs_to_install=["sympy==1.1.*"])

    def test_unregister_application_correct(self) -> None:
        self.clipper_conn.register_application("testapp", "doubles", "DEFAULT", 3000000)
        self.clipper_conn.unregister_application("testapp")
        apps = self.clipper_conn.get_all_apps()
        assert len(apps) == 0 and "testapp" not in apps

    def test_query_specific_model_version(self) -> None:
        c = self.clipper_conn
        c.register_application(name="testapp", input_type="doubles",
                               default_output="DEFAULT", slo_micros=3000000)
        deploy_python_closure(c, name="testmodel", version="v1", input_type="doubles",
                              func=lambda xs: ["1" for _ in xs])
        c.link_model_to_app("testapp", "testmodel")
        deploy_python_closure(c, name="testmodel", version="v2", input_type="doubles",
                              func=lambda xs: ["2" for _ in xs])
        one = [1.0, 2.0, 3.0]
        pred1 = post(c, "testapp", {"input": one, "version": "v1"}).json()
        assert pred1["default"] is False and pred1["output"] == 1
        pred2 = post(c, "testapp", {"input": one}).json()
        assert pred2["default"] is False and pred2["output"] == 2
        bad = "skjfhkdjshfjksdhkjf"
        pred3 = post(c, "testapp", {"input": one, "version": bad})
        assert pred3.status_code != 200
        assert pred3.json()["cause"] == (
            f"Requested version: {bad} does not exist for model: testmodel")


class TestClipperManagerLong:
    """``ClipperManagerTestCaseLong``: one cluster with five applications."""

    default_output = "DEFAULT"

    @pytest.fixture(scope="class", autouse=True)
    def apps(self, conn: Any) -> Any:
        empty(conn)
        for app in ("app3", "app4", "app5", "app7"):
            conn.register_application(app, "doubles", self.default_output, 3000000)
        conn.register_application("app6", "doubles", self.default_output, slo_micros=30000000)
        return conn

    def test_remove_inactive_container(self, conn: Any, fake_model_data: str) -> None:
        conn.build_and_deploy_model("m8", 1, "doubles", fake_model_data, NOOP_IMAGE,
                                    num_replicas=2)
        assert running(conn, "m8") == 2
        conn.link_model_to_app("app7", "m8")
        for _ in range(2):
            resp = post(conn, "app7", {"input": [101.1, 99.5, 107.2]})
            assert resp.status_code == 200 and resp.json()["default"] is False
        conn.set_num_replicas(name="m8", version=1, num_replicas=1)
        assert running(conn, "m8") == 1
        for _ in range(2):
            resp = post(conn, "app7", {"input": [101.1, 99.9]})
            assert resp.status_code == 200 and resp.json()["default"] is False
        conn.set_num_replicas(name="m8", version=1, num_replicas=0)
        assert running(conn, "m8") == 0
        deadline = time.monotonic() + 30  # Clipper waits 100 s for the replica to go
        while True:
            result = post(conn, "app7", {"input": [101.1]}).json()
            if result["default"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for _ in range(2):
            result = post(conn, "app7", {"input": [101.1]}).json()
            assert result["default"] is True
            assert result["default_explanation"] == "No connected models found for query"

    def test_unlinked_app_returns_default_predictions(self, conn: Any) -> None:
        parsed = post(conn, "app4", {"input": [99.3, 18.9, 67.2, 34.2]}).json()
        assert parsed["output"] == self.default_output and parsed["default"] is True

    def test_deployed_model_queried_successfully(self, conn: Any,
                                                 fake_model_data: str) -> None:
        conn.build_and_deploy_model("m5", 1, "doubles", fake_model_data, NOOP_IMAGE)
        conn.link_model_to_app("app4", "m5")
        parsed = post(conn, "app4", {"input": [99.3, 18.9, 67.2, 34.2]}).json()
        assert parsed["output"] != self.default_output and parsed["default"] is False

    def test_batch_queries_returned_successfully(self, conn: Any,
                                                 fake_model_data: str) -> None:
        conn.build_and_deploy_model("m6", 1, "doubles", fake_model_data, NOOP_IMAGE)
        conn.link_model_to_app("app5", "m6")
        batch = [[99.3, 18.9, 67.2, 34.2], [101.1, 45.6, 98.0, 99.1],
                 [12.3, 6.7, 42.1, 12.6], [9.01, 87.6, 70.2, 19.6]]
        parsed = post(conn, "app5", {"input_batch": batch}).json()
        assert len(parsed["batch_predictions"]) == len(batch)

    def test_deployed_python_closure_queried_successfully(self, conn: Any) -> None:
        deploy_python_closure(conn, "m4", 1, "doubles", lambda xs: [str(len(x)) for x in xs])
        conn.link_model_to_app("app3", "m4")
        one = [101.1, 99.5, 107.2]
        for _ in range(40):  # Clipper retries a default answer, 20 s apart
            output = post(conn, "app3", {"input": one}).json()["output"]
            if output != self.default_output:
                assert int(output) == len(one)
                break
            time.sleep(0.5)
        else:
            pytest.fail("only default predictions")

    def test_fixed_batch_size_model_processes_specified_query_batch_size_when_saturated(
            self, conn: Any) -> None:
        def predict_func(inputs: list[Any]) -> list[str]:
            time.sleep(.5)
            return [str(len(inputs)) for _ in inputs]

        fixed_batch_size = 9
        total = fixed_batch_size * 50
        deploy_python_closure(conn, "m7", 1, "doubles", predict_func,
                              batch_size=fixed_batch_size)
        conn.link_model_to_app("app6", "m7")
        batch = [[float(x) + (j * .001) for x in range(5)] for j in range(total)]
        parsed = post(conn, "app6", {"input_batch": batch}).json()
        full = sum(1 for p in parsed["batch_predictions"]
                   if p["output"] != self.default_output
                   and int(p["output"]) == fixed_batch_size)
        assert full >= int(total * .7)
