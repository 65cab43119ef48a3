"""The systems under test: ours (a cluster on the embedded default) and the
bare Starlette baseline; the peers live in :mod:`peers`.

A system is started once per run, serves every scenario it supports, and is
stopped before the next system starts, so systems never share the CPU.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import attrs
import httpx
from load import Body

HERE = Path(__file__).resolve().parent

#: Environment of every process a system starts: one BLAS thread (two cores
#: are shared by the load generator and the server).
QUIET_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "PYTHONWARNINGS": "ignore"}


class SystemError_(RuntimeError):
    """A system could not be installed or started; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> None:
    """Until GET ``url`` answers 200; SystemError_ when ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemError_(f"process exited with {proc.returncode} before {url} answered"
                               + (f"; log tail:\n{tail(log)}" if log else ""))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemError_(f"{url} did not answer within {timeout:.0f}s"
                       + (f"; log tail:\n{tail(log)}" if log else ""))


def tail(path: Path | None, n: int = 2000) -> str:
    return path.read_text(errors="replace")[-n:] if path is not None and path.exists() else ""


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@attrs.frozen
class Endpoint:
    """Where one scenario's requests go and how their bodies look."""

    path: str
    body: Body


#: Our goodput apps (SLO set by the harness, default output -1) -> the model
#: each is linked to: batch_size=1 and adaptive batching.
GOODPUT_MODELS = {"goodput-b1": "sklearn-b1", "goodput-adaptive": "sklearn"}

NOOP = Body(width=4)
SKLEARN = Body(width=784)
CACHE = Body(width=4, distinct=False)


class System:
    """Base of every system: a name, endpoints per scenario, processes."""

    name = "system"
    label = "system"
    #: Scenarios served; overload and scale are only meaningful for some.
    scenarios: tuple[str, ...] = ()
    #: The endpoints the goodput sweep drives (each a model behind the SLO).
    goodput_apps: tuple[str, ...] = ()

    host = "127.0.0.1"
    port = 0
    startup_s: float | None = None
    startup_note = ""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def endpoint(self, scenario: str) -> Endpoint:
        raise NotImplementedError

    def url(self, scenario: str) -> str:
        return f"http://{self.host}:{self.port}{self.endpoint(scenario).path}"

    def pids(self) -> dict[str, int]:
        """Name -> pid of every process that serves noop (for peak RSS)."""
        return {}

    def defaults(self, scenario: str) -> int | None:
        """Default outputs given for ``scenario`` so far (None: no such notion)."""
        return None

    def check(self, scenario: str, expected: Any) -> None:
        """One request; SystemError_ unless its output is ``expected``."""
        ep = self.endpoint(scenario)
        body = ep.body.prefix + ",".join(repr(v) for v in _example(ep.body)) + ep.body.suffix
        r = httpx.post(self.url(scenario), content=body,
                       headers={"content-type": "application/json"}, timeout=30)
        got = self.output_of(r)
        if r.status_code != 200 or got != expected:
            raise SystemError_(f"{self.name} {scenario}: expected output {expected!r}, got "
                               f"HTTP {r.status_code} {r.text[:300]!r}")

    def output_of(self, response: httpx.Response) -> Any:
        data = response.json()
        return data.get("output") if isinstance(data, dict) else data


def _example(body: Body) -> list[float]:
    import workloads

    return workloads.example_input(body.width)


# ---------------------------------------------------------------------------
# Ours
# ---------------------------------------------------------------------------
class Clipper(System):
    """clipper-core on the embedded default: ClipperConnection with the
    local_process manager, a SQLite store, one query frontend, one replica
    per model, closures deployed with create_endpoint."""

    name = "clipper"
    label = "clipper-core"
    scenarios = ("noop", "sklearn", "sklearn-b1", "cache", "overload", "scale", "goodput",
                 "soak")
    goodput_apps = tuple(GOODPUT_MODELS)

    def __init__(self, workdir: Path, with_sklearn: bool = True) -> None:
        self.workdir = workdir
        self.with_sklearn = with_sklearn
        self.conn: Any = None
        self.cm: Any = None
        self.store_url = ""

    def start(self) -> None:
        import cloudpickle
        import workloads
        from clipper_local_process.manager import LocalProcessContainerManager

        from clipper_core.connection import ClipperConnection
        from clipper_core.deployers.python import create_endpoint

        # Replicas cannot import the bench directory: ship the models by value.
        cloudpickle.register_pickle_by_value(workloads)
        os.environ.update(QUIET_ENV)  # inherited by frontends and replicas
        state = Path(tempfile.mkdtemp(prefix="cluster-", dir=self.workdir))
        self.port = free_port()
        self.cm = LocalProcessContainerManager(
            cluster_name="bench", clipper_query_port=self.port,
            clipper_management_port=free_port(), clipper_rpc_port=free_port(),
            state_dir=state, progress=lambda _line: None)
        self.conn = ClipperConnection(self.cm)
        t0 = time.perf_counter()
        self.conn.start_clipper()
        create_endpoint(self.conn, "noop", "doubles", workloads.noop_predict)
        self._wait_output("noop", workloads.NOOP_OUTPUT, timeout=60)
        self.startup_s = time.perf_counter() - t0
        self.startup_note = "start_clipper + create_endpoint(noop closure) + first prediction"
        self.store_url = self.cm.config.store_url
        if self.with_sklearn:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = workloads.train_sklearn()
            fn = workloads.sklearn_predict_fn(model)
            create_endpoint(self.conn, "sklearn", "doubles", fn)
            create_endpoint(self.conn, "sklearn-b1", "doubles", fn, batch_size=1)
            expected = fn([_example(SKLEARN)])[0]
            for app in ("sklearn", "sklearn-b1"):
                self._wait_output(app, expected, timeout=60, body=SKLEARN)

    def _wait_output(self, app: str, expected: Any, timeout: float,
                     body: Body = NOOP) -> None:
        """Until ``app`` answers ``expected`` (not a default): the frontend
        learns about links and replicas asynchronously after a deploy."""
        deadline = time.monotonic() + timeout
        payload = {"input": _example(body)}
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = httpx.post(f"http://{self.host}:{self.port}/{app}/predict", json=payload,
                               timeout=5)
                d = r.json()
                if r.status_code == 200 and not d.get("default") and d.get("output") == expected:
                    return
            if time.monotonic() > deadline:
                raise SystemError_(f"no correct prediction from {app} within {timeout}s")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.stop_all(graceful=False)

    def endpoint(self, scenario: str) -> Endpoint:
        return {"noop": Endpoint("/noop/predict", NOOP),
                "cache": Endpoint("/noop/predict", CACHE),
                "scale": Endpoint("/noop/predict", NOOP),
                "sklearn": Endpoint("/sklearn/predict", SKLEARN),
                "sklearn-b1": Endpoint("/sklearn-b1/predict", SKLEARN),
                "overload": Endpoint("/overload/predict", SKLEARN),
                "goodput-b1": Endpoint("/goodput-b1/predict", SKLEARN),
                "goodput-adaptive": Endpoint("/goodput-adaptive/predict", SKLEARN)}[scenario]

    def processes(self) -> list[Any]:
        """The local_process manager's process table (name, pid, supervisor pid)."""
        table = self.cm._table()
        return list(table.select() if hasattr(table, "select") else table.list())

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.processes() if p.pid and (
            p.labels.get("kind") == "frontend" or p.labels.get("model_name") == "noop")}

    def supervisor_pids(self) -> dict[str, int]:
        return {f"supervisor:{p.name}": p.supervisor_pid for p in self.processes()
                if p.supervisor_pid and (p.labels.get("kind") == "frontend"
                                         or p.labels.get("model_name") == "noop")}

    def frontend_pid(self) -> int:
        return next(p.pid for p in self.processes() if p.name == "query-0")

    def metrics(self) -> dict[str, Any]:
        return httpx.get(f"http://{self.host}:{self.port}/metrics", timeout=10,
                         headers={"accept": "application/json"}).json()  # not Prometheus

    def defaults(self, scenario: str) -> int | None:
        app = self.endpoint(scenario).path.split("/")[1]
        m = self.metrics()["applications"].get(app)
        return m["default_outputs"] if m else 0

    def add_slo_app(self, app: str, model: str, slo_micros: int) -> None:
        """App ``app`` (SLO ``slo_micros``, default output -1) linked to the
        deployed ``model``; returns once the app gives a real answer.  The
        overload app is linked to ``sklearn-b1``: the model, not HTTP, is
        the bottleneck."""
        self.conn.register_application(app, "doubles", "-1", slo_micros)
        self.conn.link_model_to_app(app, model)
        deadline = time.monotonic() + 20
        while (r := httpx.post(self.url(app), json={"input": _example(SKLEARN)}, timeout=10)
               ).status_code != 200 or r.json().get("default") is not False:
            if time.monotonic() > deadline:
                raise SystemError_(f"no real answer from app {app}: {r.text[:200]}")
            time.sleep(0.1)

    def register_many(self, n: int) -> float:
        """Register ``n`` apps and ``n`` model versions (app-i linked to
        model-i:1, no replicas) straight into the cluster's store; returns
        how long that took.  Waits until the frontend serves the new config."""
        from clipper_core.models import Application, ModelVersion
        from clipper_core.plugins import open_store

        store = open_store(self.store_url)
        t0 = time.perf_counter()
        try:
            for i in range(n):
                store.add_model(ModelVersion.create(f"scale-model-{i}", "1", "doubles"))
                store.add_application(Application.create(f"scale-app-{i}", "doubles", "-1",
                                                         100_000))
                store.set_link(f"scale-app-{i}", f"scale-model-{i}")
        finally:
            store.close()
        last = f"http://{self.host}:{self.port}/scale-app-{n - 1}/predict"
        deadline = time.monotonic() + 60
        while httpx.post(last, json={"input": [1.0]}, timeout=10).status_code == 404:
            if time.monotonic() > deadline:
                raise SystemError_(f"the frontend never learnt about {n} apps")
            time.sleep(0.2)
        return time.perf_counter() - t0


# ---------------------------------------------------------------------------
# The bare baseline
# ---------------------------------------------------------------------------
class ProcessSystem(System):
    """A system that is one command line (plus its children)."""

    python = sys.executable
    health_path = "/healthz"
    start_timeout = 120.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, **QUIET_ENV, "PYTHONUNBUFFERED": "1"}

    def cwd(self) -> Path:
        return self.workdir

    def start(self) -> None:
        self.port = free_port()
        t0 = time.perf_counter()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env(), cwd=self.cwd(),
                                         start_new_session=True)
        try:
            wait_http(f"http://{self.host}:{self.port}{self.health_path}", self.start_timeout,
                      self.proc, self.log)
            self.ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0
        self.startup_note = "process start until the health check and a first prediction"

    def ready(self) -> None:
        """Hook: wait for the models after the health check passed."""

    def stop(self) -> None:
        """Stop the process group, then any descendant that left it (by pid)."""
        if self.proc is None:
            return
        import psutil

        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            kids = []
        stop_process(self.proc)
        for k in kids:
            with contextlib.suppress(psutil.Error):
                k.terminate()
        _, alive = psutil.wait_procs(kids, timeout=10)
        for k in alive:
            with contextlib.suppress(psutil.Error):
                k.kill()

    def pids(self) -> dict[str, int]:
        if self.proc is None:
            return {}
        import psutil

        root = psutil.Process(self.proc.pid)
        return {f"{self.name}:{p.pid}": p.pid for p in [root, *root.children(recursive=True)]}


class Bare(ProcessSystem):
    """A bare Starlette app on uvicorn running the model inline."""

    name = "bare"
    label = "bare Starlette"
    scenarios = ("noop", "sklearn", "cache", "overload", "goodput")
    goodput_apps = ("goodput-inline",)

    def __init__(self, workdir: Path, with_sklearn: bool = True) -> None:
        super().__init__(workdir)
        self.with_sklearn = with_sklearn

    def command(self) -> list[str]:
        cmd = [self.python, str(HERE / "peers" / "bare_app.py"), "--port", str(self.port)]
        return cmd + ([] if self.with_sklearn else ["--no-sklearn"])

    def endpoint(self, scenario: str) -> Endpoint:
        return {"noop": Endpoint("/noop/predict", NOOP),
                "cache": Endpoint("/noop/predict", CACHE),
                "sklearn": Endpoint("/sklearn/predict", SKLEARN),
                "overload": Endpoint("/sklearn/predict", SKLEARN),
                "goodput-inline": Endpoint("/sklearn/predict", SKLEARN)}[scenario]
