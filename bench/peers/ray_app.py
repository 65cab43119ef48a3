"""Ray Serve peer: one replica per deployment; the sklearn route batches
with @serve.batch, sklearn-b1 does not.

Run (in its own virtual environment): python ray_app.py --port PORT
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.environ.get("BENCH_DIR", os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
import workloads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import ray
    from ray import serve
    from starlette.requests import Request

    @serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.25})
    class Noop:
        async def __call__(self, request: Request) -> dict:
            body = await request.json()
            return {"output": workloads.noop_predict([body["input"]])[0], "default": False}

    @serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.25})
    class Sklearn:
        def __init__(self, batched: bool) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = workloads.train_sklearn()
            self.batched = batched

        @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
        async def predict_batch(self, xs: list) -> list:
            return self.model.predict(np.asarray(xs, dtype=np.float64)).tolist()

        async def __call__(self, request: Request) -> dict:
            x = (await request.json())["input"]
            if self.batched:
                y = await self.predict_batch(x)
            else:
                y = int(self.model.predict(np.asarray([x], dtype=np.float64))[0])
            return {"output": y, "default": False}

    bench_dir = os.environ.get("BENCH_DIR", os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": bench_dir, "OMP_NUM_THREADS": "1"}})
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Noop.bind(), name="noop", route_prefix="/noop/predict")
    serve.run(Sklearn.bind(True), name="sklearn", route_prefix="/sklearn/predict")
    serve.run(Sklearn.bind(False), name="sklearn-b1", route_prefix="/sklearn-b1/predict")
    print("ray serve ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
