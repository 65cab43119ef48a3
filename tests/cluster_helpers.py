"""A Clipper cluster of real processes on a shared state store, for the Redis tests.

:class:`Cluster` runs one management frontend, several query frontends and
model replicas (``python -m clipper_core.runtime``) that each serve every
query frontend (``CLIPPER_FRONTENDS`` lists all their RPC addresses).  All
are started as separate processes on free ports and talk over loopback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import httpx
from conftest import free_port, wait_until


class Frontend:
    """One query frontend process: its HTTP and RPC ports and an HTTP client."""

    def __init__(self, frontend_id: str) -> None:
        self.id = frontend_id
        self.port = free_port()
        self.rpc_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    @property
    def rpc_address(self) -> str:
        return f"127.0.0.1:{self.rpc_port}"

    def predict(self, app: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/{app}/predict", json=body)

    def metrics(self) -> dict[str, Any]:
        return self.http.get("/metrics").json()

    def readyz(self) -> httpx.Response:
        return self.http.get("/readyz")

    def connected(self, model: str, version: str = "1") -> int:
        m = self.metrics()["models"].get(f"{model}:{version}")
        return int(m["connected_replicas"]) if m else 0


class Cluster:
    """A management frontend and ``n_frontends`` query frontends on ``store_url``."""

    def __init__(self, tmp: Path, store_url: str, *, n_frontends: int = 2,
                 name: str = "c") -> None:
        self.tmp = tmp
        self.store_url = store_url
        self.name = name
        self.admin_port = free_port()
        self.admin_http = httpx.Client(base_url=f"http://127.0.0.1:{self.admin_port}",
                                       timeout=10)
        self.frontends = [Frontend(f"{name}-fe{i}") for i in range(n_frontends)]
        self.management: subprocess.Popen[bytes] | None = None
        self.replicas: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    # -- processes ---------------------------------------------------------
    def _spawn(self, label: str, args: list[str], env: dict[str, str] | None = None
               ) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{self.name}-{label}.log", "wb")
        self._logs.append(log)
        return subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env)

    def start(self, timeout: float = 30.0) -> None:
        """Start the management and query frontends (all at once) and wait
        until the management answers ``/admin/ping`` and every query frontend
        ``/readyz``."""
        self.spawn()
        wait_until(self._management_ready, timeout=timeout, interval=0.1,
                   what=f"{self.name} management /admin/ping")
        for fe in self.frontends:
            wait_until(lambda fe=fe: self._frontend_ready(fe), timeout=timeout, interval=0.1,
                       what=f"query frontend {fe.id} /readyz")

    def spawn(self) -> None:
        """Start the management and query frontend processes; do not wait."""
        self.management = self._spawn("management", [
            "-m", "clipper_frontends.management", "--store", self.store_url,
            "--host", "127.0.0.1", "--port", str(self.admin_port), "--log-level", "warning"])
        for fe in self.frontends:
            self._spawn_frontend(fe)

    def _spawn_frontend(self, fe: Frontend) -> None:
        fe.proc = self._spawn(f"{fe.id}-{len(self._logs)}", [
            "-m", "clipper_frontends.query", "--store", self.store_url,
            "--host", "127.0.0.1", "--port", str(fe.port), "--rpc-host", "127.0.0.1",
            "--rpc-port", str(fe.rpc_port), "--frontend-id", fe.id,
            "--replica-silence-s", "5",
            # these tests are about the store; replicas authenticate in test_rpc_auth
            "--rpc-auth", "none"])

    def stop_frontend(self, fe: Frontend) -> None:
        """Stop a query frontend gracefully (SIGTERM) and wait for it to exit."""
        assert fe.proc is not None
        fe.proc.send_signal(signal.SIGTERM)
        fe.proc.wait(15)

    def start_frontend(self, fe: Frontend, timeout: float = 30.0) -> None:
        """(Re)start a query frontend on its ports and id; wait for ``/readyz``."""
        self._spawn_frontend(fe)
        wait_until(lambda: self._frontend_ready(fe), timeout=timeout, interval=0.1,
                   what=f"query frontend {fe.id} /readyz")

    def wait_up(self, timeout: float = 30.0) -> None:
        """Until every process of the cluster answers HTTP (any status)."""
        clients = [self.admin_http, *(fe.http for fe in self.frontends)]
        procs = [self.management, *(fe.proc for fe in self.frontends)]
        for client, proc in zip(clients, procs, strict=True):
            def answers(client: httpx.Client = client,
                        proc: subprocess.Popen[bytes] | None = proc) -> bool:
                self._alive(proc, f"process behind {client.base_url}")
                try:
                    client.get("/healthz")
                except httpx.TransportError:
                    return False
                return True
            wait_until(answers, timeout=timeout, interval=0.1, what=f"{client.base_url} up")

    def _alive(self, proc: subprocess.Popen[bytes] | None, what: str) -> None:
        if proc is None or proc.poll() is not None:
            raise AssertionError(f"{what} exited:\n{self.log_text()}")

    def _management_ready(self) -> bool:
        self._alive(self.management, "management frontend")
        try:
            return self.admin_http.get("/admin/ping").status_code == 200
        except httpx.TransportError:
            return False

    def _frontend_ready(self, fe: Frontend) -> bool:
        self._alive(fe.proc, f"query frontend {fe.id}")
        try:
            return fe.readyz().status_code == 200
        except httpx.TransportError:
            return False

    def start_replica(self, model_dir: Path, name: str, version: str, replica_id: str,
                      input_type: str = "doubles") -> subprocess.Popen[bytes]:
        """A model replica connected to every query frontend of this cluster."""
        env = dict(os.environ, CLIPPER_MODEL_NAME=name, CLIPPER_MODEL_VERSION=version,
                   CLIPPER_INPUT_TYPE=input_type, CLIPPER_MODEL_PATH=str(model_dir),
                   CLIPPER_REPLICA_ID=replica_id,
                   CLIPPER_FRONTENDS=",".join(fe.rpc_address for fe in self.frontends))
        proc = self._spawn(f"replica-{replica_id}", ["-m", "clipper_core.runtime"], env)
        self.replicas.append(proc)
        return proc

    def wait_connected(self, model: str, version: str = "1", n: int = 1,
                       timeout: float = 20.0) -> None:
        """Until every query frontend has ``n`` connected replicas of the model."""
        for fe in self.frontends:
            wait_until(lambda fe=fe: fe.connected(model, version) >= n, timeout=timeout,
                       interval=0.1, what=f"{n} replica(s) of {model}:{version} on {fe.id}")

    def close(self) -> None:
        procs = [*self.replicas, *(fe.proc for fe in self.frontends), self.management]
        for p in procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            if p is None:
                continue
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for fe in self.frontends:
            fe.http.close()
        self.admin_http.close()
        for log in self._logs:
            log.close()

    def log_text(self) -> str:
        return "\n".join(f"== {p.name}\n" + p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.tmp.glob(f"{self.name}-*.log")))

    # -- the management REST API -------------------------------------------
    def admin(self, endpoint: str, **body: Any) -> httpx.Response:
        return self.admin_http.post(f"/admin/{endpoint}", json=body)

    def admin_ok(self, endpoint: str, **body: Any) -> Any:
        """``POST /admin/<endpoint>``; fails the test unless it answers 200."""
        r = self.admin(endpoint, **body)
        assert r.status_code == 200, (endpoint, r.status_code, r.text)
        return r.json()

    def deploy(self, app: str, model: str, version: str = "1", *,
               default_output: str = "default", slo_micros: int = 2_000_000) -> None:
        """Register an app and a model version through REST and link them."""
        self.admin_ok("add_app", name=app, input_type="doubles", default_output=default_output,
                      latency_slo_micros=slo_micros)
        self.admin_ok("add_model", model_name=model, model_version=version,
                      input_type="doubles", image=f"{model}:{version}")
        self.admin_ok("add_model_links", app_name=app, model_names=[model])

    def state(self) -> dict[str, Any]:
        """Apps, models (with current flags) and links as the management API shows them."""
        apps = self.admin_ok("get_all_applications", verbose=True)
        return {"apps": apps,
                "models": self.admin_ok("get_all_models", verbose=True),
                "links": {a["name"]: self.admin_ok("get_linked_models", app_name=a["name"])
                          for a in apps}}


class LoadGenerator:
    """Sends predictions round-robin over several query frontends from a
    background thread (asyncio, keep-alive connections) until stopped, and
    counts what came back.

    Every response is recorded as ``(status, default_flag)``; a connection
    error is recorded as status 0.
    """

    def __init__(self, ports: list[int], app: str, *, concurrency: int = 4,
                 pause_s: float = 0.01) -> None:
        self.ports = ports
        self.app = app
        self.concurrency = concurrency
        self.pause_s = pause_s
        self.results: list[tuple[int, bool | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True,
                                        name="load")

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "load generator did not stop"

    @property
    def count(self) -> int:
        return len(self.results)

    def statuses(self) -> Counter[int]:
        return Counter(status for status, _ in self.results)

    async def _main(self) -> None:
        await asyncio.gather(*(self._worker(i) for i in range(self.concurrency)))

    async def _worker(self, index: int) -> None:
        limits = httpx.Limits(max_connections=len(self.ports))
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            n = 0
            while not self._stop.is_set():
                port = self.ports[(index + n) % len(self.ports)]
                # distinct inputs, so the prediction cache does not answer for the model
                body = {"input": [float(index), float(n), time.monotonic()]}
                n += 1
                try:
                    r = await client.post(f"http://127.0.0.1:{port}/{self.app}/predict",
                                          json=body)
                except httpx.HTTPError as exc:
                    self.results.append((0, None))
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                default = r.json().get("default") if r.status_code == 200 else None
                self.results.append((r.status_code, default))
                await asyncio.sleep(self.pause_s)
