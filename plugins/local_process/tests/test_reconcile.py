"""Desired state restored: any process of a local cluster killed with SIGKILL
(a replica, its supervisor, a query frontend, the management frontend, the
watchdog) is back, and serving again, within 5 s."""

from __future__ import annotations

import itertools
import os
import signal
import time

import httpx
import pytest
from clipper_local_process import LocalProcessContainerManager
from clipper_local_process.desired import WATCHDOG_LOCK, lock_holder

from clipper_core.connection import ClipperConnection
from clipper_core.deployers.python import create_endpoint

from .conftest import manager_options, wait_until

#: issue 17's target: killed replica, supervisor, query frontend back within 5 s
BACK_WITHIN_S = 5.0
REPLICA = "replica__inc__1__0"
_inputs = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    conn = ClipperConnection(LocalProcessContainerManager(
        **manager_options(tmp_path_factory.mktemp("reconcile"), "rec")))
    try:
        conn.start_clipper()
        create_endpoint(conn, "inc", "doubles", lambda xs: [x[0] + 1 for x in xs])
        yield conn
    finally:
        conn.stop_all()


def answered_by_model(conn: ClipperConnection) -> bool:
    """One query with a new input (never cached) answered by the model itself."""
    x = float(next(_inputs))
    try:
        resp = httpx.post(f"http://{conn.get_query_addr()}/inc/predict",
                          json={"input": [x]}, timeout=2)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and resp.json().get("output") == x + 1


def admin_answers(conn: ClipperConnection) -> bool:
    token = conn.cm.get_admin_token()
    try:
        resp = httpx.get(f"http://{conn.get_admin_addr()}/admin/ping", timeout=2,
                         headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError:
        return False
    return resp.status_code == 200


def seconds_until(predicate, timeout: float = 20.0) -> float:
    start = time.monotonic()
    wait_until(predicate, timeout, "the cluster to serve again", interval=0.05)
    return time.monotonic() - start


def pid_of(conn: ClipperConnection, name: str, which: str) -> int:
    info = conn.cm._table().get(name)
    assert info is not None and info.status == "running", info
    pid = info.supervisor_pid if which == "supervisor" else info.pid
    assert pid
    return pid


def watchdog_pid(conn: ClipperConnection) -> int | None:
    return lock_holder(conn.cm.state_dir / WATCHDOG_LOCK)


def healthy(conn: ClipperConnection) -> None:
    wait_until(lambda: answered_by_model(conn) and admin_answers(conn), 30, "a healthy cluster")
    wait_until(lambda: conn.get_num_replicas("inc") == 1, 10, "one replica")


@pytest.mark.parametrize(("name", "which"), [
    (REPLICA, "child"), (REPLICA, "supervisor"), ("query-0", "child"),
    ("query-0", "supervisor")])
def test_killed_serving_process_is_back_within_5s(cluster, name, which):
    healthy(cluster)
    before = cluster.cm._table().get(name)
    os.kill(pid_of(cluster, name, which), signal.SIGKILL)
    took = seconds_until(lambda: answered_by_model(cluster))
    print(f"kill -9 {name} {which}: serving again after {took:.2f}s")
    assert took < BACK_WITHIN_S
    after = wait_until(lambda: (i := cluster.cm._table().get(name)) and i.status == "running"
                       and i, 10, f"{name} running")
    assert after.restarts == before.restarts + 1  # carried on across a new supervisor
    assert after.pid != before.pid


@pytest.mark.parametrize("which", ["child", "supervisor"])
def test_killed_management_frontend_is_back_within_5s(cluster, which):
    healthy(cluster)
    os.kill(pid_of(cluster, "management", which), signal.SIGKILL)
    took = seconds_until(lambda: admin_answers(cluster))
    print(f"kill -9 management {which}: answering again after {took:.2f}s")
    assert took < BACK_WITHIN_S
    assert "inc" in cluster.get_all_apps()
    assert answered_by_model(cluster)


def test_killed_watchdog_is_restarted_by_a_supervisor(cluster):
    healthy(cluster)
    first = watchdog_pid(cluster)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    start = time.monotonic()
    # nothing of ours calls the manager meanwhile: a supervisor must do it
    second = wait_until(lambda: (p := lock_holder(cluster.cm.state_dir / WATCHDOG_LOCK))
                        and p != first and p, 10, "a new watchdog")
    print(f"kill -9 watchdog: a supervisor started another after "
          f"{time.monotonic() - start:.2f}s")
    assert time.monotonic() - start < BACK_WITHIN_S
    # and the new one restores what is killed next
    os.kill(pid_of(cluster, REPLICA, "supervisor"), signal.SIGKILL)
    assert seconds_until(lambda: answered_by_model(cluster)) < BACK_WITHIN_S
    assert watchdog_pid(cluster) == second


def test_num_replicas_tells_what_runs_during_the_gap(cluster):
    healthy(cluster)
    dog = watchdog_pid(cluster)
    assert dog is not None
    os.kill(dog, signal.SIGSTOP)  # hold the restore back to look at the gap
    try:
        os.kill(pid_of(cluster, REPLICA, "supervisor"), signal.SIGKILL)
        wait_until(lambda: cluster.get_num_replicas("inc") == 0, 5, "the count to drop")
        [status] = [r for r in cluster.cm.list_replicas() if r.model_name == "inc"]
        assert status.status == "exited"
    finally:
        os.kill(dog, signal.SIGCONT)
    wait_until(lambda: cluster.get_num_replicas("inc") == 1, BACK_WITHIN_S, "the replica back")
    assert seconds_until(lambda: answered_by_model(cluster)) < BACK_WITHIN_S


def test_scaling_down_is_not_undone(cluster):
    healthy(cluster)
    cluster.set_num_replicas("inc", 2)
    assert cluster.get_num_replicas("inc") == 2
    cluster.set_num_replicas("inc", 1)
    time.sleep(4.0)  # longer than the watchdog's grace and several of its ticks
    assert cluster.get_num_replicas("inc") == 1
    names = [p.name for p in cluster.cm._table().select(kind="replica") if p.alive]
    assert names == [REPLICA]


def test_stop_all_after_kills_leaves_nothing(tmp_path):
    conn = ClipperConnection(LocalProcessContainerManager(**manager_options(tmp_path, "gone")))
    conn.start_clipper()
    try:
        os.kill(pid_of(conn, "query-0", "supervisor"), signal.SIGKILL)
        os.kill(wait_until(lambda: watchdog_pid(conn), 10, "the watchdog"), signal.SIGKILL)
    finally:
        conn.stop_all()
    time.sleep(2.0)  # a supervisor's next look at the watchdog must find the cluster gone
    assert watchdog_pid(conn) is None
    assert not conn.cm._table().select()
    assert not list((tmp_path / "gone" / "desired").glob("*.json"))


def test_a_supervisor_of_a_process_no_longer_desired_exits(tmp_path):
    """A supervisor the watchdog started just before the process was stopped
    finds it forgotten once it holds its lock, and never starts it."""
    import subprocess
    import sys

    from clipper_local_process.desired import DesiredProcess, DesiredState

    marker = tmp_path / "started"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    (tmp_path / "procs").mkdir()

    def supervise() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "clipper_local_process.supervise", "--status",
             str(tmp_path / "procs" / "p.json"), "--log", str(tmp_path / "p.log"),
             "--cluster-dir", str(tmp_path), "--", *command], capture_output=True, timeout=30)

    done = supervise()
    assert done.returncode == 0 and b"no longer desired" in done.stderr
    assert not marker.exists()
    DesiredState(tmp_path).record(DesiredProcess(name="p", command=command, env={}, labels={}))
    proc = subprocess.Popen(done.args, start_new_session=True)
    try:
        wait_until(marker.exists, 10, "the desired process to start")
    finally:
        proc.terminate()
        proc.wait(10)
