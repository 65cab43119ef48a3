"""CURVE keys and the admin token of a Nomad cluster by default (issue 16).

The job documents are checked as built; the cluster runs on the fake Nomad
agent, whose tasks are local processes, so what a task holds is read from its
process.  The attacker is a raw ZeroMQ DEALER on a query frontend's RPC port.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
import zmq
from clipper_nomad import jobs
from clipper_nomad.jobs import JobSettings
from clipper_nomad.manager import NomadContainerManager
from nomad_helpers import FakeNomad, fast_options

from clipper_core import curve
from clipper_core.connection import ClipperConnection
from clipper_core.models import InputType
from clipper_core.testing.container_manager import wait_for

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")

RPC_ENVS = (curve.SERVER_SECRET_ENV, curve.REPLICA_SEED_ENV, curve.CLIENT_SECRET_ENV,
            curve.SERVER_KEY_ENV)


def task(job: dict[str, Any]) -> dict[str, Any]:
    return job["TaskGroups"][0]["Tasks"][0]


def test_jobs_carry_the_keys_in_the_task_environment_only() -> None:
    keys = curve.ClusterKeys.generate()
    s = JobSettings(cluster_name="c1", admin_token="tok", rpc_keys=keys)
    query = task(jobs.query_job(s, "q:1", "redis://r:6379/0", 1024, 2))
    assert (query["Env"][curve.SERVER_SECRET_ENV], query["Env"][curve.REPLICA_SEED_ENV]) == (
        keys.server.secret, keys.seed)
    assert "--rpc-auth" not in query["Config"]["args"]
    model = task(jobs.model_job(s, "m", "1", InputType.DOUBLES, "m:1", 1))
    assert model["Env"][curve.CLIENT_SECRET_ENV] == keys.replica("m", "1").secret
    assert model["Env"][curve.SERVER_KEY_ENV] == keys.server.public
    assert curve.SERVER_SECRET_ENV not in model["Env"]
    assert curve.REPLICA_SEED_ENV not in model["Env"]
    mgmt = task(jobs.mgmt_job(s, "m:1", "redis://r:6379/0"))
    assert not set(RPC_ENVS) & set(mgmt["Env"])
    for t in (query, model, mgmt):
        text = repr(t["Config"])
        assert keys.seed not in text and keys.server.secret not in text
        assert keys.replica("m", "1").secret not in text
    plain = JobSettings(cluster_name="c1")
    assert task(jobs.query_job(plain, "q:1", "r", 1024, 1))["Config"]["args"][-2:] == [
        "--rpc-auth", "none"]
    assert not set(RPC_ENVS) & set(
        task(jobs.model_job(plain, "m", "1", InputType.DOUBLES, "m:1", 1))["Env"])


def process_envs(fake: FakeNomad, job_id: str, task_name: str) -> list[dict[str, str]]:
    """The environment of each running process of ``task_name`` in ``job_id``."""
    out = []
    for alloc in fake.job_allocations(job_id):
        proc = alloc.tasks[task_name].proc
        if alloc.desired_status == "run" and proc is not None and proc.poll() is None:
            raw = Path(f"/proc/{proc.pid}/environ").read_bytes()
            out.append(dict(item.decode().partition("=")[::2]
                            for item in raw.split(b"\0") if item))
    return out


def keyless_peer_receives(addr: str, model: str, during: Any) -> list[list[bytes]]:
    """What a DEALER without keys claiming ``model:1`` receives while ``during()`` runs."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{addr}")
    got: list[list[bytes]] = []
    try:
        for frames in ([b"", struct.pack("<I", 2)],
                       [b"", struct.pack("<I", 0), model.encode(), b"1", b"3",
                        struct.pack("<I", 3)]):
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                pass
        during()
        while sock.poll(500):
            got.append(sock.recv_multipart())
    finally:
        sock.close(0)
        ctx.term()
    return got


@pytest.mark.redis
def test_by_default_curve_and_the_admin_token(fake_nomad: FakeNomad, tmp_path: Path,
                                              sum_model_dir: Path) -> None:
    options = fast_options(fake_nomad, tmp_path, "sec")
    conn = ClipperConnection(NomadContainerManager(**options))
    cm = conn.cm
    try:
        conn.start_clipper(None, None, 4096)
        keys = cm.settings.rpc_keys
        assert cm.rpc_auth == "curve" and keys is not None
        token = cm.get_admin_token()
        assert token, "a token is made at start_clipper() by default"
        admin = f"http://{cm.get_admin_addr()}/admin"
        assert httpx.post(f"{admin}/get_all_applications", json={},
                          timeout=10).status_code == 401
        assert httpx.post(f"{admin}/get_all_models", json={}, timeout=10,
                          headers={"Authorization": "Bearer wrong"}).status_code == 401

        image = conn.build_model("sum", "1", str(sum_model_dir), "ignored")
        conn.deploy_model("sum", "1", "doubles", image)
        conn.register_application("sums", "doubles", "none", 5_000_000)
        conn.link_model_to_app("sums", "sum")
        addr = cm.get_query_addr()

        def answered() -> bool:
            return not httpx.post(f"http://{addr}/sums/predict", json={"input": [1.0]},
                                  timeout=10).json()["default"]

        def served() -> None:
            for i in range(10):
                out = httpx.post(f"http://{addr}/sums/predict", json={"input": [float(i)]},
                                 timeout=10).json()
                assert out["output"] == {"version": "1", "sum": float(i)}, out

        wait_for(answered, 30, "an answer from the model")
        (rpc,) = cm._service_addrs(cm.settings.service_name("query-rpc"))
        assert keyless_peer_receives(rpc, "sum", served) == []

        s = cm.settings
        (qenv,) = process_envs(fake_nomad, s.job_id(jobs.ROLE_QUERY), "query")
        assert (qenv[curve.SERVER_SECRET_ENV], qenv[curve.REPLICA_SEED_ENV]) == (
            keys.server.secret, keys.seed)
        (menv,) = process_envs(fake_nomad, s.model_job_id("sum", "1"), jobs.MODEL_TASK)
        assert menv[curve.CLIENT_SECRET_ENV] == keys.replica("sum", "1").secret
        assert curve.REPLICA_SEED_ENV not in menv and curve.SERVER_SECRET_ENV not in menv
        (mgmt_env,) = process_envs(fake_nomad, s.job_id(jobs.ROLE_MGMT), "management")
        assert not set(RPC_ENVS) & set(mgmt_env)

        again = NomadContainerManager(**options)
        again.connect()
        assert (again.rpc_auth, again.settings.rpc_keys, again.get_admin_token()) == (
            "curve", keys, token)
    finally:
        conn.stop_all()


@pytest.mark.redis
def test_rpc_auth_none_runs_plain_rpc(fake_nomad: FakeNomad, tmp_path: Path,
                                      sum_model_dir: Path) -> None:
    options = fast_options(fake_nomad, tmp_path, "plain", rpc_auth="none", admin_token=False)
    conn = ClipperConnection(NomadContainerManager(**options))
    cm = conn.cm
    try:
        conn.start_clipper(None, None, 4096)
        assert cm.settings.rpc_keys is None
        conn.deploy_model("sum", "1", "doubles",
                          conn.build_model("sum", "1", str(sum_model_dir), "ignored"))
        s = cm.settings
        for job_id, task_name in ((s.job_id(jobs.ROLE_QUERY), "query"),
                                  (s.model_job_id("sum", "1"), jobs.MODEL_TASK)):
            (env,) = process_envs(fake_nomad, job_id, task_name)
            assert not set(RPC_ENVS) & set(env)
        again = NomadContainerManager(**fast_options(fake_nomad, tmp_path, "plain"))
        again.connect()
        assert (again.rpc_auth, again.settings.rpc_keys) == ("none", None)
    finally:
        conn.stop_all()
