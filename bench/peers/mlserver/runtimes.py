"""MLServer peer: custom runtimes for the noop and sklearn models (V2
inference protocol); adaptive batching is MLServer's, set per model in
model-settings.json."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

sys.path.insert(0, os.environ["BENCH_DIR"])
import workloads  # noqa: E402


class NoopModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        out = np.asarray(workloads.noop_predict(list(x)), dtype=np.float64).reshape(-1, 1)
        return InferenceResponse(model_name=self.name,
                                 outputs=[NumpyCodec.encode_output("output", out)])


class SklearnModel(MLModel):
    async def load(self) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = workloads.train_sklearn()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        out = self.model.predict(x.reshape(x.shape[0], -1)).reshape(-1, 1)
        return InferenceResponse(model_name=self.name,
                                 outputs=[NumpyCodec.encode_output("output", out)])
