"""A Docker cluster's trust boundary by default, on the real engine (issue 16).

The module's cluster is started with the manager's defaults: its replicas
authenticate with CURVE keys made at ``start_clipper()`` and the admin API
wants the generated token.  The attackers are raw ZeroMQ DEALERs on the
engine's host, connecting to the published RPC port.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import zmq
from clipper_docker import rpc_keys
from clipper_docker.manager import DockerContainerManager

from clipper_core import curve
from clipper_core.connection import ClipperConnection

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")]

RPC_SECRETS = (curve.SERVER_SECRET_ENV, curve.REPLICA_SEED_ENV, curve.CLIENT_SECRET_ENV)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def u32(x: int) -> bytes:
    return struct.pack("<I", x)


class RawPeer:
    """An RPC v3 peer made by hand: a DEALER, with keys or without."""

    def __init__(self, port: int, server_key: str | None = None,
                 keys: curve.KeyPair | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if server_key is not None and keys is not None:
            self.sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
            self.sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode())
            self.sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode())
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.received: list[list[bytes]] = []

    def claim(self, name: str, version: str) -> None:
        """Heartbeat, then register as a replica of ``name:version`` (doubles)."""
        for frames in ([b"", u32(2)],
                       [b"", u32(0), name.encode(), version.encode(), b"3", u32(3)]):
            try:
                self.sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                pass
        self.drain(300)

    def drain(self, wait_ms: int) -> None:
        while self.sock.poll(wait_ms):
            self.received.append(self.sock.recv_multipart())
            wait_ms = 50

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def container_env(container: Any) -> dict[str, str]:
    container.reload()
    return rpc_keys.container_env(container)


def command_line(container: Any) -> str:
    config = container.attrs["Config"]
    return " ".join([*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])])


def wait_output(conn: ClipperConnection, app: str, x: list[float], expected: Any,
                timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = httpx.post(f"http://{conn.get_query_addr()}/{app}/predict",
                          json={"input": x}, timeout=10).json()
        if not last.get("default") and last.get("output") == expected:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{app} never answered {expected!r}; last response {last!r}")


@pytest.fixture(scope="module")
def served(cluster: ClipperConnection, docker_model_image: str) -> tuple[str, str]:
    """(app, model) of the module's cluster: a model deployed and linked."""
    name = unique("curve")
    cluster.deploy_model(name, "1", "doubles", docker_model_image)
    cluster.register_application(name, "doubles", "none", 5_000_000)
    cluster.link_model_to_app(name, name)
    return name, name


def test_by_default_replicas_hold_only_their_own_key(
        cluster: ClipperConnection, served: tuple[str, str]) -> None:
    cm = cluster.cm
    app, model = served
    assert cm.rpc_auth == "curve"
    keys = cm.rpc_keys
    assert keys is not None
    (query,) = cm._containers("query")
    env = container_env(query)
    assert env[curve.SERVER_SECRET_ENV] == keys.server.secret
    assert env[curve.REPLICA_SEED_ENV] == keys.seed
    assert "--rpc-auth" not in command_line(query)
    (mgmt,) = cm._containers("management")
    assert not set(RPC_SECRETS) & set(container_env(mgmt))
    (replica,) = cm.model_containers(model, "1")
    env = container_env(replica)
    assert env[curve.CLIENT_SECRET_ENV] == keys.replica(model, "1").secret
    assert env[curve.SERVER_KEY_ENV] == keys.server.public
    assert curve.SERVER_SECRET_ENV not in env and curve.REPLICA_SEED_ENV not in env
    for container in (query, mgmt, replica):  # secrets never in argv
        line = command_line(container)
        assert keys.seed not in line and keys.server.secret not in line
        assert keys.replica(model, "1").secret not in line
    out = wait_output(cluster, app, [2.0, 3.0], {"version": "1", "sum": 5.0})
    assert out["default"] is False


def test_a_peer_without_the_cluster_s_keys_gets_no_user_input(
        cluster: ClipperConnection, served: tuple[str, str]) -> None:
    cm = cluster.cm
    app, model = served
    assert cm.rpc_keys is not None
    peers = [RawPeer(cm.clipper_rpc_port),  # no keys at all
             RawPeer(cm.clipper_rpc_port, cm.rpc_keys.server.public,
                     curve.KeyPair.generate())]  # a key the cluster never issued
    try:
        for peer in peers:
            peer.claim(model, "1")
        for i in range(20):
            resp = httpx.post(f"http://{cluster.get_query_addr()}/{app}/predict",
                              json={"input": [float(i), 1.0]}, timeout=10)
            assert resp.status_code == 200, resp.text
            assert resp.json()["output"] == {"version": "1", "sum": i + 1.0}
        for peer in peers:
            peer.drain(500)
        assert [p.received for p in peers] == [[], []], "a peer without keys got a message"
    finally:
        for peer in peers:
            peer.close()


def test_connect_finds_the_keys_and_new_replicas_get_theirs(
        cluster: ClipperConnection, served: tuple[str, str]) -> None:
    app, model = served
    other = DockerContainerManager(cluster_name=cluster.cm.cluster_name,
                                   replica_timeout=45.0)
    other.connect()
    assert other.rpc_auth == "curve"
    assert other.rpc_keys == cluster.cm.rpc_keys
    other.set_num_replicas(model, "1", "doubles",
                           cluster.cm.model_containers(model, "1")[0].labels[
                               "clipper.model.image"], 2)  # returns once both connected
    try:
        envs = [container_env(c) for c in other.model_containers(model, "1")]
        assert len(envs) == 2
        assert {e[curve.CLIENT_SECRET_ENV] for e in envs} == {
            cluster.cm.rpc_keys.replica(model, "1").secret}
        wait_output(cluster, app, [1.0], {"version": "1", "sum": 1.0})
    finally:
        other.set_num_replicas(model, "1", "doubles", "unused", 1)


def test_admin_calls_without_the_token_get_401_by_default(cluster: ClipperConnection) -> None:
    token = cluster.cm.get_admin_token()
    assert token, "a token is made at start_clipper() by default"
    url = f"http://{cluster.get_admin_addr()}/admin"
    assert httpx.post(f"{url}/get_all_applications", json={}, timeout=5).status_code == 401
    assert httpx.post(f"{url}/add_app", json={"name": "x", "input_type": "doubles"},
                      timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.post(f"{url}/get_all_models", json={}, headers=wrong,
                      timeout=5).status_code == 401
    right = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{url}/get_all_models", json={}, headers=right,
                      timeout=5).status_code == 200
    again = DockerContainerManager(cluster_name=cluster.cm.cluster_name)
    again.connect()
    assert again.get_admin_token() == token


def test_rpc_auth_none_is_plain_rpc_for_clipper_containers(
        make_manager: Callable[..., Any], docker_model_image: str) -> None:
    """The opt-out: no keys anywhere, frontends ``--rpc-auth none``, replicas
    without keys are served (as original Clipper containers are)."""
    conn = ClipperConnection(make_manager(unique("plain"), rpc_auth="none",
                                          replica_timeout=45.0))
    conn.start_clipper()
    try:
        cm = conn.cm
        assert cm.rpc_keys is None
        (query,) = cm._containers("query")
        assert "--rpc-auth none" in command_line(query)
        assert not set(RPC_SECRETS) & set(container_env(query))
        conn.deploy_model("plain", "1", "doubles", docker_model_image)
        (replica,) = cm.model_containers("plain", "1")
        assert not {curve.CLIENT_SECRET_ENV, curve.SERVER_KEY_ENV} & set(container_env(replica))
        conn.register_application("plain", "doubles", "none", 5_000_000)
        conn.link_model_to_app("plain", "plain")
        wait_output(conn, "plain", [4.0], {"version": "1", "sum": 4.0})
        again = DockerContainerManager(cluster_name=cm.cluster_name)  # default: curve
        again.connect()
        assert (again.rpc_auth, again.rpc_keys) == ("none", None), "the cluster's mode wins"
    finally:
        conn.stop_all()
