"""What every selection policy shares: the query it sees, losses, weights.

A policy's *state* is a JSON-able dict that lives in the state store (per
application, and per ``uid`` when the application's ``per_uid`` parameter is
true).  Policies never touch the store: the query frontend hands them the
state it holds and stores what :meth:`observe` returns.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..errors import ValidationError

#: the loss functions a policy's ``loss`` parameter may name
LOSSES = ("zero_one", "squared")


@attrs.frozen(kw_only=True)
class Query:
    """One input as a policy sees it.

    ``data`` is the input's RPC wire bytes (the key of the prediction cache),
    ``uid`` the user the request named, if any.
    """

    data: bytes = b""
    uid: int | None = None


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def loss(kind: str, output: Any, label: float, max_loss: float = 1.0) -> float:
    """The loss in [0, 1] of ``output`` against ``label``.

    ``zero_one``: 0 when the output equals the label (numbers compared as
    numbers, anything else by its string), else 1.  ``squared``: the squared
    error, capped at ``max_loss`` and divided by it.  A non-numeric output
    under ``squared`` loses fully.
    """
    if kind == "zero_one":
        if is_number(output):
            return 0.0 if float(output) == float(label) else 1.0
        return 0.0 if str(output) == str(label) else 1.0
    if not is_number(output):
        return 1.0
    return min((float(output) - float(label)) ** 2, max_loss) / max_loss


def agree(a: Any, b: Any) -> bool:
    """Two outputs are the same answer (numbers compared as numbers)."""
    if is_number(a) and is_number(b):
        return float(a) == float(b)
    return bool(a == b)


class Params:
    """Reads a policy's parameters with checks that name the bad one."""

    def __init__(self, policy: str, params: Mapping[str, Any]) -> None:
        self.policy = policy
        self.params = params

    def number(self, key: str, default: float, *, low: float = 0.0,
               high: float = math.inf) -> float:
        value = self.params.get(key, default)
        if not is_number(value) or not low <= float(value) <= high:
            raise ValidationError(f"policy {self.policy!r}: parameter {key!r} must be a number "
                                  f"in [{low}, {high}], got {value!r}", argument=key, value=value)
        return float(value)

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        value = self.params.get(key, default)
        if value not in choices:
            raise ValidationError(f"policy {self.policy!r}: parameter {key!r} must be one of "
                                  f"{', '.join(choices)}, got {value!r}", argument=key,
                                  value=value)
        return str(value)

    def rng(self) -> random.Random:
        seed = self.params.get("seed")
        return random.Random(seed if isinstance(seed, (int, str)) else None)


class PolicyBase:
    """Defaults shared by the built-ins: one model, no shadows, first answer.

    :param models: the application's linked models, primary first.
    :param params: the application's ``policy_params``.
    """

    name = "base"
    #: at least this many models, at most ``max_models`` (None = any)
    min_models = 1
    max_models: int | None = None

    def __init__(self, models: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        if not models:
            raise ValidationError(f"policy {self.name!r} needs at least one linked model")
        if self.max_models is not None and len(models) > self.max_models:
            raise ValidationError(f"policy {self.name!r} takes at most {self.max_models} "
                                  f"linked model(s), got {len(models)}")
        self.models = tuple(models)
        self.params = Params(self.name, params or {})
        self.loss_kind = self.params.choice("loss", "zero_one", LOSSES)
        self.max_loss = self.params.number("max_loss", 1.0, low=1e-12)
        self.rng = self.params.rng()

    def init_state(self) -> dict[str, Any]:
        return {}

    def select(self, state: Mapping[str, Any], query: Query) -> list[str]:
        return [self.models[0]]

    def shadows(self, state: Mapping[str, Any], query: Query) -> list[str]:
        return []

    def combine(self, state: Mapping[str, Any], query: Query,
                outputs: Mapping[str, Any]) -> tuple[Any, float]:
        for model in self.models:
            if model in outputs:
                return outputs[model], 1.0
        raise ValueError("combine() needs at least one output")

    def observe(self, state: Mapping[str, Any], query: Query, label: float,
                outputs: Mapping[str, Any]) -> dict[str, Any]:
        return dict(state)

    def weights(self, state: Mapping[str, Any]) -> dict[str, float]:
        return {m: (1.0 if i == 0 else 0.0) for i, m in enumerate(self.models)}

    def loss(self, output: Any, label: float) -> float:
        return loss(self.loss_kind, output, label, self.max_loss)


class LogWeights:
    """Exponential weights kept as logarithms, bounded below.

    The spread between the best and the worst model is capped at ``cap``
    (natural-log units), so a model that was bad can win again after the
    best one breaks within about ``cap / eta`` rounds.
    """

    def __init__(self, models: Sequence[str], cap: float) -> None:
        self.models = tuple(models)
        self.cap = cap

    def read(self, state: Mapping[str, Any]) -> list[float]:
        stored = state.get("log_weights") or {}
        return [float(stored.get(m, 0.0)) for m in self.models]

    def write(self, state: Mapping[str, Any], logs: list[float]) -> dict[str, Any]:
        top = max(logs)
        bounded = [round(max(x - top, -self.cap), 9) for x in logs]
        return {**state, "log_weights": dict(zip(self.models, bounded, strict=True))}

    def normalised(self, state: Mapping[str, Any]) -> list[float]:
        logs = self.read(state)
        top = max(logs)
        ws = [math.exp(x - top) for x in logs]
        total = sum(ws)
        return [w / total for w in ws]


def draw(rng: random.Random, models: Sequence[str], probs: Sequence[float]) -> str:
    """One model drawn with ``probs``."""
    x = rng.random()
    acc = 0.0
    for model, p in zip(models, probs, strict=True):
        acc += p
        if x < acc:
            return model
    return models[-1]
