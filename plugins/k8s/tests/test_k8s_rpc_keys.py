"""CURVE keys and the admin token of a Kubernetes cluster by default (issue 16).

The manifests are validated against the real schemas; the cluster runs on
the fake API server, whose pods are local processes given their environment
from the Secrets (``secretKeyRef``), so what a pod holds is read from its
process.  The attacker is a raw ZeroMQ DEALER on a query pod's RPC port.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import zmq
from clipper_k8s import manifests, names
from clipper_k8s.manager import QUERY_FRONTEND_IMAGE, KubernetesContainerManager

from clipper_core import curve
from clipper_core.connection import ClipperConnection
from clipper_core.testing.container_manager import wait_for

from .conftest import MODEL_IMAGE, FakeKubernetes, manager_options, validate_received

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")

VERSIONS = sorted({"1.30.0", kubernetes_validate.latest_version()})
SPEC = manifests.ClusterSpec(cluster="c1", admin_secret=names.admin_secret("c1"))
RPC_ENVS = (curve.SERVER_SECRET_ENV, curve.REPLICA_SEED_ENV, curve.CLIENT_SECRET_ENV,
            curve.SERVER_KEY_ENV)


def unique(prefix: str) -> str:
    """A cluster name of its own (the fake's Redis keeps its file across tests)."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def ref(secret: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": secret, "key": key}}


# -- manifests -------------------------------------------------------------------


def test_manifests_take_the_keys_from_secrets() -> None:
    keys = curve.ClusterKeys.generate()
    query = manifests.query_deployment(SPEC, QUERY_FRONTEND_IMAGE, 1024, 2)
    (qc,) = query["spec"]["template"]["spec"]["containers"]
    assert "--rpc-auth" not in qc["args"]
    env = env_of(qc)
    assert env[curve.SERVER_SECRET_ENV] == ref(SPEC.admin_secret or "", "rpc_server_secret")
    assert env[curve.REPLICA_SEED_ENV] == ref(SPEC.admin_secret or "", "rpc_replica_seed")
    model = manifests.model_deployment(SPEC, "m", "1", "doubles", MODEL_IMAGE, 1)
    env = env_of(model["spec"]["template"]["spec"]["containers"][0])
    assert env[curve.SERVER_KEY_ENV] == ref(SPEC.admin_secret or "", manifests.RPC_SERVER_KEY)
    assert env[curve.CLIENT_SECRET_ENV] == ref(names.model_secret("c1", "m", "1"),
                                               "rpc_client_m_1")
    assert curve.SERVER_SECRET_ENV not in env and curve.REPLICA_SEED_ENV not in env
    cluster_secret = manifests.admin_secret(SPEC, "tok", "pw", keys)
    assert cluster_secret["stringData"] == {
        "admin_token": "tok", "store_password": "pw", "rpc_server_secret": keys.server.secret,
        "rpc_replica_seed": keys.seed, manifests.RPC_SERVER_KEY: keys.server.public}
    model_secret = manifests.model_secret(SPEC, "m", "1", keys)
    assert model_secret["stringData"] == {"rpc_client_m_1": keys.replica("m", "1").secret}
    assert model_secret["metadata"]["labels"][names.MODEL_NAME] == "m"
    assert manifests.rpc_keys_from_secret(cluster_secret["stringData"]) == keys
    for version in VERSIONS:
        for body in (query, model, cluster_secret, model_secret):
            kubernetes_validate.validate(body, version, strict=True)


def test_without_rpc_keys_the_manifests_are_plain_rpc() -> None:
    spec = manifests.ClusterSpec(cluster="c1", admin_secret=names.admin_secret("c1"),
                                 rpc_keys=False)
    query = manifests.query_deployment(spec, QUERY_FRONTEND_IMAGE, 1024, 1)
    (qc,) = query["spec"]["template"]["spec"]["containers"]
    assert qc["args"][-2:] == ["--rpc-auth", "none"]
    model = manifests.model_deployment(spec, "m", "1", "doubles", MODEL_IMAGE, 1)
    for container in (qc, model["spec"]["template"]["spec"]["containers"][0]):
        assert not set(RPC_ENVS) & set(env_of(container))
    assert manifests.rpc_keys_from_secret(
        manifests.admin_secret(spec, "tok", "pw")["stringData"]) is None


# -- on the fake API server --------------------------------------------------------


def process_env(kube: FakeKubernetes, role: str) -> list[dict[str, str]]:
    """The environment of each running process of the pods of ``role``."""
    out = []
    for runner in list(kube.runners.values()):
        if runner.pod["metadata"]["labels"].get(names.ROLE) != role:
            continue
        for run in runner.containers:
            pid = run.process.pid if run.process is not None else None
            if pid is not None:
                raw = Path(f"/proc/{pid}/environ").read_bytes()
                out.append(dict(item.decode().partition("=")[::2]
                                for item in raw.split(b"\0") if item))
    return out


def query_rpc_ports(kube: FakeKubernetes) -> list[int]:
    return [port for r in list(kube.runners.values())
            if r.pod["metadata"]["labels"].get(names.ROLE) == names.ROLE_QUERY
            for port in [r.local_port("rpc")] if port is not None]


def keyless_peer_receives(port: int, model: str, during: Any) -> list[list[bytes]]:
    """What a DEALER without keys that claims ``model:1`` receives while
    ``during()`` runs."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
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
def test_by_default_curve_and_the_admin_token(kube: FakeKubernetes) -> None:
    cluster = unique("sec")
    options = manager_options(kube, cluster)
    conn = ClipperConnection(KubernetesContainerManager(**options))
    try:
        conn.start_clipper()
        cm = conn.cm
        keys = cm.rpc_keys
        assert cm.rpc_auth == "curve" and keys is not None
        token = cm.get_admin_token()
        assert token, "a token is made at start_clipper() by default"
        admin = f"http://{cm.get_admin_addr()}/admin"
        assert httpx.post(f"{admin}/get_all_applications", json={},
                          timeout=10).status_code == 401
        assert httpx.post(f"{admin}/get_all_models", json={}, timeout=10,
                          headers={"Authorization": "Bearer wrong"}).status_code == 401

        conn.deploy_model("m", "1", "doubles", MODEL_IMAGE, num_replicas=1)
        conn.register_application("app", "doubles", "none", 5_000_000)
        conn.link_model_to_app("app", "m")
        addr = cm.get_query_addr()

        def served() -> None:
            for i in range(10):
                resp = httpx.post(f"http://{addr}/app/predict", json={"input": [float(i)]},
                                  timeout=10).json()
                assert resp["output"] == {"version": "1", "sum": float(i)}, resp

        wait_for(lambda: not httpx.post(f"http://{addr}/app/predict", json={"input": [1.0]},
                                        timeout=10).json()["default"], 30, "an answer")
        (port,) = query_rpc_ports(kube)
        assert keyless_peer_receives(port, "m", served) == []

        (qenv,) = process_env(kube, names.ROLE_QUERY)
        assert (qenv[curve.SERVER_SECRET_ENV], qenv[curve.REPLICA_SEED_ENV]) == (
            keys.server.secret, keys.seed)
        (menv,) = process_env(kube, names.ROLE_MODEL)
        assert menv[curve.CLIENT_SECRET_ENV] == keys.replica("m", "1").secret
        assert menv[curve.SERVER_KEY_ENV] == keys.server.public
        assert curve.REPLICA_SEED_ENV not in menv and curve.SERVER_SECRET_ENV not in menv
        (mgmt_env,) = process_env(kube, names.ROLE_MGMT)
        assert not set(RPC_ENVS) & set(mgmt_env)

        again = KubernetesContainerManager(**options)
        again.connect()
        assert (again.rpc_auth, again.rpc_keys, again.get_admin_token()) == (
            "curve", keys, token)
        secret = names.model_secret(cluster, "m", "1")
        assert kube.store.get("secrets", "default", secret) is not None
        conn.stop_models({"m": ["1"]})
        assert kube.store.get("secrets", "default", secret) is None
    finally:
        conn.stop_all()
    assert validate_received(kube) >= 8


@pytest.mark.redis
def test_rpc_auth_none_runs_plain_rpc(kube: FakeKubernetes) -> None:
    cluster = unique("plain")
    options = manager_options(kube, cluster, rpc_auth="none", admin_token=False)
    conn = ClipperConnection(KubernetesContainerManager(**options))
    try:
        conn.start_clipper()
        assert conn.cm.rpc_keys is None
        conn.deploy_model("m", "1", "doubles", MODEL_IMAGE, num_replicas=1)
        for role in (names.ROLE_QUERY, names.ROLE_MODEL):
            (env,) = process_env(kube, role)
            assert not set(RPC_ENVS) & set(env)
        assert kube.store.get("secrets", "default", names.model_secret(cluster, "m", "1")) \
            is None
        again = KubernetesContainerManager(**manager_options(kube, cluster))
        again.connect()
        assert (again.rpc_auth, again.rpc_keys) == ("none", None), "the cluster's mode wins"
    finally:
        conn.stop_all()
