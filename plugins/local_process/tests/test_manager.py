"""Behaviour specific to local processes: real clusters, real processes."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
from clipper_local_process import LocalProcessContainerManager

from clipper_core.connection import ClipperConnection
from clipper_core.deployers.python import create_endpoint
from clipper_core.errors import ClipperException, ClusterStartError, ContainerError

from .conftest import manager_options, wait_until


def query(conn, app, x, **extra):
    """The first answer from the model (frontends follow a new link within a second)."""
    def answer():
        resp = httpx.post(f"http://{conn.get_query_addr()}/{app}/predict",
                          json={"input": x, **extra}, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json() if not resp.json()["default"] else None
    return wait_until(answer, 15, f"{app} to answer")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster shared by the tests that only add their own apps and models."""
    conn = ClipperConnection(LocalProcessContainerManager(
        **manager_options(tmp_path_factory.mktemp("shared"), "shared")))
    try:
        conn.start_clipper()
        yield conn
    finally:
        conn.stop_all()


def our_processes() -> set[int]:
    """Pids of our live (non-zombie) descendants."""
    out = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.add(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return out


def test_two_clusters_side_by_side(tmp_path):
    conns = [ClipperConnection(LocalProcessContainerManager(**manager_options(tmp_path, n)))
             for n in ("left", "right")]
    try:
        for value, conn in zip((1.0, 2.0), conns, strict=True):
            conn.start_clipper()
            create_endpoint(conn, "echo", "doubles", lambda xs, v=value: [v for _ in xs])
        assert conns[0].get_query_addr() != conns[1].get_query_addr()
        assert query(conns[0], "echo", [0.0])["output"] == 1.0
        assert query(conns[1], "echo", [0.0])["output"] == 2.0
        conns[0].stop_all()
        assert query(conns[1], "echo", [5.0])["output"] == 2.0
        assert conns[1].get_num_replicas("echo") == 1
    finally:
        for conn in conns:
            conn.stop_all()


def test_connect_from_a_second_process(cluster, tmp_path):
    create_endpoint(cluster, "sum", "doubles", lambda xs: [float(sum(x)) for x in xs])
    cm = cluster.cm
    script = (
        "import json, sys\n"
        "from clipper_core.connection import ClipperConnection\n"
        "from clipper_local_process import LocalProcessContainerManager\n"
        f"cm = LocalProcessContainerManager(cluster_name={cm.cluster_name!r}, "
        f"state_dir={str(cm.state_dir)!r})\n"
        "conn = ClipperConnection(cm)\n"
        "conn.connect()\n"
        "conn.set_num_replicas('sum', 2)\n"
        "print(json.dumps({'apps': 'sum' in conn.get_all_apps(),\n"
        "                  'query': conn.get_query_addr(),\n"
        "                  'token': cm.get_admin_token(),\n"
        "                  'replicas': conn.get_num_replicas('sum')}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen == {"apps": True, "query": cluster.get_query_addr(),
                    "token": cm.get_admin_token(), "replicas": 2}
    assert cluster.get_num_replicas("sum") == 2
    assert query(cluster, "sum", [1.0, 2.0])["output"] == 3.0


def test_admin_token_is_private_and_required(cluster):
    token_file = cluster.cm.state_dir / "admin_token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    url = f"http://{cluster.get_admin_addr()}/admin/get_all_applications"
    assert httpx.post(url, json={}).status_code == 401
    ok = httpx.post(url, json={}, headers={"Authorization": f"Bearer {token_file.read_text()}"})
    assert ok.status_code == 200


def test_sigkilled_replica_is_restarted_and_counted(cluster):
    create_endpoint(cluster, "inc", "doubles", lambda xs: [x[0] + 1 for x in xs])
    [before] = [r for r in cluster.cm.list_replicas() if r.model_name == "inc"]
    assert before.restarts == 0 and before.status == "running"
    os.kill(int(before.handle), signal.SIGKILL)
    after = wait_until(lambda: [r for r in cluster.cm.list_replicas() if r.model_name == "inc"
                                and r.restarts >= 1 and r.status == "running"], 15,
                       "the replica to be restarted")[0]
    assert after.replica_id == before.replica_id and after.handle != before.handle
    wait_until(lambda: query(cluster, "inc", [41.0])["output"] == 42.0, 30,
               "the restarted replica to answer")
    [info] = [r for r in cluster.get_all_model_replicas(verbose=True)
              if r["model_name"] == "inc"]
    assert info["restarts"] >= 1 and info["model_replica_id"] == "inc-1-0"


def test_stop_all_leaves_no_process_behind(tmp_path):
    before = our_processes()
    conn = ClipperConnection(LocalProcessContainerManager(**manager_options(tmp_path, "s", 2)))
    conn.start_clipper(num_frontend_replicas=2)
    try:
        create_endpoint(conn, "noop", "doubles", lambda xs: [0 for _ in xs], num_replicas=2)
        running = our_processes() - before
        # 4 frontend processes (mgmt, 2 query, balancer) + 2 replicas, each with a
        # supervisor, and the cluster's watchdog
        assert len(running) == 13
    finally:
        conn.stop_all()
    assert our_processes() - before == set()
    assert not any(psutil.pid_exists(pid) for pid in running)
    assert not (tmp_path / "s" / "cluster.json").exists()


def test_port_taken_is_a_clear_error(tmp_path):
    before = our_processes()
    options = manager_options(tmp_path, "busy")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", options["clipper_management_port"]))
        taken.listen()
        conn = ClipperConnection(LocalProcessContainerManager(**options))
        with pytest.raises(ClusterStartError) as info:
            conn.start_clipper()
    port = options["clipper_management_port"]
    assert f"Port {port} on 127.0.0.1 (for the management frontend) is already in use" \
        in str(info.value)
    assert info.value.port == port
    assert our_processes() - before == set()


def test_a_process_dying_at_start_is_reported_with_its_log(tmp_path):
    before = our_processes()
    options = manager_options(tmp_path, "bad")
    cm = LocalProcessContainerManager(**options, store_url=f"sqlite:///{tmp_path}/ok.db")
    real_python = cm.python
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\ncase \"$1 $2\" in '-m clipper_frontends.query') "
                       f"echo 'query frontend exploded' >&2; exit 7;; esac\n"
                       f"exec {real_python} \"$@\"\n")
    wrapper.chmod(0o755)
    cm.python = str(wrapper)
    with pytest.raises(ClusterStartError) as info:
        ClipperConnection(cm).start_clipper()
    text = str(info.value)
    assert "query-0" in text and "exit code 7" in text and "query frontend exploded" in text
    assert our_processes() - before == set()


def test_start_twice_and_connect_to_nothing(cluster, tmp_path):
    again = LocalProcessContainerManager(cluster_name=cluster.cm.cluster_name,
                                         state_dir=cluster.cm.state_dir)
    with pytest.raises(ClusterStartError, match="already running"):
        again.start_clipper()
    nothing = LocalProcessContainerManager(cluster_name="nothing",
                                           state_dir=tmp_path / "nothing")
    with pytest.raises(ClipperException, match="No local cluster 'nothing' is running"):
        ClipperConnection(nothing).connect()


def test_a_model_that_cannot_load_fails_the_deploy_with_its_traceback(cluster, tmp_path):
    model = tmp_path / "broken"
    model.mkdir()
    (model / "predict.py").write_text("raise RuntimeError('weights are missing')\n")
    with pytest.raises(ContainerError, match="weights are missing"):
        cluster.build_and_deploy_model("broken", 1, "doubles", str(model), "default")
    assert [r for r in cluster.cm.list_replicas() if r.model_name == "broken"] == []
    assert cluster.get_model_info("broken", 1) is None


def test_several_query_frontends_behind_one_address(tmp_path):
    conn = ClipperConnection(LocalProcessContainerManager(**manager_options(tmp_path, "lb", 2)))
    try:
        conn.start_clipper(num_frontend_replicas=2)
        create_endpoint(conn, "double", "doubles", lambda xs: [2 * x[0] for x in xs],
                        num_replicas=1)
        # the replica serves every frontend (each follows the store within a second)
        base = int(conn.get_query_addr().rsplit(":", 1)[1])
        for port in (base + 1, base + 2):
            wait_until(lambda p=port: httpx.post(
                f"http://127.0.0.1:{p}/double/predict", json={"input": [float(p)]},
                timeout=10).json()["output"] == 2.0 * p, 10, f"the frontend on {port}")
        answers = [query(conn, "double", [float(i)]) for i in range(6)]
        assert [a["output"] for a in answers] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0], answers
        names = {p.name for p in conn.cm._table().select()}
        assert names >= {"management", "query-0", "query-1", "balancer"}
    finally:
        conn.stop_all()


@pytest.mark.slow
def test_closure_with_pkgs_to_install_gets_its_own_environment(cluster):
    package = "pyjokes"
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed in the test environment")

    def tell(xs):
        import pyjokes

        return [json.dumps({"joke": pyjokes.get_joke(), "file": pyjokes.__file__}) for _ in xs]

    create_endpoint(cluster, "jokes", "doubles", tell, pkgs_to_install=[package])
    answer = query(cluster, "jokes", [1.0])
    # the image is a reference in the cluster's own registry, not a path
    assert cluster.get_model_info("jokes", "1")["image"] == "local/jokes:1"
    artifact = str((cluster.cm.state_dir / "models" / "jokes" / "1").resolve())
    assert cluster.cm.resolve_artifact("local/jokes:1").path.resolve() == Path(artifact)
    assert answer["output"]["file"].startswith(f"{artifact}/venv/")
    assert isinstance(answer["output"]["joke"], str) and answer["output"]["joke"]
    assert importlib.util.find_spec(package) is None  # still not in our environment


def test_a_crashed_cluster_can_be_started_again(tmp_path):
    options = manager_options(tmp_path, "crashy")
    conn = ClipperConnection(LocalProcessContainerManager(**options))
    conn.start_clipper()
    try:
        conn.register_application("old", "doubles", "x", 1000)
        # the machine "crashes": every supervisor is SIGKILLed, their children follow
        for info in conn.cm._table().select():
            os.kill(info.supervisor_pid, signal.SIGKILL)
        wait_until(lambda: not any(p.alive for p in conn.cm._table().select()), 10,
                   "the supervisors to be gone")
        with pytest.raises(ClipperException, match="is not answering at"):
            ClipperConnection(LocalProcessContainerManager(**options)).connect()
        again = ClipperConnection(LocalProcessContainerManager(**options))
        with pytest.warns(UserWarning, match="ignoring image 'custom/query:1'"):
            again.start_clipper(query_frontend_image="custom/query:1")
        assert again.get_all_apps() == []  # a new cluster starts empty
    finally:
        conn.stop_all()
