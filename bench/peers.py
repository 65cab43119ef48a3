"""The peers: BentoML, MLServer and Ray Serve, each installed by the harness
into its own virtual environment under bench/.peers/<name>/ and started from
the app files in bench/peers/.  One worker / one replica each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from load import Body
from systems import HERE, NOOP, SKLEARN, Endpoint, ProcessSystem, SystemError_, free_port

PEERS_DIR = HERE / ".peers"
APPS = HERE / "peers"


class PeerSystem(ProcessSystem):
    """A peer in its own virtual environment."""

    #: pip requirements of the peer's environment
    requirements: tuple[str, ...] = ()
    scenarios = ("noop", "sklearn", "sklearn-b1", "cache")
    start_timeout = 240.0

    @property
    def venv(self) -> Path:
        return PEERS_DIR / self.name

    @property
    def python(self) -> str:  # type: ignore[override]
        return str(self.venv / "bin" / "python")

    def install(self) -> None:
        """Create the environment and pip install the peer, unless a previous
        run did (a marker file records the requirements installed)."""
        marker = self.venv / ".bench-installed"
        want = "\n".join(self.requirements)
        if marker.exists() and marker.read_text() == want:
            return
        PEERS_DIR.mkdir(exist_ok=True)
        log = PEERS_DIR / f"{self.name}.install.log"
        with log.open("ab") as out:
            if not (self.venv / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True,
                               stdout=out, stderr=subprocess.STDOUT)
            proc = subprocess.run([self.python, "-m", "pip", "install", "-q",
                                   *self.requirements], stdout=out, stderr=subprocess.STDOUT,
                                  timeout=1800)
        if proc.returncode != 0:
            raise SystemError_(f"pip install {' '.join(self.requirements)} failed (exit "
                               f"{proc.returncode}); see {log}: "
                               f"{log.read_text(errors='replace')[-400:]}")
        marker.write_text(want)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["BENCH_DIR"] = str(HERE)
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        return env

    def ready(self) -> None:
        """Until noop answers (some peers load models after their health check)."""
        deadline = time.monotonic() + self.start_timeout
        for scenario in self.scenarios:
            self._wait_endpoint(scenario, deadline)

    def _wait_endpoint(self, scenario: str, deadline: float) -> None:
        ep = self.endpoint(scenario)
        body = (ep.body.prefix + ",".join(["0.5"] * ep.body.width) + ep.body.suffix)
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemError_(f"{self.name} exited with {self.proc.returncode}; log "
                                   f"tail:\n{self.log.read_text(errors='replace')[-1500:]}")
            try:
                r = httpx.post(self.url(scenario), content=body,
                               headers={"content-type": "application/json"}, timeout=10)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemError_(f"{self.name}: {scenario} did not answer within "
                                   f"{self.start_timeout:.0f}s; log tail:\n"
                                   f"{self.log.read_text(errors='replace')[-1500:]}")
            time.sleep(0.5)


class BentoML(PeerSystem):
    name = "bentoml"
    label = "BentoML"
    requirements = ("bentoml", "scikit-learn", "numpy")
    health_path = "/readyz"

    def cwd(self) -> Path:
        return APPS

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "bentoml"), "serve", "bentoml_service:Bench",
                "--host", "127.0.0.1", "--port", str(self.port)]

    def endpoint(self, scenario: str) -> Endpoint:
        batched = Body(width=784, prefix='{"input":[[', suffix="]]}")
        return {"noop": Endpoint("/noop/predict", NOOP),
                "cache": Endpoint("/noop/predict", Body(width=4, distinct=False)),
                "sklearn": Endpoint("/sklearn/predict", batched),
                "sklearn-b1": Endpoint("/sklearn-b1/predict", SKLEARN)}[scenario]

    def output_of(self, response: httpx.Response) -> Any:
        data = response.json()
        if isinstance(data, list):
            return data[0]
        return data.get("output")


def _v2(width: int, distinct: bool = True) -> Body:
    return Body(width=width, distinct=distinct,
                prefix=f'{{"inputs":[{{"name":"input","shape":[1,{width}],"datatype":"FP64",'
                       f'"data":[', suffix="]}]}")


class MLServer(PeerSystem):
    name = "mlserver"
    label = "MLServer"
    requirements = ("mlserver", "scikit-learn", "numpy")
    health_path = "/v2/health/ready"

    def command(self) -> list[str]:
        root = self.workdir / "mlserver-models"
        root.mkdir(exist_ok=True)
        (root / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": self.port, "grpc_port": free_port(),
            "metrics_port": free_port(), "parallel_workers": 0, "debug": False}))
        models = {"noop": ("runtimes.NoopModel", 1, 0.0),
                  "sklearn": ("runtimes.SklearnModel", 64, 0.002),
                  "sklearn-b1": ("runtimes.SklearnModel", 1, 0.0)}
        for name, (impl, batch, wait) in models.items():
            d = root / name
            d.mkdir(exist_ok=True)
            settings: dict[str, Any] = {"name": name, "implementation": impl}
            if batch > 1:
                settings.update(max_batch_size=batch, max_batch_time=wait)
            (d / "model-settings.json").write_text(json.dumps(settings))
        return [str(self.venv / "bin" / "mlserver"), "start", str(root)]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = str(APPS / "mlserver")
        return env

    def endpoint(self, scenario: str) -> Endpoint:
        return {"noop": Endpoint("/v2/models/noop/infer", _v2(4)),
                "cache": Endpoint("/v2/models/noop/infer", _v2(4, distinct=False)),
                "sklearn": Endpoint("/v2/models/sklearn/infer", _v2(784)),
                "sklearn-b1": Endpoint("/v2/models/sklearn-b1/infer", _v2(784))}[scenario]

    def output_of(self, response: httpx.Response) -> Any:
        return response.json()["outputs"][0]["data"][0]


class RayServe(PeerSystem):
    name = "ray"
    label = "Ray Serve"
    requirements = ("ray[serve]", "scikit-learn", "numpy")
    health_path = "/-/routes"
    start_timeout = 300.0

    def command(self) -> list[str]:
        return [self.python, str(APPS / "ray_app.py"), "--port", str(self.port)]

    def endpoint(self, scenario: str) -> Endpoint:
        return {"noop": Endpoint("/noop/predict", NOOP),
                "cache": Endpoint("/noop/predict", Body(width=4, distinct=False)),
                "sklearn": Endpoint("/sklearn/predict", SKLEARN),
                "sklearn-b1": Endpoint("/sklearn-b1/predict", SKLEARN)}[scenario]

PEERS: dict[str, type[PeerSystem]] = {"bentoml": BentoML, "mlserver": MLServer,
                                      "ray": RayServe}
