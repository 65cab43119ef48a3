"""The built-in selection policies against issue 20's targets, on simulated
models of known accuracy (the end-to-end run is in test_selection_e2e.py)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

from clipper_core.errors import PluginError, ValidationError
from clipper_core.selection import Query, build_policy, loss, state_key, uid_point

CLASSES = 10


def answer(accuracy: float, label: int, rng: random.Random) -> int:
    """A simulated classifier: right with probability ``accuracy``."""
    if rng.random() < accuracy:
        return label
    return rng.choice([c for c in range(CLASSES) if c != label])


def exp3_run(seed: int, break_at: int, rounds: int) -> list[str]:
    rng = random.Random(seed)
    accuracy = {"tree": 0.5, "knn": 0.6, "logreg": 0.75, "svm": 0.92}
    policy = build_policy("exp3", tuple(accuracy), {"seed": seed})
    state: Mapping[str, Any] = policy.init_state()
    picks = []
    for i in range(rounds):
        if i == break_at:
            accuracy["svm"] = 0.0  # the best model is replaced by a broken version
        label = rng.randrange(CLASSES)
        query = Query(data=b"%d" % i)
        (model,) = policy.select(state, query)
        picks.append(model)
        state = policy.observe(state, query, label, {model: answer(accuracy[model], label, rng)})
    return picks


def test_exp3_finds_the_best_model_within_500_rounds_and_leaves_it_within_300() -> None:
    shares_before, shares_after = [], []
    for seed in range(8):
        picks = exp3_run(seed, break_at=500, rounds=800)
        shares_before.append(picks[400:500].count("svm") / 100)
        shares_after.append(picks[750:800].count("svm") / 50)
    assert sum(shares_before) / len(shares_before) >= 0.9, shares_before
    assert min(shares_before) >= 0.85, shares_before
    assert max(shares_after) <= 0.1, shares_after


def test_exp4_error_is_at_most_the_best_single_models() -> None:
    rng = random.Random(11)
    accuracy = {"a": 0.7, "b": 0.75, "c": 0.8}
    policy = build_policy("exp4", tuple(accuracy), {})
    state: Mapping[str, Any] = policy.init_state()
    errors = dict.fromkeys(accuracy, 0)
    ensemble_errors = 0
    for i in range(3000):
        label = rng.randrange(CLASSES)
        query = Query(data=b"%d" % i)
        outputs = {m: answer(acc, label, rng) for m, acc in accuracy.items()}
        value, _confidence = policy.combine(state, query, outputs)
        ensemble_errors += value != label
        for m, out in outputs.items():
            errors[m] += out != label
        state = policy.observe(state, query, label, outputs)
    assert ensemble_errors <= min(errors.values()), (ensemble_errors, errors)


def test_exp4_confidence_counts_stragglers() -> None:
    policy = build_policy("exp4", ("a", "b", "c"), {})
    state = policy.init_state()
    assert policy.combine(state, Query(), {"a": 1, "b": 1, "c": 1}) == (1, pytest.approx(1.0))
    value, confidence = policy.combine(state, Query(), {"a": 1})
    assert value == 1 and confidence == pytest.approx(1 / 3)


def test_exp4_squared_loss_is_a_weighted_mean() -> None:
    policy = build_policy("exp4", ("a", "b"), {"loss": "squared", "max_loss": 100.0})
    state = policy.init_state()
    assert policy.combine(state, Query(), {"a": 1.0, "b": 3.0}) == (2.0, pytest.approx(1.0))
    state = policy.observe(state, Query(), 3.0, {"a": 1.0, "b": 3.0})
    value, _ = policy.combine(state, Query(), {"a": 1.0, "b": 3.0})
    assert value > 2.0


def test_split_lands_within_two_points_and_is_sticky_per_uid() -> None:
    policy = build_policy("split", ("stable", "canary"), {"weights": {"stable": 90,
                                                                      "canary": 10}})
    state = policy.init_state()
    picks = [policy.select(state, Query(uid=uid))[0] for uid in range(10_000)]
    assert abs(picks.count("canary") / 10_000 - 0.10) <= 0.02
    again = [policy.select(state, Query(uid=uid))[0] for uid in range(10_000)]
    assert again == picks
    # A policy built elsewhere (another frontend) places every uid alike.
    other = build_policy("split", ("stable", "canary"), {"weights": {"stable": 90,
                                                                     "canary": 10}})
    assert [other.select({}, Query(uid=uid))[0] for uid in range(500)] == picks[:500]


def test_split_without_uid_is_random_at_the_weights() -> None:
    policy = build_policy("split", ("a", "b"), {"weights": {"a": 1, "b": 3}, "seed": 1})
    picks = [policy.select({}, Query())[0] for _ in range(10_000)]
    assert abs(picks.count("b") / 10_000 - 0.75) <= 0.02


def test_shadow_waits_only_for_the_primary() -> None:
    policy = build_policy("shadow", ("old", "new"), {"primary": "old"})
    assert policy.select({}, Query()) == ["old"]
    assert policy.shadows({}, Query()) == ["new"]
    with pytest.raises(ValidationError, match="primary"):
        build_policy("shadow", ("old", "new"), {"primary": "other"})


def test_epsilon_greedy_moves_off_a_broken_model() -> None:
    rng = random.Random(3)
    accuracy = {"a": 0.6, "b": 0.9}
    policy = build_policy("epsilon_greedy", tuple(accuracy), {"seed": 3})
    state: Mapping[str, Any] = policy.init_state()
    picks = []
    for i in range(1500):
        if i == 700:
            accuracy["b"] = 0.0
        label = rng.randrange(CLASSES)
        query = Query(data=b"%d" % i)
        (model,) = policy.select(state, query)
        picks.append(model)
        state = policy.observe(state, query, label, {model: answer(accuracy[model], label, rng)})
    assert picks[500:700].count("b") / 200 >= 0.85
    assert picks[1300:].count("b") / 200 <= 0.15


def test_losses_and_state_keys() -> None:
    assert loss("zero_one", 3, 3.0) == 0.0
    assert loss("zero_one", "3", 3) == 0.0
    assert loss("zero_one", 2, 3) == 1.0
    assert loss("squared", 1.5, 1.0) == 0.25
    assert loss("squared", 10, 0, max_loss=4.0) == 1.0
    assert loss("squared", "x", 0) == 1.0
    assert state_key({}, 5) == ""
    assert state_key({"per_uid": True}, 5) == "uid:5"
    assert state_key({"per_uid": True}, None) == ""
    assert 0.0 <= uid_point(42) < 1.0


def test_unknown_policy_and_bad_params() -> None:
    with pytest.raises(PluginError, match="exp3"):
        build_policy("no-such-policy", ("a",))
    with pytest.raises(ValidationError, match="eta"):
        build_policy("exp3", ("a", "b"), {"eta": -1})
    with pytest.raises(ValidationError, match="at most 1"):
        build_policy("single", ("a", "b"))
    with pytest.raises(ValidationError, match="not linked"):
        build_policy("split", ("a", "b"), {"weights": {"c": 1}})
