"""``exp4``: every model answers; a weighted vote answers, with a confidence.

Each query goes to every linked model.  Their outputs are combined by the
models' exponential weights: a weighted vote under the 0/1 loss (the
default), a weighted mean under ``loss="squared"``.  The confidence is the
share of the *total* weight behind the answer, so a model that missed the
SLO (a straggler) counts against it.  Feedback lowers each model's
log-weight by ``eta`` times its own loss (every model answered, so this is
full-information learning: Exp4 with the models as experts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import LogWeights, PolicyBase, Query, agree, is_number


class Exp4Policy(PolicyBase):
    """Exp4: a weighted ensemble of every linked model."""

    name = "exp4"

    def __init__(self, models: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(models, params)
        self.eta = self.params.number("eta", 0.3, low=1e-9, high=10.0)
        self.logs = LogWeights(self.models, self.params.number("cap", 8.0, low=0.1))

    def init_state(self) -> dict[str, Any]:
        return self.logs.write({}, [0.0] * len(self.models))

    def select(self, state: Mapping[str, Any], query: Query) -> list[str]:
        return list(self.models)

    def combine(self, state: Mapping[str, Any], query: Query,
                outputs: Mapping[str, Any]) -> tuple[Any, float]:
        if not outputs:
            raise ValueError("combine() needs at least one output")
        weights = dict(zip(self.models, self.logs.normalised(state), strict=True))
        answered = [(m, out) for m, out in outputs.items() if m in weights]
        if self.loss_kind == "squared" and all(is_number(o) for _, o in answered):
            total = sum(weights[m] for m, _ in answered)
            mean = sum(weights[m] * float(o) for m, o in answered) / total
            return mean, total
        votes: list[tuple[Any, float]] = []
        for model, out in answered:
            for i, (value, weight) in enumerate(votes):
                if agree(value, out):
                    votes[i] = (value, weight + weights[model])
                    break
            else:
                votes.append((out, weights[model]))
        value, weight = max(votes, key=lambda v: v[1])
        return value, min(1.0, weight)

    def observe(self, state: Mapping[str, Any], query: Query, label: float,
                outputs: Mapping[str, Any]) -> dict[str, Any]:
        logs = self.logs.read(state)
        for i, model in enumerate(self.models):
            if model in outputs:
                logs[i] -= self.eta * self.loss(outputs[model], label)
        return self.logs.write(state, logs)

    def weights(self, state: Mapping[str, Any]) -> dict[str, float]:
        return dict(zip(self.models, self.logs.normalised(state), strict=True))
