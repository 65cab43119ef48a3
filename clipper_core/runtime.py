"""The model container runtime: ``python -m clipper_core.runtime``.

Loads a model from ``CLIPPER_MODEL_PATH`` and serves it to one or more query
frontends over Clipper RPC v3.  Configured by environment variables (see
docs/architecture.md).  It reconnects on its own after a frontend restarts,
and a model that raises answers that batch with error outputs instead of
dying.

Session rules (SPEC.md section 4): send a heartbeat first; poll every 5 s and
heartbeat when idle; after 30 s without any message from a frontend, close
that socket and start a new session.  One batch is processed at a time.

Given ``CLIPPER_RPC_SERVER_KEY`` and ``CLIPPER_RPC_CLIENT_SECRET`` (or their
``_FILE``), every session is a CURVE client (:mod:`clipper_core.curve`);
without them, or with ``CLIPPER_RPC_AUTH=none``, plain RPC v3.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket as pysocket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import orjson
import zmq
import zmq.utils.monitor

from . import curve, logs, rpc
from .models import InputType

log = logging.getLogger("clipper.runtime")

PredictFn = Callable[[list[Any]], list[Any]]
#: the port of the replica's Prometheus metrics (unset or 0: none)
METRICS_PORT_ENV = "CLIPPER_METRICS_PORT"

#: seconds before a new session after the frontend refused a handshake
HANDSHAKE_RETRY_S = 2.0
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def load_model(path: str | os.PathLike[str]) -> PredictFn:
    """The predict function of the model directory at ``path``.

    A framework model (a ``clipper_model.json`` manifest, written by the
    deployers of ``clipper_core.deployers``) is loaded once here and bound to
    its ``func.pkl``.  Otherwise ``func.pkl`` (a cloudpickled function) wins
    over ``predict.py`` (a module defining ``predict(inputs)``).
    """
    root = Path(path)
    if (root / "clipper_model.json").exists():
        from .deployers.deployer_utils import load_framework_model

        return load_framework_model(root)
    pkl = root / "func.pkl"
    if pkl.exists():
        import cloudpickle

        with pkl.open("rb") as f:
            func = cloudpickle.load(f)
        if not callable(func):
            raise TypeError(f"{pkl} does not hold a callable")
        return cast(PredictFn, func)
    module_file = root / "predict.py"
    if module_file.exists():
        sys.path.insert(0, str(root))
        spec = importlib.util.spec_from_file_location("clipper_model_predict", module_file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        func = getattr(module, "predict", None)
        if not callable(func):
            raise TypeError(f"{module_file} defines no predict(inputs) function")
        return cast(PredictFn, func)
    raise FileNotFoundError(f"no func.pkl or predict.py in model directory {root}")


def _encode_output(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def run_batch(predict: PredictFn, input_type: int, raw_inputs: list[bytes]) -> list[bytes]:
    """Run one batch; any failure becomes one error output per input."""
    n = len(raw_inputs)
    try:
        outputs = predict(rpc.decode_inputs(input_type, raw_inputs))
        outputs = list(outputs)
    except Exception as exc:  # the model's own error: report it, keep serving
        log.exception("model raised on a batch of %d", n)
        return [rpc.encode_error(f"{type(exc).__name__}: {exc}")] * n
    if len(outputs) != n:
        msg = f"model returned {len(outputs)} outputs for {n} inputs"
        log.error(msg)
        return [rpc.encode_error(msg)] * n
    encoded = []
    for value in outputs:
        try:
            encoded.append(_encode_output(value))
        except (TypeError, orjson.JSONEncodeError) as exc:
            encoded.append(rpc.encode_error(f"output is not JSON-serialisable: {exc}"))
    return encoded


class _Session:
    """One DEALER connection to one frontend."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], address: str, identity: bytes | None,
                 keys: curve.ReplicaKeys | None = None) -> None:
        self.address = address
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if identity:
            self.sock.setsockopt(zmq.ROUTING_ID, identity)
        if keys is not None:
            keys.apply(self.sock)
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_CONNECTED | _HANDSHAKE_FAILED)
        self.sock.connect(f"tcp://{address}")
        self.last_heard = time.monotonic()
        self.last_sent = 0.0

    def send(self, frames: Any) -> None:
        self.sock.send_multipart(frames, copy=True)
        self.last_sent = time.monotonic()

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(0)


class ModelRuntime:
    """Serves one model version to every frontend in ``frontends``."""

    def __init__(self, *, model_name: str, model_version: str, input_type: InputType,
                 predict: PredictFn, frontends: list[str] | Callable[[], list[str]],
                 replica_id: str | None = None, heartbeat_interval: float = 5.0,
                 session_timeout: float = 30.0, resolve_interval: float = 10.0,
                 keys: curve.ReplicaKeys | None = None) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.input_type = input_type
        self.predict = predict
        self._frontends = frontends
        self._identity = f"replica:{replica_id}".encode() if replica_id else None
        self.heartbeat_interval = heartbeat_interval
        self.session_timeout = session_timeout
        self.resolve_interval = resolve_interval
        #: CURVE keys (None: plain RPC v3, as Clipper's frontends speak)
        self.keys = keys
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._sessions: dict[str, _Session] = {}
        self._stopping = False
        self.replica_id = replica_id or ""
        self.batches = 0
        #: seconds spent in ``predict`` (the Prometheus metrics of the replica)
        self.predict_s = 0.0

    def _addresses(self) -> list[str]:
        return self._frontends() if callable(self._frontends) else list(self._frontends)

    def _sync_sessions(self) -> None:
        wanted = set(self._addresses())
        for addr in list(self._sessions):
            if addr not in wanted:
                log.info("frontend %s is gone from discovery; closing its session", addr)
                self._sessions.pop(addr).close()
        for addr in sorted(wanted - set(self._sessions)):
            self._open(addr)

    def _open(self, addr: str) -> None:
        log.info("connecting to frontend %s", addr)
        session = _Session(self._ctx, addr, self._identity, self.keys)
        self._sessions[addr] = session
        session.send(rpc.HEARTBEAT_FRAMES)

    def stop(self) -> None:
        self._stopping = True

    def serve_forever(self) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT in ``main``)."""
        self._sync_sessions()
        next_resolve = time.monotonic() + self.resolve_interval
        metadata = rpc.new_container(self.model_name, self.model_version, int(self.input_type))
        poll_ms = int(min(self.heartbeat_interval, 1.0) * 1000)
        poller = zmq.Poller()
        by_sock: dict[zmq.Socket[bytes], _Session] = {}
        polled: list[_Session] = []
        try:
            while not self._stopping:
                if polled != list(self._sessions.values()):
                    # Sessions change rarely (discovery, a session timeout):
                    # build the poller then, not once per batch.
                    poller = zmq.Poller()
                    by_sock = {}
                    polled = list(self._sessions.values())
                    for s in polled:
                        poller.register(s.sock, zmq.POLLIN)
                        poller.register(s.monitor, zmq.POLLIN)
                        by_sock[s.sock] = s
                        by_sock[s.monitor] = s
                events = poller.poll(poll_ms)
                now = time.monotonic()
                for sock, _ in events:
                    session = by_sock[sock]
                    if sock is session.monitor:
                        # (Re)connected: say hello now rather than at the next poll, so
                        # a restarted frontend learns of this replica at once.
                        event = zmq.utils.monitor.parse_monitor_message(
                            session.monitor.recv_multipart())["event"]
                        if event & _HANDSHAKE_FAILED:
                            self._refused(session, now)
                            continue
                        if now - session.last_sent > 0.2:
                            session.send(rpc.HEARTBEAT_FRAMES)
                        continue
                    self._drain(session, metadata)
                for addr, session in list(self._sessions.items()):
                    if now - session.last_heard > self.session_timeout:
                        log.warning("no message from %s for %.0f s; starting a new session",
                                    addr, now - session.last_heard)
                        session.close()
                        self._open(addr)
                    elif now - max(session.last_sent, session.last_heard) >= self.heartbeat_interval:
                        session.send(rpc.HEARTBEAT_FRAMES)
                if callable(self._frontends) and now >= next_resolve:
                    next_resolve = now + self.resolve_interval
                    self._sync_sessions()
        finally:
            for s in self._sessions.values():
                s.close()
            self._sessions.clear()

    def _refused(self, session: _Session, now: float) -> None:
        """The frontend refused the handshake (ZeroMQ does not retry it): start
        a new session soon, e.g. once the model is registered and our key known."""
        log.warning("frontend %s refused the RPC handshake (%s); retrying in %.0f s",
                    session.address, "our key is not known there yet" if self.keys
                    else "it may require CURVE keys", HANDSHAKE_RETRY_S)
        session.last_heard = min(session.last_heard,
                                 now - self.session_timeout + HANDSHAKE_RETRY_S)

    def _drain(self, session: _Session, metadata: list[bytes]) -> None:
        sock = session.sock
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            session.last_heard = time.monotonic()
            try:
                self._handle(session, frames, metadata)
            except rpc.ProtocolError as exc:
                log.error("dropping malformed message from %s: %s", session.address, exc)

    def _handle(self, session: _Session, frames: list[bytes], metadata: list[bytes]) -> None:
        if len(frames) < 3 or frames[0] != b"":
            raise rpc.ProtocolError(f"message of {len(frames)} frames without delimiter")
        version = rpc.unpack_u32(frames[1])
        if version != rpc.RPC_VERSION:
            raise rpc.ProtocolError(f"frontend speaks RPC version {version}, we speak "
                                    f"{rpc.RPC_VERSION}")
        msg_type = rpc.unpack_u32(frames[2])
        if msg_type == rpc.MSG_HEARTBEAT:
            if len(frames) >= 4 and rpc.unpack_u32(frames[3]) == rpc.HEARTBEAT_REQUEST_METADATA:
                log.info("frontend %s asked for metadata; registering", session.address)
                session.send(metadata)
        elif msg_type == rpc.MSG_CONTAINER_CONTENT:
            msg_id, input_type, inputs = rpc.parse_predict_request(frames[3:])
            t0 = time.perf_counter()
            outputs = run_batch(self.predict, input_type, inputs)
            self.predict_s += time.perf_counter() - t0
            self.batches += 1
            session.send(rpc.predict_response(msg_id, outputs))
        else:
            raise rpc.ProtocolError(f"unknown message type {msg_type}")


def serve_metrics(runtime: ModelRuntime, port: int, host: str = "0.0.0.0") -> int:
    """Serve the replica's Prometheus metrics (``/metrics``) from a thread on
    ``port`` (0: any free one); return the port.  Read at scrape time:
    ``clipper_replica_batches_total`` and
    ``clipper_replica_predict_seconds_total`` (time in the model's predict),
    labelled ``model``, ``version`` and ``replica``."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily
    from prometheus_client.registry import Collector

    labels = ["model", "version", "replica"]
    values = [runtime.model_name, runtime.model_version, runtime.replica_id]

    class _Replica(Collector):
        def collect(self) -> Any:
            batches = CounterMetricFamily("clipper_replica_batches", "Batches predicted",
                                          labels=labels)
            batches.add_metric(values, runtime.batches)
            seconds = CounterMetricFamily("clipper_replica_predict_seconds",
                                          "Seconds spent in the model's predict", labels=labels)
            seconds.add_metric(values, runtime.predict_s)
            return [batches, seconds]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Replica())
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound: int = server.server_address[1]
    log.info("Prometheus metrics on port %d", bound)
    return bound


def frontends_from_env(env: dict[str, str]) -> list[str] | Callable[[], list[str]]:
    """``CLIPPER_FRONTENDS`` if set; else every address ``CLIPPER_IP`` resolves to."""
    explicit = env.get("CLIPPER_FRONTENDS", "").strip()
    if explicit:
        return [a.strip() for a in explicit.split(",") if a.strip()]
    host = env.get("CLIPPER_IP", "127.0.0.1")
    port = int(env.get("CLIPPER_PORT", "7000"))

    def resolve() -> list[str]:
        try:
            infos = pysocket.getaddrinfo(host, port, pysocket.AF_INET, pysocket.SOCK_STREAM)
        except OSError as exc:
            log.warning("cannot resolve %s: %s", host, exc)
            return []
        return sorted({f"{info[4][0]}:{port}" for info in infos})

    return resolve


def main(argv: list[str] | None = None) -> int:
    logs.configure()  # CLIPPER_LOG_LEVEL, CLIPPER_LOG_FORMAT (plain or json)
    env = dict(os.environ)
    try:
        name = env["CLIPPER_MODEL_NAME"]
        version = env["CLIPPER_MODEL_VERSION"]
    except KeyError as exc:
        log.error("%s must be set", exc.args[0])
        return 2
    input_type = InputType.parse(env.get("CLIPPER_INPUT_TYPE", "doubles"))
    model_path = env.get("CLIPPER_MODEL_PATH", "/model")
    try:
        keys = (None if curve.rpc_auth_mode(environ=env) == curve.RPC_AUTH_NONE
                else curve.ReplicaKeys.from_env(env))
    except (curve.RPCKeyError, ValueError) as exc:
        log.error("RPC keys: %s", exc)
        return 2
    try:
        predict = load_model(model_path)
    except Exception:
        log.exception("cannot load the model from %s", model_path)
        return 1
    runtime = ModelRuntime(model_name=name, model_version=version, input_type=input_type,
                           predict=predict, frontends=frontends_from_env(env),
                           replica_id=env.get("CLIPPER_REPLICA_ID") or None,
                           heartbeat_interval=float(env.get("CLIPPER_HEARTBEAT_S", "5")),
                           session_timeout=float(env.get("CLIPPER_SESSION_TIMEOUT_S", "30")),
                           keys=keys)
    metrics_port = env.get(METRICS_PORT_ENV, "").strip()
    if metrics_port and metrics_port != "0":
        serve_metrics(runtime, int(metrics_port))
    signal.signal(signal.SIGTERM, lambda *_: runtime.stop())
    signal.signal(signal.SIGINT, lambda *_: runtime.stop())
    log.info("serving model %s:%s (%s) from %s, RPC %s", name, version, input_type.label,
             model_path, "with CURVE" if keys else "without authentication")
    runtime.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
