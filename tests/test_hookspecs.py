"""One ``test_hook_<name>`` per hook in ``clipper_core/hookspecs.py``, each
exercising the hook where the core calls it (``tests/test_docs.py`` checks
that none is missing)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, free_port, wait_until
from starlette.testclient import TestClient
from test_connection import AddressManager, ManagementProcess

from clipper_core import plugins
from clipper_core.connection import ClipperConnection
from clipper_core.hookspecs import hookimpl
from clipper_core.interfaces import (
    BatchingPolicy,
    ContainerManager,
    ModelRegistry,
    SelectionPolicy,
    StateStore,
)
from clipper_core.models import Application, InputType, ModelVersion, Replica
from clipper_core.plugins import build_plugin_manager, get_backend, open_store
from clipper_core.stores.memory import MemoryStateStore
from clipper_frontends.management import create_app


class Recorder:
    """Records every event hook call as ``(hook, kwargs)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def named(self, hook: str) -> list[dict[str, Any]]:
        return [kw for name, kw in self.events if name == hook]

    @hookimpl
    def clipper_application_registered(self, application: Application) -> None:
        self.events.append(("clipper_application_registered", {"application": application}))

    @hookimpl
    def clipper_application_deleted(self, name: str) -> None:
        self.events.append(("clipper_application_deleted", {"name": name}))

    @hookimpl
    def clipper_model_registered(self, model: ModelVersion) -> None:
        self.events.append(("clipper_model_registered", {"model": model}))

    @hookimpl
    def clipper_model_deployed(self, model: ModelVersion, num_replicas: int) -> None:
        self.events.append(("clipper_model_deployed",
                            {"model": model, "num_replicas": num_replicas}))

    @hookimpl
    def clipper_replica_connected(self, replica: Replica) -> None:
        self.events.append(("clipper_replica_connected", {"replica": replica}))

    @hookimpl
    def clipper_replica_lost(self, replica: Replica, reason: str) -> None:
        self.events.append(("clipper_replica_lost", {"replica": replica, "reason": reason}))


class Broken:
    """An event plugin that always fails: the core logs it and carries on."""

    @hookimpl
    def clipper_application_registered(self, application: Application) -> None:
        raise RuntimeError("plugin bug")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A Recorder registered in the process-wide plugin manager for one test."""
    pm = plugins.get_plugin_manager()
    rec = Recorder()
    pm.register(rec, name="test-recorder")
    yield rec
    pm.unregister(name="test-recorder")


@pytest.fixture
def registered() -> Iterator[Any]:
    """``registered(plugin)`` adds a plugin to the process-wide manager for one test."""
    pm = plugins.get_plugin_manager()
    names: list[str] = []

    def register(plugin: Any) -> None:
        names.append(pm.register(plugin) or "")
    yield register
    for name in names:
        pm.unregister(name=name)


@pytest.fixture
def admin() -> Iterator[TestClient]:
    with TestClient(create_app("memory://")) as client:
        yield client


APP = {"name": "app1", "input_type": "doubles", "default_output": "-1",
       "latency_slo_micros": 100000}


# -- discovery ----------------------------------------------------------------

def test_hook_register_container_managers(registered: Any) -> None:
    class Plugin:
        @hookimpl
        def register_container_managers(self, register: Any) -> None:
            register("hook-test-manager", AddressManager)

    registered(Plugin())
    backend = get_backend("container_managers", "hook-test-manager")
    assert backend.factory is AddressManager
    conn = ClipperConnection("hook-test-manager", admin_addr="127.0.0.1:1", token="t")
    assert isinstance(conn.cm, ContainerManager)
    assert conn.cm.get_admin_token() == "t"


def test_hook_register_state_stores(tmp_path: Path) -> None:
    opened: list[str] = []

    class Plugin:
        @hookimpl
        def register_state_stores(self, register: Any) -> None:
            def factory(url: str) -> MemoryStateStore:
                opened.append(url)
                return MemoryStateStore(url)
            register("hooktest", factory)

    pm = build_plugin_manager(load_entry_points=False)
    pm.register(Plugin())
    store = open_store("hooktest://anything", pm)
    try:
        assert opened == ["hooktest://anything"]
        assert isinstance(store, StateStore)
        store.add_application(Application.create("a", "ints", "0", 10))
        assert store.get_application("a") is not None
    finally:
        store.close()


def test_hook_register_registries(tmp_path: Path) -> None:
    class DirectoryRegistry:
        def __init__(self, root: str) -> None:
            self.root = Path(root)

        def publish(self, name: str, version: str, artifact: str) -> str:
            dest = self.root / name / version
            shutil.copytree(artifact, dest)
            return str(dest)

        def exists(self, reference: str) -> bool:
            return Path(reference).is_dir()

    class Plugin:
        @hookimpl
        def register_registries(self, register: Any) -> None:
            register("hook-dir", DirectoryRegistry)

    pm = build_plugin_manager(load_entry_points=False)
    pm.register(Plugin())
    registry = get_backend("registries", "hook-dir", pm).factory(root=str(tmp_path / "reg"))
    assert isinstance(registry, ModelRegistry)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "predict.py").write_text("def predict(xs): return xs\n")
    ref = registry.publish("m", "1", str(tmp_path / "model"))
    assert registry.exists(ref) and (Path(ref) / "predict.py").exists()


def test_hook_register_batching_policies(registered: Any, admin: TestClient) -> None:
    class HalfPolicy:
        def __init__(self, model: ModelVersion | None = None, **options: Any) -> None:
            self.size = max(1, (model.batch_size if model else 2) // 2)

        def max_batch_size(self) -> int:
            return self.size

        def batch_delay(self, queued: int) -> float:
            return 0.0

        def on_batch_done(self, size: int, latency_s: float, slo_s: float) -> None:
            pass

        def describe(self) -> dict[str, Any]:
            return {"policy": "half", "max_batch_size": self.size}

    body = {"model_name": "m", "model_version": "1", "input_type": "doubles",
            "batch_size": 8, "batching_policy": "half"}
    assert admin.post("/admin/add_model", json=body).status_code == 400

    class Plugin:
        @hookimpl
        def register_batching_policies(self, register: Any) -> None:
            register("half", HalfPolicy)

    registered(Plugin())
    assert admin.post("/admin/add_model", json=body).status_code == 200
    model = ModelVersion.create("m", "1", "doubles", batch_size=8, batching_policy="half")
    policy = get_backend("batching_policies", model.policy_name).factory(model)
    assert isinstance(policy, BatchingPolicy)
    assert policy.max_batch_size() == 4


def test_hook_register_selection_policies(registered: Any) -> None:
    from clipper_core.errors import PluginError
    from clipper_core.selection import PolicyBase, build_policy

    class AlwaysLast(PolicyBase):
        name = "always-last"

        def select(self, state: Any, query: Any) -> list[str]:
            return [self.models[-1]]

    with pytest.raises(PluginError, match="always-last"):
        build_policy("always-last", ("a", "b"))

    class Plugin:
        @hookimpl
        def register_selection_policies(self, register: Any) -> None:
            register("always-last", AlwaysLast)

    registered(Plugin())
    policy = build_policy("always-last", ("a", "b"))
    assert isinstance(policy, SelectionPolicy)
    assert policy.select(policy.init_state(), None) == ["b"]
    assert "always-last" in plugins.backends("selection_policies")


# -- configuration events -----------------------------------------------------

def test_hook_clipper_application_registered(recorder: Recorder, registered: Any,
                                             admin: TestClient) -> None:
    registered(Broken())  # a failing plugin does not stop the others or the write
    assert admin.post("/admin/add_app", json=APP).status_code == 200
    [event] = recorder.named("clipper_application_registered")
    assert event["application"] == Application.create("app1", "doubles", "-1", 100000)
    assert admin.post("/admin/add_app", json=APP).status_code == 409
    assert len(recorder.named("clipper_application_registered")) == 1


def test_hook_clipper_application_deleted(recorder: Recorder, admin: TestClient) -> None:
    admin.post("/admin/add_app", json=APP)
    assert admin.post("/admin/delete_app", json={"name": "nope"}).status_code == 404
    assert recorder.named("clipper_application_deleted") == []
    assert admin.post("/admin/delete_app", json={"name": "app1"}).status_code == 200
    assert recorder.named("clipper_application_deleted") == [{"name": "app1"}]


def test_hook_clipper_model_registered(recorder: Recorder, admin: TestClient) -> None:
    body = {"model_name": "m", "model_version": 3, "input_type": "ints",
            "container_name": "img", "labels": ["a"]}
    assert admin.post("/admin/add_model", json=body).status_code == 200
    [event] = recorder.named("clipper_model_registered")
    assert event["model"] == ModelVersion.create("m", "3", "ints", image="img", labels=["a"])


def test_hook_clipper_model_deployed(recorder: Recorder, tmp_path: Path) -> None:
    mgmt = ManagementProcess(f"sqlite:///{tmp_path / 'state.db'}")
    mgmt.start()
    try:
        conn = ClipperConnection(AddressManager(mgmt.addr))
        conn.connect()
        conn.register_model("m", "1", "doubles", image="img")
        assert recorder.named("clipper_model_deployed") == []
        conn.deploy_model("m", "2", "doubles", "img:2", num_replicas=3)
        [event] = recorder.named("clipper_model_deployed")
        assert event["num_replicas"] == 3
        assert event["model"] == ModelVersion.create("m", "2", "doubles", image="img:2")
        conn.close()
    finally:
        mgmt.stop()


# -- replica events -------------------------------------------------------------

@pytest.fixture
def query_frontend() -> Iterator[tuple[Any, int]]:
    """A real query frontend (in this process, so its hooks reach the recorder)."""
    from clipper_frontends.query import create_app as create_query_app

    store = open_store("memory://")
    rpc_port = free_port()
    app = create_query_app(store, rpc_host="127.0.0.1", rpc_port=rpc_port,
                           frontend_id="qf-test", replica_silence_s=2.0,
                           rpc_auth="none")  # the replica here has no keys
    with TestClient(app):
        yield store, rpc_port
    store.close()


@pytest.fixture
def replica(query_frontend: tuple[Any, int], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real model replica (``python -m clipper_core.runtime``) connected to it."""
    _store, rpc_port = query_frontend
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "predict.py").write_text("def predict(xs):\n    return xs\n")
    env = dict(os.environ, CLIPPER_MODEL_NAME="m", CLIPPER_MODEL_VERSION="1",
               CLIPPER_INPUT_TYPE="doubles", CLIPPER_IP="127.0.0.1",
               CLIPPER_PORT=str(rpc_port), CLIPPER_MODEL_PATH=str(tmp_path / "model"),
               CLIPPER_REPLICA_ID="r0")
    proc = subprocess.Popen([sys.executable, "-m", "clipper_core.runtime"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_hook_clipper_replica_connected(recorder: Recorder,
                                        query_frontend: tuple[Any, int],
                                        replica: subprocess.Popen[bytes]) -> None:
    events = wait_until(lambda: recorder.named("clipper_replica_connected"), timeout=20,
                        what="clipper_replica_connected")
    r = events[0]["replica"]
    assert isinstance(r, Replica)
    assert (r.model_name, r.model_version, r.replica_id, r.input_type, r.connected,
            r.frontend) == ("m", "1", "r0", InputType.DOUBLES, True, "qf-test")


def test_hook_clipper_replica_lost(recorder: Recorder, query_frontend: tuple[Any, int],
                                   replica: subprocess.Popen[bytes]) -> None:
    wait_until(lambda: recorder.named("clipper_replica_connected"), timeout=20,
               what="clipper_replica_connected")
    assert recorder.named("clipper_replica_lost") == []
    replica.send_signal(signal.SIGKILL)
    events = wait_until(lambda: recorder.named("clipper_replica_lost"), timeout=20,
                        what="clipper_replica_lost")
    r, reason = events[0]["replica"], events[0]["reason"]
    assert (r.model_name, r.model_version, r.replica_id) == ("m", "1", "r0")
    assert reason  # "disconnected" or "silent for 2 s"
