"""BentoML peer: one service, one worker; the sklearn route uses BentoML's
adaptive batching (batchable API), sklearn-b1 does not.

Run (in its own virtual environment, cwd bench/peers):
    bentoml serve bentoml_service:Bench --port PORT
"""

from __future__ import annotations

import os
import sys
import warnings

import bentoml
import numpy as np

sys.path.insert(0, os.environ.get("BENCH_DIR", os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
import workloads  # noqa: E402


@bentoml.service(workers=1, traffic={"timeout": 60})
class Bench:
    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = workloads.train_sklearn()

    @bentoml.api(route="/noop/predict")
    async def noop(self, input: list[float]) -> dict:
        return {"output": workloads.noop_predict([input])[0], "default": False}

    @bentoml.api(route="/sklearn/predict", batchable=True, max_batch_size=64,
                 max_latency_ms=1000)
    def sklearn(self, input: np.ndarray) -> np.ndarray:
        return self.model.predict(input.reshape(len(input), -1))

    @bentoml.api(route="/sklearn-b1/predict")
    def sklearn_b1(self, input: list[float]) -> dict:
        return {"output": int(self.model.predict(np.asarray([input]))[0]), "default": False}
