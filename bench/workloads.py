"""The models every system serves, built the same way everywhere.

Imported by the harness (to deploy closures into our cluster) and by the
apps of the baseline and the peers (each in its own process or virtual
environment), so it needs only numpy, and scikit-learn for the sklearn
model.  Everything is deterministic: the same seed gives the same model in
every system, so outputs can be checked across systems.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Width of the sklearn model's input vector and its number of classes.
SKLEARN_FEATURES = 784
SKLEARN_CLASSES = 10
SKLEARN_SEED = 20170327  # NSDI'17 started on March 27
SKLEARN_TRAIN_ROWS = 1000

#: Width of the noop model's input, and its constant output.
NOOP_FEATURES = 4
NOOP_OUTPUT = 1.0


def noop_predict(inputs: list[Any]) -> list[float]:
    """The noop model: one constant per input."""
    return [NOOP_OUTPUT] * len(inputs)


def train_sklearn() -> Any:
    """A LogisticRegression on synthetic 784-feature, 10-class data, trained
    with a fixed seed (about a second on one core)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(SKLEARN_SEED)
    weights = rng.normal(size=(SKLEARN_FEATURES, SKLEARN_CLASSES))
    x = rng.random((SKLEARN_TRAIN_ROWS, SKLEARN_FEATURES))
    y = np.argmax(x @ weights + rng.normal(scale=0.5, size=(SKLEARN_TRAIN_ROWS,
                                                             SKLEARN_CLASSES)), axis=1)
    model = LogisticRegression(max_iter=50)
    model.fit(x, y)
    return model


def sklearn_predict_fn(model: Any) -> Any:
    """``predict(inputs) -> list[int]`` for a trained model: the whole batch
    goes through ``model.predict`` at once."""

    def predict(inputs: list[Any]) -> list[int]:
        return model.predict(np.asarray(inputs, dtype=np.float64).reshape(
            len(inputs), -1)).tolist()

    return predict


def feature_tail(width: int) -> list[float]:
    """Features 2..width of every request, the same formula as bench/wrk/post.lua
    (the first feature carries a per-request counter)."""
    return [round(((i * 7919) % 1000) / 1000.0, 4) for i in range(2, width + 1)]


def example_input(width: int, first: float = 0.5) -> list[float]:
    """One request vector as the load generators build it."""
    return [first, *feature_tail(width)]
