"""NomadContainerManager beyond the shared contract: the docker driver, several
frontends, static addresses with an external Redis, errors that name the
failing allocation, and Nomad API errors turned into clipper-core errors."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from clipper_nomad.manager import NomadContainerManager
from nomad_helpers import FakeNomad, ImageSpec, fast_options

from clipper_core.connection import ClipperConnection
from clipper_core.errors import (
    BuildError,
    ClipperException,
    ClusterStartError,
    ContainerError,
    ValidationError,
)
from clipper_core.interfaces import ContainerManager
from clipper_core.plugins import get_container_manager
from clipper_core.testing.container_manager import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer(addr: str, app: str, x: list[float]) -> dict | None:
    """The model's output for ``x`` through the query frontend at ``addr``, or None
    while the frontend still answers with the default."""
    resp = httpx.post(f"http://{addr}/{app}/predict", json={"input": x}, timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return None if body["default"] else body["output"]


def test_the_plugin_offers_the_nomad_manager() -> None:
    manager = get_container_manager("nomad", cluster_name="c9",
                                    nomad_address="http://127.0.0.1:9")
    assert isinstance(manager, NomadContainerManager)
    assert isinstance(manager, ContainerManager)
    assert manager.cluster_name == "c9"


@pytest.mark.parametrize("options, match", [
    ({"cluster_name": "Bad_Name"}, "Invalid cluster name"),
    ({"cluster_name": "c" * 46}, "at most 45 characters"),
    ({"driver": "podman"}, "Invalid Nomad driver 'podman'"),
    ({"discovery": "dns"}, "Invalid service discovery 'dns'"),
    ({"discovery": "static"}, "needs static_host"),
    ({"datacenters": []}, "datacenters must be"),
])
def test_bad_options_are_validation_errors(options: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        NomadContainerManager(**{"nomad_address": "http://127.0.0.1:9", **options})


def test_raw_exec_build_copies_the_model_and_refuses_packages(tmp_path: Path,
                                                              sum_model_dir: Path) -> None:
    manager = NomadContainerManager("b", nomad_address="http://127.0.0.1:9", driver="raw_exec",
                                    build_dir=str(tmp_path / "builds"))
    reference = manager.build_model("sum", 2, str(sum_model_dir), "ignored")
    assert reference == "local/sum:2"   # an image reference the admin API takes, not a path
    path = Path(manager._model_dir(reference))
    assert path == tmp_path / "builds" / "sum" / "2"
    assert (path / "predict.py").read_text() == (sum_model_dir / "predict.py").read_text()
    with pytest.raises(BuildError, match="cannot install packages"):
        manager.build_model("sum", "3", str(sum_model_dir), "ignored", None, ["numpy"])
    with pytest.raises(BuildError, match="does not exist"):
        manager.build_model("sum", "4", str(tmp_path / "nowhere"), "ignored")


def test_unreachable_nomad_is_a_container_error() -> None:
    manager = NomadContainerManager("c1", nomad_address=f"http://127.0.0.1:{free_port()}",
                                    request_timeout_s=2)
    with pytest.raises(ContainerError, match="Cannot reach Nomad at http://127.0.0.1"):
        manager.connect()


def test_acl_token_errors_and_a_missing_cluster(tmp_path: Path) -> None:
    with FakeNomad(tmp_path / "n", token="s3cret") as fake:
        wrong = NomadContainerManager("c1", nomad_address=fake.address, token="nope")
        with pytest.raises(ContainerError, match="permission denied.*ACL token"):
            wrong.list_replicas()
        right = NomadContainerManager("c1", nomad_address=fake.address, token="s3cret")
        with pytest.raises(ClipperException, match="No running Clipper cluster 'c1'"):
            right.connect()
        assert right.get_num_replicas("m", "1") == 0
        assert right.list_replicas() == []


@pytest.mark.redis
def test_failing_allocation_is_named_with_its_task_events(fake_nomad: FakeNomad,
                                                          tmp_path: Path) -> None:
    fake_nomad.images.add("redis:7-alpine", ImageSpec(entrypoint=("redis-server",)))
    fake_nomad.images.add("test/query:1", ImageSpec.python())
    manager = NomadContainerManager(**fast_options(fake_nomad, tmp_path, "broken",
                                                   driver="docker", restart_attempts=1))
    try:
        with pytest.raises(ClusterStartError) as info:
            manager.start_clipper("test/query:1", "missing/mgmt:1", 1024)
        (alloc,) = fake_nomad.job_allocations("clipper-broken-mgmt")
        message = str(info.value)
        assert f"allocation {alloc.id}" in message
        assert "clipper-broken-mgmt.management[0]" in message
        assert "Driver Failure: Failed to pull `missing/mgmt:1`" in message
        assert "Not Restarting" in message
        assert info.value.allocation == alloc.id
    finally:
        manager.stop_all()
    assert fake_nomad.pids() == []
    assert fake_nomad.jobs == {}


def test_crashing_model_replica_is_named_with_events_and_stderr(fake_nomad: FakeNomad,
                                                                tmp_path: Path) -> None:
    model = tmp_path / "bad-model"
    model.mkdir()
    (model / "predict.py").write_text("raise RuntimeError('this model cannot load')\n")
    manager = NomadContainerManager(**fast_options(fake_nomad, tmp_path, "crash",
                                                   restart_attempts=1,
                                                   model_min_healthy_time_s=10.0))
    image = manager.build_model("bad", "1", str(model), "ignored")
    try:
        with pytest.raises(ContainerError) as info:
            manager.deploy_model("bad", "1", "doubles", image, num_replicas=1)
        message = str(info.value)
        (alloc,) = fake_nomad.job_allocations("clipper-crash-model-bad.1")
        assert f"allocation {alloc.id}" in message
        assert "Terminated: Exit Code: 1" in message
        assert "this model cannot load" in message
    finally:
        manager.stop_all()


@pytest.mark.redis
@pytest.mark.slow
def test_docker_driver_cluster_with_query_frontends_found_by_template(tmp_path: Path,
                                                        sum_model_dir: Path) -> None:
    images = {"redis:7-alpine": ImageSpec(entrypoint=("redis-server",)),
              "test/query:1": ImageSpec.python(), "test/mgmt:1": ImageSpec.python(),
              "test/sum-model:1": ImageSpec.model(sum_model_dir)}
    with FakeNomad(tmp_path / "n", images=images) as fake:
        options = fast_options(fake, tmp_path, "dock", driver="docker", admin_token="tok")
        conn = ClipperConnection(NomadContainerManager(**options))
        manager = conn.cm
        try:
            conn.start_clipper("test/query:1", "test/mgmt:1", 4096, num_frontend_replicas=2)
            assert any("/v1/job/clipper-dock-query/allocations?index=" in path
                       for _, path in fake.requests), "the manager uses blocking queries"
            with pytest.raises(ClusterStartError, match="already has jobs"):
                NomadContainerManager(**options).start_clipper("test/query:1", "test/mgmt:1", 1)
            conn.deploy_model("sum", "1", "doubles", "test/sum-model:1", num_replicas=2)
            conn.register_application("sums", "doubles", "none", 5_000_000)
            conn.link_model_to_app("sums", "sum")
            frontends = manager.get_query_addrs()
            assert len(set(frontends)) == 2
            for addr in frontends:  # replicas found both frontends through the template
                out = wait_for(lambda a=addr: answer(a, "sums", [2.0, 3.0]), 30,
                               f"an answer from {addr}")
                assert out == {"version": "1", "sum": 5.0}
            replicas = manager.list_replicas()
            assert [(r.model_name, r.status, r.restarts) for r in replicas] == \
                [("sum", "running", 0)] * 2
            fake.kill_task(replicas[0].handle, "replica")
            wait_for(lambda: {r.replica_id: r.restarts for r in manager.list_replicas()}
                     .get(replicas[0].replica_id) == 1, 20, "the restart to be counted")
            paths = conn.get_clipper_logs(str(tmp_path / "logs"))
            names = sorted(Path(p).name.split(".")[0] for p in paths)
            assert names == ["clipper-dock-mgmt", "clipper-dock-model-sum",
                             "clipper-dock-model-sum", "clipper-dock-query",
                             "clipper-dock-query", "clipper-dock-redis"]
            assert conn.get_num_replicas("sum", "1") == 2
            # An operator adds a frontend (nomad job scale): the replicas' template
            # re-renders, they restart and connect to it too.
            manager.client.job.request("clipper-dock-query", "scale", method="post", json={
                "Count": 3, "Target": {"Group": "query"}})
            manager._wait("clipper-dock-query", 3, time.monotonic() + 60, healthy=True,
                          error=ContainerError)
            (added,) = set(manager.get_query_addrs()) - set(frontends)
            out = wait_for(lambda: answer(added, "sums", [4.0]), 30, "the new frontend")
            assert out == {"version": "1", "sum": 4.0}
            events = [e["Type"] for a in fake.job_allocations("clipper-dock-model-sum.1")
                      for e in a.tasks["replica"].events]
            assert events.count("Restart Signaled") == 2
        finally:
            conn.stop_all()
        assert fake.pids() == []
        assert fake.jobs == {}


@pytest.fixture
def external_redis(tmp_path: Path):
    """A redis-server of our own, as an existing Redis the cluster uses."""
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close()
                 or True, 10, "redis-server")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.redis
@pytest.mark.slow
def test_static_addresses_and_an_external_redis(fake_nomad: FakeNomad, tmp_path: Path,
                                                sum_model_dir: Path, external_redis: int) -> None:
    ports = {"query_port": free_port(), "mgmt_port": free_port(), "rpc_port": free_port()}
    options = fast_options(fake_nomad, tmp_path, "fixed", discovery="static",
                           static_host="127.0.0.1", redis_ip="127.0.0.1",
                           redis_port=external_redis, **ports)
    conn = ClipperConnection(NomadContainerManager(**options))
    try:
        conn.start_clipper()
        assert conn.get_query_addr() == f"127.0.0.1:{ports['query_port']}"
        assert conn.cm.get_admin_addr() == f"127.0.0.1:{ports['mgmt_port']}"
        assert "clipper-fixed-redis" not in {job_id for _, job_id in fake_nomad.jobs}
        image = conn.build_model("sum", "3", str(sum_model_dir), "ignored")
        conn.deploy_model("sum", "3", "doubles", image)
        conn.register_application("s", "doubles", "none", 5_000_000)
        conn.link_model_to_app("s", "sum")
        out = wait_for(lambda: answer(conn.get_query_addr(), "s", [1.5]), 30, "an answer")
        assert out == {"version": "3", "sum": 1.5}
        other = ClipperConnection(NomadContainerManager(**options))
        other.connect()
        assert other.get_app_info("s")["name"] == "s"
    finally:
        conn.stop_all()
    assert fake_nomad.pids() == []


def test_namespace_scopes_jobs_replicas_and_logs(fake_nomad: FakeNomad, tmp_path: Path,
                                                 sum_model_dir: Path) -> None:
    """Without frontends a replica still runs (it keeps trying to connect)."""
    in_ml = NomadContainerManager(**fast_options(fake_nomad, tmp_path, "ns", namespace="ml",
                                                 region="global"))
    default = NomadContainerManager(**fast_options(fake_nomad, tmp_path, "ns"))
    image = in_ml.build_model("sum", "1", str(sum_model_dir), "ignored")
    try:
        in_ml.deploy_model("sum", "1", "doubles", image, num_replicas=2)
        assert len(fake_nomad.job_allocations("clipper-ns-model-sum.1", namespace="ml")) == 2
        assert fake_nomad.job_allocations("clipper-ns-model-sum.1") == []
        assert [r.status for r in in_ml.list_replicas()] == ["running", "running"]
        assert default.list_replicas() == [] and default.get_num_replicas("sum", "1") == 0
        assert in_ml.get_num_replicas("sum", "1") == 2
        paths = in_ml.get_logs(str(tmp_path / "logs"))
        assert len(paths) == 2 and all("==> stderr <==" in Path(p).read_text() for p in paths)
        assert any("namespace=ml" in path and "region=global" in path
                   for _, path in fake_nomad.requests)
        in_ml.stop_models({"sum": ["1"]})
        assert in_ml.list_replicas() == []
        assert fake_nomad.jobs == {}
    finally:
        in_ml.stop_all()
