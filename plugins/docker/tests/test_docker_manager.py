"""Behaviour specific to Docker: labels, networks, images, registries, restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from clipper_docker import cluster as lb
from clipper_docker.manager import DockerContainerManager

from clipper_core.connection import ClipperConnection
from clipper_core.deployers.python import create_endpoint, deploy_python_closure
from clipper_core.errors import BuildError, ClusterStartError, ContainerError

pytestmark = pytest.mark.docker


def query(conn: ClipperConnection, app: str, x: Any, timeout: float = 10.0) -> dict[str, Any]:
    resp = httpx.post(f"http://{conn.get_query_addr()}/{app}/predict", json={"input": x},
                      timeout=timeout)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_output(conn: ClipperConnection, app: str, x: Any, expected: Any,
                timeout: float = 30.0) -> dict[str, Any]:
    """Query until the model (not the default output) answers ``expected``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = query(conn, app, x)
        if not last.get("default") and last.get("output") == expected:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{app} never answered {expected!r}; last response {last!r}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def cluster_resources(client: Any, name: str) -> dict[str, list[str]]:
    """Containers, networks and volumes carrying the cluster's label."""
    label = {"label": f"{lb.CLUSTER}={name}"}
    return {"containers": [c.name for c in client.containers.list(all=True, filters=label)],
            "networks": [n.name for n in client.networks.list(filters=label)],
            "volumes": [v.name for v in client.volumes.list(filters=label)]}


# -- the shared cluster -----------------------------------------------------------


def test_start_runs_labelled_containers_on_the_cluster_network(
        cluster: ClipperConnection, docker_client: Any) -> None:
    cm = cluster.cm
    containers = docker_client.containers.list(filters={"label": f"{lb.CLUSTER}={cm.cluster_name}"})
    roles = sorted(c.labels[lb.ROLE] for c in containers if c.labels[lb.ROLE] != lb.ROLE_MODEL)
    assert roles == [lb.ROLE_MANAGEMENT, lb.ROLE_QUERY, lb.ROLE_REDIS]
    network = cm.info.network
    assert network in (lb.DEFAULT_NETWORK, lb.HOST_NETWORK), "Clipper's default network"
    for c in containers:
        assert network in c.attrs["NetworkSettings"]["Networks"]
    if network == lb.DEFAULT_NETWORK:
        (net,) = docker_client.networks.list(names=[network])
        assert net.attrs["Labels"][lb.OWNED] == "true", "created by a cluster, which removes it"
    assert cluster.get_query_addr() == f"localhost:{cm.clipper_query_port}"
    assert cluster.get_admin_addr() == f"localhost:{cm.clipper_management_port}"
    assert httpx.get(f"http://{cluster.get_query_addr()}/healthz", timeout=5).status_code == 200
    assert cm.info.store_url == (f"redis://clipper-{cm.cluster_name}-redis:{cm.redis_port}/0"
                                 f"?prefix={cm.cluster_name}")


def test_starting_a_running_cluster_again_is_refused(cluster: ClipperConnection) -> None:
    again = DockerContainerManager(cluster_name=cluster.cm.cluster_name)
    with pytest.raises(ClusterStartError, match="already running"):
        again.start_clipper()
    token = {"Authorization": f"Bearer {cluster.cm.get_admin_token()}"}  # on by default
    assert httpx.get(f"http://{cluster.get_admin_addr()}/admin/ping", headers=token,
                     timeout=5).status_code == 200


def test_connect_to_a_missing_cluster_says_so(docker_client: Any) -> None:
    cm = DockerContainerManager(cluster_name=unique("absent"))
    with pytest.raises(ClusterStartError, match="No running Clipper cluster named"):
        cm.connect()


def test_connect_from_a_second_process(cluster: ClipperConnection) -> None:
    app = unique("proc")
    create_endpoint(cluster, app, "doubles", lambda xs: [sum(x) for x in xs])
    script = (
        "import json\n"
        "from clipper_core.connection import ClipperConnection\n"
        "from clipper_docker.manager import DockerContainerManager\n"
        f"conn = ClipperConnection(DockerContainerManager(cluster_name={cluster.cm.cluster_name!r}))\n"
        "conn.connect()\n"
        f"conn.set_num_replicas({app!r}, 2)\n"
        "print(json.dumps({'apps': conn.get_all_apps(), 'query': conn.get_query_addr(),\n"
        f"                  'replicas': conn.get_num_replicas({app!r})}}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert app in seen["apps"]
    assert seen["query"] == cluster.get_query_addr()
    assert seen["replicas"] == 2
    assert cluster.get_num_replicas(app) == 2
    assert wait_output(cluster, app, [1.0, 2.5], 3.5)["default"] is False
    cluster.stop_models([app])


def test_build_model_writes_model_dir_and_installs_packages(
        cluster: ClipperConnection, docker_client: Any, tmp_path: Path) -> None:
    (tmp_path / "predict.py").write_text("def predict(xs):\n    return [1 for _ in xs]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.txt").write_text("weights")
    name = unique("built")
    tag = cluster.build_model(name, "7", str(tmp_path), "default", pkgs_to_install=["toolz"])
    try:
        assert tag == f"{name}:7"
        out = docker_client.containers.run(
            tag, ["python", "-c", "import toolz, pathlib; "
                  "print(pathlib.Path('/model/sub/data.txt').read_text(), "
                  "sorted(p.name for p in pathlib.Path('/model').iterdir()))"], remove=True)
        assert out.decode().split() == ["weights", "['predict.py',", "'sub']"]
    finally:
        docker_client.images.remove(tag, force=True)


def test_python_closure_with_pkgs_to_install(cluster: ClipperConnection) -> None:
    def uses_toolz(xs: list[Any]) -> list[str]:
        import toolz

        return [json.dumps(toolz.frequencies(x)) for x in xs]

    name = unique("closure")
    cluster.register_application(name, "strings", "none", 5_000_000)
    deploy_python_closure(cluster, name, 1, "strings", uses_toolz, pkgs_to_install=["toolz"])
    cluster.link_model_to_app(name, name)
    assert wait_output(cluster, name, "abca", {"a": 2, "b": 1, "c": 1})["default"] is False
    cluster.stop_models([name])


def test_get_clipper_logs_writes_one_file_per_container(
        cluster: ClipperConnection, docker_model_image: str, tmp_path: Path) -> None:
    name = unique("logs")
    cluster.deploy_model(name, "1", "doubles", docker_model_image, num_replicas=2)
    try:
        paths = cluster.get_clipper_logs(str(tmp_path))
        names = {Path(p).name for p in paths}
        cm = cluster.cm
        for part in ("mgmt", "query-0", "redis"):
            assert f"clipper-{cm.cluster_name}-{part}.log" in names
        model_logs = [p for p in paths if f"-{name}-1-" in Path(p).name]
        assert len(model_logs) == 2
        assert all("serving model" in Path(p).read_text() for p in model_logs)
        assert "Uvicorn running" in (tmp_path / f"clipper-{cm.cluster_name}-mgmt.log").read_text()
    finally:
        cluster.stop_models([name])


def test_build_push_and_deploy_from_registry(cluster: ClipperConnection, docker_client: Any,
                                             docker_model_dir: Path, registry: str,
                                             registry_warm: None) -> None:
    name = unique("pushed")
    tag = cluster.build_model(name, "2", str(docker_model_dir), "default",
                              container_registry=registry)
    assert tag == f"{registry}/{name}:2"
    tags = httpx.get(f"http://{registry}/v2/{name}/tags/list", timeout=5).json()
    assert tags["tags"] == ["2"]
    docker_client.images.remove(tag, force=True)  # the deploy must pull it back
    try:
        cluster.deploy_model(name, "2", "doubles", tag)
        assert docker_client.images.get(tag)
        cluster.register_application(name, "doubles", "none", 5_000_000)
        cluster.link_model_to_app(name, name)
        out = wait_output(cluster, name, [2.0, 3.0], {"version": "2", "sum": 5.0})
        assert out["default"] is False
    finally:
        cluster.stop_models([name])
        docker_client.images.remove(tag, force=True)


def test_killed_container_restarts_and_reports_restart_count(
        cluster: ClipperConnection, docker_model_image: str,
        kill_main_process: Callable[[Any], None]) -> None:
    name = unique("crash")
    cluster.deploy_model(name, "1", "doubles", docker_model_image)
    try:
        (container,) = cluster.cm.model_containers(name, "1")
        kill_main_process(container)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (status,) = [r for r in cluster.cm.list_replicas() if r.model_name == name]
            if status.restarts >= 1 and status.status == "running":
                break
            time.sleep(0.2)
        assert status.restarts >= 1 and status.status == "running", status
        assert status.handle == container.id[:12]  # the same container came back
        info = cluster.get_model_replica_info(name, "1", lb.replica_id(name, "1", 0))
        assert info is not None and info["restarts"] >= 1
    finally:
        cluster.stop_models([name])


def test_docker_errors_become_clipper_errors(cluster: ClipperConnection,
                                             tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not a directory"):
        cluster.cm.build_model("nodir", "1", str(tmp_path / "missing"), "default")
    (tmp_path / "predict.py").write_text("def predict(xs):\n    return xs\n")
    with pytest.raises(BuildError, match="no-such-package-clipper-test"):
        cluster.build_model("badpkg", "1", str(tmp_path), "default",
                            pkgs_to_install=["no-such-package-clipper-test==0.0.1"])
    with pytest.raises(BuildError, match="clipper-test/absent-base"):
        cluster.build_model("badbase", "1", str(tmp_path), "127.0.0.1:9/clipper-test/absent-base:1")
    with pytest.raises(ContainerError, match="127.0.0.1:9/clipper-test/absent"):
        cluster.cm.deploy_model("absent", "1", "doubles", "127.0.0.1:9/clipper-test/absent:1")


# -- clusters of their own --------------------------------------------------------


def test_failed_start_reports_logs_and_leaves_nothing(make_manager: Callable[..., Any],
                                                      docker_client: Any,
                                                      project_images: Any) -> None:
    cm = make_manager(unique("fail"), start_timeout=30.0)
    with pytest.raises(ClusterStartError) as err:
        # the management image does not understand the query frontend's flags
        cm.start_clipper(query_frontend_image=project_images.management_frontend)
    assert "clipper-" in str(err.value) and "unrecognized arguments" in str(err.value)
    assert cluster_resources(docker_client, cm.cluster_name) == {
        "containers": [], "networks": [], "volumes": []}


def test_host_networking_external_redis_and_two_query_frontends(
        make_manager: Callable[..., Any], docker_client: Any, host_redis: int) -> None:
    import redis

    name = unique("host")
    conn = ClipperConnection(make_manager(name, docker_network="host", redis_ip="127.0.0.1",
                                          redis_port=host_redis))
    try:
        conn.start_clipper(num_frontend_replicas=2)
        info = conn.cm.info
        assert info.host_network and len(info.frontends) == 2
        assert info.store_url == f"redis://127.0.0.1:{host_redis}/0?prefix={name}"
        create_endpoint(conn, "double", "doubles", lambda xs: [2 * x[0] for x in xs])
        assert wait_output(conn, "double", [21.0], 42.0)["default"] is False
        # the replica serves the second frontend too (CLIPPER_FRONTENDS lists both)
        second_port = info.query_endpoints[1][0]
        resp = httpx.post(f"http://localhost:{second_port}/double/predict",
                          json={"input": [4.0]}, timeout=10).json()
        assert resp["output"] == 8.0 and resp["default"] is False, resp
        running = docker_client.containers.list(filters={"label": f"{lb.CLUSTER}={name}"})
        assert all(c.attrs["HostConfig"]["NetworkMode"] == "host" for c in running)
        roles = sorted(c.labels[lb.ROLE] for c in running)
        assert roles == ["management", "model", "query", "query"]  # no Redis container
        keys = redis.Redis(port=host_redis).keys(f"{name}:*")
        assert keys, "the cluster's state is not in the external Redis"
    finally:
        conn.stop_all()
    assert cluster_resources(docker_client, name) == {
        "containers": [], "networks": [], "volumes": []}


def test_stop_all_removes_containers_network_and_volumes(make_manager: Callable[..., Any],
                                                         docker_client: Any,
                                                         docker_model_image: str) -> None:
    name = unique("stop")  # a network of its own: the cluster creates it, so it removes it
    conn = ClipperConnection(make_manager(name, docker_network=lb.network_name(name)))
    conn.start_clipper()
    try:
        conn.deploy_model("m", "1", "doubles", docker_model_image, num_replicas=2)
        before = cluster_resources(docker_client, name)
        assert len(before["containers"]) == 5 and before["networks"] == [lb.network_name(name)]
        volumes = {m["Name"] for c in docker_client.containers.list(
            all=True, filters={"label": f"{lb.CLUSTER}={name}"})
            for m in c.attrs["Mounts"] if m["Type"] == "volume"}
    finally:
        conn.stop_all()
    assert cluster_resources(docker_client, name) == {
        "containers": [], "networks": [], "volumes": []}
    left = {v.name for v in docker_client.volumes.list()}
    assert not volumes & left
    with pytest.raises(ClusterStartError):
        DockerContainerManager(cluster_name=name).connect()


def test_missing_project_images_are_built_on_first_use(docker_client: Any, project_images: Any,
                                                       tmp_path: Path) -> None:
    from clipper_docker.images import ProjectImages

    images = ProjectImages.with_prefix(unique("clipper-auto"))
    lines: list[str] = []
    cm = DockerContainerManager(
        cluster_name=unique("auto"), images=images, progress=lines.append,
        python_base_image=os.environ.get("CLIPPER_TEST_BASE_IMAGE", "python:3.11-slim"))
    (tmp_path / "predict.py").write_text("def predict(xs):\n    return xs\n")
    tag = cm.build_model("auto-model", "1", str(tmp_path), "default")
    try:
        for image in images.targets().values():
            assert docker_client.images.get(image)
        assert f"Successfully tagged {images.model_base}" in lines
        assert f"Successfully tagged {tag}" in lines
        out = docker_client.containers.run(
            tag, ["python", "-c", "import clipper_core.runtime, os; "
                  "print(os.environ['CLIPPER_MODEL_PATH'], os.listdir('/model'))"], remove=True)
        assert out.decode().split() == ["/model", "['predict.py']"]
    finally:
        for image in (tag, *images.targets().values()):
            docker_client.images.remove(image, force=True)
