"""Real query frontend and model runtime processes for the serving tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import free_port, wait_until

from clipper_core import curve
from clipper_core.models import Application, ModelVersion
from clipper_core.plugins import open_store


def write_model(directory: Path, source: str) -> Path:
    """A model directory whose predict.py is ``source``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "predict.py").write_text(textwrap.dedent(source))
    return directory


class Serving:
    """One query frontend process on a SQLite store, plus model replicas.

    RPC auth is CURVE unless ``rpc_auth="none"``: the frontend reads its keys
    from ``tmp/rpc_keys`` (``--rpc-keys``), replicas get their model's keys.
    """

    def __init__(self, tmp: Path, *, cache_size: int = 32 * 1024 * 1024,
                 max_body: int | None = None, http_server: str | None = None,
                 frontend_args: tuple[str, ...] = (), rpc_auth: str = "curve") -> None:
        self.tmp = tmp
        self.url = f"sqlite:///{tmp / 'state.db'}"
        self.store = open_store(self.url)
        self.port = free_port()
        self.rpc_port = free_port()
        self.cache_size = cache_size
        self.max_body = max_body
        self.http_server = http_server
        self.frontend_args = list(frontend_args)
        self.rpc_auth = rpc_auth
        self.keys_dir = tmp / "rpc_keys"
        self.keys = curve.ClusterKeys.from_dir(self.keys_dir) if rpc_auth == "curve" else None
        self.frontend: subprocess.Popen[bytes] | None = None
        self.replicas: list[subprocess.Popen[bytes]] = []
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self._logs: list[Any] = []

    # -- processes ---------------------------------------------------------
    def start_frontend(self) -> None:
        args = [sys.executable, "-m", "clipper_frontends.query", "--store", self.url,
                "--host", "127.0.0.1", "--port", str(self.port), "--rpc-host", "127.0.0.1",
                "--rpc-port", str(self.rpc_port), "--cache-size", str(self.cache_size),
                "--replica-silence-s", "5", "--rpc-auth", self.rpc_auth]
        if self.keys is not None:
            args += ["--rpc-keys", str(self.keys_dir)]
        if self.max_body is not None:
            args += ["--max-body-bytes", str(self.max_body)]
        if self.http_server is not None:
            args += ["--http-server", self.http_server]
        args += self.frontend_args
        log = open(self.tmp / f"frontend-{len(self._logs)}.log", "wb")
        self._logs.append(log)
        self.frontend = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=20, what="query frontend /readyz")

    def _ready(self) -> bool:
        assert self.frontend is not None
        if self.frontend.poll() is not None:
            raise AssertionError("frontend exited:\n" + self.log_text())
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def stop_frontend(self) -> None:
        if self.frontend and self.frontend.poll() is None:
            self.frontend.send_signal(signal.SIGTERM)
            try:
                self.frontend.wait(10)
            except subprocess.TimeoutExpired:
                self.frontend.kill()
                self.frontend.wait()

    def start_replica(self, model_dir: Path, name: str, version: str, input_type: str = "doubles",
                      replica_id: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        keys = self.keys.replica_env(name, str(version)) if self.keys is not None else {}
        e = dict(os.environ, CLIPPER_MODEL_NAME=name, CLIPPER_MODEL_VERSION=str(version),
                 CLIPPER_INPUT_TYPE=input_type, CLIPPER_IP="127.0.0.1",
                 CLIPPER_PORT=str(self.rpc_port), CLIPPER_MODEL_PATH=str(model_dir),
                 **keys, **env)
        if replica_id:
            e["CLIPPER_REPLICA_ID"] = replica_id
        log = open(self.tmp / f"replica-{len(self.replicas)}.log", "wb")
        self._logs.append(log)
        proc = subprocess.Popen([sys.executable, "-m", "clipper_core.runtime"], env=e,
                                stdout=log, stderr=subprocess.STDOUT)
        self.replicas.append(proc)
        return proc

    def close(self) -> None:
        for p in self.replicas:
            if p.poll() is None:
                p.kill()
        for p in self.replicas:
            p.wait()
        self.stop_frontend()
        self.http.close()
        self.store.close()
        for f in self._logs:
            f.close()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.tmp.glob("*.log")))

    # -- configuration -----------------------------------------------------
    def deploy(self, app: str, model: str, version: str = "1", input_type: str = "doubles", *,
               slo_micros: int = 2_000_000, default_output: str = "default",
               batch_size: int = -1, batching_policy: str | None = None,
               link: bool = True) -> None:
        """Register app and model version in the store and link them."""
        if self.store.get_application(app) is None:
            self.store.add_application(Application.create(app, input_type, default_output,
                                                          slo_micros))
        self.store.add_model(ModelVersion.create(model, version, input_type,
                                                 batch_size=batch_size,
                                                 batching_policy=batching_policy))
        if link:
            self.store.set_link(app, model)

    # -- observation -------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        return self.http.get("/metrics").json()

    def connected(self, model: str, version: str = "1") -> int:
        m = self.metrics()["models"].get(f"{model}:{version}")
        return m["connected_replicas"] if m else 0

    def wait_connected(self, model: str, n: int = 1, version: str = "1",
                       timeout: float = 20) -> None:
        wait_until(lambda: self.connected(model, version) >= n, timeout=timeout,
                   what=f"{n} replicas of {model}:{version}")

    def wait_app(self, app: str, timeout: float = 5) -> None:
        """Until the frontend knows ``app`` (it answers anything but 404)."""
        wait_until(lambda: self.post(app, {"input": [1.0]}).status_code != 404,
                   timeout=timeout, what=f"app {app} live")

    def post(self, app: str, body: Any, **kw: Any) -> httpx.Response:
        if isinstance(body, (bytes, str)):
            return self.http.post(f"/{app}/predict", content=body, **kw)
        return self.http.post(f"/{app}/predict", json=body, **kw)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def elapsed(t0: float) -> float:
    return time.monotonic() - t0
