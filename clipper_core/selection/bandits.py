"""Policies that pick one model per query and learn which from feedback.

- ``exp3``: the adversarial bandit of the Clipper paper (section 5.1).  Each
  query goes to one model drawn in proportion to exponential weights, mixed
  with a uniform share ``gamma``; feedback lowers the chosen model's weight
  by ``eta`` times its loss over the probability it had (an unbiased
  estimate of every model's loss).  The spread of the log-weights is capped
  (``cap``), so the policy moves off a model that breaks.
- ``epsilon_greedy``: the model with the lowest discounted mean loss, a
  uniformly random one with probability ``epsilon``; ``decay`` < 1 forgets
  old feedback so a model that breaks loses its lead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import LogWeights, PolicyBase, Query, draw


class Exp3Policy(PolicyBase):
    """Exp3: one model per query, drawn by exponential weights."""

    name = "exp3"

    def __init__(self, models: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(models, params)
        self.eta = self.params.number("eta", 0.1, low=1e-9, high=10.0)
        self.gamma = self.params.number("gamma", 0.02, low=0.0, high=1.0)
        self.logs = LogWeights(self.models, self.params.number("cap", 7.0, low=0.1))

    def probabilities(self, state: Mapping[str, Any]) -> list[float]:
        share = self.gamma / len(self.models)
        return [(1.0 - self.gamma) * w + share for w in self.logs.normalised(state)]

    def init_state(self) -> dict[str, Any]:
        return self.logs.write({}, [0.0] * len(self.models))

    def select(self, state: Mapping[str, Any], query: Query) -> list[str]:
        return [draw(self.rng, self.models, self.probabilities(state))]

    def observe(self, state: Mapping[str, Any], query: Query, label: float,
                outputs: Mapping[str, Any]) -> dict[str, Any]:
        probs = self.probabilities(state)
        logs = self.logs.read(state)
        for i, model in enumerate(self.models):
            if model in outputs:
                logs[i] -= self.eta * self.loss(outputs[model], label) / probs[i]
        return self.logs.write(state, logs)

    def weights(self, state: Mapping[str, Any]) -> dict[str, float]:
        return dict(zip(self.models, self.probabilities(state), strict=True))


class EpsilonGreedyPolicy(PolicyBase):
    """Epsilon-greedy over discounted mean losses."""

    name = "epsilon_greedy"

    def __init__(self, models: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(models, params)
        self.epsilon = self.params.number("epsilon", 0.1, low=0.0, high=1.0)
        self.decay = self.params.number("decay", 0.99, low=0.0, high=1.0)

    def _means(self, state: Mapping[str, Any]) -> list[float]:
        counts = state.get("counts") or {}
        losses = state.get("losses") or {}
        # A model without feedback yet looks perfect: it gets tried.
        return [float(losses.get(m, 0.0)) / counts[m] if counts.get(m) else 0.0
                for m in self.models]

    def _best(self, state: Mapping[str, Any]) -> int:
        means = self._means(state)
        return means.index(min(means))

    def select(self, state: Mapping[str, Any], query: Query) -> list[str]:
        if self.rng.random() < self.epsilon:
            return [self.models[self.rng.randrange(len(self.models))]]
        return [self.models[self._best(state)]]

    def init_state(self) -> dict[str, Any]:
        return {"counts": {}, "losses": {}}

    def observe(self, state: Mapping[str, Any], query: Query, label: float,
                outputs: Mapping[str, Any]) -> dict[str, Any]:
        counts = dict(state.get("counts") or {})
        losses = dict(state.get("losses") or {})
        for model, output in outputs.items():
            if model not in self.models:
                continue
            counts[model] = round(self.decay * float(counts.get(model, 0.0)) + 1.0, 9)
            losses[model] = round(self.decay * float(losses.get(model, 0.0))
                                  + self.loss(output, label), 9)
        return {**state, "counts": counts, "losses": losses}

    def weights(self, state: Mapping[str, Any]) -> dict[str, float]:
        share = self.epsilon / len(self.models)
        best = self._best(state)
        return {m: share + (1.0 - self.epsilon if i == best else 0.0)
                for i, m in enumerate(self.models)}
