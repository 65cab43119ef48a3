"""The model-selection layer's costs (issue 20), on a real local cluster:

1. ``shadow``: the p99 latency of an app whose every query is also mirrored
   to a shadow model, against the same primary model served alone
   (target: at most 1.05x).
2. ``exp4``: the throughput of an Exp4 ensemble over three models against
   the slowest of them served alone (target: at least 0.8x).

    python bench/selection.py [--duration 10] [--connections 16] [--rounds 3]
    python bench/selection.py --quick          # a smoke run (1 s points)

Each point is ``wrk -t1 -cN`` (bench/load.py, bench/wrk/post.lua) for
``--duration`` seconds after a warm-up, every request a distinct input (no
cache hits); the two sides of each comparison alternate ``--rounds`` times in
one run and the medians are compared, so a noisy machine moves both.  The
models cost a fixed sleep per batch (1, 2 and 4 ms), as a model on its own
accelerator would: the ratios measure the selection layer (fan-out, waiting,
combining, mirroring), not models competing for the same cores.  Prints the
two ratios and writes every number to ``bench/results/selection.json``.
Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from load import Body, Point, raise_fd_limit, run_wrk  # noqa: E402

#: model name -> its cost per batch in seconds
MODELS = {"fast": 0.001, "medium": 0.002, "slow": 0.004}
SHADOW = "shadow-copy"
BODY = Body(width=4)
#: app -> (policy, linked models, params); "single" apps link one model
APPS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "primary-alone": ("single", ("medium",), {}),
    "primary-shadowed": ("shadow", ("medium", SHADOW), {"primary": "medium"}),
    "slowest-alone": ("single", ("slow",), {}),
    "ensemble": ("exp4", ("fast", "medium", "slow"), {}),
}
QUIET_ENV = {"CLIPPER_LOG_LEVEL": "WARNING"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_fn(cost_s: float) -> Any:
    """A model that sleeps ``cost_s`` per batch and answers 1.0 per input."""
    def predict(inputs: list[Any]) -> list[float]:
        time.sleep(cost_s)
        return [1.0] * len(inputs)
    return predict


class Cluster:
    """A local_process cluster with the scenario's models and apps."""

    def __init__(self, workdir: Path, slo_micros: int) -> None:
        self.workdir = workdir
        self.slo_micros = slo_micros
        self.conn: Any = None
        self.base = ""

    def start(self) -> None:
        from clipper_local_process.manager import LocalProcessContainerManager

        from clipper_core.connection import ClipperConnection
        from clipper_core.deployers.python import deploy_python_closure

        os.environ.update(QUIET_ENV)
        port = free_port()
        cm = LocalProcessContainerManager(
            cluster_name="bench-selection", clipper_query_port=port,
            clipper_management_port=free_port(), clipper_rpc_port=free_port(),
            state_dir=tempfile.mkdtemp(prefix="cluster-", dir=self.workdir),
            progress=lambda _line: None)
        self.conn = ClipperConnection(cm)
        self.base = f"http://127.0.0.1:{port}"
        self.conn.start_clipper()
        for name, cost in {**MODELS, SHADOW: MODELS["medium"]}.items():
            deploy_python_closure(self.conn, name, 1, "doubles", model_fn(cost))
        for app, (policy, models, params) in APPS.items():
            self.conn.register_application(app, "doubles", "-1", self.slo_micros,
                                           selection_policy=policy, policy_params=params)
            for model in models:
                self.conn.link_model_to_app(app, model)
            self.wait_answer(app)

    def wait_answer(self, app: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = httpx.post(self.url(app), json={"input": [0.5, 0.1, 0.2, 0.3]}, timeout=5)
                if r.status_code == 200 and r.json().get("default") is False:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app} gives no real answer within {timeout:g}s")
            time.sleep(0.1)

    def url(self, app: str) -> str:
        return f"{self.base}/{app}/predict"

    def metrics(self) -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(f"{self.base}/metrics", timeout=10,
                                          headers={"accept": "application/json"}).json()
        return found

    def stop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.stop_all(graceful=False)


def measure(cluster: Cluster, pair: tuple[str, str], rounds: int, connections: int,
            duration: float, warmup: float) -> dict[str, list[Point]]:
    """``rounds`` alternating wrk points of the two apps of ``pair``."""
    points: dict[str, list[Point]] = {app: [] for app in pair}
    for r in range(rounds):
        for app in (pair if r % 2 == 0 else pair[::-1]):
            if warmup > 0:
                run_wrk(cluster.url(app), connections, warmup, BODY)
            points[app].append(run_wrk(cluster.url(app), connections, duration, BODY))
            p = points[app][-1]
            print(f"  {app:<18} round {r + 1}: {p.rps:8.0f} req/s  p99 {p.p99_ms:7.2f} ms",
                  flush=True)
    return points


def median(points: list[Point], field: str) -> float:
    return float(statistics.median(getattr(p, field) for p in points))


def summarise(shadow: dict[str, list[Point]], exp4: dict[str, list[Point]],
              metrics: dict[str, Any]) -> dict[str, Any]:
    """The two ratios against their targets, the points, and the frontend's
    selection metrics (shadow compared/missed, exp4 stragglers)."""
    p99_alone = median(shadow["primary-alone"], "p99_ms")
    p99_shadowed = median(shadow["primary-shadowed"], "p99_ms")
    rps_slowest = median(exp4["slowest-alone"], "rps")
    rps_ensemble = median(exp4["ensemble"], "rps")
    apps = metrics.get("applications", {})
    return {
        "shadow_p99_ratio": {"alone_ms": p99_alone, "shadowed_ms": p99_shadowed,
                             "ratio": p99_shadowed / p99_alone if p99_alone else None,
                             "target": "<= 1.05"},
        "exp4_throughput_ratio": {"slowest_rps": rps_slowest, "ensemble_rps": rps_ensemble,
                                  "ratio": rps_ensemble / rps_slowest if rps_slowest else None,
                                  "target": ">= 0.8"},
        "points": {app: [vars_of(p) for p in pts] for app, pts in {**shadow, **exp4}.items()},
        "selection": metrics.get("selection", {}),
        "defaults": {app: apps.get(app, {}).get("default_outputs") for app in APPS},
    }


def vars_of(point: Point) -> dict[str, Any]:
    return {f: getattr(point, f) for f in ("requests", "seconds", "rps", "p50_ms", "p99_ms",
                                           "errors", "socket_errors")}


def _x(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.3f}x"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each point")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--rounds", type=int, default=3, help="alternations of each pair")
    p.add_argument("--slo-micros", type=int, default=1_000_000, help="every app's SLO")
    p.add_argument("--out", type=Path, default=HERE / "results" / "selection.json")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 1 s points, no warm-up, one round, 4 connections")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds, args.connections = 1.0, 0.0, 1, 4
    return args


def main(argv: list[str] | None = None) -> int:
    import cloudpickle

    args = parse(argv)
    raise_fd_limit()
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # replicas cannot import us
    with tempfile.TemporaryDirectory(prefix="bench-selection-") as tmp:
        cluster = Cluster(Path(tmp), args.slo_micros)
        try:
            print("starting the cluster and deploying 4 models ...", flush=True)
            cluster.start()
            print("shadow: the primary alone vs shadowed", flush=True)
            shadow = measure(cluster, ("primary-alone", "primary-shadowed"), args.rounds,
                             args.connections, args.duration, args.warmup)
            print("exp4: the slowest model alone vs the ensemble of three", flush=True)
            exp4 = measure(cluster, ("slowest-alone", "ensemble"), args.rounds,
                           args.connections, args.duration, args.warmup)
            found = summarise(shadow, exp4, cluster.metrics())
        finally:
            cluster.stop()
    found["settings"] = {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in vars(args).items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(found, indent=2))
    s, e = found["shadow_p99_ratio"], found["exp4_throughput_ratio"]
    print(f"\nshadow: p99 {s['shadowed_ms']:.2f} ms shadowed vs {s['alone_ms']:.2f} ms alone: "
          f"{_x(s['ratio'])} (target <= 1.05)")
    print(f"exp4:   {e['ensemble_rps']:.0f} req/s over three models vs {e['slowest_rps']:.0f} "
          f"req/s for the slowest alone: {_x(e['ratio'])} (target >= 0.8)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
