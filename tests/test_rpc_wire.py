"""Wire compatibility with Clipper RPC v3, spoken by a hand-written container.

The container here builds every frame itself with ``struct``: it shares no
code with our runtime or codec, so it checks the frontend against the
protocol as written in SPEC.md section 4, not against ourselves.
"""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import pytest
import zmq
from serving import Serving


def u32(x: int) -> bytes:
    return struct.pack("<I", x)


def u64(x: int) -> bytes:
    return struct.pack("<Q", x)


def answer(request: list[bytes]) -> list[bytes]:
    """The container's answer to a prediction request: sum x 10 per input."""
    outputs = [repr(sum(struct.unpack(f"<{len(x) // 8}d", x)) * 10).encode()
               for x in request[7:]]
    header = struct.pack(f"<{len(outputs) + 1}Q", len(outputs), *(len(o) for o in outputs))
    return [b"", u32(1), request[3], u64(len(header)), header, *outputs]


class HandWrittenContainer:
    """A Clipper v3 container written straight from the protocol description."""

    def __init__(self, port: int, name: str, version: str, input_type: int) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.meta = (name, version, input_type)
        self.requests: list[list[bytes]] = []

    def recv(self, timeout_ms: int = 5000) -> list[bytes]:
        assert self.sock.poll(timeout_ms), "frontend sent nothing"
        return self.sock.recv_multipart()

    def handshake(self) -> None:
        self.sock.send_multipart([b"", u32(2)])  # heartbeat
        reply = self.recv()
        # ["", rpc version 3, msg type 2 (heartbeat), heartbeat type 1 (send metadata)]
        assert reply == [b"", u32(3), u32(2), u32(1)]
        name, version, input_type = self.meta
        self.sock.send_multipart([b"", u32(0), name.encode(), version.encode(),
                                  str(input_type).encode(), u32(3)])
        self.sock.send_multipart([b"", u32(2)])
        assert self.recv() == [b"", u32(3), u32(2), u32(0)]  # known now: keep-alive

    def serve_one(self) -> None:
        frames = self.recv()
        self.requests.append(frames)
        assert frames[0] == b"" and frames[1] == u32(3) and frames[2] == u32(1)
        msg_id = frames[3]
        assert len(msg_id) == 4
        assert frames[4] == u32(0)  # request type: predict
        header_len = struct.unpack("<Q", frames[5])[0]
        header = frames[6]
        assert header_len == len(header)
        fields = struct.unpack(f"<{header_len // 8}Q", header)
        input_type, n, sizes = fields[0], fields[1], fields[2:]
        inputs = frames[7:]
        assert len(inputs) == n == len(sizes)
        assert [len(x) for x in inputs] == list(sizes)
        assert input_type == 3  # doubles
        self.sock.send_multipart(answer(frames))

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def serving(tmp_path: Path):
    s = Serving(tmp_path, rpc_auth="none")  # original Clipper containers have no keys
    s.deploy("wire", "hand", batch_size=4)
    s.start_frontend()
    yield s
    s.close()


def test_hand_written_container_serves(serving: Serving) -> None:
    c = HandWrittenContainer(serving.rpc_port, "hand", "1", 3)
    try:
        c.handshake()
        serving.wait_connected("hand")
        result: dict[str, object] = {}

        def query() -> None:
            result["r"] = serving.post("wire", {"input_batch": [[1.0, 2.0], [0.5]]})

        t = threading.Thread(target=query)
        t.start()
        c.serve_one()
        t.join(10)
        r = result["r"]
        assert r.status_code == 200, r.text  # type: ignore[attr-defined]
        outs = [p["output"] for p in r.json()["batch_predictions"]]  # type: ignore[attr-defined]
        assert outs == [30.0, 5.0]
        replicas = serving.store.list_replicas()
        assert any(r.model_name == "hand" and r.connected for r in replicas)
    finally:
        c.close()


def test_a_v3_container_takes_a_second_full_batch_while_busy(serving: Serving) -> None:
    # Pipelining is wire-compatible: a container that serves one message at
    # a time finds the second full batch waiting in its socket, and answers
    # both in turn.
    c = HandWrittenContainer(serving.rpc_port, "hand", "1", 3)
    try:
        c.handshake()
        serving.wait_connected("hand")
        result: dict[str, object] = {}
        inputs = [[float(i)] for i in range(8)]  # two full batches of 4

        def query() -> None:
            result["r"] = serving.post("wire", {"input_batch": inputs})

        t = threading.Thread(target=query)
        t.start()
        first = c.recv()
        assert c.sock.poll(5000), "the second batch was not sent while the first was busy"
        c.requests.append(first)
        c.sock.send_multipart(answer(first))
        c.serve_one()
        t.join(10)
        r = result["r"]
        assert r.status_code == 200, r.text  # type: ignore[attr-defined]
        outs = [p["output"] for p in r.json()["batch_predictions"]]  # type: ignore[attr-defined]
        assert outs == [i * 10.0 for i in range(8)]
        assert [len(req) - 7 for req in c.requests] == [4, 4]
    finally:
        c.close()


GARBAGE = [
    [b"garbage"],
    [b"", b"\x01"],
    [b"", u32(99)],
    [b"", u32(0), b"only-a-name"],
    [b"", u32(0), b"hand", b"1", b"not-a-number", u32(3)],
    [b"", u32(0), b"hand", b"1", b"3", u32(2)],           # wrong RPC version
    [b"", u32(1), u32(12345), u64(8), u64(0)],             # response to nothing
    [b"", u32(1), b"\x00"],
    [b"\xff" * 1000],
]


def test_garbage_from_a_container_is_dropped(serving: Serving) -> None:
    ctx = zmq.Context()
    bad = ctx.socket(zmq.DEALER)
    bad.setsockopt(zmq.LINGER, 0)
    bad.connect(f"tcp://127.0.0.1:{serving.rpc_port}")
    good = HandWrittenContainer(serving.rpc_port, "hand", "1", 3)
    try:
        for frames in GARBAGE:
            bad.send_multipart(frames)
        time.sleep(0.3)
        assert serving.http.get("/healthz").status_code == 200
        assert serving.metrics()["rpc"]["malformed_messages"] >= len(GARBAGE) - 1
        # A well-behaved container still registers and serves afterwards.
        good.handshake()
        serving.wait_connected("hand")
        out: dict[str, object] = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", serving.post("wire", {"input": [4.0]})))
        t.start()
        good.serve_one()
        t.join(10)
        assert out["r"].json()["output"] == 40.0  # type: ignore[attr-defined]
    finally:
        bad.close(0)
        ctx.term()
        good.close()


def test_our_runtime_serves_a_frontend_speaking_exactly_v3(tmp_path: Path) -> None:
    """The other direction: our runtime against a hand-written ROUTER."""
    import os
    import subprocess
    import sys

    from serving import write_model

    model = write_model(tmp_path / "m", """
        def predict(inputs):
            return [str(len(x)) for x in inputs]
    """)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    env = dict(os.environ, CLIPPER_MODEL_NAME="rt", CLIPPER_MODEL_VERSION="7",
               CLIPPER_INPUT_TYPE="doubles", CLIPPER_IP="127.0.0.1", CLIPPER_PORT=str(port),
               CLIPPER_MODEL_PATH=str(model))
    proc = subprocess.Popen([sys.executable, "-m", "clipper_core.runtime"], env=env)
    try:
        assert router.poll(10000)
        ident, *frames = router.recv_multipart()
        assert frames == [b"", u32(2)]  # a heartbeat first
        router.send_multipart([ident, b"", u32(3), u32(2), u32(1)])
        while True:  # it may heartbeat again before sending metadata
            assert router.poll(5000)
            ident, *frames = router.recv_multipart()
            if frames[1] == u32(0):
                break
        assert frames == [b"", u32(0), b"rt", b"7", b"3", u32(3)]
        inputs = [struct.pack("<3d", 1, 2, 3), struct.pack("<1d", 9)]
        header = struct.pack("<4Q", 3, 2, 24, 8)
        router.send_multipart([ident, b"", u32(3), u32(1), u32(77), u32(0),
                               u64(len(header)), header, *inputs])
        while True:
            assert router.poll(5000)
            ident, *frames = router.recv_multipart()
            if frames[1] == u32(1):
                break
        assert frames[2] == u32(77)
        assert struct.unpack("<Q", frames[3])[0] == 24
        assert struct.unpack("<3Q", frames[4]) == (2, 1, 1)
        assert frames[5:] == [b"3", b"1"]
    finally:
        proc.terminate()
        proc.wait(10)
        router.close(0)
        ctx.term()
