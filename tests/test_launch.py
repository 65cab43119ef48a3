"""The launch contract: command lines match the programs, secrets stay out of argv,
replica environments, and the replica wait."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import attrs
import pytest

from clipper_core import launch
from clipper_core.errors import ContainerError
from clipper_core.models import InputType, Replica
from clipper_core.plugins import open_store


def _help(module: str) -> str:
    return subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                          text=True, timeout=60, check=True).stdout


def _flags(spec: launch.ProcessSpec) -> set[str]:
    return {a for a in spec.args if a.startswith("--")}


@pytest.mark.parametrize("spec", [
    launch.query_process(store_url="memory://", frontend_id="q0"),
    launch.management_process(store_url="memory://",
                              secrets=launch.ClusterSecrets(admin_token="t")),
], ids=["query", "management"])
def test_every_flag_is_one_the_program_accepts(spec: launch.ProcessSpec) -> None:
    text = _help(spec.module)
    missing = {f for f in _flags(spec) if f not in text}
    assert not missing, f"{spec.module} --help does not list {missing}"


def test_query_process_command_line() -> None:
    spec = launch.query_process(store_url="redis://r:6379/0", frontend_id="$(POD_NAME)",
                                port="${NOMAD_PORT_http}", rpc_port=7001, cache_size=10)
    assert spec.argv("py") == [
        "py", "-m", "clipper_frontends.query", "--store", "redis://r:6379/0", "--host",
        "0.0.0.0", "--port", "${NOMAD_PORT_http}", "--rpc-host", "0.0.0.0", "--rpc-port",
        "7001", "--cache-size", "10", "--frontend-id", "$(POD_NAME)", "--rpc-auth", "none"]
    assert spec.ports == {"http": "${NOMAD_PORT_http}", "rpc": 7001}
    assert spec.ready == launch.ReadyCheck(port="${NOMAD_PORT_http}", path="/healthz")


def test_secrets_never_in_argv_and_delivered_as_env_or_file() -> None:
    spec = launch.management_process(store_url="memory://", port=9,
                                     secrets=launch.ClusterSecrets(admin_token="s3cret"))
    assert "s3cret" not in " ".join(spec.argv()) and "s3cret" not in repr(spec)
    assert spec.environment() == {"CLIPPER_ADMIN_TOKEN": "s3cret"}
    assert spec.file_environment("/run/secrets/") == {
        "CLIPPER_ADMIN_TOKEN_FILE": "/run/secrets/admin_token"}
    assert spec.ready is not None and spec.ready.needs_token
    open_spec = launch.management_process(store_url="memory://")
    assert open_spec.environment() == {} and not open_spec.ready.needs_token  # type: ignore[union-attr]
    query = launch.query_process(store_url="memory://", frontend_id="q",
                                 secrets=launch.ClusterSecrets(admin_token="s3cret"))
    assert query.environment() == {}, "only the management frontend gets the admin token"


@pytest.mark.parametrize(("targets", "env"), [
    (launch.RpcTargets(addresses=["a:1"]),
     {"CLIPPER_IP": "a", "CLIPPER_PORT": "1", "CLIPPER_FRONTENDS": "a:1"}),
    (launch.RpcTargets(addresses=["a:1", "b:2"]), {"CLIPPER_FRONTENDS": "a:1,b:2"}),
    (launch.RpcTargets(host="svc", port=7000), {"CLIPPER_IP": "svc", "CLIPPER_PORT": "7000"}),
    (launch.RpcTargets(), {}),
])
def test_replica_environment(targets: launch.RpcTargets, env: dict[str, str]) -> None:
    spec = launch.replica_process(name="m", version="2", input_type="floats", frontends=targets,
                                  replica_id="m-2-0")
    assert spec.argv("py") == ["py", "-m", "clipper_core.runtime"]
    assert spec.environment() == {"CLIPPER_MODEL_NAME": "m", "CLIPPER_MODEL_VERSION": "2",
                                  "CLIPPER_INPUT_TYPE": "floats", "CLIPPER_MODEL_PATH": "/model",
                                  "CLIPPER_REPLICA_ID": "m-2-0", **env}
    assert set(spec.environment()) <= set(launch.REPLICA_ENV_KEYS)


def _replica(rid: str, frontend: str, connected: bool = True, version: str = "1") -> Replica:
    return Replica(model_name="m", model_version=version, replica_id=rid,
                   input_type=InputType.DOUBLES, connected=connected, frontend=frontend,
                   last_seen=time.time())


def test_wait_per_frontend_needs_every_frontend() -> None:
    want = launch.ReplicaWait(name="m", version="1", count=1, frontends=["f0", "f1"])
    assert not want.met([_replica("a", "f0")])
    assert not want.met([_replica("a", "f0"), _replica("a", "f1", connected=False)])
    assert not want.met([_replica("a", "f0"), _replica("a", "f1", version="2")])
    assert want.met([_replica("a", "f0"), _replica("b", "f1")])
    ids = launch.ReplicaWait(name="m", version="1", replica_ids={"a", "b"})
    assert not ids.met([_replica("a", "x")])
    assert ids.met([_replica("a", "x"), _replica("b", "y")]), "None: all frontends together"


def test_wait_reads_the_store_until_connected() -> None:
    store = open_store("memory://")
    threading.Timer(0.3, store.put_replica, [_replica("a", "f0")]).start()
    want = launch.ReplicaWait(name="m", version="1", count=1, frontends=["f0"])
    started = time.monotonic()
    assert launch.wait_for_replicas(launch.store_replicas(store), want, timeout=5)
    assert 0.2 < time.monotonic() - started < 3
    two = attrs.evolve(want, count=2)
    assert not launch.wait_for_replicas(launch.store_replicas(store), two, timeout=0.3)


def test_wait_stops_when_the_check_raises() -> None:
    def crashed() -> None:
        raise ContainerError("replica crashed")

    with pytest.raises(ContainerError, match="crashed"):
        launch.wait_for_replicas(list, launch.ReplicaWait(name="m", version="1", count=1),
                                 timeout=5, check=crashed)


def test_admin_reader_tolerates_a_dead_frontend() -> None:
    assert launch.admin_replicas("127.0.0.1:1", timeout=0.5)() == []


def test_our_images_are_not_clippers() -> None:
    for tag in launch.DEFAULT_IMAGES.targets().values():
        assert not tag.startswith("clipper/"), tag
    assert launch.is_project_image({launch.IMAGE_TITLE_LABEL: launch.IMAGE_TITLE})
    assert not launch.is_project_image({}) and not launch.is_project_image(None)


def test_the_management_frontend_is_told_where_the_query_frontends_are() -> None:
    spec = launch.management_process(store_url="sqlite:////tmp/s.db",
                                     query_urls=["http://q0:1337", "http://q1:1337"])
    args = list(spec.args)
    assert [args[i + 1] for i, a in enumerate(args) if a == "--query-url"] == [
        "http://q0:1337", "http://q1:1337"]
