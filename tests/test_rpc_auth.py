"""The RPC port's trust boundary, on real processes (issue 16, item 1).

A real query frontend (CURVE on, keys in ``--rpc-keys``) and real replicas;
the attackers are raw ZeroMQ DEALERs built here: without keys, with keys
the cluster never issued, with the key of another model, with another
replica's identity.  None of them may receive a user's input or place an
answer in the prediction cache, nor disturb a real replica.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import zmq
from conftest import free_port, wait_until
from serving import Serving, write_model

from clipper_core import curve

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")

WHO = """
import os
def predict(inputs):
    return ["real:" + os.environ["CLIPPER_REPLICA_ID"] for _ in inputs]
"""


def u32(x: int) -> bytes:
    return struct.pack("<I", x)


def hello(name: str, version: str = "1", input_type: int = 3) -> list[bytes]:
    return [b"", u32(0), name.encode(), version.encode(), str(input_type).encode(), u32(3)]


class Peer:
    """A hand-made RPC v3 peer: a DEALER with optional CURVE keys and identity."""

    def __init__(self, port: int, *, server_key: str | None = None,
                 keys: curve.KeyPair | None = None, identity: bytes | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if identity is not None:
            self.sock.setsockopt(zmq.ROUTING_ID, identity)
        if server_key is not None and keys is not None:
            self.sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
            self.sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode())
            self.sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode())
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.received: list[list[bytes]] = []

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames, zmq.NOBLOCK)

    def drain(self, wait_ms: int = 200) -> list[list[bytes]]:
        """Everything received within ``wait_ms`` (kept in ``received``)."""
        got = []
        while self.sock.poll(wait_ms):
            got.append(self.sock.recv_multipart())
            wait_ms = 50
        self.received += got
        return got

    def register(self, name: str, version: str = "1") -> None:
        """Heartbeat, then claim ``name:version`` (whatever the frontend answers)."""
        for _ in range(3):
            try:
                self.send([b"", u32(2)])
                self.send(hello(name, version))
            except zmq.Again:
                pass
            self.drain(100)

    def answer_everything(self, text: bytes = b"HACKED") -> None:
        """Answer any prediction request received, and some never sent."""
        header = struct.pack("<2Q", 1, len(text))
        for msg_id in range(8):
            try:
                self.send([b"", u32(1), u32(msg_id), struct.pack("<Q", 16), header, text])
            except zmq.Again:
                return

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Serving]:
    s = Serving(tmp_path, cache_size=1024 * 1024)
    s.deploy("app", "m")
    s.deploy("other-app", "other")
    s.start_frontend()
    s.start_replica(write_model(tmp_path / "who", WHO), "m", "1", replica_id="r0")
    s.wait_connected("m")
    yield s
    s.close()


def _answers(s: Serving, app: str, n: int) -> list[str]:
    out = []
    for i in range(n):
        r = s.post(app, {"input": [float(i), 0.5]})
        assert r.status_code == 200, r.text
        out.append(str(r.json()["output"]))
    return out


def test_peers_without_the_cluster_s_keys_get_no_input(serving: Serving) -> None:
    keys = serving.keys
    assert keys is not None
    attackers = [Peer(serving.rpc_port),  # no keys at all
                 Peer(serving.rpc_port, server_key=keys.server.public,
                      keys=curve.KeyPair.generate()),  # keys the cluster never issued
                 Peer(serving.rpc_port, server_key=curve.KeyPair.generate().public,
                      keys=keys.replica("m", "1"))]  # the right key, a wrong server
    try:
        for a in attackers:
            a.register("m")
            a.answer_everything()
        answers = _answers(serving, "app", 20)
        for a in attackers:
            a.answer_everything()
            a.drain()
        assert set(answers) == {"real:r0"}
        assert all(a.received == [] for a in attackers), "an attacker received a message"
        assert serving.connected("m") == 1
        rpc = serving.metrics()["rpc"]
        assert rpc["auth"] == "curve" and rpc["refused_handshakes"] >= 1
        # Nothing the attackers sent is served from the cache.
        assert set(_answers(serving, "app", 20)) == {"real:r0"}
    finally:
        for a in attackers:
            a.close()


def test_a_key_for_one_model_cannot_register_as_another(serving: Serving) -> None:
    keys = serving.keys
    assert keys is not None
    # A replica of "other" (it holds other's key) claims m and other's neighbour.
    rogue = Peer(serving.rpc_port, server_key=keys.server.public, keys=keys.replica("other", "1"))
    try:
        rogue.register("m")
        rogue.answer_everything()
        assert set(_answers(serving, "app", 20)) == {"real:r0"}
        rogue.drain()
        requests = [f for f in rogue.received if len(f) > 3 and f[2] == u32(1)]
        assert requests == [], "the rogue received a prediction request"
        assert serving.connected("m") == 1
        wait_until(lambda: serving.metrics()["rpc"]["refused_messages"] >= 1, timeout=5,
                   what="the claim refused")
        # With its own model it is accepted: the key is valid, only the claim was not.
        rogue.register("other")
        serving.wait_connected("other")
    finally:
        rogue.close()


def test_another_replica_s_identity_cannot_disturb_it(serving: Serving) -> None:
    keys = serving.keys
    assert keys is not None
    identity = b"replica:r0"  # predictable: replica:<model>-<version>-<n> in real clusters
    impostors = [Peer(serving.rpc_port, server_key=keys.server.public,
                      keys=keys.replica("other", "1"), identity=identity),
                 Peer(serving.rpc_port, server_key=keys.server.public,
                      keys=keys.replica("m", "1"), identity=identity),
                 Peer(serving.rpc_port, identity=identity)]
    try:
        t0 = time.monotonic()
        for imp in impostors:
            imp.register("m")
            imp.register("other")
            imp.answer_everything()
        # The real replica keeps answering at once, all the time.
        while time.monotonic() - t0 < 3.0:
            assert set(_answers(serving, "app", 5)) == {"real:r0"}
        for imp in impostors:
            imp.drain()
            assert not [f for f in imp.received if len(f) > 3 and f[2] == u32(1)]
        replicas = serving.metrics()["rpc"]["replicas"]
        assert [r["replica_id"] for r in replicas if r["model"] == "m:1"] == ["r0"]
    finally:
        for imp in impostors:
            imp.close()


def test_a_replica_started_before_its_model_is_registered_connects_after(
        tmp_path: Path) -> None:
    s = Serving(tmp_path)
    try:
        s.start_frontend()
        s.start_replica(write_model(tmp_path / "who", WHO), "late", "1", replica_id="r0")
        time.sleep(1.5)  # its handshakes are refused: the key serves no known model yet
        assert s.connected("late") == 0
        s.deploy("app", "late")
        s.wait_connected("late", timeout=30)
        assert set(_answers(s, "app", 3)) == {"real:r0"}
    finally:
        s.close()


# -- frames and claims -------------------------------------------------------------


def _zmtp_null_peer(port: int) -> socket.socket:
    """A raw TCP peer past the ZMTP 3.0 NULL handshake, as a DEALER."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0")
                + b"\0" + b"\0" * 31)
    prop = b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    body = b"\x05READY" + prop
    raw.sendall(bytes([0x04, len(body)]) + body)
    return raw


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def test_a_frame_declaring_2_gib_costs_nothing(tmp_path: Path) -> None:
    s = Serving(tmp_path, rpc_auth="none", max_body=64 * 1024)  # frames up to 1 MiB
    try:
        s.start_frontend()
        assert s.frontend is not None
        before = _rss(s.frontend.pid)
        peers = []
        for _ in range(4):
            raw = _zmtp_null_peer(s.rpc_port)
            # a message frame with the long-size flag: 2 GiB announced, 1 MiB sent
            raw.sendall(bytes([0x02]) + struct.pack(">Q", 2 << 30))
            try:
                raw.sendall(b"\0" * (1 << 20))
            except OSError:
                pass  # already dropped
            peers.append(raw)

        def dropped(raw: socket.socket) -> bool:
            try:
                return raw.recv(65536, socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True
        for raw in peers:
            wait_until(lambda raw=raw: dropped(raw) or dropped(raw), timeout=10,
                       what="the peer dropped")
            raw.close()
        grown = _rss(s.frontend.pid) - before
        assert grown < 32 * 1024 * 1024, f"the frontend grew by {grown >> 20} MiB"
        assert s.http.get("/healthz").status_code == 200
    finally:
        s.close()


def test_an_oversized_frame_from_a_replica_with_keys_disconnects_it(serving: Serving) -> None:
    keys = serving.keys
    assert keys is not None
    big = Peer(serving.rpc_port, server_key=keys.server.public, keys=keys.replica("other", "1"))
    try:
        big.register("other")
        serving.wait_connected("other")
        limit = serving.metrics()["rpc"]["max_frame_bytes"]
        big.send([b"", u32(2), b"x" * (limit + 1)])
        wait_until(lambda: serving.connected("other") == 0, timeout=10,
                   what="the sender of an oversized frame dropped")
        assert set(_answers(serving, "app", 3)) == {"real:r0"}
    finally:
        big.close()


def test_invalid_names_are_refused_and_fake_names_leave_nothing(tmp_path: Path) -> None:
    s = Serving(tmp_path, rpc_auth="none")
    try:
        s.start_frontend()
        bad = Peer(s.rpc_port)
        for name in ("../etc", "A" * 200, "x" * 64, "UPPER", ""):
            bad.send(hello(name))
        wait_until(lambda: s.metrics()["rpc"]["malformed_messages"] >= 5, timeout=5,
                   what="5 malformed claims")
        assert s.metrics()["models"] == {}
        bad.close()
        fakes = [Peer(s.rpc_port) for _ in range(20)]
        for i, peer in enumerate(fakes):
            for j in range(10):  # 200 names: each claim replaces the peer's previous one
                peer.send(hello(f"fake-{i}-{j}"))
        wait_until(lambda: s.metrics()["rpc"]["connected_replicas"] == 20, timeout=10,
                   what="20 fake replicas")
        for peer in fakes:
            peer.close()
        wait_until(lambda: s.metrics()["rpc"]["connected_replicas"] == 0, timeout=20,
                   what="the fakes gone")
        m = s.metrics()
        assert m["models"] == {}, sorted(m["models"])[:5]
        assert m["rpc"]["replicas"] == []
        wait_until(lambda: s.store.list_replicas() == [], timeout=10, what="no records")
        log = s.log_text()
        # one warning line per peer per minute, not one per message
        assert log.count("dropped a malformed message") <= 2, log
    finally:
        s.close()


# -- binding ----------------------------------------------------------------------


def _listening(pid: int, port: int) -> str:
    for conn in psutil.Process(pid).net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
            return str(conn.laddr.ip)
    return ""


@pytest.mark.parametrize(("auth", "address"), [("none", "127.0.0.1"), ("curve", "0.0.0.0")])
def test_rpc_port_address_follows_auth(tmp_path: Path, auth: str, address: str) -> None:
    rpc_port, http_port = free_port(), free_port()
    args = [sys.executable, "-m", "clipper_frontends.query", "--store",
            f"sqlite:///{tmp_path / 's.db'}", "--host", "127.0.0.1", "--port", str(http_port),
            "--rpc-port", str(rpc_port), "--rpc-auth", auth]
    if auth == "curve":
        args += ["--rpc-keys", str(tmp_path / "keys")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _listening(proc.pid, rpc_port), timeout=20,
                          what="the RPC port") == address
        if auth == "curve":
            mode = (tmp_path / "keys" / "server_secret").stat().st_mode & 0o777
            assert mode == 0o600
    finally:
        proc.terminate()
        proc.wait(10)


def test_curve_without_keys_is_an_error(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("CLIPPER_RPC")}
    r = subprocess.run([sys.executable, "-m", "clipper_frontends.query", "--store",
                        f"sqlite:///{tmp_path / 's.db'}", "--port", str(free_port())],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--rpc-keys" in r.stderr


def test_answers_are_still_correct_under_concurrency(serving: Serving) -> None:
    errors: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{serving.port}", timeout=10) as c:
            for i in range(30):
                r = c.post("/app/predict", json={"input": [float(i), 1.0]})
                if r.json().get("output") != "real:r0":
                    errors.append(r.text)
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


# -- keys and the launch contract ---------------------------------------------------


def test_replica_keys_are_derived_per_model_version(tmp_path: Path) -> None:
    keys = curve.ClusterKeys.from_dir(tmp_path / "k")
    assert curve.ClusterKeys.from_dir(tmp_path / "k") == keys  # found again, not remade
    assert {(tmp_path / "k" / f).stat().st_mode & 0o777
            for f in ("server_secret", "replica_seed")} == {0o600}
    a1, a2, b1 = keys.replica("a", "1"), keys.replica("a", "2"), keys.replica("b", "1")
    assert len({a1.public, a2.public, b1.public}) == 3 and keys.replica("a", "1") == a1
    assert curve.ClusterKeys.generate().replica("a", "1") != a1  # per cluster
    book = curve.ReplicaKeyBook(keys)
    book.learn([("a", "1"), ("b", "1")])
    assert book.lookup(a1.public) == ("a", "1") and book.lookup(a2.public) is None
    book.learn([("b", "1")])
    assert book.lookup(a1.public) is None
    assert keys.server.secret not in repr(keys) and keys.seed not in repr(keys)
    env = {curve.SERVER_SECRET_ENV + "_FILE": str(tmp_path / "k" / "server_secret"),
           curve.REPLICA_SEED_ENV: keys.seed}
    assert curve.ClusterKeys.from_env(env) == keys
    with pytest.raises(curve.RPCKeyError):
        curve.ClusterKeys.from_env({curve.REPLICA_SEED_ENV: keys.seed})


def test_launch_hands_keys_as_secrets_never_argv() -> None:
    from clipper_core import launch

    keys = curve.ClusterKeys.generate()
    secrets = launch.ClusterSecrets(rpc_keys=keys)
    query = launch.query_process(store_url="memory://", frontend_id="q", secrets=secrets)
    assert "--rpc-auth" not in query.args
    assert keys.server.secret not in " ".join(query.argv()) and keys.seed not in repr(query)
    assert curve.ClusterKeys.from_env(query.environment()) == keys
    assert set(query.file_environment("/run/s")) >= {curve.SERVER_SECRET_ENV + "_FILE",
                                                     curve.REPLICA_SEED_ENV + "_FILE"}
    replica = launch.replica_process(name="m", version="2", input_type="doubles",
                                     frontends=launch.RpcTargets(addresses=["a:1"]),
                                     secrets=secrets)
    got = curve.ReplicaKeys.from_env(replica.environment())
    assert got == curve.ReplicaKeys(keys.server.public, keys.replica("m", "2"))
    assert keys.replica("m", "2").secret not in repr(replica)
    assert curve.REPLICA_SEED_ENV not in replica.environment()  # a replica never holds the seed
    plain = launch.query_process(store_url="memory://", frontend_id="q")
    assert plain.args[-2:] == ("--rpc-auth", "none")
