"""ClipperConnection against a real management frontend process on a SQLite file.

The container manager here is the simplest implementation of the
ContainerManager Protocol: it knows the management frontend's address and
token and keeps, in memory, the replica counts it was asked for (it starts
no processes; the real managers are tested in their own plugins).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, free_port, wait_until

from clipper_core.connection import DEFAULT_CACHE_SIZE, ClipperConnection
from clipper_core.errors import (
    AuthenticationError,
    ClipperException,
    ConflictError,
    NotFoundError,
    PluginError,
    UnconnectedException,
    ValidationError,
)
from clipper_core.interfaces import ContainerManager
from clipper_core.models import InputType, Replica, ReplicaStatus
from clipper_core.plugins import open_store


class ManagementProcess:
    """``python -m clipper_frontends.management`` on a port, restartable."""

    def __init__(self, store_url: str, token: str | None = None) -> None:
        self.store_url = store_url
        self.token = token
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("CLIPPER_ADMIN_TOKEN", None)
        if self.token:
            env["CLIPPER_ADMIN_TOKEN"] = self.token
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clipper_frontends.management", "--store", self.store_url,
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"management frontend exited: {self.proc.stderr.read()!r}")
            return httpx.get(f"http://{self.addr}/admin/ping", headers=headers,
                             timeout=1).status_code == 200
        wait_until(ready, timeout=20, what="management frontend /admin/ping")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


class AddressManager:
    """The simplest ContainerManager: an address, a token, and a record of the
    replicas it was asked to run.  ``calls`` lists what was asked, in order."""

    def __init__(self, admin_addr: str, token: str | None = None,
                 query_addr: str = "127.0.0.1:1") -> None:
        self.cluster_name = "test"
        self.admin_addr = admin_addr
        self.token = token
        self.query_addr = query_addr
        self.replicas: dict[tuple[str, str], int] = {}
        self.calls: list[tuple[Any, ...]] = []

    def start_clipper(self, query_frontend_image: str | None, mgmt_frontend_image: str | None,
                      cache_size: int, num_frontend_replicas: int = 1) -> None:
        self.calls.append(("start_clipper", cache_size, num_frontend_replicas))

    def connect(self) -> None:
        self.calls.append(("connect",))

    def get_admin_addr(self) -> str:
        return self.admin_addr

    def get_query_addr(self) -> str:
        return self.query_addr

    def get_metric_addr(self) -> str:
        return "127.0.0.1:1390"

    def get_admin_token(self) -> str | None:
        return self.token

    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        self.calls.append(("build_model", name, version))
        return f"{container_registry + '/' if container_registry else ''}{name}:{version}"

    def deploy_model(self, name: str, version: str, input_type: InputType, image: str,
                     num_replicas: int = 1) -> None:
        self.calls.append(("deploy_model", name, version, input_type, image, num_replicas))
        self.replicas[(name, version)] = num_replicas

    def get_num_replicas(self, name: str, version: str) -> int:
        return self.replicas.get((name, version), 0)

    def set_num_replicas(self, name: str, version: str, input_type: InputType, image: str,
                         num_replicas: int) -> None:
        self.calls.append(("set_num_replicas", name, version, image, num_replicas))
        self.replicas[(name, version)] = num_replicas

    def list_replicas(self) -> list[ReplicaStatus]:
        return [ReplicaStatus(model_name=n, model_version=v, replica_id=str(i),
                              status="running", restarts=1, handle=f"h{i}")
                for (n, v), count in sorted(self.replicas.items()) for i in range(count)]

    def get_logs(self, logging_dir: str) -> list[str]:
        path = Path(logging_dir) / "management.log"
        path.write_text("log\n")
        return [str(path)]

    def stop_models(self, models: dict[str, list[str]]) -> None:
        self.calls.append(("stop_models", models))
        for name, versions in models.items():
            for v in versions:
                self.replicas.pop((name, v), None)

    def stop_all_model_containers(self) -> None:
        self.calls.append(("stop_all_model_containers",))
        self.replicas.clear()

    def stop_all(self, graceful: bool = True) -> None:
        self.calls.append(("stop_all", graceful))
        self.replicas.clear()


@pytest.fixture(scope="module")
def mgmt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagementProcess]:
    db = tmp_path_factory.mktemp("mgmt") / "state.db"
    proc = ManagementProcess(f"sqlite:///{db}")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def manager(mgmt: ManagementProcess) -> AddressManager:
    return AddressManager(mgmt.addr)


@pytest.fixture
def conn(manager: AddressManager) -> Iterator[ClipperConnection]:
    c = ClipperConnection(manager)
    c.connect()
    yield c
    c.close()


def test_the_in_test_manager_implements_the_protocol() -> None:
    assert isinstance(AddressManager("x:1"), ContainerManager)


# -- not connected ------------------------------------------------------------

NEEDS_CONNECTION: list[tuple[str, tuple[Any, ...]]] = [
    ("register_application", ("app", "doubles", "-1", 100000)),
    ("delete_application", ("app",)),
    ("unregister_application", ("app",)),
    ("link_model_to_app", ("app", "m")),
    ("unlink_model_from_app", ("app", "m")),
    ("build_and_deploy_model", ("m", "1", "doubles", ".", "base")),
    ("deploy_model", ("m", "1", "doubles", "img")),
    ("register_model", ("m", "1", "doubles")),
    ("delete_versioned_model", ("m", "1")),
    ("get_current_model_version", ("m",)),
    ("get_num_replicas", ("m",)),
    ("set_num_replicas", ("m", 2)),
    ("get_all_apps", ()),
    ("get_app_info", ("app",)),
    ("get_linked_models", ("app",)),
    ("get_all_models", ()),
    ("get_model_info", ("m", "1")),
    ("get_all_model_replicas", ()),
    ("get_model_replica_info", ("m", "1", "0")),
    ("get_clipper_logs", ()),
    ("inspect_instance", ()),
    ("set_model_version", ("m", "1")),
    ("get_query_addr", ()),
    ("get_metric_addr", ()),
    ("get_admin_addr", ()),
    ("stop_models", (["m"],)),
    ("stop_versioned_models", ({"m": ["1"]},)),
    ("stop_inactive_model_versions", (["m"],)),
]


@pytest.mark.parametrize(("method", "args"), NEEDS_CONNECTION, ids=[m for m, _ in NEEDS_CONNECTION])
def test_unconnected_methods_raise(method: str, args: tuple[Any, ...], tmp_path: Path) -> None:
    manager = AddressManager("127.0.0.1:1")
    conn = ClipperConnection(manager)
    with pytest.raises(UnconnectedException):
        getattr(conn, method)(*args)
    assert manager.calls == []


def test_methods_without_connection(tmp_path: Path) -> None:
    manager = AddressManager("127.0.0.1:1")
    conn = ClipperConnection(manager)
    (tmp_path / "model").mkdir()
    assert conn.build_model("m", 3, str(tmp_path / "model"), "base",
                            container_registry="reg.local") == "reg.local/m:3"
    conn.stop_all_model_containers()
    conn.stop_all()
    assert conn.test_predict_function({"input": [1.0]}, lambda xs: [len(x) for x in xs],
                                      "doubles") == [1]
    assert manager.calls == [("build_model", "m", "3"), ("stop_all_model_containers",),
                             ("stop_all", True)]


def test_connect_fails_clearly_when_nothing_listens() -> None:
    conn = ClipperConnection(AddressManager(f"127.0.0.1:{free_port()}"), timeout=2)
    with pytest.raises(ClipperException, match="did not answer"):
        conn.connect()
    assert not conn.connected
    with pytest.raises(UnconnectedException):
        conn.get_all_apps()


def test_manager_by_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(PluginError, match="Unknown container manager 'no-such-manager'"):
        ClipperConnection("no-such-manager")


def test_start_clipper_takes_clippers_parameters_in_clippers_order(
        manager: AddressManager) -> None:
    from clipper_core.launch.compat import reset_warnings

    reset_warnings()
    conn = ClipperConnection(manager)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conn.start_clipper("qf:1", "mgmt:1", None, 2048, 1, 5, 300, 3)
        assert caught == []  # Clipper's defaults: nothing to say
        conn.start_clipper(query_frontend_image="qf:1", mgmt_frontend_image="mgmt:1",
                           frontend_exporter_image="exporter:1", cache_size=4096,
                           qf_http_thread_pool_size=8, qf_http_timeout_request=9,
                           qf_http_timeout_content=10, num_frontend_replicas=2)
        conn.start_clipper(frontend_exporter_image="exporter:2", qf_http_thread_pool_size=4)
    messages = sorted(str(w.message).split(":")[1].strip() for w in caught)
    assert [m.split("=")[0] for m in messages] == [
        "frontend_exporter_image", "qf_http_thread_pool_size", "qf_http_timeout_content",
        "qf_http_timeout_request"]  # once each, though given twice
    assert all(w.filename == __file__ for w in caught)
    starts = [c for c in manager.calls if c[0] == "start_clipper"]
    assert starts == [("start_clipper", 2048, 3), ("start_clipper", 4096, 2),
                      ("start_clipper", DEFAULT_CACHE_SIZE, 1)]
    # clipper-core 0.4.0's order (cache_size third) still works
    conn.start_clipper("qf:1", "mgmt:1", 1024)
    assert manager.calls[-2] == ("start_clipper", 1024, 1)
    conn.close()


def test_start_clipper_starts_then_connects(manager: AddressManager) -> None:
    conn = ClipperConnection(manager)
    conn.start_clipper(cache_size=1024, num_frontend_replicas=2)
    assert conn.connected
    assert manager.calls[:2] == [("start_clipper", 1024, 2), ("connect",)]
    conn.close()


# -- applications --------------------------------------------------------------

def test_register_application_and_read_it_back(conn: ClipperConnection) -> None:
    conn.register_application("app-info", "doubles", "-1.0", 100000)
    assert "app-info" in conn.get_all_apps()
    info = conn.get_app_info("app-info")
    assert info is not None
    assert {k: info[k] for k in ("name", "input_type", "default_output",
                                 "latency_slo_micros")} == {
        "name": "app-info", "input_type": "doubles", "default_output": "-1.0",
        "latency_slo_micros": 100000}
    assert info in conn.get_all_apps(verbose=True)
    assert conn.get_linked_models("app-info") == []
    assert conn.get_app_info("no-such-app") is None


def test_duplicate_application_name_fails(conn: ClipperConnection) -> None:
    conn.register_application("app-dup", "ints", "0", 1000)
    with pytest.raises(ConflictError, match="app-dup.*already exists"):
        conn.register_application("app-dup", "doubles", "1", 2000)
    info = conn.get_app_info("app-dup")
    assert info is not None and info["input_type"] == "integers"


def test_delete_and_unregister_application(conn: ClipperConnection) -> None:
    conn.register_application("app-del", "strings", "x", 1000)
    conn.register_application("app-unreg", "strings", "x", 1000)
    conn.delete_application("app-del")
    conn.unregister_application("app-unreg")
    assert conn.get_app_info("app-del") is None
    assert conn.get_app_info("app-unreg") is None
    with pytest.raises(NotFoundError, match="No application with name 'app-del'"):
        conn.delete_application("app-del")


@pytest.mark.parametrize("bad", ["App", "my_app", "", "-x", "a" * 64, 12.5])
def test_invalid_model_names_fail_before_anything_is_stored(conn: ClipperConnection,
                                                            manager: AddressManager,
                                                            bad: Any) -> None:
    before_apps, before_models = conn.get_all_apps(), conn.get_all_models()
    with pytest.raises(ValidationError, match="Invalid model name"):
        conn.register_model(bad, "1", "doubles")
    with pytest.raises(ValidationError, match="Invalid model version"):
        conn.register_model("ok-model", bad, "doubles")
    with pytest.raises(ValidationError, match="Invalid model name"):
        conn.deploy_model(bad, "1", "doubles", "img", num_replicas=2)
    with pytest.raises(ValidationError, match="Invalid model version"):
        conn.deploy_model("ok-model", bad, "doubles", "img")
    with pytest.raises(ValidationError, match="Invalid model name"):
        conn.build_model(bad, "1", ".", "base")
    assert manager.calls == [("connect",)]
    assert conn.get_all_apps() == before_apps
    assert conn.get_all_models() == before_models


@pytest.mark.parametrize("bad", ["", "a/b", "a b", ".", "..", "a" * 256, 12.5, None])
def test_application_names_that_cannot_be_queried_are_refused(conn: ClipperConnection,
                                                              bad: Any) -> None:
    before = conn.get_all_apps()
    with pytest.raises(ValidationError, match="Invalid application name"):
        conn.register_application(bad, "doubles", "-1", 1000)
    assert conn.get_all_apps() == before


def test_application_names_are_clippers(conn: ClipperConnection) -> None:
    """Clipper registers any application name; so do we, when it can be queried."""
    for name in ("my_app", "App1", "test.app", "a~b", "a" * 255):
        conn.register_application(name, "doubles", "-1", 1000)
        assert conn.get_app_info(name)["name"] == name
        conn.delete_application(name)


def test_lookups_do_not_validate_names(conn: ClipperConnection) -> None:
    conn.register_application("lookup_app", "doubles", "-1", 1000)
    with pytest.raises(NotFoundError, match="No model with name 'test_model'"):
        conn.link_model_to_app("lookup_app", "test_model")
    assert conn.get_app_info("fake_app") is None
    assert conn.get_model_info("Not_A_Model", "V1") is None
    with pytest.raises(NotFoundError, match="No application with name 'fake_app'"):
        conn.delete_application("fake_app")
    with pytest.raises(NotFoundError, match="No application with name 'fake_app'"):
        conn.link_model_to_app("fake_app", "test_model")
    with pytest.raises(NotFoundError, match="No model with name 'Bad_Model'"):
        conn.set_model_version("Bad_Model", "1")
    with pytest.raises(NotFoundError, match="No versions of model Bad_Model"):
        conn.get_current_model_version("Bad_Model")
    with pytest.raises(NotFoundError, match="version 'V1'"):
        conn.delete_versioned_model("not-registered", "V1")


def test_invalid_arguments_are_rejected(conn: ClipperConnection) -> None:
    with pytest.raises(ValidationError, match="input type"):
        conn.register_application("app-badtype", "tensors", "-1", 1000)
    with pytest.raises(ValidationError, match="slo_micros"):
        conn.register_application("app-badslo", "doubles", "-1", 0)
    with pytest.raises(ValidationError, match="batch_size"):
        conn.register_model("m-badbatch", "1", "doubles", batch_size=0)
    with pytest.raises(ValidationError, match="labels"):
        conn.register_model("m-badlabels", "1", "doubles", labels="a")
    with pytest.raises(ValidationError, match="Unknown batching policy 'nope'"):
        conn.register_model("m-badpolicy", "1", "doubles", batching_policy="nope")
    assert conn.get_app_info("app-badtype") is None
    assert not [m for m in conn.get_all_models() if m.startswith("m-bad")]


# -- models and links ----------------------------------------------------------

def test_two_versions_and_switching_between_them(conn: ClipperConnection) -> None:
    conn.register_model("m-ver", 1, "doubles", image="img:1", labels=["a", "b"],
                        batch_size=8)
    assert conn.get_current_model_version("m-ver") == "1"
    conn.register_model("m-ver", "2", "doubles", image="img:2")
    assert conn.get_current_model_version("m-ver") == "2"
    v1 = conn.get_model_info("m-ver", 1)
    assert v1 == {"model_name": "m-ver", "model_version": "1", "input_type": "doubles",
                  "image": "img:1", "labels": ["a", "b"], "batch_size": 8,
                  "batching_policy": "fixed", "is_current_version": False}
    conn.set_model_version("m-ver", 1)
    assert conn.get_current_model_version("m-ver") == "1"
    assert conn.get_model_info("m-ver", "1")["is_current_version"] is True
    assert conn.get_model_info("m-ver", "2")["is_current_version"] is False
    assert {"m-ver:1", "m-ver:2"} <= set(conn.get_all_models())
    verbose = [m for m in conn.get_all_models(verbose=True) if m["model_name"] == "m-ver"]
    assert sorted((m["model_version"], m["is_current_version"]) for m in verbose) == [
        ("1", True), ("2", False)]
    with pytest.raises(NotFoundError, match="version '3'"):
        conn.set_model_version("m-ver", 3)
    with pytest.raises(ConflictError, match="already exists"):
        conn.register_model("m-ver", 2, "doubles")
    assert conn.get_model_info("m-ver", "9") is None


def test_current_version_of_unknown_model(conn: ClipperConnection) -> None:
    with pytest.raises(NotFoundError, match="No versions of model m-none"):
        conn.get_current_model_version("m-none")


def test_delete_versioned_model(conn: ClipperConnection) -> None:
    conn.register_model("m-delv", "1", "ints")
    conn.register_model("m-delv", "2", "ints")
    conn.delete_versioned_model("m-delv", 1)
    assert conn.get_model_info("m-delv", "1") is None
    assert conn.get_model_info("m-delv", "2") is not None


def test_linking_an_unregistered_model_fails(conn: ClipperConnection) -> None:
    conn.register_application("app-nolink", "doubles", "-1", 1000)
    with pytest.raises(ClipperException, match="No model with name"):
        conn.link_model_to_app("app-nolink", "m-unregistered")
    assert conn.get_linked_models("app-nolink") == []


def test_link_rules(conn: ClipperConnection) -> None:
    conn.register_application("app-link", "floats", "-1", 1000)
    conn.register_model("m-link", "1", "floats")
    conn.register_model("m-link2", "1", "floats")
    conn.register_model("m-strings", "1", "strings")
    with pytest.raises(ValidationError, match="input type strings.*input type floats"):
        conn.link_model_to_app("app-link", "m-strings")
    conn.link_model_to_app("app-link", "m-link")
    conn.link_model_to_app("app-link", "m-link")  # linking again is harmless
    assert conn.get_linked_models("app-link") == ["m-link"]
    with pytest.raises(ConflictError, match="already linked to model 'm-link'"):
        conn.link_model_to_app("app-link", "m-link2")
    with pytest.raises(NotFoundError, match="not linked"):
        conn.unlink_model_from_app("app-link", "m-link2")
    with pytest.raises(NotFoundError, match="No application with name 'app-nope'"):
        conn.link_model_to_app("app-nope", "m-link")
    conn.unlink_model_from_app("app-link", "m-link")
    assert conn.get_linked_models("app-link") == []
    conn.link_model_to_app("app-link", "m-link2")
    assert conn.get_app_info("app-link")["linked_models"] == ["m-link2"]


def test_versions_keep_the_input_type_of_linked_apps(conn: ClipperConnection) -> None:
    """Clipper refuses a new (or current) version whose input type differs
    from that of an application its model is linked to."""
    conn.register_application("app-typed", "ints", "-1", 1000)
    conn.register_model("m-typed", "1", "ints")
    conn.register_model("m-typed", "2", "strings")
    conn.set_model_version("m-typed", "1")
    conn.link_model_to_app("app-typed", "m-typed")
    with pytest.raises(ValidationError, match="linked to application 'app-typed'"):
        conn.register_model("m-typed", "3", "doubles")
    assert conn.get_model_info("m-typed", "3") is None
    with pytest.raises(ValidationError, match="version '2' has input type strings"):
        conn.set_model_version("m-typed", "2")
    assert conn.get_current_model_version("m-typed") == "1"
    conn.register_model("m-typed", "4", "ints")
    assert conn.get_current_model_version("m-typed") == "4"


# -- deploying and replicas ----------------------------------------------------

def test_deploy_model_starts_replicas_then_registers(conn: ClipperConnection,
                                                     manager: AddressManager) -> None:
    conn.deploy_model("m-dep", 1, "ints", "img:dep", labels=["x"], num_replicas=3,
                      batch_size=4)
    assert manager.calls[-1] == ("deploy_model", "m-dep", "1", InputType.INTS, "img:dep", 3)
    info = conn.get_model_info("m-dep", "1")
    assert info["image"] == "img:dep" and info["is_current_version"]
    assert conn.get_num_replicas("m-dep") == 3
    with pytest.raises(ConflictError):
        conn.deploy_model("m-dep", 1, "ints", "img:dep", num_replicas=1)
    assert manager.calls[-1][0] == "deploy_model" and manager.calls[-1][-1] == 3


def test_build_and_deploy_model(conn: ClipperConnection, manager: AddressManager,
                                tmp_path: Path) -> None:
    conn.build_and_deploy_model("m-bd", "7", "doubles", str(tmp_path), "base",
                                container_registry="reg", num_replicas=2)
    assert ("build_model", "m-bd", "7") in manager.calls
    assert conn.get_model_info("m-bd", 7)["image"] == "reg/m-bd:7"
    assert conn.get_num_replicas("m-bd", "7") == 2


def test_set_num_replicas(conn: ClipperConnection, manager: AddressManager) -> None:
    conn.deploy_model("m-scale", "1", "doubles", "img:1", num_replicas=1)
    conn.deploy_model("m-scale", "2", "doubles", "img:2", num_replicas=1)
    conn.set_num_replicas("m-scale", 4)
    assert manager.calls[-1] == ("set_num_replicas", "m-scale", "2", "img:2", 4)
    conn.set_num_replicas("m-scale", 0, version=1)
    assert conn.get_num_replicas("m-scale", 1) == 0
    assert conn.get_num_replicas("m-scale") == 4
    with pytest.raises(ValidationError):
        conn.set_num_replicas("m-scale", -1)


def test_containerless_model_cannot_be_scaled(conn: ClipperConnection,
                                              manager: AddressManager) -> None:
    conn.register_model("m-noimg", "1", "doubles")
    assert conn.get_model_info("m-noimg", "1")["image"] is None
    with pytest.raises(ClipperException, match="containerless model"):
        conn.set_num_replicas("m-noimg", 2)
    with pytest.raises(ClipperException, match="containerless model"):
        conn.set_model_version("m-noimg", "1", num_replicas=2)
    assert not any(c[0] == "set_num_replicas" for c in manager.calls)


def test_set_model_version_with_replicas(conn: ClipperConnection,
                                         manager: AddressManager) -> None:
    conn.deploy_model("m-roll", "1", "doubles", "img:1", num_replicas=1)
    conn.deploy_model("m-roll", "2", "doubles", "img:2", num_replicas=1)
    conn.set_model_version("m-roll", "1", num_replicas=3)
    assert conn.get_current_model_version("m-roll") == "1"
    assert manager.replicas[("m-roll", "1")] == 3


def test_stop_methods_unregister_the_stopped_versions(conn: ClipperConnection,
                                                     manager: AddressManager) -> None:
    for v in ("1", "2", "3"):
        conn.deploy_model("m-stop", v, "doubles", f"img:{v}", num_replicas=1)
    conn.deploy_model("m-other", "1", "doubles", "img", num_replicas=1)
    conn.deploy_model("m-other", "2", "doubles", "img", num_replicas=1)

    def registered() -> list[str]:
        return sorted(m for m in conn.get_all_models() if m.startswith(("m-stop", "m-other")))

    conn.stop_inactive_model_versions(["m-stop"])
    assert manager.calls[-1] == ("stop_models", {"m-stop": ["1", "2"]})
    assert manager.replicas[("m-stop", "3")] == 1
    assert registered() == ["m-other:1", "m-other:2", "m-stop:3"]
    assert conn.get_current_model_version("m-stop") == "3"
    conn.stop_versioned_models({"m-stop": [3], "m-never": ["1"]})
    assert manager.calls[-1] == ("stop_models", {"m-stop": ["3"], "m-never": ["1"]})
    assert registered() == ["m-other:1", "m-other:2"]
    conn.stop_models(["m-other"])
    assert manager.calls[-1] == ("stop_models", {"m-other": ["1", "2"]})
    assert registered() == []
    with pytest.raises(ValidationError):
        conn.stop_models("m-stop")


def test_replicas_merge_frontend_and_manager_views(conn: ClipperConnection,
                                                   manager: AddressManager,
                                                   mgmt: ManagementProcess) -> None:
    conn.deploy_model("m-rep", "1", "bytes", "img", num_replicas=2)
    store = open_store(mgmt.store_url)
    try:
        # What a query frontend writes when replicas connect over RPC.
        now = time.time()
        store.put_replica(Replica(model_name="m-rep", model_version="1", replica_id="0",
                                  input_type=InputType.BYTES, frontend="qf-0",
                                  last_seen=now - 5))
        store.put_replica(Replica(model_name="m-rep", model_version="1", replica_id="0",
                                  input_type=InputType.BYTES, connected=False,
                                  frontend="qf-1", last_seen=now - 9))
        store.put_replica(Replica(model_name="m-rep", model_version="1", replica_id="9",
                                  input_type=InputType.BYTES, frontend="qf-0", last_seen=now))
    finally:
        store.close()
    names = [r for r in conn.get_all_model_replicas() if r.startswith("m-rep:")]
    assert names == ["m-rep:1:0", "m-rep:1:1", "m-rep:1:9"]
    r0 = conn.get_model_replica_info("m-rep", 1, 0)
    assert r0 is not None
    assert (r0["connected"], r0["status"], r0["restarts"], r0["input_type"]) == (
        True, "running", 1, "bytes")
    r1 = conn.get_model_replica_info("m-rep", "1", "1")
    assert (r1["connected"], r1["status"], r1["input_type"]) == (False, "running", "bytes")
    r9 = conn.get_model_replica_info("m-rep", "1", "9")
    assert (r9["connected"], r9["status"]) == (True, None)
    assert conn.get_model_replica_info("m-rep", "1", "42") is None
    verbose = [r for r in conn.get_all_model_replicas(verbose=True)
               if r["model_name"] == "m-rep"]
    assert [r["model_replica_id"] for r in verbose] == ["0", "1", "9"]


# -- addresses, logs, metrics, local checks ------------------------------------

def test_addresses_and_logs(conn: ClipperConnection, mgmt: ManagementProcess,
                            tmp_path: Path) -> None:
    assert conn.get_query_addr() == "127.0.0.1:1"
    assert conn.get_metric_addr() == "127.0.0.1:1390"
    assert conn.get_admin_addr() == mgmt.addr
    paths = conn.get_clipper_logs(str(tmp_path / "logs" / "nested"))
    assert [Path(p).read_text() for p in paths] == ["log\n"]


def test_inspect_instance_unreachable(conn: ClipperConnection, manager: AddressManager
                                      ) -> None:
    manager.query_addr = f"127.0.0.1:{free_port()}"
    with pytest.raises(ClipperException, match="Could not read metrics"):
        conn.inspect_instance()


def test_predict_function_decodes_like_the_frontend(conn: ClipperConnection) -> None:
    import base64

    def shapes(xs: list[Any]) -> list[str]:
        return [f"{type(x).__name__}:{getattr(x, 'dtype', '')}:{len(x)}" for x in xs]

    assert conn.test_predict_function({"input": [1, 2, 3]}, shapes, "integers") == [
        "ndarray:int32:3"]
    assert conn.test_predict_function({"input_batch": [[1.5], [2.0, 3.0]]}, shapes,
                                      "floats") == ["ndarray:float32:1", "ndarray:float32:2"]
    assert conn.test_predict_function(
        {"input": base64.b64encode(b"\x00\x01").decode()}, lambda xs: [x.hex() for x in xs],
        "bytes") == ["0001"]
    assert conn.test_predict_function([{"input": "a"}, {"input": "bc"}],
                                      lambda xs: [x.upper() for x in xs], "strings") == [
        "A", "BC"]
    with pytest.raises(ValidationError, match="list of numbers"):
        conn.test_predict_function({"input": "x"}, shapes, "doubles")
    with pytest.raises(ValidationError, match="input_batch"):
        conn.test_predict_function({"inputs": [1.0]}, shapes, "doubles")
    with pytest.raises(ClipperException, match="2 outputs for 1 inputs"):
        conn.test_predict_function({"input": [1.0]}, lambda xs: [1, 2], "doubles")


# -- persistence and authentication ------------------------------------------

def test_state_survives_a_restart(tmp_path: Path) -> None:
    proc = ManagementProcess(f"sqlite:///{tmp_path / 'state.db'}")
    proc.start()
    try:
        conn = ClipperConnection(AddressManager(proc.addr))
        conn.connect()
        conn.register_application("app-persist", "doubles", "-1", 5000)
        conn.register_model("m-persist", "1", "doubles", image="img")
        conn.register_model("m-persist", "2", "doubles", image="img")
        conn.set_model_version("m-persist", "1")
        conn.link_model_to_app("app-persist", "m-persist")
        conn.close()
        proc.stop()
        proc.start()
        conn = ClipperConnection(AddressManager(proc.addr))
        conn.connect()
        assert conn.get_all_apps() == ["app-persist"]
        assert conn.get_linked_models("app-persist") == ["m-persist"]
        assert conn.get_current_model_version("m-persist") == "1"
        assert sorted(conn.get_all_models()) == ["m-persist:1", "m-persist:2"]
        conn.close()
    finally:
        proc.stop()


def test_token_is_required(tmp_path: Path) -> None:
    proc = ManagementProcess(f"sqlite:///{tmp_path / 'state.db'}", token="s3cret-token")
    proc.start()
    try:
        base = f"http://{proc.addr}/admin"
        body = {"name": "app-sneaky", "input_type": "doubles", "default_output": "-1",
                "latency_slo_micros": 1000}
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "s3cret-token"}):
            r = httpx.post(f"{base}/add_app", json=body, headers=headers)
            assert r.status_code == 401
            assert r.json()["error"] == "unauthorized"
            assert httpx.get(f"{base}/ping", headers=headers).status_code == 401
        with pytest.raises(AuthenticationError, match="bearer token"):
            ClipperConnection(AddressManager(proc.addr, token="wrong")).connect()
        conn = ClipperConnection(AddressManager(proc.addr, token="s3cret-token"))
        conn.connect()
        assert conn.get_all_apps() == []
        conn.register_application("app-ok", "doubles", "-1", 1000)
        assert conn.get_all_apps() == ["app-ok"]
        conn.close()
        assert httpx.get(f"http://{proc.addr}/healthz").status_code == 200
    finally:
        proc.stop()


# -- with a real query frontend and a model started outside Clipper ------------

@pytest.mark.slow
def test_end_to_end_with_a_containerless_model(tmp_path: Path) -> None:
    """Register a containerless model, start its replica by hand, link it,
    query it, and see it through the admin API and inspect_instance."""
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    mgmt = ManagementProcess(store_url)
    query_port, rpc_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    mgmt.start()
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "clipper_frontends.query", "--store", store_url,
             "--host", "127.0.0.1", "--port", str(query_port), "--rpc-host", "127.0.0.1",
             "--rpc-port", str(rpc_port), "--frontend-id", "qf-0", "--log-level", "WARNING",
             "--rpc-auth", "none"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{query_port}/healthz").status_code
                   == 200, timeout=20, what="query frontend /healthz")
        conn = ClipperConnection(AddressManager(mgmt.addr,
                                                query_addr=f"127.0.0.1:{query_port}"))
        conn.connect()
        conn.register_application("sum-app", "doubles", "-1", 2_000_000)
        conn.register_model("summer", "1", "doubles")
        conn.link_model_to_app("sum-app", "summer")
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / "predict.py").write_text(
            "def predict(xs):\n    return [str(float(sum(x))) for x in xs]\n")
        env = dict(os.environ, CLIPPER_MODEL_NAME="summer", CLIPPER_MODEL_VERSION="1",
                   CLIPPER_INPUT_TYPE="doubles", CLIPPER_IP="127.0.0.1",
                   CLIPPER_PORT=str(rpc_port), CLIPPER_MODEL_PATH=str(model_dir),
                   CLIPPER_REPLICA_ID="by-hand")
        procs.append(subprocess.Popen([sys.executable, "-m", "clipper_core.runtime"],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        wait_until(lambda: conn.get_model_replica_info("summer", "1", "by-hand"),
                   timeout=20, what="the replica in get_model_replica_info")
        info = conn.get_model_replica_info("summer", "1", "by-hand")
        assert (info["connected"], info["input_type"], info["status"]) == (True, "doubles",
                                                                          None)

        def answered() -> Any:
            r = httpx.post(f"http://127.0.0.1:{query_port}/sum-app/predict",
                           json={"input": [1.0, 2.5]}, timeout=5).json()
            return r if r.get("default") is False else None
        assert wait_until(answered, timeout=20, what="a model answer")["output"] == 3.5
        metrics = conn.inspect_instance()
        assert isinstance(metrics, dict)
        assert "sum-app" in str(metrics)
        with pytest.raises(ClipperException, match="containerless model"):
            conn.set_num_replicas("summer", 2)
        conn.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        mgmt.stop()


def test_concurrent_links_to_one_app_admit_exactly_one(conn: ClipperConnection,
                                                       mgmt: ManagementProcess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    conn.register_application("app-race", "doubles", "-1", 1000)
    names = [f"m-race-{i}" for i in range(8)]
    for name in names:
        conn.register_model(name, "1", "doubles")

    with httpx.Client(base_url=f"http://{mgmt.addr}", timeout=10) as client:
        def link(name: str) -> int:
            return client.post("/admin/add_model_links",
                               json={"app_name": "app-race", "model_names": [name]}).status_code
        with ThreadPoolExecutor(len(names)) as pool:
            statuses = list(pool.map(link, names))
    assert sorted(statuses) == [200] + [409] * (len(names) - 1)
    winner = names[statuses.index(200)]
    assert conn.get_linked_models("app-race") == [winner]


def test_link_rules_hold_across_management_processes(tmp_path: Path) -> None:
    """Two management frontends on one SQLite file: concurrent links of one
    app, sent alternately to both, still admit exactly one model."""
    from concurrent.futures import ThreadPoolExecutor

    url = f"sqlite:///{tmp_path / 'state.db'}"
    procs = [ManagementProcess(url), ManagementProcess(url)]
    for p in procs:
        p.start()
    try:
        conn = ClipperConnection(AddressManager(procs[0].addr))
        conn.connect()
        names = [f"m-race-{i}" for i in range(12)]
        for round_ in range(3):
            app = f"app-race-{round_}"
            conn.register_application(app, "doubles", "-1", 1000)
            for name in names:
                if round_ == 0:
                    conn.register_model(name, "1", "doubles")

            def link(i: int, app: str = app) -> int:
                addr = procs[i % 2].addr
                return httpx.post(f"http://{addr}/admin/add_model_links", timeout=20,
                                  json={"app_name": app, "model_names": [names[i]]}
                                  ).status_code
            with ThreadPoolExecutor(len(names)) as pool:
                statuses = list(pool.map(link, range(len(names))))
            assert sorted(statuses) == [200] + [409] * (len(names) - 1)
            assert conn.get_linked_models(app) == [names[statuses.index(200)]]
        conn.close()
    finally:
        for p in procs:
            p.stop()
